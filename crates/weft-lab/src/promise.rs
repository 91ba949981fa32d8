//! What each mode promises: which probes of the matrix must get through and which must
//! not, and why. Pure.

use crate::topology::{Mode, Topology, POD_CIDR, POD_CIDR6};
use serde::Serialize;
use weft_core::network::Family;

/// The kinds of path the matrix probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    PodToPodSameNode,
    PodToPodSameRack,
    PodToPodOtherRack,
    NodeToOwnPod,
    NodeToPodSameRack,
    NodeToPodOtherRack,
    PodToOutside,
    OutsideToPod,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::PodToPodSameNode => "pod → pod, same node",
            Category::PodToPodSameRack => "pod → pod, same rack",
            Category::PodToPodOtherRack => "pod → pod, other rack",
            Category::NodeToOwnPod => "node → its own pod",
            Category::NodeToPodSameRack => "node → pod, same rack",
            Category::NodeToPodOtherRack => "node → pod, other rack",
            Category::PodToOutside => "pod → outside client",
            Category::OutsideToPod => "outside client → pod",
        }
    }
}

/// Whether a category of probes must get through, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promise {
    pub reached: bool,
    pub why: String,
}

/// The lab's network design: the mode and how the outside world gets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Design {
    pub mode: Mode,
    pub gateways: u32,
    pub client: bool,
}

impl Design {
    pub fn of(topology: &Topology) -> Design {
        Design { mode: topology.mode, gateways: topology.gateways.len() as u32, client: topology.client }
    }
}

impl std::fmt::Display for Design {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} mode", self.mode.name())?;
        match (self.gateways, self.client) {
            (0, false) => Ok(()),
            (0, true) => write!(f, " with a client"),
            (1, client) => write!(f, " with a gateway{}", if client { " and a client" } else { "" }),
            (n, client) => write!(f, " with {n} gateways{}", if client { " and a client" } else { "" }),
        }
    }
}

/// What the design promises a category of probes in `family`: the same in both families
/// (every design carries IPv6 as it carries IPv4), said in each family's words.
pub fn promise(design: Design, category: Category, family: Family) -> Promise {
    let yes = |why: &str| Promise { reached: true, why: why.to_string() };
    let (finds, pod_cidr) = match family {
        Family::Ipv4 => ("ARP finds", POD_CIDR),
        Family::Ipv6 => ("neighbour discovery finds", POD_CIDR6),
    };
    match (design.mode, category) {
        (Mode::L2, Category::PodToPodSameNode | Category::NodeToOwnPod) => yes("on the node's bridge"),
        (Mode::L2, Category::PodToPodSameRack | Category::NodeToPodSameRack) => {
            yes(&format!("on one segment: {finds} the pod, no routes"))
        }
        (Mode::L2, Category::PodToPodOtherRack | Category::NodeToPodOtherRack) => {
            Promise { reached: false, why: "l2 mode has one segment".into() }
        }
        (Mode::L2, Category::PodToOutside) => yes("the segment's router is the pods' gateway"),
        (Mode::L2, Category::OutsideToPod) => {
            yes(&format!("pods live on the router's own segment: {finds} them"))
        }
        (_, Category::PodToPodSameNode | Category::NodeToOwnPod) => yes("the node routes to each pod's veth"),
        (Mode::Vxlan, Category::PodToPodSameRack | Category::NodeToPodSameRack) => {
            yes("through the VXLAN overlay")
        }
        (Mode::Route | Mode::Auto | Mode::Bgp, Category::PodToPodSameRack | Category::NodeToPodSameRack) => {
            yes("a direct route to the peer node on the shared segment")
        }
        (Mode::Route, Category::PodToPodOtherRack | Category::NodeToPodOtherRack) => Promise {
            reached: false,
            why: "route mode needs every peer on the node's own L2 segment; the router between racks \
                  has no route to pod subnets (vxlan, auto and bgp cross it)"
                .into(),
        },
        (Mode::Vxlan | Mode::Auto, Category::PodToPodOtherRack | Category::NodeToPodOtherRack) => {
            yes("through the VXLAN overlay, across the router")
        }
        (Mode::Bgp, Category::PodToPodOtherRack | Category::NodeToPodOtherRack) => {
            yes("through the router, which learned the peer's subnet by BGP")
        }
        (_, Category::PodToOutside) => yes("out through the node, masqueraded to the node's address"),
        (Mode::Bgp, Category::OutsideToPod) => yes("the router learned every node's subnet by BGP"),
        (_, Category::OutsideToPod) if design.client => {
            yes("the outside client runs the agent as a client and reaches pods over the overlay")
        }
        (_, Category::OutsideToPod) if design.gateways > 0 => {
            yes("the router learned the pod network from the gateways by BGP; they forward into the overlay")
        }
        (_, Category::OutsideToPod) => Promise {
            reached: false,
            why: format!(
                "the router has no route to the pod network {pod_cidr}: in this mode pods are \
                 reachable only from inside the cluster (bgp, gateways or a client open it)"
            ),
        },
    }
}

/// Who sends a probe: a pod, a node, or the outside client (by member name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub category: Category,
    /// The family probed (a dual-stack lab probes every pair in each).
    pub family: Family,
}

