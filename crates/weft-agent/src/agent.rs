//! The agent as a type: its state, and a pass as a sequence of small steps.
//!
//! The agent holds a cache of the cluster (an [`Informer`]: list once, then watch), the plan
//! made from it, and this node's lease. [`Agent::step`] waits for the next thing to do (a
//! store event, the renewal timer, the resync timer) and makes one [`Agent::pass`], which
//! reports what it did in a [`PassReport`]:
//!
//! 1. keep the lease alive when due, or lease again when it was lost;
//! 2. apply the store's changes to the plan, peer by peer;
//! 3. write the node file when it changes, then (once) the CNI network config list;
//! 4. masquerade, and the overlay's source filter (both re-asserted on the resync timer; the
//!    filter also when its sources change, before the peers' routes);
//! 5. reconcile: the changed peers only, or everything (start, resync, config change, after
//!    a failure);
//! 6. announce by BGP; 7. metrics and the status file.
//!
//! While the store is away the kernel keeps what it has, so pods keep talking, and the agent
//! catches up when the store is back. The resync timer repairs the kernel from the cache; it
//! never touches the store.

use crate::kernel::{Kernel, KernelError};
use crate::metrics::Metrics;
use crate::nft::OverlayFilter;
use crate::node::Uplink;
use crate::reconcile::{self, Reconciled};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};
use weft_core::lease::Lease;
use weft_core::network::{Backend, Family, NetworkConfig};
use weft_core::node::{NodeFile, NodeSubnet, NODE_FILE_NAME};
use weft_core::plan::{LocalNode, PeerChange, Plan};
use weft_core::status::{self, Role, StatusFile};
use weft_core::trust::{self, Distrust};
use weft_store::{acquire_with, Delta, Informer, LeaseRequest, Store, StoreError, StoredLease};

/// How long to wait before asking an unavailable store again.
const RETRY: Duration = Duration::from_secs(1);
/// The longest a wait goes without looking at the stop flag.
const WAKE: Duration = Duration::from_millis(500);

/// What the agent needs to know of its place in the cluster.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub role: Role,
    pub node: String,
    /// Where the node file and the status file go (none: nowhere; the fleet benchmark).
    pub state_dir: Option<PathBuf>,
    pub lease_ttl: Duration,
    pub resync: Duration,
    /// SNAT pods' traffic leaving the cluster CIDR.
    pub masquerade: bool,
    /// Take VXLAN only from the peers and the network's overlay sources (vxlan, auto).
    pub overlay_filter: bool,
    /// `--public-ip`, if given (else the uplink's first address).
    pub public_ip: Option<IpAddr>,
    /// Our AS, when a BGP speaker runs: for the status.
    pub local_asn: Option<u32>,
    /// The CNI network config list to write for the node's runtime once pods can be wired
    /// (a lease held, the node file written); never removed.
    pub cni_conflist: Option<crate::install::CniConflist>,
}

/// Why a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first pass.
    Start,
    /// The store changed.
    Store,
    /// The renewal timer: keep the lease alive.
    Renew,
    /// The resync timer: repair drift from the cache.
    Resync,
    /// A retry after the store or the kernel failed.
    Retry,
}

/// What happened to this node's lease in a pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LeaseEvent {
    #[default]
    Unchanged,
    /// Leased (at start, or again after losing it): the subnet.
    Acquired(ipnet::IpNet),
    /// Kept alive.
    Renewed,
    /// Could not reach the store to keep it alive.
    RenewFailed(String),
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub trigger: Option<Trigger>,
    /// Store changes applied to the cache.
    pub deltas: usize,
    /// Peers whose plan changed, by name.
    pub peers_changed: Vec<String>,
    pub lease: LeaseEvent,
    /// Whether the pass read the whole kernel (else it applied peer changes only).
    pub full: bool,
    pub reconciled: Reconciled,
    /// The store revision the cache is at after the pass.
    pub revision: u64,
    /// What went wrong (the kernel keeps what it has).
    pub error: Option<String>,
    /// The error was the store's: out of reach (the watch is started again).
    pub store_unreachable: bool,
    pub took: Duration,
}

