//! The agent's speed and size, measured on real etcd and real kernels. Run as root:
//!
//!     cargo bench -p weft --bench agent
//!
//! - convergence: a 20-node cluster (namespaces, a real agent each, etcd); a new lease is
//!   written and the time until its route is present on every node is measured, for 10 new
//!   leases (200 samples): p50 and p99.
//! - scale: one agent facing 5,000 peer leases in etcd: time from the agent's start until
//!   all 5,000 routes are in its kernel, and its peak RSS; and its idle RSS with 3 peers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::lab::{inside, memory_kib, ns, wait_for};
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, NetworkConfig};
use weft_kernel::{netns, NetNs, Netlink};
use weft_lab::{Lab, Mode, StoreKind};

fn synthetic_lease(i: u32) -> Lease {
    let node = format!("peer-{i}");
    Lease {
        subnet: format!("10.{}.{}.0/24", 100 + i / 256, i % 256).parse().unwrap(), // in 10.0.0.0/8
        public_ip: format!("100.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256).parse().unwrap(),
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac(&node)),
        subnet6: None,
        other_public_ip: None,
        node,
    }
}

fn peer_routes(nl: &mut Netlink) -> usize {
    nl.routes(false).unwrap().iter().filter(|r| r.protocol == weft_core::plan::PEER_ROUTE_PROTOCOL).count()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// A lab of `nodes` nodes without pods on one rack, on etcd (one member, etcd1, on the rack).
fn etcd_lab(nodes: u32, start_agents: bool) -> Lab {
    support::lab::lab(Mode::Vxlan, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = nodes;
        spec.pods_per_node = 0;
        spec.store = StoreKind::Etcd;
        spec.start_agents = start_agents;
    })
}

fn node_netlink(lab: &Lab, node: &str) -> Netlink {
    Netlink::open_in(&NetNs::open(format!("{}/{}", netns::NETNS_RUN_DIR, ns(lab, node))).unwrap()).unwrap()
}

fn convergence() {
    let lab = etcd_lab(20, true);
    let nodes: Vec<String> = lab.topology().nodes.iter().map(|n| n.name.clone()).collect();
    let mut sockets: Vec<Netlink> = nodes.iter().map(|n| node_netlink(&lab, n)).collect();
    wait_for(
        Duration::from_secs(60),
        || sockets.iter_mut().all(|nl| peer_routes(nl) == 19),
        "20 nodes to see each other",
    );
    let router = lab.topology().router_netns;
    let mut samples = Vec::new();
    for i in 0..10u32 {
        let url = lab.state.store_url.clone();
        let (written, subnet) = inside(&router, move || {
            let store = weft_store::open(&url).unwrap();
            // a free subnet of the cluster's network, as a joining node would pick
            let config = store.network().unwrap().unwrap();
            let taken = store.list().unwrap().leases.into_iter().map(|l| l.lease.subnet).collect();
            let mut lease = synthetic_lease(i);
            lease.subnet = weft_core::lease::pick_subnet(&config, &taken, &lease.node, None).unwrap();
            let subnet = lease.subnet;
            assert!(store.put_lease(&lease, None, Duration::from_secs(600)).unwrap().is_some());
            (Instant::now(), subnet)
        });
        let mut pending: Vec<usize> = (0..sockets.len()).collect();
        while !pending.is_empty() {
            pending.retain(|&n| {
                let present = sockets[n].routes(false).unwrap().iter().any(|r| r.destination == subnet);
                if present {
                    samples.push(written.elapsed());
                }
                !present
            });
            assert!(written.elapsed() < Duration::from_secs(30), "lease {i} never converged");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let p50 = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!(
        "convergence, 20 nodes on etcd, {} samples: p50 {:.0} ms, p99 {:.0} ms (target p99 ≤ 200 ms)",
        samples.len(),
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
}

fn scale(peers: u32) -> (Duration, u64, u64) {
    let mut lab = etcd_lab(1, false);
    let url = lab.state.store_url.clone();
    inside(&lab.topology().router_netns, move || {
        let store = weft_store::open(&url).unwrap();
        let config =
            NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.0.0.0/8".parse().unwrap()) };
        store.init_network(&config, true).unwrap();
        for i in 0..peers {
            assert!(store.put_lease(&synthetic_lease(i), None, Duration::from_secs(3600)).unwrap().is_some());
        }
    });
    let started = Instant::now();
    lab.start_agent("n1").unwrap();
    let pid = lab.state.agents["n1"].pid;
    let mut nl = node_netlink(&lab, "n1");
    wait_for(Duration::from_secs(120), || peer_routes(&mut nl) == peers as usize, "all peers in the kernel");
    let converged = started.elapsed();
    std::thread::sleep(Duration::from_secs(3)); // a few idle passes
    (converged, memory_kib(pid, "VmHWM:"), memory_kib(pid, "VmRSS:"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    convergence();
    let (time, peak, _) = scale(5000);
    println!(
        "scale, one agent, 5,000 peer leases on etcd: all routes in the kernel {:.2} s after start \
         (target ≤ 2 s), peak RSS {:.1} MiB (target ≤ 30 MiB)",
        time.as_secs_f64(),
        peak as f64 / 1024.0
    );
    let (_, _, idle) = scale(3);
    println!("idle, one agent, 3 peers: RSS {:.1} MiB (target ≤ 10 MiB)", idle as f64 / 1024.0);
}
