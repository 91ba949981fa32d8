//! Every manifest in deploy/kubernetes validates against the Kubernetes API's schemas,
//! offline and strictly (no field the API does not know), for the oldest and the newest
//! Kubernetes release pinned here, with `kubernetes-validate` (PyPI, pinned in
//! scripts/install-deps.sh, in a venv). That their command lines are ones weft accepts is
//! checked by the binary's own tests (src/deploy_check.rs), with the real CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Kubernetes releases the manifests must be valid for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn validator() -> PathBuf {
    let path = std::env::var_os("WEFT_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/weft-tests/venv/bin/kubernetes-validate".into());
    assert!(path.exists(), "{} is missing: run scripts/install-deps.sh", path.display());
    path
}

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(files: &[PathBuf], version: &str) -> std::process::Output {
    Command::new(validator())
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_api() {
    let files = manifests();
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["configmap.yaml", "daemonset.yaml", "job.yaml", "secret.yaml"]);
    for version in KUBERNETES_VERSIONS {
        let output = validate(&files, version);
        let said =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "Kubernetes {version}:\n{said}");
        assert_eq!(said.matches(" passed for resource ").count(), files.len(), "{said}");
    }
}

#[test]
fn the_validator_refuses_what_the_api_would() {
    // A field the API does not have, where a typo would put one: the check has teeth.
    let dir = tempfile::Builder::new().prefix("wtest-deploy").tempdir().unwrap();
    let text =
        std::fs::read_to_string(&manifests()[1]).unwrap().replace("hostNetwork: true", "hostNetwrok: true");
    let broken = dir.path().join("daemonset.yaml");
    std::fs::write(&broken, text).unwrap();
    let output = validate(&[broken], KUBERNETES_VERSIONS[1]);
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}
