//! weft's nftables tables, each its own and replaced or edited in one atomic `nft`
//! transaction; no other table is read or written.
//!
//! - masquerade (`ip weft` / `ip6 weft`): pods' traffic to addresses outside the cluster
//!   CIDR leaves with the node's address; traffic inside the cluster keeps pod addresses.
//! - the overlay's source filter (`ip weft_overlay`): VXLAN (the network's UDP port) is taken
//!   only from the peers' underlay addresses and the configured overlay sources (gateways,
//!   clients); anything else is dropped before it reaches the VXLAN device, which would
//!   otherwise deliver a stranger's forged pod packets into the pod network. And this node's
//!   pods may not send to that port of a peer: masqueraded, their packets would leave with
//!   this node's address, which every peer lets in.
//!
//! Uses the `nft` program (Debian's nftables): nftables' netlink protocol has no
//! well-kept Rust crate yet, and `nft -f` gives atomic transactions for free.

use ipnet::IpNet;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use weft_core::network::Family;

/// The overlay filter's table and set, as `nft list set ip weft_overlay peers` names them.
pub const OVERLAY_TABLE: &str = "weft_overlay";
pub const OVERLAY_SET: &str = "peers";
/// A named counter of what the filter dropped: it outlives the rule, which each update
/// replaces.
pub const OVERLAY_DROPPED: &str = "dropped";

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run nft (is Debian's nftables installed?): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// The masquerade table for `cidr`, as an `nft -f` script that replaces it atomically.
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

/// Installs (or replaces) `family`'s masquerade table for `cidr` in the calling thread's
/// network namespace; `None` removes it.
pub fn masquerade(family: Family, cidr: Option<&IpNet>) -> Result<(), NftError> {
    match cidr {
        Some(cidr) => run(&ruleset(cidr)),
        None => {
            let family = if family == Family::Ipv4 { "ip" } else { "ip6" };
            run(&format!("add table {family} weft\ndelete table {family} weft\n"))
        }
    }
}

/// Who may send VXLAN to this machine: the overlay's UDP port and the underlay addresses it
/// is taken from, of the underlay's family (its table is `ip weft_overlay` over IPv4,
/// `ip6 weft_overlay` over IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayFilter {
    pub port: u16,
    /// The family of the underlay: of this machine's VTEP address.
    pub underlay: Family,
    /// The pods of the underlay's family (the cluster CIDR of that family), whose packets to
    /// a source's VXLAN port are dropped; none when no pods are of that family (their
    /// packets cannot reach the underlay's VTEPs).
    pub pods: Option<IpNet>,
    pub sources: BTreeSet<IpNet>,
}

/// nft's name for a family's table, and its address match.
fn nft_family(family: Family) -> (&'static str, &'static str, &'static str) {
    match family {
        Family::Ipv4 => ("ip", "ip", "ipv4_addr"),
        Family::Ipv6 => ("ip6", "ip6", "ipv6_addr"),
    }
}

/// The overlay filter's nat chain for what this machine's pods send.
const PODS_OUT: &str = "pods_out";

/// The overlay filter as an `nft -f` script: one transaction that (re)declares the table,
/// its chain and set, and replaces the set's elements, so no packet ever meets a set between
/// the old peers and the new. The table is never deleted while the filter is on (an agent's
/// restart leaves it as it was); `None` removes it.
pub fn overlay_ruleset(filter: Option<&OverlayFilter>) -> String {
    let remove = |family| {
        let (nft, _, _) = nft_family(family);
        format!("add table {nft} {OVERLAY_TABLE}\ndelete table {nft} {OVERLAY_TABLE}\n")
    };
    let Some(filter) = filter else {
        return format!("{}{}", remove(Family::Ipv4), remove(Family::Ipv6));
    };
    // The other family's table goes in the same transaction: a node whose underlay changed
    // family keeps no filter of the old one.
    let other = if filter.underlay == Family::Ipv4 { Family::Ipv6 } else { Family::Ipv4 };
    let (nft, address, set_type) = nft_family(filter.underlay);
    let table = format!("{nft} {OVERLAY_TABLE}");
    let mut script = remove(other);
    script += &format!(
        "add table {table}\n\
         add set {table} {OVERLAY_SET} {{ type {set_type}; flags interval; auto-merge; }}\n\
         add counter {table} {OVERLAY_DROPPED}\n\
         add chain {table} input {{ type filter hook input priority raw; policy accept; }}\n\
         flush chain {table} input\n\
         add chain {table} forward {{ type filter hook forward priority raw; policy accept; }}\n\
         flush chain {table} forward\n\
         delete chain {table} forward\n\
         add chain {table} {PODS_OUT} {{ type nat hook postrouting priority srcnat - 1; policy accept; }}\n\
         flush chain {table} {PODS_OUT}\n\
         flush set {table} {OVERLAY_SET}\n\
         add rule {table} input udp dport {port} {address} saddr != @{OVERLAY_SET} counter name {OVERLAY_DROPPED} drop\n",
        port = filter.port
    );
    // Pods may not send to the overlay's port outside the pod network: masqueraded (by weft,
    // or by anything else on the node), they would pass as this machine at a peer's filter.
    // Not only to the peers this machine knows now: a flow begun while an address was not yet
    // (or no longer) a peer would carry on, masqueraded, once it is one. In a nat chain before
    // weft's masquerade, which only a flow's first packet meets (and a flow whose first packet
    // is dropped never gets a second), so pods' other traffic pays nothing for the check. (An
    // older agent's filter chain in the forward hook, which every forwarded packet met, is
    // removed above.) The price: pods cannot reach a UDP service on this port outside the pod
    // network.
    match filter.pods.filter(|p| Family::of_net(p) == filter.underlay) {
        Some(pods) => script.push_str(&format!(
            "add rule {table} {PODS_OUT} udp dport {port} {address} saddr {pods} {address} daddr != {pods} \
             counter name {OVERLAY_DROPPED} drop\n",
            pods = pods.trunc(),
            port = filter.port
        )),
        None => script.push_str(&format!("delete chain {table} {PODS_OUT}\n")),
    }
    let sources: Vec<String> = filter
        .sources
        .iter()
        .filter(|s| Family::of_net(s) == filter.underlay)
        .map(|s| s.trunc().to_string())
        .collect();
    if !sources.is_empty() {
        script.push_str(&format!("add element {table} {OVERLAY_SET} {{ {} }}\n", sources.join(", ")));
    }
    script
}

