//! The store's cost at cluster scale, against a real three-member etcd in a lab. Run as
//! root:
//!
//!     cargo bench -p weft --bench fleet [-- --agents 1000 --leases 5000]
//!
//! Three parts, in one run, on the same etcd:
//!
//! 1. **Before** (the polling design of weft 41a29d1, built from git history into
//!    `target/weft-prev`): one real agent of that release among 5,000 leases of its format.
//! 2. **One real agent** of this tree among 5,000 leases, measured the same way.
//! 3. **The fleet**: 1,000 simulated agents of this tree in this process. Each has its own
//!    store session (its own gRPC connection), its own etcd lease kept alive, its own watch
//!    and cache, and runs the real agent passes and planner; only the kernel is the
//!    in-memory seam (`RecordingKernel`). With 4,000 other leases: 5,000 in all.
//!
//! Counted, not timed where it can be: requests from etcd's own counters
//! (`grpc_server_msg_received_total`, every member), bytes from
//! `etcd_network_client_grpc_sent_bytes_total`, etcd's CPU from /proc (utime + stime of
//! every member). Per-change bytes are the counter's growth over the change less the idle
//! rate over the same time, divided by the agents. Convergence is from the write's
//! acknowledgement until each agent's pass that planned it (p50, p99 over all agents and
//! repetitions). The fleet's resync timer is set long: it repairs the kernel from the cache
//! and never touches the store, so it only adds noise here.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};
use support::lab::{memory_kib, ns, wait_for};
use weft_agent::node::Uplink;
use weft_agent::{Agent, AgentConfig, RecordingKernel, Trigger};
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, NetworkConfig};
use weft_core::status::Role;
use weft_kernel::{netns, NetNs, Netlink};
use weft_lab::{Lab, Mode, StoreKind};
use weft_store::etcd::{EtcdStore, EtcdUrl};
use weft_store::Store;

/// The release whose polling store this is compared with: the last commit before watches.
const PREVIOUS: &str = "41a29d1";
const CIDR: &str = "10.0.0.0/8";
const TTL: Duration = Duration::from_secs(60);

struct Args {
    agents: usize,
    leases: usize,
    idle: Duration,
    repeats: usize,
}

