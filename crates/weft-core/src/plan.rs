//! The planner: from this node and the cluster's leases to the kernel state the node
//! should hold. Pure: the agent's reconciler compares the plan with what the kernel has
//! and changes only the difference.
//!
//! The kernel programming follows flannel's: for a VXLAN peer a permanent neighbour (the
//! peer subnet's network address → the peer's VTEP MAC) on the VXLAN device, a permanent
//! FDB entry (VTEP MAC → peer's public IP), then `peer-subnet via peer-network-address dev
//! weft.<vni> onlink`, so the kernel never has to ARP or flood. For a `route` peer (host-gw)
//! `peer-subnet via peer-public-ip dev uplink`.

use crate::lease::{vtep_mac, Lease, MacAddr};
use crate::network::{Backend, NetworkConfig};
use ipnet::IpNet;
use std::net::IpAddr;

/// VXLAN's overhead over an IPv4 underlay (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14)
/// and over an IPv6 one (outer IP 40).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// Routes to peer subnets carry this protocol number (`ip route` shows "proto 88"): the
/// agent owns these and only these. (Pod host routes from the CNI plugin carry 87.)
pub const PEER_ROUTE_PROTOCOL: u8 = 88;

/// L2 backend: the bridge that takes over the node's uplink, and that pods join.
pub const L2_BRIDGE: &str = "weft-l2";

pub fn vxlan_device_name(vni: u32) -> String {
    format!("weft.{vni}")
}

