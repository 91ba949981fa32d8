//! The etcd store against a real etcd 3.4 server on loopback: everything the SQLite store
//! does (the shared conformance scenarios), plus surviving the server going away.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::etcd::EtcdServer;
use weft_store::StoreError;

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
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(store.network().unwrap().is_none());
    server.pause();
    let started = std::time::Instant::now();
    assert!(matches!(store.leases(now), Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.resume();
    assert!(store.leases(now).unwrap().0.is_empty());
}

#[test]
fn tls_with_a_client_certificate() {
    let server = EtcdServer::start_tls();
    let store = weft_store::open(&server.tls_url()).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    store
        .init_network(&weft_core::network::NetworkConfig::new("10.244.0.0/16".parse().unwrap()), false, now)
        .unwrap();
    let request = weft_store::LeaseRequest {
        node: "n1",
        public_ip: "192.0.2.11".parse().unwrap(),
        ttl: Duration::from_secs(60),
        previous: None,
    };
    weft_store::acquire(store.as_ref(), &request, now).unwrap();
    // the same server refuses a client without a certificate, and plain HTTP
    let tls = server.tls_dir().unwrap();
    let no_cert =
        weft_store::open(&format!("etcd://{}?ca={}", server.endpoint(), tls.join("ca.crt").display()))
            .unwrap();
    assert!(matches!(no_cert.leases(now), Err(StoreError::Unavailable(_))));
    let plain = weft_store::open(&server.url()).unwrap();
    assert!(plain.leases(now).is_err());
}
