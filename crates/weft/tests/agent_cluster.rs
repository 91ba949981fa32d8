//! Nodes of a lab, each running a real `weft agent` on a shared store, two pods each wired
//! by the CNI plugin from the agent's node file: every pod reaches every other pod, for each
//! backend; dead nodes, restarts, drift, store outages. Needs root.

mod support;

use std::time::Duration;
use support::exec_in;
use support::lab::{ns, one_rack, unreachable_pods, wait_for, wait_for_full_mesh};
use weft_lab::{Lab, Mode, StoreKind};

/// Three nodes on one segment (198.18.1.11-13), two pods each, every pod reaching every pod.
fn three_nodes(mode: Mode) -> Lab {
    let lab = one_rack(mode, 3);
    wait_for_full_mesh(&lab);
    lab
}

fn routes(lab: &Lab, node: &str) -> String {
    exec_in(&ns(lab, node), "ip", &["route"], true)
}

#[test]
fn route_backend_full_mesh() {
    let lab = three_nodes(Mode::Route);
    let routes = routes(&lab, "n1");
    assert!(routes.contains("via 198.18.1.12 dev eth0 proto 88"), "{routes}");
}

#[test]
fn vxlan_backend_full_mesh() {
    let lab = three_nodes(Mode::Vxlan);
    let link = exec_in(&ns(&lab, "n1"), "ip", &["-d", "link", "show", "weft.1"], true);
    assert!(
        link.contains("vxlan id 1") && link.contains("dstport 8472") && link.contains("nolearning"),
        "{link}"
    );
    let node_file = std::fs::read_to_string(lab.state.node_dir("n1").join("node.json")).unwrap();
    assert!(node_file.contains("\"mtu\": 1450"), "pods get the tunnel's MTU: {node_file}");
}

#[test]
fn auto_backend_full_mesh() {
    // one segment: auto routes directly, and still keeps the tunnel device ready
    let lab = three_nodes(Mode::Auto);
    let routes = routes(&lab, "n1");
    assert!(routes.contains("via 198.18.1.12 dev eth0 proto 88"), "{routes}");
}

#[test]
fn auto_routes_within_a_rack_and_tunnels_across() {
    // the default lab: two racks of two nodes, joined by a router
    let lab = support::lab::lab(Mode::Auto, |_| {});
    wait_for_full_mesh(&lab);
    let routes = routes(&lab, "n1");
    // n1 and n2 share rack 198.18.1.0/24; n3 and n4 are in 198.18.2.0/24
    assert!(routes.contains("via 198.18.1.12 dev eth0 proto 88"), "rack-mate by route: {routes}");
    assert_eq!(routes.matches("dev weft.1 proto 88 onlink").count(), 2, "other rack by tunnel: {routes}");
}

#[test]
fn route_backend_says_why_it_cannot_cross_racks() {
    let lab = support::lab::lab(Mode::Route, |spec| {
        spec.nodes_per_rack = 1;
        spec.pods_per_node = 0;
    });
    let status = lab.status_of("n1").expect("n1's status file");
    let n2 = status.peers.iter().find(|p| p.node == "n2").expect("n2 is named");
    assert!(
        n2.path
            .to_string()
            .starts_with("unreachable: the route backend needs the peer on this node's L2 segment"),
        "{:?}",
        n2.path
    );
}

#[test]
fn a_dead_nodes_routes_go_when_its_lease_expires() {
    let mut lab = three_nodes(Mode::Route);
    let node_file = std::fs::read_to_string(lab.state.node_dir("n3").join("node.json")).unwrap();
    let subnet = weft_core::NodeFile::parse(&node_file).unwrap().subnets[0].subnet.to_string();
    lab.stop_agent("n3", libc::SIGKILL);
    assert!(routes(&lab, "n1").contains(&subnet), "the route stays while the lease lives");
    wait_for(
        Duration::from_secs(20),
        || !routes(&lab, "n1").contains(&subnet),
        "the dead node's route to go",
    );
}

/// The first peer route over the tunnel in `routes`, by destination.
fn tunnel_route(routes: &str) -> String {
    let peer = routes.lines().find(|l| l.contains("weft.1") && l.contains("onlink")).unwrap();
    peer.split_whitespace().next().unwrap().to_string()
}

#[test]
fn an_agent_restart_changes_nothing_and_drift_is_repaired() {
    let mut lab = three_nodes(Mode::Vxlan);
    let before = routes(&lab, "n1");
    lab.stop_agent("n1", libc::SIGTERM);
    assert!(unreachable_pods(&lab).is_empty(), "the dataplane works with the agent stopped");
    lab.start_agent("n1").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(routes(&lab, "n1"), before);
    // a route deleted by hand comes back at the next resync
    let destination = tunnel_route(&before);
    exec_in(&ns(&lab, "n1"), "ip", &["route", "del", &destination], true);
    wait_for(
        Duration::from_secs(10),
        || routes(&lab, "n1").contains(&destination),
        "the deleted route to come back",
    );
}

