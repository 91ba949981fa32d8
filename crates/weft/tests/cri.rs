//! The kubelet's path: a test plays the kubelet against real containerd (Debian's, its CRI
//! plugin built in) over the CRI socket, on a node whose `weft agent` runs and writes the
//! CNI config list. containerd execs `[weft, portmap]` as it does on a Kubernetes node, with
//! the pod's names in `CNI_ARGS` and its `hostPort`s in `runtimeConfig`. Needs root,
//! containerd, runc and the reference plugins (scripts/install-deps.sh installs them).

mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::agent::NodeAgent;
use support::cri::{install_plugins, pings_from, Containerd, Cri, PodSpec};
use support::*;
use weft_kernel::NetNs;

const NETWORK: &str = "weft";

/// A node as a DaemonSet leaves it: plugins installed, the agent running with
/// `--cni-conf-dir` (its list keeps IPAM and the node file in the test's dirs), and
/// containerd reading that conf dir.
struct KubeNode {
    containerd: Containerd,
    agent: NodeAgent,
    conf_dir: PathBuf,
    node: Node,
}

impl KubeNode {
    /// `network_first`: initialise the network (so the agent leases and writes the list)
    /// before containerd starts; else after, to watch the node turn Ready.
    fn new(network_first: bool) -> KubeNode {
        let node = Node::new();
        let bin_dir = node.state_dir.path().join("cni-bin");
        let conf_dir = node.state_dir.path().join("net.d");
        install_plugins(&bin_dir);
        let list = node.data_dir.path().join("10-weft.conflist");
        let text = json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "plugins": [
                { "type": "weft", "stateDir": node.state_dir.path(), "dataDir": node.data_dir.path() },
                { "type": "portmap", "capabilities": { "portMappings": true } },
            ],
        });
        std::fs::write(&list, serde_json::to_string_pretty(&text).unwrap()).unwrap();
        let mut agent = NodeAgent::new(&node, Some(&conf_dir));
        agent.cni_conflist = Some(list);
        if network_first {
            agent.init_network();
        }
        agent.start(&node);
        if network_first {
            agent.wait_ready();
        }
        let containerd = Containerd::start(&node, &bin_dir, &conf_dir);
        KubeNode { containerd, agent, conf_dir, node }
    }

    fn wait_network_ready(&self, cri: &mut Cri) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cri.network_ready().0 {
            assert!(
                Instant::now() < deadline,
                "containerd never loaded the list:\n{}",
                self.containerd.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The owner IPAM recorded for `ip` (the symlink's target, as `ls -l` shows it).
    fn reservation_of(&self, ip: &str) -> Option<String> {
        let link = self.node.data_dir.path().join("networks").join(NETWORK).join(ip);
        std::fs::read_link(link).ok().map(|t| t.display().to_string())
    }

    /// Nothing of removed pod `id` is left: no reservation, no veth, no host route, no
    /// namespace.
    fn assert_gone(&self, id: &str, ip: &str, netns: &Path) {
        assert_eq!(self.reservation_of(ip), None, "{ip} is still reserved");
        assert!(!netns.exists(), "the pod's namespace {} is still there", netns.display());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut nl = self.node.netlink();
            let routes = nl.routes(false).unwrap();
            let route = routes.iter().any(|r| r.destination.addr().to_string() == ip);
            let veth = weft_core::names::host_veth_name(id, "eth0");
            if !route && !self.node.extra_links().contains(&veth) {
                break;
            }
            assert!(Instant::now() < deadline, "the pod's veth or host route to {ip} is still there");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn stop_and_remove(cri: &mut Cri, id: &str) {
    cri.stop_pod(id).unwrap_or_else(|e| panic!("StopPodSandbox {id}: {e}"));
    cri.remove_pod(id).unwrap_or_else(|e| panic!("RemovePodSandbox {id}: {e}"));
}

/// A server in the pod's namespace on `port` that answers one connection.
fn serve_once(netns: &Path, port: u16) -> std::thread::JoinHandle<()> {
    let netns = netns.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        NetNs::open(&netns).unwrap().enter().unwrap();
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut client, _) = listener.accept().unwrap();
        client.write_all(b"hello from web-0").unwrap();
    });
    ready_rx.recv().unwrap();
    server
}

fn fetch_from(ns: &NetNs, address: String) -> std::io::Result<String> {
    let ns_path = ns.path().to_path_buf();
    std::thread::spawn(move || {
        NetNs::open(&ns_path).unwrap().enter().unwrap();
        let mut stream =
            std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
    .join()
    .unwrap()
}

#[test]
fn the_kubelets_path_run_status_reach_stop_remove() {
    let kube = KubeNode::new(false);
    let mut cri = kube.containerd.client();

    // Before the agent has a lease there is no list: the runtime says the network is not
    // ready, and the kubelet holds the node NotReady.
    let (ready, reason) = cri.network_ready();
    assert!(!ready, "NetworkReady before any list: {reason}");
    assert!(reason.contains("NetworkPluginNotReady"), "{reason}");
    kube.agent.init_network();
    kube.agent.wait_ready();
    kube.wait_network_ready(&mut cri);

    // RunPodSandbox, as the kubelet sends it for two pods, web-0 with a hostPort.
    let web = cri
        .run_pod(&PodSpec { namespace: "default", name: "web-0", host_ports: &[(18080, 8080)] })
        .unwrap_or_else(|e| panic!("RunPodSandbox web-0: {e}\n{}", kube.containerd.log_text()));
    let db = cri.run_pod(&PodSpec { namespace: "default", name: "db-0", host_ports: &[] }).unwrap();
    // PodSandboxStatus: the IP the kubelet reports is the one weft gave.
    let (web_ip, web_ns) = cri.pod_status(&web);
    let (db_ip, db_ns) = cri.pod_status(&db);
    let node_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(kube.node.state_dir.path().join("node.json")).unwrap())
            .unwrap();
    let subnet: ipnet::IpNet = node_file["subnets"][0]["subnet"].as_str().unwrap().parse().unwrap();
    for ip in [&web_ip, &db_ip] {
        assert!(subnet.contains(&ip.parse::<std::net::IpAddr>().unwrap()), "{ip} not in {subnet}");
    }
    assert_ne!(web_ip, db_ip);
    // IPAM names the pods: `ls -l` of the store says default/web-0.
    assert_eq!(kube.reservation_of(&web_ip), Some(format!("default/web-0/{web}/eth0")));
    assert_eq!(kube.reservation_of(&db_ip), Some(format!("default/db-0/{db}/eth0")));
    let status = exec_in(
        &kube.node.ns_name,
        WEFT,
        &[
            "status",
            "--state-dir",
            kube.node.state_dir.path().to_str().unwrap(),
            "--data-dir",
            kube.node.data_dir.path().to_str().unwrap(),
        ],
        true,
    );
    assert!(status.contains("pods (2):"), "{status}");
    assert!(status.contains("default/web-0") && status.contains(&web_ip), "{status}");
    // The node's trace names the pod, asked by address or by name.
    for to in [web_ip.as_str(), "default/web-0"] {
        let trace = Command::new("ip")
            .args(["netns", "exec", &kube.node.ns_name, WEFT, "trace", "--state-dir"])
            .arg(kube.node.state_dir.path())
            .arg("--data-dir")
            .arg(kube.node.data_dir.path())
            .arg(to)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&trace.stdout);
        assert!(
            text.contains(&format!("→ default/web-0 ({web_ip})")),
            "{to}: {text}{}",
            String::from_utf8_lossy(&trace.stderr)
        );
    }

    // Pod to pod, pod to node, node to pod.
    assert!(pings_from(&web_ns, &db_ip), "web-0 does not reach db-0");
    assert!(pings_from(&db_ns, &web_ip), "db-0 does not reach web-0");
    assert!(pings_from(&web_ns, NODE_IP), "web-0 does not reach its node");
    assert!(pings(&kube.node.ns_name, &web_ip), "the node does not reach web-0");

    // The hostPort, through portmap, from the node.
    let server = serve_once(&web_ns, 8080);
    let text = fetch_from(&kube.node.ns, format!("{NODE_IP}:18080")).expect("connect to the hostPort");
    assert_eq!(text, "hello from web-0");
    server.join().unwrap();

    // StopPodSandbox, twice (the kubelet repeats it; containerd relies on DEL being
    // idempotent), then RemovePodSandbox: nothing of the pod is left.
    cri.stop_pod(&web).unwrap();
    cri.stop_pod(&web).unwrap_or_else(|e| panic!("StopPodSandbox again: {e}"));
    assert_eq!(kube.reservation_of(&web_ip), None, "StopPodSandbox frees the address");
    cri.remove_pod(&web).unwrap();
    kube.assert_gone(&web, &web_ip, &web_ns);
    let rules = exec_in(&kube.node.ns_name, "iptables-save", &["-t", "nat"], true);
    assert!(!rules.contains(&web_ip), "portmap's rules for web-0 are gone:\n{rules}");
    assert!(pings_from(&db_ns, NODE_IP), "db-0 is untouched");
    stop_and_remove(&mut cri, &db);
    kube.assert_gone(&db, &db_ip, &db_ns);
    kube.node.wait_for_no_pod_links();
    assert!(kube.conf_dir.join("10-weft.conflist").exists());
}

#[test]
fn pods_outlive_a_containerd_restart_and_are_removed_while_the_agent_is_down() {
    let mut kube = KubeNode::new(true);
    let mut cri = kube.containerd.client();
    kube.wait_network_ready(&mut cri);
    let a = cri.run_pod(&PodSpec { namespace: "default", name: "a", host_ports: &[] }).unwrap();
    let b = cri.run_pod(&PodSpec { namespace: "prod", name: "b", host_ports: &[] }).unwrap();
    let (a_ip, a_ns) = cri.pod_status(&a);
    let (b_ip, b_ns) = cri.pod_status(&b);

    // containerd restarts (an upgrade): the pods run on in their shims and keep their
    // addresses, and the restarted runtime reports the same ones.
    drop(cri);
    kube.containerd.stop();
    assert!(pings_from(&a_ns, &b_ip), "pods talk while containerd is away");
    kube.containerd.resume();
    let mut cri = kube.containerd.client();
    kube.wait_network_ready(&mut cri);
    assert_eq!(cri.pod_status(&a), (a_ip.clone(), a_ns.clone()));
    assert_eq!(cri.pod_status(&b), (b_ip.clone(), b_ns.clone()));
    assert!(pings_from(&b_ns, &a_ip));

    // The agent goes away (its pod restarting): a pod is removed meanwhile, and cleaned up
    // all the same, and a new one is wired from the node file.
    kube.agent.stop();
    stop_and_remove(&mut cri, &a);
    kube.assert_gone(&a, &a_ip, &a_ns);
    let c = cri.run_pod(&PodSpec { namespace: "default", name: "c", host_ports: &[] }).unwrap();
    let (c_ip, c_ns) = cri.pod_status(&c);
    assert_eq!(kube.reservation_of(&c_ip), Some(format!("default/c/{c}/eth0")));
    assert!(pings_from(&c_ns, &b_ip));
    kube.agent.start(&kube.node);
    kube.agent.wait_ready();

    stop_and_remove(&mut cri, &b);
    stop_and_remove(&mut cri, &c);
    kube.assert_gone(&b, &b_ip, &b_ns);
    kube.assert_gone(&c, &c_ip, &c_ns);
    kube.node.wait_for_no_pod_links();
}
