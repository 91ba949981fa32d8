//! A real containerd (Debian's, CRI plugin built in) on a test [`Node`], and the kubelet's
//! side of the CRI over its socket.
//!
//! containerd runs inside the node's network namespace (so the CNI plugins it execs wire
//! pods into that node) with a root, state dir, socket and config of its own under the
//! test's directory: CNI `bin_dir`/`conf_dir` are the test's, pod namespaces are mounted
//! under its state dir, the snapshotter is `native` (no overlay mounts to leave behind),
//! and the sandbox image is a pause image the test builds: a static C program that blocks
//! until signalled, in an OCI image layout the test writes and imports with `ctr` (no
//! registry is reached). Stopped and removed on drop.
#![allow(dead_code)]

use super::*;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata,
    PodSandboxStatusRequest, PortMapping, Protocol, RemovePodSandboxRequest, RunPodSandboxRequest,
    StatusRequest, StopPodSandboxRequest,
};
use std::process::Child;
use tonic::transport::{Channel, Endpoint, Uri};

pub const PAUSE_IMAGE: &str = "weft.test/pause:1";

/// The pause program, after Kubernetes' own: it only waits, exits on SIGINT/SIGTERM, and
/// reaps whatever it inherits.
const PAUSE_C: &str = r#"
#include <signal.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/wait.h>
static void down(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction a = {0};
    a.sa_handler = down;
    sigaction(SIGINT, &a, NULL);
    sigaction(SIGTERM, &a, NULL);
    a.sa_handler = reap;
    a.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &a, NULL);
    for (;;) pause();
}
"#;

pub struct Containerd {
    pub dir: tempfile::TempDir,
    /// The pods' cgroup parent (as the kubelet gives one per pod), named for the test.
    pub cgroup_parent: String,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    ns_path: PathBuf,
    child: Option<Child>,
}

fn run_checked(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sha256_of(path: &Path) -> String {
    let out = run_checked(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_string()
}

/// Builds the pause image as an OCI image layout in a tar archive under `dir`, as `ctr
/// images import` takes it; returns the archive.
pub fn pause_image(dir: &Path) -> PathBuf {
    let work = dir.join("pause-build");
    let (layer_dir, layout) = (work.join("layer"), work.join("layout"));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&layer_dir).unwrap();
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(work.join("pause.c"), PAUSE_C).unwrap();
    run_checked(
        Command::new("cc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(layer_dir.join("pause"))
            .arg(work.join("pause.c")),
    );
    let layer = work.join("layer.tar");
    run_checked(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C"])
            .arg(&layer_dir)
            .arg("-cf")
            .arg(&layer)
            .arg("pause"),
    );
    // A blob: stored under its digest; returns (digest, size).
    let blob = |path: &Path| -> (String, u64) {
        let digest = sha256_of(path);
        std::fs::copy(path, blobs.join(&digest)).unwrap();
        (format!("sha256:{digest}"), std::fs::metadata(path).unwrap().len())
    };
    let write_blob = |name: &str, value: &Value| -> (String, u64) {
        let path = work.join(name);
        std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
        blob(&path)
    };
    let (layer_digest, layer_size) = blob(&layer);
    let (config_digest, config_size) = write_blob(
        "config.json",
        &json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Entrypoint": ["/pause"] },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        }),
    );
    let (manifest_digest, manifest_size) = write_blob(
        "manifest.json",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }],
        }),
    );
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": { "architecture": "amd64", "os": "linux" },
            "annotations": { "io.containerd.image.name": PAUSE_IMAGE, "org.opencontainers.image.ref.name": "1" },
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let archive = dir.join("pause.tar");
    run_checked(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg("."));
    archive
}

