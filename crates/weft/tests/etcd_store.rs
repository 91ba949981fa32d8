//! The etcd store against a real etcd 3.4 server on loopback: everything the SQLite store
//! does (the shared conformance scenarios), plus what only a networked store meets: the
//! server going away and coming back (an error, not a hang; the watch resumed from the last
//! revision seen, without listing again; the lease still kept alive), and TLS.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use weft_core::network::NetworkConfig;
use weft_store::{Delta, Informer, LeaseRequest, StoreError};

fn request(node: &str) -> LeaseRequest<'_> {
    LeaseRequest {
        node,
        public_ip: "192.0.2.11".parse().unwrap(),
        other_public_ip: None,
        ttl: Duration::from_secs(60),
        previous: Vec::new(),
    }
}

/// Polls until `want` deltas came (or 20 s passed), riding over errors as the agent does.
fn deltas(informer: &mut Informer, want: usize) -> Vec<Delta> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    while all.len() < want && Instant::now() < deadline {
        match informer.poll(Duration::from_millis(200)) {
            Ok(more) => all.extend(more),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    all
}

#[test]
fn etcd_store_conforms() {
    let server = EtcdServer::start();
    let url = server.url();
    weft_store::conformance::run_all(&|| weft_store::open(&url).unwrap());
}

#[test]
fn an_absent_server_is_an_error_not_a_hang_and_is_reached_again() {
    let mut server = EtcdServer::start();
    let store = weft_store::open(&server.url()).unwrap();
    assert!(store.network().unwrap().is_none());
    server.pause();
    let started = Instant::now();
    assert!(matches!(store.list(), Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.list().is_err() {
        assert!(Instant::now() < deadline, "the store was never reached again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(store.list().unwrap().leases.is_empty());
}

#[test]
fn a_watch_lost_with_the_server_resumes_from_its_revision_without_listing_again() {
    let mut server = EtcdServer::start();
    let url = server.url();
    let writer = weft_store::open(&url).unwrap();
    writer.init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), false).unwrap();
    let held = weft_store::acquire(writer.as_ref(), &request("n1")).unwrap();
    let mut informer = Informer::new(Arc::from(weft_store::open(&url).unwrap()));
    assert_eq!(deltas(&mut informer, 2).len(), 2, "the network and n1, listed");
    assert!(informer.poll(Duration::from_millis(300)).unwrap().is_empty(), "watching, quietly");
    server.pause();
    let deadline = Instant::now() + Duration::from_secs(30);
    while informer.poll(Duration::from_millis(200)).is_ok() {
        assert!(Instant::now() < deadline, "the watch never noticed the server was gone");
    }
    server.resume();
    // A change made while the informer is away, and one after.
    let n2 = weft_store::acquire(weft_store::open(&url).unwrap().as_ref(), &request("n2")).unwrap();
    let seen = deltas(&mut informer, 1);
    assert_eq!(seen, vec![Delta::Lease { node: "n2".into(), before: None, after: Some(n2.lease) }]);
    assert_eq!(informer.stats().lists, 1, "resumed, not listed again");
    assert!(informer.stats().resumes >= 1);
    // The lease lives in etcd's data: still kept alive after the restart.
    assert_eq!(writer.keep_alive(&held).unwrap(), Some(Duration::from_secs(60)));
}

#[test]
fn tls_with_a_client_certificate() {
    let server = EtcdServer::start_tls();
    let store = weft_store::open(&server.tls_url()).unwrap();
    store.init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), false).unwrap();
    let held = weft_store::acquire(store.as_ref(), &request("n1")).unwrap();
    assert_eq!(store.keep_alive(&held).unwrap(), Some(Duration::from_secs(60)));
    // the same server refuses a client without a certificate, and plain HTTP
    let tls = server.tls_dir().unwrap();
    let no_cert =
        weft_store::open(&format!("etcd://{}?ca={}", server.endpoint(), tls.join("ca.crt").display()));
    assert!(no_cert.and_then(|s| s.list()).is_err());
    let plain = weft_store::open(&server.url());
    assert!(plain.and_then(|s| s.list()).is_err());
}

#[test]
fn a_quiet_watch_is_told_it_is_current() {
    // The tests' server sends progress notifications every 5 s.
    let server = EtcdServer::start();
    let url = server.url();
    weft_store::open(&url)
        .unwrap()
        .init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), false)
        .unwrap();
    let mut informer = Informer::new(Arc::from(weft_store::open(&url).unwrap()));
    informer.poll(Duration::ZERO).unwrap();
    assert!(informer.poll(Duration::from_millis(200)).unwrap().is_empty());
    // Someone else's write to the same etcd, outside weft's keys: no event for weft.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut other = runtime
        .block_on(etcd_client::Client::connect([format!("http://{}", server.endpoint())], None))
        .unwrap();
    let written =
        runtime.block_on(other.put("/someone-else/key", "value", None)).unwrap().header().unwrap().revision()
            as u64;
    assert!(written > informer.cluster().revision);
    let deadline = Instant::now() + Duration::from_secs(20);
    while informer.cluster().revision < written {
        assert!(
            Instant::now() < deadline,
            "no progress notification: still at {}",
            informer.cluster().revision
        );
        assert!(informer.poll(Duration::from_millis(500)).unwrap().is_empty(), "no weft change happened");
    }
    assert!(informer.stats().progress >= 1);
    assert_eq!(informer.stats().events, 0);
}

