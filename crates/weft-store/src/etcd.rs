//! etcd (v3 API, through its JSON gateway: plain HTTP requests, no gRPC stack).
//!
//! Keys: `/weft/network` holds the network config; `/weft/leases/<node>` a node's lease;
//! `/weft/subnets/<subnet>` the name of the node holding the subnet, so that one
//! transaction can check both "this node's lease is what I think" and "nobody else holds
//! this subnet". Both keys of a lease are bound to an etcd lease with the lease's TTL, so
//! etcd itself removes a dead node's lease when it stops renewing. Watching polls the
//! store's revision; a change means a fresh listing, so no event can be missed, and a
//! compaction means nothing to a watcher that never replays history.

use crate::{LeaseStore, Revision, StoreError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use weft_core::lease::Lease;
use weft_core::network::NetworkConfig;

const NETWORK_KEY: &str = "/weft/network";
const LEASES_PREFIX: &str = "/weft/leases/";
const POLL: Duration = Duration::from_millis(20);

pub struct EtcdStore {
    endpoints: Vec<String>,
    agent: ureq::Agent,
}

/// TLS to etcd: the CA that signed its certificate, and this client's certificate and key
/// when etcd asks for one (`--client-cert-auth`).
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| StoreError::Tls(format!("{}: {e}", path.display())))
}

fn tls_config(tls: &EtcdTls) -> Result<ureq::tls::TlsConfig, StoreError> {
    use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
    let bad = |what: &std::path::Path, e: ureq::Error| StoreError::Tls(format!("{}: {e}", what.display()));
    let mut builder = TlsConfig::builder();
    if let Some(ca) = &tls.ca {
        let pem = read_pem(ca)?;
        let roots: Vec<Certificate<'static>> = parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(cert)) => Some(Ok(cert)),
                Ok(_) => None,
                Err(e) => Some(Err(bad(ca, e))),
            })
            .collect::<Result<_, _>>()?;
        builder = builder.root_certs(RootCerts::Specific(std::sync::Arc::new(roots)));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = vec![Certificate::from_pem(&read_pem(cert)?).map_err(|e| bad(cert, e))?];
            let key_pem = read_pem(key)?;
            let key_der = PrivateKey::from_pem(&key_pem).map_err(|e| bad(key, e))?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key_der)));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Tls(
                "a client certificate needs its key, and a key its certificate".into(),
            ))
        }
    }
    Ok(builder.build())
}

fn subnet_key(subnet: &ipnet::IpNet) -> String {
    format!("/weft/subnets/{}", subnet.to_string().replace('/', "_"))
}

fn b64(text: &str) -> String {
    B64.encode(text)
}

/// The end of a prefix range: the prefix with its last byte incremented.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    *bytes.last_mut().expect("non-empty prefix") += 1;
    B64.encode(bytes)
}

fn number(value: &Value) -> u64 {
    // The gateway writes 64-bit numbers as strings, and leaves out zeros.
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(what.to_string())
}

impl EtcdStore {
    /// `endpoints`: `host:port` of each member, tried in turn. With `tls`, HTTPS.
    pub fn new(endpoints: &[&str], tls: Option<&EtcdTls>) -> Result<EtcdStore, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Url("etcd://".into()));
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false);
        if let Some(tls) = tls {
            config = config.tls_config(tls_config(tls)?);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(EtcdStore {
            endpoints: endpoints.iter().map(|e| format!("{scheme}://{e}")).collect(),
            agent: config.build().into(),
        })
    }

    /// One gateway call, trying each member until one answers.
    fn call(&self, path: &str, body: Value) -> Result<Value, StoreError> {
        let mut last_error = String::new();
        for endpoint in &self.endpoints {
            // A member that does not answer, answers 5xx (no leader) or garbles its answer:
            // the next one is asked.
            match self.agent.post(&format!("{endpoint}{path}")).send_json(&body) {
                Ok(mut response) => {
                    let status = response.status();
                    match response.body_mut().read_json::<Value>() {
                        Ok(value) if status.is_success() => return Ok(value),
                        Ok(value) if status.is_client_error() => {
                            return Err(unavailable(format!("{path}: {status}: {value}")))
                        }
                        Ok(value) => last_error = format!("{endpoint}{path}: {status}: {value}"),
                        Err(e) => last_error = format!("{endpoint}{path}: {status}: {e}"),
                    }
                }
                Err(e) => last_error = format!("{endpoint}: {e}"),
            }
        }
        Err(unavailable(last_error))
    }

    fn get(&self, key: &str) -> Result<(Option<String>, Revision), StoreError> {
        let reply = self.call("/v3/kv/range", json!({ "key": b64(key) }))?;
        let revision = number(&reply["header"]["revision"]);
        let value = reply["kvs"]
            .as_array()
            .and_then(|kvs| kvs.first())
            .and_then(|kv| kv["value"].as_str())
            .map(|v| B64.decode(v).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        Ok((value, revision))
    }

    /// A mark that changes whenever anything under `/weft/` does, and only then: the newest
    /// key's mod revision and the number of keys (a deletion changes the count). etcd's own
    /// revision would also move with every unrelated write to a shared etcd. One small
    /// request: keys only, the newest first, one of them.
    fn mark(&self) -> Result<Revision, StoreError> {
        let reply = self.call(
            "/v3/kv/range",
            json!({
                "key": b64("/weft/"), "range_end": prefix_end("/weft/"), "keys_only": true,
                "limit": "1", "sort_order": "DESCEND", "sort_target": "MOD",
            }),
        )?;
        let newest =
            reply["kvs"].as_array().and_then(|kvs| kvs.first()).map_or(0, |kv| number(&kv["mod_revision"]));
        Ok((newest << 20) | (number(&reply["count"]) & 0xf_ffff))
    }

    fn grant(&self, ttl: u64) -> Result<String, StoreError> {
        let reply = self.call("/v3/lease/grant", json!({ "TTL": ttl.max(1).to_string() }))?;
        reply["ID"].as_str().map(str::to_string).ok_or_else(|| unavailable(format!("lease grant: {reply}")))
    }

    fn txn(&self, compare: Vec<Value>, success: Vec<Value>) -> Result<bool, StoreError> {
        let reply = self.call("/v3/kv/txn", json!({ "compare": compare, "success": success }))?;
        Ok(reply["succeeded"].as_bool().unwrap_or(false))
    }
}

