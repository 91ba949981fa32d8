//! The agent's passes without root: a real store (SQLite, in a temporary file), the kernel
//! in memory (the seam). What each pass reads and changes is counted.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use weft_agent::node::Uplink;
use weft_agent::{Agent, AgentConfig, Kernel, LeaseEvent, PassReport, RecordingKernel, Trigger};
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, Family, NetworkConfig};
use weft_core::status::Role;
use weft_store::sqlite::SqliteStore;
use weft_store::Store;

struct World {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let world = World { _dir: dir, path };
        let config =
            NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
        world.store().init_network(&config, false).unwrap();
        world
    }

    fn store(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path).unwrap())
    }

    fn agent(&self, name: &str, kernel: RecordingKernel) -> Agent {
        self.agent_with(name, kernel, uplink(), None)
    }

    fn agent_with(
        &self,
        name: &str,
        kernel: RecordingKernel,
        uplink: Uplink,
        state_dir: Option<std::path::PathBuf>,
    ) -> Agent {
        let config = AgentConfig {
            role: Role::Node,
            node: name.into(),
            state_dir,
            lease_ttl: Duration::from_secs(30),
            resync: Duration::from_secs(3600),
            masquerade: true,
            overlay_filter: true,
            public_ip: None,
            local_asn: None,
            cni_conflist: None,
        };
        Agent::new(config, self.store(), Box::new(kernel), uplink, None, Default::default())
    }

    /// A peer's lease, written as its agent would.
    fn peer(&self, n: u8) -> Lease {
        let lease = Lease {
            node: format!("peer{n}"),
            subnet: format!("10.244.{}.0/24", 100 + n).parse().unwrap(),
            public_ip: format!("198.51.100.{n}").parse().unwrap(),
            backend: Backend::Vxlan,
            vtep_mac: Some(vtep_mac(&format!("peer{n}"))),
            subnet6: None,
            other_public_ip: None,
        };
        self.store().put_lease(&lease, None, Duration::from_secs(60)).unwrap().unwrap();
        lease
    }

    fn revision(&self) -> u64 {
        self.store().list().unwrap().revision
    }
}

fn uplink() -> Uplink {
    Uplink {
        name: "eth0".into(),
        index: 2,
        mtu: 1500,
        public_ip: "192.0.2.11".parse().unwrap(),
        other_public_ip: None,
        connected: vec!["192.0.2.0/24".parse().unwrap()],
        port: None,
    }
}

fn kernel() -> RecordingKernel {
    RecordingKernel::new(uplink())
}

/// The next pass that did something for the store's changes.
fn next_store_pass(agent: &mut Agent) -> PassReport {
    let stop = AtomicBool::new(false);
    for _ in 0..40 {
        let report = agent.step(&stop);
        if report.trigger == Some(Trigger::Store) {
            return report;
        }
    }
    panic!("no store pass");
}

fn routes(agent: &mut Agent) -> Vec<String> {
    let kernel = agent.kernel();
    let observed = kernel.observe(Some("weft.1")).unwrap();
    observed.routes.iter().map(|r| r.destination.to_string()).collect()
}

#[test]
fn a_node_joins_then_each_peer_change_costs_that_peer_only() {
    let world = World::new();
    world.peer(1);
    let mut agent = world.agent("n1", kernel());
    let stop = AtomicBool::new(false);
    let start = agent.step(&stop);
    assert_eq!(start.trigger, Some(Trigger::Start));
    assert!(matches!(start.lease, LeaseEvent::Acquired(_)), "{:?}", start.lease);
    assert!(start.full && start.error.is_none(), "{start:?}");
    assert_eq!(start.reconciled.changes.count(), 3, "peer1's route, neighbour and FDB entry");
    assert_eq!(agent.informer_stats().lists, 1, "one listing: the lease came from the cache");

    let peer2 = world.peer(2);
    let report = next_store_pass(&mut agent);
    assert!(!report.full, "a delta pass: the kernel is not read");
    assert_eq!(report.peers_changed, vec!["peer2"]);
    assert_eq!(report.reconciled.changes.set_routes.len(), 1);
    assert_eq!(report.reconciled.count(), 3);

    // peer2 moves: its route stays, its FDB entry follows it
    let mut moved = peer2.clone();
    moved.public_ip = "198.51.100.99".parse().unwrap();
    let store = world.store();
    let held = store.list().unwrap().leases.into_iter().find(|l| l.lease.node == "peer2").unwrap();
    store.put_lease(&moved, Some(&held), Duration::from_secs(60)).unwrap().unwrap();
    let report = next_store_pass(&mut agent);
    assert_eq!(report.reconciled.changes.set_fdb.len(), 1);
    assert_eq!(report.reconciled.count(), 1, "only the FDB entry differs");

    store.delete_lease("peer2").unwrap();
    let report = next_store_pass(&mut agent);
    assert_eq!(report.reconciled.changes.delete_routes.len(), 1);
    assert_eq!(report.reconciled.count(), 3);
    assert_eq!(routes(&mut agent), vec!["10.244.101.0/24"]);
    assert_eq!(agent.informer_stats().lists, 1, "still the one listing");
}

