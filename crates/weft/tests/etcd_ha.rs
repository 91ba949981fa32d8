//! The agents on a three-member etcd, in a lab, through what a real cluster's store meets:
//! its leader killed, a node cut off from every member for longer than its lease lives, all
//! members restarted, history compacted while an agent is away. The dataplane never waits
//! for the store; the agents resume their watches and list again only when they must.
//! Needs root and Debian's etcd-server.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::lab::{inside, ns, wait_for};
use support::ping_while;
use weft_core::lease::{pick_subnet, vtep_mac, Lease};
use weft_lab::{Lab, Mode, StoreKind};

fn etcd_lab(nodes_per_rack: u32, lease_ttl: u64) -> Lab {
    support::lab::lab(Mode::Vxlan, |spec| {
        spec.racks = 2;
        spec.nodes_per_rack = nodes_per_rack;
        spec.pods_per_node = 1;
        spec.store = StoreKind::Etcd;
        spec.etcd_members = 3;
        spec.lease_ttl = lease_ttl;
    })
}

/// The pod subnets `node` routes to (weft's peer routes).
fn peer_routes(lab: &Lab, node: &str) -> Vec<String> {
    let text = support::exec_in(&ns(lab, node), "ip", &["route", "show", "proto", "88"], true);
    let mut routes: Vec<String> =
        text.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect();
    routes.sort();
    routes
}

fn subnet_of(lab: &Lab, node: &str) -> String {
    lab.status_of(node).and_then(|s| s.lease).expect("a lease").lease.subnet.to_string()
}

fn nodes(lab: &Lab) -> Vec<String> {
    lab.topology().nodes.iter().map(|n| n.name.clone()).collect()
}

/// A lease written from outside any agent (a node joining), on a free subnet: its subnet.
fn visitor(lab: &Lab, name: &str) -> String {
    let url = lab.state.store_url.clone();
    let name = name.to_string();
    inside(&lab.topology().router_netns, move || {
        let store = weft_store::open(&url).unwrap();
        let snapshot = store.list().unwrap();
        let config = snapshot.network.unwrap();
        let taken = snapshot.leases.iter().map(|l| l.lease.subnet).collect();
        let lease = Lease {
            subnet: pick_subnet(&config, &taken, &name, None).unwrap(),
            public_ip: "198.18.1.250".parse().unwrap(),
            backend: config.backend,
            vtep_mac: Some(vtep_mac(&name)),
            subnet6: None,
            other_public_ip: None,
            node: name,
        };
        store.put_lease(&lease, None, Duration::from_secs(600)).unwrap().expect("a free subnet");
        lease.subnet.to_string()
    })
}

fn delete_lease(lab: &Lab, node: &str) {
    let url = lab.state.store_url.clone();
    let node = node.to_string();
    inside(&lab.topology().router_netns, move || {
        weft_store::open(&url).unwrap().delete_lease(&node).unwrap()
    });
}

fn members(lab: &Lab) -> Vec<IpAddr> {
    lab.etcd_members().iter().map(|m| IpAddr::V4(m.ip)).collect()
}

/// Waits until every node but `owner` (the subnet's own node) routes to `subnet`.
fn everyone_routes_to(lab: &Lab, subnet: &str, owner: &str, within: Duration, what: &str) {
    let others: Vec<String> = nodes(lab).into_iter().filter(|n| n != owner).collect();
    wait_for(within, || others.iter().all(|n| peer_routes(lab, n).contains(&subnet.to_string())), what);
}

#[test]
fn the_leader_killed_while_pods_talk_loses_no_packet_and_a_node_joining_after_converges() {
    let mut lab = etcd_lab(2, 30);
    // n4 leaves for good, to join again once the leader is dead.
    let n4 = subnet_of(&lab, "n4");
    lab.stop_agent("n4", libc::SIGTERM);
    delete_lease(&lab, "n4");
    wait_for(Duration::from_secs(20), || !peer_routes(&lab, "n1").contains(&n4), "n4's routes to go");

    let leader = lab.etcd_leader().unwrap();
    let target = lab.pod_address("n3-p1").unwrap().to_string();
    let from = ns(&lab, "n1-p1");
    let summary = ping_while(&from, &target, 500, || {
        lab.stop_etcd_member(&leader).unwrap();
        let new = lab.wait_for_etcd_leader(Duration::from_secs(15)).unwrap();
        assert_ne!(new, leader);
    });
    assert!(
        summary.contains("500 packets transmitted, 500 received"),
        "across racks, while etcd elects: {summary}"
    );

    // A node joins after the election: everyone converges on it.
    lab.start_agent("n4").unwrap();
    lab.wait_converged().unwrap();
    let joined = subnet_of(&lab, "n4");
    assert_eq!(joined, n4, "its previous subnet, from its node file");
    everyone_routes_to(&lab, &joined, "n4", Duration::from_secs(20), "every node to route to n4");
    assert!(support::pings(&from, &lab.pod_address("n4-p1").unwrap().to_string()));
}