/// What the agent knows of its own node.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub name: String,
    /// This node's own lease's subnet; none for a machine that hosts no pods (a gateway, a
    /// client) and only reaches them.
    pub subnet: Option<IpNet>,
    /// The address peers reach this node at.
    pub public_ip: IpAddr,
    /// The interface that carries traffic to other nodes.
    pub uplink: String,
    pub uplink_mtu: u32,
    /// Prefixes directly connected on the uplink: peers inside them share its L2 segment.
    pub connected: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// Source address of the encapsulated packets: this node's public IP.
    pub local: IpAddr,
    pub underlay: String,
    pub mtu: u32,
    pub mac: MacAddr,
    /// This node's subnet's network address, as a host address on the device (the address
    /// peers' routes point at); none without a subnet.
    pub address: Option<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedRoute {
    pub destination: IpNet,
    pub gateway: IpAddr,
    pub device: String,
    pub onlink: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedNeighbour {
    pub device: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedFdb {
    pub device: String,
    pub mac: MacAddr,
    pub remote: IpAddr,
}

/// How the plan reaches one peer, and why not when it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPath {
    Route,
    Vxlan,
    /// Through the physical routers, which learn the peer's subnet by BGP: nothing to program.
    Bgp,
    /// On the same L2 segment as its pods: ARP finds them, nothing to program.
    L2,
    Unreachable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub subnet: IpNet,
    pub path: PeerPath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub vxlan: Option<VxlanDevice>,
    pub routes: Vec<PlannedRoute>,
    pub neighbours: Vec<PlannedNeighbour>,
    pub fdb: Vec<PlannedFdb>,
    /// MTU for pods, for the node file.
    pub pod_mtu: u32,
    /// Every live peer, in name order, with the way the plan reaches it.
    pub peers: Vec<Peer>,
}

fn overhead(underlay: IpAddr) -> u32 {
    if underlay.is_ipv4() {
        VXLAN_OVERHEAD_V4
    } else {
        VXLAN_OVERHEAD_V6
    }
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::new(ip, crate::addr::host_prefix_len(ip)).expect("host prefix is valid")
}

/// The kernel state `local` should hold for `leases`. Which leases are alive is the store's
/// word (its clock, or etcd's TTLs), not this node's clock: a node whose clock runs ahead must
/// not drop routes to live peers.
pub fn plan(local: &LocalNode, config: &NetworkConfig, leases: &[Lease]) -> Plan {
    let vxlan = matches!(config.backend, Backend::Vxlan | Backend::Auto).then(|| VxlanDevice {
        name: vxlan_device_name(config.vni),
        vni: config.vni,
        port: config.port,
        local: local.public_ip,
        underlay: local.uplink.clone(),
        mtu: local.uplink_mtu - overhead(local.public_ip),
        mac: vtep_mac(&local.name),
        address: local.subnet.map(|subnet| host_net(subnet.network())),
    });
    let mut plan = Plan {
        pod_mtu: vxlan.as_ref().map_or(local.uplink_mtu, |device| device.mtu),
        vxlan,
        routes: Vec::new(),
        neighbours: Vec::new(),
        fdb: Vec::new(),
        peers: Vec::new(),
    };
    let mut live: Vec<&Lease> = leases
        .iter()
        .filter(|lease| lease.node != local.name)
        .filter(|lease| config.cidr.contains(&lease.subnet) && Some(lease.subnet) != local.subnet)
        .collect();
    live.sort_by(|a, b| a.node.cmp(&b.node));
    for lease in live {
        let same_segment = local.connected.iter().any(|net| net.contains(&lease.public_ip));
        let wanted = match config.backend {
            Backend::Route => PeerPath::Route,
            Backend::Vxlan => PeerPath::Vxlan,
            Backend::Auto | Backend::Bgp if same_segment => PeerPath::Route,
            Backend::Auto => PeerPath::Vxlan,
            Backend::Bgp => PeerPath::Bgp,
            Backend::L2 => PeerPath::L2,
        };
        let path = match wanted {
            PeerPath::Route if lease.subnet.addr().is_ipv4() != lease.public_ip.is_ipv4() => {
                PeerPath::Unreachable(format!(
                    "the route backend cannot send {} pods via {}: address families differ",
                    lease.subnet, lease.public_ip
                ))
            }
            PeerPath::Route if !same_segment => PeerPath::Unreachable(format!(
                "the route backend needs the peer on this node's L2 segment; {} is not on {}",
                lease.public_ip, local.uplink
            )),
            PeerPath::Bgp => PeerPath::Bgp,
            PeerPath::L2 => PeerPath::L2,
            PeerPath::Route => {
                plan.routes.push(PlannedRoute {
                    destination: lease.subnet,
                    gateway: lease.public_ip,
                    device: local.uplink.clone(),
                    onlink: false,
                });
                PeerPath::Route
            }
            _ => match (&plan.vxlan, lease.vtep_mac) {
                (_, None) => PeerPath::Unreachable(format!("lease of {} has no VTEP MAC", lease.node)),
                (Some(device), Some(_)) if device.local.is_ipv4() != lease.public_ip.is_ipv4() => {
                    PeerPath::Unreachable(format!(
                        "underlay families differ: {} here, {} there",
                        device.local, lease.public_ip
                    ))
                }
                (Some(device), Some(mac)) => {
                    let gateway = lease.subnet.network();
                    plan.neighbours.push(PlannedNeighbour { device: device.name.clone(), ip: gateway, mac });
                    plan.fdb.push(PlannedFdb { device: device.name.clone(), mac, remote: lease.public_ip });
                    plan.routes.push(PlannedRoute {
                        destination: lease.subnet,
                        gateway,
                        device: device.name.clone(),
                        onlink: true,
                    });
                    PeerPath::Vxlan
                }
                (None, Some(_)) => unreachable!("a vxlan path is only chosen with a vxlan device"),
            },
        };
        plan.peers.push(Peer { node: lease.node.clone(), subnet: lease.subnet, path });
    }
    plan.routes.sort();
    plan.neighbours.sort();
    plan.fdb.sort();
    plan
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A node of rack 192.0.2.0/24 with subnet 10.244.1.0/24 (the reconcile tests use it too).
    pub(crate) fn local() -> LocalNode {
        LocalNode {
            name: "n1".into(),
            subnet: Some("10.244.1.0/24".parse().unwrap()),
            public_ip: "192.0.2.11".parse().unwrap(),
            uplink: "eth0".into(),
            uplink_mtu: 1500,
            connected: vec!["192.0.2.0/24".parse().unwrap()],
        }
    }

    fn lease(node: &str, subnet: &str, ip: &str, expires_at: u64) -> Lease {
        Lease {
            node: node.into(),
            subnet: subnet.parse().unwrap(),
            public_ip: ip.parse().unwrap(),
            backend: Backend::Vxlan,
            vtep_mac: Some(vtep_mac(node)),
            expires_at,
        }
    }

    fn config(backend: Backend) -> NetworkConfig {
        NetworkConfig { backend, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) }
    }

    fn cluster() -> Vec<Lease> {
        vec![
            lease("n1", "10.244.1.0/24", "192.0.2.11", 100),    // this node
            lease("n2", "10.244.2.0/24", "192.0.2.12", 100),    // same rack
            lease("n3", "10.244.3.0/24", "198.51.100.13", 100), // another rack
        ]
    }

    #[test]
    fn route_backend_routes_via_peers_on_the_segment_and_says_why_not_the_rest() {
        let plan = plan(&local(), &config(Backend::Route), &cluster());
        assert_eq!(plan.vxlan, None);
        assert_eq!(plan.pod_mtu, 1500);
        assert_eq!(
            plan.routes,
            vec![PlannedRoute {
                destination: "10.244.2.0/24".parse().unwrap(),
                gateway: "192.0.2.12".parse().unwrap(),
                device: "eth0".into(),
                onlink: false
            }]
        );
        assert_eq!(plan.peers.len(), 2, "this node is not its own peer");
        assert!(matches!(&plan.peers[1].path, PeerPath::Unreachable(why) if why.contains("L2 segment")));
    }

    #[test]
    fn vxlan_backend_programs_neighbour_fdb_and_onlink_route_per_peer() {
        let plan = plan(&local(), &config(Backend::Vxlan), &cluster());
        let device = plan.vxlan.clone().unwrap();
        assert_eq!((device.name.as_str(), device.vni, device.port, device.mtu), ("weft.1", 1, 8472, 1450));
        assert_eq!(device.mac, vtep_mac("n1"));
        assert_eq!(device.address.unwrap().to_string(), "10.244.1.0/32");
        assert_eq!(plan.pod_mtu, 1450);
        assert_eq!(plan.routes.len(), 2);
        let to_n3 = plan.routes.iter().find(|r| r.destination.to_string() == "10.244.3.0/24").unwrap();
        assert_eq!(
            (to_n3.gateway.to_string().as_str(), to_n3.device.as_str(), to_n3.onlink),
            ("10.244.3.0", "weft.1", true)
        );
        assert!(plan.neighbours.contains(&PlannedNeighbour {
            device: "weft.1".into(),
            ip: "10.244.3.0".parse().unwrap(),
            mac: vtep_mac("n3")
        }));
        assert!(plan.fdb.contains(&PlannedFdb {
            device: "weft.1".into(),
            mac: vtep_mac("n3"),
            remote: "198.51.100.13".parse().unwrap()
        }));
    }

    #[test]
    fn auto_routes_within_the_segment_and_tunnels_across() {
        let plan = plan(&local(), &config(Backend::Auto), &cluster());
        let paths: Vec<(&str, &PeerPath)> = plan.peers.iter().map(|p| (p.node.as_str(), &p.path)).collect();
        assert_eq!(paths, vec![("n2", &PeerPath::Route), ("n3", &PeerPath::Vxlan)]);
        assert_eq!(plan.fdb.len(), 1);
        // pods get the tunnel's MTU: any peer might be across the tunnel
        assert_eq!(plan.pod_mtu, 1450);
    }

    #[test]
    fn bgp_routes_within_the_segment_and_leaves_the_rest_to_the_routers() {
        let plan = plan(&local(), &config(Backend::Bgp), &cluster());
        let paths: Vec<(&str, &PeerPath)> = plan.peers.iter().map(|p| (p.node.as_str(), &p.path)).collect();
        assert_eq!(paths, vec![("n2", &PeerPath::Route), ("n3", &PeerPath::Bgp)]);
        assert_eq!(plan.routes.len(), 1, "only the rack-mate's route");
        assert_eq!((plan.vxlan, plan.pod_mtu), (None, 1500), "no overlay, no overhead");
    }

    #[test]
    fn l2_programs_nothing_at_all() {
        let plan = plan(&local(), &config(Backend::L2), &cluster());
        assert!(plan.peers.iter().all(|p| p.path == PeerPath::L2));
        assert!(plan.routes.is_empty() && plan.vxlan.is_none() && plan.fdb.is_empty());
        assert_eq!(plan.pod_mtu, 1500);
    }

    #[test]
    fn a_machine_without_pods_reaches_every_node_and_holds_no_address() {
        let gateway = LocalNode { name: "g1".into(), subnet: None, ..local() };
        let plan = plan(&gateway, &config(Backend::Vxlan), &cluster());
        assert_eq!(plan.peers.len(), 3, "n1 is a peer like any other");
        assert_eq!(plan.vxlan.unwrap().address, None);
        assert_eq!(plan.routes.len(), 3);
    }

    #[test]
    fn ipv6_underlay_costs_seventy_bytes() {
        let mut node = local();
        node.public_ip = "2001:db8::11".parse().unwrap();
        let plan = plan(&node, &config(Backend::Vxlan), &[]);
        assert_eq!(plan.vxlan.unwrap().mtu, 1430);
    }

    #[test]
    fn peers_the_tunnel_cannot_reach_are_named_not_programmed() {
        let mut leases = cluster();
        leases[2].vtep_mac = None;
        leases.push(lease("n5", "10.244.5.0/24", "2001:db8::15", 100));
        let plan = plan(&local(), &config(Backend::Vxlan), &leases);
        let unreachable: Vec<&str> = plan
            .peers
            .iter()
            .filter(|p| matches!(p.path, PeerPath::Unreachable(_)))
            .map(|p| p.node.as_str())
            .collect();
        assert_eq!(unreachable, vec!["n3", "n5"]);
        assert_eq!(plan.routes.len(), 1);
    }

    #[test]
    fn a_lease_that_goes_takes_its_routes_with_it() {
        let before = plan(&local(), &config(Backend::Vxlan), &cluster());
        let after = plan(&local(), &config(Backend::Vxlan), &cluster()[..1]);
        assert_eq!(before.routes.len(), 2);
        assert!(after.routes.is_empty() && after.fdb.is_empty() && after.neighbours.is_empty());
    }

    #[test]
    fn route_never_mixes_address_families() {
        let mut leases = cluster();
        leases[1].subnet = "fd00:244:0:2::/64".parse().unwrap();
        let config =
            NetworkConfig { backend: Backend::Route, ..NetworkConfig::new("fd00:244::/48".parse().unwrap()) };
        let mut node = local();
        node.subnet = Some("fd00:244:0:1::/64".parse().unwrap());
        let plan = plan(&node, &config, &leases);
        assert!(plan.routes.is_empty());
        assert!(matches!(&plan.peers[0].path, PeerPath::Unreachable(why) if why.contains("families")));
    }

    #[test]
    fn the_plan_does_not_depend_on_lease_order() {
        let mut reversed = cluster();
        reversed.reverse();
        assert_eq!(
            plan(&local(), &config(Backend::Auto), &cluster()),
            plan(&local(), &config(Backend::Auto), &reversed)
        );
    }
}
