//! The store is not trusted blindly: leases another writer put there (a bug, an old agent,
//! someone with access to the store) are checked before anything is planned from them. Each
//! case on both stores, written past the store's own checks as such a writer would: the bad
//! lease is named with its reason, never programmed, logged once; the good one beside it
//! keeps working. No root needed (the kernel is the in-memory seam).

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use weft_agent::node::Uplink;
use weft_agent::{Agent, AgentConfig, RecordingKernel, Trigger};
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, NetworkConfig};
use weft_core::status::Role;
use weft_store::Store;

/// Writes a lease key's value as another writer would: no checks, no compare-and-swap.
trait RawWriter {
    fn put(&self, node: &str, value: &str);
    fn delete(&self, node: &str);
}

struct RawSqlite(std::path::PathBuf);

impl RawWriter for RawSqlite {
    fn put(&self, node: &str, value: &str) {
        let connection = rusqlite::Connection::open(&self.0).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        let tx = connection.unchecked_transaction().unwrap();
        tx.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'", []).unwrap();
        let revision: i64 = tx
            .query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'revision'", [], |r| r.get(0))
            .unwrap();
        // the subnet column is unique: a key of its own, whatever the value claims
        tx.execute(
            "INSERT OR REPLACE INTO leases (node, subnet, lease, version, created, token, ttl, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?4, ?4, 600, ?5)",
            rusqlite::params![node, format!("raw:{node}"), value, revision, weft_core::now() as i64 + 600],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO changes (revision, key, value, created) VALUES (?1, ?2, ?3, ?1)",
            rusqlite::params![revision, format!("lease/{node}"), value],
        )
        .unwrap();
        tx.commit().unwrap();
    }

    fn delete(&self, node: &str) {
        weft_store::sqlite::SqliteStore::open(&self.0).unwrap().delete_lease(node).unwrap();
    }
}

struct RawEtcd {
    runtime: tokio::runtime::Runtime,
    client: etcd_client::Client,
}

impl RawEtcd {
    fn new(endpoint: &str) -> RawEtcd {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let client =
            runtime.block_on(etcd_client::Client::connect([format!("http://{endpoint}")], None)).unwrap();
        RawEtcd { runtime, client }
    }
}

impl RawWriter for RawEtcd {
    fn put(&self, node: &str, value: &str) {
        let mut client = self.client.clone();
        self.runtime.block_on(client.put(format!("/weft/leases/{node}"), value, None)).unwrap();
    }

    fn delete(&self, node: &str) {
        let mut client = self.client.clone();
        self.runtime.block_on(client.delete(format!("/weft/leases/{node}"), None)).unwrap();
    }
}

fn lease(node: &str, third: u8) -> Lease {
    Lease {
        node: node.into(),
        subnet: format!("10.244.{third}.0/24").parse().unwrap(),
        public_ip: format!("198.51.100.{third}").parse().unwrap(),
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac(node)),
        subnet6: None,
        other_public_ip: None,
    }
}

