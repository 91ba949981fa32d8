//! The harness of the kernel-touching tests: a node namespace with an uplink, pod
//! namespaces, and the plugin driven the way a container runtime drives it (exec with the
//! spec's variables and the config on stdin, from inside the node's namespace).
//!
//! Every name starts with `wtest-<pid>-<n>-` and everything is removed on drop, so a test
//! never touches the root namespace and leaves nothing behind.
#![allow(dead_code)]

pub mod agent;
pub mod cri;
pub mod etcd;
pub mod lab;

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use weft_kernel::{netns, NetNs, Netlink};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");
pub const TEST_PREFIX: &str = "wtest-";
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";
/// The node's address on its uplink (a documentation range; it exists only in the test's
/// namespaces).
pub const NODE_IP: &str = "192.0.2.10";
pub const NODE_IP6: &str = "2001:db8::10";
pub const UPLINK_MTU: u32 = 1400;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique_prefix() -> String {
    format!("{TEST_PREFIX}{}-{}-", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// One plugin run as a runtime sees it.
#[derive(Debug)]
pub struct PluginRun {
    pub stdout: String,
    pub exit_code: Option<i32>,
    pub stderr: String,
}

impl PluginRun {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Asserts success and returns the parsed result (Null for empty output).
    pub fn expect_ok(&self, what: &str) -> Value {
        assert!(
            self.ok(),
            "{what} failed: exit {:?}, stdout {}, stderr {}",
            self.exit_code,
            self.stdout,
            self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a CNI error with `code` and returns the error object.
    pub fn expect_error(&self, code: u64, what: &str) -> Value {
        assert_ne!(self.exit_code, Some(0), "{what}: expected error {code}, got success: {}", self.stdout);
        let error = self.json();
        assert_eq!(error["code"].as_u64(), Some(code), "{what}: {error}");
        assert!(error["msg"].is_string(), "{what}: error without msg: {error}");
        error
    }
}

pub struct Node {
    pub prefix: String,
    pub ns_name: String,
    pub ns: NetNs,
    pub data_dir: tempfile::TempDir,
    pub state_dir: tempfile::TempDir,
    pods: Vec<String>,
}

impl Node {
    /// A node namespace with an uplink veth (`up0`, NODE_IP/24, MTU 1400) and a default
    /// route through it, like a real node's.
    pub fn new() -> Node {
        Node::new_under(&std::env::temp_dir())
    }

    /// [`Node::new`] with the plugins' state (IPAM, node file) in a directory under `base`.
    /// The benchmark uses /var/lib, where the plugins keep it by default: on this
    /// machine's ext4, creating a name under /tmp costs ≈ 200 µs and under /var/lib ≈ 30 µs.
    pub fn new_under(base: &Path) -> Node {
        let prefix = unique_prefix();
        let ns_name = format!("{prefix}node");
        let ns = netns::create_named(&ns_name).expect("create node namespace");
        let node = Node {
            prefix: prefix.clone(),
            ns_name,
            ns,
            data_dir: tempfile::Builder::new().prefix(&format!("{prefix}data")).tempdir_in(base).unwrap(),
            state_dir: tempfile::Builder::new().prefix(&format!("{prefix}state")).tempdir_in(base).unwrap(),
            pods: Vec::new(),
        };
        node.ip(&[
            "link",
            "add",
            "up0",
            "mtu",
            &UPLINK_MTU.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            "up0peer",
        ]);
        node.ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "up0"]);
        node.ip(&["addr", "add", &format!("{NODE_IP6}/64"), "dev", "up0", "nodad"]);
        node.ip(&["link", "set", "up0", "up"]);
        node.ip(&["link", "set", "up0peer", "up"]);
        node.ip(&["route", "add", "default", "via", "192.0.2.1"]);
        node
    }

    /// Runs `ip` inside the node's namespace (test fixtures only; weft itself uses netlink).
    pub fn ip(&self, args: &[&str]) -> String {
        exec_in(&self.ns_name, "ip", args, true)
    }

    pub fn netlink(&self) -> Netlink {
        Netlink::open_in(&self.ns).expect("netlink in node namespace")
    }

    /// A fresh pod namespace; returns its path.
    pub fn pod(&mut self, name: &str) -> PathBuf {
        let ns_name = format!("{}{name}", self.prefix);
        netns::create_named(&ns_name).expect("create pod namespace");
        self.pods.push(ns_name.clone());
        PathBuf::from(netns::NETNS_RUN_DIR).join(ns_name)
    }

    pub fn pod_ns_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A pod's namespace disappears (as when a runtime tears its sandbox down).
    pub fn remove_pod(&mut self, name: &str) {
        let ns_name = self.pod_ns_name(name);
        netns::delete_named(&ns_name).unwrap();
        self.pods.retain(|p| *p != ns_name);
    }

    /// A config for this node's stores, with `extra` merged in.
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": "testnet",
            "type": "weft",
            "dataDir": self.data_dir.path(),
            "stateDir": self.state_dir.path(),
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            conf[k] = v.clone();
        }
        conf
    }

    /// Runs a CNI plugin binary in the node's namespace, as a runtime does. A `PATH` among
    /// `vars` replaces the default one.
    pub fn run_plugin(&self, binary: &str, vars: &[(&str, &str)], stdin: &str) -> PluginRun {
        run_plugin_in(&self.ns, binary, vars, stdin)
    }

    /// Runs weft with the usual variables for one attachment.
    pub fn weft(&self, command: &str, container_id: &str, netns: Option<&Path>, conf: &Value) -> PluginRun {
        self.weft_with(command, container_id, netns, conf, &[])
    }

    /// [`Node::weft`] with extra environment variables.
    pub fn weft_with(
        &self,
        command: &str,
        container_id: &str,
        netns: Option<&Path>,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> PluginRun {
        let netns = netns.map(|p| p.display().to_string());
        let mut vars = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container_id),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REFERENCE_PLUGINS),
        ];
        if let Some(netns) = &netns {
            vars.push(("CNI_NETNS", netns));
        }
        vars.extend_from_slice(extra);
        self.run_plugin(WEFT, &vars, &conf.to_string())
    }

    /// Addresses IPAM holds, as (address, owner) pairs: the links named by an address
    /// (the store's other links are hints).
    pub fn reservations(&self, network: &str) -> Vec<(String, String)> {
        let dir = self.data_dir.path().join("networks").join(network);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok()))
            .map(|e| {
                let owner = std::fs::read_link(e.path()).unwrap().display().to_string();
                (e.file_name().into_string().unwrap(), owner)
            })
            .collect()
    }

    /// Names of the node's links other than its fixtures (lo, up0, up0peer).
    pub fn extra_links(&self) -> Vec<String> {
        let mut nl = self.netlink();
        nl.links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| !matches!(n.as_str(), "lo" | "up0" | "up0peer"))
            .collect()
    }

    /// Waits (DEL removes veths in the background) until the node has no pod links.
    pub fn wait_for_no_pod_links(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let extra: Vec<String> = self
                .extra_links()
                .into_iter()
                .filter(|n| n.starts_with("wv") || n.starts_with("wx"))
                .collect();
            if extra.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "pod links still on the node: {extra:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn write_node_file(&self, text: &str) {
        std::fs::write(self.state_dir.path().join("node.json"), text).unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for pod in &self.pods {
            let _ = netns::delete_named(pod);
        }
        let _ = netns::delete_named(&self.ns_name);
    }
}

