//! What a lab is made of, worked out from its spec alone: racks, nodes, pods, gateways, etcd
//! members, the router and the outside client, with their namespaces and addresses. Pure, so
//! `down` can name everything a lab may have made even when `up` died half-way.
//!
//! Rack `r` is `198.18.r.0/24`: the router at `.1`, nodes from `.11` (at most 64: up to
//! `.74`), etcd member `i` at `.100+i` (`.101`…`.105`, on rack `(i-1) % racks + 1`), gateway
//! `g` at `.200+g` (`.201`…`.204`). In l2 mode the upper half (`.128`…) is the pods'.
//!
//! A dual-stack lab (`--ip-family dual`) gives rack `r` the segment `2001:db8:r::/64` too,
//! each machine the IPv6 address with the same last number (`198.18.1.11` is also
//! `2001:db8:1::11`), the outside `2001:db8:ff::/64`, and pods a second address from
//! `fd00:10:244::/56` (l2: from the rack's IPv6 segment). The underlay stays IPv4 unless
//! `--underlay ipv6`. An IPv6-only lab (`--ip-family ipv6`) has the IPv6 addresses alone.

use crate::LabError;
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};
use weft_core::network::{Backend, Family};

/// Every lab namespace starts with this, so `down --all` finds them all.
pub const NETNS_PREFIX: &str = "weftlab-";

/// The namespaces of lab `lab` all start with this. The dot, which a lab name cannot hold,
/// keeps lab `a`'s namespaces apart from lab `a-n1`'s.
pub fn netns_prefix(lab: &str) -> String {
    format!("{NETNS_PREFIX}{lab}.")
}

/// The namespace of a lab's member: `weftlab-demo.n1-p1`.
pub fn netns_name(lab: &str, member: &str) -> String {
    format!("{}{member}", netns_prefix(lab))
}
/// The pods' network in every lab.
pub const POD_CIDR: &str = "10.244.0.0/16";
/// The pods' IPv6 network in a dual-stack lab.
pub const POD_CIDR6: &str = "fd00:10:244::/56";
/// The outside's IPv6 segment, client and router, in a dual-stack lab.
pub const OUTSIDE_SUBNET6: &str = "2001:db8:ff::/64";
pub const OUTSIDE_CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x10);
pub const OUTSIDE_GATEWAY_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
/// L2, dual stack: nodes lease /80 slices of the rack's IPv6 segment's upper half.
pub const L2_SLICE_LEN6: u8 = 80;

/// The IPv6 twin of a lab machine's IPv4 address: `198.18.r.x` is `2001:db8:r::x` (the
/// last number written in hex as it reads in decimal, so `.11` is `::11`).
pub fn ipv6_of(ip: Ipv4Addr) -> Ipv6Addr {
    let [_, _, rack, host] = ip.octets();
    let twin = u16::from_str_radix(&host.to_string(), 16).expect("decimal digits read as hex");
    Ipv6Addr::new(0x2001, 0xdb8, u16::from(rack), 0, 0, 0, 0, twin)
}

/// Which address families a lab's pods (and machines) have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    #[default]
    Ipv4,
    Ipv6,
    Dual,
}

