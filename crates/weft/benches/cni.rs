//! CNI ADD/DEL speed, side by side in one run: weft (routed and bridge attachment)
//! against the reference chain flannel delegates to (Debian's `bridge` + `host-local`).
//!
//! Each contender gets a node namespace of its own and N pod namespaces made beforehand
//! (not timed). The contenders take turns in blocks of 25 pods (ADD pods 0-24 with each,
//! then 25-49, ...; then the same for DEL), so that whatever else the machine does falls
//! on all of them alike, while no contender's calls interleave with another's. Every
//! timing is a whole plugin process as a runtime sees it: spawn, run, exit. Run as root:
//!
//! A dual-stack pair too: the reference chain with host-local giving each pod an IPv4 and an
//! IPv6 address, against weft routed with a subnet of each family in its node file.
//!
//!     cargo bench -p weft --bench cni            # N=200
//!     WEFT_BENCH_PODS=50 cargo bench -p weft --bench cni

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// Both plugins keep their state under /var/lib by default; so does the benchmark.
const STATE_BASE: &str = "/var/lib";
/// Pods per turn: contenders take turns in blocks this long.
const BLOCK: usize = 25;
/// The MTU both sides are told.
const BENCH_MTU: u32 = 1400;

struct Contender {
    name: &'static str,
    binary: String,
    node: Node,
    conf: String,
    namespaces: Vec<String>,
    add: Vec<Duration>,
    del: Vec<Duration>,
}

impl Contender {
    fn new(name: &'static str, binary: String, pods: usize, conf: impl FnOnce(&Node) -> Value) -> Contender {
        let mut node = Node::new_under(Path::new(STATE_BASE));
        let conf = conf(&node).to_string();
        let namespaces = (0..pods).map(|i| node.pod(&format!("p{i}")).display().to_string()).collect();
        Contender { name, binary, node, conf, namespaces, add: Vec::new(), del: Vec::new() }
    }

    /// One plugin call for pod `i`, timed as a whole process.
    fn call(&self, command: &str, i: usize) -> Duration {
        let container_id = format!("bench-{i}");
        let vars = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container_id.as_str()),
            ("CNI_NETNS", self.namespaces[i].as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REFERENCE_PLUGINS),
        ];
        let start = Instant::now();
        let outcome = self.node.run_plugin(&self.binary, &vars, &self.conf);
        let elapsed = start.elapsed();
        outcome.expect_ok(&format!("{} {command}", self.name));
        elapsed
    }
}

/// weft as the agent sets it up: the node file gives subnet, MTU and attach mode, as
/// flannel's subnet.env does for its plugin.
fn weft_via_node_file(node: &Node, subnet: &str, attach: &str) -> Value {
    weft_via_node_file_of(node, &[subnet], attach)
}

