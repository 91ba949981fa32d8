//! A real etcd server (Debian's etcd-server) for a test: loopback only, a temporary data
//! dir, free ports; killed and removed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The namespace it runs in (`None`: the test's own) and the address it listens on.
    netns: Option<String>,
    host: String,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl EtcdServer {
    /// On loopback, in the test's own namespace.
    pub fn start() -> EtcdServer {
        EtcdServer::start_in(None, "127.0.0.1", free_port(), free_port())
    }

    /// Inside the test's namespace `netns`, listening on `host` (an address there).
    pub fn start_in(netns: Option<&str>, host: &str, client_port: u16, peer_port: u16) -> EtcdServer {
        let dir =
            tempfile::Builder::new().prefix(&format!("{}etcd", super::unique_prefix())).tempdir().unwrap();
        let mut server = EtcdServer {
            child: None,
            dir,
            netns: netns.map(str::to_string),
            host: host.to_string(),
            client_port,
            peer_port,
        };
        server.resume();
        server
    }

    /// `host:port` for a store URL.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoint())
    }

    /// Starts (again) on the same data and ports.
    pub fn resume(&mut self) {
        let client = format!("http://{}:{}", self.host, self.client_port);
        let peer = format!("http://{}:{}", self.host, self.peer_port);
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, "etcd"]);
                command
            }
            None => Command::new("etcd"),
        };
        let child = command
            .args(["--name", "default", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd (Debian's etcd-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.healthy() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (its data stays for `resume`).
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn healthy(&self) -> bool {
        let (netns, host, port) = (self.netns.clone(), self.host.clone(), self.client_port);
        // Asked from inside its namespace, on a thread of its own.
        std::thread::spawn(move || {
            if let Some(netns) = netns {
                let path = format!("{}/{netns}", weft_kernel::netns::NETNS_RUN_DIR);
                if weft_kernel::NetNs::open(path).and_then(|ns| ns.enter()).is_err() {
                    return false;
                }
            }
            let Ok(mut stream) = TcpStream::connect((host.as_str(), port)) else { return false };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!("GET /health HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n");
            let mut reply = String::new();
            stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut reply).is_ok()
                && reply.contains("\"health\":\"true\"")
        })
        .join()
        .unwrap_or(false)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.pause();
    }
}
