//! The embedded store: one SQLite file that several agents on one host share.
//!
//! Writes are transactions (`BEGIN IMMEDIATE`: one writer at a time, others wait up to the
//! busy timeout); a counter in `meta` is the revision, bumped by every write; watching is
//! polling that counter. An expired lease is removed by the next write, which bumps the
//! revision, so watchers see expiry as a change.

use crate::{LeaseStore, Revision, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weft_core::lease::Lease;
use weft_core::network::NetworkConfig;

pub struct SqliteStore {
    /// One connection, used by one thread at a time; each agent process has its own.
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS leases (
        node TEXT PRIMARY KEY,
        subnet TEXT NOT NULL UNIQUE,
        expires_at INTEGER NOT NULL,
        lease TEXT NOT NULL
    );
    INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', '0');
";

/// How often `wait_for_change` looks at the revision.
const POLL: Duration = Duration::from_millis(20);

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl SqliteStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // WAL: readers never wait for the writer.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.execute_batch(SCHEMA)?;
        Ok(SqliteStore { connection: Mutex::new(connection) })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding it leaves nothing half-done: SQLite rolls back.
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn revision_in(connection: &Connection) -> Result<Revision, StoreError> {
        let text: String =
            connection.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| r.get(0))?;
        text.parse().map_err(corrupt)
    }

    fn bump(connection: &Connection) -> Result<(), StoreError> {
        connection
            .execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'", [])?;
        Ok(())
    }

    /// Removes leases expired at `now`; bumps the revision if there were any.
    fn expire(connection: &Connection, now: u64) -> Result<(), StoreError> {
        if connection.execute("DELETE FROM leases WHERE expires_at <= ?1", params![now as i64])? > 0 {
            Self::bump(connection)?;
        }
        Ok(())
    }
}

impl LeaseStore for SqliteStore {
    fn network(&self) -> Result<Option<NetworkConfig>, StoreError> {
        let text: Option<String> = self
            .connection()
            .query_row("SELECT value FROM meta WHERE key = 'network'", [], |r| r.get(0))
            .optional()?;
        text.map(|t| serde_json::from_str(&t).map_err(corrupt)).transpose()
    }

    fn init_network(&self, config: &NetworkConfig, force: bool, now: u64) -> Result<(), StoreError> {
        config.validate()?;
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::expire(&tx, now)?;
        let current: Option<String> =
            tx.query_row("SELECT value FROM meta WHERE key = 'network'", [], |r| r.get(0)).optional()?;
        let current: Option<NetworkConfig> =
            current.map(|t| serde_json::from_str(&t).map_err(corrupt)).transpose()?;
        if current.as_ref() == Some(config) {
            return Ok(());
        }
        let nodes: i64 = tx.query_row("SELECT COUNT(*) FROM leases", [], |r| r.get(0))?;
        if current.is_some() && nodes > 0 && !force {
            return Err(StoreError::NetworkInUse { nodes: nodes as usize });
        }
        let text = serde_json::to_string(config).expect("config serialises");
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('network', ?1)", params![text])?;
        Self::bump(&tx)?;
        tx.commit()?;
        Ok(())
    }

    fn leases(&self, now: u64) -> Result<(Vec<Lease>, Revision), StoreError> {
        // One read transaction: the leases and the revision agree.
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        let mut statement = tx.prepare("SELECT lease FROM leases WHERE expires_at > ?1 ORDER BY node")?;
        let leases = statement
            .query_map(params![now as i64], |r| r.get::<_, String>(0))?
            .map(|text| serde_json::from_str::<Lease>(&text?).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        let revision = Self::revision_in(&tx)?;
        drop(statement);
        tx.commit()?;
        Ok((leases, revision))
    }

    fn put_lease(&self, lease: &Lease, expected: Option<&Lease>, now: u64) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::expire(&tx, now)?;
        let current: Option<String> = tx
            .query_row("SELECT lease FROM leases WHERE node = ?1", params![lease.node], |r| r.get(0))
            .optional()?;
        let current: Option<Lease> =
            current.map(|t| serde_json::from_str(&t).map_err(corrupt)).transpose()?;
        if current.as_ref() != expected {
            return Ok(false);
        }
        let subnet_holder: Option<String> = tx
            .query_row("SELECT node FROM leases WHERE subnet = ?1", params![lease.subnet.to_string()], |r| {
                r.get(0)
            })
            .optional()?;
        if subnet_holder.is_some_and(|holder| holder != lease.node) {
            return Ok(false);
        }
        let text = serde_json::to_string(lease).expect("lease serialises");
        tx.execute(
            "INSERT OR REPLACE INTO leases (node, subnet, expires_at, lease) VALUES (?1, ?2, ?3, ?4)",
            params![lease.node, lease.subnet.to_string(), lease.expires_at as i64, text],
        )?;
        Self::bump(&tx)?;
        tx.commit()?;
        Ok(true)
    }

