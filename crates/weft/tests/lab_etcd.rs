//! The lab's etcd cluster: three members on two racks, each a machine of its own. One
//! cluster with one leader; the leader killed and another elected, the store still taking
//! writes; the killed member rejoining; a node cut off from every member while pods keep
//! reaching each other, and healed; compaction, metrics, a restart of the whole cluster.
//! Needs root and Debian's etcd-server.

mod support;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use support::lab::{inside, ns, wait_for};
use support::{pings, WEFT};
use weft_kernel::netns;
use weft_lab::{Lab, Mode, StoreKind};

/// Whether a TCP connection from `ns_name` to `to` opens within 2 s.
fn connects(ns_name: &str, to: SocketAddr) -> bool {
    inside(ns_name, move || TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok())
}

/// The network config written again, unchanged, through the lab's store URL (every member
/// listed) from the router's namespace: a write the cluster must commit.
fn write_network_again(lab: &Lab) -> Result<(), String> {
    let url = lab.state.store_url.clone();
    inside(&lab.topology().router_netns, move || {
        let store = weft_store::open(&url).map_err(|e| e.to_string())?;
        let config = store.network().map_err(|e| e.to_string())?.ok_or("no network config")?;
        store.init_network(&config, false).map_err(|e| e.to_string())
    })
}

/// Every member runs, answers, and follows the same leader, which `etcd_leader` names.
fn one_cluster(lab: &Lab) -> Result<String, String> {
    let statuses = lab.etcd_status().map_err(|e| e.to_string())?;
    let leaders: Vec<Option<String>> = statuses.iter().map(|s| s.leader.clone()).collect();
    if statuses.len() != 3 || leaders.iter().any(|l| *l != leaders[0] || l.is_none()) {
        return Err(format!("{statuses:?}"));
    }
    let leader = lab.etcd_leader().map_err(|e| e.to_string())?;
    if leaders[0].as_deref() != Some(leader.as_str()) {
        return Err(format!("etcd_leader says {leader}, the members {statuses:?}"));
    }
    Ok(leader)
}

fn nft_tables(lab: &Lab, member: &str) -> String {
    support::exec_in(&ns(lab, member), "nft", &["list", "tables"], true)
}