#[test]
fn renewing_and_resyncing_write_nothing_to_the_store_and_resync_repairs_drift() {
    let world = World::new();
    world.peer(1);
    let mut agent = world.agent("n1", kernel());
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    let revision = world.revision();
    let renew = agent.pass(Trigger::Renew, Vec::new());
    assert_eq!(renew.lease, LeaseEvent::Unchanged, "not due yet");
    // drift: the route to peer1 deleted by hand
    let route = {
        let observed = agent.kernel().observe(Some("weft.1")).unwrap();
        observed.routes[0].clone()
    };
    let mut gone = weft_core::reconcile::Changes::default();
    gone.delete_routes.push(route);
    agent.kernel().apply(&gone).unwrap();
    let resync = agent.pass(Trigger::Resync, Vec::new());
    assert!(resync.full);
    assert_eq!(resync.reconciled.changes.set_routes.len(), 1, "the route is back");
    assert_eq!(resync.reconciled.count(), 1);
    assert_eq!(world.revision(), revision, "nothing was written");
}

#[test]
fn a_restarted_agent_changes_nothing_and_keeps_its_lease_as_written() {
    let world = World::new();
    world.peer(1);
    world.peer(2);
    let mut first = world.agent("n1", kernel());
    let stop = AtomicBool::new(false);
    first.step(&stop);
    let lease = first.lease().cloned().unwrap();
    let revision = world.revision();
    // the kernel as the first agent left it, a new agent on it
    let mut left = kernel();
    left.apply(&weft_core::reconcile::diff(first.plan().unwrap(), &Default::default())).unwrap();
    left.ensure_vxlan(first.plan().unwrap().vxlan.as_ref().unwrap()).unwrap();
    drop(first);
    let mut second = world.agent("n1", left);
    let start = second.step(&stop);
    assert_eq!(start.reconciled.count(), 0, "{start:?}");
    assert_eq!(second.lease(), Some(&lease));
    assert_eq!(world.revision(), revision, "the lease was kept alive, not rewritten");
}

#[test]
fn a_lost_lease_is_leased_again_on_the_same_subnet() {
    let world = World::new();
    let mut agent = world.agent("n1", kernel());
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    let subnet = agent.lease().unwrap().subnet;
    world.store().delete_lease("n1").unwrap();
    let report = next_store_pass(&mut agent);
    assert_eq!(report.lease, LeaseEvent::Acquired(subnet), "{report:?}");
    assert_eq!(world.store().list().unwrap().leases[0].lease.subnet, subnet);
}

#[test]
fn a_kernel_that_refuses_a_delta_gets_a_full_pass() {
    let world = World::new();
    let recording = kernel();
    let refuse = recording.refuse_next_apply.clone();
    let mut agent = world.agent("n1", recording);
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    *refuse.lock().unwrap() = Some("refused".into());
    world.peer(3);
    let report = next_store_pass(&mut agent);
    assert!(report.full && report.error.is_none(), "fell back to a full pass: {report:?}");
    assert_eq!(routes(&mut agent), vec!["10.244.103.0/24"]);
}

/// A store that can be out of reach, or whose watch says what a test tells it.
struct Flaky {
    inner: SqliteStore,
    down: Arc<std::sync::atomic::AtomicBool>,
    inject: Arc<std::sync::Mutex<Vec<weft_store::Event>>>,
}

struct FlakyWatch {
    inner: Box<dyn weft_store::Watch>,
    down: Arc<std::sync::atomic::AtomicBool>,
    inject: Arc<std::sync::Mutex<Vec<weft_store::Event>>>,
}

fn unreachable() -> weft_store::StoreError {
    weft_store::StoreError::Unavailable("out of reach (the test says so)".into())
}