impl IpFamily {
    pub fn name(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
            IpFamily::Dual => "dual",
        }
    }

    /// The families pods have, IPv4 first.
    pub fn families(self) -> Vec<Family> {
        match self {
            IpFamily::Ipv4 => vec![Family::Ipv4],
            IpFamily::Ipv6 => vec![Family::Ipv6],
            IpFamily::Dual => vec![Family::Ipv4, Family::Ipv6],
        }
    }

    pub fn has_ipv6(self) -> bool {
        self != IpFamily::Ipv4
    }

    pub fn has_ipv4(self) -> bool {
        self != IpFamily::Ipv6
    }
}
/// The outside world: a client behind the router, on a documentation range.
pub const OUTSIDE_SUBNET: &str = "203.0.113.0/24";
pub const OUTSIDE_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const OUTSIDE_GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Ports of the lab's etcd members, on each member's own address.
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// etcd member `i` (1-based) is at `.ETCD_HOST_BASE + i` of its rack: `.101`…`.105`, in the
/// segment's lower half, which nodes (`.11`…`.74`), the router (`.1`) and gateways
/// (`.201`…`.204`) leave free and l2 mode keeps out of the pods' slices.
pub const ETCD_HOST_BASE: u8 = 100;
/// How many members an etcd cluster of the lab may have: odd, so a majority is clear.
pub const ETCD_MEMBER_COUNTS: [u32; 3] = [1, 3, 5];
/// The physical network's AS (the router's), and the cluster's (every node and gateway).
pub const ROUTER_ASN: u32 = 65000;
pub const CLUSTER_ASN: u32 = 65100;
pub const MAX_GATEWAYS: u32 = 4;

/// How the lab's network carries pods' traffic between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Direct routes to peers on the same segment; nothing crosses the router.
    Route,
    /// Every peer through the VXLAN overlay.
    Vxlan,
    /// Routes within a rack, VXLAN across racks.
    Auto,
    /// Every node announces its subnet to the router by BGP; no overlay.
    Bgp,
    /// Pods live on the rack's own segment (one rack): no routes, no overlay.
    L2,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Route, Mode::Vxlan, Mode::Auto, Mode::Bgp, Mode::L2];

    pub fn name(self) -> &'static str {
        self.backend().name()
    }

    pub fn backend(self) -> Backend {
        match self {
            Mode::Route => Backend::Route,
            Mode::Vxlan => Backend::Vxlan,
            Mode::Auto => Backend::Auto,
            Mode::Bgp => Backend::Bgp,
            Mode::L2 => Backend::L2,
        }
    }

    /// Whether the mode has an overlay that gateways and clients can join.
    pub fn has_overlay(self) -> bool {
        matches!(self, Mode::Vxlan | Mode::Auto)
    }
}

/// What runs BGP on the lab's router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    /// BIRD 2 (Debian's bird2).
    #[default]
    Bird,
    /// FRR's bgpd with zebra (Debian's frr).
    Frr,
}

impl RouterKind {
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file in the lab's directory, shared by its agents.
    Sqlite,
    /// A real etcd cluster: `etcd_members` members, each in a namespace of its own on a rack.
    Etcd,
}

/// What `weft lab up` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabSpec {
    pub name: String,
    pub mode: Mode,
    pub racks: u32,
    pub nodes_per_rack: u32,
    pub pods_per_node: u32,
    pub store: StoreKind,
    /// Seconds an agent's lease lives without renewal.
    pub lease_ttl: u64,
    /// Seconds between the agents' full resyncs.
    pub resync: u64,
    /// Start every node's agent (tests that start them one by one say no).
    pub start_agents: bool,
    /// Gateway machines joining the overlay and announcing the cluster CIDR to the router.
    #[serde(default)]
    pub gateways: u32,
    /// The outside client runs the agent as a client, joining the overlay.
    #[serde(default)]
    pub client: bool,
    /// What speaks BGP on the router (when anything does).
    #[serde(default)]
    pub router: RouterKind,
    /// Nodes and gateways share the router's AS (iBGP) instead of their own (eBGP).
    #[serde(default)]
    pub ibgp: bool,
    /// Seconds the router keeps a stopped agent's routes (BGP graceful restart; 0: off).
    #[serde(default)]
    pub graceful_restart: u16,
    /// Members of the etcd cluster (1, 3 or 5; more than 1 only with the etcd store).
    #[serde(default = "one")]
    pub etcd_members: u32,
    /// Every BGP session signed with TCP-MD5, with a password the lab makes (it lives in the
    /// lab's `bgp-passwords` file, mode 600, never in the spec or an argument).
    #[serde(default)]
    pub bgp_password: bool,
    /// The families of the lab's pods and machines.
    #[serde(default)]
    pub ip_family: IpFamily,
    /// What carries the overlay (VXLAN) between machines: their IPv4 addresses, or (dual
    /// stack) their IPv6 ones; the agents' public IP is of this family.
    #[serde(default = "ipv4")]
    pub underlay: Family,
}

