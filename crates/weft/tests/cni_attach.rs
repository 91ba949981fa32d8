//! Pods wired by weft reach each other and their node, in both attach modes, and the
//! plugin's verbs do what the CNI spec asks of them. Needs root (network namespaces).

mod support;

use serde_json::{json, Value};
use support::*;

/// ADDs two pods, checks they reach each other and the node, CHECKs, DELs, and checks
/// that nothing is left.
fn two_pods_round_trip(attach: &str, expected_prefix: &str) {
    let mut node = Node::new();
    let conf = node.conf("1.1.0", json!({ "subnet": "10.244.1.0/24", "attach": attach }));
    let a = node.pod("a");
    let b = node.pod("b");
    let result_a = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD a");
    // b as a Kubernetes runtime adds it: the pod named in CNI_ARGS, which IPAM records.
    let k8s_args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
                    K8S_POD_INFRA_CONTAINER_ID=pod-b;K8S_POD_UID=5c1e";
    let result_b =
        node.weft_with("ADD", "pod-b", Some(&b), &conf, &[("CNI_ARGS", k8s_args)]).expect_ok("ADD b");
    let (ip_a, ip_b) = (result_ip(&result_a, false), result_ip(&result_b, false));
    assert_ne!(ip_a, ip_b);
    let mut held = node.reservations("testnet");
    held.sort();
    let mut expected =
        vec![(ip_a.clone(), "pod-a/eth0".to_string()), (ip_b.clone(), "default/web-0/pod-b/eth0".into())];
    expected.sort();
    assert_eq!(held, expected);
    assert!(result_a["ips"][0]["address"].as_str().unwrap().ends_with(expected_prefix), "{result_a}");
    // The MTU comes from the node's default route device when nobody says otherwise.
    let pod_interface = result_a["interfaces"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(pod_interface["name"], "eth0");
    assert_eq!(pod_interface["sandbox"], a.display().to_string());
    assert_eq!(pod_interface["mtu"], UPLINK_MTU);

    assert!(pings(&node.pod_ns_name("a"), &ip_b), "pod a cannot reach pod b ({attach})");
    assert!(pings(&node.pod_ns_name("b"), &ip_a), "pod b cannot reach pod a ({attach})");
    assert!(pings(&node.pod_ns_name("a"), NODE_IP), "pod a cannot reach the node ({attach})");
    assert!(pings(&node.ns_name, &ip_a), "the node cannot reach pod a ({attach})");
    assert_eq!(support::exec_in(&node.ns_name, "cat", &["/proc/sys/net/ipv4/ip_forward"], true).trim(), "1");

    for (id, ns, result) in [("pod-a", &a, &result_a), ("pod-b", &b, &result_b)] {
        node.weft("CHECK", id, Some(ns), &with_prev_result(&conf, result)).expect_ok("CHECK");
    }
    for (id, ns, result) in [("pod-a", &a, &result_a), ("pod-b", &b, &result_b)] {
        node.weft("DEL", id, Some(ns), &with_prev_result(&conf, result)).expect_ok("DEL");
        // DEL again: still success
        node.weft("DEL", id, Some(ns), &with_prev_result(&conf, result)).expect_ok("second DEL");
    }
    assert!(
        node.reservations("testnet").is_empty(),
        "addresses still held: {:?}",
        node.reservations("testnet")
    );
    node.wait_for_no_pod_links();
    assert_eq!(
        support::exec_in(&node.pod_ns_name("a"), "ip", &["-o", "link"], true).lines().count(),
        1,
        "pod a keeps only lo"
    );
}

#[test]
fn routed_pods_reach_each_other_and_the_node() {
    two_pods_round_trip("routed", "/32");
}

#[test]
fn bridged_pods_reach_each_other_and_the_node() {
    two_pods_round_trip("bridge", "/24");
}

#[test]
fn routed_pods_keep_their_gateway_when_their_mac_changes() {
    let mut node = Node::new();
    let conf = node.conf("1.1.0", json!({ "subnet": ["10.244.2.0/24", "fd00:244:2::/64"] }));
    let a = node.pod("a");
    let result = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD");
    // the pod's gateways are pinned to the node side's MAC: the pod never has to ask
    let neighbours = exec_in(&node.pod_ns_name("a"), "ip", &["neigh"], true);
    for gateway in ["169.254.1.1", "fe80::1"] {
        let entry = neighbours.lines().find(|l| l.starts_with(gateway)).unwrap_or_default();
        assert!(entry.contains("PERMANENT"), "{gateway}: {neighbours}");
    }
    // A later plugin in the chain (tuning, say) changes the pod's MAC. The kernel flushes
    // the pinned entries; the node side answers ARP and ND for the gateways, so the pod
    // keeps its way out, and the node, which pinned nothing, learns the new MAC.
    exec_in(&node.pod_ns_name("a"), "ip", &["link", "set", "eth0", "address", "02:00:00:00:00:99"], true);
    for v6 in [false, true] {
        assert!(pings(&node.pod_ns_name("a"), if v6 { NODE_IP6 } else { NODE_IP }), "pod→node v6={v6}");
        assert!(pings(&node.ns_name, &result_ip(&result, v6)), "node→pod v6={v6}");
    }
    // and the gateway address never becomes the node's source address towards pods
    let route = node.ip(&["route", "get", &result_ip(&result, false)]);
    assert!(route.contains(&format!("src {NODE_IP}")), "{route}");
}

#[test]
fn del_never_touches_the_nodes_own_interfaces() {
    // A runtime that points CNI_NETNS at the node's own namespace must not cost the node
    // its uplink, even though the node has an interface of the pod's name.
    let node = Node::new();
    node.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
    node.ip(&["link", "set", "eth0", "up"]);
    let conf = node.conf("1.0.0", json!({ "subnet": "10.244.11.0/24" }));
    let own = std::path::PathBuf::from(format!("/run/netns/{}", node.ns_name));
    node.weft("DEL", "pod-a", Some(&own), &conf).expect_ok("DEL pointed at the node");
    let link = node.ip(&["link", "show", "eth0"]);
    assert!(link.contains("eth0") && link.contains(",UP"), "{link}");
}

#[test]
fn node_file_gives_subnet_mtu_and_attach_mode() {
    let mut node = Node::new();
    node.write_node_file(
        r#"{"node":"n1","subnets":[{"subnet":"10.244.3.0/24"}],"mtu":1350,"attach":"bridge"}"#,
    );
    let conf = node.conf("1.1.0", json!({}));
    let a = node.pod("a");
    let result = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD");
    assert_eq!(result["ips"][0]["address"], "10.244.3.2/24", "{result}");
    assert_eq!(result["ips"][0]["gateway"], "10.244.3.1");
    let names: Vec<&str> =
        result["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "weft0", "bridge first: {names:?}");
    assert!(result["interfaces"][2]["mtu"] == 1350);
    let link = support::exec_in(&node.pod_ns_name("a"), "ip", &["link", "show", "eth0"], true);
    assert!(link.contains("mtu 1350"), "{link}");
    let bridge = node.ip(&["addr", "show", "weft0"]);
    assert!(bridge.contains("10.244.3.1/24"), "{bridge}");
    // the config's own mtu wins over the node file's
    let conf = node.conf("1.1.0", json!({ "mtu": 1300 }));
    let b = node.pod("b");
    let result = node.weft("ADD", "pod-b", Some(&b), &conf).expect_ok("ADD b");
    assert_eq!(result["interfaces"][2]["mtu"], 1300);
}

#[test]
fn answers_in_the_version_asked() {
    let mut node = Node::new();
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].into_iter().enumerate() {
        let conf = node.conf(version, json!({ "subnet": "10.244.4.0/24" }));
        let pod = node.pod(&format!("v{i}"));
        let result = node.weft("ADD", &format!("pod-{i}"), Some(&pod), &conf).expect_ok(version);
        assert_eq!(result["cniVersion"], version);
        let ip = &result["ips"][0];
        if version.starts_with("0.") {
            assert_eq!(ip["version"], "4", "{version}: {result}");
        } else {
            assert!(ip.get("version").is_none(), "{version}: {result}");
        }
        assert_eq!(result["interfaces"][1].get("mtu").is_some(), version == "1.1.0", "{version}: {result}");
        if version != "0.3.0" && version != "0.3.1" {
            node.weft("CHECK", &format!("pod-{i}"), Some(&pod), &with_prev_result(&conf, &result))
                .expect_ok("CHECK");
        } else {
            // CHECK arrived in 0.4.0
            node.weft("CHECK", &format!("pod-{i}"), Some(&pod), &with_prev_result(&conf, &result))
                .expect_error(1, "CHECK 0.3.x");
        }
    }
    let version = node.weft("VERSION", "x", None, &json!({"cniVersion": "0.4.0"})).expect_ok("VERSION");
    assert_eq!(version["cniVersion"], "0.4.0");
    assert_eq!(version["supportedVersions"], json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
}

#[test]
fn check_finds_what_changed() {
    let mut node = Node::new();
    let conf = node.conf("1.0.0", json!({ "subnet": "10.244.5.0/24" }));
    let a = node.pod("a");
    let result = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD");
    let check_conf = with_prev_result(&conf, &result);
    node.weft("CHECK", "pod-a", Some(&a), &check_conf).expect_ok("CHECK");
    let ip = result_ip(&result, false);
    node.ip(&["route", "del", &format!("{ip}/32")]);
    let error = node
        .weft("CHECK", "pod-a", Some(&a), &check_conf)
        .expect_error(101, "CHECK after host route deleted");
    assert!(error["details"].as_str().unwrap().contains(&ip), "{error}");
    // CHECK without prevResult is a config error
    node.weft("CHECK", "pod-a", Some(&a), &conf).expect_error(7, "CHECK without prevResult");
    // a pod's default route deleted by hand
    let b = node.pod("b");
    let result = node.weft("ADD", "pod-b", Some(&b), &conf).expect_ok("ADD b");
    support::exec_in(&node.pod_ns_name("b"), "ip", &["route", "del", "default"], true);
    let error =
        node.weft("CHECK", "pod-b", Some(&b), &with_prev_result(&conf, &result)).expect_error(101, "CHECK b");
    assert!(error["details"].as_str().unwrap().contains("default route"), "{error}");
}

#[test]
fn del_succeeds_when_the_namespace_is_already_gone() {
    let mut node = Node::new();
    let conf = node.conf("1.0.0", json!({ "subnet": "10.244.6.0/24" }));
    let a = node.pod("a");
    node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD");
    node.remove_pod("a");
    node.weft("DEL", "pod-a", Some(&a), &conf).expect_ok("DEL without namespace");
    node.weft("DEL", "pod-a", None, &conf).expect_ok("DEL without CNI_NETNS");
    assert!(node.reservations("testnet").is_empty());
    node.wait_for_no_pod_links();
}

#[test]
fn a_pod_can_be_added_again_right_after_del() {
    let mut node = Node::new();
    let conf = node.conf("1.0.0", json!({ "subnet": "10.244.7.0/24" }));
    let a = node.pod("a");
    for round in 0..3 {
        let result = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok(&format!("ADD round {round}"));
        assert!(pings(&node.ns_name, &result_ip(&result, false)));
        node.weft("DEL", "pod-a", Some(&a), &conf).expect_ok("DEL");
    }
}

#[test]
fn dual_stack_pods_reach_each_other_over_both_families() {
    let mut node = Node::new();
    let conf = node.conf("1.1.0", json!({ "subnet": ["10.244.8.0/24", "fd00:244:8::/64"] }));
    let a = node.pod("a");
    let b = node.pod("b");
    let result_a = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD a");
    let result_b = node.weft("ADD", "pod-b", Some(&b), &conf).expect_ok("ADD b");
    assert_eq!(result_a["ips"].as_array().unwrap().len(), 2);
    assert_eq!(
        result_a["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}])
    );
    for v6 in [false, true] {
        assert!(pings(&node.pod_ns_name("a"), &result_ip(&result_b, v6)), "a→b v6={v6}");
        assert!(pings(&node.ns_name, &result_ip(&result_a, v6)), "node→a v6={v6}");
        assert!(pings(&node.pod_ns_name("b"), if v6 { NODE_IP6 } else { NODE_IP }), "b→node v6={v6}");
    }
    node.weft("CHECK", "pod-a", Some(&a), &with_prev_result(&conf, &result_a)).expect_ok("CHECK");
}

#[test]
fn weft_chains_after_another_plugin() {
    // The reference bridge + host-local plugins wire net1 first; weft adds eth0 after and
    // must keep the first plugin's interfaces and indices.
    let mut node = Node::new();
    let a = node.pod("a");
    let netns = a.display().to_string();
    let first_conf = json!({
        "cniVersion": "1.0.0", "name": "testnet", "type": "bridge", "bridge": "refbr0",
        "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": node.data_dir.path().join("host-local")}
    });
    let vars = |cmd: &'static str| {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "pod-a"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "net1"),
            ("CNI_PATH", REFERENCE_PLUGINS),
        ]
    };
    let first = node
        .run_plugin(&format!("{REFERENCE_PLUGINS}/bridge"), &vars("ADD"), &first_conf.to_string())
        .expect_ok("reference ADD");
    let conf = node.conf("1.0.0", json!({ "subnet": "10.244.9.0/24" }));
    let result = node
        .weft("ADD", "pod-a", Some(&a), &with_prev_result(&conf, &first))
        .expect_ok("weft ADD after bridge");
    let first_interfaces = first["interfaces"].as_array().unwrap().len();
    let interfaces = result["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), first_interfaces + 2, "{result}");
    assert_eq!(&interfaces[..first_interfaces], first["interfaces"].as_array().unwrap().as_slice());
    assert_eq!(result["ips"][0], first["ips"][0], "the first plugin's address stays as it was");
    let ours: Vec<&Value> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ip| ip["interface"] == first_interfaces + 1)
        .collect();
    assert_eq!(ours.len(), 1, "{result}");
    node.weft("CHECK", "pod-a", Some(&a), &with_prev_result(&conf, &result)).expect_ok("CHECK");
    node.weft("DEL", "pod-a", Some(&a), &with_prev_result(&conf, &result)).expect_ok("weft DEL");
    node.run_plugin(&format!("{REFERENCE_PLUGINS}/bridge"), &vars("DEL"), &first_conf.to_string())
        .expect_ok("reference DEL");
}

