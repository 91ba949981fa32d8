//! Masquerade: pods' traffic to addresses outside the cluster CIDR leaves with the node's
//! address; traffic inside the cluster keeps pod addresses. One nftables table of weft's own
//! (`ip weft` / `ip6 weft`), replaced whole in one atomic `nft` transaction; no other table
//! is read or written.
//!
//! Uses the `nft` program (Debian's nftables): nftables' netlink protocol has no
//! well-kept Rust crate yet, and `nft -f` gives the atomic replace for free.

use ipnet::IpNet;
use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    #[error("cannot run nft (is Debian's nftables installed?): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// The table for `cidr`, as an `nft -f` script that replaces it atomically.
pub fn ruleset(cidr: &IpNet) -> String {
    let (family, address, multicast) = match cidr {
        IpNet::V4(_) => ("ip", "ip", "224.0.0.0/4"),
        IpNet::V6(_) => ("ip6", "ip6", "ff00::/8"),
    };
    format!(
        "add table {family} weft\n\
         delete table {family} weft\n\
         table {family} weft {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\t{address} saddr {cidr} {address} daddr != {{ {cidr}, {multicast} }} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Installs (or replaces) the masquerade table for `cidr` in the calling thread's network
/// namespace.
pub fn apply(cidr: &IpNet) -> Result<(), MasqueradeError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MasqueradeError::Spawn)?;
    child.stdin.take().expect("piped").write_all(ruleset(cidr).as_bytes()).map_err(MasqueradeError::Spawn)?;
    let output = child.wait_with_output().map_err(MasqueradeError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(MasqueradeError::Refused(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_traffic_leaving_the_cluster_is_masqueraded() {
        let script = super::ruleset(&"10.244.0.0/16".parse().unwrap());
        assert!(
            script.contains("ip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade")
        );
        assert!(script.starts_with("add table ip weft\ndelete table ip weft\n"), "replaced whole, only ours");
        let v6 = super::ruleset(&"fd00:244::/48".parse().unwrap());
        assert!(v6.contains("table ip6 weft") && v6.contains("ff00::/8"));
    }
}