fn ipv4() -> Family {
    Family::Ipv4
}

fn one() -> u32 {
    1
}

impl LabSpec {
    /// The default lab of a mode: 2 racks × 2 nodes × 2 pods; l2 mode's is one segment of
    /// 3 nodes.
    pub fn new(name: &str, mode: Mode) -> LabSpec {
        let l2 = mode == Mode::L2;
        LabSpec {
            name: name.to_string(),
            mode,
            racks: if l2 { 1 } else { 2 },
            nodes_per_rack: if l2 { 3 } else { 2 },
            pods_per_node: 2,
            store: StoreKind::Sqlite,
            lease_ttl: 30,
            resync: 2,
            start_agents: true,
            gateways: 0,
            client: false,
            router: RouterKind::Bird,
            ibgp: false,
            graceful_restart: 0,
            etcd_members: 1,
            bgp_password: false,
            ip_family: IpFamily::Ipv4,
            underlay: Family::Ipv4,
        }
    }

    /// The family of the machines' public IPs, and so of the overlay's underlay: IPv6 in an
    /// IPv6-only lab, else as asked.
    pub fn underlay_family(&self) -> Family {
        if self.ip_family == IpFamily::Ipv6 {
            Family::Ipv6
        } else {
            self.underlay
        }
    }

    /// The AS of the cluster's speakers: the router's own under iBGP.
    pub fn cluster_asn(&self) -> u32 {
        if self.ibgp {
            ROUTER_ASN
        } else {
            CLUSTER_ASN
        }
    }

    /// Whether the router runs a BGP daemon: it learns node subnets or the cluster CIDR.
    pub fn router_speaks_bgp(&self) -> bool {
        self.mode == Mode::Bgp || self.gateways > 0
    }

