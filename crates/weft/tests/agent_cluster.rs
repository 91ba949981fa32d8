//! Three nodes on one segment, each running a real `weft agent` on a shared SQLite store,
//! two pods each wired by the CNI plugin from the agent's node file: every pod reaches every
//! other pod, for each backend. Needs root.

mod support;

use std::time::Duration;
use support::cluster::{wait_for, Cluster};

fn every_pod_reaches_every_pod(backend: &str) -> Cluster {
    full_mesh(Cluster::new(3, backend), backend)
}

fn full_mesh(mut cluster: Cluster, backend: &str) -> Cluster {
    cluster.start_all();
    for i in 0..3 {
        cluster.add_pod(i, "a");
        cluster.add_pod(i, "b");
    }
    wait_for(
        Duration::from_secs(20),
        || cluster.unreachable_pairs().is_empty(),
        &format!("full mesh over {backend}"),
    );
    cluster
}

#[test]
fn route_backend_full_mesh() {
    let cluster = every_pod_reaches_every_pod("route");
    let routes = support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true);
    assert!(routes.contains("via 192.0.2.12 dev up0 proto 88"), "{routes}");
}

#[test]
fn vxlan_backend_full_mesh() {
    let cluster = every_pod_reaches_every_pod("vxlan");
    let link = support::exec_in(&cluster.nodes[0].ns_name, "ip", &["-d", "link", "show", "weft.1"], true);
    assert!(
        link.contains("vxlan id 1") && link.contains("dstport 8472") && link.contains("nolearning"),
        "{link}"
    );
    let node_file = std::fs::read_to_string(cluster.nodes[0].state_dir.join("node.json")).unwrap();
    assert!(node_file.contains("\"mtu\": 1450"), "pods get the tunnel's MTU: {node_file}");
}

#[test]
fn auto_backend_full_mesh() {
    // one segment: auto routes directly, and still keeps the tunnel device ready
    let cluster = every_pod_reaches_every_pod("auto");
    let routes = support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true);
    assert!(routes.contains("via 192.0.2.12 dev up0 proto 88"), "{routes}");
}

#[test]
fn auto_routes_within_a_rack_and_tunnels_across() {
    // two racks of two nodes, joined by a router
    let cluster = full_mesh(Cluster::racks(2, 4, "auto"), "auto");
    let routes = support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true);
    // node-1 and node-3 share rack 192.0.2.0/24; node-2 and node-4 are in 198.51.100.0/24
    assert!(routes.contains("via 192.0.2.13 dev up0 proto 88"), "rack-mate by route: {routes}");
    assert_eq!(routes.matches("dev weft.1 proto 88 onlink").count(), 2, "other rack by tunnel: {routes}");
}

#[test]
fn route_backend_says_why_it_cannot_cross_racks() {
    let mut cluster = Cluster::racks(2, 2, "route");
    cluster.start_all();
    let status_file = cluster.nodes[0].state_dir.join("status.json");
    wait_for(
        Duration::from_secs(20),
        || std::fs::read_to_string(&status_file).is_ok_and(|s| s.contains("node-2")),
        "status",
    );
    let status = std::fs::read_to_string(&status_file).unwrap();
    assert!(
        status.contains("unreachable: the route backend needs the peer on this node's L2 segment"),
        "{status}"
    );
}

#[test]
fn a_dead_nodes_routes_go_when_its_lease_expires() {
    let mut cluster = every_pod_reaches_every_pod("route");
    let dead_subnet = std::fs::read_to_string(cluster.nodes[2].state_dir.join("node.json")).unwrap();
    let dead: weft_core::NodeFile = weft_core::NodeFile::parse(&dead_subnet).unwrap();
    let subnet = dead.subnets[0].subnet.to_string();
    cluster.stop_agent(2, libc::SIGKILL);
    let has_route = |cluster: &Cluster| {
        support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true).contains(&subnet)
    };
    assert!(has_route(&cluster), "the route stays while the lease lives");
    wait_for(Duration::from_secs(20), || !has_route(&cluster), "the dead node's route to go");
}

#[test]
fn an_agent_restart_changes_nothing_and_drift_is_repaired() {
    let mut cluster = every_pod_reaches_every_pod("vxlan");
    let before = support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true);
    cluster.stop_agent(0, libc::SIGTERM);
    assert!(cluster.unreachable_pairs().is_empty(), "the dataplane works with the agent stopped");
    cluster.start_agent(0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true), before);
    // a route deleted by hand comes back at the next resync
    let peer = before.lines().find(|l| l.contains("weft.1") && l.contains("onlink")).unwrap();
    let destination = peer.split_whitespace().next().unwrap().to_string();
    support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route", "del", &destination], true);
    wait_for(
        Duration::from_secs(10),
        || support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true).contains(&destination),
        "the deleted route to come back",
    );
}

