//! L2 mode: pods on the nodes' own segment. The agent takes the node's uplink into a bridge
//! without cutting the node off, does it once, and pods get segment addresses with the
//! segment's router as gateway. Needs root.

mod support;

use std::time::Duration;
use support::exec_in;
use support::lab::{lab, ns, wait_for};
use weft_lab::Mode;

#[test]
fn the_uplink_moves_into_the_bridge_without_cutting_the_node_off() {
    let mut lab = lab(Mode::L2, |spec| {
        spec.nodes_per_rack = 2;
        spec.pods_per_node = 0;
        spec.start_agents = false;
    });
    let node = ns(&lab, "n1");
    // n1 pings the outside client (off its segment: through its default route and the
    // router's ARP entry for it) every 10 ms while its agent takes its uplink into the bridge.
    let mut moved_in = None;
    let summary = support::ping_while(&node, "203.0.113.10", 300, || {
        std::thread::sleep(Duration::from_millis(500));
        let started = std::time::Instant::now();
        lab.start_agent("n1").unwrap();
        wait_for(
            Duration::from_secs(10),
            || exec_in(&node, "ip", &["-br", "addr", "show", "weft-l2"], false).contains("198.18.1.11/24"),
            "the address on the bridge",
        );
        moved_in = Some(started.elapsed());
    });
    assert!(moved_in < Some(Duration::from_secs(2)), "the move happened while the pings ran: {moved_in:?}");
    assert!(summary.contains("300 received"), "the node stayed connected throughout: {summary}");

    // What moved: the address and the default route are the bridge's, eth0 is its port.
    let eth0 = exec_in(&node, "ip", &["-d", "-br", "-4", "addr", "show", "eth0"], true);
    assert!(!eth0.contains("198.18.1.11"), "{eth0}");
    let routes = exec_in(&node, "ip", &["route"], true);
    assert!(routes.contains("default via 198.18.1.1 dev weft-l2"), "{routes}");
    assert!(exec_in(&node, "ip", &["link", "show", "eth0"], true).contains("master weft-l2"));

    // A restart finds the bridge and changes nothing.
    lab.stop_agent("n1", libc::SIGTERM);
    lab.start_agent("n1").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(exec_in(&node, "ip", &["route"], true), routes);
    let log = std::fs::read_to_string(lab.state.log_file("n1")).unwrap();
    assert_eq!(log.matches("eth0 is now a port of weft-l2").count(), 1, "{log}");
}

#[test]
fn a_move_left_half_done_is_finished_at_the_next_start() {
    let mut lab = lab(Mode::L2, |spec| {
        spec.nodes_per_rack = 1;
        spec.pods_per_node = 0;
        spec.start_agents = false;
    });
    let node = ns(&lab, "n1");
    // As if an agent died after the first step: the bridge has the address and the port,
    // but the routes and the uplink's own address are where they were.
    for args in [
        &["link", "add", "weft-l2", "type", "bridge"][..],
        &["addr", "add", "198.18.1.11/24", "dev", "weft-l2"],
        &["link", "set", "weft-l2", "up"],
        &["link", "set", "eth0", "master", "weft-l2"],
    ] {
        exec_in(&node, "ip", args, true);
    }
    lab.start_agent("n1").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !exec_in(&node, "ip", &["route"], true).contains("default via 198.18.1.1 dev weft-l2") {
        assert!(
            std::time::Instant::now() < deadline,
            "the default route never moved: {}\n{}",
            exec_in(&node, "ip", &["route"], true),
            std::fs::read_to_string(lab.state.log_file("n1")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        Duration::from_secs(10),
        || !exec_in(&node, "ip", &["-4", "addr", "show", "eth0"], true).contains("198.18.1.11"),
        "the uplink's own address gone",
    );
    assert!(support::pings(&node, "203.0.113.10"), "off the segment, through the router");
}

#[test]
fn pods_live_on_the_segment_with_its_router_as_gateway() {
    let lab = lab(Mode::L2, |_| {});
    let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
    assert!(report.ok, "{}", weft_lab::report::render(&report, weft_lab::Style { color: false }));
    let pod = ns(&lab, "n2-p1");
    let address = lab.pod_address("n2-p1").unwrap();
    assert!(
        address.octets()[..3] == [198, 18, 1] && address.octets()[3] >= 128,
        "a slice of the segment: {address}"
    );
    let addresses = exec_in(&pod, "ip", &["-4", "-br", "addr", "show", "eth0"], true);
    assert!(addresses.contains(&format!("{address}/24")), "the segment's prefix: {addresses}");
    assert!(exec_in(&pod, "ip", &["route"], true).contains("default via 198.18.1.1 dev eth0"));
    // Nothing routed, nothing tunnelled: the node holds no peer route and no VXLAN device.
    let node = ns(&lab, "n1");
    assert!(!exec_in(&node, "ip", &["route"], true).contains("proto 88"));
    assert!(!exec_in(&node, "ip", &["link"], true).contains("weft.1"));
    // The router reaches the pod by ARP on its own segment.
    let neighbours = exec_in(&ns(&lab, "router"), "ip", &["neigh", "show", &address.to_string()], true);
    assert!(neighbours.contains("dev rack1 lladdr"), "{neighbours}");
}
