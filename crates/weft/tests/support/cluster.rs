//! A cluster of node namespaces on one switch, each running a real `weft agent` against a
//! shared SQLite store, with pods wired by the CNI plugin from the agent's node file.
//! (The lab, issue 4, is to become the one harness; this is the agent's until then.)
#![allow(dead_code)]

use super::*;
use std::process::Child;

pub struct ClusterNode {
    pub name: String,
    pub ns_name: String,
    pub ns: NetNs,
    pub ip: String,
    pub state_dir: PathBuf,
    pub agent: Option<Child>,
    pub pods: Vec<(String, String)>, // (namespace name, pod IP)
}

pub struct Cluster {
    /// The etcd server inside the switch namespace, when the cluster runs on etcd.
    pub etcd: Option<super::etcd::EtcdServer>,
    pub prefix: String,
    pub switch: String,
    pub store: String,
    pub dir: tempfile::TempDir,
    pub nodes: Vec<ClusterNode>,
}

impl Cluster {
    /// `nodes` nodes on one segment (192.0.2.0/24), the network initialised with `backend`,
    /// on an embedded SQLite store.
    pub fn new(nodes: usize, backend: &str) -> Cluster {
        Cluster::build(nodes, 1, backend, false)
    }

    /// `nodes` nodes spread over `racks` segments (192.0.2.0/24, 198.51.100.0/24, ...)
    /// joined by a router (the switch namespace routes between its rack bridges), on SQLite.
    pub fn racks(racks: usize, nodes: usize, backend: &str) -> Cluster {
        Cluster::build(nodes, racks, backend, false)
    }

    /// The same on a real etcd, which runs in the switch namespace on 192.0.2.1, where
    /// every node reaches it.
    pub fn on_etcd(nodes: usize, backend: &str) -> Cluster {
        Cluster::build(nodes, 1, backend, true)
    }

    fn build(nodes: usize, racks: usize, backend: &str, etcd: bool) -> Cluster {
        const RACK_NETS: [&str; 3] = ["192.0.2", "198.51.100", "203.0.113"];
        let prefix = unique_prefix();
        let dir = tempfile::Builder::new().prefix(&format!("{prefix}cluster")).tempdir().unwrap();
        let switch = format!("{prefix}sw");
        let switch_ns = netns::create_named(&switch).unwrap();
        // one bridge per rack, the switch namespace routing between them
        for (r, net) in RACK_NETS.iter().enumerate().take(racks) {
            exec_in(&switch, "ip", &["link", "add", &format!("br{r}"), "type", "bridge"], true);
            exec_in(&switch, "ip", &["addr", "add", &format!("{net}.1/24"), "dev", &format!("br{r}")], true);
            exec_in(&switch, "ip", &["link", "set", &format!("br{r}"), "up"], true);
        }
        exec_in(&switch, "sysctl", &["-qw", "net.ipv4.ip_forward=1"], true);
        let etcd = etcd.then(|| super::etcd::EtcdServer::start_in(Some(&switch), "192.0.2.1", 2379, 2380));
        let store = match &etcd {
            Some(etcd) => etcd.url(),
            None => format!("sqlite:{}", dir.path().join("weft.db").display()),
        };
        let mut cluster =
            Cluster { etcd, prefix: prefix.clone(), switch: switch.clone(), store, dir, nodes: Vec::new() };
        for n in 1..=nodes {
            let ns_name = format!("{prefix}n{n}");
            let ns = netns::create_named(&ns_name).unwrap();
            let rack = (n - 1) % racks;
            let ip = format!("{}.{}", RACK_NETS[rack], 10 + n);
            exec_in(
                &switch,
                "ip",
                &["link", "add", &format!("p{n}"), "type", "veth", "peer", "name", "up0", "netns", &ns_name],
                true,
            );
            exec_in(
                &switch,
                "ip",
                &["link", "set", &format!("p{n}"), "master", &format!("br{rack}"), "up"],
                true,
            );
            exec_in(&ns_name, "ip", &["addr", "add", &format!("{ip}/24"), "dev", "up0"], true);
            exec_in(&ns_name, "ip", &["link", "set", "up0", "up"], true);
            exec_in(
                &ns_name,
                "ip",
                &["route", "add", "default", "via", &format!("{}.1", RACK_NETS[rack])],
                true,
            );
            let state_dir = cluster.dir.path().join(format!("n{n}"));
            cluster.nodes.push(ClusterNode {
                name: format!("node-{n}"),
                ns_name,
                ns,
                ip,
                state_dir,
                agent: None,
                pods: Vec::new(),
            });
        }
        // From the switch's namespace, where the store is reachable either way.
        let mut command = Command::new(WEFT);
        command.args([
            "network",
            "init",
            "--store",
            &cluster.store,
            "--cidr",
            "10.244.0.0/16",
            "--backend",
            backend,
        ]);
        runs_in(&mut command, &switch_ns);
        let init = command.output().unwrap();
        assert!(init.status.success(), "network init: {}", String::from_utf8_lossy(&init.stderr));
        cluster
    }