#[test]
fn a_node_cut_off_longer_than_its_lease_keeps_forwarding_and_gets_its_subnet_back() {
    // A 6 s lease; the cut lasts 20 s.
    let mut lab = etcd_lab(1, 6);
    let subnet = subnet_of(&lab, "n1");
    let kept = peer_routes(&lab, "n1");
    assert_eq!(kept.len(), 1, "{kept:?}");
    lab.cut("n1", &members(&lab)).unwrap();
    let cut = Instant::now();
    let mut n2_dropped_n1 = false;
    while cut.elapsed() < Duration::from_secs(20) {
        // The cut-off node's kernel keeps what it had: it never waits for the store.
        assert_eq!(peer_routes(&lab, "n1"), kept, "n1 changed its kernel while cut off");
        n2_dropped_n1 |= !peer_routes(&lab, "n2").contains(&subnet);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(n2_dropped_n1, "n1's lease expired in etcd, and n2 removed its routes");
    lab.heal("n1").unwrap();
    everyone_routes_to(&lab, &subnet, "n1", Duration::from_secs(40), "n2 to route to n1 again");
    assert_eq!(subnet_of(&lab, "n1"), subnet, "the same subnet back");
    support::lab::wait_for_full_mesh(&lab);
    let status = lab.status_of("n1").unwrap();
    assert_eq!(status.store.lists, 1, "resumed its watch, never listed again: {:?}", status.store);
}

#[test]
fn all_members_restarted_the_agents_resume_their_watches_without_listing() {
    let mut lab = etcd_lab(2, 30);
    lab.restart_etcd_members().unwrap();
    // A change after the restart reaches everyone through the resumed watches.
    let joined = visitor(&lab, "visitor-1");
    everyone_routes_to(&lab, &joined, "", Duration::from_secs(40), "every node to route to the visitor");
    // The restarted members' counters start at zero: every range since is counted.
    let ranges = lab.etcd_metric("grpc_server_handled_total", &[("grpc_method", "Range")]).unwrap();
    let watches = lab.etcd_metric("grpc_server_started_total", &[("grpc_method", "Watch")]).unwrap();
    println!("after the restart: {ranges} range requests, {watches} watch streams, 4 agents");
    assert!(ranges < 4.0, "a listing storm: {ranges} range requests from 4 agents");
    assert!(watches >= 4.0, "each agent watches again: {watches}");
    wait_for(
        Duration::from_secs(10),
        || {
            nodes(&lab).iter().all(|n| {
                lab.status_of(n)
                    .is_some_and(|s| s.store.lists == 1 && s.store.watch_resumes >= 1 && s.store.connected)
            })
        },
        "every agent to report one listing and a resumed watch",
    );
}

#[test]
fn history_compacted_while_an_agent_is_away_makes_it_list_once_and_converge() {
    let mut lab = etcd_lab(1, 60);
    assert_eq!(lab.status_of("n1").unwrap().store.lists, 1);
    lab.cut("n1", &members(&lab)).unwrap();
    // It notices the cut: its lease's keepalive (every 20 s) or the connection's pings (every
    // 30 s, 10 s to answer) go unanswered.
    wait_for(
        Duration::from_secs(60),
        || lab.status_of("n1").is_some_and(|s| !s.store.connected),
        "n1 to notice it is cut off",
    );
    // Two changes, then the history up to the last compacted: n1's watch would resume
    // from the first.
    let joined = visitor(&lab, "visitor-2");
    let also = visitor(&lab, "visitor-3");
    lab.etcd_compact().unwrap();
    lab.heal("n1").unwrap();
    everyone_routes_to(&lab, &joined, "", Duration::from_secs(40), "n1 to learn of the visitors");
    everyone_routes_to(&lab, &also, "", Duration::from_secs(10), "n1 to learn of the visitors");
    let status = lab.status_of("n1").unwrap();
    assert_eq!(status.store.lists, 2, "listed once more, after the compaction: {:?}", status.store);
    assert_eq!(lab.status_of("n2").unwrap().store.lists, 1, "n2 watched throughout");
}