#[test]
fn status_and_gc() {
    let mut node = Node::new();
    // STATUS without a node file: not available
    let conf = node.conf("1.1.0", json!({}));
    node.weft("STATUS", "x", None, &conf).expect_error(50, "STATUS without node file");
    node.write_node_file(r#"{"subnets":[{"subnet":"10.244.10.0/30"}]}"#);
    assert!(node.weft("STATUS", "x", None, &conf).expect_ok("STATUS").is_null());
    // routed /30: two addresses; fill them, STATUS says not available
    let (a, b) = (node.pod("a"), node.pod("b"));
    node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD a");
    node.weft("ADD", "pod-b", Some(&b), &conf).expect_ok("ADD b");
    node.weft("STATUS", "x", None, &conf).expect_error(50, "STATUS when full");
    // STATUS and GC need 1.1.0
    node.weft("STATUS", "x", None, &node.conf("1.0.0", json!({}))).expect_error(1, "STATUS 1.0.0");
    // GC keeps pod-a, frees pod-b's address and removes its veth
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "pod-a", "ifname": "eth0"}]);
    node.weft("GC", "x", None, &gc_conf).expect_ok("GC");
    let held: Vec<String> = node.reservations("testnet").into_iter().map(|(_, owner)| owner).collect();
    assert_eq!(held, vec!["pod-a/eth0".to_string()]);
    let links = node.extra_links();
    assert_eq!(links.len(), 1, "only pod-a's veth stays: {links:?}");
    assert!(pings(&node.pod_ns_name("a"), NODE_IP), "GC left pod-a working");
    // without the list GC refuses to guess
    node.weft("GC", "x", None, &conf).expect_error(7, "GC without list");
}