/// The key holds exactly `value`, or (`None`) does not exist.
fn holds(key: &str, value: Option<&str>) -> Value {
    match value {
        Some(value) => json!({ "key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value) }),
        None => json!({ "key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" }),
    }
}

fn put(key: &str, value: &str, lease: Option<&str>) -> Value {
    let mut request = json!({ "key": b64(key), "value": b64(value) });
    if let Some(lease) = lease {
        request["lease"] = json!(lease);
    }
    json!({ "request_put": request })
}

fn delete(key: &str) -> Value {
    json!({ "request_delete_range": { "key": b64(key) } })
}

impl LeaseStore for EtcdStore {
    fn network(&self) -> Result<Option<NetworkConfig>, StoreError> {
        self.get(NETWORK_KEY)?
            .0
            .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    fn init_network(&self, config: &NetworkConfig, force: bool, now: u64) -> Result<(), StoreError> {
        config.validate()?;
        let (current, _) = self.get(NETWORK_KEY)?;
        let text = serde_json::to_string(config).expect("config serialises");
        if current.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let nodes = self.leases(now)?.0.len();
        if current.is_some() && nodes > 0 && !force {
            return Err(StoreError::NetworkInUse { nodes });
        }
        // Only if nobody changed it meanwhile.
        if self.txn(vec![holds(NETWORK_KEY, current.as_deref())], vec![put(NETWORK_KEY, &text, None)])? {
            Ok(())
        } else {
            Err(StoreError::Contended(1))
        }
    }

    fn leases(&self, _now: u64) -> Result<(Vec<Lease>, Revision), StoreError> {
        // The mark first: a change between the two reads shows as a change at the next wait.
        let revision = self.mark()?;
        let reply = self.call(
            "/v3/kv/range",
            json!({ "key": b64(LEASES_PREFIX), "range_end": prefix_end(LEASES_PREFIX) }),
        )?;
        let mut leases = Vec::new();
        for kv in reply["kvs"].as_array().into_iter().flatten() {
            let bytes = B64
                .decode(kv["value"].as_str().unwrap_or_default())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // etcd's own lease TTL decides what is alive: a key that is still there holds
            // its subnet, whatever this host's clock says of `expires_at`.
            leases.push(
                serde_json::from_slice::<Lease>(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
        }
        leases.sort_by(|a, b| a.node.cmp(&b.node));
        Ok((leases, revision))
    }

    fn put_lease(&self, lease: &Lease, expected: Option<&Lease>, now: u64) -> Result<bool, StoreError> {
        let node_key = format!("{LEASES_PREFIX}{}", lease.node);
        let subnet = subnet_key(&lease.subnet);
        let expected_text = expected.map(|e| serde_json::to_string(e).expect("lease serialises"));
        let keeps_subnet = expected.is_some_and(|e| e.subnet == lease.subnet);
        let mut compare = vec![holds(&node_key, expected_text.as_deref())];
        compare.push(holds(&subnet, keeps_subnet.then_some(lease.node.as_str())));
        let etcd_lease = self.grant(lease.expires_at.saturating_sub(now))?;
        let text = serde_json::to_string(lease).expect("lease serialises");
        let mut success =
            vec![put(&node_key, &text, Some(&etcd_lease)), put(&subnet, &lease.node, Some(&etcd_lease))];
        if let Some(old) = expected.filter(|e| e.subnet != lease.subnet) {
            success.push(delete(&subnet_key(&old.subnet)));
        }
        self.txn(compare, success)
    }

    fn delete_lease(&self, node: &str) -> Result<(), StoreError> {
        let node_key = format!("{LEASES_PREFIX}{node}");
        if let (Some(text), _) = self.get(&node_key)? {
            let lease: Lease = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.txn(
                vec![holds(&node_key, Some(&text))],
                vec![delete(&node_key), delete(&subnet_key(&lease.subnet))],
            )?;
        }
        Ok(())
    }

    fn wait_for_change(&self, since: Revision, timeout: Duration) -> Result<Revision, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mark = self.mark()?;
            if mark != since || Instant::now() >= deadline {
                return Ok(mark);
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }
}