impl Containerd {
    /// Writes the config and starts containerd inside `node`'s namespace, its CNI dirs
    /// `bin_dir` and `conf_dir`; imports the pause image and waits until the CRI serves it.
    pub fn start(node: &Node, bin_dir: &Path, conf_dir: &Path) -> Containerd {
        node.ip(&["link", "set", "lo", "up"]); // the CRI's streaming server listens there
        let dir = tempfile::Builder::new().prefix(&format!("{}containerd", node.prefix)).tempdir().unwrap();
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        let path = |name: &str| dir.path().join(name).display().to_string();
        let text = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
# Nothing of the machine's own: no /opt plugins, no tracing, no snapshotters but native.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  level = "info"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # A kubelet gives the pause container oom_score_adj -998; lowering a score needs more
  # than the test machines grant this process tree (runc: "failed to update
  # /proc/self/oom_score_adj: Permission denied"). Capped at containerd's own score.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"#,
            root = path("root"),
            state = path("state"),
            runc_root = path("runc"),
            socket = socket.display(),
            bin_dir = bin_dir.display(),
            conf_dir = conf_dir.display(),
        );
        std::fs::write(&config, text).unwrap();
        let mut containerd = Containerd {
            cgroup_parent: format!("/{}pods", node.prefix),
            log: dir.path().join("containerd.log"),
            dir,
            socket,
            config,
            ns_path: node.ns.path().to_path_buf(),
            child: None,
        };
        containerd.resume();
        let image = pause_image(containerd.dir.path());
        run_checked(
            Command::new("ctr")
                .arg("--address")
                .arg(&containerd.socket)
                .args(["-n", "k8s.io", "images", "import", "--snapshotter", "native"])
                .arg(&image),
        );
        let mut cri = containerd.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cri.has_image(PAUSE_IMAGE) {
            assert!(
                Instant::now() < deadline,
                "the CRI never saw the pause image:\n{}",
                containerd.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        containerd
    }

    /// Starts containerd (again) on its config, and waits for its socket.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "containerd runs already");
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new("containerd");
        command
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let ns = NetNs::open(&self.ns_path).unwrap(); // open until the child has entered it
        runs_in(&mut command, &ns);
        self.child = Some(command.spawn().expect("start containerd (Debian: containerd)"));
        drop(ns);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < deadline, "containerd did not start:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket answers before the CRI plugin has loaded its state ("server is not
        // initialized yet"): wait for a status, as the kubelet does.
        let mut cri = self.client();
        while cri.network_ready().1.starts_with("no status") {
            assert!(Instant::now() < deadline, "the CRI never answered:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops containerd with SIGTERM, as systemd does; its shims, and so the pods, run on.
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

    pub fn client(&self) -> Cri {
        let mut cri = Cri::connect(&self.socket);
        cri.cgroup_parent = self.cgroup_parent.clone();
        cri
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The pids of the shims this containerd started (they outlive it).
    fn shims(&self) -> Vec<i32> {
        let address = self.socket.display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let text = String::from_utf8_lossy(&cmdline);
                text.starts_with("/usr/bin/containerd-shim") && text.contains(&address)
            })
            .collect()
    }
}

impl Drop for Containerd {
    /// Whatever a failed test left running: every pod removed through the CRI (so the
    /// plugins' DELs run), then containerd stopped, and any shim it left killed.
    fn drop(&mut self) {
        if self.child.is_some() {
            let mut cri = self.client();
            for id in cri.pod_ids() {
                let _ = cri.stop_pod(&id);
                let _ = cri.remove_pod(&id);
            }
        }
        self.stop();
        for pid in self.shims() {
            // SAFETY: a shim of this test's containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // The pods' cgroup parent in every hierarchy (runc removed the pods' own).
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in hierarchies.flatten() {
                remove_cgroup(&hierarchy.path().join(self.cgroup_parent.trim_start_matches('/')));
            }
        }
        remove_cgroup(&Path::new("/sys/fs/cgroup").join(self.cgroup_parent.trim_start_matches('/')));
        // Pod namespaces a failed test left mounted under the state dir.
        let netns = self.dir.path().join("state/io.containerd.grpc.v1.cri/netns");
        if let Ok(entries) = std::fs::read_dir(netns) {
            for entry in entries.flatten() {
                let path = std::ffi::CString::new(entry.path().display().to_string()).unwrap();
                // SAFETY: unmounting a path under the test's own directory.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Removes a cgroup directory and any below it (cgroups are removed with rmdir, children
/// first).
fn remove_cgroup(path: &Path) {
    if let Ok(children) = std::fs::read_dir(path) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&child.path());
            }
        }
        let _ = std::fs::remove_dir(path);
    }
}

/// A pod as the kubelet asks for it.
pub struct PodSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// hostPort → containerPort, TCP.
    pub host_ports: &'a [(i32, i32)],
}

/// The kubelet's end of the CRI: runtime.v1 over containerd's socket.
pub struct Cri {
    runtime: tokio::runtime::Runtime,
    /// Given to every pod, as the kubelet gives its pods' cgroup.
    pub cgroup_parent: String,
    pub pods: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn connect(socket: &Path) -> Cri {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let socket = socket.to_path_buf();
        let channel = runtime
            .block_on(async move {
                Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    }))
                    .await
            })
            .expect("connect to containerd's CRI");
        Cri {
            runtime,
            cgroup_parent: String::new(),
            pods: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
    }

    pub fn has_image(&mut self, image: &str) -> bool {
        let request = ImageStatusRequest {
            image: Some(ImageSpec { image: image.into(), ..Default::default() }),
            verbose: false,
        };
        let images = &mut self.images;
        self.runtime.block_on(images.image_status(request)).is_ok_and(|r| r.into_inner().image.is_some())
    }

    /// What the kubelet reads to call the node's network ready: the runtime's
    /// `NetworkReady` condition (true once it loaded a CNI config), and its reason.
    pub fn network_ready(&mut self) -> (bool, String) {
        let pods = &mut self.pods;
        let status = match self.runtime.block_on(pods.status(StatusRequest { verbose: false })) {
            Ok(status) => status.into_inner(),
            // Right after a start, the CRI says "server is not initialized yet" for a moment.
            Err(e) => return (false, format!("no status: {e}")),
        };
        let condition = status
            .status
            .unwrap_or_default()
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .expect("a NetworkReady condition");
        (condition.status, format!("{}: {}", condition.reason, condition.message))
    }

    pub fn run_pod(&mut self, pod: &PodSpec) -> Result<String, tonic::Status> {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: pod.name.into(),
                uid: format!("uid-{}-{}", pod.namespace, pod.name),
                namespace: pod.namespace.into(),
                attempt: 0,
            }),
            hostname: pod.name.into(),
            port_mappings: pod
                .host_ports
                .iter()
                .map(|(host, container)| PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: *container,
                    host_port: *host,
                    host_ip: String::new(),
                })
                .collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        let pods = &mut self.pods;
        self.runtime.block_on(pods.run_pod_sandbox(request)).map(|r| r.into_inner().pod_sandbox_id)
    }

    /// The pod's IP as the kubelet reads it (what the runtime took from the CNI result),
    /// and the path of its network namespace (from the verbose info).
    pub fn pod_status(&mut self, id: &str) -> (String, PathBuf) {
        let pods = &mut self.pods;
        let response = self
            .runtime
            .block_on(
                pods.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true }),
            )
            .unwrap()
            .into_inner();
        let ip = response.status.unwrap().network.unwrap_or_default().ip;
        let info: Value = serde_json::from_str(response.info.get("info").expect("verbose info")).unwrap();
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .and_then(|n| n["path"].as_str())
            .expect("the pod's network namespace")
            .into();
        (ip, netns)
    }

    pub fn stop_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let pods = &mut self.pods;
        self.runtime
            .block_on(pods.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.into() }))
            .map(|_| ())
    }

    pub fn remove_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let pods = &mut self.pods;
        self.runtime
            .block_on(pods.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id.into() }))
            .map(|_| ())
    }

    pub fn pod_ids(&mut self) -> Vec<String> {
        let pods = &mut self.pods;
        self.runtime
            .block_on(pods.list_pod_sandbox(k8s_cri::v1::ListPodSandboxRequest { filter: None }))
            .map(|r| r.into_inner().items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }
}

/// Installs what the runtime execs into `bin_dir`, as the DaemonSet's init container does:
/// `weft install-cni`, bringing the reference `portmap` and `loopback` (containerd's CRI
/// sets up every pod's `lo` with it).
pub fn install_plugins(bin_dir: &Path) {
    run_checked(
        Command::new(WEFT)
            .args(["install-cni", "--bin-dir"])
            .arg(bin_dir)
            .args(["--plugin", &format!("{REFERENCE_PLUGINS}/portmap")])
            .args(["--plugin", &format!("{REFERENCE_PLUGINS}/loopback")]),
    );
}

/// Whether one ping from inside the namespace at `netns` (a pod's, by path) is answered.
pub fn pings_from(netns: &Path, target: &str) -> bool {
    let mut command = Command::new("ping");
    command.args(["-c", "1", "-W", "2", target]).stdout(Stdio::null()).stderr(Stdio::null());
    let ns = NetNs::open(netns).unwrap();
    runs_in(&mut command, &ns);
    command.status().is_ok_and(|s| s.success())
}
