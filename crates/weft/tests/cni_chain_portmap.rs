//! A config list `[weft, portmap]` driven the way a runtime drives it: ADD through the
//! chain with each plugin's result passed on as the next one's prevResult, CHECK, then
//! DEL in reverse order. Real traffic crosses the host port in between. Needs root and
//! Debian's containernetworking-plugins (portmap, with iptables in the node namespace).

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use support::*;
use weft_kernel::NetNs;

const HOST_PORT: u16 = 18080;
const POD_PORT: u16 = 8080;

/// The config list, and what the runtime makes of it for one plugin.
fn plugin_conf(list: &Value, index: usize, prev_result: Option<&Value>) -> Value {
    let mut conf = list["plugins"][index].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    // The runtime turns the capabilities a plugin declares into runtimeConfig.
    if conf["capabilities"]["portMappings"] == true {
        conf["runtimeConfig"] =
            json!({"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]});
        conf.as_object_mut().unwrap().remove("capabilities");
    }
    if let Some(prev) = prev_result {
        conf["prevResult"] = prev.clone();
    }
    conf
}

/// Debian's portmap (1.1.1) CHECKs its IPv4 rules in ip6tables too whenever ip6tables is
/// usable, and so fails on every pod (containernetworking/plugins#819, fixed upstream
/// later). It skips IPv6 when no `ip6tables` is on its PATH, as on an IPv4-only host: the
/// runtime here runs the chain with such a PATH.
fn ipv4_only_path(dir: &std::path::Path) -> String {
    let bin = dir.join("ipv4-only-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["iptables", "iptables-save", "iptables-restore"] {
        let _ = std::os::unix::fs::symlink(format!("/usr/sbin/{tool}"), bin.join(tool));
    }
    format!("{}:/usr/bin:/bin", bin.display())
}

fn binary(list: &Value, index: usize) -> String {
    match list["plugins"][index]["type"].as_str().unwrap() {
        "weft" => WEFT.to_string(),
        other => format!("{REFERENCE_PLUGINS}/{other}"),
    }
}

/// Connects from inside `ns` and returns what the server said.
fn fetch_from(ns: &NetNs, address: &str) -> std::io::Result<String> {
    let ns_path = ns.path().to_path_buf();
    let address = address.to_string();
    std::thread::spawn(move || {
        NetNs::open(&ns_path).unwrap().enter().unwrap();
        let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
    .join()
    .unwrap()
}

#[test]
fn weft_then_portmap_through_add_check_del() {
    let mut node = Node::new();
    let pod = node.pod("web");
    let netns = pod.display().to_string();
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "testnet",
        "plugins": [
            node.conf("1.0.0", json!({ "subnet": "10.244.40.0/24" })),
            { "type": "portmap", "capabilities": {"portMappings": true}, "snat": true }
        ]
    });
    let path = ipv4_only_path(node.state_dir.path());
    let vars = |command: &'static str| {
        vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "pod-web"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REFERENCE_PLUGINS),
            ("PATH", path.as_str()),
        ]
    };

    // ADD, first to last, each result feeding the next plugin.
    let mut result: Option<Value> = None;
    for index in 0..2 {
        let conf = plugin_conf(&list, index, result.as_ref());
        let run = node.run_plugin(&binary(&list, index), &vars("ADD"), &conf.to_string());
        result = Some(run.expect_ok(&format!("ADD {}", binary(&list, index))));
    }
    let result = result.unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    let pod_ip = result_ip(&result, false);

    // A server in the pod, reached through the node's port.
    let pod_ns = NetNs::open(&pod).unwrap();
    let server = {
        let pod_path = pod.clone();
        std::thread::spawn(move || {
            NetNs::open(&pod_path).unwrap().enter().unwrap();
            let listener = TcpListener::bind(("0.0.0.0", POD_PORT)).unwrap();
            let (mut client, _) = listener.accept().unwrap();
            client.write_all(b"hello from the pod").unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let _ = &pod_ns;
    let text =
        fetch_from(&node.ns, &format!("{NODE_IP}:{HOST_PORT}")).expect("connect through the host port");
    assert_eq!(text, "hello from the pod");
    server.join().unwrap();
    let rules = exec_in(&node.ns_name, "iptables-save", &["-t", "nat"], true);
    assert!(rules.contains(&pod_ip), "portmap's DNAT to the pod is in the node's table:\n{rules}");

    // CHECK, every plugin with the final result.
    for index in 0..2 {
        let conf = plugin_conf(&list, index, Some(&result));
        node.run_plugin(&binary(&list, index), &vars("CHECK"), &conf.to_string()).expect_ok("CHECK");
    }

    // DEL, last to first.
    for index in (0..2).rev() {
        let conf = plugin_conf(&list, index, Some(&result));
        node.run_plugin(&binary(&list, index), &vars("DEL"), &conf.to_string()).expect_ok("DEL");
    }
    let rules = exec_in(&node.ns_name, "iptables-save", &["-t", "nat"], true);
    assert!(!rules.contains(&pod_ip), "portmap's rules are gone:\n{rules}");
    assert!(fetch_from(&node.ns, &format!("{NODE_IP}:{HOST_PORT}")).is_err(), "the host port is closed");
    assert!(node.reservations("testnet").is_empty());
    node.wait_for_no_pod_links();
}