    fn delete_lease(&self, node: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM leases WHERE node = ?1", params![node])? > 0 {
            Self::bump(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn wait_for_change(&self, since: Revision, timeout: Duration) -> Result<Revision, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let revision = Self::revision_in(&self.connection())?;
            if revision > since || Instant::now() >= deadline {
                return Ok(revision);
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{acquire, LeaseRequest};
    use std::collections::HashSet;
    use weft_core::network::Backend;

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(dir.path().join("weft.db")).unwrap()
    }

    fn request(node: &str, last: u8) -> LeaseRequest<'_> {
        LeaseRequest {
            node,
            public_ip: format!("192.0.2.{last}").parse().unwrap(),
            ttl: Duration::from_secs(30),
        }
    }

    fn network() -> NetworkConfig {
        NetworkConfig::new("10.244.0.0/16".parse().unwrap())
    }

    #[test]
    fn no_lease_before_the_network_exists() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(acquire(&store(&dir), &request("n1", 1), 0), Err(StoreError::NoNetwork)));
    }

    #[test]
    fn a_config_in_use_is_not_changed_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.init_network(&network(), false, 0).unwrap();
        store.init_network(&network(), false, 0).unwrap(); // the same again: fine
        acquire(&store, &request("n1", 1), 0).unwrap();
        let vxlan = NetworkConfig { backend: Backend::Vxlan, ..network() };
        assert!(matches!(store.init_network(&vxlan, false, 0), Err(StoreError::NetworkInUse { nodes: 1 })));
        store.init_network(&vxlan, true, 0).unwrap();
        assert_eq!(store.network().unwrap(), Some(vxlan));
        // and once the only lease has expired, nobody is stranded
        let route = NetworkConfig { backend: Backend::Route, ..network() };
        store.init_network(&route, false, 1000).unwrap();
    }

    #[test]
    fn thirty_agents_joining_at_once_get_thirty_subnets() {
        let dir = tempfile::tempdir().unwrap();
        store(&dir).init_network(&network(), false, 0).unwrap();
        let subnets: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..30u8)
                .map(|i| {
                    let dir = &dir;
                    // each agent its own connection, as separate processes would have
                    scope.spawn(move || {
                        acquire(&store(dir), &request(&format!("node-{i}"), i + 1), 0).unwrap().subnet
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: HashSet<_> = subnets.iter().collect();
        assert_eq!(distinct.len(), 30, "{subnets:?}");
        assert_eq!(store(&dir).leases(0).unwrap().0.len(), 30);
    }

    #[test]
    fn a_restarting_agent_keeps_its_subnet_and_a_dead_ones_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.init_network(&NetworkConfig { subnet_len: 17, ..network() }, false, 0).unwrap();
        let first = acquire(&store, &request("n1", 1), 0).unwrap();
        let renewed = acquire(&store, &request("n1", 1), 10).unwrap();
        assert_eq!(renewed.subnet, first.subnet);
        assert_eq!(renewed.expires_at, 40, "renewal pushes expiry out");
        let other = acquire(&store, &request("n2", 2), 20).unwrap();
        // the CIDR has two /17s: a third node finds none ...
        assert!(matches!(acquire(&store, &request("n3", 3), 20), Err(StoreError::Exhausted(2))));
        // ... until n1 stops renewing and its lease expires
        let taken = acquire(&store, &request("n3", 3), 41).unwrap();
        assert_eq!(taken.subnet, first.subnet);
        let (live, _) = store.leases(41).unwrap();
        let nodes: Vec<&str> = live.iter().map(|l| l.node.as_str()).collect();
        assert_eq!(nodes, vec!["n2", "n3"]);
        assert_ne!(other.subnet, taken.subnet);
    }

    #[test]
    fn a_lost_compare_and_swap_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.init_network(&network(), false, 0).unwrap();
        let lease = acquire(&store, &request("n1", 1), 0).unwrap();
        let mut stale = lease.clone();
        stale.expires_at = 5;
        let mut update = lease.clone();
        update.public_ip = "192.0.2.99".parse().unwrap();
        assert!(!store.put_lease(&update, Some(&stale), 0).unwrap(), "expected value differs");
        assert!(!store.put_lease(&update, None, 0).unwrap(), "the node holds a lease already");
        let mut thief = lease.clone();
        thief.node = "n2".into();
        assert!(!store.put_lease(&thief, None, 0).unwrap(), "the subnet is taken");
        assert_eq!(store.leases(0).unwrap().0, vec![lease]);
    }

    #[test]
    fn watchers_see_writes_from_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = store(&dir);
        watcher.init_network(&network(), false, 0).unwrap();
        let (_, since) = watcher.leases(0).unwrap();
        assert_eq!(
            watcher.wait_for_change(since, Duration::from_millis(50)).unwrap(),
            since,
            "nothing happened"
        );
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                acquire(&store(&dir), &request("n1", 1), 0).unwrap();
            });
            let started = Instant::now();
            let revision = watcher.wait_for_change(since, Duration::from_secs(10)).unwrap();
            assert!(revision > since);
            assert!(started.elapsed() < Duration::from_secs(5));
        });
        watcher.delete_lease("n1").unwrap();
        assert!(watcher.leases(0).unwrap().0.is_empty());
    }
}