    /// Starts (or restarts) node `i`'s agent.
    pub fn start_agent(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut command = Command::new(WEFT);
        command.args([
            "agent",
            "--store",
            &self.store,
            "--node",
            &node.name,
            "--iface",
            "up0",
            "--state-dir",
            node.state_dir.to_str().unwrap(),
            "--lease-ttl",
            "6",
            "--resync",
            "1",
        ]);
        runs_in(&mut command, &node.ns);
        node.agent = Some(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start agent"));
    }

    /// Stops node `i`'s agent: SIGTERM (clean) or SIGKILL (a crash).
    pub fn stop_agent(&mut self, i: usize, signal: libc::c_int) {
        if let Some(mut agent) = self.nodes[i].agent.take() {
            // SAFETY: signalling a child we started.
            unsafe { libc::kill(agent.id() as libc::pid_t, signal) };
            let _ = agent.wait();
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start_agent(i);
        }
        for node in &self.nodes {
            wait_for(
                Duration::from_secs(20),
                || node.state_dir.join("node.json").exists(),
                &format!("{} node file", node.name),
            );
        }
    }

    /// Adds a pod on node `i` through the CNI plugin, configured by the node file.
    pub fn add_pod(&mut self, i: usize, name: &str) -> String {
        let node = &self.nodes[i];
        let ns_name = format!("{}{}-{name}", self.prefix, node.name);
        netns::create_named(&ns_name).unwrap();
        let netns = format!("{}/{ns_name}", netns::NETNS_RUN_DIR);
        let conf = json!({
            "cniVersion": "1.1.0", "name": "pods", "type": "weft",
            "stateDir": node.state_dir, "dataDir": node.state_dir.join("ipam"),
        });
        let vars = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", name),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REFERENCE_PLUGINS),
        ];
        let result = run_plugin_in(&node.ns, WEFT, &vars, &conf.to_string()).expect_ok("pod ADD");
        let ip = result_ip(&result, false);
        self.nodes[i].pods.push((ns_name, ip.clone()));
        ip
    }

    pub fn all_pods(&self) -> Vec<(String, String)> {
        self.nodes.iter().flat_map(|n| n.pods.clone()).collect()
    }

    /// Pairs of pods that cannot reach each other.
    pub fn unreachable_pairs(&self) -> Vec<(String, String)> {
        let pods = self.all_pods();
        let mut broken = Vec::new();
        for (from, _) in &pods {
            for (_, to) in &pods {
                if !pings(from, to) {
                    broken.push((from.clone(), to.clone()));
                }
            }
        }
        broken
    }
}

pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_agent(i, libc::SIGKILL);
        }
        for node in &self.nodes {
            for (pod, _) in &node.pods {
                let _ = netns::delete_named(pod);
            }
            let _ = netns::delete_named(&node.ns_name);
        }
        if let Some(etcd) = self.etcd.as_mut() {
            etcd.pause();
        }
        let _ = netns::delete_named(&self.switch);
    }
}