fn json(lease: &Lease, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value = serde_json::to_value(lease).unwrap();
    edit(&mut value);
    value.to_string()
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

/// Log lines, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every case, on the store `open` gives handles on; `raw` writes past its checks.
fn every_case(open: &dyn Fn() -> Arc<dyn Store>, raw: &dyn RawWriter) {
    let admin = open();
    let config =
        NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
    admin.init_network(&config, true).unwrap();
    let good = lease("good-1", 1);
    admin.put_lease(&good, None, Duration::from_secs(600)).unwrap().unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "outside",
            json(&lease("outside", 2), |v| v["subnet"] = "10.99.2.0/24".into()),
            "outside the cluster CIDR",
        ),
        ("too-big", json(&lease("too-big", 3), |v| v["subnet"] = "10.244.16.0/20".into()), "is not a /24"),
        (
            "in-pods",
            json(&lease("in-pods", 4), |v| v["publicIp"] = "10.244.200.1".into()),
            "inside the pod network",
        ),
        (
            "multicast",
            json(&lease("multicast", 5), |v| v["vtepMac"] = "01:00:5e:00:00:05".into()),
            "VTEP MAC",
        ),
        ("Bad_Name", json(&lease("Bad_Name", 6), |_| {}), "not a DNS name"),
        ("ipip", json(&lease("ipip", 7), |v| v["backend"] = "ipip".into()), "not a lease"),
        ("garbage", "{not json".to_string(), "not a lease"),
        ("stranger", json(&lease("someone-else", 8), |_| {}), "not a lease"),
        ("twin", json(&lease("twin", 1), |_| {}), "overlaps the lease of good-1, which is older"),
    ];
    for (node, value, _) in &cases {
        raw.put(node, value);
    }
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer({
        let logs = logs.clone();
        move || logs.clone()
    });
    tracing::subscriber::with_default(subscriber.finish(), || {
        let config = AgentConfig {
            role: Role::Node,
            node: "n1".into(),
            state_dir: None,
            lease_ttl: Duration::from_secs(60),
            resync: Duration::from_secs(3600),
            masquerade: false,
            overlay_filter: true,
            public_ip: None,
            local_asn: None,
            cni_conflist: None,
        };
        let mut agent = Agent::new(
            config,
            open(),
            Box::new(RecordingKernel::new(uplink())),
            uplink(),
            None,
            Default::default(),
        );
        let stop = AtomicBool::new(false);
        let start = agent.step(&stop);
        assert!(start.error.is_none(), "{start:?}");
        for (node, _, says) in &cases {
            let why = agent.rejected().get(*node).map(|w| w.to_string()).unwrap_or_default();
            assert!(why.contains(says), "{node}: {why:?} should say {says:?}");
        }
        let plan = agent.plan().unwrap();
        assert_eq!(plan.peers().keys().collect::<Vec<_>>(), vec!["good-1"], "only the good lease is planned");
        let routes = agent.kernel().observe(Some("weft.1")).unwrap().routes;
        assert_eq!(
            routes.iter().map(|r| r.destination.to_string()).collect::<Vec<_>>(),
            vec!["10.244.1.0/24"]
        );
        let status = agent.status(true);
        assert_eq!(status.rejected.len(), cases.len(), "named in the status: {:?}", status.rejected);
        // Passes go by: each bad lease was said once.
        for _ in 0..3 {
            agent.pass(Trigger::Resync, Vec::new());
        }
        let said = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        for (node, _, _) in &cases {
            assert_eq!(said.matches(&format!("ignoring the lease of {node}:")).count(), 1, "{node}: {said}");
        }
        // The older claim goes: the twin is believed, and programmed.
        raw.delete("good-1");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.plan().is_some_and(|p| p.peers().contains_key("twin")) {
            assert!(Instant::now() < deadline, "the twin never came in: {:?}", agent.rejected());
            agent.step(&stop);
        }
        assert!(!agent.rejected().contains_key("twin"));
        let routes = agent.kernel().observe(Some("weft.1")).unwrap().routes;
        assert_eq!(routes.len(), 1, "the twin's route, in place of good-1's: {routes:?}");
        // A bad lease mended by its writer is believed at once.
        raw.put("outside", &json(&lease("outside", 2), |_| {}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while agent.rejected().contains_key("outside") {
            assert!(Instant::now() < deadline, "the mended lease was not believed");
            agent.step(&stop);
        }
        assert!(agent.plan().unwrap().peers().contains_key("outside"));
    });
}

#[test]
fn on_sqlite_bad_leases_are_named_and_never_programmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let open = || -> Arc<dyn Store> { Arc::new(weft_store::sqlite::SqliteStore::open(&path).unwrap()) };
    open(); // the schema
    every_case(&open, &RawSqlite(path.clone()));
}

#[test]
fn on_etcd_bad_leases_are_named_and_never_programmed() {
    let server = EtcdServer::start();
    let url = server.url();
    let open = || -> Arc<dyn Store> { Arc::from(weft_store::open(&url).unwrap()) };
    every_case(&open, &RawEtcd::new(&server.endpoint()));
}
