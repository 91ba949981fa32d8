//! Records what `weft version` says: the commit the binary was built from (when built in a
//! git checkout; else "unknown") and the target.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WEFT_COMMIT={commit}");
    println!("cargo:rustc-env=WEFT_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    // Built again when HEAD moves: HEAD itself, and the branch it names.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = std::path::PathBuf::from(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let reference = dir.join(&branch);
            if reference.exists() {
                println!("cargo:rerun-if-changed={}", reference.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
