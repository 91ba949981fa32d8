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
use crate::network::{Backend, Family, NetworkConfig};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
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
    /// Dual stack: this node's IPv6 subnet (`subnet` is the IPv4 one).
    pub subnet6: Option<IpNet>,
    /// The address peers reach this node at.
    pub public_ip: IpAddr,
    /// The uplink's address of the other family, if it has one.
    pub other_public_ip: Option<IpAddr>,
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
    /// This node's subnets' network addresses, as host addresses on the device (the
    /// addresses peers' routes point at), one per family; none without a subnet.
    pub addresses: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerPath {
    Route,
    Vxlan,
    /// Through the physical routers, which learn the peer's subnet by BGP: nothing to program.
    Bgp,
    /// On the same L2 segment as its pods: ARP finds them, nothing to program.
    L2,
    Unreachable(String),
}

impl fmt::Display for PeerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerPath::Route => f.write_str("route"),
            PeerPath::Vxlan => f.write_str("vxlan"),
            PeerPath::Bgp => f.write_str("bgp: through the routers"),
            PeerPath::L2 => f.write_str("l2: on the segment"),
            PeerPath::Unreachable(why) => write!(f, "unreachable: {why}"),
        }
    }
}

/// One peer as the plan has it: how it is reached, and the kernel entries that takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    pub node: String,
    pub subnet: IpNet,
    /// Dual stack: the peer's IPv6 subnet.
    pub subnet6: Option<IpNet>,
    pub path: PeerPath,
    /// One route per family the peer is reached in.
    pub routes: Vec<PlannedRoute>,
    /// VXLAN: one neighbour per family (the peer's tunnel gateway → its VTEP MAC).
    pub neighbours: Vec<PlannedNeighbour>,
    pub fdb: Option<PlannedFdb>,
}

impl PeerPlan {
    /// A plan of nothing: what a new peer had before.
    pub fn default_empty() -> PeerPlan {
        PeerPlan {
            node: String::new(),
            subnet: IpNet::V4(Default::default()),
            subnet6: None,
            path: PeerPath::Route,
            routes: Vec::new(),
            neighbours: Vec::new(),
            fdb: None,
        }
    }
}

/// The kernel state a node should hold. Kept per peer, so that a change to one peer's lease
/// is planned (and reconciled) by looking at that peer alone: [`Plan::set_peer`] and
/// [`Plan::remove_peer`] say what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub vxlan: Option<VxlanDevice>,
    /// MTU for pods, for the node file.
    pub pod_mtu: u32,
    /// Every live peer by name, with the way the plan reaches it.
    peers: BTreeMap<String, PeerPlan>,
    /// How many peers plan each kernel entry (by what identifies it in the kernel), so that a
    /// departing peer's entry is kept when another still needs it, without a scan.
    owners: Owners,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Owners {
    routes: BTreeMap<IpNet, u32>,
    neighbours: BTreeMap<(String, IpAddr), u32>,
    fdb: BTreeMap<(String, MacAddr), u32>,
    unreachable: usize,
}

fn count<K: Ord>(map: &mut BTreeMap<K, u32>, key: K, up: bool) {
    if up {
        *map.entry(key).or_default() += 1;
    } else if let std::collections::btree_map::Entry::Occupied(mut entry) = map.entry(key) {
        *entry.get_mut() -= 1;
        if *entry.get() == 0 {
            entry.remove();
        }
    }
}

impl Owners {
    fn note(&mut self, peer: &PeerPlan, up: bool) {
        if matches!(peer.path, PeerPath::Unreachable(_)) {
            if up {
                self.unreachable += 1;
            } else {
                self.unreachable -= 1;
            }
        }
        for route in &peer.routes {
            count(&mut self.routes, route.destination, up);
        }
        for neighbour in &peer.neighbours {
            count(&mut self.neighbours, (neighbour.device.clone(), neighbour.ip), up);
        }
        if let Some(fdb) = &peer.fdb {
            count(&mut self.fdb, (fdb.device.clone(), fdb.mac), up);
        }
    }
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
    let mut plan = Plan::new(local, config);
    for lease in leases {
        plan.set_peer(local, config, lease);
    }
    plan
}

