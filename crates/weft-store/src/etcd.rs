//! etcd (v3 API over gRPC, with the `etcd-client` crate).
//!
//! Keys: `/weft/network` holds the network config; `/weft/leases/<node>` a node's lease;
//! `/weft/subnets/<subnet>` the name of the node holding the subnet, so that one transaction
//! can check both "this node's lease is what I think" and "nobody else holds this subnet".
//! Both keys of a lease are bound to one etcd lease with the lease's TTL, which the node
//! keeps alive over a LeaseKeepAlive stream: renewing writes no key, so no watcher hears of
//! it, and etcd itself removes a dead node's keys when it stops.
//!
//! A watch is one gRPC stream on the leases and the config from a revision on (the range
//! `/weft/leases/`…`/weft/network`, which leaves the subnet keys out), with progress notifications
//! (etcd sends them on its own schedule, `--experimental-watch-progress-notify-interval`).
//! Calls require a leader (a member cut off from the others refuses instead of answering
//! stale), and HTTP/2 keepalive pings find a dead connection within [`PING_EVERY`] +
//! [`PING_TIMEOUT`]; the balanced channel then uses another member.
//!
//! The rest of weft is synchronous: each store runs a small tokio runtime of its own (one
//! worker thread, created on the caller's thread so that its sockets live in the caller's
//! network namespace), or one it is given, and its methods block on it. Nothing of this is
//! touched on the CNI plugin's path.

use crate::{Event, InvalidLease, Revision, Snapshot, Store, StoreError, StoredLease, Watch, WatchBatch};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue,
    LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp, WatchOptions,
};
use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::{Handle, Runtime};
use weft_core::lease::Lease;
use weft_core::network::NetworkConfig;

const NETWORK_KEY: &str = "/weft/network";
const LEASES_PREFIX: &str = "/weft/leases/";
/// Leases listed per request: a listing of a big cluster is several small answers (at one
/// revision), not one that outgrows gRPC's message limit.
const PAGE: i64 = 1000;
/// How long one request may take before the store counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before a request that found no member is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// HTTP/2 keepalive: a ping every so often, and how long its answer may take (what the
/// Kubernetes API server uses towards etcd).
pub const PING_EVERY: Duration = Duration::from_secs(30);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS to etcd: the CA that signed its certificate, and this client's certificate and key
/// when etcd asks for one (`--client-cert-auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// etcd's own users (`etcdctl auth enable`): a user's name, and the file its password is in
/// (a file, never the URL: a URL shows in every process listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAuth {
    pub user: String,
    pub password_file: std::path::PathBuf,
}

/// An `etcd://` store URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    pub tls: Option<EtcdTls>,
    pub auth: Option<EtcdAuth>,
}

impl EtcdUrl {
    /// `etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE][&user=NAME&password-file=FILE]`
    pub fn parse(url: &str) -> Result<EtcdUrl, StoreError> {
        let bad = || StoreError::Url(url.to_string());
        let rest = url.strip_prefix("etcd://").filter(|r| !r.is_empty()).ok_or_else(bad)?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tls = EtcdTls::default();
        let (mut user, mut password_file) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("ca", path)) => tls.ca = Some(path.into()),
                Some(("cert", path)) => tls.cert = Some(path.into()),
                Some(("key", path)) => tls.key = Some(path.into()),
                Some(("user", name)) if !name.is_empty() => user = Some(name.to_string()),
                Some(("password-file", path)) if !path.is_empty() => password_file = Some(path.into()),
                _ => return Err(bad()),
            }
        }
        let auth = match (user, password_file) {
            (Some(user), Some(password_file)) => Some(EtcdAuth { user, password_file }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Auth(
                    "a user needs its password-file, and a password-file its user".into(),
                ))
            }
        };
        let endpoints: Vec<String> = hosts.trim_end_matches('/').split(',').map(str::to_string).collect();
        if endpoints.iter().any(|e| e.is_empty() || !e.contains(':')) {
            return Err(bad());
        }
        let secure = tls != EtcdTls::default();
        Ok(EtcdUrl { endpoints, tls: secure.then_some(tls), auth })
    }
}