/// The same with a subnet per family (dual stack: one address of each per pod).
fn weft_via_node_file_of(node: &Node, subnets: &[&str], attach: &str) -> Value {
    let subnets: Vec<Value> = subnets.iter().map(|s| json!({ "subnet": s })).collect();
    let node_file = json!({"subnets": subnets, "mtu": BENCH_MTU, "attach": attach});
    node.write_node_file(&node_file.to_string());
    node.conf("1.0.0", json!({}))
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

/// weft hands the kernel's device unregister to a child (the DELLINK call blocks ≈ 20 ms in
/// an RCU barrier after the device is already unlisted). This measures apart, for some
/// pods, how long from DEL's start until the kernel no longer lists the veth, so the DEL
/// figure is not flattered.
fn del_until_gone(weft: &Contender, pods: usize) -> Vec<Duration> {
    let mut netlink = weft.node.netlink();
    (0..pods)
        .map(|i| {
            weft.call("ADD", i);
            let host = weft_core::names::host_veth_name(&format!("bench-{i}"), "eth0");
            let index = netlink.link_by_name(&host).unwrap().expect("host veth").index;
            let start = Instant::now();
            weft.call("DEL", i);
            while netlink.link_by_index(index).unwrap().is_some() {
                std::thread::sleep(Duration::from_micros(100));
            }
            start.elapsed()
        })
        .collect()
}

/// Spawning a process that does nothing, the same way: the floor under every figure.
fn spawn_floor(binary: &str, samples: usize) -> Vec<Duration> {
    let node = Node::new_under(Path::new(STATE_BASE));
    (0..samples)
        .map(|_| {
            let start = Instant::now();
            let _ = node.run_plugin(binary, &[("CNI_COMMAND", "VERSION")], "{}");
            start.elapsed()
        })
        .collect()
}

/// mean, p50, p99 in ms
fn row(samples: &[Duration]) -> String {
    format!("{:>8.2} {:>8.2} {:>8.2}", mean(samples), percentile(samples, 0.5), percentile(samples, 0.99))
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pods: usize = std::env::var("WEFT_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let mut contenders = [
        Contender::new("reference bridge+host-local", format!("{REFERENCE_PLUGINS}/bridge"), pods, |node| {
            // What flannel's CNI plugin hands the bridge plugin, with the delegate options of
            // flannel's stock manifest (kube-flannel.yml: hairpinMode, isDefaultGateway):
            // bridge as gateway, flannel's MTU, host-local on the node's subnet with a
            // route to the cluster network.
            json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0",
                "isGateway": true, "isDefaultGateway": true, "hairpinMode": true, "ipMasq": false,
                "mtu": BENCH_MTU,
                "ipam": {"type": "host-local", "subnet": "10.250.0.0/16",
                         "routes": [{"dst": "10.240.0.0/12"}],
                         "dataDir": node.data_dir.path().join("host-local")}
            })
        }),
        Contender::new("weft routed", WEFT.to_string(), pods, |node| {
            weft_via_node_file(node, "10.251.0.0/16", "routed")
        }),
        Contender::new("weft bridge", WEFT.to_string(), pods, |node| {
            weft_via_node_file(node, "10.252.0.0/16", "bridge")
        }),
        // Dual stack: an IPv4 and an IPv6 address per pod.
        Contender::new("reference, dual stack", format!("{REFERENCE_PLUGINS}/bridge"), pods, |node| {
            json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni1",
                "isGateway": true, "isDefaultGateway": true, "hairpinMode": true, "ipMasq": false,
                "mtu": BENCH_MTU,
                "ipam": {"type": "host-local",
                         "ranges": [[{"subnet": "10.253.0.0/16"}], [{"subnet": "fd00:253::/64"}]],
                         "routes": [{"dst": "10.240.0.0/12"}, {"dst": "fd00::/8"}],
                         "dataDir": node.data_dir.path().join("host-local")}
            })
        }),
        Contender::new("weft routed, dual stack", WEFT.to_string(), pods, |node| {
            weft_via_node_file_of(node, &["10.254.0.0/16", "fd00:254::/64"], "routed")
        }),
    ];
    for command in ["ADD", "DEL"] {
        for block in (0..pods).collect::<Vec<_>>().chunks(BLOCK) {
            for contender in contenders.iter_mut() {
                // Let the kernel's deferred work from the previous block (RCU callbacks,
                // IPv6 timers, the background veth deletions) settle first.
                std::thread::sleep(Duration::from_millis(100));
                for &i in block {
                    let elapsed = contender.call(command, i);
                    if command == "ADD" {
                        contender.add.push(elapsed)
                    } else {
                        contender.del.push(elapsed)
                    }
                }
            }
        }
    }
    let gone = del_until_gone(&contenders[1], pods.min(50));
    let floor = spawn_floor(WEFT, pods);
    let true_floor = spawn_floor("/bin/true", pods);

    println!("CNI ADD and DEL, {pods} pods per contender, in turns of {BLOCK}; ms per call, whole process\n");
    println!("{:<30} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}", "", "ADD", "p50", "p99", "DEL", "p50", "p99");
    for c in &contenders {
        println!("{:<30} {}   {}", c.name, row(&c.add), row(&c.del));
    }
    println!("{:<30} {}   (weft answering VERSION)", "floor: spawning a plugin", row(&floor));
    println!("{:<30} {}   (/bin/true, spawned the same way)", "floor: spawning /bin/true", row(&true_floor));
    println!("{:<30} {:>8} {:>8} {:>8}   {}", "weft routed DEL, until gone", "", "", "", row(&gone));

    let reference = &contenders[0];
    println!("\nweft ÷ reference (target ≤ 0.20)     ADD mean   ADD p50    DEL mean   DEL p50");
    // (Each against the reference of its kind: the dual-stack row against the dual one.)
    for (c, reference) in
        [(&contenders[1], reference), (&contenders[2], reference), (&contenders[4], &contenders[3])]
    {
        println!(
            "{:<36} {:>8.3} {:>9.3} {:>10.3} {:>9.3}",
            c.name,
            mean(&c.add) / mean(&reference.add),
            percentile(&c.add, 0.5) / percentile(&reference.add, 0.5),
            mean(&c.del) / mean(&reference.del),
            percentile(&c.del, 0.5) / percentile(&reference.del, 0.5),
        );
    }
    println!(
        "{:<36} {:>8} {:>9} {:>10.3} {:>9.3}",
        "weft routed DEL, until gone",
        "",
        "",
        mean(&gone) / mean(&reference.del),
        percentile(&gone, 0.5) / percentile(&reference.del, 0.5),
    );
}