impl weft_store::Watch for FlakyWatch {
    fn next(&mut self, timeout: Duration) -> Result<Option<weft_store::WatchBatch>, weft_store::StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(timeout.min(Duration::from_millis(50)));
            return Err(unreachable());
        }
        let injected: Vec<_> = std::mem::take(&mut *self.inject.lock().unwrap());
        if !injected.is_empty() {
            return Ok(Some(weft_store::WatchBatch { events: injected, revision: 0 }));
        }
        self.inner.next(timeout)
    }
}

impl Store for Flaky {
    fn network(&self) -> Result<Option<NetworkConfig>, weft_store::StoreError> {
        self.check()?;
        self.inner.network()
    }
    fn init_network(&self, config: &NetworkConfig, force: bool) -> Result<(), weft_store::StoreError> {
        self.check()?;
        self.inner.init_network(config, force)
    }
    fn list(&self) -> Result<weft_store::Snapshot, weft_store::StoreError> {
        self.check()?;
        self.inner.list()
    }
    fn watch(&self, after: u64) -> Result<Box<dyn weft_store::Watch>, weft_store::StoreError> {
        self.check()?;
        Ok(Box::new(FlakyWatch {
            inner: self.inner.watch(after)?,
            down: self.down.clone(),
            inject: self.inject.clone(),
        }))
    }
    fn put_lease(
        &self,
        lease: &Lease,
        expected: Option<&weft_store::StoredLease>,
        ttl: Duration,
    ) -> Result<Option<weft_store::StoredLease>, weft_store::StoreError> {
        self.check()?;
        self.inner.put_lease(lease, expected, ttl)
    }
    fn keep_alive(&self, held: &weft_store::StoredLease) -> Result<Option<Duration>, weft_store::StoreError> {
        self.check()?;
        self.inner.keep_alive(held)
    }
    fn delete_lease(&self, node: &str) -> Result<(), weft_store::StoreError> {
        self.check()?;
        self.inner.delete_lease(node)
    }
    fn compact(&self, revision: u64) -> Result<(), weft_store::StoreError> {
        self.inner.compact(revision)
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

impl Flaky {
    fn check(&self) -> Result<(), weft_store::StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            Err(unreachable())
        } else {
            Ok(())
        }
    }
}

impl World {
    /// An agent on a flaky handle of this world's store; the handle's switches.
    #[allow(clippy::type_complexity)]
    fn flaky_agent(
        &self,
        name: &str,
        kernel: RecordingKernel,
    ) -> (Agent, Arc<std::sync::atomic::AtomicBool>, Arc<std::sync::Mutex<Vec<weft_store::Event>>>) {
        self.flaky_agent_with(name, kernel, Default::default())
    }

    /// `flaky_agent`, reporting to `metrics`.
    #[allow(clippy::type_complexity)]
    fn flaky_agent_with(
        &self,
        name: &str,
        kernel: RecordingKernel,
        metrics: Arc<weft_agent::metrics::Metrics>,
    ) -> (Agent, Arc<std::sync::atomic::AtomicBool>, Arc<std::sync::Mutex<Vec<weft_store::Event>>>) {
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let inject = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Flaky {
            inner: SqliteStore::open(&self.path).unwrap(),
            down: down.clone(),
            inject: inject.clone(),
        };
        let config = AgentConfig {
            role: Role::Node,
            node: name.into(),
            state_dir: None,
            // renewals due often, so that a spin would show
            lease_ttl: Duration::from_secs(3),
            resync: Duration::from_secs(3600),
            masquerade: true,
            overlay_filter: true,
            public_ip: None,
            local_asn: None,
            cni_conflist: None,
        };
        let agent = Agent::new(config, Arc::new(store), Box::new(kernel), uplink(), None, metrics);
        (agent, down, inject)
    }
}

/// Passes the agent makes within `within`.
fn passes_within(agent: &mut Agent, within: Duration) -> Vec<PassReport> {
    let stop = AtomicBool::new(false);
    let deadline = std::time::Instant::now() + within;
    let mut reports = Vec::new();
    while std::time::Instant::now() < deadline {
        let report = agent.step(&stop);
        if report.trigger.is_some() {
            reports.push(report);
        }
    }
    reports
}