#[test]
fn on_etcd_every_backend_full_mesh() {
    for mode in [Mode::Route, Mode::Vxlan, Mode::Auto] {
        let lab = support::lab::lab(mode, |spec| {
            spec.racks = 1;
            spec.nodes_per_rack = 3;
            spec.store = StoreKind::Etcd;
        });
        wait_for_full_mesh(&lab);
    }
}

#[test]
fn etcd_away_for_ten_seconds_the_dataplane_works_and_agents_catch_up() {
    let mut lab = support::lab::lab(Mode::Vxlan, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = 3;
        spec.pods_per_node = 0;
        spec.store = StoreKind::Etcd;
        spec.start_agents = false;
    });
    // two nodes first; the third joins once etcd is back after the outage
    for node in ["n1", "n2"] {
        lab.start_agent(node).unwrap();
    }
    lab.wait_for_node_files(&["n1".into(), "n2".into()]).unwrap();
    for node in ["n1", "n2"] {
        lab.add_pod(node, &format!("{node}-a")).unwrap();
    }
    wait_for_full_mesh(&lab);
    lab.stop_store();
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(10) {
        assert!(unreachable_pods(&lab).is_empty(), "the dataplane broke while etcd was away");
        std::thread::sleep(Duration::from_millis(500));
    }
    lab.start_store().unwrap();
    lab.start_agent("n3").unwrap();
    lab.wait_for_node_files(&["n3".into()]).unwrap();
    lab.add_pod("n3", "n3-a").unwrap();
    wait_for_full_mesh(&lab);
}

/// GET `path` from the agent's metrics server inside `node`'s namespace.
fn http_get(lab: &Lab, node: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let ns = ns(lab, node);
    let path = path.to_string();
    std::thread::spawn(move || {
        weft_kernel::NetNs::open(format!("/run/netns/{ns}")).unwrap().enter().unwrap();
        let mut stream = std::net::TcpStream::connect("127.0.0.1:9473").unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    })
    .join()
    .unwrap()
}

#[test]
fn masquerade_metrics_status_and_a_restart_that_loses_no_packet() {
    let mut lab = three_nodes(Mode::Vxlan);

    // Masquerade: the outside client has no route to pods; it answers a pod only because the
    // pod's packets leave with the node's address.
    let report = lab.check(Duration::from_secs(2)).unwrap();
    let outside = report.cells.iter().find(|c| c.from == "n1-p1" && c.to == "outside").unwrap();
    assert!(outside.reached, "a pod reaches outside the cluster");
    let table = exec_in(&ns(&lab, "n1"), "nft", &["list", "ruleset"], true);
    assert!(table.contains("table ip weft") && table.contains("masquerade"), "{table}");
    // weft's own tables and nothing else: masquerade, and the overlay's source filter.
    let mut tables: Vec<&str> = table.lines().filter_map(|l| l.strip_prefix("table ")).collect();
    tables.sort();
    assert_eq!(tables, ["ip weft {", "ip weft_overlay {"], "{table}");

    // Metrics and health
    let metrics = http_get(&lab, "n1", "/metrics");
    assert!(metrics.contains("weft_peers 2") && metrics.contains("weft_leases 3"), "{metrics}");
    assert!(metrics.contains("weft_reconciles_total"), "{metrics}");
    assert!(http_get(&lab, "n1", "/healthz").starts_with("HTTP/1.0 200"));

    // weft status: lease, peers, and the kernel checked against the plan
    let status = |lab: &Lab| {
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", &ns(lab, "n1"), support::WEFT, "status", "--state-dir"])
            .arg(lab.state.node_dir("n1"))
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (ok, text) = status(&lab);
    assert!(ok && text.contains("kernel    matches the plan (2 routes)") && text.contains("n2"), "{text}");

    // A restart loses no packet: pings every 10 ms across the tunnel while the agent stops
    // and starts again.
    let (pod, target) = (ns(&lab, "n1-p1"), lab.pod_address("n2-p1").unwrap().to_string());
    let summary = support::ping_while(&pod, &target, 300, || {
        std::thread::sleep(Duration::from_millis(500));
        lab.stop_agent("n1", libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(500));
        lab.start_agent("n1").unwrap();
    });
    assert!(summary.contains("300 received") && summary.contains(" 0% packet loss"), "{summary}");

    // With the agent stopped, a route deleted by hand shows in status
    lab.stop_agent("n1", libc::SIGTERM);
    let destination = tunnel_route(&routes(&lab, "n1"));
    exec_in(&ns(&lab, "n1"), "ip", &["route", "del", &destination], true);
    let (ok, text) = status(&lab);
    assert!(!ok && text.contains(&format!("missing from the kernel: {destination}")), "{text}");
}