impl Plan {
    /// The plan of a node without peers: its own device, if the backend has one.
    pub fn new(local: &LocalNode, config: &NetworkConfig) -> Plan {
        let vxlan = matches!(config.backend, Backend::Vxlan | Backend::Auto).then(|| VxlanDevice {
            name: vxlan_device_name(config.vni),
            vni: config.vni,
            port: config.port,
            local: local.public_ip,
            underlay: local.uplink.clone(),
            mtu: local.uplink_mtu - overhead(local.public_ip),
            mac: vtep_mac(&local.name),
            addresses: local.subnet.iter().chain(&local.subnet6).map(|s| host_net(s.network())).collect(),
        });
        Plan {
            pod_mtu: vxlan.as_ref().map_or(local.uplink_mtu, |device| device.mtu),
            vxlan,
            peers: BTreeMap::new(),
            owners: Owners::default(),
        }
    }

    /// Plans `lease` (a peer's lease, new or changed). Returns the peer's plan before, when
    /// it differs from the new one (`None` before: the peer is new), and whether anything
    /// changed. A lease that is not a peer's (this node's own, outside the CIDR) plans nothing.
    pub fn set_peer(&mut self, local: &LocalNode, config: &NetworkConfig, lease: &Lease) -> PeerChange {
        let Some(peer) = plan_peer(local, config, self.vxlan.as_ref(), lease) else {
            return self.remove_peer(&lease.node);
        };
        match self.peers.get(&lease.node) {
            Some(before) if *before == peer => PeerChange::default(),
            _ => {
                self.owners.note(&peer, true);
                let before = self.peers.insert(lease.node.clone(), peer.clone());
                if let Some(before) = &before {
                    self.owners.note(before, false);
                }
                PeerChange { before, after: Some(peer) }
            }
        }
    }

    /// Forgets a peer whose lease is gone.
    pub fn remove_peer(&mut self, node: &str) -> PeerChange {
        let before = self.peers.remove(node);
        if let Some(before) = &before {
            self.owners.note(before, false);
        }
        PeerChange { before, after: None }
    }

    /// Every peer by name.
    pub fn peers(&self) -> &BTreeMap<String, PeerPlan> {
        &self.peers
    }

    /// Whether some peer plans a route to `destination`.
    pub fn plans_route(&self, destination: &IpNet) -> bool {
        self.owners.routes.contains_key(destination)
    }

    /// Whether some peer plans this neighbour entry (by device and address).
    pub fn plans_neighbour(&self, device: &str, ip: IpAddr) -> bool {
        self.owners.neighbours.contains_key(&(device.to_string(), ip))
    }

    /// Whether some peer plans this FDB entry (by device and MAC).
    pub fn plans_fdb(&self, device: &str, mac: MacAddr) -> bool {
        self.owners.fdb.contains_key(&(device.to_string(), mac))
    }

    /// Every planned route, in order.
    pub fn routes(&self) -> Vec<PlannedRoute> {
        let mut routes: Vec<PlannedRoute> = self.peers.values().flat_map(|p| p.routes.clone()).collect();
        routes.sort();
        routes
    }

    pub fn neighbours(&self) -> Vec<PlannedNeighbour> {
        let mut neighbours: Vec<PlannedNeighbour> =
            self.peers.values().flat_map(|p| p.neighbours.clone()).collect();
        neighbours.sort();
        neighbours
    }

    pub fn fdb(&self) -> Vec<PlannedFdb> {
        let mut fdb: Vec<PlannedFdb> = self.peers.values().filter_map(|p| p.fdb.clone()).collect();
        fdb.sort();
        fdb
    }

    /// Peers the backend cannot reach from here.
    pub fn unreachable(&self) -> usize {
        self.owners.unreachable
    }
}

/// What one lease event changed in a plan: the peer's plan before and after (both `None`:
/// nothing changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerChange {
    pub before: Option<PeerPlan>,
    pub after: Option<PeerPlan>,
}

impl PeerChange {
    pub fn is_empty(&self) -> bool {
        self.before.is_none() && self.after.is_none()
    }
}

