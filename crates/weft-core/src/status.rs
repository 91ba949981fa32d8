//! The status file: what the agent tells `weft status`, `weft trace` and the lab about how
//! things stand on its node. The agent writes it into its state dir after its passes; one
//! definition here keeps the writer and every reader in step.

use crate::lease::Lease;
use crate::plan::{PeerPath, PlannedRoute};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// File name of the status file inside the state dir.
pub const STATUS_FILE_NAME: &str = "status.json";

/// What the machine the agent runs on is to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Hosts pods: leases a subnet, writes the node file, masquerades.
    #[default]
    Node,
    /// Hosts no pods; joins the overlay and forwards between the physical network and the
    /// cluster, announcing the cluster CIDR to the routers by BGP.
    Gateway,
    /// Hosts no pods; joins the overlay to reach pods directly.
    Client,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Gateway => "gateway",
            Role::Client => "client",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusFile {
    /// This machine's name in the store.
    pub node: String,
    pub role: Role,
    /// The agent's process, and the inode of its network namespace (`/proc/PID/ns/net`):
    /// whose kernel the plan is for.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_inode: Option<u64>,
    /// Unix time this file was written.
    pub written_at: u64,
    /// The agent writes this file at least every so many seconds (its resync interval, or a
    /// third of its lease's TTL if shorter): an older file means the agent is gone or stuck.
    #[serde(default)]
    pub refresh: u64,
    /// The node's lease, while it holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseStatus>,
    pub store: StoreStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp: Vec<BgpSessionStatus>,
    /// Every peer, in name order, with the way the plan reaches it.
    pub peers: Vec<PeerStatus>,
    /// Leases in the store that are not believed (and so not programmed), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedLease>,
    /// The underlay addresses the overlay takes VXLAN from (peers and the network's overlay
    /// sources), as last set in the kernel; none where no filter is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_sources: Option<Vec<IpNet>>,
    /// Why the overlay filter could not be set (the kernel keeps the last one set, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_filter_error: Option<String>,
    pub planned_routes: Vec<PlannedRoute>,
    pub last_pass: PassStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseStatus {
    #[serde(flatten)]
    pub lease: Lease,
    /// Seconds the store keeps the lease without a renewal.
    pub ttl: u64,
    /// Unix time the store last confirmed the lease alive.
    pub renewed_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// The store URL, without credentials.
    pub url: String,
    /// The store revision the agent's cache is current at.
    pub revision: u64,
    /// Whether the last request to the store, and the watch, worked.
    pub connected: bool,
    /// Times the agent listed everything (once at start, then only after a compaction).
    pub lists: u64,
    /// Times the watch was resumed from the revision seen last (a lost connection or member).
    pub watch_resumes: u64,
    /// Store events applied to the cache.
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpSessionStatus {
    pub peer: IpAddr,
    pub asn: u32,
    pub local_asn: u32,
    /// The session's state (RFC 4271's names: Idle, Connect, OpenSent, Established, ...).
    pub state: String,
    pub announced: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    pub node: String,
    pub subnet: IpNet,
    /// Dual stack: the peer's IPv6 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<IpNet>,
    pub path: PeerPath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedLease {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PassStatus {
    /// Unix time of the pass.
    pub at: u64,
    /// Kernel changes it made.
    pub changes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatusFile {
    pub fn parse(text: &str) -> Result<StatusFile, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the status serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let status = StatusFile {
            node: "n1".into(),
            role: Role::Node,
            pid: 42,
            netns_inode: Some(4026531840),
            written_at: 1_700_000_000,
            refresh: 10,
            lease: Some(LeaseStatus {
                lease: Lease {
                    node: "n1".into(),
                    subnet: "10.244.1.0/24".parse().unwrap(),
                    public_ip: "192.0.2.11".parse().unwrap(),
                    backend: crate::network::Backend::Vxlan,
                    vtep_mac: Some(crate::lease::vtep_mac("n1")),
                    subnet6: None,
                    other_public_ip: None,
                },
                ttl: 60,
                renewed_at: 1_699_999_990,
            }),
            store: StoreStatus {
                url: "etcd://127.0.0.1:2379".into(),
                revision: 7,
                connected: true,
                ..Default::default()
            },
            bgp: Vec::new(),
            peers: vec![PeerStatus {
                node: "n2".into(),
                subnet: "10.244.2.0/24".parse().unwrap(),
                subnet6: None,
                path: PeerPath::Unreachable("no VTEP MAC".into()),
            }],
            rejected: vec![RejectedLease {
                node: "n9".into(),
                reason: "subnet 10.99.0.0/24 is outside the cluster CIDR".into(),
            }],
            overlay_sources: Some(vec!["198.18.2.11/32".parse().unwrap()]),
            overlay_filter_error: None,
            planned_routes: Vec::new(),
            last_pass: PassStatus { at: 1_700_000_000, changes: 3, error: None },
        };
        let text = status.to_json();
        assert!(text.contains(r#""unreachable": "no VTEP MAC""#), "{text}");
        assert!(text.contains(r#""subnet": "10.244.1.0/24""#), "the lease's fields sit in it: {text}");
        assert_eq!(StatusFile::parse(&text).unwrap(), status);
    }
}
