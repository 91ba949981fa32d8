//! The planner's VXLAN programming, applied to real kernels: two node namespaces on one
//! segment, each given what `weft_core::plan` says for the other, reach each other's pod
//! subnet through the tunnel, and only through it (learning off: nothing but the planned
//! FDB entry tells the kernel where a VTEP is). Groundwork for the agent; needs root.

mod support;

use std::net::IpAddr;
use support::*;
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, NetworkConfig};
use weft_core::plan::{plan, LocalNode, PeerPath, Plan};
use weft_kernel::{netns, Batch, NetNs, Netlink, Route, VxlanSpec};

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

fn lease(node: &TestNode) -> Lease {
    Lease {
        node: node.local.name.clone(),
        subnet: node.local.subnet,
        public_ip: node.local.public_ip,
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac(&node.local.name)),
        expires_at: u64::MAX,
    }
}

/// What a reconciler will do on a node with nothing yet: create the device, then add
/// every neighbour, FDB entry and route of the plan.
fn apply(node: &TestNode, plan: &Plan) {
    let mut nl = Netlink::open_in(&node.ns).unwrap();
    let uplink = nl.link_by_name(&node.local.uplink).unwrap().unwrap();
    let device = plan.vxlan.as_ref().unwrap();
    let vxlan = nl
        .create_vxlan(&VxlanSpec {
            name: &device.name,
            vni: device.vni,
            port: device.port,
            local: device.local,
            underlay: uplink.index,
            mtu: device.mtu,
            mac: device.mac.0,
        })
        .unwrap();
    let mut batch = Batch::new();
    batch.add_address(vxlan.index, device.address, true);
    for neighbour in &plan.neighbours {
        batch.set_permanent_neighbour(vxlan.index, neighbour.ip, neighbour.mac.0);
    }
    for fdb in &plan.fdb {
        batch.set_fdb_entry(vxlan.index, fdb.mac.0, fdb.remote);
    }
    for route in &plan.routes {
        batch.add_route(&Route::via(route.destination, route.gateway, vxlan.index, route.onlink));
    }
    nl.apply(&mut batch).unwrap();
}

#[test]
fn two_nodes_reach_each_other_through_the_planned_tunnel() {
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
                    subnet: format!("10.244.{n}.0/24").parse().unwrap(),
                    public_ip: format!("192.0.2.1{n}").parse().unwrap(),
                    uplink: "up0".into(),
                    uplink_mtu: 1500,
                    connected: vec!["192.0.2.0/24".parse().unwrap()],
                },
            }
        })
        .collect();
    // the segment: a veth between the two nodes
    exec_in(
        &nodes[0].ns_name,
        "ip",
        &["link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", &nodes[1].ns_name],
        true,
    );
    for node in &nodes {
        exec_in(
            &node.ns_name,
            "ip",
            &["addr", "add", &format!("{}/24", node.local.public_ip), "dev", "up0"],
            true,
        );
        exec_in(&node.ns_name, "ip", &["link", "set", "up0", "up"], true);
    }
    let config =
        NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
    let leases: Vec<Lease> = nodes.iter().map(lease).collect();
    for node in &nodes {
        let planned = plan(&node.local, &config, &leases, 0);
        assert_eq!(planned.peers.len(), 1);
        assert_eq!(planned.peers[0].path, PeerPath::Vxlan);
        apply(node, &planned);
    }
    // node 1 reaches node 2's subnet address, which only exists on node 2's VXLAN device
    let peer_address: IpAddr = nodes[1].local.subnet.network();
    assert!(pings(&nodes[0].ns_name, &peer_address.to_string()), "no way through the tunnel");
    // the FDB holds exactly the planned entry, and the kernel learned nothing else
    let mut nl = Netlink::open_in(&nodes[0].ns).unwrap();
    let vxlan = nl.link_by_name("weft.1").unwrap().unwrap();
    assert_eq!(vxlan.mtu, 1450);
    let fdb = nl.fdb_entries(vxlan.index).unwrap();
    assert_eq!(fdb, vec![(vtep_mac("node-2").0, nodes[1].local.public_ip)]);
    // take the FDB entry away: the tunnel stops, because nothing floods or learns
    let route =
        nl.routes(false).unwrap().into_iter().find(|r| r.destination == nodes[1].local.subnet).unwrap();
    assert!(route.onlink && route.gateway == Some(peer_address));
    exec_in(
        &nodes[0].ns_name,
        "bridge",
        &[
            "fdb",
            "del",
            &weft_kernel::format_mac(&vtep_mac("node-2").0),
            "dev",
            "weft.1",
            "dst",
            "192.0.2.12",
            "self",
        ],
        true,
    );
    assert!(!pings(&nodes[0].ns_name, &peer_address.to_string()), "reached the peer without an FDB entry");
}
