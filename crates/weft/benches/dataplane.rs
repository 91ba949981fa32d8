//! Pod-to-pod throughput across two nodes, weft against the same topology configured by
//! hand with `ip` (no weft), for the route and vxlan backends, in one run. Run as root:
//!
//!     cargo bench -p weft --bench dataplane              (everything)
//!     cargo bench -p weft --bench dataplane -- filter    (the overlay filter's cost only)
//!
//! Both sides: two node namespaces on one switch (weft's is a lab's rack), one pod on each with a routed veth (/32,
//! link-local gateway pinned, host route), and between the nodes either a route via the
//! peer (route) or a VXLAN device with a permanent neighbour, FDB entry and onlink route
//! (vxlan, flannel's programming), and the same masquerade rule. iperf3, one TCP stream,
//! 5 s, alternating weft and hand-built three times each; the medians are compared.
//!
//! Then the overlay filter's cost: the same weft vxlan pods with the nodes' filter table
//! (VXLAN only from peers) and without it, in fifteen back-to-back pairs (which goes first
//! alternating), each run moving the same 2 GiB. Two measures: throughput, and the machine's busy CPU time per GiB moved (from
//! /proc/stat: the filter's work is CPU time in softirq, which a saturated 2-core machine
//! shows more steadily than throughput). Each is a median of the pairs' ratios. The agents
//! are stopped for this (the kernel keeps what they programmed), so the bench can take the
//! table away and put it back as the agent wrote it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::lab::{ns, wait_for_full_mesh};
use support::*;
use weft_kernel::netns;

const SECONDS: &str = "5";
const ROUNDS: usize = 3;

/// One iperf3 measurement from pod namespace `client` to `server_ip` in `server`, Gbit/s.
fn iperf(server: &str, client: &str, server_ip: &str) -> f64 {
    iperf_run(server, client, server_ip, ["-t", SECONDS]).0
}

/// The whole machine's busy CPU time so far (every CPU: user, nice, system, irq, softirq;
/// not steal, the time the hypervisor gave to others), in seconds.
fn busy_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap().split_whitespace().skip(1).map(|t| t.parse().unwrap()).collect();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    [0, 1, 2, 5, 6].iter().map(|&i| ticks[i]).sum::<f64>() / per_second
}

/// One iperf3 run from pod namespace `client` to `server_ip` in `server`, as long as `limit`
/// says (`-t SECONDS` or `-n BYTES`): (Gbit/s, the machine's busy CPU seconds while it ran).
fn iperf_run(server: &str, client: &str, server_ip: &str, limit: [&str; 2]) -> (f64, f64) {
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", server, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = busy_cpu_seconds();
    let output = Command::new("ip")
        .args(["netns", "exec", client, "iperf3", "-c", server_ip, "-J"])
        .args(limit)
        .output()
        .unwrap();
    let cpu = busy_cpu_seconds() - before;
    let _ = daemon.wait();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("iperf3 JSON");
    (report["end"]["sum_received"]["bits_per_second"].as_f64().expect("throughput") / 1e9, cpu)
}

/// The hand-built twin: the same namespaces, links, addresses, routes and entries,
/// made with `ip` and `bridge`. Returns (server pod ns, client pod ns, server pod IP).
struct HandBuilt {
    names: Vec<String>,
}

impl Drop for HandBuilt {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = netns::delete_named(name);
        }
    }
}

fn sh(ns: &str, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    exec_in(ns, args[0], &args[1..], true);
}

