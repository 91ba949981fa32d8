//! Bad input gets the spec's error object on stdout with the right code, a non-zero exit,
//! and leaves nothing behind: no interface, no address held. Table-driven; needs root.

mod support;

use serde_json::json;
use std::path::Path;
use support::*;

/// One invocation: the variables and stdin a runtime would pass.
struct Invocation {
    vars: Vec<(String, String)>,
    stdin: String,
}

fn standard(node: &Node, netns: &Path, conf: serde_json::Value) -> Invocation {
    Invocation {
        vars: vec![
            ("CNI_COMMAND".into(), "ADD".into()),
            ("CNI_CONTAINERID".into(), "pod-x".into()),
            ("CNI_NETNS".into(), netns.display().to_string()),
            ("CNI_IFNAME".into(), "eth0".into()),
            ("CNI_PATH".into(), REFERENCE_PLUGINS.into()),
        ],
        stdin: node.conf("1.0.0", conf).to_string(),
    }
}

fn set(invocation: &mut Invocation, name: &str, value: Option<&str>) {
    invocation.vars.retain(|(k, _)| k != name);
    if let Some(value) = value {
        invocation.vars.push((name.into(), value.into()));
    }
}

type Setup = fn(&mut Node, &Path) -> Invocation;

fn subnet() -> serde_json::Value {
    json!({ "subnet": "10.244.20.0/24" })
}

const CASES: &[(&str, u64, Setup)] = &[
    ("malformed JSON", 6, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        inv.stdin = r#"{"cniVersion": "1.0.0", "name": "#.into();
        inv
    }),
    ("missing CNI_CONTAINERID", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_CONTAINERID", None);
        inv
    }),
    ("missing CNI_NETNS", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_NETNS", None);
        inv
    }),
    ("CNI_ARGS with a key no plugin knows, without IgnoreUnknown", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_ARGS", Some("K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;COLOUR=blue"));
        inv
    }),
    ("CNI_ARGS naming a pod that is no Kubernetes name", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_ARGS", Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=../x"));
        inv
    }),
    ("unsupported cniVersion", 1, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        inv.stdin = inv.stdin.replace("\"1.0.0\"", "\"0.2.0\"");
        inv
    }),
    ("future cniVersion", 1, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        inv.stdin = inv.stdin.replace("\"1.0.0\"", "\"9.0.0\"");
        inv
    }),
    ("missing network name", 7, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        inv.stdin = inv.stdin.replace("\"testnet\"", "\"\"");
        inv
    }),
    ("interface name over 15 bytes", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_IFNAME", Some("eth0123456789abc"));
        inv
    }),
    ("interface name with a slash", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_IFNAME", Some("eth/0"));
        inv
    }),
    ("container ID with a slash", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_CONTAINERID", Some("pod/x"));
        inv
    }),
    ("container ID climbing out with ..", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_CONTAINERID", Some("..escape"));
        inv
    }),
    ("netns path that does not exist", 3, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        set(&mut inv, "CNI_NETNS", Some("/run/netns/wtest-no-such-namespace"));
        inv
    }),
    ("netns path that is not a namespace", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        let file = node.state_dir.path().join("not-a-netns");
        std::fs::write(&file, "").unwrap();
        set(&mut inv, "CNI_NETNS", Some(file.to_str().unwrap()));
        inv
    }),
    ("netns that is the node's own", 4, |node, ns| {
        let mut inv = standard(node, ns, subnet());
        let own = format!("/run/netns/{}", node.ns_name);
        set(&mut inv, "CNI_NETNS", Some(&own));
        inv
    }),
    ("node file missing", 11, |node, ns| standard(node, ns, json!({}))),
    ("node file corrupt", 6, |node, ns| {
        node.write_node_file(r#"{"subnets": [{"subnet": "10.244.20.0/24"}"#);
        standard(node, ns, json!({}))
    }),
    ("node file with a wrong field", 6, |node, ns| {
        node.write_node_file(r#"{"subnets": [{"subnet": "10.244.20.0/24"}], "mtu": "big"}"#);
        standard(node, ns, json!({}))
    }),
    ("subnet full", 11, |node, ns| {
        // a routed /30 has two addresses: give both to other pods first
        let conf = node.conf("1.0.0", json!({ "subnet": "10.244.21.0/30" }));
        for name in ["full-1", "full-2"] {
            let pod = node.pod(name);
            node.weft("ADD", name, Some(&pod), &conf).expect_ok("filling ADD");
        }
        standard(node, ns, json!({ "subnet": "10.244.21.0/30" }))
    }),
    ("bridge name taken by a non-bridge", 7, |node, ns| {
        standard(node, ns, json!({ "subnet": "10.244.22.0/24", "attach": "bridge", "bridge": "up0" }))
    }),
    ("interface already in the pod", 100, |node, ns| {
        let ns_name = ns.file_name().unwrap().to_str().unwrap().to_string();
        exec_in(&ns_name, "ip", &["link", "add", "eth0", "type", "veth", "peer", "name", "other0"], true);
        let _ = node;
        standard(node, ns, subnet())
    }),
    ("mtu out of range", 7, |node, ns| standard(node, ns, json!({ "subnet": "10.244.20.0/24", "mtu": 20 }))),
    ("attach mode unknown", 6, |node, ns| {
        standard(node, ns, json!({ "subnet": "10.244.20.0/24", "attach": "tunnel" }))
    }),
];

#[test]
fn bad_input_gets_the_spec_error_and_leaves_nothing() {
    let mut failures = Vec::new();
    for (name, code, setup) in CASES {
        let mut node = Node::new();
        let pod = node.pod("victim");
        let invocation = setup(&mut node, &pod);
        // what was there before the bad call
        let links_before = node.extra_links();
        let reservations_before = node.reservations("testnet");
        let pod_links_before = exec_in(&node.pod_ns_name("victim"), "ip", &["-o", "link"], true);

        let vars: Vec<(&str, &str)> = invocation.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let run = node.run_plugin(WEFT, &vars, &invocation.stdin);
        let outcome = std::panic::catch_unwind(|| {
            let error = run.expect_error(*code, name);
            assert!(run.stdout.starts_with('{'), "{name}: the error object is all of stdout: {}", run.stdout);
            let _ = error;
        });
        if outcome.is_err() {
            failures.push(format!("{name}: {run:?}"));
            continue;
        }
        let links_after = node.extra_links();
        if links_after != links_before {
            failures.push(format!("{name}: node links changed: {links_before:?} -> {links_after:?}"));
        }
        let reservations_after = node.reservations("testnet");
        if reservations_after != reservations_before {
            failures.push(format!("{name}: IPAM changed: {reservations_before:?} -> {reservations_after:?}"));
        }
        let pod_links_after = exec_in(&node.pod_ns_name("victim"), "ip", &["-o", "link"], true);
        if pod_links_after != pod_links_before {
            failures.push(format!("{name}: pod links changed:\n{pod_links_before}->\n{pod_links_after}"));
        }
        // nothing written outside the data dir by a hostile container ID
        let parent = node.data_dir.path().parent().unwrap();
        if parent.join("escape").exists() || node.data_dir.path().join("escape").exists() {
            failures.push(format!("{name}: a file escaped the IPAM store"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
