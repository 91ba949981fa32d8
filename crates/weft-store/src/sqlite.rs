//! The embedded store: one SQLite file that several agents on one host share.
//!
//! Writes are transactions (`BEGIN IMMEDIATE`: one writer at a time, others wait up to the
//! busy timeout). Every change a watcher can see bumps the revision in `meta` and appends a
//! row to `changes`, the change log a watch reads from the last revision it saw on. A
//! lease's liveness lives in its row (`expires_at`, the store's clock): keeping it alive
//! updates that column only, with no revision and no log entry. An expired lease is removed,
//! and its removal logged, by the next writer or watcher that notices.
//!
//! A watch waits by looking at `PRAGMA data_version` (which moves when another connection
//! commits) every few milliseconds: a local file read, no query, until something changed.
//! The log keeps the last [`LOG_KEPT`] changes; a watcher from before those lists again.

use crate::{Event, InvalidLease, Revision, Snapshot, Store, StoreError, StoredLease, Watch, WatchBatch};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weft_core::lease::Lease;
use weft_core::network::NetworkConfig;

pub struct SqliteStore {
    path: PathBuf,
    /// One connection, used by one thread at a time; each agent process has its own.
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS leases (
        node TEXT PRIMARY KEY,
        subnet TEXT NOT NULL UNIQUE,
        subnet6 TEXT UNIQUE,
        lease TEXT NOT NULL,
        version INTEGER NOT NULL,
        created INTEGER NOT NULL,
        token INTEGER NOT NULL,
        ttl INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
    CREATE TABLE IF NOT EXISTS changes (
        revision INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        value TEXT,
        created INTEGER
    );
    INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', '0');
    INSERT OR IGNORE INTO meta (key, value) VALUES ('compacted', '0');
";

/// How many changes the log keeps.
pub const LOG_KEPT: u64 = 10_000;
/// How often a watch looks whether another connection wrote.
const POLL: Duration = Duration::from_millis(10);
/// How often a watch looks for expired leases to remove.
const SWEEP: Duration = Duration::from_millis(250);

const NETWORK_KEY: &str = "network";
const LEASE_KEY_PREFIX: &str = "lease/";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    Ok(connection)
}

fn meta(connection: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(connection.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

fn meta_number(connection: &Connection, key: &str) -> Result<u64, StoreError> {
    meta(connection, key)?.unwrap_or_default().parse().map_err(corrupt)
}

/// The network config; one that does not parse is as good as none (and said in the log).
fn network_in(connection: &Connection) -> Result<Option<NetworkConfig>, StoreError> {
    Ok(meta(connection, NETWORK_KEY)?.and_then(|t| {
        serde_json::from_str(&t)
            .map_err(|e| tracing::error!("{}", corrupt(format!("the network config: {e}"))))
            .ok()
    }))
}

/// Records a change: the next revision, and its row in the log. Returns the revision.
fn log(connection: &Connection, key: &str, value: Option<&str>) -> Result<Revision, StoreError> {
    log_created(connection, key, value, None)
}

/// [`log`], with the revision a lease was first written at (none: this write's).
fn log_created(
    connection: &Connection,
    key: &str,
    value: Option<&str>,
    created: Option<Revision>,
) -> Result<Revision, StoreError> {
    connection.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'", [])?;
    let revision = meta_number(connection, "revision")?;
    let created = value.map(|_| created.unwrap_or(revision) as i64);
    connection.execute(
        "INSERT INTO changes (revision, key, value, created) VALUES (?1, ?2, ?3, ?4)",
        params![revision as i64, key, value, created],
    )?;
    if revision % 256 == 0 && revision > LOG_KEPT {
        compact_in(connection, revision - LOG_KEPT)?;
    }
    Ok(revision)
}

fn compact_in(connection: &Connection, revision: Revision) -> Result<(), StoreError> {
    // Not past the present: a watcher from now on must not be told its history is gone.
    let revision = revision.min(meta_number(connection, "revision")?);
    connection.execute("DELETE FROM changes WHERE revision <= ?1", [revision as i64])?;
    connection.execute(
        "UPDATE meta SET value = MAX(CAST(value AS INTEGER), ?1) WHERE key = 'compacted'",
        [revision as i64],
    )?;
    Ok(())
}

/// Removes leases expired now, logging each removal.
fn expire(connection: &Connection) -> Result<(), StoreError> {
    let now = weft_core::now() as i64;
    let expired: Vec<String> = connection
        .prepare("SELECT node FROM leases WHERE expires_at <= ?1")?
        .query_map([now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for node in expired {
        connection.execute("DELETE FROM leases WHERE node = ?1", [&node])?;
        log(connection, &format!("{LEASE_KEY_PREFIX}{node}"), None)?;
    }
    Ok(())
}

fn stored(
    node: &str,
    text: &str,
    version: i64,
    created: i64,
    token: i64,
) -> Result<StoredLease, InvalidLease> {
    match serde_json::from_str::<Lease>(text) {
        Ok(lease) if lease.node == node => {
            Ok(StoredLease { lease, version: version as u64, created: created as u64, liveness: token })
        }
        Ok(lease) => {
            Err(InvalidLease { node: node.into(), error: format!("it names node {:?}", lease.node) })
        }
        Err(e) => Err(InvalidLease { node: node.into(), error: e.to_string() }),
    }
}

impl SqliteStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let connection = connect(&path)?;
        // WAL: readers never wait for the writer.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // A store from before liveness moved out of the lease's value: its leases are dropped
        // (agents lease again, their previous subnets first).
        let old_leases: bool = connection
            .prepare("SELECT 1 FROM pragma_table_info('leases') WHERE name = 'expires_at'")?
            .exists([])?
            && !connection
                .prepare("SELECT 1 FROM pragma_table_info('leases') WHERE name = 'token'")?
                .exists([])?;
        if old_leases {
            connection.execute_batch("DROP TABLE leases")?;
        }
        connection.execute_batch(SCHEMA)?;
        // A store from before dual stack: the IPv6 half of a lease gets its column. In a write
        // transaction, so that agents opening the store at once add it once.
        let mut connection = connection;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let single: bool =
            !tx.prepare("SELECT 1 FROM pragma_table_info('leases') WHERE name = 'subnet6'")?.exists([])?;
        if single {
            tx.execute_batch(
                "ALTER TABLE leases ADD COLUMN subnet6 TEXT;
                 CREATE UNIQUE INDEX IF NOT EXISTS leases_subnet6 ON leases (subnet6);",
            )?;
        }
        tx.commit()?;
        Ok(SqliteStore { path, connection: Mutex::new(connection) })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding it leaves nothing half-done: SQLite rolls back.
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in a write transaction, after removing expired leases.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut connection = self.connection();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        expire(&tx)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

impl Store for SqliteStore {
    fn network(&self) -> Result<Option<NetworkConfig>, StoreError> {
        network_in(&self.connection())
    }

    fn init_network(&self, config: &NetworkConfig, force: bool) -> Result<(), StoreError> {
        config.validate()?;
        self.write(|tx| {
            let current = network_in(tx)?;
            if current.as_ref() == Some(config) {
                return Ok(());
            }
            let nodes: i64 = tx.query_row("SELECT COUNT(*) FROM leases", [], |r| r.get(0))?;
            if current.is_some() && nodes > 0 && !force {
                return Err(StoreError::NetworkInUse { nodes: nodes as usize });
            }
            let text = serde_json::to_string(config).expect("config serialises");
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('network', ?1)", [&text])?;
            log(tx, NETWORK_KEY, Some(&text))?;
            Ok(())
        })
    }

    fn list(&self) -> Result<Snapshot, StoreError> {
        // One read transaction: the leases, the config and the revision agree.
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        let mut snapshot = Snapshot {
            network: network_in(&tx)?,
            revision: meta_number(&tx, "revision")?,
            ..Snapshot::default()
        };
        let mut statement = tx.prepare(
            "SELECT node, lease, version, created, token FROM leases WHERE expires_at > ?1 ORDER BY node",
        )?;
        let rows = statement.query_map([weft_core::now() as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (node, text, version, created, token) = row?;
            match stored(&node, &text, version, created, token) {
                Ok(lease) => snapshot.leases.push(lease),
                Err(invalid) => snapshot.invalid.push(invalid),
            }
        }
        drop(statement);
        tx.commit()?;
        Ok(snapshot)
    }

    fn watch(&self, after: Revision) -> Result<Box<dyn Watch>, StoreError> {
        Ok(Box::new(SqliteWatch { connection: connect(&self.path)?, after, seen: None, swept: None }))
    }

    fn put_lease(
        &self,
        lease: &Lease,
        expected: Option<&StoredLease>,
        ttl: Duration,
    ) -> Result<Option<StoredLease>, StoreError> {
        self.write(|tx| {
            let current: Option<i64> = tx
                .query_row("SELECT version FROM leases WHERE node = ?1", [&lease.node], |r| r.get(0))
                .optional()?;
            if current.map(|v| v as u64) != expected.map(|e| e.version) {
                return Ok(None);
            }
            // Every subnet of the lease (one per family) is checked in this one transaction: a
            // node never holds half of a dual lease.
            for subnet in lease.subnets() {
                let subnet = subnet.to_string();
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT node FROM leases WHERE (subnet = ?1 OR subnet6 = ?1) AND node != ?2",
                        [&subnet, &lease.node],
                        |r| r.get(0),
                    )
                    .optional()?;
                if holder.is_some() {
                    return Ok(None);
                }
            }
            let text = crate::lease_json(lease);
            let key = format!("{LEASE_KEY_PREFIX}{}", lease.node);
            let created = expected.map(|e| e.created);
            let version = log_created(tx, &key, Some(&text), created)?;
            let created = created.unwrap_or(version);
            // The holder's token is the revision it was written at: a later write replaces it.
            let token = version as i64;
            let ttl = ttl.as_secs().max(1) as i64;
            tx.execute(
                "INSERT OR REPLACE INTO leases (node, subnet, subnet6, lease, version, created, token, ttl, expires_at)
                 VALUES (?1, ?2, ?9, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    lease.node,
                    lease.subnet.to_string(),
                    text,
                    version as i64,
                    created as i64,
                    token,
                    ttl,
                    weft_core::now() as i64 + ttl,
                    lease.subnet6.map(|s| s.to_string()),
                ],
            )?;
            Ok(Some(StoredLease { lease: lease.clone(), version, created, liveness: token }))
        })
    }

    fn keep_alive(&self, held: &StoredLease) -> Result<Option<Duration>, StoreError> {
        self.write(|tx| {
            let ttl: Option<i64> = tx
                .query_row(
                    "SELECT ttl FROM leases WHERE node = ?1 AND token = ?2",
                    params![held.lease.node, held.liveness],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(ttl) = ttl else { return Ok(None) };
            tx.execute(
                "UPDATE leases SET expires_at = ?1 WHERE node = ?2 AND token = ?3",
                params![weft_core::now() as i64 + ttl, held.lease.node, held.liveness],
            )?;
            Ok(Some(Duration::from_secs(ttl as u64)))
        })
    }

    fn delete_lease(&self, node: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            if tx.execute("DELETE FROM leases WHERE node = ?1", [node])? > 0 {
                log(tx, &format!("{LEASE_KEY_PREFIX}{node}"), None)?;
            }
            Ok(())
        })
    }

    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.write(|tx| compact_in(tx, revision))
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}

/// A watch: the change log read from the last revision seen, whenever the file changed.
struct SqliteWatch {
    connection: Connection,
    after: Revision,
    /// `data_version` when the log was last read.
    seen: Option<i64>,
    swept: Option<Instant>,
}

impl SqliteWatch {
    /// Removes expired leases, if any (so that watchers hear of a dead node's lease).
    fn sweep(&mut self) -> Result<(), StoreError> {
        if self.swept.is_some_and(|at| at.elapsed() < SWEEP) {
            return Ok(());
        }
        self.swept = Some(Instant::now());
        let now = weft_core::now() as i64;
        let due =
            self.connection.prepare_cached("SELECT 1 FROM leases WHERE expires_at <= ?1")?.exists([now])?;
        if due {
            let tx = self.connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            expire(&tx)?;
            tx.commit()?;
            // data_version moves only for other connections' commits: read the log now.
            self.seen = None;
        }
        Ok(())
    }

    fn read(&mut self) -> Result<Option<WatchBatch>, StoreError> {
        let tx = self.connection.transaction()?;
        let compacted = meta_number(&tx, "compacted")?;
        if self.after < compacted {
            return Err(StoreError::Compacted(compacted + 1));
        }
        let revision = meta_number(&tx, "revision")?;
        let mut batch = WatchBatch { events: Vec::new(), revision };
        {
            let mut statement = tx.prepare_cached(
                "SELECT revision, key, value, created FROM changes WHERE revision > ?1 AND revision <= ?2 ORDER BY revision",
            )?;
            let rows = statement.query_map(params![self.after as i64, revision as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?;
            for row in rows {
                let (version, key, value, created) = row?;
                let event = if key == NETWORK_KEY {
                    Event::Network(value.and_then(|t| serde_json::from_str(&t).ok()))
                } else if let Some(node) = key.strip_prefix(LEASE_KEY_PREFIX) {
                    match value {
                        None => Event::LeaseDeleted(node.to_string()),
                        Some(text) => match stored(node, &text, version, created.unwrap_or(version), version)
                        {
                            Ok(lease) => Event::LeasePut(lease),
                            Err(invalid) => Event::LeaseInvalid(invalid),
                        },
                    }
                } else {
                    continue;
                };
                batch.events.push(event);
            }
        }
        tx.commit()?;
        if revision == self.after {
            return Ok(None);
        }
        self.after = revision;
        Ok(Some(batch))
    }
}

impl Watch for SqliteWatch {
    fn next(&mut self, timeout: Duration) -> Result<Option<WatchBatch>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.sweep()?;
            let version: i64 = self.connection.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            if self.seen != Some(version) {
                self.seen = Some(version);
                if let Some(batch) = self.read()? {
                    return Ok(Some(batch));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(POLL.min(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[test]
    fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.db");
        conformance::run_all(&|| Box::new(SqliteStore::open(&path).unwrap()));
    }

    /// A store from before dual stack (leases with `token`, no `subnet6`): its leases stay,
    /// the column is added once even by agents opening it at once, and dual leases are
    /// claimed whole there.
    #[test]
    fn a_store_from_before_dual_stack_gains_the_ipv6_column_and_keeps_its_leases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("single.db");
        let store = SqliteStore::open(&path).unwrap();
        store.init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), false).unwrap();
        let request = crate::LeaseRequest {
            node: "n1",
            public_ip: "192.0.2.11".parse().unwrap(),
            other_public_ip: None,
            ttl: Duration::from_secs(60),
            previous: Vec::new(),
        };
        let held = crate::acquire(&store, &request).unwrap();
        drop(store);
        // Back to the shape of before: no subnet6 column.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE before (node TEXT PRIMARY KEY, subnet TEXT NOT NULL UNIQUE, lease TEXT NOT NULL,
                 version INTEGER NOT NULL, created INTEGER NOT NULL, token INTEGER NOT NULL,
                 ttl INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             INSERT INTO before SELECT node, subnet, lease, version, created, token, ttl, expires_at FROM leases;
             DROP TABLE leases;
             ALTER TABLE before RENAME TO leases;",
        )
        .unwrap();
        drop(old);
        let stores: Vec<SqliteStore> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| SqliteStore::open(&path).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(stores[0].list().unwrap().leases, vec![held]);
        conformance::a_dual_lease_is_claimed_whole_or_not_at_all(&|| {
            Box::new(SqliteStore::open(&path).unwrap())
        });
    }

    #[test]
    fn a_store_from_before_liveness_moved_out_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE leases (node TEXT PRIMARY KEY, subnet TEXT NOT NULL UNIQUE, expires_at INTEGER NOT NULL, lease TEXT NOT NULL);
             INSERT INTO meta VALUES ('revision', '7');
             INSERT INTO meta VALUES ('network', '{\"cidr\":\"10.244.0.0/16\",\"subnetLen\":24}');
             INSERT INTO leases VALUES ('n1', '10.244.1.0/24', 9999999999, '{}');",
        )
        .unwrap();
        drop(old);
        let store = SqliteStore::open(&path).unwrap();
        let snapshot = store.list().unwrap();
        assert!(snapshot.network.is_some(), "the config stays");
        assert!(snapshot.leases.is_empty() && snapshot.invalid.is_empty(), "old leases go");
    }
}