#[test]
fn without_a_network_config_the_agent_keeps_its_lease_and_waits_without_spinning() {
    let world = World::new();
    world.peer(1);
    let (mut agent, _, inject) = world.flaky_agent("n1", kernel());
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    let config = world.store().network().unwrap().unwrap();
    // The config goes (deleted, or no longer readable).
    inject.lock().unwrap().push(weft_store::Event::Network(None));
    let reports = passes_within(&mut agent, Duration::from_secs(3));
    assert!(reports.len() < 10, "{} passes in 3 s: a spin", reports.len());
    assert!(agent.plan().is_none(), "nothing planned without a config");
    assert!(reports.iter().any(|r| r.lease == LeaseEvent::Renewed), "the lease is still kept alive");
    // It comes back: planned again.
    inject.lock().unwrap().push(weft_store::Event::Network(Some(config)));
    passes_within(&mut agent, Duration::from_millis(600));
    assert!(agent.plan().is_some_and(|p| p.peers().contains_key("peer1")));
}

#[test]
fn a_peer_that_comes_and_goes_in_one_batch_leaves_nothing_behind() {
    let world = World::new();
    let (mut agent, _, inject) = world.flaky_agent("n1", kernel());
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    let visitor = Lease {
        node: "visitor".into(),
        subnet: "10.244.200.0/24".parse().unwrap(),
        public_ip: "198.51.100.200".parse().unwrap(),
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac("visitor")),
        subnet6: None,
        other_public_ip: None,
    };
    let held = weft_store::StoredLease { lease: visitor, version: 1, created: 1, liveness: 1 };
    inject
        .lock()
        .unwrap()
        .extend([weft_store::Event::LeasePut(held), weft_store::Event::LeaseDeleted("visitor".into())]);
    let report = next_store_pass(&mut agent);
    assert_eq!(report.reconciled.count(), 0, "nothing to do: {report:?}");
    assert!(routes(&mut agent).is_empty());
}

#[test]
fn an_unreachable_store_leaves_the_kernel_as_it_is_and_the_agent_catches_up() {
    let world = World::new();
    world.peer(1);
    let (mut agent, down, _) = world.flaky_agent("n1", kernel());
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    let before = agent.kernel().observe(Some("weft.1")).unwrap();
    down.store(true, std::sync::atomic::Ordering::Relaxed);
    world.peer(2); // a change it cannot hear of yet
    let reports = passes_within(&mut agent, Duration::from_secs(3));
    assert!(reports.iter().any(|r| r.store_unreachable), "{reports:?}");
    assert!(reports.len() < 10, "retries a second apart: {}", reports.len());
    assert_eq!(agent.kernel().observe(Some("weft.1")).unwrap(), before, "the kernel untouched");
    assert!(!agent.status(false).store.connected);
    down.store(false, std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !routes(&mut agent).contains(&"10.244.102.0/24".to_string()) {
        assert!(std::time::Instant::now() < deadline, "never caught up");
        agent.step(&stop);
    }
    assert_eq!(agent.informer_stats().lists, 1, "caught up by the watch, not a listing");
}

#[test]
fn the_cni_config_comes_after_the_lease_and_the_node_file_and_makes_the_node_ready() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&store_path).unwrap());
    let state_dir = dir.path().join("state");
    let conflist = weft_agent::CniConflist {
        dir: dir.path().join("net.d"),
        name: "10-weft.conflist".into(),
        text: weft_core::conflist::default_conflist(&state_dir, std::path::Path::new("/run/weft")),
    };
    let config = AgentConfig {
        role: Role::Node,
        node: "n1".into(),
        state_dir: Some(state_dir.clone()),
        lease_ttl: Duration::from_secs(30),
        resync: Duration::from_secs(3600),
        masquerade: false,
        overlay_filter: true,
        public_ip: None,
        local_asn: None,
        cni_conflist: Some(conflist.clone()),
    };
    let metrics = Arc::new(weft_agent::metrics::Metrics::default());
    let mut agent = Agent::new(config, store.clone(), Box::new(kernel()), uplink(), None, metrics.clone());
    let ready = || metrics.ready.load(std::sync::atomic::Ordering::Relaxed);
    let stop = AtomicBool::new(false);

    // No network yet: no lease, so no node file, no config, not ready.
    agent.step(&stop);
    assert!(!ready());
    assert!(!state_dir.join("node.json").exists());
    assert!(!conflist.path().exists());

    let network =
        NetworkConfig { backend: Backend::Route, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
    store.init_network(&network, false).unwrap();
    let report = next_store_pass(&mut agent);
    assert!(matches!(report.lease, LeaseEvent::Acquired(_)), "{report:?}");
    assert!(state_dir.join("node.json").exists());
    assert_eq!(std::fs::read_to_string(conflist.path()).unwrap(), conflist.text);
    assert!(ready());
    assert!(metrics.render().contains("weft_ready 1"));

    // Another agent on the same node (a restart) finds the config as it should be and
    // leaves it alone: the same file, never removed.
    drop(agent);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(conflist.path()).unwrap());
    let config = AgentConfig {
        role: Role::Node,
        node: "n1".into(),
        state_dir: Some(state_dir.clone()),
        lease_ttl: Duration::from_secs(30),
        resync: Duration::from_secs(3600),
        masquerade: false,
        overlay_filter: true,
        public_ip: None,
        local_asn: None,
        cni_conflist: Some(conflist.clone()),
    };
    let metrics = Arc::new(weft_agent::metrics::Metrics::default());
    let mut agent = Agent::new(config, store, Box::new(kernel()), uplink(), None, metrics.clone());
    agent.step(&stop);
    assert!(metrics.ready.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(conflist.path()).unwrap()), inode);
}

