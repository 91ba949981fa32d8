//! List + watch + cache, as Kubernetes' informers and etcd's own clients do it: list once,
//! then watch from the listed revision and apply each change to a cache of the cluster. A
//! lost watch (a dropped connection, a member gone) is resumed from the last revision seen,
//! which costs nothing but the new watch; only a compaction of the history the watcher still
//! needs makes it list again, once. What changed is handed on as [`Delta`]s, so the agent's
//! work is proportional to the change, not to the cluster.

use crate::{Event, Revision, Store, StoreError, StoredLease, Watch};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_core::lease::Lease;
use weft_core::network::NetworkConfig;

/// The cluster as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    pub network: Option<NetworkConfig>,
    /// Live leases by node name.
    pub leases: BTreeMap<String, StoredLease>,
    /// Lease keys holding something that is not a lease, by node name, with why.
    pub invalid: BTreeMap<String, String>,
    /// The revision the cache is current at.
    pub revision: Revision,
}

impl Cluster {
    pub fn lease(&self, node: &str) -> Option<&Lease> {
        self.leases.get(node).map(|l| &l.lease)
    }
}

/// One change to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    Network {
        before: Option<NetworkConfig>,
        after: Option<NetworkConfig>,
    },
    /// A node's lease: new (`before` none), changed, or gone (`after` none).
    Lease {
        node: String,
        before: Option<Lease>,
        after: Option<Lease>,
    },
}

/// What the informer did, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InformerStats {
    /// Full listings: one at the start, then one per compaction met.
    pub lists: u64,
    /// Watches started again from the last revision seen.
    pub resumes: u64,
    /// Events applied.
    pub events: u64,
    /// Progress notifications (a quiet watch told it is current).
    pub progress: u64,
}

pub struct Informer {
    store: Arc<dyn Store>,
    cluster: Cluster,
    watch: Option<Box<dyn Watch>>,
    listed: bool,
    /// Whether a watch was started since the last listing (a later one is a resume).
    watched: bool,
    stats: InformerStats,
}

impl Informer {
    pub fn new(store: Arc<dyn Store>) -> Informer {
        Informer {
            store,
            cluster: Cluster::default(),
            watch: None,
            listed: false,
            watched: false,
            stats: InformerStats::default(),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn stats(&self) -> &InformerStats {
        &self.stats
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Drops the watch; the next poll watches again from the revision the cache is at. For
    /// a caller that saw the store fail otherwise (a keepalive unanswered): the watch's
    /// connection may be as dead, without knowing it yet.
    pub fn rewatch(&mut self) {
        self.watch = None;
    }

    /// Whether the cache has been filled by a listing.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Brings the cache up to date, waiting up to `timeout` for changes when it is: lists the
    /// first time (and after a compaction), then watches. Returns what changed (nothing: the
    /// wait ended quietly). An error leaves the cache as it was; the next call resumes the
    /// watch from the revision the cache is at.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<Delta>, StoreError> {
        if !self.listed {
            return self.list();
        }
        if self.watch.is_none() {
            self.watch = Some(self.store.watch(self.cluster.revision)?);
            if self.watched {
                self.stats.resumes += 1;
            }
            self.watched = true;
        }
        let watch = self.watch.as_mut().expect("just made");
        match watch.next(timeout) {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(batch)) => {
                let mut deltas = Vec::new();
                if batch.events.is_empty() {
                    self.stats.progress += 1;
                }
                for event in batch.events {
                    self.stats.events += 1;
                    deltas.extend(self.apply(event));
                }
                self.cluster.revision = self.cluster.revision.max(batch.revision);
                Ok(deltas)
            }
            Err(StoreError::Compacted(_)) => {
                self.watch = None;
                self.list()
            }
            Err(e) => {
                // Watched again from where the cache is, at the next poll.
                self.watch = None;
                Err(e)
            }
        }
    }

    /// Lists everything and returns how the cache changed (everything, the first time).
    fn list(&mut self) -> Result<Vec<Delta>, StoreError> {
        let snapshot = self.store.list()?;
        self.stats.lists += 1;
        self.listed = true;
        self.watch = None;
        self.watched = false;
        let mut fresh = Cluster {
            network: snapshot.network,
            leases: snapshot.leases.into_iter().map(|l| (l.lease.node.clone(), l)).collect(),
            invalid: snapshot.invalid.into_iter().map(|i| (i.node, i.error)).collect(),
            revision: snapshot.revision,
        };
        std::mem::swap(&mut self.cluster, &mut fresh);
        Ok(differences(&fresh, &self.cluster))
    }

    fn apply(&mut self, event: Event) -> Option<Delta> {
        match event {
            Event::Network(after) => {
                let before = std::mem::replace(&mut self.cluster.network, after.clone());
                (before != after).then_some(Delta::Network { before, after })
            }
            Event::LeasePut(stored) => {
                let node = stored.lease.node.clone();
                self.cluster.invalid.remove(&node);
                let after = stored.lease.clone();
                let before = self.cluster.leases.insert(node.clone(), stored).map(|s| s.lease);
                (before.as_ref() != Some(&after)).then_some(Delta::Lease { node, before, after: Some(after) })
            }
            Event::LeaseDeleted(node) => {
                self.cluster.invalid.remove(&node);
                let before = self.cluster.leases.remove(&node)?.lease;
                Some(Delta::Lease { node, before: Some(before), after: None })
            }
            Event::LeaseInvalid(invalid) => {
                let node = invalid.node.clone();
                self.cluster.invalid.insert(invalid.node, invalid.error);
                let before = self.cluster.leases.remove(&node)?.lease;
                Some(Delta::Lease { node, before: Some(before), after: None })
            }
        }
    }
}

/// How `after` differs from `before`, as deltas.
fn differences(before: &Cluster, after: &Cluster) -> Vec<Delta> {
    let mut deltas = Vec::new();
    if before.network != after.network {
        deltas.push(Delta::Network { before: before.network.clone(), after: after.network.clone() });
    }
    for (node, old) in &before.leases {
        if !after.leases.contains_key(node) {
            deltas.push(Delta::Lease { node: node.clone(), before: Some(old.lease.clone()), after: None });
        }
    }
    for (node, new) in &after.leases {
        let old = before.leases.get(node).map(|l| &l.lease);
        if old != Some(&new.lease) {
            deltas.push(Delta::Lease {
                node: node.clone(),
                before: old.cloned(),
                after: Some(new.lease.clone()),
            });
        }
    }
    deltas
}