#[test]
fn on_etcd_every_backend_full_mesh() {
    for backend in ["route", "vxlan", "auto"] {
        full_mesh(Cluster::on_etcd(3, backend), backend);
    }
}

#[test]
fn etcd_away_for_ten_seconds_the_dataplane_works_and_agents_catch_up() {
    let mut cluster = Cluster::on_etcd(3, "vxlan");
    // two nodes first; the third joins once etcd is back after the outage
    for i in 0..2 {
        cluster.start_agent(i);
    }
    for i in 0..2 {
        let node_file = cluster.nodes[i].state_dir.join("node.json");
        wait_for(Duration::from_secs(20), || node_file.exists(), "node file");
        cluster.add_pod(i, "a");
    }
    wait_for(Duration::from_secs(20), || cluster.unreachable_pairs().is_empty(), "two-node mesh");
    cluster.etcd.as_mut().unwrap().pause();
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(10) {
        assert!(cluster.unreachable_pairs().is_empty(), "the dataplane broke while etcd was away");
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.etcd.as_mut().unwrap().resume();
    cluster.start_agent(2);
    let node_file = cluster.nodes[2].state_dir.join("node.json");
    wait_for(Duration::from_secs(20), || node_file.exists(), "third node file");
    cluster.add_pod(2, "a");
    wait_for(Duration::from_secs(20), || cluster.unreachable_pairs().is_empty(), "the agents to catch up");
}

/// GET `path` from the agent's metrics server inside node `i`'s namespace.
fn http_get(cluster: &Cluster, i: usize, path: &str) -> String {
    use std::io::{Read, Write};
    let ns = cluster.nodes[i].ns_name.clone();
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
    let mut cluster = every_pod_reaches_every_pod("vxlan");

    // Masquerade: the switch (192.0.2.1) is outside the cluster and has no route to pods;
    // it answers a pod only because the pod's packets leave with the node's address.
    let pod = cluster.nodes[0].pods[0].0.clone();
    assert!(support::pings(&pod, "192.0.2.1"), "a pod reaches outside the cluster");
    let table = support::exec_in(&cluster.nodes[0].ns_name, "nft", &["list", "ruleset"], true);
    assert!(table.contains("table ip weft") && table.contains("masquerade"), "{table}");
    assert_eq!(table.matches("table ").count(), 1, "weft's own table and nothing else: {table}");

    // Metrics and health
    let metrics = http_get(&cluster, 0, "/metrics");
    assert!(metrics.contains("weft_peers 2") && metrics.contains("weft_leases 3"), "{metrics}");
    assert!(metrics.contains("weft_reconciles_total"), "{metrics}");
    assert!(http_get(&cluster, 0, "/healthz").starts_with("HTTP/1.0 200"));

    // weft status: lease, peers, and the kernel checked against the plan
    let status = |cluster: &Cluster| {
        let node = &cluster.nodes[0];
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", &node.ns_name, support::WEFT, "status", "--state-dir"])
            .arg(&node.state_dir)
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (ok, text) = status(&cluster);
    assert!(ok && text.contains("kernel matches the plan (2 routes)") && text.contains("node-2"), "{text}");

    // A restart loses no packet: pings every 10 ms across the tunnel while the agent stops
    // and starts again.
    let target = cluster.nodes[1].pods[0].1.clone();
    let pinger = std::process::Command::new("ip")
        .args(["netns", "exec", &pod, "ping", "-q", "-i", "0.01", "-c", "300", &target])
        .output();
    let restart = std::thread::scope(|scope| {
        let pings = scope.spawn(|| pinger.unwrap());
        std::thread::sleep(Duration::from_millis(500));
        cluster.stop_agent(0, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(500));
        cluster.start_agent(0);
        pings.join().unwrap()
    });
    let summary = String::from_utf8_lossy(&restart.stdout).into_owned();
    assert!(summary.contains("300 received") && summary.contains(" 0% packet loss"), "{summary}");

    // With the agent stopped, a route deleted by hand shows in status
    cluster.stop_agent(0, libc::SIGTERM);
    let route = support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route"], true);
    let peer = route.lines().find(|l| l.contains("weft.1") && l.contains("onlink")).unwrap();
    let destination = peer.split_whitespace().next().unwrap().to_string();
    support::exec_in(&cluster.nodes[0].ns_name, "ip", &["route", "del", &destination], true);
    let (ok, text) = status(&cluster);
    assert!(!ok && text.contains(&format!("missing from the kernel: {destination}")), "{text}");
}