    pub fn validate(&self) -> Result<(), LabError> {
        validate_name(&self.name)?;
        let invalid = |what: String| Err(LabError::Invalid(what));
        if !(1..=MAX_RACKS).contains(&self.racks) {
            return invalid(format!("--racks {}: between 1 and {MAX_RACKS}", self.racks));
        }
        if !(1..=MAX_NODES_PER_RACK).contains(&self.nodes_per_rack) {
            return invalid(format!(
                "--nodes-per-rack {}: between 1 and {MAX_NODES_PER_RACK}",
                self.nodes_per_rack
            ));
        }
        if self.pods_per_node > MAX_PODS_PER_NODE {
            return invalid(format!("--pods-per-node {}: at most {MAX_PODS_PER_NODE}", self.pods_per_node));
        }
        if self.racks * self.nodes_per_rack > 250 {
            return invalid("at most 250 nodes: each leases a /24 of the pods' /16".into());
        }
        if self.racks * self.nodes_per_rack * self.pods_per_node > MAX_PODS {
            return invalid(format!("at most {MAX_PODS} pods in a lab"));
        }
        if self.mode == Mode::L2 && self.racks != 1 {
            return invalid(format!(
                "l2 mode puts nodes and pods on one segment: --racks 1, not {} (pods of several \
                 segments need routes: route, bgp or auto)",
                self.racks
            ));
        }
        if self.mode == Mode::L2 && (self.nodes_per_rack > L2_MAX_NODES || self.pods_per_node > L2_MAX_PODS) {
            return invalid(format!(
                "l2 mode slices the segment's upper half into {L2_MAX_NODES} node slices (/28): at most \
                 {L2_MAX_NODES} nodes and {L2_MAX_PODS} pods per node"
            ));
        }
        if (self.gateways > 0 || self.client) && !self.mode.has_overlay() {
            return invalid(format!(
                "gateways and clients join the overlay: use --mode vxlan or auto, not {}",
                self.mode.name()
            ));
        }
        if self.gateways > MAX_GATEWAYS {
            return invalid(format!("--gateways {}: at most {MAX_GATEWAYS}", self.gateways));
        }
        if !ETCD_MEMBER_COUNTS.contains(&self.etcd_members) {
            return invalid(format!(
                "--etcd-members {}: 1, 3 or 5 (an odd number, so that a majority is clear)",
                self.etcd_members
            ));
        }
        if self.etcd_members > 1 && self.store != StoreKind::Etcd {
            return invalid(format!("--etcd-members {} needs --store etcd", self.etcd_members));
        }
        if self.ibgp && !self.router_speaks_bgp() {
            return invalid(format!(
                "--ibgp: nothing speaks BGP in {} mode without gateways (use --mode bgp, or --gateways)",
                self.mode.name()
            ));
        }
        if self.bgp_password && !self.router_speaks_bgp() {
            return invalid(format!(
                "--bgp-password: nothing speaks BGP in {} mode without gateways (use --mode bgp, or --gateways)",
                self.mode.name()
            ));
        }
        if self.graceful_restart > 0 && !self.router_speaks_bgp() {
            return invalid(format!(
                "--graceful-restart: nothing speaks BGP in {} mode without gateways (use --mode bgp, or --gateways)",
                self.mode.name()
            ));
        }
        if self.router == RouterKind::Frr && !self.router_speaks_bgp() {
            return invalid(format!(
                "--router frr: the router speaks BGP only in bgp mode or with --gateways, not in {} mode",
                self.mode.name()
            ));
        }
        if self.underlay == Family::Ipv6 && self.ip_family == IpFamily::Ipv4 {
            return invalid(
                "--underlay ipv6: the machines need IPv6 addresses (--ip-family dual or ipv6)".into(),
            );
        }
        if self.ip_family == IpFamily::Ipv6 {
            let refuse =
                |what: &str, why: &str| invalid(format!("--ip-family ipv6 with {what}: not yet; {why}"));
            if self.store == StoreKind::Etcd {
                return refuse("--store etcd", "the lab's etcd members listen on IPv4 (use --store sqlite)");
            }
        }
        if self.resync == 0 {
            return invalid("--resync 0: at least 1 s".into());
        }
        if self.lease_ttl < 3 {
            return invalid(format!("lease TTL {} s: at least 3", self.lease_ttl));
        }
        Ok(())
    }
}

// Small enough that `check` (a thread per source, a probe per pair) stays quick.
const MAX_RACKS: u32 = 16;
const MAX_NODES_PER_RACK: u32 = 64;
const MAX_PODS_PER_NODE: u32 = 64;
const MAX_PODS: u32 = 256;
const MAX_NAME_LEN: usize = 24;
const L2_MAX_NODES: u32 = 8;
const L2_MAX_PODS: u32 = 12;
/// L2: nodes lease /28 slices of the segment's upper half; the lower half (router, nodes)
/// is reserved.
pub const L2_SLICE_LEN: u8 = 28;

/// Lab names become namespace and directory names: lower-case letters, digits and dashes.
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let good = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if good {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "lab name {name:?}: 1 to {MAX_NAME_LEN} lower-case letters, digits and dashes, not starting with a dash"
        )))
    }
}

/// One L2 segment: a bridge in a namespace of its own, the router's port on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rack {
    /// 1-based.
    pub number: u32,
    pub name: String,
    pub netns: String,
    pub subnet: Ipv4Net,
    /// Dual stack: the rack's IPv6 segment.
    pub subnet6: Option<Ipv6Net>,
    /// The router's address on this segment, the nodes' default gateway.
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    /// The rack's number.
    pub rack: u32,
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// A machine without pods that joins the overlay and forwards between it and the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gateway {
    pub name: String,
    pub rack: u32,
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// A member of the lab's etcd cluster: a machine of its own on a rack, like a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdHost {
    /// `etcd1`, `etcd2`, …: also its name in the etcd cluster.
    pub name: String,
    pub rack: u32,
    pub netns: String,
    pub ip: Ipv4Addr,
}

