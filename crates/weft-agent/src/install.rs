//! Putting weft where a container runtime finds it: the plugin binary in the CNI bin dir,
//! the network config list in the CNI conf dir. Both are written whole under a temporary
//! name and renamed into place, so a runtime never executes half a binary nor loads half a
//! config; and both are flushed to disk before the rename, so a power cut leaves the old
//! file or the new one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the network config list goes and what it says.
#[derive(Debug, Clone)]
pub struct CniConflist {
    pub dir: PathBuf,
    pub name: String,
    pub text: String,
}

impl CniConflist {
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Writes the list unless the file already says exactly this; returns whether it wrote.
    pub fn write(&self) -> io::Result<bool> {
        write_atomically(&self.path(), self.text.as_bytes(), 0o644)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory (named with a
/// leading dot and no `.conf`/`.conflist`/`.json` ending, so neither a runtime nor a shell
/// glob picks it up), fsynced, then renamed over `path`, and the directory fsynced. A file
/// that already holds exactly `bytes` is left alone. Returns whether it wrote.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.weft-tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    // The rename itself, made durable.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(true)
}

/// Copies the plugin binary `source` into `bin_dir` as `name`, atomically: a runtime
/// starting the plugin meanwhile runs the old binary or the new one, whole. (Renaming over
/// a binary that is running is safe: the running process keeps the old file.)
pub fn install_binary(source: &Path, bin_dir: &Path, name: &str) -> io::Result<(PathBuf, bool)> {
    let bytes = fs::read(source)?;
    let path = bin_dir.join(name);
    let wrote = write_atomically(&path, &bytes, 0o755)?;
    Ok((path, wrote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_equal_ones_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("10-weft.conflist");
        assert!(write_atomically(&path, b"one", 0o644).unwrap());
        assert!(!write_atomically(&path, b"one", 0o644).unwrap());
        let before = fs::metadata(&path).unwrap();
        assert!(write_atomically(&path, b"two", 0o644).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // a new file (a rename), not the old one rewritten in place
        use std::os::unix::fs::MetadataExt;
        assert_ne!(fs::metadata(&path).unwrap().ino(), before.ino());
        let names: Vec<_> =
            fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("10-weft.conflist")], "no temporary left");
    }

    #[test]
    fn binaries_are_installed_executable() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("weft-build");
        fs::write(&source, b"\x7fELF...").unwrap();
        let (path, wrote) = install_binary(&source, &dir.path().join("bin"), "weft").unwrap();
        assert!(wrote);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(!install_binary(&source, &dir.path().join("bin"), "weft").unwrap().1);
    }
}