#[test]
fn the_overlay_filter_follows_the_believed_peers_and_the_networks_overlay_sources() {
    let world = World::new();
    world.peer(1);
    let mut agent = world.agent("n1", kernel());
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    let sources = |agent: &Agent| -> Vec<String> {
        agent.status(true).overlay_sources.expect("a filter").iter().map(|s| s.to_string()).collect()
    };
    assert_eq!(sources(&agent), ["198.51.100.1/32"], "the peer, not this node");
    world.peer(2);
    next_store_pass(&mut agent);
    assert_eq!(sources(&agent), ["198.51.100.1/32", "198.51.100.2/32"]);

    // A lease not believed (its public IP inside the pod CIDR) is not let in.
    let liar = Lease {
        node: "peer3".into(),
        subnet: "10.244.103.0/24".parse().unwrap(),
        public_ip: "10.244.5.5".parse().unwrap(),
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac("peer3")),
        subnet6: None,
        other_public_ip: None,
    };
    world.store().put_lease(&liar, None, Duration::from_secs(60)).unwrap().unwrap();
    next_store_pass(&mut agent);
    assert!(agent.rejected().contains_key("peer3"));
    assert_eq!(sources(&agent), ["198.51.100.1/32", "198.51.100.2/32"]);

    // A peer that leaves, leaves the filter.
    world.store().delete_lease("peer1").unwrap();
    next_store_pass(&mut agent);
    assert_eq!(sources(&agent), ["198.51.100.2/32"]);

    // Gateways and clients, named by the network's config, are let in too.
    let config = NetworkConfig {
        backend: Backend::Vxlan,
        overlay_sources: vec!["203.0.113.10/32".parse().unwrap()],
        ..NetworkConfig::new("10.244.0.0/16".parse().unwrap())
    };
    world.store().init_network(&config, true).unwrap();
    next_store_pass(&mut agent);
    assert_eq!(sources(&agent), ["198.51.100.2/32", "203.0.113.10/32"]);

    // Off where no VXLAN runs.
    let routed = NetworkConfig { backend: Backend::Route, ..config };
    world.store().init_network(&routed, true).unwrap();
    next_store_pass(&mut agent);
    assert_eq!(agent.status(true).overlay_sources, None);
}

#[test]
fn an_overlay_filter_the_kernel_refuses_is_tried_again_soon_and_said_in_the_status() {
    let world = World::new();
    world.peer(1);
    let kernel = kernel();
    let refuse = kernel.refuse_next_overlay_filter.clone();
    let mut agent = world.agent("n1", kernel);
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    *refuse.lock().unwrap() = Some("nft is gone (the test says so)".into());
    world.peer(2);
    next_store_pass(&mut agent);
    let status = agent.status(true);
    assert!(status.overlay_filter_error.is_some_and(|e| e.contains("nft is gone")), "said in the status");
    // The next pass (a retry, not the resync an hour away) sets it.
    passes_within(&mut agent, Duration::from_secs(2));
    let status = agent.status(true);
    assert_eq!(status.overlay_filter_error, None);
    assert_eq!(status.overlay_sources.unwrap().len(), 2, "both peers let in");
}