impl EtcdHost {
    /// `ip:2379`, where clients reach it.
    pub fn client_endpoint(&self) -> String {
        format!("{}:{ETCD_CLIENT_PORT}", self.ip)
    }

    pub fn client_url(&self) -> String {
        format!("http://{}", self.client_endpoint())
    }

    /// `http://ip:2380`, where the other members reach it.
    pub fn peer_url(&self) -> String {
        format!("http://{}:{ETCD_PEER_PORT}", self.ip)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub name: String,
    pub node: String,
    pub netns: String,
}

/// Everything a lab consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub name: String,
    pub mode: Mode,
    pub ip_family: IpFamily,
    pub router_netns: String,
    pub outside_netns: String,
    pub racks: Vec<Rack>,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub gateways: Vec<Gateway>,
    /// The etcd cluster's members (none with the sqlite store).
    pub etcd: Vec<EtcdHost>,
    /// The outside client runs the agent as a client.
    pub client: bool,
}

/// A lab's member as `exec` and the matrix name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    Router,
    Outside,
    Rack(&'a Rack),
    Node(&'a Node),
    Gateway(&'a Gateway),
    Etcd(&'a EtcdHost),
    Pod(&'a Pod),
}

impl Topology {
    pub fn of(spec: &LabSpec) -> Topology {
        let ns = |member: &str| netns_name(&spec.name, member);
        let racks: Vec<Rack> = (1..=spec.racks)
            .map(|number| Rack {
                number,
                name: format!("rack{number}"),
                netns: ns(&format!("rack{number}")),
                subnet: Ipv4Net::new(Ipv4Addr::new(198, 18, number as u8, 0), 24).expect("/24"),
                subnet6: spec.ip_family.has_ipv6().then(|| {
                    Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, number as u16, 0, 0, 0, 0, 0), 64).expect("/64")
                }),
                gateway: Ipv4Addr::new(198, 18, number as u8, 1),
            })
            .collect();
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        // Numbered rack by rack: n1, n2 in rack 1, n3, n4 in rack 2, ...
        for rack in &racks {
            for slot in 1..=spec.nodes_per_rack {
                let name = format!("n{}", nodes.len() + 1);
                for p in 1..=spec.pods_per_node {
                    let pod = format!("{name}-p{p}");
                    pods.push(Pod { netns: ns(&pod), node: name.clone(), name: pod });
                }
                let ip = Ipv4Addr::new(198, 18, rack.number as u8, 10 + slot as u8);
                nodes.push(Node { netns: ns(&name), rack: rack.number, ip, name });
            }
        }
        // Gateways go round the racks: g1 in rack 1, g2 in rack 2, ...
        let gateways = (1..=spec.gateways)
            .map(|g| {
                let rack = (g - 1) % spec.racks + 1;
                let name = format!("g{g}");
                Gateway {
                    netns: ns(&name),
                    name,
                    rack,
                    ip: Ipv4Addr::new(198, 18, rack as u8, 200 + g as u8),
                }
            })
            .collect();
        // etcd members go round the racks too: etcd1 in rack 1, etcd2 in rack 2, ...
        let etcd_members = if spec.store == StoreKind::Etcd { spec.etcd_members } else { 0 };
        let etcd = (1..=etcd_members)
            .map(|i| {
                let rack = (i - 1) % spec.racks + 1;
                let name = format!("etcd{i}");
                EtcdHost {
                    netns: ns(&name),
                    name,
                    rack,
                    ip: Ipv4Addr::new(198, 18, rack as u8, ETCD_HOST_BASE + i as u8),
                }
            })
            .collect();
        Topology {
            name: spec.name.clone(),
            mode: spec.mode,
            ip_family: spec.ip_family,
            gateways,
            etcd,
            client: spec.client,
            router_netns: ns("router"),
            outside_netns: ns("outside"),
            racks,
            nodes,
            pods,
        }
    }

    /// A machine's IPv6 address beside its IPv4 one, in a lab that has IPv6.
    pub fn ipv6(&self, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        self.ip_family.has_ipv6().then(|| ipv6_of(ip))
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn rack(&self, number: u32) -> &Rack {
        &self.racks[number as usize - 1]
    }

    pub fn member(&self, name: &str) -> Option<Member<'_>> {
        match name {
            "router" => Some(Member::Router),
            "outside" => Some(Member::Outside),
            _ => self
                .racks
                .iter()
                .find(|r| r.name == name)
                .map(Member::Rack)
                .or_else(|| self.node(name).map(Member::Node))
                .or_else(|| self.gateways.iter().find(|g| g.name == name).map(Member::Gateway))
                .or_else(|| self.etcd_member(name).map(Member::Etcd))
                .or_else(|| self.pods.iter().find(|p| p.name == name).map(Member::Pod)),
        }
    }

    pub fn netns_of<'a>(&'a self, member: Member<'a>) -> &'a str {
        match member {
            Member::Router => &self.router_netns,
            Member::Outside => &self.outside_netns,
            Member::Rack(rack) => &rack.netns,
            Member::Node(node) => &node.netns,
            Member::Gateway(gateway) => &gateway.netns,
            Member::Etcd(etcd) => &etcd.netns,
            Member::Pod(pod) => &pod.netns,
        }
    }

    pub fn etcd_member(&self, name: &str) -> Option<&EtcdHost> {
        self.etcd.iter().find(|e| e.name == name)
    }

    /// Every namespace of the lab, in the order to remove them: pods, nodes, gateways, etcd
    /// members, racks, router, outside client.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.pods.iter().map(|p| p.netns.clone()).collect();
        all.extend(self.nodes.iter().map(|n| n.netns.clone()));
        all.extend(self.gateways.iter().map(|g| g.netns.clone()));
        all.extend(self.etcd.iter().map(|e| e.netns.clone()));
        all.extend(self.racks.iter().map(|r| r.netns.clone()));
        all.push(self.router_netns.clone());
        all.push(self.outside_netns.clone());
        all
    }

    /// Every member's name, for error messages.
    pub fn member_names(&self) -> Vec<String> {
        let mut all = vec!["router".to_string(), "outside".to_string()];
        all.extend(self.racks.iter().map(|r| r.name.clone()));
        all.extend(self.nodes.iter().map(|n| n.name.clone()));
        all.extend(self.gateways.iter().map(|g| g.name.clone()));
        all.extend(self.etcd.iter().map(|e| e.name.clone()));
        all.extend(self.pods.iter().map(|p| p.name.clone()));
        all
    }

    /// Where the agents find an etcd store: every member's client endpoint,
    /// `etcd://198.18.1.101:2379,198.18.2.102:2379,...` (None without etcd).
    pub fn etcd_url(&self) -> Option<String> {
        let endpoints: Vec<String> = self.etcd.iter().map(EtcdHost::client_endpoint).collect();
        (!endpoints.is_empty()).then(|| format!("etcd://{}", endpoints.join(",")))
    }

    /// etcd's `--initial-cluster`: `etcd1=http://198.18.1.101:2380,...`.
    pub fn etcd_initial_cluster(&self) -> String {
        self.etcd.iter().map(|e| format!("{}={}", e.name, e.peer_url())).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machines_ipv6_address_reads_as_its_ipv4_one() {
        assert_eq!(ipv6_of(Ipv4Addr::new(198, 18, 1, 11)).to_string(), "2001:db8:1::11");
        assert_eq!(ipv6_of(Ipv4Addr::new(198, 18, 12, 201)).to_string(), "2001:db8:c::201");
        assert_eq!(ipv6_of(Ipv4Addr::new(198, 18, 2, 1)).to_string(), "2001:db8:2::1");
        let mut spec = LabSpec::new("x", Mode::Auto);
        assert_eq!(Topology::of(&spec).racks[0].subnet6, None);
        spec.ip_family = IpFamily::Dual;
        let topology = Topology::of(&spec);
        assert_eq!(topology.racks[1].subnet6.unwrap().to_string(), "2001:db8:2::/64");
        assert_eq!(topology.ipv6(topology.nodes[2].ip).unwrap().to_string(), "2001:db8:2::11");
        spec.ip_family = IpFamily::Ipv6;
        spec.store = StoreKind::Etcd;
        assert!(spec.validate().unwrap_err().to_string().contains("not yet"));
        spec.store = StoreKind::Sqlite;
        spec.mode = Mode::Vxlan;
        assert!(spec.validate().is_ok());
        assert_eq!(spec.underlay_family(), Family::Ipv6);
    }

    #[test]
    fn default_lab_is_two_racks_of_two_nodes_of_two_pods() {
        let topology = Topology::of(&LabSpec::new("demo", Mode::Auto));
        assert_eq!(topology.racks.len(), 2);
        assert_eq!(topology.racks[1].subnet.to_string(), "198.18.2.0/24");
        assert_eq!(topology.racks[1].gateway, Ipv4Addr::new(198, 18, 2, 1));
        let nodes: Vec<(&str, u32, String)> =
            topology.nodes.iter().map(|n| (n.name.as_str(), n.rack, n.ip.to_string())).collect();
        assert_eq!(
            nodes,
            [
                ("n1", 1, "198.18.1.11".to_string()),
                ("n2", 1, "198.18.1.12".to_string()),
                ("n3", 2, "198.18.2.11".to_string()),
                ("n4", 2, "198.18.2.12".to_string()),
            ]
        );
        assert_eq!(topology.pods.len(), 8);
        assert_eq!(topology.pods[2].name, "n2-p1");
        assert_eq!(topology.pods[2].netns, "weftlab-demo.n2-p1");
        assert_eq!(topology.router_netns, "weftlab-demo.router");
        assert!(topology.etcd.is_empty() && topology.etcd_url().is_none(), "no etcd on sqlite");
    }

    #[test]
    fn etcd_members_go_round_the_racks_on_addresses_of_their_own() {
        let spec = LabSpec {
            store: StoreKind::Etcd,
            etcd_members: 5,
            nodes_per_rack: MAX_NODES_PER_RACK,
            gateways: MAX_GATEWAYS,
            ..LabSpec::new("demo", Mode::Vxlan)
        };
        let topology = Topology::of(&spec);
        let members: Vec<(&str, u32, String, &str)> = topology
            .etcd
            .iter()
            .map(|e| (e.name.as_str(), e.rack, e.ip.to_string(), e.netns.as_str()))
            .collect();
        assert_eq!(
            members,
            [
                ("etcd1", 1, "198.18.1.101".to_string(), "weftlab-demo.etcd1"),
                ("etcd2", 2, "198.18.2.102".to_string(), "weftlab-demo.etcd2"),
                ("etcd3", 1, "198.18.1.103".to_string(), "weftlab-demo.etcd3"),
                ("etcd4", 2, "198.18.2.104".to_string(), "weftlab-demo.etcd4"),
                ("etcd5", 1, "198.18.1.105".to_string(), "weftlab-demo.etcd5"),
            ]
        );
        // No address of a member is anyone else's, even with the most nodes and gateways.
        let mut taken: Vec<Ipv4Addr> = topology.nodes.iter().map(|n| n.ip).collect();
        taken.extend(topology.gateways.iter().map(|g| g.ip));
        taken.extend(topology.racks.iter().map(|r| r.gateway));
        assert!(topology.etcd.iter().all(|e| !taken.contains(&e.ip)), "{taken:?}");
        // ... nor a pod's in l2 mode, whose pods lease the upper half of rack 1.
        assert!(topology.etcd.iter().all(|e| e.ip.octets()[3] < 128));
        assert_eq!(
            topology.etcd_url().unwrap(),
            "etcd://198.18.1.101:2379,198.18.2.102:2379,198.18.1.103:2379,198.18.2.104:2379,198.18.1.105:2379"
        );
        assert!(topology.etcd_initial_cluster().starts_with(
            "etcd1=http://198.18.1.101:2380,etcd2=http://198.18.2.102:2380,etcd3=http://198.18.1.103:2380"
        ));
        // down removes them: they are namespaces of the lab, and members for exec.
        let namespaces = topology.namespaces();
        for i in 1..=5 {
            assert!(namespaces.contains(&format!("weftlab-demo.etcd{i}")), "{namespaces:?}");
        }
        assert!(topology.member_names().contains(&"etcd5".to_string()));
        assert!(matches!(topology.member("etcd2"), Some(Member::Etcd(e)) if e.rack == 2));
        // One member is a member too, in rack 1, on the same code path.
        let one = Topology::of(&LabSpec { etcd_members: 1, racks: 1, ..spec });
        assert_eq!(one.etcd_url().unwrap(), "etcd://198.18.1.101:2379");
        assert!(one.namespaces().contains(&"weftlab-demo.etcd1".to_string()));
    }

    #[test]
    fn every_namespace_is_prefixed_and_listed_once() {
        let topology = Topology::of(&LabSpec::new("x", Mode::Route));
        let all = topology.namespaces();
        assert_eq!(all.len(), 8 + 4 + 2 + 2);
        assert!(all.iter().all(|n| n.starts_with("weftlab-x.")));
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        // pods go before their nodes, so nothing is left pointing into a removed namespace
        assert!(all[0].ends_with(".n1-p1") && all.last().unwrap().ends_with(".outside"));
    }

    #[test]
    fn members_are_found_by_name() {
        let topology = Topology::of(&LabSpec::new("x", Mode::Route));
        assert!(matches!(topology.member("n3"), Some(Member::Node(n)) if n.rack == 2));
        assert!(matches!(topology.member("n3-p2"), Some(Member::Pod(p)) if p.node == "n3"));
        assert!(matches!(topology.member("rack2"), Some(Member::Rack(_))));
        assert_eq!(topology.member("router").map(|m| topology.netns_of(m)), Some("weftlab-x.router"));
        assert!(topology.member("n9").is_none());
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let mut spec = LabSpec::new("Bad Name", Mode::Vxlan);
        assert!(spec.validate().unwrap_err().to_string().contains("lower-case"));
        spec.name = "ok".into();
        spec.racks = 0;
        assert!(spec.validate().unwrap_err().to_string().contains("--racks 0"));
        spec.racks = 16;
        spec.nodes_per_rack = 20;
        assert!(spec.validate().unwrap_err().to_string().contains("at most 250 nodes"));
        spec.nodes_per_rack = 2;
        assert!(spec.validate().is_ok());
        spec.etcd_members = 3;
        assert!(spec.validate().unwrap_err().to_string().contains("--etcd-members 3 needs --store etcd"));
        spec.store = StoreKind::Etcd;
        assert!(spec.validate().is_ok());
        spec.etcd_members = 2;
        assert!(spec.validate().unwrap_err().to_string().contains("--etcd-members 2: 1, 3 or 5"));
        spec.etcd_members = 1;
        assert!(validate_name("-x").is_err() && validate_name(&"a".repeat(25)).is_err());
    }
}
