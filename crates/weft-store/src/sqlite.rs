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
            if revision != since || Instant::now() >= deadline {
                return Ok(revision);
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
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
}
