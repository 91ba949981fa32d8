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
    /// The address it listens on.
    host: String,
    /// Directory with ca.crt, server.crt/key and client.crt/key, when it serves TLS.
    tls: Option<std::path::PathBuf>,
    client_port: u16,
    peer_port: u16,
    /// More of etcd's flags, as `start_with` was given them.
    flags: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl EtcdServer {
    /// On loopback, in the test's own namespace.
    pub fn start() -> EtcdServer {
        EtcdServer::start_with(&[])
    }

    /// On loopback, with more of etcd's flags (`--auth-token-ttl 2`, say).
    pub fn start_with(flags: &[&str]) -> EtcdServer {
        EtcdServer::start_on("127.0.0.1", flags)
    }

    /// On `host` (an address as a URL writes it: `[::1]` for IPv6).
    fn start_on(host: &str, flags: &[&str]) -> EtcdServer {
        let dir =
            tempfile::Builder::new().prefix(&format!("{}etcd", super::unique_prefix())).tempdir().unwrap();
        let mut server = EtcdServer {
            child: None,
            dir,
            host: host.into(),
            tls: None,
            client_port: free_port(),
            peer_port: free_port(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        server.resume();
        server
    }

    /// On the IPv6 loopback `[::1]`: a store URL with a bracketed IPv6 host.
    pub fn start_on_ipv6() -> EtcdServer {
        EtcdServer::start_on("[::1]", &[])
    }

    /// On loopback, serving TLS and asking clients for a certificate signed by a CA made
    /// for the test (openssl). The client's files are in `tls_dir()`.
    pub fn start_tls() -> EtcdServer {
        let dir =
            tempfile::Builder::new().prefix(&format!("{}etcd", super::unique_prefix())).tempdir().unwrap();
        let certs = dir.path().join("tls");
        std::fs::create_dir_all(&certs).unwrap();
        make_certificates(&certs);
        let mut server = EtcdServer {
            child: None,
            dir,
            host: "127.0.0.1".into(),
            tls: Some(certs),
            client_port: free_port(),
            peer_port: free_port(),
            flags: Vec::new(),
        };
        server.resume();
        server
    }

    pub fn tls_dir(&self) -> Option<&std::path::Path> {
        self.tls.as_deref()
    }

    /// The store URL with the client's certificate.
    pub fn tls_url(&self) -> String {
        let tls = self.tls.as_ref().expect("a TLS server");
        format!(
            "etcd://{}?ca={}&cert={}&key={}",
            self.endpoint(),
            tls.join("ca.crt").display(),
            tls.join("client.crt").display(),
            tls.join("client.key").display()
        )
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
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}:{}", self.host, self.client_port);
        let peer = format!("http://{}:{}", self.host, self.peer_port);
        // The lab's etcd command, with TLS when asked.
        let mut command = weft_lab::etcd::command(&self.dir.path().join("data"), &client, &peer);
        let child = command
            .args(self.tls.iter().flat_map(|tls| {
                [
                    "--cert-file".into(),
                    tls.join("server.crt").display().to_string(),
                    "--key-file".into(),
                    tls.join("server.key").display().to_string(),
                    "--client-cert-auth".into(),
                    "--trusted-ca-file".into(),
                    tls.join("ca.crt").display().to_string(),
                ]
            }))
            .args(&self.flags)
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
        if self.tls.is_some() {
            return weft_store::open(&self.tls_url()).is_ok_and(|store| store.network().is_ok());
        }
        let (host, port) = (self.host.trim_start_matches('[').trim_end_matches(']'), self.client_port);
        let Ok(mut stream) = TcpStream::connect((host, port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /health HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n");
        let mut reply = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut reply).is_ok()
            && reply.contains("\"health\":\"true\"")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.pause();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl. The
/// server's certificate is also good for client authentication: etcd's JSON gateway dials
/// etcd itself with it, and fails under --client-cert-auth otherwise.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let status =
            Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=weft-test-ca"],
    ]
    .concat());
    for (name, extension) in [
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), extension).unwrap();
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN=weft-{name}"),
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
}