fn hand_built(vxlan: bool) -> (HandBuilt, String, String, String) {
    let prefix = unique_prefix();
    let name = |s: &str| format!("{prefix}{s}");
    let names: Vec<String> = ["sw", "n1", "n2", "p1", "p2"].iter().map(|s| name(s)).collect();
    for n in &names {
        netns::create_named(n).unwrap();
    }
    let built = HandBuilt { names: names.clone() };
    let (sw, nodes, pods) = (&names[0], [&names[1], &names[2]], [&names[3], &names[4]]);
    sh(sw, "ip link add br0 type bridge");
    sh(sw, "ip link set br0 up");
    for i in 0..2 {
        let (node, pod, n) = (nodes[i], pods[i], i + 1);
        sh(sw, &format!("ip link add p{n} type veth peer name up0 netns {node}"));
        sh(sw, &format!("ip link set p{n} master br0 up"));
        sh(node, &format!("ip addr add 192.0.2.1{n}/24 dev up0"));
        sh(node, "ip link set up0 up");
        sh(node, "sysctl -qw net.ipv4.ip_forward=1");
        // the pod: routed veth, as weft makes it
        sh(
            node,
            &format!("ip link add wv{n} numtxqueues 1 numrxqueues 1 type veth peer name eth0 netns {pod}"),
        );
        sh(node, &format!("ip link set wv{n} up"));
        let host_mac = link_mac(node, &format!("wv{n}"));
        sh(pod, &format!("ip addr add 10.244.{n}.2/32 dev eth0"));
        sh(pod, "ip link set eth0 up");
        sh(pod, &format!("ip neigh replace 169.254.1.1 lladdr {host_mac} dev eth0 nud permanent"));
        sh(pod, "ip route add default via 169.254.1.1 dev eth0 onlink");
        sh(node, &format!("ip route add 10.244.{n}.2/32 dev wv{n} scope link"));
        sh(node, &format!("ip addr add 169.254.1.1/32 scope host dev wv{n}"));
    }
    for (i, node) in nodes.iter().enumerate() {
        let (n, peer) = (i + 1, 2 - i);
        if vxlan {
            sh(
                node,
                &format!(
                    "ip link add weft.1 type vxlan id 1 dstport 8472 local 192.0.2.1{n} dev up0 nolearning"
                ),
            );
            sh(node, &format!("ip link set weft.1 address 02:00:00:00:00:0{n} mtu 1450 up"));
            sh(node, &format!("ip addr add 10.244.{n}.0/32 dev weft.1"));
            sh(
                node,
                &format!(
                    "ip neigh replace 10.244.{peer}.0 lladdr 02:00:00:00:00:0{peer} dev weft.1 nud permanent"
                ),
            );
            sh(
                node,
                &format!(
                    "bridge fdb replace 02:00:00:00:00:0{peer} dev weft.1 dst 192.0.2.1{peer} self permanent"
                ),
            );
            sh(node, &format!("ip route add 10.244.{peer}.0/24 via 10.244.{peer}.0 dev weft.1 onlink"));
        } else {
            sh(node, &format!("ip route add 10.244.{peer}.0/24 via 192.0.2.1{peer} dev up0"));
        }
    }
    // the same masquerade rule weft installs (it turns on connection tracking, which every
    // packet then pays for on both sides)
    let ruleset = weft_agent::nft::ruleset(&"10.244.0.0/16".parse().unwrap());
    for node in nodes {
        let mut nft = Command::new("ip")
            .args(["netns", "exec", node, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        nft.stdin.take().unwrap().write_all(ruleset.as_bytes()).unwrap();
        assert!(nft.wait().unwrap().success());
    }
    // weft gives vxlan pods the tunnel's MTU
    if vxlan {
        for (n, (node, pod)) in nodes.iter().zip(pods).enumerate() {
            sh(node, &format!("ip link set wv{} mtu 1450", n + 1));
            sh(pod, "ip link set eth0 mtu 1450");
        }
    }
    let (server, client) = (pods[1].clone(), pods[0].clone());
    (built, server, client, "10.244.2.2".into())
}

fn link_mac(ns: &str, link: &str) -> String {
    let text = exec_in(ns, "ip", &["-o", "link", "show", link], true);
    text.split("link/ether ").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

/// Two nodes of a lab on one rack, one pod each. Returns (lab, server pod ns, client pod ns,
/// server pod IP).
fn weft_cluster(mode: weft_lab::Mode) -> (weft_lab::Lab, String, String, String) {
    let mut lab = support::lab::lab(mode, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = 2;
        spec.pods_per_node = 0;
    });
    lab.add_pod("n1", "a").unwrap();
    let server_ip = lab.add_pod("n2", "b").unwrap().to_string();
    wait_for_full_mesh(&lab);
    let (server, client) = (ns(&lab, "b"), ns(&lab, "a"));
    (lab, server, client, server_ip)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // `-- filter`: only the overlay filter's cost.
    let only_filter = std::env::args().any(|a| a == "filter");
    if !only_filter {
        println!("pod to pod across two nodes, iperf3, one TCP stream, {SECONDS} s, median of {ROUNDS}\n");
    }
    for mode in [weft_lab::Mode::Route, weft_lab::Mode::Vxlan] {
        let backend = mode.name();
        if only_filter {
            if mode == weft_lab::Mode::Vxlan {
                let (mut lab, weft_server, weft_client, weft_ip) = weft_cluster(mode);
                overlay_filter_cost(&mut lab, &weft_server, &weft_client, &weft_ip);
            }
            continue;
        }
        let (mut lab, weft_server, weft_client, weft_ip) = weft_cluster(mode);
        let (_hand, hand_server, hand_client, hand_ip) = hand_built(backend == "vxlan");
        assert!(pings(&hand_client, &hand_ip), "the hand-built {backend} topology works");
        let (mut weft, mut hand) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            weft.push(iperf(&weft_server, &weft_client, &weft_ip));
            hand.push(iperf(&hand_server, &hand_client, &hand_ip));
        }
        let (weft, hand) = (median(weft), median(hand));
        println!(
            "{backend:<6} weft {weft:6.2} Gbit/s   by hand {hand:6.2} Gbit/s   weft ÷ hand {:.3} (target ≥ 0.98)",
            weft / hand
        );
        if mode == weft_lab::Mode::Vxlan {
            overlay_filter_cost(&mut lab, &weft_server, &weft_client, &weft_ip);
        }
    }
}

const FILTER_ROUNDS: usize = 15;
/// What each run of the filter's comparison moves, in GiB.
const FILTER_GIB: u32 = 2;

/// vxlan throughput with the nodes' overlay filter and without, alternating.
fn overlay_filter_cost(lab: &mut weft_lab::Lab, server: &str, client: &str, server_ip: &str) {
    let nodes = ["n1", "n2"].map(|n| ns(lab, n));
    let tables: Vec<String> = nodes
        .iter()
        .map(|node| exec_in(node, "nft", &["list", "table", "ip", "weft_overlay"], true))
        .collect();
    assert!(tables.iter().all(|t| t.contains("@peers")), "the agents' filters: {tables:?}");
    for node in ["n1", "n2"] {
        lab.stop_agent(node, libc::SIGTERM);
    }
    let set = |on: bool| {
        for (node, table) in nodes.iter().zip(&tables) {
            let _ = Command::new("ip")
                .args(["netns", "exec", node, "nft", "delete", "table", "ip", "weft_overlay"])
                .status();
            if on {
                let mut nft = Command::new("ip")
                    .args(["netns", "exec", node, "nft", "-f", "-"])
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap();
                std::io::Write::write_all(&mut nft.stdin.take().unwrap(), table.as_bytes()).unwrap();
                assert!(nft.wait().unwrap().success());
            }
        }
    };
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..FILTER_ROUNDS {
        // Which goes first alternates, so that an effect of going first or second cancels.
        for filter in [round % 2 == 0, round % 2 == 1] {
            set(filter);
            let run = iperf_run(server, client, server_ip, ["-n", &format!("{FILTER_GIB}G")]);
            if filter {
                on.push(run)
            } else {
                off.push(run)
            }
        }
    }
    set(true);
    // Each pair ran back to back: its ratio is the comparison least moved by the machine's
    // other load.
    let ratios = |of: fn(&(f64, f64)) -> f64| -> Vec<f64> {
        on.iter().zip(&off).map(|(a, b)| of(a) / of(b)).collect()
    };
    let listed = |ratios: &[f64]| ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ");
    let throughput = ratios(|run| run.0);
    let cpu = ratios(|run| run.1);
    let gbps = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.0).collect());
    let cpu_per_gib =
        |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.1 / f64::from(FILTER_GIB)).collect());
    println!(
        "vxlan  filter on {:6.2} Gbit/s   off {:6.2} Gbit/s   on ÷ off, median of {FILTER_ROUNDS} pairs {:.3} \
         (pairs: {}; target ≥ 0.99)",
        gbps(&on),
        gbps(&off),
        median(throughput.clone()),
        listed(&throughput)
    );
    println!(
        "vxlan  filter on {:.3} CPU s/GiB   off {:.3} CPU s/GiB   on ÷ off, median of {FILTER_ROUNDS} pairs {:.3} \
         (pairs: {}; target ≤ 1.01)",
        cpu_per_gib(&on),
        cpu_per_gib(&off),
        median(cpu.clone()),
        listed(&cpu)
    );
}
