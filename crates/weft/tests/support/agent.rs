//! A real `weft agent` on a test [`Node`]: a one-node cluster on a SQLite store, the agent
//! running inside the node's namespace with its uplink `up0`, its state dir the node's, and
//! `/metrics`, `/healthz` and `/readyz` on the node's loopback. Stopped on drop.
#![allow(dead_code)]

use super::*;
use std::io::Read;
use std::process::Child;

pub const METRICS_PORT: u16 = 9473;

pub struct NodeAgent {
    child: Option<Child>,
    /// `sqlite:<path>`.
    pub store: String,
    /// The CNI conf dir the agent writes its list into, if any.
    pub cni_conf_dir: Option<PathBuf>,
    /// The list it writes there (`--cni-conflist`; else weft's default).
    pub cni_conflist: Option<PathBuf>,
    pub log: PathBuf,
    ns_path: PathBuf,
}

impl NodeAgent {
    /// The store lives in the node's data dir and exists (an agent refuses an `sqlite:` path
    /// with no store: a typo), but the network is not initialised yet.
    pub fn new(node: &Node, cni_conf_dir: Option<&Path>) -> NodeAgent {
        // The loopback carries the agent's metrics (and containerd's streaming server).
        node.ip(&["link", "set", "lo", "up"]);
        weft_store::sqlite::SqliteStore::open(node.data_dir.path().join("store.db")).unwrap();
        NodeAgent {
            child: None,
            store: format!("sqlite:{}", node.data_dir.path().join("store.db").display()),
            cni_conf_dir: cni_conf_dir.map(Path::to_path_buf),
            cni_conflist: None,
            log: node.data_dir.path().join("agent.log"),
            ns_path: node.ns.path().to_path_buf(),
        }
    }

    /// `weft network init` on the agent's store: the `route` backend, pods from 10.244.0.0/16.
    pub fn init_network(&self) {
        let output = Command::new(WEFT)
            .args([
                "network",
                "init",
                "--store",
                &self.store,
                "--cidr",
                "10.244.0.0/16",
                "--backend",
                "route",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "network init: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Starts the agent (again).
    pub fn start(&mut self, node: &Node) {
        assert!(self.child.is_none(), "the agent runs already");
        let mut command = Command::new(WEFT);
        command
            .args(["agent", "--store", &self.store, "--node", "n1", "--iface", "up0", "--state-dir"])
            .arg(node.state_dir.path())
            .args(["--lease-ttl", "6", "--resync", "1", "--metrics-address"])
            .arg(format!("127.0.0.1:{METRICS_PORT}"));
        if let Some(dir) = &self.cni_conf_dir {
            command.arg("--cni-conf-dir").arg(dir);
        }
        if let Some(file) = &self.cni_conflist {
            command.arg("--cni-conflist").arg(file);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        runs_in(&mut command, &node.ns);
        self.child = Some(command.spawn().expect("start weft agent"));
    }

    /// Stops the agent with SIGTERM, as a DaemonSet's pod is stopped, and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// GET `path` of the agent's endpoint, from inside the node: (status code, body), or
    /// None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let ns_path = self.ns_path.clone();
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        std::thread::spawn(move || {
            NetNs::open(&ns_path).unwrap().enter().unwrap();
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT)).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            std::io::Write::write_all(&mut stream, request.as_bytes()).ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).ok()?;
            let code = text.split_whitespace().nth(1)?.parse().ok()?;
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
            Some((code, body))
        })
        .join()
        .unwrap()
    }

    /// Waits until `/readyz` says 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get("/readyz").map(|(code, _)| code) != Some(200) {
            assert!(Instant::now() < deadline, "the agent never got ready:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
