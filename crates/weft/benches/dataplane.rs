//! Pod-to-pod throughput across two nodes, weft against the same topology configured by
//! hand with `ip` (no weft), for the route and vxlan backends, in one run. Run as root:
//!
//!     cargo bench -p weft --bench dataplane              (everything)
//!     cargo bench -p weft --bench dataplane -- filter    (the overlay filter's cost only)
//!     cargo bench -p weft --bench dataplane -- ipv6      (the IPv6 rows only)
//!     WEFT_BENCH_ROUNDS=7 cargo bench …                  (more alternating rounds per row)
//!
//! The IPv6 rows: dual-stack pods (both families built, on both sides), IPv6 pod to pod, for
//! route (via the peer's IPv6 address), vxlan over the IPv4 underlay (one device carrying
//! both families) and vxlan over an IPv6 underlay (an IPv6 VTEP, 70 bytes of MTU).
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
use weft_core::network::Family;
use weft_kernel::netns;

const SECONDS: &str = "5";
/// Rounds per side (WEFT_BENCH_ROUNDS overrides: a noisy machine wants more).
fn rounds() -> usize {
    std::env::var("WEFT_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

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

/// What a row measures: the backend, and for IPv6 rows the underlay's family.
#[derive(Clone, Copy, PartialEq)]
struct Row {
    vxlan: bool,
    /// None: IPv4 pods (the IPv4 rows); Some(underlay): dual-stack pods, measured in IPv6.
    ipv6_over: Option<Family>,
}

impl Row {
    fn name(self) -> String {
        let backend = if self.vxlan { "vxlan" } else { "route" };
        match self.ipv6_over {
            None => backend.to_string(),
            Some(_) if !self.vxlan => format!("{backend} IPv6"),
            Some(underlay) => format!("{backend} IPv6 over {underlay}"),
        }
    }

    fn mtu(self) -> u32 {
        match (self.vxlan, self.ipv6_over) {
            (false, _) => 1500,
            (true, Some(Family::Ipv6)) => 1430,
            (true, _) => 1450,
        }
    }
}

fn hand_built(row: Row) -> (HandBuilt, String, String, String) {
    let vxlan = row.vxlan;
    let dual = row.ipv6_over.is_some();
    let v6_underlay = row.ipv6_over == Some(Family::Ipv6);
    let prefix = unique_prefix();
    let name = |s: &str| format!("{prefix}{s}");
    let names: Vec<String> = ["sw", "n1", "n2", "p1", "p2"].iter().map(|s| name(s)).collect();
    for n in &names {
        netns::create_named(n).unwrap();
    }
    // As the lab's machines: no IPv6 duplicate address detection on the switch and nodes
    // (a tentative link-local address sends no neighbour solicitation for what it forwards).
    for machine in &names[..3] {
        sh(machine, "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
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
        if dual {
            sh(node, &format!("ip addr add 2001:db8::1{n}/64 dev up0 nodad"));
            sh(node, "sysctl -qw net.ipv6.conf.all.forwarding=1");
        }
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
        if dual {
            // as weft's CNI plugin: the pod's link-local gateway on the node side, pinned
            sh(node, &format!("ip addr add fe80::1/64 dev wv{n} nodad"));
            sh(pod, &format!("ip addr add fd00:10:244:{n}::2/128 dev eth0 nodad"));
            sh(pod, &format!("ip -6 neigh replace fe80::1 lladdr {host_mac} dev eth0 nud permanent"));
            sh(pod, "ip -6 route add default via fe80::1 dev eth0");
            sh(node, &format!("ip -6 route replace fd00:10:244:{n}::2/128 dev wv{n}"));
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let (n, peer) = (i + 1, 2 - i);
        if vxlan {
            let (local, remote) = match v6_underlay {
                true => (format!("2001:db8::1{n}"), format!("2001:db8::1{peer}")),
                false => (format!("192.0.2.1{n}"), format!("192.0.2.1{peer}")),
            };
            sh(
                node,
                &format!("ip link add weft.1 type vxlan id 1 dstport 8472 local {local} dev up0 nolearning"),
            );
            sh(node, &format!("ip link set weft.1 address 02:00:00:00:00:0{n} mtu {} up", row.mtu()));
            sh(node, &format!("ip addr add 10.244.{n}.0/32 dev weft.1"));
            if dual {
                sh(node, &format!("ip addr add fd00:10:244:{n}::/128 dev weft.1 nodad"));
                sh(
                    node,
                    &format!(
                        "ip -6 neigh replace fd00:10:244:{peer}:: lladdr 02:00:00:00:00:0{peer} dev weft.1 nud permanent"
                    ),
                );
                sh(
                    node,
                    &format!(
                        "ip -6 route add fd00:10:244:{peer}::/64 via fd00:10:244:{peer}:: dev weft.1 onlink"
                    ),
                );
            }
            sh(
                node,
                &format!(
                    "ip neigh replace 10.244.{peer}.0 lladdr 02:00:00:00:00:0{peer} dev weft.1 nud permanent"
                ),
            );
            sh(
                node,
                &format!("bridge fdb replace 02:00:00:00:00:0{peer} dev weft.1 dst {remote} self permanent"),
            );
            sh(node, &format!("ip route add 10.244.{peer}.0/24 via 10.244.{peer}.0 dev weft.1 onlink"));
        } else {
            sh(node, &format!("ip route add 10.244.{peer}.0/24 via 192.0.2.1{peer} dev up0"));
            if dual {
                sh(node, &format!("ip -6 route add fd00:10:244:{peer}::/64 via 2001:db8::1{peer} dev up0"));
            }
        }
    }
    // the same masquerade rule weft installs (it turns on connection tracking, which every
    // packet then pays for on both sides)
    let mut ruleset = weft_agent::nft::ruleset(&"10.244.0.0/16".parse().unwrap());
    if dual {
        ruleset += &weft_agent::nft::ruleset(&"fd00:10:244::/56".parse().unwrap());
    }
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
            sh(node, &format!("ip link set wv{} mtu {}", n + 1, row.mtu()));
            sh(pod, &format!("ip link set eth0 mtu {}", row.mtu()));
        }
    }
    let (server, client) = (pods[1].clone(), pods[0].clone());
    let server_ip = if dual { "fd00:10:244:2::2" } else { "10.244.2.2" };
    (built, server, client, server_ip.into())
}

fn link_mac(ns: &str, link: &str) -> String {
    let text = exec_in(ns, "ip", &["-o", "link", "show", link], true);
    text.split("link/ether ").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

/// Two nodes of a lab on one rack, one pod each. Returns (lab, server pod ns, client pod ns,
/// server pod IP).
fn weft_cluster(mode: weft_lab::Mode) -> (weft_lab::Lab, String, String, String) {
    weft_cluster_of(mode, None)
}

/// The same, dual stack over `underlay` when asked, the server pod's IPv6 address returned.
fn weft_cluster_of(
    mode: weft_lab::Mode,
    ipv6_over: Option<Family>,
) -> (weft_lab::Lab, String, String, String) {
    let mut lab = support::lab::lab(mode, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = 2;
        spec.pods_per_node = 0;
        if let Some(underlay) = ipv6_over {
            spec.ip_family = weft_lab::topology::IpFamily::Dual;
            spec.underlay = underlay;
        }
    });
    lab.add_pod("n1", "a").unwrap();
    let mut server_ip = lab.add_pod("n2", "b").unwrap().to_string();
    if ipv6_over.is_some() {
        server_ip = lab.state.pods.iter().find(|p| p.name == "b").unwrap().address6.unwrap().to_string();
    }
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
    // `-- filter`: only the overlay filter's cost; `-- ipv6`: only the IPv6 rows.
    let only_filter = std::env::args().any(|a| a == "filter");
    let only_ipv6 = std::env::args().any(|a| a == "ipv6");
    if !only_filter {
        println!(
            "pod to pod across two nodes, iperf3, one TCP stream, {SECONDS} s, median of {}\n",
            rounds()
        );
    }
    let row = |vxlan, ipv6_over| Row { vxlan, ipv6_over };
    let mut rows = vec![row(false, None), row(true, None)];
    if !only_filter {
        rows.extend([
            row(false, Some(Family::Ipv4)),
            row(true, Some(Family::Ipv4)),
            row(true, Some(Family::Ipv6)),
        ]);
    }
    for row in rows {
        let mode = if row.vxlan { weft_lab::Mode::Vxlan } else { weft_lab::Mode::Route };
        if only_filter {
            if mode == weft_lab::Mode::Vxlan {
                let (mut lab, weft_server, weft_client, weft_ip) = weft_cluster(mode);
                overlay_filter_cost(&mut lab, &weft_server, &weft_client, &weft_ip);
            }
            continue;
        }
        if only_ipv6 && row.ipv6_over.is_none() {
            continue;
        }
        let name = row.name();
        let (mut lab, weft_server, weft_client, weft_ip) = weft_cluster_of(mode, row.ipv6_over);
        let (_hand, hand_server, hand_client, hand_ip) = hand_built(row);
        let works = |client: &str, ip: &str, what: &str| {
            support::lab::wait_for(Duration::from_secs(10), || pings(client, ip), what)
        };
        works(&hand_client, &hand_ip, &format!("the hand-built {name} topology to work"));
        works(&weft_client, &weft_ip, &format!("weft's {name} topology to work"));
        let (mut weft, mut hand) = (Vec::new(), Vec::new());
        for _ in 0..rounds() {
            weft.push(iperf(&weft_server, &weft_client, &weft_ip));
            hand.push(iperf(&hand_server, &hand_client, &hand_ip));
        }
        let (weft, hand) = (median(weft), median(hand));
        println!(
            "{name:<22} weft {weft:6.2} Gbit/s   by hand {hand:6.2} Gbit/s   weft ÷ hand {:.3} (target ≥ 0.98)",
            weft / hand
        );
        if row == (Row { vxlan: true, ipv6_over: None }) {
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