#[test]
fn three_members_fail_over_rejoin_and_a_cut_node_keeps_its_dataplane() {
    let mut lab = support::lab::lab(Mode::Vxlan, |spec| {
        spec.racks = 2;
        spec.nodes_per_rack = 1;
        spec.pods_per_node = 1;
        spec.store = StoreKind::Etcd;
        spec.etcd_members = 3;
        // Longer than n1 is cut off below: its lease must not lapse meanwhile.
        spec.lease_ttl = 30;
    });
    let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
    assert!(report.ok, "{}", weft_lab::report::render(&report, weft_lab::Style { color: false }));

    // Three machines of their own, round the racks, all in the store URL.
    let members = lab.etcd_members();
    let placed: Vec<(&str, String, &str)> =
        members.iter().map(|m| (m.name.as_str(), m.ip.to_string(), m.endpoint.as_str())).collect();
    assert_eq!(
        placed,
        [
            ("etcd1", "198.18.1.101".to_string(), "198.18.1.101:2379"),
            ("etcd2", "198.18.2.102".to_string(), "198.18.2.102:2379"),
            ("etcd3", "198.18.1.103".to_string(), "198.18.1.103:2379"),
        ]
    );
    assert!(members.iter().all(|m| m.pid.is_some() && m.netns == ns(&lab, &m.name)));
    assert_eq!(lab.state.store_url, "etcd://198.18.1.101:2379,198.18.2.102:2379,198.18.1.103:2379");
    // `weft lab exec` reaches a member like any other.
    let exec = Command::new(WEFT)
        .args(["lab", "exec", lab.name(), "etcd2", "--", "ip", "-4", "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&exec.stdout).contains("inet 198.18.2.102/24"), "{exec:?}");

    // One cluster: every member follows the same leader.
    let leader = one_cluster(&lab).unwrap();

    // The leader killed: another one within 10 s, and the store still takes a write.
    lab.stop_etcd_member(&leader).unwrap();
    assert!(lab.etcd_members().iter().any(|m| m.name == leader && m.pid.is_none()));
    let killed = Instant::now();
    let mut new_leader = String::new();
    wait_for(
        Duration::from_secs(10),
        || match lab.etcd_leader() {
            Ok(l) => {
                new_leader = l;
                true
            }
            Err(_) => false,
        },
        "a new leader",
    );
    assert_ne!(new_leader, leader);
    println!("{leader} killed: {new_leader} leads after {:?}", killed.elapsed());
    write_network_again(&lab).unwrap();

    // The killed member back on its data: it rejoins the one cluster.
    lab.start_etcd_member(&leader).unwrap();
    wait_for(Duration::from_secs(10), || one_cluster(&lab).is_ok(), "the member to rejoin");

    // n1 cut off from every member: no TCP to the store, but pods still reach each other.
    let member = SocketAddr::new(IpAddr::V4(members[0].ip), 2379);
    assert!(connects(&ns(&lab, "n1"), member), "n1 reaches etcd1 before the cut");
    let addresses: Vec<IpAddr> = members.iter().map(|m| IpAddr::V4(m.ip)).collect();
    lab.cut("n1", &addresses).unwrap();
    let tables = nft_tables(&lab, "n1");
    assert!(tables.contains("table inet weftlab-cut") && tables.contains("table ip weft"), "{tables}");
    assert!(!connects(&ns(&lab, "n1"), member), "n1 still reaches etcd1 through the cut");
    let n2_p1 = lab.pod_address("n2-p1").unwrap().to_string();
    assert!(pings(&ns(&lab, "n1-p1"), &n2_p1), "the dataplane broke with the store cut off");
    // n2, not cut, still reaches the store.
    assert!(connects(&ns(&lab, "n2"), member));
    lab.heal("n1").unwrap();
    let tables = nft_tables(&lab, "n1");
    assert!(!tables.contains("weftlab-cut") && tables.contains("table ip weft"), "{tables}");
    assert!(connects(&ns(&lab, "n1"), member), "n1 reaches etcd1 again once healed");

    // Compaction at the current revision, and the members' metrics (the agents' ranges).
    let revision = lab.etcd_compact().unwrap();
    assert!(revision > 0);
    let ranges = lab.etcd_metric("grpc_server_handled_total", &[("grpc_method", "Range")]).unwrap();
    assert!(ranges > 0.0, "{ranges}");

    // The whole cluster stopped and started again: a leader, and the store answers.
    let pids: Vec<u32> = lab.etcd_members().iter().filter_map(|m| m.pid).collect();
    lab.restart_etcd_members().unwrap();
    let again: Vec<u32> = lab.etcd_members().iter().filter_map(|m| m.pid).collect();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|pid| !pids.contains(pid)), "{pids:?} → {again:?}");
    // A leader is there (restart waited for one); the last member may still be catching up.
    wait_for(Duration::from_secs(10), || one_cluster(&lab).is_ok(), "all three to follow it");
    write_network_again(&lab).unwrap();
    support::lab::wait_for_full_mesh(&lab);

    // down: no member left running, no namespace left.
    let name = lab.name().to_string();
    let processes: Vec<_> = lab.state.etcd_members.values().cloned().collect();
    lab.down().unwrap();
    assert!(processes.iter().all(|p| !weft_lab::process::is_running(p)));
    let prefix = weft_lab::topology::netns_prefix(&name);
    assert!(netns::list_named().unwrap().iter().all(|n| !n.starts_with(&prefix)));
}

#[test]
fn etcd_members_other_than_1_3_or_5_or_without_etcd_are_refused() {
    let refused = |args: &[&str]| {
        let output = Command::new(WEFT)
            .args(["lab", "up", "--name", &support::lab::lab_name()])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let even = refused(&["--store", "etcd", "--etcd-members", "2"]);
    assert!(even.contains("--etcd-members 2: 1, 3 or 5"), "{even}");
    let sqlite = refused(&["--etcd-members", "3"]);
    assert!(sqlite.contains("--etcd-members 3 needs --store etcd"), "{sqlite}");
}