pub struct Agent {
    config: AgentConfig,
    informer: Informer,
    kernel: Box<dyn Kernel>,
    uplink: Uplink,
    speaker: Option<weft_bgp::Speaker>,
    metrics: Arc<Metrics>,
    lease: Option<StoredLease>,
    /// When the store last confirmed the lease alive.
    renewed_at: Option<(Instant, u64)>,
    /// The plan, once the network config is known.
    plan: Option<(NetworkConfig, Plan)>,
    /// Peers changed since the last reconcile.
    pending: Vec<PeerChange>,
    /// The subnet of every lease believed, by whom and since which revision; and the other
    /// way round.
    holders: HashMap<IpNet, (String, u64)>,
    /// Believed leases' subnets and underlay addresses, by node: the overlay filter lets in
    /// only these addresses (as checked, not as the cache may have them since).
    held: HashMap<String, (Vec<IpNet>, IpAddr)>,
    /// Store changes a pass took from the watch but could not apply (it failed before):
    /// applied by the next one.
    deferred: Vec<Delta>,
    /// Why the overlay filter could not be set, while it cannot.
    filter_error: Option<String>,
    /// Leases not believed, and why.
    rejected: BTreeMap<String, Distrust>,
    /// Whether the next pass must read the whole kernel.
    needs_full: bool,
    node_file: Option<NodeFile>,
    /// Whether the CNI config list is in place (written, or found as it should be).
    conflist_written: bool,
    masqueraded: Option<(Masquerade, Instant)>,
    /// The overlay filter as last set, and when.
    filtered: Option<(Option<OverlayFilter>, Instant)>,
    next_resync: Instant,
    next_renew: Instant,
    /// Set while the store or the kernel fails: when to try again.
    retry_at: Option<Instant>,
    started: bool,
    last_pass: status::PassStatus,
    warned_no_bgp: bool,
    /// Whether the announcement was withdrawn for a lease that may have lapsed.
    withdrawn: bool,
    /// The store's last error, said once until it changes.
    last_store_error: Option<String>,
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        store: Arc<dyn Store>,
        kernel: Box<dyn Kernel>,
        uplink: Uplink,
        speaker: Option<weft_bgp::Speaker>,
        metrics: Arc<Metrics>,
    ) -> Agent {
        let now = Instant::now();
        Agent {
            next_resync: now + config.resync,
            next_renew: now,
            config,
            informer: Informer::new(store),
            kernel,
            uplink,
            speaker,
            metrics,
            lease: None,
            renewed_at: None,
            plan: None,
            pending: Vec::new(),
            holders: HashMap::new(),
            held: HashMap::new(),
            deferred: Vec::new(),
            filter_error: None,
            rejected: BTreeMap::new(),
            needs_full: true,
            node_file: None,
            conflist_written: false,
            masqueraded: None,
            filtered: None,
            retry_at: None,
            started: false,
            last_pass: status::PassStatus::default(),
            warned_no_bgp: false,
            withdrawn: false,
            last_store_error: None,
        }
    }

    /// The cluster as the agent last saw it.
    pub fn cluster(&self) -> &weft_store::Cluster {
        self.informer.cluster()
    }

    pub fn informer_stats(&self) -> &weft_store::InformerStats {
        self.informer.stats()
    }

    /// The plan, once the network config is known.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref().map(|(_, plan)| plan)
    }

    /// Leases in the store not believed, and why.
    pub fn rejected(&self) -> &BTreeMap<String, Distrust> {
        &self.rejected
    }

    /// This node's lease, while it holds one.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref().map(|l| &l.lease)
    }

    pub fn kernel(&mut self) -> &mut dyn Kernel {
        self.kernel.as_mut()
    }

    /// Runs passes until `stop` is set. Leaves the kernel as it is on the way out: a
    /// restarted agent finds it as planned and changes nothing, so no packet is lost.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let report = self.step(stop);
            log_report(&report);
        }
        if let Some(speaker) = self.speaker.take() {
            speaker.stop();
        }
    }

    /// Waits for the next thing to do (a store change, a timer, a retry), then makes a pass.
    pub fn step(&mut self, stop: &AtomicBool) -> PassReport {
        loop {
            self.withdraw_if_lapsed();
            let now = Instant::now();
            if let Some(at) = self.retry_at {
                // While broken, the store is asked again at the retry only.
                if now >= at {
                    return self.pass(if self.started { Trigger::Retry } else { Trigger::Start }, Vec::new());
                }
                if stop.load(Ordering::Relaxed) {
                    return PassReport::default();
                }
                std::thread::sleep(at.min(now + WAKE) - now);
                continue;
            }
            if !self.started {
                return self.pass(Trigger::Start, Vec::new());
            }
            if self.lease.is_some() && now >= self.next_renew {
                return self.pass(Trigger::Renew, Vec::new());
            }
            if now >= self.next_resync {
                return self.pass(Trigger::Resync, Vec::new());
            }
            if stop.load(Ordering::Relaxed) {
                return PassReport::default();
            }
            let mut until = self.next_resync.min(now + WAKE);
            if self.lease.is_some() {
                until = until.min(self.next_renew);
            }
            match self.informer.poll(until.saturating_duration_since(now)) {
                Ok(deltas) if deltas.is_empty() => {}
                Ok(deltas) => return self.pass(Trigger::Store, deltas),
                Err(e) => {
                    self.store_failed(&e, "watch");
                    self.retry_at = Some(Instant::now() + RETRY);
                }
            }
        }
    }

    /// A node's lease that the store has not confirmed within its TTL may be another node's
    /// soon: its announcement goes, between passes too (a pass that waits on an unreachable
    /// store must not keep it up).
    fn withdraw_if_lapsed(&mut self) {
        if self.config.role != Role::Node || self.lease.is_none() || self.lease_alive() || self.withdrawn {
            return;
        }
        if let Some(speaker) = &self.speaker {
            warn!(
                "the store has not confirmed the lease for {} s: announcing it no more",
                self.config.lease_ttl.as_secs()
            );
            speaker.announce(Vec::new());
        }
        self.withdrawn = true;
    }

    fn store_failed(&mut self, e: &StoreError, doing: &str) {
        self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
        self.metrics.healthy.store(false, Ordering::Relaxed);
        let said = format!("{doing}: {e}");
        if self.last_store_error.as_ref() != Some(&said) {
            warn!("store: {said}; the kernel keeps its state, trying again");
            self.last_store_error = Some(said);
        }
    }

    /// One pass: every step, as the trigger calls for.
    pub fn pass(&mut self, trigger: Trigger, mut deltas: Vec<Delta>) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport { trigger: Some(trigger), ..PassReport::default() };
        self.retry_at = None;
        if !self.deferred.is_empty() {
            let later = std::mem::replace(&mut deltas, std::mem::take(&mut self.deferred));
            deltas.extend(later);
        }
        if trigger == Trigger::Start || !self.informer.listed() {
            // Without a cache there is nothing to plan from, nor to lease by.
            match self.informer.poll(Duration::ZERO) {
                Ok(more) => deltas.extend(more),
                Err(e) => {
                    self.deferred = deltas;
                    return self.failed(report, e, "list", started);
                }
            }
        }
        self.started = true;
        // The lease first: on a retry, keeping it alive must not wait behind a watch that
        // takes its time to come back.
        if let Err(e) = self.keep_lease(trigger, &mut report) {
            // The cache has these changes already; the plan must get them too.
            self.deferred = deltas;
            return self.failed(report, e, "lease", started);
        }
        let mut store_error = None;
        if trigger == Trigger::Retry {
            // The watch again, from the revision the cache is at.
            match self.informer.poll(Duration::ZERO) {
                Ok(more) => deltas.extend(more),
                Err(e) => store_error = Some(e),
            }
        }
        if store_error.is_none() {
            self.last_store_error = None;
        }
        report.deltas = deltas.len();
        if trigger == Trigger::Resync {
            self.needs_full = true;
            self.next_resync = Instant::now() + self.config.resync;
        }
        self.apply_deltas(&deltas, &mut report);
        if let Some(e) = store_error {
            // The kernel keeps what the cache says; the watch is tried again shortly.
            return self.failed(report, e, "watch", started);
        }
        let Some((config, _)) = self.plan.as_ref() else {
            // No network config yet: nothing to plan. Said once, then waited for.
            if trigger == Trigger::Start {
                warn!("{}", StoreError::NoNetwork);
            }
            return self.finish(report, started);
        };
        let config = config.clone();
        if self.config.role == Role::Node && self.lease.is_none() {
            return self.finish(report, started);
        }
        self.write_node_file(&config);
        self.write_conflist();
        self.masquerade(&config, report.full || self.needs_full);
        let peers_changed = !report.peers_changed.is_empty();
        self.filter_overlay(&config, report.full || self.needs_full, peers_changed);
        self.reconcile(&config, &mut report);
        self.announce(&config, report.error.is_none());
        self.finish(report, started)
    }

    /// Applies store changes to the plan, peer by peer.
    fn apply_deltas(&mut self, deltas: &[Delta], report: &mut PassReport) {
        let mut replan = self.plan.is_none() && self.informer.cluster().network.is_some();
        for delta in deltas {
            match delta {
                Delta::Network { .. } => replan = true,
                Delta::Lease { node, .. } if self.plan.is_some() && !replan => {
                    for (peer, change) in self.reconsider(node) {
                        report.peers_changed.push(peer);
                        self.queue(change);
                    }
                }
                Delta::Lease { .. } => {}
            }
        }
        if replan {
            self.replan();
            report.full = true;
        }
    }

    /// Judges `node`'s lease as the cache has it now, and plans (or unplans) it: a lease that
    /// fails [`trust::check`] or claims a subnet an older lease holds is named, not planned.
    /// Returns the peers' changes (a lease that goes may let one that waited in).
    fn reconsider(&mut self, node: &str) -> Vec<(String, PeerChange)> {
        let Some((config, plan)) = &mut self.plan else { return Vec::new() };
        let cluster = self.informer.cluster();
        let local = local_node(&self.config, &self.uplink, self.lease.as_ref());
        let mut changes = Vec::new();
        let mut freed = Vec::new();
        let mut queue = vec![node.to_string()];
        while let Some(node) = queue.pop() {
            if let Some((subnets, _)) = self.held.remove(&node) {
                for subnet in subnets {
                    self.holders.remove(&subnet);
                    freed.push(subnet);
                }
            }
            let verdict = match (cluster.leases.get(&node), cluster.invalid.get(&node)) {
                (Some(stored), _) => match trust::check(&stored.lease, config) {
                    Err(why) => Err(why),
                    Ok(()) => {
                        // Each of its subnets (one per family): an older holder wins; a newer
                        // one gives way.
                        let claims: Vec<(IpNet, &(String, u64))> =
                            stored.lease.subnets().filter_map(|s| Some((s, self.holders.get(&s)?))).collect();
                        let older = claims.iter().find(|(_, (holder, created))| {
                            (*created, holder.as_str()) < (stored.created, node.as_str())
                        });
                        match older {
                            Some((subnet, (holder, _))) => {
                                Err(Distrust::Overlaps { subnet: *subnet, holder: holder.clone() })
                            }
                            None => {
                                queue.extend(claims.iter().map(|(_, (newer, _))| newer.clone()));
                                Ok(Some(stored))
                            }
                        }
                    }
                },
                (None, Some(error)) => Err(Distrust::Unreadable(error.clone())),
                // Gone.
                (None, None) => Ok(None),
            };
            let change = match verdict {
                Ok(None) => {
                    self.rejected.remove(&node);
                    plan.remove_peer(&node)
                }
                Ok(Some(stored)) => {
                    for subnet in stored.lease.subnets() {
                        if let Some((evicted, _)) =
                            self.holders.insert(subnet, (node.clone(), stored.created))
                        {
                            if let Some((theirs, _)) = self.held.remove(&evicted) {
                                // Its other subnets are given up too: a lease that waited
                                // for one of them may be let in.
                                for other in theirs {
                                    if self.holders.get(&other).is_some_and(|(h, _)| *h == evicted) {
                                        self.holders.remove(&other);
                                        freed.push(other);
                                    }
                                }
                            }
                        }
                    }
                    // Its underlay address of this node's underlay family: where its VXLAN
                    // comes from.
                    let underlay = Family::of(self.uplink.public_ip);
                    let source = stored.lease.public_ip_of(underlay).unwrap_or(stored.lease.public_ip);
                    self.held.insert(node.clone(), (stored.lease.subnets().collect(), source));
                    if self.rejected.remove(&node).is_some() {
                        info!("the lease of {node} is believed now");
                    }
                    plan.set_peer(&local, config, &stored.lease)
                }
                Err(why) => {
                    if self.rejected.get(&node) != Some(&why) {
                        warn!("ignoring the lease of {node}: {why}");
                        self.rejected.insert(node.clone(), why);
                    }
                    plan.remove_peer(&node)
                }
            };
            if !change.is_empty() {
                changes.push((node.clone(), change));
            }
            // A subnet given up may let a lease in that waited for it.
            for subnet in freed.drain(..) {
                if self.holders.contains_key(&subnet) {
                    continue;
                }
                let waiting: Vec<String> = self
                    .rejected
                    .iter()
                    .filter(|(_, why)| matches!(why, Distrust::Overlaps { subnet: s, .. } if *s == subnet))
                    .map(|(n, _)| n.clone())
                    .collect();
                queue.extend(waiting);
            }
        }
        changes
    }

    /// Whether the store no longer holds this node's lease as the node wrote it: gone
    /// (expired, deleted) or rewritten by another writer. Judged only once the cache has
    /// seen the node's own last write (an older event about it is no news).
    fn own_lease_changed(&self) -> bool {
        let Some(held) = &self.lease else { return false };
        let cluster = self.informer.cluster();
        cluster.revision >= held.version
            && cluster.leases.get(&self.config.node).is_none_or(|seen| seen.version != held.version)
    }

    /// Queues a peer's change for the next reconcile, merged with one queued before for the
    /// same peer (its first `before`, its last `after`): the kernel holds the first's before.
    fn queue(&mut self, change: PeerChange) {
        let node = change.before.as_ref().or(change.after.as_ref()).map(|p| p.node.clone());
        let queued = self
            .pending
            .iter()
            .position(|p| p.before.as_ref().or(p.after.as_ref()).map(|p| &p.node) == node.as_ref());
        match queued {
            Some(index) => {
                self.pending[index].after = change.after;
                if self.pending[index].before == self.pending[index].after {
                    self.pending.remove(index);
                }
            }
            None => self.pending.push(change),
        }
    }

    /// Plans everything again from the cache (a new config, a new subnet of our own, a new
    /// uplink). The next reconcile reads the whole kernel.
    fn replan(&mut self) {
        let cluster = self.informer.cluster();
        let local = local_node(&self.config, &self.uplink, self.lease.as_ref());
        self.plan = cluster.network.clone().map(|config| {
            let plan = weft_core::plan::Plan::new(&local, &config);
            (config, plan)
        });
        self.holders.clear();
        self.held.clear();
        // Oldest first, so that of two claims on one subnet the older is taken without a
        // change of mind; then the keys that hold no lease, to be named.
        let mut nodes: Vec<(u64, String)> =
            cluster.leases.values().map(|l| (l.created, l.lease.node.clone())).collect();
        nodes.sort();
        nodes.extend(cluster.invalid.keys().map(|n| (0, n.clone())));
        self.rejected
            .retain(|node, _| cluster.leases.contains_key(node) || cluster.invalid.contains_key(node));
        for (_, node) in nodes {
            self.reconsider(&node);
        }
        self.pending.clear();
        self.needs_full = true;
    }

    /// Keeps the lease alive when due; leases (again) when the node has none or lost it.
    fn keep_lease(&mut self, trigger: Trigger, report: &mut PassReport) -> Result<(), StoreError> {
        if self.config.role != Role::Node {
            return Ok(());
        }
        let due = Instant::now() >= self.next_renew;
        if due {
            // Due again a third of the TTL on, whatever comes of it (a failure sets it due at
            // the retry): a pass that cannot renew must not make the next one due at once.
            self.next_renew = Instant::now() + (self.config.lease_ttl / 3).max(Duration::from_secs(1));
        }
        let mut lost = self.lease.is_none() || self.own_lease_changed();
        if let Some(held) = self.lease.clone().filter(|_| due && !lost) {
            // The lease lives from when the store was asked, not from its answer.
            let asked = (Instant::now(), weft_core::now());
            match self.informer.store().keep_alive(&held) {
                Ok(Some(_)) => {
                    self.renewed(report, LeaseEvent::Renewed, asked);
                }
                Ok(None) => {
                    warn!("the lease on {} is gone from the store; leasing again", held.lease.subnet);
                    lost = true;
                }
                Err(e) => {
                    report.lease = LeaseEvent::RenewFailed(e.to_string());
                    self.next_renew = Instant::now();
                    return Err(e);
                }
            }
        }
        // Without a network config (gone, or unreadable) there is nothing to lease under; the
        // lease held is kept alive meanwhile.
        let Some(config) = self.informer.cluster().network.clone() else { return Ok(()) };
        // A lease of another backend than the network's, or that no longer fits: again.
        // (Or that lacks a family the network has, or has one it has not: a network that
        // became dual stack, or stopped being.)
        let stale = self.lease.as_ref().is_some_and(|held| {
            let fits = |family| match (config.for_family(family), held.lease.subnet_of(family)) {
                (Some(pool), Some(subnet)) => {
                    pool.cidr.contains(&subnet) && subnet.prefix_len() == pool.subnet_len
                }
                (None, None) => true,
                _ => false,
            };
            held.lease.backend != config.backend
                || !fits(Family::Ipv4)
                || !fits(Family::Ipv6)
                || held.lease.other_public_ip != self.uplink.other_public_ip
        });
        if !(lost || stale || trigger == Trigger::Start && self.lease.is_none()) {
            return Ok(());
        }
        let previous = match &self.lease {
            Some(held) => held.lease.subnets().collect(),
            None => self.previous_subnets(),
        };
        let request = LeaseRequest {
            node: &self.config.node,
            public_ip: self.uplink.public_ip,
            other_public_ip: self.uplink.other_public_ip,
            ttl: self.config.lease_ttl,
            previous,
        };
        // From the cache first (a restart lists once, not twice); the compare-and-swap
        // catches a stale cache, and acquire lists then.
        let cluster = self.informer.cluster();
        let cached = weft_store::Snapshot {
            network: cluster.network.clone(),
            leases: cluster.leases.values().cloned().collect(),
            invalid: Vec::new(),
            revision: cluster.revision,
        };
        let asked = (Instant::now(), weft_core::now());
        let held = acquire_with(self.informer.store().as_ref(), &request, Some(cached))?;
        let subnet = held.lease.subnet;
        let subnets = |lease: &StoredLease| {
            lease.lease.subnets().map(|s| s.to_string()).collect::<Vec<_>>().join(" and ")
        };
        let changed_subnet = self.lease.as_ref().map(|l| (l.lease.subnet, l.lease.subnet6))
            != Some((subnet, held.lease.subnet6));
        match &self.lease {
            Some(old) if changed_subnet => {
                warn!("lease on {} was lost; now {}", subnets(old), subnets(&held))
            }
            _ => info!("leased {}", subnets(&held)),
        }
        self.lease = Some(held);
        self.renewed(report, LeaseEvent::Acquired(subnet), asked);
        if changed_subnet {
            self.replan();
            report.full = true;
        }
        Ok(())
    }

    fn renewed(&mut self, report: &mut PassReport, event: LeaseEvent, asked: (Instant, u64)) {
        let renew_every = (self.config.lease_ttl / 3).max(Duration::from_secs(1));
        self.renewed_at = Some(asked);
        self.next_renew = Instant::now() + renew_every;
        report.lease = event;
    }

    /// The subnets this node had before a restart, from its node file: pods may still use
    /// them.
    fn previous_subnets(&self) -> Vec<ipnet::IpNet> {
        let Some(dir) = self.config.state_dir.as_ref() else { return Vec::new() };
        let Ok(text) = std::fs::read_to_string(dir.join(NODE_FILE_NAME)) else { return Vec::new() };
        NodeFile::parse(&text).map(|file| file.subnets.iter().map(|s| s.subnet).collect()).unwrap_or_default()
    }

    /// Whether the lease is still alive as far as this node can tell (the store confirmed it
    /// within its TTL).
    fn lease_alive(&self) -> bool {
        self.lease.is_some() && self.renewed_at.is_some_and(|(at, _)| at.elapsed() < self.config.lease_ttl)
    }

    fn write_node_file(&mut self, config: &NetworkConfig) {
        let (Some(lease), Some((_, plan))) = (&self.lease, &self.plan) else { return };
        let l2 = config.backend == Backend::L2;
        // L2 pods join the uplink's bridge and live on the segment, its router their gateway.
        let wanted = NodeFile {
            node: Some(self.config.node.clone()),
            subnets: lease
                .lease
                .subnets()
                .filter_map(|subnet| {
                    let pool = config.for_family(Family::of_net(&subnet))?;
                    Some(NodeSubnet {
                        subnet,
                        gateway: pool.gateway.filter(|_| l2),
                        segment: l2.then_some(pool.cidr),
                    })
                })
                .collect(),
            mtu: Some(plan.pod_mtu),
            attach: l2.then_some(weft_core::AttachMode::Bridge),
            bridge: l2.then(|| weft_core::plan::L2_BRIDGE.to_string()),
        };
        if self.node_file.as_ref() == Some(&wanted) {
            return;
        }
        if let Some(dir) = &self.config.state_dir {
            if let Err(e) = write_state_file(dir, NODE_FILE_NAME, &wanted.to_json()) {
                error!("{e}");
                return;
            }
        }
        self.node_file = Some(wanted);
    }

    /// Writes the CNI config list once the node file is on disk: from then on the runtime
    /// may send pods, and the plugin finds their subnet. Never removed (a restarting agent
    /// leaves the node Ready: its pods keep running and new ones are wired from the node
    /// file); rewritten only if someone changed it.
    fn write_conflist(&mut self) {
        let Some(conflist) = &self.config.cni_conflist else { return };
        if self.conflist_written || self.node_file.is_none() {
            return;
        }
        match conflist.write() {
            Ok(wrote) => {
                if wrote {
                    info!("wrote the CNI network config {}", conflist.path().display());
                }
                self.conflist_written = true;
            }
            Err(e) => error!("write the CNI network config {}: {e}", conflist.path().display()),
        }
    }

    /// Whether this machine can do its job now: a node can wire pods (it holds a lease as far
    /// as it knows, the node file and any CNI config are written); a gateway or client has
    /// planned and reconciled the overlay.
    fn ready(&self, report: &PassReport) -> bool {
        match self.config.role {
            Role::Node => {
                self.lease_alive()
                    && self.node_file.is_some()
                    && (self.config.cni_conflist.is_none() || self.conflist_written)
            }
            Role::Gateway | Role::Client => self.plan.is_some() && report.error.is_none() && !self.needs_full,
        }
    }

    fn masquerade(&mut self, config: &NetworkConfig, due: bool) {
        // L2 pods hold addresses of the physical segment: nothing to hide.
        if !self.config.masquerade || config.backend == Backend::L2 || self.lease.is_none() {
            return;
        }
        // One table per family (`ip weft`, `ip6 weft`); a family the network does not
        // masquerade (or does not have) has none. Re-asserted every resync interval: a
        // firewall reload may have removed a table.
        let wanted: Masquerade = [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .map(|family| {
                (family, config.pool(family).filter(|_| config.masquerades(family)).map(|p| p.cidr))
            })
            .collect();
        let stale = self
            .masqueraded
            .as_ref()
            .is_none_or(|(held, at)| *held != wanted || at.elapsed() >= self.config.resync);
        if !(due || stale) {
            return;
        }
        let mut failed = false;
        for (family, cidr) in &wanted {
            if let Err(e) = self.kernel.masquerade(*family, cidr.as_ref()) {
                error!("masquerade {family}: {e}");
                failed = true;
            }
        }
        if !failed {
            self.masqueraded = Some((wanted, Instant::now()));
        }
    }

    /// Whom the overlay takes VXLAN from: the underlay address of every peer whose lease is
    /// trusted and planned, and the network's overlay sources (gateways, clients). `None`
    /// where no VXLAN device runs, or the filter is off.
    pub fn overlay_sources(&self, config: &NetworkConfig) -> Option<OverlayFilter> {
        if !self.config.overlay_filter || !matches!(config.backend, Backend::Vxlan | Backend::Auto) {
            return None;
        }
        let peers = self
            .held
            .iter()
            .filter(|(node, _)| **node != self.config.node)
            .map(|(_, (_, ip))| IpNet::from(*ip));
        let sources = peers.chain(config.overlay_sources.iter().copied()).collect();
        let underlay = Family::of(self.uplink.public_ip);
        Some(OverlayFilter {
            port: config.port,
            underlay,
            pods: config.pool(underlay).map(|p| p.cidr),
            sources,
        })
    }

    /// Sets the overlay filter when its sources change (before the peers' routes, so a new
    /// peer's packets are taken as soon as it is planned), and on every resync (a firewall
    /// reload may have removed it). A filter that is off is removed once, not on a timer.
    fn filter_overlay(&mut self, config: &NetworkConfig, due: bool, peers_changed: bool) {
        let timer = self.filtered.as_ref().is_some_and(|(_, at)| at.elapsed() >= self.config.resync);
        if self.filtered.is_some() && !(due || peers_changed || timer) {
            // Nothing that could change the sources: no need to gather them.
            return;
        }
        let wanted = self.overlay_sources(config);
        let stale = match &self.filtered {
            None => true,
            Some((set, at)) => {
                *set != wanted || (wanted.is_some() && (due || at.elapsed() >= self.config.resync))
            }
        };
        if !stale {
            return;
        }
        match self.kernel.overlay_filter(wanted.as_ref()) {
            Ok(()) => {
                if self.filter_error.take().is_some() {
                    info!("overlay filter set again");
                }
                self.filtered = Some((wanted, Instant::now()));
            }
            Err(e) => {
                // Tried again soon, not at the next resync: a new peer's packets wait for it.
                if self.filter_error.is_none() {
                    error!("overlay filter: {e}");
                }
                self.filter_error = Some(e.to_string());
                self.filtered = None;
                self.retry_at = Some(Instant::now() + RETRY);
            }
        }
    }

    fn reconcile(&mut self, config: &NetworkConfig, report: &mut PassReport) {
        let full = self.needs_full || report.full;
        if full && config.backend == Backend::L2 {
            if let Err(e) = self.take_over_uplink() {
                // Nothing half-done is unsafe (each step keeps a way out); try again.
                report.error = Some(e.to_string());
                self.retry_at = Some(Instant::now() + RETRY);
                return;
            }
        }
        let (_, plan) = self.plan.as_ref().expect("planned");
        let mut full = full;
        let outcome = if full {
            reconcile::full(self.kernel.as_mut(), plan)
        } else if self.pending.is_empty() {
            Ok(Reconciled::default())
        } else {
            reconcile::delta(self.kernel.as_mut(), plan, &self.pending).or_else(|e| {
                // The kernel was not as the plan before said (changed by hand?): all of it.
                warn!("applying peer changes failed ({e}); reconciling everything");
                full = true;
                reconcile::full(self.kernel.as_mut(), plan)
            })
        };
        report.full = full;
        match outcome {
            Ok(reconciled) => {
                self.pending.clear();
                self.needs_full = false;
                if full {
                    if let Some(device) = &plan.vxlan {
                        // Gateways and clients send into the overlay from outside the cluster;
                        // pods answer by the node's ordinary routes. Strict reverse-path
                        // filtering would drop what arrives: loose on the tunnel (the kernel
                        // takes the larger of all and the device).
                        let key = format!("net/ipv4/conf/{}/rp_filter", device.name);
                        if let Err(e) = self.kernel.sysctl(&key, "2") {
                            error!("{e}");
                        }
                    }
                    // A gateway forwards IPv6 too where the network has IPv6 pods (only then:
                    // forwarding turns off router-advertisement acceptance, which an IPv4
                    // network's gateway may live on). Nodes get it from the CNI plugin.
                    if self.config.role == Role::Gateway && config.pool(Family::Ipv6).is_some() {
                        if let Err(e) = self.kernel.sysctl("net.ipv6.conf.all.forwarding", "1") {
                            error!("{e}");
                        }
                    }
                }
                report.reconciled = reconciled;
            }
            Err(e) => {
                self.needs_full = true;
                self.retry_at = Some(Instant::now() + RETRY);
                report.error = Some(format!("reconcile: {e}"));
            }
        }
    }

    fn take_over_uplink(&mut self) -> Result<(), KernelError> {
        let port = self.uplink.port.clone().unwrap_or_else(|| self.uplink.name.clone());
        if self.kernel.take_over_uplink(&port)? > 0 {
            self.uplink = self.kernel.uplink(Some(weft_core::plan::L2_BRIDGE), self.config.public_ip)?;
            info!("l2: {port} is now a port of {}, which holds its addresses and routes", self.uplink.name);
            self.replan();
        }
        Ok(())
    }

    fn announce(&mut self, config: &NetworkConfig, reconciled: bool) {
        let Some(speaker) = &self.speaker else {
            if config.backend == Backend::Bgp
                && self.config.role == Role::Node
                && reconciled
                && !self.warned_no_bgp
            {
                self.warned_no_bgp = true;
                warn!("the bgp backend, but no --asn/--bgp-peer: nothing announces this node's subnet");
            }
            return;
        };
        // A gateway that cannot forward into the overlay must not draw traffic: it withdraws,
        // and the routers use the others. A node announces its subnet while its lease lives.
        // Every family: the speaker carries IPv6 where its sessions negotiated it.
        let prefixes: Vec<IpNet> = match self.config.role {
            Role::Gateway if reconciled && matches!(config.backend, Backend::Vxlan | Backend::Auto) => {
                config.pools().iter().map(|p| p.cidr).collect()
            }
            Role::Node if self.lease_alive() => self.lease.iter().flat_map(|l| l.lease.subnets()).collect(),
            _ => Vec::new(),
        };
        // Only families this machine has an address of: that is the next hop (a node without
        // IPv4 announces no IPv4 prefix, with no next hop to give it).
        let uplink = std::iter::once(self.uplink.public_ip).chain(self.uplink.other_public_ip);
        let families: Vec<Family> = uplink.map(Family::of).collect();
        let prefixes: Vec<IpNet> =
            prefixes.into_iter().filter(|p| families.contains(&Family::of_net(p))).collect();
        self.withdrawn = prefixes.is_empty();
        speaker.announce(prefixes);
    }

    /// A pass that met a store error: the kernel keeps its state; retried shortly.
    fn failed(&mut self, mut report: PassReport, e: StoreError, doing: &str, started: Instant) -> PassReport {
        self.store_failed(&e, doing);
        report.store_unreachable = matches!(e, StoreError::Unavailable(_));
        if report.store_unreachable {
            // The watch may be on a connection as dead as this request's, and not know it for
            // a while (HTTP/2 pings take up to 40 s): watched again from the cache's revision.
            self.informer.rewatch();
        }
        self.retry_at = Some(Instant::now() + RETRY);
        self.withdraw_if_lapsed();
        report.error = Some(format!("store: {e}"));
        self.finish(report, started)
    }

    fn finish(&mut self, mut report: PassReport, started: Instant) -> PassReport {
        report.took = started.elapsed();
        report.revision = self.informer.cluster().revision;
        let metrics = &self.metrics;
        let stats = self.informer.stats();
        metrics.store_lists.store(stats.lists, Ordering::Relaxed);
        metrics.store_watch_resumes.store(stats.resumes, Ordering::Relaxed);
        metrics.store_events.store(stats.events, Ordering::Relaxed);
        metrics.leases.store(self.informer.cluster().leases.len() as u64, Ordering::Relaxed);
        metrics.leases_rejected.store(self.rejected.len() as u64, Ordering::Relaxed);
        let sources = self.filtered.as_ref().and_then(|(f, _)| f.as_ref()).map_or(0, |f| f.sources.len());
        metrics.overlay_sources.store(sources as u64, Ordering::Relaxed);
        if let Some((_, plan)) = &self.plan {
            metrics.peers.store(plan.peers().len() as u64, Ordering::Relaxed);
            metrics.unreachable_peers.store(plan.unreachable() as u64, Ordering::Relaxed);
        }
        let store_error = report.store_unreachable;
        if !store_error {
            let micros = report.took.as_micros() as u64;
            metrics.reconciles.fetch_add(1, Ordering::Relaxed);
            metrics.reconcile_micros_total.fetch_add(micros, Ordering::Relaxed);
            metrics.last_reconcile_micros.store(micros, Ordering::Relaxed);
            metrics.changes.fetch_add(report.reconciled.count() as u64, Ordering::Relaxed);
            if report.error.is_some() {
                metrics.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            }
            metrics.healthy.store(report.error.is_none() && self.plan.is_some(), Ordering::Relaxed);
        }
        let ready = self.ready(&report);
        metrics.ready.store(ready, Ordering::Relaxed);
        let wrote =
            report.full || report.error.is_some() || report.deltas > 0 || report.reconciled.count() > 0;
        self.last_pass = status::PassStatus {
            at: weft_core::now(),
            changes: report.reconciled.count(),
            error: report.error.clone(),
        };
        if wrote || report.trigger == Some(Trigger::Renew) {
            self.write_status(store_error);
        }
        report
    }

    /// The status file, for `weft status`, `weft trace` and the lab.
    pub fn status(&self, store_connected: bool) -> StatusFile {
        let plan = self.plan.as_ref().map(|(_, plan)| plan);
        let stats = self.informer.stats();
        StatusFile {
            node: self.config.node.clone(),
            role: self.config.role,
            pid: std::process::id(),
            netns_inode: std::fs::metadata("/proc/self/ns/net")
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
            written_at: weft_core::now(),
            refresh: match self.config.role {
                Role::Node => self.config.resync.min(self.config.lease_ttl / 3),
                _ => self.config.resync,
            }
            .as_secs()
            .max(1),
            lease: self.lease.as_ref().map(|held| status::LeaseStatus {
                lease: held.lease.clone(),
                ttl: self.config.lease_ttl.as_secs(),
                renewed_at: self.renewed_at.map_or(0, |(_, unix)| unix),
            }),
            store: status::StoreStatus {
                url: self.informer.store().describe(),
                revision: self.informer.cluster().revision,
                connected: store_connected,
                lists: stats.lists,
                watch_resumes: stats.resumes,
                events: stats.events,
            },
            bgp: self
                .speaker
                .as_ref()
                .map(|s| s.status())
                .unwrap_or_default()
                .into_iter()
                .map(|s| status::BgpSessionStatus {
                    peer: s.peer.address,
                    asn: s.peer.asn,
                    local_asn: self.config.local_asn.unwrap_or_default(),
                    state: s.state.name().to_string(),
                    announced: s.announced,
                    last_error: s.last_error,
                })
                .collect(),
            peers: plan
                .map(|p| {
                    p.peers()
                        .values()
                        .map(|peer| status::PeerStatus {
                            node: peer.node.clone(),
                            subnet: peer.subnet,
                            subnet6: peer.subnet6,
                            path: peer.path.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            rejected: self
                .rejected
                .iter()
                .map(|(node, why)| status::RejectedLease { node: node.clone(), reason: why.to_string() })
                .collect(),
            overlay_sources: self
                .filtered
                .as_ref()
                .and_then(|(filter, _)| filter.as_ref())
                .map(|f| f.sources.iter().copied().collect()),
            overlay_filter_error: self.filter_error.clone(),
            planned_routes: plan.map(|p| p.routes()).unwrap_or_default(),
            last_pass: self.last_pass.clone(),
        }
    }

    fn write_status(&self, store_error: bool) {
        let Some(dir) = &self.config.state_dir else { return };
        if let Err(e) = write_state_file(dir, status::STATUS_FILE_NAME, &self.status(!store_error).to_json())
        {
            error!("{e}");
        }
    }
}

/// Each family's masqueraded CIDR (none: that family's table removed).
type Masquerade = Vec<(Family, Option<IpNet>)>;

/// This node, as the planner sees it.
fn local_node(config: &AgentConfig, uplink: &Uplink, lease: Option<&StoredLease>) -> LocalNode {
    LocalNode {
        name: config.node.clone(),
        subnet: lease.map(|l| l.lease.subnet),
        subnet6: lease.and_then(|l| l.lease.subnet6),
        public_ip: uplink.public_ip,
        other_public_ip: uplink.other_public_ip,
        uplink: uplink.name.clone(),
        uplink_mtu: uplink.mtu,
        connected: uplink.connected.clone(),
    }
}

/// Writes a file of the state dir atomically (a reader sees the old one or the new one).
pub fn write_state_file(dir: &std::path::Path, name: &str, text: &str) -> Result<(), crate::AgentError> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let wrap = |source| crate::AgentError::StateFile { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(wrap)?;
    std::fs::write(&temporary, text).map_err(wrap)?;
    std::fs::rename(&temporary, &path).map_err(wrap)
}

/// One line per pass that did something; quiet passes at debug level.
pub fn log_report(report: &PassReport) {
    let Some(trigger) = report.trigger else { return };
    if let Some(error) = &report.error {
        if report.store_unreachable {
            // Said once, when it first happened (store_failed).
            debug!("{trigger:?} pass: {error}");
        } else {
            warn!("{trigger:?} pass: {error}");
        }
    } else if report.reconciled.count() > 0 {
        info!(
            "{trigger:?} pass: {} kernel change(s){}{}, revision {}",
            report.reconciled.count(),
            if report.full { ", full" } else { "" },
            match report.peers_changed.len() {
                0 => String::new(),
                n => format!(" for {n} changed peer(s)"),
            },
            report.revision
        );
    } else {
        debug!("{trigger:?} pass: {} store change(s), nothing to change in the kernel", report.deltas);
    }
}
