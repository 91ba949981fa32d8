//! CNI ADD/DEL speed, side by side in one run: weft (routed and bridge attachment)
//! against the reference chain flannel delegates to (Debian's `bridge` + `host-local`).
//!
//! Each contender gets a fresh node namespace and N pod namespaces made beforehand (not
//! timed), then N ADDs one after another, then N DELs. Every timing is a whole plugin
//! process as a runtime sees it: spawn, run, exit. Run as root:
//!
//!     cargo bench -p weft --bench cni            # N=200
//!     WEFT_BENCH_PODS=50 cargo bench -p weft --bench cni

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Both plugins keep their state under /var/lib by default; so does the benchmark.
const STATE_BASE: &str = "/var/lib";
use support::*;

/// The MTU both sides are told.
const BENCH_MTU: u32 = 1400;

/// weft as the agent sets it up: the node file says subnet, MTU and attach mode, as
/// flannel's subnet.env does for its plugin.
fn node_file_conf(node: &Node, subnet: &str, attach: &str) -> Value {
    node.write_node_file(
        &json!({"subnets": [{"subnet": subnet}], "mtu": BENCH_MTU, "attach": attach}).to_string(),
    );
    node.conf("1.0.0", json!({}))
}

struct Contender {
    name: &'static str,
    binary: String,
    conf: fn(&Node) -> Value,
}

struct Timings {
    add: Vec<Duration>,
    del: Vec<Duration>,
    /// weft only: from DEL's start until the kernel has unregistered the veth.
    del_until_gone: Vec<Duration>,
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
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs one plugin call for pod `i` and returns how long it took, whole process included.
fn timed_call(
    node: &Node,
    contender: &Contender,
    conf: &str,
    command: &str,
    i: usize,
    netns: &str,
) -> Duration {
    let container_id = format!("bench-{i}");
    let vars = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container_id.as_str()),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", REFERENCE_PLUGINS),
    ];
    let start = Instant::now();
    let outcome = node.run_plugin(&contender.binary, &vars, conf);
    let elapsed = start.elapsed();
    outcome.expect_ok(&format!("{} {command}", contender.name));
    elapsed
}

fn run(contender: &Contender, pods: usize) -> Timings {
    let mut node = Node::new_under(Path::new(STATE_BASE));
    let conf = (contender.conf)(&node).to_string();
    let namespaces: Vec<String> =
        (0..pods).map(|i| node.pod(&format!("p{i}")).display().to_string()).collect();
    let mut timings = Timings { add: Vec::new(), del: Vec::new(), del_until_gone: Vec::new() };
    for (i, netns) in namespaces.iter().enumerate() {
        timings.add.push(timed_call(&node, contender, &conf, "ADD", i, netns));
    }
    for (i, netns) in namespaces.iter().enumerate() {
        timings.del.push(timed_call(&node, contender, &conf, "DEL", i, netns));
    }
    // weft hands the kernel's device unregister to a child (the DELLINK call blocks ≈ 20 ms
    // in an RCU barrier after the device is already unlisted). Measure apart how long until
    // the kernel no longer lists the veth, so the DEL figure is not flattered.
    if contender.binary == WEFT {
        let mut netlink = node.netlink();
        for (i, netns) in namespaces.iter().enumerate().take(50) {
            timed_call(&node, contender, &conf, "ADD", i, netns);
            let host = weft_core::names::host_veth_name(&format!("bench-{i}"), "eth0");
            let index = netlink.link_by_name(&host).unwrap().expect("host veth").index;
            let start = Instant::now();
            timed_call(&node, contender, &conf, "DEL", i, netns);
            while netlink.link_by_index(index).unwrap().is_some() {
                std::thread::sleep(Duration::from_micros(200));
            }
            timings.del_until_gone.push(start.elapsed());
        }
    }
    timings
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pods: usize = std::env::var("WEFT_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let contenders = [
        Contender {
            name: "reference bridge+host-local",
            binary: format!("{REFERENCE_PLUGINS}/bridge"),
            conf: |node| {
                // What flannel's CNI plugin hands the bridge plugin: its subnet and MTU.
                json!({
                    "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0",
                    "isGateway": true, "mtu": BENCH_MTU,
                    "ipam": {"type": "host-local", "subnet": "10.250.0.0/16",
                             "dataDir": node.data_dir.path().join("host-local")}
                })
            },
        },
        Contender {
            name: "weft routed",
            binary: WEFT.to_string(),
            conf: |node| node_file_conf(node, "10.251.0.0/16", "routed"),
        },
        Contender {
            name: "weft bridge",
            binary: WEFT.to_string(),
            conf: |node| node_file_conf(node, "10.252.0.0/16", "bridge"),
        },
    ];
    // The floor every contender stands on: spawning a plugin process that does nothing.
    let spawn_floor = |binary: &str| {
        let node = Node::new_under(Path::new(STATE_BASE));
        let mut samples = Vec::new();
        for _ in 0..pods {
            let start = Instant::now();
            let _ = node.run_plugin(binary, &[("CNI_COMMAND", "VERSION")], "{}");
            samples.push(start.elapsed());
        }
        samples
    };
    let floor = spawn_floor(WEFT);
    let true_floor = spawn_floor("/bin/true");
    println!("CNI ADD/DEL, {pods} pods each, sequential, whole plugin process per call (ms per pod)\n");
    println!(
        "{:<30} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "contender", "ADD", "p50", "p99", "DEL", "p50", "p99"
    );
    let mut results = Vec::new();
    for contender in &contenders {
        let t = run(contender, pods);
        println!(
            "{:<30} {:>8.2} {:>8.2} {:>8.2}   {:>8.2} {:>8.2} {:>8.2}",
            contender.name,
            mean(&t.add),
            percentile(&t.add, 0.5),
            percentile(&t.add, 0.99),
            mean(&t.del),
            percentile(&t.del, 0.5),
            percentile(&t.del, 0.99)
        );
        results.push((contender.name, t));
    }
    println!(
        "{:<30} {:>8.2} {:>8.2} {:>8.2}   (spawning weft for VERSION: the cost of any plugin process)",
        "floor: process spawn",
        mean(&floor),
        percentile(&floor, 0.5),
        percentile(&floor, 0.99)
    );
    println!(
        "{:<30} {:>8.2} {:>8.2} {:>8.2}   (spawning /bin/true the same way)",
        "floor: /bin/true",
        mean(&true_floor),
        percentile(&true_floor, 0.5),
        percentile(&true_floor, 0.99)
    );
    let (_, reference) = &results[0];
    println!("\nratio to the reference (mean per pod; target ≤ 0.20)");
    for (name, t) in &results[1..] {
        println!(
            "{:<30} ADD {:.3}×   DEL {:.3}×   (DEL until the veth is gone: {:.2} ms mean, {:.3}× the reference DEL)",
            name,
            mean(&t.add) / mean(&reference.add),
            mean(&t.del) / mean(&reference.del),
            mean(&t.del_until_gone),
            mean(&t.del_until_gone) / mean(&reference.del),
        );
    }
}