fn args() -> Args {
    let all: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: usize| {
        all.iter()
            .position(|a| a == name)
            .and_then(|i| all.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Args {
        agents: value("--agents", 1000),
        leases: value("--leases", 5000),
        idle: Duration::from_secs(value("--idle", 60) as u64),
        repeats: value("--repeats", 5),
    }
}

fn lease(name: &str, i: usize) -> Lease {
    Lease {
        node: name.to_string(),
        subnet: format!("10.{}.{}.0/24", 16 + i / 256, i % 256).parse().unwrap(),
        public_ip: format!("100.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256).parse().unwrap(),
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac(name)),
        subnet6: None,
        other_public_ip: None,
    }
}

/// The lease as weft 41a29d1 wrote it (with `expiresAt`).
fn old_format(lease: &Lease, expires_at: u64) -> String {
    let mut value = serde_json::to_value(lease).unwrap();
    value["expiresAt"] = expires_at.into();
    value.to_string()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples.get(((samples.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// CPU seconds (user + system) of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command: state is field 3, utime 14, stime 15 (1-based, whole line).
    (ticks(11) + ticks(12)) / 100.0
}

/// What etcd's members have counted so far.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    /// Messages received, every method but LeaseKeepAlive (a unary call is one).
    requests: f64,
    keepalives: f64,
    sent_bytes: f64,
    cpu: f64,
    /// This process's CPU seconds: the simulated agents'.
    own_cpu: f64,
}

/// The counters now. The CPU times are read after the members' /metrics (fetching and
/// parsing them costs this process CPU), or before them with `cpu_first`: a window from one
/// reading to a `cpu_first` one leaves that cost out.
fn counters(lab: &Lab) -> Counters {
    read_counters(lab, false)
}

fn read_counters(lab: &Lab, cpu_first: bool) -> Counters {
    let cpu = || -> (f64, f64) {
        let etcd = lab.etcd_members().iter().filter_map(|m| m.pid).map(cpu_seconds).sum();
        (etcd, cpu_seconds(std::process::id()))
    };
    let early = cpu_first.then(cpu);
    let metric = |name: &str, filter: &[(&str, &str)]| lab.etcd_metric(name, filter).unwrap();
    let all = metric("grpc_server_msg_received_total", &[]);
    let keepalives = metric("grpc_server_msg_received_total", &[("grpc_method", "LeaseKeepAlive")]);
    let sent_bytes = metric("etcd_network_client_grpc_sent_bytes_total", &[]);
    let (cpu, own_cpu) = early.unwrap_or_else(cpu);
    Counters { at: Instant::now(), requests: all - keepalives, keepalives, sent_bytes, cpu, own_cpu }
}

/// Rates between two readings.
#[derive(Debug, Clone, Copy, Default)]
struct Idle {
    requests_per_s: f64,
    keepalives_per_s: f64,
    bytes_per_s: f64,
    cpu_cores: f64,
    own_cpu_cores: f64,
}

fn idle(lab: &Lab, window: Duration) -> Idle {
    let before = counters(lab);
    std::thread::sleep(window);
    let after = read_counters(lab, true);
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    Idle {
        requests_per_s: ((after.requests - before.requests) / seconds).max(0.0),
        keepalives_per_s: (after.keepalives - before.keepalives) / seconds,
        bytes_per_s: (after.sent_bytes - before.sent_bytes) / seconds,
        cpu_cores: (after.cpu - before.cpu) / seconds,
        own_cpu_cores: (after.own_cpu - before.own_cpu) / seconds,
    }
}

/// What a change cost beyond the idle traffic: bytes etcd sent, etcd's CPU seconds and this
/// process's (the simulated agents').
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    bytes: f64,
    etcd_cpu: f64,
    agents_cpu: f64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.bytes += other.bytes;
        self.etcd_cpu += other.etcd_cpu;
        self.agents_cpu += other.agents_cpu;
    }
}

fn cost_of(lab: &Lab, idle: &Idle, change: impl FnOnce()) -> Cost {
    let before = counters(lab);
    change();
    // Answers still on their way are counted too.
    std::thread::sleep(Duration::from_millis(500));
    let after = read_counters(lab, true);
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    Cost {
        bytes: (after.sent_bytes - before.sent_bytes - idle.bytes_per_s * seconds).max(0.0),
        etcd_cpu: (after.cpu - before.cpu - idle.cpu_cores * seconds).max(0.0),
        agents_cpu: (after.own_cpu - before.own_cpu - idle.own_cpu_cores * seconds).max(0.0),
    }
}

/// Bytes etcd sent beyond its idle traffic while `change` ran and the agents took it in.
fn bytes_of(lab: &Lab, idle: &Idle, change: impl FnOnce()) -> f64 {
    cost_of(lab, idle, change).bytes
}

/// A store session of its own, on `runtime` (whose threads, made in the router's
/// namespace, open its sockets there).
fn session(lab: &Lab, runtime: &tokio::runtime::Runtime) -> Arc<dyn Store> {
    let url = EtcdUrl::parse(&lab.state.store_url).unwrap();
    Arc::new(EtcdStore::open_on(&url, runtime.handle().clone()).unwrap())
}

/// Writes `count` leases named `prefix-i` (leases `offset..offset+count`), from 8 threads.
fn write_leases(store: &Arc<dyn Store>, prefix: &str, offset: usize, count: usize) {
    std::thread::scope(|scope| {
        for part in 0..8 {
            scope.spawn(move || {
                for i in (offset + part..offset + count).step_by(8) {
                    let lease = lease(&format!("{prefix}-{i}"), i);
                    store.put_lease(&lease, None, Duration::from_secs(7200)).unwrap().expect("a free subnet");
                }
            });
        }
    });
}

fn delete_all(store: &Arc<dyn Store>) {
    let leases = store.list().unwrap().leases;
    std::thread::scope(|scope| {
        for part in leases.chunks(leases.len().div_ceil(8).max(1)) {
            scope.spawn(move || {
                for held in part {
                    store.delete_lease(&held.lease.node).unwrap();
                }
            });
        }
    });
}

fn peer_routes(nl: &mut Netlink) -> usize {
    nl.routes(false).unwrap().iter().filter(|r| r.protocol == weft_core::plan::PEER_ROUTE_PROTOCOL).count()
}

/// The previous release's binary, built from git history (once; kept in target/).
fn previous_release() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tree = root.join("target/weft-prev");
    let binary = tree.join("target/x86_64-unknown-linux-gnu/release/weft");
    if binary.exists() {
        return Some(binary);
    }
    if !tree.exists() {
        let status = Command::new("git")
            .args(["worktree", "add", "--detach", "-f"])
            .arg(&tree)
            .arg(PREVIOUS)
            .current_dir(&root)
            .status()
            .ok()?;
        if !status.success() {
            eprintln!("git worktree add {PREVIOUS} failed: the previous release is not measured");
            return None;
        }
    }
    println!("building weft {PREVIOUS} (the polling design) in {} …", tree.display());
    let status =
        Command::new("cargo").args(["build", "--release", "-p", "weft"]).current_dir(&tree).status().ok()?;
    (status.success() && binary.exists()).then_some(binary)
}

/// The lab's node n1, running an agent binary of our choosing.
struct RealAgent {
    child: Child,
}

impl RealAgent {
    fn start(lab: &Lab, binary: &Path) -> RealAgent {
        let dir = lab.state.node_dir("n1");
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(lab.state.dir().join("logs").join("bench-n1.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns(lab, "n1")])
            .arg(binary)
            .args(["agent", "--store", &lab.state.store_url, "--node", "n1", "--iface", "eth0"])
            .args(["--lease-ttl", "60", "--metrics-address", "off", "--no-masquerade"])
            .arg("--state-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        RealAgent { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// One real agent among `leases` leases: the same measurements for either design.
struct Single {
    converged: Duration,
    peak_rss_kib: u64,
    idle: Idle,
    renewal_bytes: f64,
    change_bytes: f64,
}

fn measure_single(
    lab: &Lab,
    binary: &Path,
    peers: usize,
    args: &Args,
    renew: &mut dyn FnMut(),
    change: &mut dyn FnMut(),
) -> Single {
    let mut nl =
        Netlink::open_in(&NetNs::open(format!("{}/{}", netns::NETNS_RUN_DIR, ns(lab, "n1"))).unwrap())
            .unwrap();
    let started = Instant::now();
    let agent = RealAgent::start(lab, binary);
    wait_for(Duration::from_secs(120), || peer_routes(&mut nl) >= peers, "all peers in n1's kernel");
    let converged = started.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let idle = idle(lab, args.idle.min(Duration::from_secs(30)));
    let renewal_bytes = (0..3).map(|_| bytes_of(lab, &idle, &mut *renew)).sum::<f64>() / 3.0;
    let change_bytes = (0..3).map(|_| bytes_of(lab, &idle, &mut *change)).sum::<f64>() / 3.0;
    let peak_rss_kib = memory_kib(agent.pid(), "VmHWM:");
    agent.stop();
    // The next design starts from a bare node: no tunnel, no peer routes.
    support::exec_in(&ns(lab, "n1"), "ip", &["link", "del", "weft.1"], false);
    support::exec_in(&ns(lab, "n1"), "ip", &["route", "flush", "proto", "88"], false);
    assert_eq!(peer_routes(&mut nl), 0);
    Single { converged, peak_rss_kib, idle, renewal_bytes, change_bytes }
}

/// The previous design: its agent, its lease format, its renewals (a rewrite of the value).
fn before(lab: &Lab, runtime: &tokio::runtime::Runtime, args: &Args) -> Option<Single> {
    let binary = previous_release()?;
    let url = EtcdUrl::parse(&lab.state.store_url).unwrap();
    let endpoints: Vec<String> = url.endpoints.iter().map(|e| format!("http://{e}")).collect();
    let mut client = runtime.block_on(etcd_client::Client::connect(&endpoints, None)).unwrap();
    let expires = weft_core::now() + 7200;
    let grant = runtime.block_on(client.lease_grant(7200, None)).unwrap().id();
    let put = |key: String, value: String| {
        let mut kv = client.kv_client();
        runtime.block_on(kv.put(key, value, Some(etcd_client::PutOptions::new().with_lease(grant)))).unwrap();
    };
    let synthetic = args.leases - 1;
    for i in 0..synthetic {
        let lease = lease(&format!("old-{i}"), i);
        put(format!("/weft/leases/{}", lease.node), old_format(&lease, expires));
    }
    // Another node's renewal, as that release made it: its lease rewritten, a later expiresAt.
    let renewing = lease("old-0", 0);
    let mut renewals = 0;
    let mut renew = || {
        renewals += 1;
        put("/weft/leases/old-0".into(), old_format(&renewing, expires + renewals));
    };
    let mut moving = lease(&format!("old-{}", synthetic - 1), synthetic - 1);
    let mut change = || {
        moving.public_ip = next_ip(moving.public_ip);
        put(format!("/weft/leases/{}", moving.node), old_format(&moving, expires));
    };
    let single = measure_single(lab, &binary, synthetic, args, &mut renew, &mut change);
    runtime.block_on(client.lease_revoke(grant)).unwrap();
    let mut kv = client.kv_client();
    runtime
        .block_on(kv.delete("/weft/leases/", Some(etcd_client::DeleteOptions::new().with_prefix())))
        .unwrap();
    runtime
        .block_on(kv.delete("/weft/subnets/", Some(etcd_client::DeleteOptions::new().with_prefix())))
        .unwrap();
    Some(single)
}

/// Another public IP for a peer that moves.
fn next_ip(ip: IpAddr) -> IpAddr {
    if ip.to_string() == "192.0.2.1" { "192.0.2.2" } else { "192.0.2.1" }.parse().unwrap()
}

/// A simulated agent's uplink: on its own /24, so every peer is a VXLAN peer.
fn uplink(i: usize) -> Uplink {
    let ip: Ipv4Addr = format!("100.127.{}.{}", i / 250, i % 250 + 1).parse().unwrap();
    Uplink {
        name: "eth0".into(),
        index: 2,
        mtu: 1500,
        public_ip: IpAddr::V4(ip),
        other_public_ip: None,
        connected: vec![format!("100.127.{}.{}/32", i / 250, i % 250 + 1).parse().unwrap()],
        port: None,
    }
}

struct Fleet {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// (agent, changed peer, when its pass planned it)
    seen: mpsc::Receiver<(usize, String, Instant)>,
}

fn start_fleet(lab: &Lab, runtime: &tokio::runtime::Runtime, agents: usize) -> Fleet {
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, seen) = mpsc::channel();
    let mut threads = Vec::new();
    let started = Instant::now();
    for wave in (0..agents).collect::<Vec<_>>().chunks(50) {
        let barrier = Arc::new(Barrier::new(wave.len() + 1));
        for &i in wave {
            let store = session(lab, runtime);
            let config = AgentConfig {
                role: Role::Node,
                node: format!("sim-{i}"),
                state_dir: None,
                lease_ttl: TTL,
                resync: Duration::from_secs(3600),
                masquerade: false,
                overlay_filter: true,
                public_ip: None,
                local_asn: None,
                cni_conflist: None,
            };
            let kernel = RecordingKernel::new(uplink(i));
            let mut agent = Agent::new(config, store, Box::new(kernel), uplink(i), None, Default::default());
            let (stop, sender, barrier) = (stop.clone(), sender.clone(), barrier.clone());
            let thread = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
                let first = agent.step(&stop);
                if let Some(error) = first.error {
                    eprintln!("sim-{i}: {error}");
                }
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let report = agent.step(&stop);
                    if report.trigger == Some(Trigger::Store) {
                        let now = Instant::now();
                        for peer in report.peers_changed.into_iter().filter(|p| p.starts_with("probe")) {
                            let _ = sender.send((i, peer, now));
                        }
                    }
                }
            });
            threads.push(thread.unwrap());
        }
        barrier.wait();
    }
    println!("  {agents} simulated agents joined in {:.1} s", started.elapsed().as_secs_f64());
    Fleet { stop, threads, seen }
}

impl Fleet {
    /// Waits until every agent planned `peer` (after `written`, when the write was sent);
    /// the delays from `acked`, when etcd acknowledged it (an agent may be quicker than the
    /// acknowledgement's way back: zero).
    fn converge(&self, agents: usize, peer: &str, written: Instant, acked: Instant) -> Vec<Duration> {
        let mut delays = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while delays.len() < agents {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} of {agents} agents planned {peer} within 60 s", delays.len());
            if let Ok((agent, name, at)) = self.seen.recv_timeout(left) {
                if name == peer && at >= written {
                    delays.entry(agent).or_insert(at.saturating_duration_since(acked));
                }
            }
        }
        delays.into_values().collect()
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let args = args();
    // Thousands of connections: as many descriptors as root may have (etcd inherits it).
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let lab = support::lab::lab(Mode::Vxlan, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = 1;
        spec.pods_per_node = 0;
        spec.store = StoreKind::Etcd;
        spec.etcd_members = 3;
        spec.start_agents = false;
        spec.lease_ttl = 60;
    });
    // Everything from here runs in the router's namespace, which reaches every member.
    NetNs::open(format!("{}/{}", netns::NETNS_RUN_DIR, lab.topology().router_netns))
        .unwrap()
        .enter()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The writer's session on a runtime of its own: its acknowledgements do not queue behind
    // the fleet's watch events.
    let admin_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let admin = session(&lab, &admin_runtime);
    let config = NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new(CIDR.parse().unwrap()) };
    admin.init_network(&config, true).unwrap();
    println!("fleet benchmark: etcd 3.4, 3 members ({}), {} leases", lab.state.store_url, args.leases);
    // etcd's own cost with no client: raft heartbeats between the members, its timers.
    let baseline = idle(&lab, Duration::from_secs(20));
    println!("  etcd alone: {:.1} % of a core (all members)", baseline.cpu_cores * 100.0);

    // 1. Before: the polling design.
    let old = before(&lab, &runtime, &args);
    if let Some(old) = &old {
        println!(
            "  before ({PREVIOUS}): {:.1} requests/s idle, etcd {:.3} cores, {} per renewal elsewhere, {} per peer change",
            old.idle.requests_per_s,
            old.idle.cpu_cores,
            kib(old.renewal_bytes),
            kib(old.change_bytes)
        );
    }

    // 2. One real agent of this tree, the same way.
    let binary = PathBuf::from(support::WEFT);
    write_leases(&admin, "peer", 0, args.leases - 1);
    let probe = lease("probe-real", args.leases + 10);
    // Another node's renewal, as this tree makes it: a keepalive.
    let held = std::cell::RefCell::new(admin.put_lease(&probe, None, TTL).unwrap().unwrap());
    let mut renew = || {
        admin.keep_alive(&held.borrow()).unwrap();
    };
    let mut change = || {
        let mut moved = held.borrow().lease.clone();
        moved.public_ip = next_ip(moved.public_ip);
        let next = admin.put_lease(&moved, Some(&held.borrow()), TTL).unwrap().unwrap();
        *held.borrow_mut() = next;
    };
    let new = measure_single(&lab, &binary, args.leases - 1, &args, &mut renew, &mut change);
    println!(
        "  one real agent: {} to {} peers in the kernel, peak RSS {:.1} MiB, {:.3} requests/s idle, etcd {:.3} cores",
        ms(new.converged),
        args.leases,
        new.peak_rss_kib as f64 / 1024.0,
        new.idle.requests_per_s,
        new.idle.cpu_cores
    );
    delete_all(&admin);

    // 3. The fleet.
    let others = args.leases - args.agents;
    write_leases(&admin, "peer", 0, others);
    let rss_before = memory_kib(std::process::id(), "VmRSS:");
    let fleet = start_fleet(&lab, &runtime, args.agents);
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = memory_kib(std::process::id(), "VmRSS:");
    let fleet_idle = idle(&lab, args.idle);
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    let mut moves = Vec::new();
    let (mut join, mut leave, mut moving) = (Cost::default(), Cost::default(), Cost::default());
    for r in 0..args.repeats {
        let name = format!("probe-{r}");
        let probe = lease(&name, args.leases + 20 + r);
        let mut held = None;
        join += cost_of(&lab, &fleet_idle, || {
            let written = Instant::now();
            held = admin.put_lease(&probe, None, TTL).unwrap();
            joins.extend(fleet.converge(args.agents, &name, written, Instant::now()));
        });
        let held = held.unwrap();
        let mut moved = probe.clone();
        moved.public_ip = "192.0.2.77".parse().unwrap();
        let mut after = None;
        moving += cost_of(&lab, &fleet_idle, || {
            let written = Instant::now();
            after = admin.put_lease(&moved, Some(&held), TTL).unwrap();
            moves.extend(fleet.converge(args.agents, &name, written, Instant::now()));
        });
        assert!(after.is_some());
        leave += cost_of(&lab, &fleet_idle, || {
            let written = Instant::now();
            admin.delete_lease(&name).unwrap();
            leaves.extend(fleet.converge(args.agents, &name, written, Instant::now()));
        });
    }
    fleet.stop();
    let per_agent = |total: f64| total / args.repeats as f64 / args.agents as f64;

    println!();
    println!(
        "| {} agents, {} leases, etcd 3.4 × 3 members | before ({PREVIOUS}, polling) | this tree |",
        args.agents, args.leases
    );
    println!("|---|---|---|");
    let before_or = |f: &dyn Fn(&Single) -> String| old.as_ref().map_or("not measured".to_string(), f);
    println!(
        "| idle: requests/s per agent, beyond keepalives | {} | {:.4} (fleet), {:.4} (one real agent) |",
        before_or(&|o| format!("{:.1}", o.idle.requests_per_s)),
        fleet_idle.requests_per_s / args.agents as f64,
        new.idle.requests_per_s
    );
    println!(
        "| idle: keepalives/s per agent | {} | {:.3} |",
        before_or(&|_| "(renewal: a rewrite, above)".into()),
        fleet_idle.keepalives_per_s / args.agents as f64
    );
    let above = |cores: f64| (cores - baseline.cpu_cores) * 100.0;
    println!(
        "| idle: etcd CPU, all members, above its own {:.1} % with no client | {} for one agent | {:.1} % of a core for {} agents; {:.1} % for one real agent |",
        baseline.cpu_cores * 100.0,
        before_or(&|o| format!("{:.1} % of a core", above(o.idle.cpu_cores))),
        above(fleet_idle.cpu_cores),
        args.agents,
        above(new.idle.cpu_cores)
    );
    println!(
        "| another node renews: bytes etcd sends each agent | {} | {} |",
        before_or(&|o| kib(o.renewal_bytes)),
        kib(new.renewal_bytes)
    );
    println!(
        "| a peer changes: bytes etcd sends each agent | {} (public IP) | join {}, public IP {}, leave {} (fleet); {} (one real agent, public IP) |",
        before_or(&|o| kib(o.change_bytes)),
        kib(per_agent(join.bytes)),
        kib(per_agent(moving.bytes)),
        kib(per_agent(leave.bytes)),
        kib(new.change_bytes)
    );
    for (what, samples) in [("join", &mut joins), ("public IP", &mut moves), ("leave", &mut leaves)] {
        println!(
            "| convergence, {what}: etcd's ack → every agent's plan, p50 / p99 ({} samples) | – | {} / {} |",
            samples.len(),
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.99))
        );
    }
    let per_change = |cost: &Cost| {
        format!(
            "etcd {:.0} ms, the agents {:.0} ms ({:.0} µs each)",
            cost.etcd_cpu * 1000.0 / args.repeats as f64,
            cost.agents_cpu * 1000.0 / args.repeats as f64,
            cost.agents_cpu * 1e6 / args.repeats as f64 / args.agents as f64
        )
    };
    println!(
        "| CPU per change, all told (2 cores here hold etcd and every agent) | – | join: {}; public IP: {}; leave: {} |",
        per_change(&join),
        per_change(&moving),
        per_change(&leave)
    );
    println!(
        "| memory per simulated agent (cache, plan, in-memory kernel, session) | – | {:.0} KiB |",
        rss_after.saturating_sub(rss_before) as f64 / args.agents as f64
    );
    println!(
        "| one real agent among {} leases: all peers in its kernel; peak RSS | {} | {}; {:.1} MiB |",
        args.leases,
        before_or(&|o| format!("{}; {:.1} MiB", ms(o.converged), o.peak_rss_kib as f64 / 1024.0)),
        ms(new.converged),
        new.peak_rss_kib as f64 / 1024.0
    );
    drop(runtime);
    drop(admin_runtime);
}