/// The matrix's probes: every pod and node to every pod (but itself), every pod to the
/// outside client, and the outside client to every pod; in each family the lab has.
pub fn probes(topology: &Topology) -> Vec<Probe> {
    let mut probes = Vec::new();
    for family in topology.ip_family.families() {
        probes.extend(probes_of_one_family(topology).into_iter().map(|(from, to, category)| Probe {
            from,
            to,
            category,
            family,
        }));
    }
    probes
}

fn probes_of_one_family(topology: &Topology) -> Vec<(String, String, Category)> {
    let rack_of = |node: &str| topology.node(node).map(|n| n.rack);
    let mut probes = Vec::new();
    for from in &topology.pods {
        for to in topology.pods.iter().filter(|p| p.name != from.name) {
            let category = if from.node == to.node {
                Category::PodToPodSameNode
            } else if rack_of(&from.node) == rack_of(&to.node) {
                Category::PodToPodSameRack
            } else {
                Category::PodToPodOtherRack
            };
            probes.push((from.name.clone(), to.name.clone(), category));
        }
        probes.push((from.name.clone(), "outside".into(), Category::PodToOutside));
    }
    for node in &topology.nodes {
        for to in &topology.pods {
            let category = if to.node == node.name {
                Category::NodeToOwnPod
            } else if rack_of(&to.node) == Some(node.rack) {
                Category::NodeToPodSameRack
            } else {
                Category::NodeToPodOtherRack
            };
            probes.push((node.name.clone(), to.name.clone(), category));
        }
    }
    for to in &topology.pods {
        probes.push(("outside".into(), to.name.clone(), Category::OutsideToPod));
    }
    probes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::LabSpec;

    #[test]
    fn route_mode_promises_no_crossing_of_racks_and_says_why() {
        let plain = |mode| Design { mode, gateways: 0, client: false };
        let p = promise(plain(Mode::Route), Category::PodToPodOtherRack, Family::Ipv4);
        assert!(!p.reached && p.why.contains("L2 segment"));
        assert!(promise(plain(Mode::Route), Category::PodToPodSameRack, Family::Ipv4).reached);
        assert!(promise(plain(Mode::Vxlan), Category::PodToPodOtherRack, Family::Ipv4).reached);
        assert!(promise(plain(Mode::Auto), Category::NodeToPodOtherRack, Family::Ipv4).reached);
        assert!(promise(plain(Mode::Bgp), Category::PodToPodOtherRack, Family::Ipv4).reached);
        for mode in Mode::ALL {
            assert!(promise(plain(mode), Category::PodToOutside, Family::Ipv4).reached);
            assert_eq!(
                promise(plain(mode), Category::OutsideToPod, Family::Ipv4).reached,
                matches!(mode, Mode::Bgp | Mode::L2)
            );
        }
    }

    #[test]
    fn gateways_and_clients_open_the_cluster_to_the_outside() {
        let gateways = Design { mode: Mode::Vxlan, gateways: 2, client: false };
        assert!(promise(gateways, Category::OutsideToPod, Family::Ipv4).why.contains("gateways by BGP"));
        let client = Design { mode: Mode::Auto, gateways: 0, client: true };
        assert!(promise(client, Category::OutsideToPod, Family::Ipv4).reached);
        let l2 = Design { mode: Mode::L2, gateways: 0, client: false };
        assert!(promise(l2, Category::PodToPodSameRack, Family::Ipv6).why.contains("neighbour discovery"));
        let closed = promise(
            Design { mode: Mode::Route, gateways: 0, client: false },
            Category::OutsideToPod,
            Family::Ipv6,
        );
        assert!(!closed.reached && closed.why.contains("fd00:10:244::/56"), "{}", closed.why);
        assert_eq!(gateways.to_string(), "vxlan mode with 2 gateways");
        assert_eq!(client.to_string(), "auto mode with a client");
    }

    #[test]
    fn probes_cover_the_matrix_once_each() {
        let topology = Topology::of(&LabSpec::new("x", Mode::Auto));
        let probes = probes(&topology);
        let count = |c: Category| probes.iter().filter(|p| p.category == c).count();
        // 8 pods on 4 nodes, 2 per rack
        assert_eq!(count(Category::PodToPodSameNode), 8);
        assert_eq!(count(Category::PodToPodSameRack), 16);
        assert_eq!(count(Category::PodToPodOtherRack), 32);
        assert_eq!(count(Category::NodeToOwnPod), 8);
        assert_eq!(count(Category::NodeToPodSameRack), 8);
        assert_eq!(count(Category::NodeToPodOtherRack), 16);
        assert_eq!(count(Category::PodToOutside), 8);
        assert_eq!(count(Category::OutsideToPod), 8);
        assert!(!probes.iter().any(|p| p.from == p.to));
        assert!(probes.iter().all(|p| p.family == Family::Ipv4));
        let mut dual = LabSpec::new("x", Mode::Auto);
        dual.ip_family = crate::topology::IpFamily::Dual;
        let both = super::probes(&Topology::of(&dual));
        assert_eq!(both.len(), 2 * probes.len());
        assert_eq!(both.iter().filter(|p| p.family == Family::Ipv6).count(), probes.len());
        let n1_to_n3 = probes.iter().find(|p| p.from == "n1-p1" && p.to == "n3-p1").unwrap();
        assert_eq!(n1_to_n3.category, Category::PodToPodOtherRack);
    }
}