/// etcd with authentication on: root, and a user `weft` whose role may only read and write
/// the prefix `/weft/`. Returns the URLs of (weft, weft with a wrong password, a user whose
/// role may only touch `/other/`), their password files in `dir`.
fn least_privilege(server: &EtcdServer, dir: &std::path::Path) -> (String, String, String) {
    use etcd_client::{Permission, PermissionType};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client =
            etcd_client::Client::connect([format!("http://{}", server.endpoint())], None).await.unwrap();
        client.user_add("root", "root-secret", None).await.unwrap();
        client.user_grant_role("root", "root").await.unwrap();
        for (user, prefix) in [("weft", "/weft/"), ("stranger", "/other/")] {
            client.role_add(user).await.unwrap();
            let permission = Permission::new(PermissionType::Readwrite, prefix).with_prefix();
            client.role_grant_permission(user, permission).await.unwrap();
            client.user_add(user, format!("{user}-secret"), None).await.unwrap();
            client.user_grant_role(user, user).await.unwrap();
        }
        client.auth_enable().await.unwrap();
    });
    let url = |user: &str, password: &str| {
        let file = dir.join(format!("{user}-password-{}", password.len()));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        format!("etcd://{}?user={user}&password-file={}", server.endpoint(), file.display())
    };
    (url("weft", "weft-secret"), url("weft", "guess"), url("stranger", "stranger-secret"))
}

#[test]
fn with_etcd_authentication_a_user_who_may_touch_only_weft_keys_does_everything() {
    // Tokens that lapse after 2 s unused: the store must get a new one by itself.
    let server = EtcdServer::start_with(&["--auth-token-ttl", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let (weft, wrong, stranger) = least_privilege(&server, dir.path());

    // Everything an agent and `weft network init` do, as the least-privileged user: the
    // shared scenarios (leases, compare-and-swap, watches, keepalives, the informer).
    weft_store::conformance::run_all(&|| weft_store::open(&weft).unwrap());

    // An agent idle for longer than its token lives: the next requests get a new token.
    let store = weft_store::open(&weft).unwrap();
    store.list().unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    store.list().expect("a list after the token lapsed");
    store.network().expect("a read after the token lapsed");

    // A wrong password: a clear refusal, before anything is read or written.
    let error = weft_store::open(&wrong).err().expect("refused").to_string();
    assert!(error.contains("refused user weft: wrong user or password"), "{error}");
    assert!(!error.contains("guess"), "the password is never said: {error}");
    let output = std::process::Command::new(support::WEFT)
        .args(["network", "init", "--store", &wrong, "--cidr", "10.244.0.0/16"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.contains("wrong user or password"), "{said}");

    // A user whose role does not cover /weft/: told what to grant.
    let store = weft_store::open(&stranger).unwrap();
    let error = store.list().expect_err("denied").to_string();
    assert!(error.contains("permission denied") && error.contains("/weft/"), "{error}");
    // A watch etcd cancels for a reason other than compaction (here: not permitted): an error
    // that says why, of the kind the informer answers by watching again (Unavailable), not
    // by listing (Compacted).
    let mut watch = store.watch(1).expect("a watch is asked for");
    let error = watch.next(Duration::from_secs(10)).expect_err("cancelled by etcd");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let error = error.to_string();
    assert!(error.contains("cancelled by etcd") && error.contains("permission denied"), "{error}");

    // No user at all, where etcd asks for one.
    let error = weft_store::open(&server.url()).and_then(|s| s.list()).expect_err("refused").to_string();
    assert!(error.contains("user=NAME&password-file=FILE"), "{error}");
}

/// etcd at an IPv6 address (`etcd://[::1]:PORT`, as an IPv6-only cluster has it): the URL's
/// bracketed host reaches it, and dual leases are claimed whole there too.
#[test]
fn an_etcd_at_an_ipv6_address_serves_dual_leases() {
    let server = EtcdServer::start_on_ipv6();
    let url = server.url();
    assert!(url.starts_with("etcd://[::1]:"), "{url}");
    let open = || weft_store::open(&url).unwrap();
    weft_store::conformance::thirty_agents_joining_a_dual_network_at_once_get_whole_leases(&open);
    weft_store::conformance::a_dual_lease_is_claimed_whole_or_not_at_all(&open);
}