/// `/readyz` follows the lease: ready once leased, not ready once the store has not confirmed
/// the lease for its TTL (the subnet may be another node's by then), ready again once renewed.
#[test]
fn readiness_goes_when_the_lease_can_no_longer_be_confirmed_and_comes_back_with_it() {
    let world = World::new();
    let metrics = Arc::new(weft_agent::metrics::Metrics::default());
    let (mut agent, down, _) = world.flaky_agent_with("n1", kernel(), metrics.clone());
    let ready = || metrics.ready.load(std::sync::atomic::Ordering::Relaxed);
    let stop = AtomicBool::new(false);
    agent.step(&stop);
    assert!(ready(), "leased: ready");
    down.store(true, std::sync::atomic::Ordering::Relaxed);
    // Within the 3 s TTL it is still ready; past it, not.
    passes_within(&mut agent, Duration::from_secs(1));
    assert!(ready(), "the lease is alive for its TTL");
    passes_within(&mut agent, Duration::from_millis(2500));
    assert!(!ready(), "unconfirmed for longer than the TTL: not ready");
    assert!(metrics.render().contains("weft_ready 0"));
    down.store(false, std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        agent.step(&stop);
    }
}

/// A dual-stack network: the node leases a subnet of each family in one lease, writes both
/// into its node file, reaches a dual peer in both families through one VXLAN device over
/// IPv4, masquerades both families, and stops masquerading IPv6 when the network says so.
#[test]
fn a_dual_stack_node_leases_plans_and_masquerades_both_families() {
    let world = World::new();
    let dual = |no_masquerade: Vec<Family>| NetworkConfig {
        backend: Backend::Vxlan,
        no_masquerade,
        ..NetworkConfig::with_cidrs(&["10.244.0.0/16".parse().unwrap(), "fd00:10:244::/56".parse().unwrap()])
            .unwrap()
    };
    world.store().init_network(&dual(vec![]), true).unwrap();
    let peer = Lease {
        subnet6: Some("fd00:10:244:65::/64".parse().unwrap()),
        other_public_ip: Some("2001:db8:51::1".parse().unwrap()),
        ..world.peer(1)
    };
    let store = world.store();
    let held = store.list().unwrap().leases.into_iter().find(|l| l.lease.node == "peer1").unwrap();
    store.put_lease(&peer, Some(&held), Duration::from_secs(60)).unwrap().unwrap();

    let state = tempfile::tempdir().unwrap();
    let mut link = uplink();
    link.other_public_ip = Some("2001:db8:2::11".parse().unwrap());
    link.connected.push("2001:db8:2::/64".parse().unwrap());
    let kernel = RecordingKernel::new(link.clone());
    let masqueraded = kernel.masqueraded.clone();
    let mut agent = world.agent_with("n1", kernel, link, Some(state.path().to_path_buf()));
    let stop = AtomicBool::new(false);
    let start = agent.step(&stop);
    assert!(start.error.is_none(), "{start:?}");
    let lease = agent.lease().unwrap().clone();
    let subnet6 = lease.subnet6.expect("an IPv6 half");
    assert!(subnet6.prefix_len() == 64 && lease.subnet.prefix_len() == 24, "{lease:?}");
    assert_eq!(lease.other_public_ip, Some("2001:db8:2::11".parse().unwrap()));
    assert_eq!(start.reconciled.changes.count(), 5, "two routes, two neighbours, one FDB entry");
    assert_eq!(routes(&mut agent), vec!["10.244.101.0/24".to_string(), "fd00:10:244:65::/64".to_string()]);

    let file = std::fs::read_to_string(state.path().join(weft_core::node::NODE_FILE_NAME)).unwrap();
    let file = weft_core::NodeFile::parse(&file).unwrap();
    let subnets: Vec<_> = file.subnets.iter().map(|s| s.subnet).collect();
    assert_eq!(subnets, vec![lease.subnet, subnet6]);

    let families = |m: &std::sync::Mutex<std::collections::BTreeMap<Family, ipnet::IpNet>>| {
        m.lock().unwrap().iter().map(|(f, c)| format!("{f} {c}")).collect::<Vec<_>>()
    };
    assert_eq!(families(&masqueraded), vec!["IPv4 10.244.0.0/16", "IPv6 fd00:10:244::/56"]);
    world.store().init_network(&dual(vec![Family::Ipv6]), true).unwrap();
    next_store_pass(&mut agent);
    assert_eq!(families(&masqueraded), vec!["IPv4 10.244.0.0/16"], "the ip6 table is gone");
}