pub struct EtcdStore {
    client: Client,
    handle: Handle,
    /// The runtime this store made for itself (none when given one).
    _runtime: Option<Arc<Runtime>>,
    /// The LeaseKeepAlive stream of the lease being kept alive.
    keeper: Mutex<Option<(i64, LeaseKeeper, LeaseKeepAliveStream)>>,
    describe: String,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// etcd's refusal of a compacted revision, as weft's; anything else, unavailable.
fn from_etcd(e: etcd_client::Error) -> StoreError {
    match &e {
        etcd_client::Error::GRpcStatus(status) if status.message().contains("compacted") => {
            StoreError::Compacted(0)
        }
        etcd_client::Error::GRpcStatus(status) if status.message().contains("permission denied") => {
            StoreError::Auth(
                "permission denied: the user's role must read and write the prefix /weft/ \
                 (etcdctl role grant-permission ROLE --prefix=true readwrite /weft/)"
                    .into(),
            )
        }
        etcd_client::Error::GRpcStatus(status) if status.message().contains("user name is empty") => {
            StoreError::Auth(
                "etcd asks who we are: add &user=NAME&password-file=FILE to the store URL".into(),
            )
        }
        _ => unavailable(e),
    }
}

/// A failure for want of a member (none reachable yet, or no leader): worth trying again.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => status.code() == tonic::Code::Unavailable,
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| StoreError::Tls(format!("{}: {e}", path.display())))
}

fn tls_options(tls: &EtcdTls) -> Result<etcd_client::TlsOptions, StoreError> {
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = &tls.ca {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(read_pem(ca)?));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            options = options.identity(etcd_client::Identity::from_pem(read_pem(cert)?, read_pem(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Tls(
                "a client certificate needs its key, and a key its certificate".into(),
            ))
        }
    }
    Ok(options)
}

fn subnet_key(subnet: &ipnet::IpNet) -> String {
    format!("/weft/subnets/{}", subnet.to_string().replace('/', "_"))
}

/// The end of a prefix's range: the prefix with its last byte incremented.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a prefix") += 1;
    end
}

fn lease_key(node: &str) -> String {
    format!("{LEASES_PREFIX}{node}")
}

/// The lease a key-value holds, or why it holds none.
fn stored(kv: &KeyValue) -> Option<Result<StoredLease, InvalidLease>> {
    let node = std::str::from_utf8(kv.key()).ok()?.strip_prefix(LEASES_PREFIX)?.to_string();
    Some(match serde_json::from_slice::<Lease>(kv.value()) {
        Ok(lease) if lease.node == node => Ok(StoredLease {
            lease,
            version: kv.mod_revision() as u64,
            created: kv.create_revision() as u64,
            liveness: kv.lease(),
        }),
        Ok(lease) => Err(InvalidLease { node, error: format!("it names node {:?}", lease.node) }),
        Err(e) => Err(InvalidLease { node, error: e.to_string() }),
    })
}

fn network(value: &[u8]) -> Result<NetworkConfig, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt(format!("{NETWORK_KEY}: {e}")))
}