/// Makes `command` run inside `ns` (as a runtime runs a plugin in the host's namespace).
pub use weft_lab::process::runs_in;

pub fn run_plugin_in(ns: &NetNs, binary: &str, vars: &[(&str, &str)], stdin: &str) -> PluginRun {
    let mut command = Command::new(binary);
    command.env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in vars {
        command.env(k, v);
    }
    runs_in(&mut command, ns);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    // A plugin may exit before reading stdin (a bad environment): that is its answer.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    PluginRun {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        exit_code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a program inside a named namespace (`ip netns exec`); panics on failure if `check`.
pub fn exec_in(ns_name: &str, program: &str, args: &[&str], check: bool) -> String {
    let output: Output = Command::new("ip")
        .args(["netns", "exec", ns_name, program])
        .args(args)
        .output()
        .expect("run ip netns exec");
    if check {
        assert!(
            output.status.success(),
            "{program} {args:?} in {ns_name} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pings `target` from `ns_name` every 10 ms, `count` times, while `during` runs (an agent
/// restarting, a link moving); returns ping's summary.
pub fn ping_while(ns_name: &str, target: &str, count: u32, during: impl FnOnce()) -> String {
    std::thread::scope(|scope| {
        let pings = scope.spawn(|| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns_name,
                    "ping",
                    "-q",
                    "-n",
                    "-i",
                    "0.01",
                    "-c",
                    &count.to_string(),
                    target,
                ])
                .output()
                .unwrap()
        });
        during();
        String::from_utf8_lossy(&pings.join().unwrap().stdout).into_owned()
    })
}

/// Whether one ping from `ns_name` to `target` gets an answer.
pub fn pings(ns_name: &str, target: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns_name, "ping", "-c", "1", "-W", "2", target])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The pod's IP (without prefix) from a result, for the given family.
pub fn result_ip(result: &Value, v6: bool) -> String {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().split('/').next().unwrap().to_string())
        .find(|ip| ip.contains(':') == v6)
        .expect("result has an address of that family")
}

/// The config a runtime passes to CHECK or DEL: the original plus the prevResult.
pub fn with_prev_result(conf: &Value, result: &Value) -> Value {
    let mut conf = conf.clone();
    conf["prevResult"] = result.clone();
    conf
}