#[test]
fn bridged_dual_stack_pods_reach_each_other() {
    let mut node = Node::new();
    let conf =
        node.conf("1.1.0", json!({ "subnet": ["10.244.12.0/24", "fd00:244:12::/64"], "attach": "bridge" }));
    let (a, b) = (node.pod("a"), node.pod("b"));
    let result_a = node.weft("ADD", "pod-a", Some(&a), &conf).expect_ok("ADD a");
    let result_b = node.weft("ADD", "pod-b", Some(&b), &conf).expect_ok("ADD b");
    assert_eq!(result_a["ips"][1]["gateway"], "fd00:244:12::1", "{result_a}");
    for v6 in [false, true] {
        assert!(pings(&node.pod_ns_name("a"), &result_ip(&result_b, v6)), "a→b v6={v6}");
        assert!(pings(&node.ns_name, &result_ip(&result_a, v6)), "node→a v6={v6}");
    }
    node.weft("CHECK", "pod-a", Some(&a), &with_prev_result(&conf, &result_a)).expect_ok("CHECK");
}

#[test]
fn gc_of_one_network_leaves_another_alone() {
    let mut node = Node::new();
    let conf_a = node.conf("1.1.0", json!({ "subnet": "10.244.13.0/24" }));
    let mut conf_b = node.conf("1.1.0", json!({ "subnet": "10.244.14.0/24" }));
    conf_b["name"] = json!("othernet");
    let (a, b) = (node.pod("a"), node.pod("b"));
    node.weft("ADD", "pod-a", Some(&a), &conf_a).expect_ok("ADD on testnet");
    let result_b = node.weft("ADD", "pod-b", Some(&b), &conf_b).expect_ok("ADD on othernet");
    // an ADD on othernet killed before it labelled its veth
    let c = node.pod("c");
    let crashed = node.weft_with("ADD", "pod-c", Some(&c), &conf_b, &[("WEFT_CRASH_AT", "after-veth")]);
    assert_eq!(crashed.exit_code, None);
    let links_before = node.extra_links();
    assert_eq!(links_before.len(), 3, "{links_before:?}");
    // GC of testnet with nothing valid: only testnet's pod goes
    let mut gc_conf = conf_a.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([]);
    node.weft("GC", "", None, &gc_conf).expect_ok("GC testnet");
    assert!(node.reservations("testnet").is_empty());
    assert_eq!(node.reservations("othernet").len(), 2, "othernet keeps both reservations");
    assert_eq!(node.extra_links().len(), 2, "othernet's two veths stay: {:?}", node.extra_links());
    assert!(pings(&node.ns_name, &result_ip(&result_b, false)), "othernet's pod still works");
}
