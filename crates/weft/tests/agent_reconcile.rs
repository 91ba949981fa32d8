//! The agent's reconciler against real kernels: two node namespaces on one segment, each
//! reconciled to what `weft_core::plan` says for the cluster's leases, reach each other's
//! pod subnet. Reconciling again changes nothing; a route deleted by hand comes back; state
//! weft does not own is never touched; a departed peer's entries go, by a delta pass that
//! reads nothing. Needs root.

mod support;

use support::*;
use weft_agent::{reconcile, NetlinkKernel};
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, NetworkConfig};
use weft_core::plan::{plan, LocalNode, Plan};
use weft_kernel::{netns, NetNs};

struct TestNode {
    ns_name: String,
    ns: NetNs,
    local: LocalNode,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = netns::delete_named(&self.ns_name);
    }
}

impl TestNode {
    fn lease(&self) -> Lease {
        Lease {
            node: self.local.name.clone(),
            subnet: self.local.subnet.unwrap(),
            public_ip: self.local.public_ip,
            backend: Backend::Vxlan,
            vtep_mac: Some(vtep_mac(&self.local.name)),
            subnet6: None,
            other_public_ip: None,
        }
    }

    fn ip(&self, args: &[&str]) -> String {
        exec_in(&self.ns_name, "ip", args, true)
    }

    fn kernel(&self) -> NetlinkKernel {
        NetlinkKernel::open_in(&self.ns).unwrap()
    }

    fn reconcile(&self, plan: &Plan) -> usize {
        reconcile::full(&mut self.kernel(), plan).unwrap().count()
    }

    /// An address of the node's pod subnet that answers (a pod's, as far as pings go).
    fn pod_address(&self) -> String {
        let subnet = self.local.subnet.unwrap().network().to_string();
        format!("{}.9", subnet.rsplit_once('.').unwrap().0)
    }
}

/// Two nodes on 192.0.2.0/24, joined by a veth, each with an address of its pod subnet.
fn two_nodes() -> Vec<TestNode> {
    let prefix = unique_prefix();
    let nodes: Vec<TestNode> = (1..=2)
        .map(|n| {
            let ns_name = format!("{prefix}n{n}");
            let ns = netns::create_named(&ns_name).unwrap();
            TestNode {
                ns_name,
                ns,
                local: LocalNode {
                    name: format!("node-{n}"),
                    subnet: Some(format!("10.244.{n}.0/24").parse().unwrap()),
                    subnet6: None,
                    public_ip: format!("192.0.2.1{n}").parse().unwrap(),
                    other_public_ip: None,
                    uplink: "up0".into(),
                    uplink_mtu: 1500,
                    connected: vec!["192.0.2.0/24".parse().unwrap()],
                },
            }
        })
        .collect();
    nodes[0].ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", &nodes[1].ns_name]);
    for node in &nodes {
        node.ip(&["addr", "add", &format!("{}/24", node.local.public_ip), "dev", "up0"]);
        node.ip(&["link", "set", "up0", "up"]);
        node.ip(&["addr", "add", &format!("{}/32", node.pod_address()), "dev", "lo"]);
    }
    nodes
}

fn config(backend: Backend) -> NetworkConfig {
    NetworkConfig { backend, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) }
}

fn converge(nodes: &[TestNode], config: &NetworkConfig) -> Vec<Plan> {
    let leases: Vec<Lease> = nodes.iter().map(TestNode::lease).collect();
    nodes
        .iter()
        .map(|node| {
            let planned = plan(&node.local, config, &leases);
            assert!(node.reconcile(&planned) > 0, "a fresh node needs changes");
            planned
        })
        .collect()
}

#[test]
fn vxlan_nodes_converge_stay_put_and_repair_drift() {
    let nodes = two_nodes();
    let plans = converge(&nodes, &config(Backend::Vxlan));
    let (a, b) = (&nodes[0], &nodes[1]);
    assert!(pings(&a.ns_name, &b.pod_address()), "no way through the tunnel");
    assert!(a.ip(&["-d", "link", "show", "weft.1"]).contains("nolearning"));

    // as planned already: nothing changes
    assert_eq!(a.reconcile(&plans[0]), 0);

    // state weft does not own stays as it is
    a.ip(&["route", "add", "203.0.113.0/24", "via", "192.0.2.1", "proto", "static"]);
    a.ip(&["neigh", "add", "192.0.2.77", "lladdr", "02:00:00:00:00:77", "dev", "up0", "nud", "permanent"]);
    // drift: the route to the peer deleted by hand
    a.ip(&["route", "del", "10.244.2.0/24"]);
    assert!(!pings(&a.ns_name, &b.pod_address()));
    assert_eq!(a.reconcile(&plans[0]), 1, "exactly the missing route comes back");
    assert!(pings(&a.ns_name, &b.pod_address()), "repaired");
    assert!(a.ip(&["route"]).contains("203.0.113.0/24 via 192.0.2.1"));
    assert!(a.ip(&["neigh"]).contains("192.0.2.77"));

    // the peer leaves: its route, neighbour and FDB entry go, and nothing else; by a delta,
    // which reads nothing from the kernel
    let mut alone = plans[0].clone();
    let gone = alone.remove_peer("node-2");
    let delta = reconcile::delta(&mut a.kernel(), &alone, &[gone]).unwrap();
    assert_eq!(delta.count(), 3);
    assert_eq!(a.reconcile(&alone), 0, "and a full pass finds nothing left to do");
    assert!(!a.ip(&["route"]).contains("10.244.2.0/24"));
    assert!(!pings(&a.ns_name, &b.pod_address()));
    assert!(a.ip(&["route"]).contains("203.0.113.0/24"));
}

#[test]
fn route_backend_routes_via_the_peer() {
    let nodes = two_nodes();
    converge(&nodes, &config(Backend::Route));
    let (a, b) = (&nodes[0], &nodes[1]);
    let route = a.ip(&["route", "show", "10.244.2.0/24"]);
    assert!(route.contains("via 192.0.2.12 dev up0") && route.contains("proto 88"), "{route}");
    assert!(a.ip(&["link"]).lines().all(|l| !l.contains("weft.")), "no tunnel device in route mode");
    assert!(pings(&a.ns_name, &b.pod_address()));
}

#[test]
fn a_changed_tunnel_is_rebuilt() {
    let nodes = two_nodes();
    let mut config = config(Backend::Vxlan);
    converge(&nodes, &config);
    // the network moves to another UDP port: both ends rebuild their device
    config.port = 4789;
    converge(&nodes, &config);
    assert!(nodes[0].ip(&["-d", "link", "show", "weft.1"]).contains("dstport 4789"));
    assert!(pings(&nodes[0].ns_name, &nodes[1].pod_address()));
}
