//! A real etcd server (Debian's etcd-server) for a lab or a test: one member, its own
//! data dir, plain HTTP on the address given.

use std::path::Path;
use std::process::Command;

/// The command that starts a one-member etcd with its data in `data_dir`, serving clients
/// on `client_url` and its (unused) peer port on `peer_url`. Quiet but for errors.
pub fn command(data_dir: &Path, client_url: &str, peer_url: &str) -> Command {
    let mut command = Command::new("etcd");
    command
        .args(["--name", "default", "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", client_url, "--advertise-client-urls", client_url])
        .args(["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .args(["--logger", "zap", "--log-level", "error"]);
    command
}
