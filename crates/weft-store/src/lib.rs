//! Where the cluster's network config and leases live, how a node gets its lease and keeps
//! it alive, and how an agent keeps a cache of the cluster in step with the store.
//!
//! [`Store`] is what the agent needs of a store, in the shape every store of this kind has
//! (etcd's, and later the Kubernetes API's): **list** everything once, then **watch** from
//! the listed revision and receive only what changes. A lease's value says what a node is
//! (subnet, public IP, VTEP MAC, backend) and changes only when that does; its liveness is
//! kept beside it ([`Store::keep_alive`]: an etcd lease kept alive, a column in SQLite), so a
//! renewal writes nothing that any watcher receives.
//!
//! - [`sqlite::SqliteStore`]: the embedded store, one file several agents on a host share,
//!   with a revision-numbered change log as its watch.
//! - [`etcd::EtcdStore`]: etcd's v3 gRPC API (the `etcd-client` crate), on a small async
//!   runtime of its own; the rest of weft stays synchronous.
//! - [`informer::Informer`]: list + watch + cache, written once over any store: it resumes a
//!   lost watch from the last revision seen and lists again only after a compaction.
//! - [`acquire`]: picking a subnet and claiming it by compare-and-swap, written once.

#[doc(hidden)]
pub mod conformance;
pub mod etcd;
pub mod informer;
pub mod sqlite;

use std::net::IpAddr;
use std::time::Duration;
use weft_core::lease::{pick_subnet, vtep_mac, Lease};
use weft_core::network::{Family, NetworkConfig};

pub use informer::{Cluster, Delta, Informer, InformerStats};

/// A store revision: it grows with every change a watcher can see.
pub type Revision = u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?}: expected sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE][&user=NAME&password-file=FILE]")]
    Url(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("etcd TLS: {0}")]
    Tls(String),
    /// etcd refused who we say we are, or what we asked as them.
    #[error("etcd authentication: {0}")]
    Auth(String),
    #[error("the network is not initialised: run `weft network init` first")]
    NoNetwork,
    #[error("{nodes} node(s) hold leases under the current network config; changing it would strand them (use --force)")]
    NetworkInUse { nodes: usize },
    #[error("network config is invalid")]
    InvalidNetwork(#[from] weft_core::network::NetworkConfigError),
    #[error("no free subnet: all {0} subnets of the cluster CIDR are leased")]
    Exhausted(u128),
    #[error("gave up after {0} lost compare-and-swaps")]
    Contended(usize),
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// A watch asked for history the store no longer keeps: list again.
    #[error("the store's history before revision {0} is compacted: list again")]
    Compacted(Revision),
    #[error("sqlite store")]
    Sqlite(#[from] rusqlite::Error),
}

/// A lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    pub lease: Lease,
    /// The revision the lease's value was last written at: compare-and-swap compares it.
    pub version: Revision,
    /// The revision the node's lease was first written at (kept while it is rewritten): of
    /// two leases that claim one subnet, the older is believed.
    pub created: Revision,
    /// What keeps the lease alive: its etcd lease ID; in SQLite, its holder's token.
    pub liveness: i64,
}

/// A lease whose value is not one: written by something else, or by a newer weft. It is
/// named, never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLease {
    pub node: String,
    pub error: String,
}

impl std::fmt::Display for InvalidLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.node, self.error)
    }
}

/// Everything, at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub network: Option<NetworkConfig>,
    pub leases: Vec<StoredLease>,
    pub invalid: Vec<InvalidLease>,
    pub revision: Revision,
}

/// One change a watch delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The network config was written (`None`: removed).
    Network(Option<NetworkConfig>),
    LeasePut(StoredLease),
    LeaseDeleted(String),
    /// A lease key now holds something that is not a lease: as good as deleted.
    LeaseInvalid(InvalidLease),
}

/// What a watch delivered: changes in the order they were made, and the revision the
/// watcher is now current at. No events: a progress notification (nothing changed up to
/// `revision`).
#[derive(Debug, Clone, Default)]
pub struct WatchBatch {
    pub events: Vec<Event>,
    pub revision: Revision,
}

