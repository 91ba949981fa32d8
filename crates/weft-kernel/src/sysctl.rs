//! Sysctls under `/proc/sys`. The `net.*` ones belong to the network namespace of the
//! calling thread, so a caller sets them from inside the namespace it means.
//!
//! A process may read them elsewhere ([`set_root`]): a container without privileges has
//! `/proc/sys` read-only, and is given the host's `/proc/sys/net` as a volume instead
//! (procfs shows the opener's network namespace, the host's for a host-network pod).

use crate::{Error, Result};
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Reads and writes this process's sysctls under `root` instead of `/proc/sys`. Once, at
/// start; later calls are ignored.
pub fn set_root(root: PathBuf) {
    let _ = ROOT.set(root);
}

fn root() -> String {
    ROOT.get().map(|r| r.display().to_string()).unwrap_or_else(|| "/proc/sys".into())
}

/// `net.ipv4.ip_forward` or `net/ipv4/conf/eth0.100/forwarding` (the slash form for keys
/// whose parts contain dots, such as VLAN interface names).
fn path(key: &str) -> String {
    if key.contains('/') {
        format!("{}/{key}", root())
    } else {
        format!("{}/{}", root(), key.replace('.', "/"))
    }
}

pub fn read(key: &str) -> Result<String> {
    fs::read_to_string(path(key))
        .map(|v| v.trim().to_string())
        .map_err(|e| Error::io(format!("read sysctl {key}"), e))
}

/// Sets `key` to `value` unless it already has that value (a read is cheaper than a write,
/// and leaves nothing to undo). Returns whether it changed anything.
pub fn ensure(key: &str, value: &str) -> Result<bool> {
    if read(key)? == value {
        return Ok(false);
    }
    fs::write(path(key), value).map_err(|e| Error::io(format!("set sysctl {key}={value}"), e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dotted_keys_map_to_proc_paths() {
        assert_eq!(super::path("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(super::path("net/ipv6/conf/all/forwarding"), "/proc/sys/net/ipv6/conf/all/forwarding");
    }
}