/// Installs, updates or (`None`) removes the overlay filter in the calling thread's network
/// namespace.
pub fn overlay_filter(filter: Option<&OverlayFilter>) -> Result<(), NftError> {
    run(&overlay_ruleset(filter))
}

/// Runs an `nft -f` script: one transaction, all or nothing.
fn run(script: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(NftError::Spawn)?;
    let output = child.wait_with_output().map_err(NftError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_traffic_leaving_the_cluster_is_masqueraded() {
        let script = ruleset(&"10.244.0.0/16".parse().unwrap());
        assert!(
            script.contains("ip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade")
        );
        assert!(script.starts_with("add table ip weft\ndelete table ip weft\n"), "replaced whole, only ours");
        let v6 = ruleset(&"fd00:244::/48".parse().unwrap());
        assert!(v6.contains("table ip6 weft") && v6.contains("ff00::/8"));
    }

    #[test]
    fn the_overlay_takes_vxlan_only_from_its_sources_and_is_never_deleted_while_on() {
        let filter = OverlayFilter {
            port: 8472,
            underlay: Family::Ipv4,
            pods: Some("10.244.0.0/16".parse().unwrap()),
            sources: ["198.18.2.11/32", "203.0.113.10/32", "fd00::1/128"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
        };
        let script = overlay_ruleset(Some(&filter));
        assert!(!script.contains("delete table ip weft_overlay"), "{script}");
        assert!(
            script.starts_with("add table ip6 weft_overlay\ndelete table ip6 weft_overlay\n"),
            "{script}"
        );
        assert!(script.contains(
            "add rule ip weft_overlay input udp dport 8472 ip saddr != @peers counter name dropped drop"
        ));
        assert!(script.contains("add element ip weft_overlay peers { 198.18.2.11/32, 203.0.113.10/32 }\n"));
        // The set's old elements go in the same transaction that adds the new.
        let flush = script.find("flush set").unwrap();
        assert!(flush < script.find("add element").unwrap());
        // Pods may not reach a peer's VXLAN port (masqueraded, they would pass as this node):
        // checked on a flow's first packet, before the masquerade.
        assert!(script.contains(
            "add chain ip weft_overlay pods_out { type nat hook postrouting priority srcnat - 1; policy accept; }"
        ));
        assert!(script.contains(
            "add rule ip weft_overlay pods_out udp dport 8472 ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 counter name dropped drop"
        ));
        assert!(!script.contains("delete chain ip weft_overlay pods_out"));
        // An older agent's per-packet forward chain goes.
        assert!(
            script.contains("flush chain ip weft_overlay forward\ndelete chain ip weft_overlay forward\n")
        );
        let pods = Some("10.244.0.0/16".parse().unwrap());
        let lonely = overlay_ruleset(Some(&OverlayFilter {
            port: 4789,
            underlay: Family::Ipv4,
            pods,
            sources: BTreeSet::new(),
        }));
        assert!(lonely.contains("udp dport 4789") && !lonely.contains("add element"));
        assert_eq!(
            overlay_ruleset(None),
            "add table ip weft_overlay\ndelete table ip weft_overlay\n\
             add table ip6 weft_overlay\ndelete table ip6 weft_overlay\n"
        );
    }

    #[test]
    fn over_an_ipv6_underlay_the_filter_is_an_ip6_table_of_ipv6_sources() {
        let filter = OverlayFilter {
            port: 8472,
            underlay: Family::Ipv6,
            pods: Some("fd00:10:244::/56".parse().unwrap()),
            sources: ["2001:db8:2::11/128", "198.18.2.11/32"].iter().map(|s| s.parse().unwrap()).collect(),
        };
        let script = overlay_ruleset(Some(&filter));
        assert!(script.starts_with("add table ip weft_overlay\ndelete table ip weft_overlay\n"), "{script}");
        assert!(
            script.contains("add set ip6 weft_overlay peers { type ipv6_addr; flags interval; auto-merge; }")
        );
        assert!(script.contains(
            "add rule ip6 weft_overlay input udp dport 8472 ip6 saddr != @peers counter name dropped drop"
        ));
        assert!(script.contains(
            "add rule ip6 weft_overlay pods_out udp dport 8472 ip6 saddr fd00:10:244::/56 ip6 daddr != fd00:10:244::/56"
        ));
        assert!(script.contains("add element ip6 weft_overlay peers { 2001:db8:2::11/128 }\n"), "{script}");
        // IPv4-only pods over an IPv6 underlay: they cannot reach a VTEP, no pods rule.
        let v4_pods = OverlayFilter { pods: Some("10.244.0.0/16".parse().unwrap()), ..filter };
        assert!(overlay_ruleset(Some(&v4_pods)).contains("delete chain ip6 weft_overlay pods_out"));
    }
}