impl EtcdStore {
    /// Connects to the members `url` names, on a runtime of its own.
    pub fn open(url: &EtcdUrl) -> Result<EtcdStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weft-etcd")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("start the etcd client's runtime: {e}")))?;
        let runtime = Arc::new(runtime);
        let mut store = EtcdStore::open_on(url, runtime.handle().clone())?;
        store._runtime = Some(runtime);
        Ok(store)
    }

    /// Connects on a runtime the caller runs (many stores, one runtime: the fleet benchmark).
    pub fn open_on(url: &EtcdUrl, handle: Handle) -> Result<EtcdStore, StoreError> {
        let mut options = ConnectOptions::new()
            .with_keep_alive(PING_EVERY, PING_TIMEOUT)
            // Pinged while a stream (the watch, the keepalives) is open on it; the balanced
            // channel's other connections, idle, are not: a dead one fails its next request.
            .with_keep_alive_while_idle(false)
            .with_require_leader(true)
            .with_connect_timeout(REQUEST_TIMEOUT);
        let scheme = match &url.tls {
            Some(tls) => {
                options = options.with_tls(tls_options(tls)?);
                "https"
            }
            None => "http",
        };
        if let Some(auth) = &url.auth {
            if url.tls.is_none() {
                tracing::warn!(
                    "etcd user {}: the password crosses the network in clear without TLS (add ?ca=FILE)",
                    auth.user
                );
            }
            {
                use std::os::unix::fs::PermissionsExt;
                let mode =
                    std::fs::metadata(&auth.password_file).map(|m| m.permissions().mode()).unwrap_or(0);
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "{}: others may read it (mode {:o}); chmod 600 it",
                        auth.password_file.display(),
                        mode & 0o777
                    );
                }
            }
            let password = std::fs::read_to_string(&auth.password_file).map_err(|e| {
                StoreError::Auth(format!(
                    "user {}: cannot read {}: {e}",
                    auth.user,
                    auth.password_file.display()
                ))
            })?;
            // Tokens expire (etcd's --auth-token-ttl): the client takes a new one when told.
            options = options
                .with_user(auth.user.clone(), password.trim_end_matches(['\r', '\n']))
                .with_auto_token_refresh(true);
        }
        let endpoints: Vec<String> = url.endpoints.iter().map(|e| format!("{scheme}://{e}")).collect();
        let client = handle.block_on(Client::connect(&endpoints, Some(options))).map_err(|e| {
            let text = e.to_string();
            match &url.auth {
                Some(auth) if text.contains("authentication failed") => StoreError::Auth(format!(
                    "etcd at {} refused user {}: wrong user or password (the password from {})",
                    url.endpoints.join(","),
                    auth.user,
                    auth.password_file.display()
                )),
                None if text.contains("user name is empty") || text.contains("invalid auth token") => {
                    StoreError::Auth(format!(
                        "etcd at {} asks who we are: add &user=NAME&password-file=FILE to the URL",
                        url.endpoints.join(",")
                    ))
                }
                _ => unavailable(format!("etcd at {}: {e}", url.endpoints.join(","))),
            }
        })?;
        Ok(EtcdStore {
            client,
            handle,
            _runtime: None,
            keeper: Mutex::new(None),
            describe: format!("etcd://{}", url.endpoints.join(",")),
        })
    }

    /// Runs a request within [`REQUEST_TIMEOUT`], again (after a pause) while it fails for
    /// want of a member: a fresh client may first try a member that is down, or one that is
    /// electing a leader, before the balanced channel learns to use the others. For reads,
    /// compare-and-swap transactions and lease grants: a repeat of one that did land is
    /// harmless.
    fn retry<T, Fut>(&self, what: &str, request: impl Fn(Client) -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.handle.block_on(async {
            let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
            loop {
                match tokio::time::timeout_at(deadline, request(self.client.clone())).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(e)) if transient(&e) && tokio::time::Instant::now() + RETRY_PAUSE < deadline => {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    Ok(Err(e)) => {
                        return Err(match from_etcd(e) {
                            StoreError::Unavailable(e) => StoreError::Unavailable(format!("{what}: {e}")),
                            other => other,
                        })
                    }
                    Err(_) => {
                        return Err(unavailable(format!(
                            "{what}: no answer within {} s",
                            REQUEST_TIMEOUT.as_secs()
                        )))
                    }
                }
            }
        })
    }

    /// Runs one request, within [`REQUEST_TIMEOUT`] (a stream's: not repeated).
    fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        self.handle.block_on(async {
            match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(match from_etcd(e) {
                    StoreError::Unavailable(e) => StoreError::Unavailable(format!("{what}: {e}")),
                    other => other,
                }),
                Err(_) => {
                    Err(unavailable(format!("{what}: no answer within {} s", REQUEST_TIMEOUT.as_secs())))
                }
            }
        })
    }

    /// How many leases there are, and the revision that is true at.
    fn count_leases(&self) -> Result<(usize, i64), StoreError> {
        let reply = self.retry("count leases", |mut c| async move {
            c.get(LEASES_PREFIX, Some(GetOptions::new().with_prefix().with_count_only())).await
        })?;
        Ok((reply.count() as usize, reply.header().map_or(0, |h| h.revision())))
    }
}