/// A watch on the store's weft data, from a revision on.
pub trait Watch: Send {
    /// Waits up to `timeout` for changes. `Ok(None)`: nothing yet. An error ends the watch:
    /// [`StoreError::Compacted`] means list again; anything else, watch again from the last
    /// revision seen.
    fn next(&mut self, timeout: Duration) -> Result<Option<WatchBatch>, StoreError>;
}

pub trait Store: Send + Sync {
    /// The network config (one small read).
    fn network(&self) -> Result<Option<NetworkConfig>, StoreError>;

    /// Writes the network config. Refuses to change a config that live leases were made
    /// under, unless `force`.
    fn init_network(&self, config: &NetworkConfig, force: bool) -> Result<(), StoreError>;

    /// The network config and every live lease, at one revision.
    fn list(&self) -> Result<Snapshot, StoreError>;

    /// Changes made after revision `after`, as they happen.
    fn watch(&self, after: Revision) -> Result<Box<dyn Watch>, StoreError>;

    /// Compare-and-swap: writes `lease`, alive for `ttl` unless kept alive, if the node's
    /// current lease is `expected` (`None`: the node holds none) and no other node holds
    /// its subnet. `None` when another writer got there first.
    fn put_lease(
        &self,
        lease: &Lease,
        expected: Option<&StoredLease>,
        ttl: Duration,
    ) -> Result<Option<StoredLease>, StoreError>;

    /// Keeps `held` alive for another TTL. Writes nothing that watchers see. `None`: the
    /// lease is gone (it expired, or was replaced); the node must acquire one again.
    fn keep_alive(&self, held: &StoredLease) -> Result<Option<Duration>, StoreError>;

    /// Removes the node's lease (an agent leaving for good).
    fn delete_lease(&self, node: &str) -> Result<(), StoreError>;

    /// Forgets the history before `revision`: watches from earlier must list again.
    fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The store, as it may be printed (no credentials).
    fn describe(&self) -> String;
}

/// Opens the store a URL names: `sqlite:PATH` or
/// `etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE]` (with `ca`, TLS; with
/// `cert` and `key`, a client certificate).
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
        return Ok(Box::new(sqlite::SqliteStore::open(path)?));
    }
    if url.starts_with("etcd://") {
        return Ok(Box::new(etcd::EtcdStore::open(&etcd::EtcdUrl::parse(url)?)?));
    }
    Err(StoreError::Url(url.to_string()))
}

/// A lease as the stores write it: with `"expiresAt"` at the largest time there is, so that
/// agents of the release before this one (41a29d1), which need the field, read the leases of
/// upgraded nodes during a rolling upgrade. Nothing reads its value: in etcd the etcd lease
/// decides what is alive (for those agents too); in SQLite, a column.
pub(crate) fn lease_json(lease: &Lease) -> String {
    let mut value = serde_json::to_value(lease).expect("a lease serialises");
    value["expiresAt"] = serde_json::Value::from(u64::MAX);
    value.to_string()
}

/// What a node asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    pub node: &'a str,
    pub public_ip: IpAddr,
    /// The node's uplink address of the other family, if it has one.
    pub other_public_ip: Option<IpAddr>,
    pub ttl: Duration,
    /// The subnets the node had before (its node file's), one per family: taken again if
    /// still free, so a node whose lease lapsed keeps its pods' addresses.
    pub previous: Vec<ipnet::IpNet>,
}

/// The node's lease: the one it holds, kept alive and not rewritten, if it still says what
/// the node would say (a restarting agent writes nothing); else a new one on its subnet, its
/// previous one if still free, or a free one. Retries lost compare-and-swaps.
pub fn acquire(store: &dyn Store, request: &LeaseRequest) -> Result<StoredLease, StoreError> {
    acquire_with(store, request, None)
}

