//! Where the cluster's network config and leases live, and how a node gets its lease.
//!
//! [`LeaseStore`] is what the agent needs of a store; [`sqlite::SqliteStore`] is the
//! embedded one (one file several agents on a host share). etcd comes next; the Kubernetes
//! API later. The logic that does not depend on the store (picking a subnet, retrying a
//! lost compare-and-swap, renewing) is written once, in [`acquire`].
//!
//! Synchronous by design: the agent is a few threads, not an async runtime, which keeps
//! it small in memory and keeps the CNI plugin, in the same binary, free of one.

#[doc(hidden)]
pub mod conformance;
pub mod etcd;
pub mod sqlite;

use std::net::IpAddr;
use std::time::Duration;
use weft_core::lease::{pick_subnet, vtep_mac, Lease};
use weft_core::network::NetworkConfig;

/// A mark of the store's state: it changes whenever leases or the network config do (it is
/// compared for equality only).
pub type Revision = u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?}: expected sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE]")]
    Url(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("etcd TLS: {0}")]
    Tls(String),
    #[error("the network is not initialised: run `weft network init` first")]
    NoNetwork,
    #[error("{nodes} node(s) hold leases under the current network config; changing it would strand them (use --force)")]
    NetworkInUse { nodes: usize },
    #[error("network config is invalid: {0}")]
    InvalidNetwork(#[from] weft_core::network::NetworkConfigError),
    #[error("no free subnet: all {0} subnets of the cluster CIDR are leased")]
    Exhausted(u128),
    #[error("gave up after {0} lost compare-and-swaps")]
    Contended(usize),
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    #[error("sqlite store: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub trait LeaseStore {
    fn network(&self) -> Result<Option<NetworkConfig>, StoreError>;

    /// Writes the network config. Refuses to change a config that live leases were made
    /// under, unless `force`.
    fn init_network(&self, config: &NetworkConfig, force: bool, now: u64) -> Result<(), StoreError>;

    /// Every lease still alive at `now`, and the revision they are current at.
    fn leases(&self, now: u64) -> Result<(Vec<Lease>, Revision), StoreError>;

    /// Compare-and-swap: writes `lease` if the node's current lease is `expected` (`None`:
    /// the node holds none) and no other live lease holds its subnet. `false` when another
    /// writer got there first.
    fn put_lease(&self, lease: &Lease, expected: Option<&Lease>, now: u64) -> Result<bool, StoreError>;

    /// Removes the node's lease (an agent leaving for good).
    fn delete_lease(&self, node: &str) -> Result<(), StoreError>;

    /// Waits until the store's mark differs from `since`, or `timeout`; returns the mark.
    fn wait_for_change(&self, since: Revision, timeout: Duration) -> Result<Revision, StoreError>;
}

/// Opens the store a URL names: `sqlite:PATH` or
/// `etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE]` (with `ca`, HTTPS; with
/// `cert` and `key`, a client certificate).
pub fn open(url: &str) -> Result<Box<dyn LeaseStore>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
        return Ok(Box::new(sqlite::SqliteStore::open(path)?));
    }
    if let Some(rest) = url.strip_prefix("etcd://").filter(|e| !e.is_empty()) {
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tls = etcd::EtcdTls::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("ca", path)) => tls.ca = Some(path.into()),
                Some(("cert", path)) => tls.cert = Some(path.into()),
                Some(("key", path)) => tls.key = Some(path.into()),
                _ => return Err(StoreError::Url(url.to_string())),
            }
        }
        let secure = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
        let endpoints: Vec<&str> = hosts.trim_end_matches('/').split(',').collect();
        return Ok(Box::new(etcd::EtcdStore::new(&endpoints, secure.then_some(&tls))?));
    }
    Err(StoreError::Url(url.to_string()))
}

/// What a node asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    pub node: &'a str,
    pub public_ip: IpAddr,
    pub ttl: Duration,
    /// The subnet the node had before (its node file's): taken again if still free, so a
    /// node whose lease lapsed keeps its pods' addresses.
    pub previous: Option<ipnet::IpNet>,
}

/// The node's lease, renewed if it holds one (it keeps its subnet), else a new one on a
/// free subnet (its previous one if still free). Retries lost compare-and-swaps.
pub fn acquire(store: &dyn LeaseStore, request: &LeaseRequest, now: u64) -> Result<Lease, StoreError> {
    const ATTEMPTS: usize = 64;
    let config = store.network()?.ok_or(StoreError::NoNetwork)?;
    for _ in 0..ATTEMPTS {
        let (leases, _) = store.leases(now)?;
        let own = leases.iter().find(|l| l.node == request.node);
        // A lease from before a config change that it no longer fits is replaced.
        let fits = |l: &&Lease| l.subnet.prefix_len() == config.subnet_len && config.cidr.contains(&l.subnet);
        let subnet = match own.filter(fits) {
            Some(own) => own.subnet,
            None => {
                let taken = leases.iter().filter(|l| l.node != request.node).map(|l| l.subnet).collect();
                let previous = request.previous.or(own.map(|o| o.subnet));
                // A subnet holding a node's own address would hand that address to a pod (it
                // can happen in l2, where pods share the nodes' segment).
                let mut config = config.clone();
                let host = |ip: std::net::IpAddr| {
                    ipnet::IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).expect("a host prefix")
                };
                config.reserved.extend(leases.iter().map(|l| host(l.public_ip)));
                config.reserved.push(host(request.public_ip));
                pick_subnet(&config, &taken, request.node, previous)
                    .ok_or(StoreError::Exhausted(config.subnet_count()))?
            }
        };
        let lease = Lease {
            node: request.node.to_string(),
            subnet,
            public_ip: request.public_ip,
            backend: config.backend,
            vtep_mac: Some(vtep_mac(request.node)),
            expires_at: now + request.ttl.as_secs().max(1),
        };
        if store.put_lease(&lease, own, now)? {
            return Ok(lease);
        }
    }
    Err(StoreError::Contended(ATTEMPTS))
}