impl Store for EtcdStore {
    fn network(&self) -> Result<Option<NetworkConfig>, StoreError> {
        let reply =
            self.retry("read the network config", |mut c| async move { c.get(NETWORK_KEY, None).await })?;
        reply.kvs().first().map(|kv| network(kv.value())).transpose()
    }

    fn init_network(&self, config: &NetworkConfig, force: bool) -> Result<(), StoreError> {
        config.validate()?;
        let reply =
            self.retry("read the network config", |mut c| async move { c.get(NETWORK_KEY, None).await })?;
        let current = reply.kvs().first().cloned();
        // Only if nobody changed it meanwhile.
        let mut unchanged = vec![match &current {
            Some(kv) => Compare::mod_revision(NETWORK_KEY, CompareOp::Equal, kv.mod_revision()),
            None => Compare::create_revision(NETWORK_KEY, CompareOp::Equal, 0),
        }];
        if let Some(current) = &current {
            if network(current.value()).ok().as_ref() == Some(config) {
                return Ok(());
            }
            let (nodes, counted_at) = self.count_leases()?;
            if nodes > 0 && !force {
                return Err(StoreError::NetworkInUse { nodes });
            }
            if !force {
                // And no node leased since it was counted (every lease key older than that).
                unchanged.push(
                    Compare::create_revision(LEASES_PREFIX, CompareOp::Less, counted_at + 1)
                        .with_range(prefix_end(LEASES_PREFIX)),
                );
            }
        }
        let text = serde_json::to_string(config).expect("config serialises");
        let txn = Txn::new().when(unchanged).and_then([TxnOp::put(NETWORK_KEY, text, None)]);
        if self
            .retry("write the network config", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })?
            .succeeded()
        {
            Ok(())
        } else {
            Err(StoreError::Contended(1))
        }
    }

    fn list(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let end = prefix_end(LEASES_PREFIX);
        let mut from = LEASES_PREFIX.as_bytes().to_vec();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if snapshot.revision > 0 {
                // The later pages at the first one's revision: one consistent picture.
                options = options.with_revision(snapshot.revision as i64);
            }
            let reply = self.retry("list the leases", |mut c| {
                let (from, options) = (from.clone(), options.clone());
                async move { c.get(from, Some(options)).await }
            })?;
            if snapshot.revision == 0 {
                snapshot.revision = reply.header().map_or(0, |h| h.revision() as u64);
            }
            for kv in reply.kvs() {
                match stored(kv) {
                    Some(Ok(lease)) => snapshot.leases.push(lease),
                    Some(Err(invalid)) => snapshot.invalid.push(invalid),
                    None => {}
                }
            }
            match reply.kvs().last() {
                Some(last) if reply.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        let revision = snapshot.revision as i64;
        let reply = self.retry("read the network config", |mut c| async move {
            c.get(NETWORK_KEY, Some(GetOptions::new().with_revision(revision))).await
        })?;
        // A config that does not parse is as good as none (as the watch says it): nothing is
        // planned from it, and `weft network init` can write a good one.
        snapshot.network =
            reply.kvs().first().and_then(|kv| network(kv.value()).map_err(|e| tracing::error!("{e}")).ok());
        Ok(snapshot)
    }

    fn watch(&self, after: Revision) -> Result<Box<dyn Watch>, StoreError> {
        let (sender, receiver) = mpsc::channel();
        // From the first lease key to the network key: the leases and the config, in one
        // range, and not the subnet keys beside them (which would double every event).
        let mut end = NETWORK_KEY.as_bytes().to_vec();
        end.push(0);
        let options =
            WatchOptions::new().with_range(end).with_start_revision(after as i64 + 1).with_progress_notify();
        let stream = self.retry("watch", |mut c| {
            let options = options.clone();
            async move { c.watch(LEASES_PREFIX, Some(options)).await }
        })?;
        let task = self.handle.spawn(forward(stream, sender));
        Ok(Box::new(EtcdWatch { receiver, task: task.abort_handle() }))
    }

    fn put_lease(
        &self,
        lease: &Lease,
        expected: Option<&StoredLease>,
        ttl: Duration,
    ) -> Result<Option<StoredLease>, StoreError> {
        let node_key = lease_key(&lease.node);
        let mut compare = vec![match expected {
            Some(e) => Compare::mod_revision(node_key.as_str(), CompareOp::Equal, e.version as i64),
            None => Compare::create_revision(node_key.as_str(), CompareOp::Equal, 0),
        }];
        // Every subnet of the lease (one per family) is checked and claimed in the one
        // transaction: a node never holds half of a dual lease.
        let held = |subnet: &ipnet::IpNet| expected.is_some_and(|e| e.lease.subnets().any(|s| s == *subnet));
        for subnet in lease.subnets() {
            let key = subnet_key(&subnet);
            compare.push(match held(&subnet) {
                true => Compare::value(key.as_str(), CompareOp::Equal, lease.node.as_str()),
                false => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            });
        }
        let seconds = ttl.as_secs().max(1) as i64;
        let granted =
            self.retry("grant a lease", |mut c| async move { c.lease_grant(seconds, None).await })?;
        let id = granted.id();
        let text = crate::lease_json(lease);
        let with_lease = || Some(PutOptions::new().with_lease(id));
        let mut success = vec![TxnOp::put(node_key.as_str(), text, with_lease())];
        for subnet in lease.subnets() {
            success.push(TxnOp::put(subnet_key(&subnet).as_str(), lease.node.as_str(), with_lease()));
        }
        if let Some(old) = expected {
            for gone in old.lease.subnets().filter(|s| !lease.subnets().any(|n| n == *s)) {
                success.push(TxnOp::delete(subnet_key(&gone), None));
            }
        }
        let txn = Txn::new().when(compare).and_then(success);
        let reply = self.retry("write the lease", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        if reply.succeeded() {
            if let Some(old) = expected.filter(|e| e.liveness != 0 && e.liveness != id) {
                // The replaced lease's keys moved to the new one: the old keeps nothing alive.
                let old = old.liveness;
                let _ =
                    self.retry("revoke the replaced lease", |mut c| async move { c.lease_revoke(old).await });
            }
            let version = reply.header().map_or(0, |h| h.revision() as u64);
            let created = expected.map_or(version, |e| e.created);
            return Ok(Some(StoredLease { lease: lease.clone(), version, created, liveness: id }));
        }
        // Lost: the etcd lease holds nothing; it would expire anyway.
        let _ = self.retry("revoke an unused lease", |mut c| async move { c.lease_revoke(id).await });
        Ok(None)
    }

    fn keep_alive(&self, held: &StoredLease) -> Result<Option<Duration>, StoreError> {
        let mut slot = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|(id, _, _)| *id != held.liveness) {
            let mut client = self.client.clone();
            match self.call("open a keepalive stream", client.lease_keep_alive(held.liveness)) {
                Ok((keeper, stream)) => *slot = Some((held.liveness, keeper, stream)),
                // The client asks once on opening, and says so when the lease is gone.
                Err(StoreError::Unavailable(e)) if e.contains("lease not found") => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let (_, keeper, stream) = slot.as_mut().expect("just opened");
        let answer = self.call("keep the lease alive", async {
            keeper.keep_alive().await?;
            stream.message().await
        });
        match answer {
            Ok(Some(reply)) if reply.ttl() > 0 => Ok(Some(Duration::from_secs(reply.ttl() as u64))),
            Ok(Some(_)) => Ok(None),
            Ok(None) => {
                *slot = None;
                Err(unavailable("the keepalive stream ended"))
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    fn delete_lease(&self, node: &str) -> Result<(), StoreError> {
        let key = lease_key(node);
        let reply = self.retry("read the lease", |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        })?;
        let Some(kv) = reply.kvs().first() else { return Ok(()) };
        let mut success = vec![TxnOp::delete(key.as_str(), None)];
        if let Some(Ok(held)) = stored(kv) {
            for subnet in held.lease.subnets() {
                success.push(TxnOp::delete(subnet_key(&subnet), None));
            }
        }
        let unchanged = Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision());
        let txn = Txn::new().when([unchanged]).and_then(success);
        self.retry("delete the lease", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        if kv.lease() != 0 {
            let id = kv.lease();
            let _ = self.retry("revoke the lease", |mut c| async move { c.lease_revoke(id).await });
        }
        Ok(())
    }

    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut client = self.client.clone();
        self.call(
            "compact",
            client.compact(revision as i64, Some(CompactionOptions::new().with_physical())),
        )?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// The sync side of a watch: what the stream's task forwards.
struct EtcdWatch {
    receiver: mpsc::Receiver<Result<WatchBatch, StoreError>>,
    task: tokio::task::AbortHandle,
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch for EtcdWatch {
    fn next(&mut self, timeout: Duration) -> Result<Option<WatchBatch>, StoreError> {
        match self.receiver.recv_timeout(timeout) {
            Ok(message) => message.map(Some),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(unavailable("the watch ended")),
        }
    }
}

/// Reads a watch stream and forwards what it says, until it ends (the error says why) or
/// the receiver is gone.
async fn forward(mut stream: etcd_client::WatchStream, sender: mpsc::Sender<Result<WatchBatch, StoreError>>) {
    let ended = loop {
        // (No progress is asked for: etcd 3.4.23 answers a request with the current revision
        // even to a watcher that has not caught up, etcd#15220. Its own periodic
        // notifications go only to watchers that have.)
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => break unavailable("watch: the stream ended"),
            Err(e) => break unavailable(format!("watch: {e}")),
        };
        if response.canceled() {
            break match response.compact_revision() {
                0 => unavailable(format!("watch cancelled by etcd: {}", response.cancel_reason())),
                compacted => StoreError::Compacted(compacted as u64),
            };
        }
        if response.created() {
            // Only says the watch exists; its header's revision is not yet what it has sent.
            continue;
        }
        let mut batch = WatchBatch::default();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            batch.revision = batch.revision.max(kv.mod_revision() as u64);
            let deleted = event.event_type() == EventType::Delete;
            if kv.key() == NETWORK_KEY.as_bytes() {
                batch.events.push(match deleted {
                    true => Event::Network(None),
                    false => match network(kv.value()) {
                        Ok(config) => Event::Network(Some(config)),
                        Err(e) => {
                            // Nothing to plan from: as if there were none, until it is mended.
                            tracing::error!("{e}");
                            Event::Network(None)
                        }
                    },
                });
            } else if let Some(node) = kv.key().strip_prefix(LEASES_PREFIX.as_bytes()) {
                batch.events.push(match (deleted, stored(kv)) {
                    (true, _) => Event::LeaseDeleted(String::from_utf8_lossy(node).into_owned()),
                    (false, Some(Ok(lease))) => Event::LeasePut(lease),
                    (false, Some(Err(invalid))) => Event::LeaseInvalid(invalid),
                    (false, None) => continue,
                });
            }
        }
        if response.events().is_empty() {
            // A progress notification: nothing under /weft/ changed up to here.
            batch.revision = response.header().map_or(0, |h| h.revision() as u64);
        }
        if sender.send(Ok(batch)).is_err() {
            return;
        }
    };
    let _ = sender.send(Err(ended));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = EtcdUrl::parse("etcd://10.0.0.1:2379,10.0.0.2:2379?ca=/ca.pem").unwrap();
        assert_eq!(url.endpoints, vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(url.tls.unwrap().ca.unwrap(), std::path::PathBuf::from("/ca.pem"));
        assert_eq!(EtcdUrl::parse("etcd://h:1").unwrap().tls, None);
        let auth = EtcdUrl::parse("etcd://h:1?user=weft&password-file=/etc/weft/pw").unwrap().auth.unwrap();
        assert_eq!((auth.user.as_str(), auth.password_file.to_str()), ("weft", Some("/etc/weft/pw")));
        let half = EtcdUrl::parse("etcd://h:1?password-file=/pw").unwrap_err().to_string();
        assert!(half.contains("a password-file its user"), "{half}");
        for bad in ["etcd://", "etcd://host", "etcd://h:1?user=x", "etcd://h:1,"] {
            assert!(EtcdUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