/// [`acquire`], trying first from a snapshot the caller has (an informer's cache): a lost
/// compare-and-swap means it was stale, and the next attempts list the store.
pub fn acquire_with(
    store: &dyn Store,
    request: &LeaseRequest,
    mut first: Option<Snapshot>,
) -> Result<StoredLease, StoreError> {
    const ATTEMPTS: usize = 64;
    for _ in 0..ATTEMPTS {
        let snapshot = match first.take() {
            Some(snapshot) => snapshot,
            None => store.list()?,
        };
        if snapshot.invalid.iter().any(|i| i.node == request.node) {
            // Our key holds what no lease is (a bad writer, a downgrade): cleared first,
            // then leased as if new.
            store.delete_lease(request.node)?;
            continue;
        }
        let config = snapshot.network.ok_or(StoreError::NoNetwork)?;
        let leases = &snapshot.leases;
        let own = leases.iter().find(|l| l.lease.node == request.node);
        // One subnet per family, in one value: a node holds all of a dual lease or none.
        let mut subnets = Vec::new();
        for family in config.families() {
            let pool = config.for_family(family).expect("a family of the network");
            // A lease from before a config change that it no longer fits is replaced.
            let fits = |s: &ipnet::IpNet| s.prefix_len() == pool.subnet_len && pool.cidr.contains(s);
            if let Some(kept) = own.and_then(|o| o.lease.subnet_of(family)).filter(fits) {
                subnets.push(kept);
                continue;
            }
            let taken = leases
                .iter()
                .filter(|l| l.lease.node != request.node)
                .flat_map(|l| l.lease.subnet_of(family))
                .collect();
            let previous = request
                .previous
                .iter()
                .copied()
                .chain(own.and_then(|o| o.lease.subnet_of(family)))
                .find(|p| Family::of_net(p) == family);
            // A subnet holding a node's own address would hand that address to a pod (it
            // can happen in l2, where pods share the nodes' segment).
            let mut pool = pool;
            let host = |ip: IpAddr| {
                ipnet::IpNet::new(ip, weft_core::addr::host_prefix_len(ip)).expect("a host prefix")
            };
            let addresses = |l: &Lease| l.public_ip_of(family);
            pool.reserved.extend(leases.iter().filter_map(|l| addresses(&l.lease)).map(host));
            pool.reserved.extend(
                std::iter::once(request.public_ip)
                    .chain(request.other_public_ip)
                    .filter(|ip| Family::of(*ip) == family)
                    .map(host),
            );
            subnets.push(
                pick_subnet(&pool, &taken, request.node, previous)
                    .ok_or(StoreError::Exhausted(pool.subnet_count()))?,
            );
        }
        let lease = Lease {
            node: request.node.to_string(),
            subnet: subnets[0],
            public_ip: request.public_ip,
            backend: config.backend,
            vtep_mac: Some(vtep_mac(request.node)),
            subnet6: subnets.get(1).copied(),
            other_public_ip: request.other_public_ip,
        };
        if let Some(own) = own.filter(|own| own.lease == lease) {
            // It says what we would write: keep it alive, write nothing (no watcher hears of
            // a restart). Unless it lives by another TTL than asked for.
            if store.keep_alive(own)? == Some(request.ttl) {
                return Ok(own.clone());
            }
        }
        if let Some(held) = store.put_lease(&lease, own, request.ttl)? {
            return Ok(held);
        }
    }
    Err(StoreError::Contended(ATTEMPTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lease as weft 41a29d1 read it (its fields as they were, all required).
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct PreviousLease {
        node: String,
        subnet: ipnet::IpNet,
        public_ip: IpAddr,
        backend: weft_core::network::Backend,
        #[serde(default)]
        vtep_mac: Option<weft_core::lease::MacAddr>,
        expires_at: u64,
    }

    #[test]
    fn the_previous_release_reads_what_this_one_writes() {
        let lease = Lease {
            node: "n1".into(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            public_ip: "192.0.2.11".parse().unwrap(),
            backend: weft_core::network::Backend::Vxlan,
            vtep_mac: Some(vtep_mac("n1")),
            subnet6: None,
            other_public_ip: None,
        };
        let text = lease_json(&lease);
        let previous: PreviousLease = serde_json::from_str(&text).expect("41a29d1's agents read it");
        assert_eq!((previous.node.as_str(), previous.expires_at), ("n1", u64::MAX));
        assert_eq!(serde_json::from_str::<Lease>(&text).unwrap(), lease, "and this one reads it back");
    }
}