/// How `local` reaches the holder of `lease`, and what that takes in the kernel: for each
/// family both nodes have pods of, a route (and in VXLAN a neighbour; one FDB entry serves
/// every family). `None` when the lease is not a peer's: this node's own, or outside the
/// cluster CIDR.
pub fn plan_peer(
    local: &LocalNode,
    config: &NetworkConfig,
    device: Option<&VxlanDevice>,
    lease: &Lease,
) -> Option<PeerPlan> {
    // (A lease claiming one of this node's own subnets, of either family, is no peer.)
    let own = |s: IpNet| local.subnet == Some(s) || local.subnet6 == Some(s);
    if lease.node == local.name || !config.cidr.contains(&lease.subnet) || lease.subnets().any(own) {
        return None;
    }
    // The peer's subnets of the families this network and this node have pods of (a gateway,
    // without subnets, reaches every family the network has).
    let ours = |family: Family| match (local.subnet, local.subnet6) {
        (None, None) => config.pool(family).is_some(),
        (a, b) => a.iter().chain(&b).any(|s| Family::of_net(s) == family),
    };
    let subnet6 = lease.subnet6.filter(|s| config.ipv6.as_ref().is_some_and(|p| p.cidr.contains(s)));
    let subnets: Vec<IpNet> =
        std::iter::once(lease.subnet).chain(subnet6).filter(|s| ours(Family::of_net(s))).collect();
    let mut peer = PeerPlan {
        node: lease.node.clone(),
        subnet: lease.subnet,
        subnet6,
        path: PeerPath::Route,
        routes: Vec::new(),
        neighbours: Vec::new(),
        fdb: None,
    };
    // The peer's address in this node's underlay family (its VTEP there, and what says whether
    // it shares this node's segment): during a rollout of another underlay family a peer's
    // public IP may be of the other family while it has one of ours too.
    let underlay_ip = lease.public_ip_of(Family::of(local.public_ip)).unwrap_or(lease.public_ip);
    let same_segment = local.connected.iter().any(|net| net.contains(&underlay_ip));
    let wanted = match config.backend {
        Backend::Route => PeerPath::Route,
        Backend::Vxlan => PeerPath::Vxlan,
        Backend::Auto | Backend::Bgp if same_segment => PeerPath::Route,
        Backend::Auto => PeerPath::Vxlan,
        Backend::Bgp => PeerPath::Bgp,
        Backend::L2 => PeerPath::L2,
    };
    let mut unreachable = Vec::new();
    peer.path = match wanted {
        PeerPath::Route if !same_segment => PeerPath::Unreachable(format!(
            "the route backend needs the peer on this node's L2 segment; {} is not on {}",
            underlay_ip, local.uplink
        )),
        PeerPath::Bgp => PeerPath::Bgp,
        PeerPath::L2 => PeerPath::L2,
        PeerPath::Route => {
            // Each family via the peer's address of that family on the segment.
            for subnet in &subnets {
                let family = Family::of_net(subnet);
                match lease.public_ip_of(family) {
                    Some(gateway) if local.connected.iter().any(|net| net.contains(&gateway)) => {
                        peer.routes.push(PlannedRoute {
                            destination: *subnet,
                            gateway,
                            device: local.uplink.clone(),
                            onlink: false,
                        })
                    }
                    Some(gateway) => unreachable.push(format!(
                        "the route backend cannot send {subnet} pods via {gateway}: not on {}",
                        local.uplink
                    )),
                    None => unreachable.push(format!(
                        "the route backend cannot send {subnet} pods: {} has no {family} address",
                        lease.node
                    )),
                }
            }
            PeerPath::Route
        }
        _ => match (device, lease.vtep_mac) {
            (_, None) => PeerPath::Unreachable(format!("lease of {} has no VTEP MAC", lease.node)),
            (Some(device), Some(_)) if device.local.is_ipv4() != underlay_ip.is_ipv4() => {
                PeerPath::Unreachable(format!(
                    "underlay families differ: {} here, {} there",
                    device.local, lease.public_ip
                ))
            }
            (Some(device), Some(mac)) => {
                // One device carries both families over one underlay: per family a
                // neighbour and an onlink route, one FDB entry for the peer's VTEP.
                for subnet in &subnets {
                    let gateway = subnet.network();
                    peer.neighbours.push(PlannedNeighbour { device: device.name.clone(), ip: gateway, mac });
                    peer.routes.push(PlannedRoute {
                        destination: *subnet,
                        gateway,
                        device: device.name.clone(),
                        onlink: true,
                    });
                }
                peer.fdb = Some(PlannedFdb { device: device.name.clone(), mac, remote: underlay_ip });
                PeerPath::Vxlan
            }
            (None, Some(_)) => unreachable!("a vxlan path is only chosen with a vxlan device"),
        },
    };
    if !unreachable.is_empty() {
        peer.path = PeerPath::Unreachable(unreachable.join("; "));
    }
    Some(peer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A node of rack 192.0.2.0/24 with subnet 10.244.1.0/24 (the reconcile tests use it too).
    pub(crate) fn local() -> LocalNode {
        LocalNode {
            name: "n1".into(),
            subnet: Some("10.244.1.0/24".parse().unwrap()),
            subnet6: None,
            public_ip: "192.0.2.11".parse().unwrap(),
            other_public_ip: None,
            uplink: "eth0".into(),
            uplink_mtu: 1500,
            connected: vec!["192.0.2.0/24".parse().unwrap()],
        }
    }

    fn lease(node: &str, subnet: &str, ip: &str) -> Lease {
        Lease {
            node: node.into(),
            subnet: subnet.parse().unwrap(),
            public_ip: ip.parse().unwrap(),
            backend: Backend::Vxlan,
            vtep_mac: Some(vtep_mac(node)),
            subnet6: None,
            other_public_ip: None,
        }
    }

    fn config(backend: Backend) -> NetworkConfig {
        NetworkConfig { backend, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) }
    }

    fn cluster() -> Vec<Lease> {
        vec![
            lease("n1", "10.244.1.0/24", "192.0.2.11"),    // this node
            lease("n2", "10.244.2.0/24", "192.0.2.12"),    // same rack
            lease("n3", "10.244.3.0/24", "198.51.100.13"), // another rack
        ]
    }

    #[test]
    fn route_backend_routes_via_peers_on_the_segment_and_says_why_not_the_rest() {
        let plan = plan(&local(), &config(Backend::Route), &cluster());
        assert_eq!(plan.vxlan, None);
        assert_eq!(plan.pod_mtu, 1500);
        assert_eq!(
            plan.routes(),
            vec![PlannedRoute {
                destination: "10.244.2.0/24".parse().unwrap(),
                gateway: "192.0.2.12".parse().unwrap(),
                device: "eth0".into(),
                onlink: false
            }]
        );
        assert_eq!(plan.peers.len(), 2, "this node is not its own peer");
        assert!(matches!(&plan.peers["n3"].path, PeerPath::Unreachable(why) if why.contains("L2 segment")));
    }

    #[test]
    fn vxlan_backend_programs_neighbour_fdb_and_onlink_route_per_peer() {
        let plan = plan(&local(), &config(Backend::Vxlan), &cluster());
        let device = plan.vxlan.clone().unwrap();
        assert_eq!((device.name.as_str(), device.vni, device.port, device.mtu), ("weft.1", 1, 8472, 1450));
        assert_eq!(device.mac, vtep_mac("n1"));
        assert_eq!(device.addresses, vec!["10.244.1.0/32".parse::<IpNet>().unwrap()]);
        assert_eq!(plan.pod_mtu, 1450);
        assert_eq!(plan.routes().len(), 2);
        let routes = plan.routes();
        let to_n3 = routes.iter().find(|r| r.destination.to_string() == "10.244.3.0/24").unwrap();
        assert_eq!(
            (to_n3.gateway.to_string().as_str(), to_n3.device.as_str(), to_n3.onlink),
            ("10.244.3.0", "weft.1", true)
        );
        assert!(plan.neighbours().contains(&PlannedNeighbour {
            device: "weft.1".into(),
            ip: "10.244.3.0".parse().unwrap(),
            mac: vtep_mac("n3")
        }));
        assert!(plan.fdb().contains(&PlannedFdb {
            device: "weft.1".into(),
            mac: vtep_mac("n3"),
            remote: "198.51.100.13".parse().unwrap()
        }));
    }

    #[test]
    fn auto_routes_within_the_segment_and_tunnels_across() {
        let plan = plan(&local(), &config(Backend::Auto), &cluster());
        let paths: Vec<(&str, &PeerPath)> = plan.peers.values().map(|p| (p.node.as_str(), &p.path)).collect();
        assert_eq!(paths, vec![("n2", &PeerPath::Route), ("n3", &PeerPath::Vxlan)]);
        assert_eq!(plan.fdb().len(), 1);
        // pods get the tunnel's MTU: any peer might be across the tunnel
        assert_eq!(plan.pod_mtu, 1450);
    }

    #[test]
    fn bgp_routes_within_the_segment_and_leaves_the_rest_to_the_routers() {
        let plan = plan(&local(), &config(Backend::Bgp), &cluster());
        let paths: Vec<(&str, &PeerPath)> = plan.peers.values().map(|p| (p.node.as_str(), &p.path)).collect();
        assert_eq!(paths, vec![("n2", &PeerPath::Route), ("n3", &PeerPath::Bgp)]);
        assert_eq!(plan.routes().len(), 1, "only the rack-mate's route");
        assert_eq!((plan.vxlan, plan.pod_mtu), (None, 1500), "no overlay, no overhead");
    }

    #[test]
    fn l2_programs_nothing_at_all() {
        let plan = plan(&local(), &config(Backend::L2), &cluster());
        assert!(plan.peers.values().all(|p| p.path == PeerPath::L2));
        assert!(plan.routes().is_empty() && plan.vxlan.is_none() && plan.fdb().is_empty());
        assert_eq!(plan.pod_mtu, 1500);
    }

    #[test]
    fn a_machine_without_pods_reaches_every_node_and_holds_no_address() {
        let gateway = LocalNode { name: "g1".into(), subnet: None, ..local() };
        let plan = plan(&gateway, &config(Backend::Vxlan), &cluster());
        assert_eq!(plan.peers.len(), 3, "n1 is a peer like any other");
        assert_eq!(plan.vxlan.as_ref().unwrap().addresses, vec![]);
        assert_eq!(plan.routes().len(), 3);
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
        leases.push(lease("n5", "10.244.5.0/24", "2001:db8::15"));
        let plan = plan(&local(), &config(Backend::Vxlan), &leases);
        let unreachable: Vec<&str> = plan
            .peers
            .values()
            .filter(|p| matches!(p.path, PeerPath::Unreachable(_)))
            .map(|p| p.node.as_str())
            .collect();
        assert_eq!(unreachable, vec!["n3", "n5"]);
        assert_eq!(plan.unreachable(), 2);
        assert_eq!(plan.routes().len(), 1);
    }

    #[test]
    fn a_lease_that_goes_takes_its_routes_with_it() {
        let before = plan(&local(), &config(Backend::Vxlan), &cluster());
        let after = plan(&local(), &config(Backend::Vxlan), &cluster()[..1]);
        assert_eq!(before.routes().len(), 2);
        assert!(after.routes().is_empty() && after.fdb().is_empty() && after.neighbours().is_empty());
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
        assert!(plan.routes().is_empty());
        assert!(
            matches!(&plan.peers["n2"].path, PeerPath::Unreachable(why) if why.contains("no IPv6 address"))
        );
    }

    /// n1 and n2 share rack 192.0.2.0/24 and 2001:db8:2::/64; n3 is on another rack.
    fn dual() -> (LocalNode, NetworkConfig, Vec<Lease>) {
        let mut node = local();
        node.subnet6 = Some("fd00:10:244:1::/64".parse().unwrap());
        node.other_public_ip = Some("2001:db8:2::11".parse().unwrap());
        node.connected.push("2001:db8:2::/64".parse().unwrap());
        let config = NetworkConfig::with_cidrs(&[
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/56".parse().unwrap(),
        ])
        .unwrap();
        let mut leases = cluster();
        for (lease, (subnet6, ip6)) in leases.iter_mut().zip([
            ("fd00:10:244:1::/64", "2001:db8:2::11"),
            ("fd00:10:244:2::/64", "2001:db8:2::12"),
            ("fd00:10:244:3::/64", "2001:db8:3::13"),
        ]) {
            lease.subnet6 = Some(subnet6.parse().unwrap());
            lease.other_public_ip = Some(ip6.parse().unwrap());
        }
        (node, config, leases)
    }

    #[test]
    fn dual_route_reaches_each_family_via_the_peers_address_of_that_family() {
        let (node, config, leases) = dual();
        let plan = plan(&node, &NetworkConfig { backend: Backend::Route, ..config }, &leases);
        let routes: Vec<(String, String)> =
            plan.routes().iter().map(|r| (r.destination.to_string(), r.gateway.to_string())).collect();
        assert_eq!(
            routes,
            vec![
                ("10.244.2.0/24".to_string(), "192.0.2.12".to_string()),
                ("fd00:10:244:2::/64".to_string(), "2001:db8:2::12".to_string())
            ]
        );
        assert_eq!(plan.peers["n2"].path, PeerPath::Route);
    }

    #[test]
    fn dual_route_to_a_peer_without_an_ipv6_address_keeps_ipv4_and_says_why_not_ipv6() {
        let (node, config, mut leases) = dual();
        leases[1].other_public_ip = None;
        let plan = plan(&node, &NetworkConfig { backend: Backend::Route, ..config }, &leases);
        assert_eq!(plan.routes().len(), 1);
        assert_eq!(plan.routes()[0].destination.to_string(), "10.244.2.0/24");
        assert!(
            matches!(&plan.peers["n2"].path, PeerPath::Unreachable(why) if why.contains("fd00:10:244:2::/64") && why.contains("no IPv6 address")),
            "{:?}",
            plan.peers["n2"].path
        );
    }

    #[test]
    fn dual_vxlan_carries_both_families_in_one_device_over_the_ipv4_underlay() {
        let (node, config, leases) = dual();
        let plan = plan(&node, &NetworkConfig { backend: Backend::Vxlan, ..config }, &leases);
        let device = plan.vxlan.clone().unwrap();
        assert_eq!(
            device.addresses,
            vec!["10.244.1.0/32".parse::<IpNet>().unwrap(), "fd00:10:244:1::/128".parse().unwrap()]
        );
        assert_eq!(device.mtu, 1450, "an IPv4 underlay");
        let n3 = &plan.peers["n3"];
        assert_eq!(n3.routes.len(), 2);
        let v6 = n3.routes.iter().find(|r| !r.destination.addr().is_ipv4()).unwrap();
        assert_eq!(
            (v6.gateway.to_string().as_str(), v6.device.as_str(), v6.onlink),
            ("fd00:10:244:3::", "weft.1", true)
        );
        assert_eq!(n3.neighbours.len(), 2);
        assert!(n3.neighbours.iter().all(|n| n.mac == vtep_mac("n3")));
        assert_eq!(
            n3.fdb.as_ref().unwrap().remote.to_string(),
            "198.51.100.13",
            "one FDB entry, the IPv4 VTEP"
        );
        assert_eq!((plan.routes().len(), plan.neighbours().len(), plan.fdb().len()), (4, 4, 2));
    }

    #[test]
    fn a_peer_of_the_other_underlay_family_is_reached_at_its_address_of_ours() {
        // n3 moved to an IPv6 underlay (public IP IPv6, its IPv4 one beside it); this node is
        // still on IPv4: its VTEP for n3 is n3's IPv4 address.
        let (node, config, mut leases) = dual();
        leases[2].public_ip = "2001:db8:3::13".parse().unwrap();
        leases[2].other_public_ip = Some("198.51.100.13".parse().unwrap());
        let plan = plan(&node, &NetworkConfig { backend: Backend::Vxlan, ..config }, &leases);
        assert_eq!(plan.peers["n3"].path, PeerPath::Vxlan);
        assert_eq!(plan.peers["n3"].fdb.as_ref().unwrap().remote.to_string(), "198.51.100.13");
    }

    #[test]
    fn a_lease_claiming_this_nodes_ipv6_subnet_is_no_peer() {
        let (node, config, mut leases) = dual();
        leases[1].subnet6 = node.subnet6;
        let plan = plan(&node, &NetworkConfig { backend: Backend::Vxlan, ..config }, &leases);
        assert!(!plan.peers.contains_key("n2"), "no route to our own pods through n2");
    }

    #[test]
    fn an_ipv4_only_peer_in_a_dual_network_is_reached_in_ipv4() {
        let (node, config, mut leases) = dual();
        leases[2].subnet6 = None; // an agent from before dual stack
        let plan = plan(&node, &NetworkConfig { backend: Backend::Vxlan, ..config }, &leases);
        assert_eq!(plan.peers["n3"].routes.len(), 1);
        assert_eq!(plan.peers["n3"].path, PeerPath::Vxlan);
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
