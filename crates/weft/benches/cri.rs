//! Pod start and stop as the kubelet sees them: CRI calls to real containerd, timed from the
//! kubelet's side, with weft's chain `[weft, portmap]` against the reference chain
//! `[bridge + host-local, portmap]` (Debian's containernetworking-plugins, flannel's
//! delegate options). Everything else is the same for both: one containerd each, in a node
//! namespace of its own, the same pause image, runc, the same pods.
//!
//! RunPodSandbox covers the pod's namespace, the CNI chain's ADD (and containerd's
//! loopback plugin), and starting the pause container; Stop+Remove covers stopping it, the
//! chain's DEL and removing the sandbox. The contenders take turns in blocks of 10 pods, so
//! whatever else the machine does falls on both alike. Each pod has a hostPort (portmap
//! then has rules to add and remove, as for any pod that asks). Run as root:
//!
//!     cargo bench -p weft --bench cri              # 60 pods per contender
//!     WEFT_BENCH_PODS=20 cargo bench -p weft --bench cri

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::cri::{install_plugins, Containerd, Cri, PodSpec};
use support::*;

const BLOCK: usize = 10;
const BENCH_MTU: u32 = 1400;

struct Contender {
    name: &'static str,
    cri: Cri,
    run: Vec<Duration>,
    stop_remove: Vec<Duration>,
    ids: Vec<String>,
    // Dropped last: containerd before its node.
    containerd: Containerd,
    node: Node,
}

impl Contender {
    /// A node with containerd whose CNI conf dir holds `conflist(node)`, its plugins from
    /// `bin_dir` (None: a dir `weft install-cni` fills).
    fn new(name: &'static str, reference: bool) -> Contender {
        let node = Node::new();
        let conf_dir = node.state_dir.path().join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let (bin_dir, list) = if reference {
            let list = json!({
                "cniVersion": "1.0.0", "name": "bench",
                "plugins": [
                    { "type": "bridge", "bridge": "cni0", "isGateway": true, "isDefaultGateway": true,
                      "hairpinMode": true, "ipMasq": false, "mtu": BENCH_MTU,
                      "ipam": { "type": "host-local", "subnet": "10.250.0.0/16",
                                "routes": [{ "dst": "10.240.0.0/12" }],
                                "dataDir": node.data_dir.path().join("host-local") } },
                    { "type": "portmap", "capabilities": { "portMappings": true } },
                ],
            });
            (std::path::PathBuf::from(REFERENCE_PLUGINS), list)
        } else {
            // As the agent leaves the node: its node file, its list.
            let node_file =
                json!({ "subnets": [{ "subnet": "10.251.0.0/16" }], "mtu": BENCH_MTU, "attach": "routed" });
            node.write_node_file(&node_file.to_string());
            let bin_dir = node.state_dir.path().join("cni-bin");
            install_plugins(&bin_dir);
            let list = json!({
                "cniVersion": "1.0.0", "name": "bench",
                "plugins": [
                    { "type": "weft", "stateDir": node.state_dir.path(), "dataDir": node.data_dir.path() },
                    { "type": "portmap", "capabilities": { "portMappings": true } },
                ],
            });
            (bin_dir, list)
        };
        std::fs::write(conf_dir.join("10-bench.conflist"), list.to_string()).unwrap();
        let containerd = Containerd::start(&node, &bin_dir, &conf_dir);
        let mut cri = containerd.client();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cri.network_ready().0 {
            assert!(Instant::now() < deadline, "{name}: containerd did not load the list");
            std::thread::sleep(Duration::from_millis(50));
        }
        Contender { name, cri, run: Vec::new(), stop_remove: Vec::new(), ids: Vec::new(), containerd, node }
    }

    fn run_pod(&mut self, i: usize) -> Duration {
        let name = format!("pod-{i}");
        let ports = [(20000 + i as i32, 8080)];
        let start = Instant::now();
        let id = self
            .cri
            .run_pod(&PodSpec { namespace: "bench", name: &name, host_ports: &ports })
            .unwrap_or_else(|e| panic!("{}: RunPodSandbox: {e}\n{}", self.name, self.containerd.log_text()));
        let elapsed = start.elapsed();
        self.ids.push(id);
        elapsed
    }

    fn stop_remove(&mut self, i: usize) -> Duration {
        let id = self.ids[i].clone();
        let start = Instant::now();
        self.cri.stop_pod(&id).unwrap();
        self.cri.remove_pod(&id).unwrap();
        start.elapsed()
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mean(samples: &[Duration]) -> f64 {
    samples.iter().map(|d| millis(*d)).sum::<f64>() / samples.len().max(1) as f64
}

fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted: Vec<f64> = samples.iter().map(|d| millis(*d)).collect();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pods: usize = std::env::var("WEFT_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut contenders = [
        Contender::new("reference bridge+host-local, portmap", true),
        Contender::new("weft, portmap", false),
    ];
    // One pod each first, not counted: the first sandbox warms containerd's caches.
    for contender in contenders.iter_mut() {
        contender.run_pod(usize::MAX / 2);
        contender.stop_remove(0);
        contender.ids.clear();
    }
    for phase in ["run", "stop"] {
        for block in (0..pods).collect::<Vec<_>>().chunks(BLOCK) {
            for contender in contenders.iter_mut() {
                std::thread::sleep(Duration::from_millis(100));
                for &i in block {
                    if phase == "run" {
                        let t = contender.run_pod(i);
                        contender.run.push(t);
                    } else {
                        let t = contender.stop_remove(i);
                        contender.stop_remove.push(t);
                    }
                }
            }
        }
    }
    for contender in &contenders {
        contender.node.wait_for_no_pod_links();
    }
    println!("CRI calls to containerd {}, {pods} pods per contender (each with a hostPort), in turns of {BLOCK}; ms per call\n",
        String::from_utf8_lossy(&std::process::Command::new("containerd").arg("--version").output().unwrap().stdout).split_whitespace().nth(2).unwrap_or("?"));
    println!("{:<38} {:>9} {:>9}   {:>12} {:>9}", "", "RunPodSandbox", "p99", "Stop+Remove", "p99");
    for c in &contenders {
        println!(
            "{:<38} {:>13.1} {:>9.1}   {:>12.1} {:>9.1}",
            c.name,
            mean(&c.run),
            percentile(&c.run, 0.99),
            mean(&c.stop_remove),
            percentile(&c.stop_remove, 0.99)
        );
    }
    let (reference, weft) = (&contenders[0], &contenders[1]);
    println!(
        "\nweft ÷ reference: RunPodSandbox mean {:.2}, p99 {:.2}; Stop+Remove mean {:.2}, p99 {:.2}",
        mean(&weft.run) / mean(&reference.run),
        percentile(&weft.run, 0.99) / percentile(&reference.run, 0.99),
        mean(&weft.stop_remove) / mean(&reference.stop_remove),
        percentile(&weft.stop_remove, 0.99) / percentile(&reference.stop_remove, 0.99),
    );
}
