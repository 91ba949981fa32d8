//! What every store must do, as scenarios any store's tests run (the SQLite store's unit
//! tests, the etcd store's tests against a real server). Each takes a way to open a fresh
//! handle on one and the same, empty, store; handles stand for separate agents.

use crate::{acquire, LeaseRequest, LeaseStore, StoreError};
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::network::{Backend, NetworkConfig};

pub type Open<'a> = &'a (dyn Fn() -> Box<dyn LeaseStore> + Sync);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn request(node: &str, ttl: u64) -> LeaseRequest<'_> {
    let last = node.bytes().map(u32::from).sum::<u32>() % 200 + 1;
    LeaseRequest {
        node,
        public_ip: format!("192.0.2.{last}").parse().unwrap(),
        ttl: Duration::from_secs(ttl),
        previous: None,
    }
}

/// Runs every scenario, in an order that each leaves the store as the next expects.
pub fn run_all(open: Open) {
    no_lease_before_the_network_exists(open);
    thirty_agents_joining_at_once_get_thirty_subnets(open);
    a_config_in_use_is_not_changed_unless_forced(open);
    a_lost_compare_and_swap_writes_nothing(open);
    watchers_see_writes_from_other_handles(open);
    a_restarting_agent_keeps_its_subnet_and_a_dead_ones_is_freed(open);
}

fn clear(store: &dyn LeaseStore) {
    for lease in store.leases(0).unwrap().0 {
        store.delete_lease(&lease.node).unwrap();
    }
}

pub fn no_lease_before_the_network_exists(open: Open) {
    assert!(matches!(acquire(open().as_ref(), &request("n1", 30), now()), Err(StoreError::NoNetwork)));
}

pub fn thirty_agents_joining_at_once_get_thirty_subnets(open: Open) {
    open().init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), true, now()).unwrap();
    let subnets: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                scope.spawn(move || {
                    acquire(open().as_ref(), &request(&format!("node-{i}"), 60), now()).unwrap().subnet
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<_> = subnets.iter().collect();
    assert_eq!(distinct.len(), 30, "{subnets:?}");
    assert_eq!(open().leases(now()).unwrap().0.len(), 30);
    clear(open().as_ref());
}

pub fn a_config_in_use_is_not_changed_unless_forced(open: Open) {
    let store = open();
    let network = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
    store.init_network(&network, true, now()).unwrap();
    store.init_network(&network, false, now()).unwrap(); // the same again: fine
    acquire(store.as_ref(), &request("n1", 60), now()).unwrap();
    let vxlan = NetworkConfig { backend: Backend::Vxlan, ..network.clone() };
    assert!(matches!(store.init_network(&vxlan, false, now()), Err(StoreError::NetworkInUse { nodes: 1 })));
    store.init_network(&vxlan, true, now()).unwrap();
    assert_eq!(store.network().unwrap(), Some(vxlan));
    clear(store.as_ref());
    store.init_network(&network, false, now()).unwrap();
}

pub fn a_lost_compare_and_swap_writes_nothing(open: Open) {
    let store = open();
    let lease = acquire(store.as_ref(), &request("n1", 60), now()).unwrap();
    let mut stale = lease.clone();
    stale.expires_at -= 1;
    let mut update = lease.clone();
    update.public_ip = "192.0.2.99".parse().unwrap();
    assert!(!store.put_lease(&update, Some(&stale), now()).unwrap(), "expected value differs");
    assert!(!store.put_lease(&update, None, now()).unwrap(), "the node holds a lease already");
    let mut thief = lease.clone();
    thief.node = "n2".into();
    assert!(!store.put_lease(&thief, None, now()).unwrap(), "the subnet is taken");
    assert_eq!(store.leases(now()).unwrap().0, vec![lease]);
    clear(store.as_ref());
}

pub fn watchers_see_writes_from_other_handles(open: Open) {
    let watcher = open();
    let (_, since) = watcher.leases(now()).unwrap();
    assert_eq!(watcher.wait_for_change(since, Duration::from_millis(50)).unwrap(), since, "nothing happened");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            acquire(open().as_ref(), &request("n1", 60), now()).unwrap();
        });
        let started = Instant::now();
        assert_ne!(watcher.wait_for_change(since, Duration::from_secs(10)).unwrap(), since);
        assert!(started.elapsed() < Duration::from_secs(5));
    });
    watcher.delete_lease("n1").unwrap();
    assert!(watcher.leases(now()).unwrap().0.is_empty());
}

pub fn a_restarting_agent_keeps_its_subnet_and_a_dead_ones_is_freed(open: Open) {
    let store = open();
    // two /17s: room for two nodes
    let small = NetworkConfig { subnet_len: 17, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
    store.init_network(&small, true, now()).unwrap();
    let first = acquire(store.as_ref(), &request("n1", 2), now()).unwrap();
    let renewed = acquire(store.as_ref(), &request("n1", 2), now()).unwrap();
    assert_eq!(renewed.subnet, first.subnet, "a renewal keeps the subnet");
    acquire(store.as_ref(), &request("n2", 60), now()).unwrap();
    assert!(matches!(acquire(store.as_ref(), &request("n3", 60), now()), Err(StoreError::Exhausted(2))));
    // n1 stops renewing; once its lease expires n3 gets its subnet
    let deadline = Instant::now() + Duration::from_secs(15);
    let taken = loop {
        match acquire(store.as_ref(), &request("n3", 60), now()) {
            Ok(lease) => break lease,
            Err(StoreError::Exhausted(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250))
            }
            Err(e) => panic!("n3 never got n1's subnet: {e}"),
        }
    };
    assert_eq!(taken.subnet, first.subnet);
    let nodes: Vec<String> = store.leases(now()).unwrap().0.into_iter().map(|l| l.node).collect();
    assert_eq!(nodes, vec!["n2", "n3"]);
    clear(store.as_ref());
}
