//! IPAM under pressure: many ADDs at once, and ADDs killed half-way (kill -9 at each step
//! of the ADD). No address is ever given twice, and DEL, GC or a repeated ADD repairs
//! what a crash left. Needs root.

mod support;

use serde_json::json;
use std::collections::HashSet;
use support::*;

#[test]
fn fifty_concurrent_adds_get_fifty_distinct_addresses() {
    let mut node = Node::new();
    let conf = node.conf("1.0.0", json!({ "subnet": "10.244.30.0/24" }));
    let pods: Vec<_> = (0..50).map(|i| node.pod(&format!("p{i}"))).collect();
    let results: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (node, conf) = (&node, &conf);
                scope.spawn(move || {
                    node.weft("ADD", &format!("pod-{i}"), Some(ns), conf).expect_ok("concurrent ADD")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: HashSet<String> = results.iter().map(|r| result_ip(r, false)).collect();
    assert_eq!(ips.len(), 50, "addresses handed out twice");
    assert_eq!(node.reservations("testnet").len(), 50);
    for ip in ips.iter().take(10) {
        assert!(pings(&node.ns_name, ip), "node cannot reach {ip}");
    }
    std::thread::scope(|scope| {
        for (i, ns) in pods.iter().enumerate() {
            let (node, conf) = (&node, &conf);
            scope.spawn(move || {
                node.weft("DEL", &format!("pod-{i}"), Some(ns), conf).expect_ok("concurrent DEL")
            });
        }
    });
    assert!(node.reservations("testnet").is_empty());
    node.wait_for_no_pod_links();
}

const CRASH_POINTS: [&str; 3] = ["after-reserve", "after-veth", "after-node-side"];

/// ADD killed at `point`: returns the address its reservation holds.
fn crashed_add(node: &Node, conf: &serde_json::Value, ns: &std::path::Path, point: &str) -> String {
    let run = node.weft_with("ADD", "pod-crash", Some(ns), conf, &[("WEFT_CRASH_AT", point)]);
    assert_eq!(run.exit_code, None, "ADD should have been killed at {point}: {run:?}");
    let held: Vec<String> = node
        .reservations("testnet")
        .into_iter()
        .filter(|(_, o)| o == "pod-crash/eth0")
        .map(|(ip, _)| ip)
        .collect();
    assert_eq!(held.len(), 1, "{point}: the crashed ADD's reservation is whole: {held:?}");
    held[0].clone()
}

#[test]
fn adds_killed_at_any_point_never_give_an_address_twice_and_are_repaired() {
    for point in CRASH_POINTS {
        let mut node = Node::new();
        let conf = node.conf("1.1.0", json!({ "subnet": "10.244.31.0/24" }));
        let crash_ns = node.pod("crash");
        let crashed_ip = crashed_add(&node, &conf, &crash_ns, point);

        // Another pod never gets the crashed ADD's address.
        let next_ns = node.pod("next");
        let next = node.weft("ADD", "pod-next", Some(&next_ns), &conf).expect_ok("ADD after crash");
        assert_ne!(result_ip(&next, false), crashed_ip, "{point}: address given twice");

        // Repair 1: the DEL a runtime sends after a failed ADD.
        node.weft("DEL", "pod-crash", Some(&crash_ns), &conf).expect_ok("DEL after crash");
        assert!(
            node.reservations("testnet").iter().all(|(_, o)| o != "pod-crash/eth0"),
            "{point}: DEL left the address"
        );
        let wait_until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while node.extra_links().len() != 1 {
            assert!(
                std::time::Instant::now() < wait_until,
                "{point}: DEL left links: {:?}",
                node.extra_links()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(exec_in(&node.pod_ns_name("crash"), "ip", &["-o", "link"], true).lines().count(), 1);

        // Repair 2: GC, with only pod-next still valid.
        crashed_add(&node, &conf, &crash_ns, point);
        let mut gc_conf = conf.clone();
        gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "pod-next", "ifname": "eth0"}]);
        node.weft("GC", "", None, &gc_conf).expect_ok("GC after crash");
        let held: Vec<String> = node.reservations("testnet").into_iter().map(|(_, o)| o).collect();
        assert_eq!(held, vec!["pod-next/eth0".to_string()], "{point}: GC");
        assert_eq!(node.extra_links().len(), 1, "{point}: GC left links: {:?}", node.extra_links());

        // Repair 3: the runtime simply repeats the ADD; it gets the reserved address.
        let ip = crashed_add(&node, &conf, &crash_ns, point);
        let retried = node.weft("ADD", "pod-crash", Some(&crash_ns), &conf).expect_ok("repeated ADD");
        assert_eq!(result_ip(&retried, false), ip, "{point}: the repeated ADD reuses its reservation");
        assert!(pings(&node.pod_ns_name("crash"), &result_ip(&next, false)), "{point}: repaired pod works");
        node.weft("CHECK", "pod-crash", Some(&crash_ns), &with_prev_result(&conf, &retried))
            .expect_ok("CHECK");
    }
}
