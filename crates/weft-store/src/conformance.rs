//! What every store must do, as scenarios any store's tests run (the SQLite store's unit
//! tests, the etcd store's tests against a real server). Each takes a way to open a fresh
//! handle on one and the same, empty, store; handles stand for separate agents.

use crate::{acquire, Delta, Event, Informer, LeaseRequest, Store, StoreError, Watch, WatchBatch};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_core::network::{Backend, NetworkConfig};

pub type Open<'a> = &'a (dyn Fn() -> Box<dyn Store> + Sync);

fn request(node: &str, ttl: u64) -> LeaseRequest<'_> {
    let last = node.bytes().map(u32::from).sum::<u32>() % 200 + 1;
    LeaseRequest {
        node,
        public_ip: format!("192.0.2.{last}").parse().unwrap(),
        other_public_ip: Some(format!("2001:db8::{last:x}").parse().unwrap()),
        ttl: Duration::from_secs(ttl),
        previous: Vec::new(),
    }
}

/// Runs every scenario, in an order that each leaves the store as the next expects.
pub fn run_all(open: Open) {
    no_lease_before_the_network_exists(open);
    thirty_agents_joining_at_once_get_thirty_subnets(open);
    a_config_in_use_is_not_changed_unless_forced(open);
    a_lost_compare_and_swap_writes_nothing(open);
    a_watch_delivers_every_change_after_its_revision_in_order(open);
    keeping_a_lease_alive_and_restarting_write_nothing_a_watcher_sees(open);
    a_lease_not_kept_alive_vanishes_and_watchers_hear_it(open);
    the_informer_turns_changes_into_deltas_and_lists_once(open);
    after_a_compaction_the_informer_lists_once_more(open);
    a_restarting_agent_keeps_its_subnet_and_a_dead_ones_is_freed(open);
    thirty_agents_joining_a_dual_network_at_once_get_whole_leases(open);
    a_dual_lease_is_claimed_whole_or_not_at_all(open);
    a_single_family_lease_gains_its_ipv6_half_keeping_its_ipv4_subnet(open);
}

fn dual(v6: &str) -> NetworkConfig {
    NetworkConfig::with_cidrs(&["10.244.0.0/16".parse().unwrap(), v6.parse().unwrap()]).unwrap()
}

fn clear(store: &dyn Store) {
    for lease in store.list().unwrap().leases {
        store.delete_lease(&lease.lease.node).unwrap();
    }
}

/// Everything a watch delivers within `within` (stopping early once `enough` events came).
fn drain(watch: &mut dyn Watch, within: Duration, enough: usize) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut events = Vec::new();
    while Instant::now() < deadline && events.len() < enough {
        match watch.next(Duration::from_millis(100)) {
            Ok(Some(WatchBatch { events: more, .. })) => events.extend(more),
            Ok(None) => {}
            Err(e) => panic!("the watch failed: {e}"),
        }
    }
    events
}

pub fn no_lease_before_the_network_exists(open: Open) {
    assert!(matches!(acquire(open().as_ref(), &request("n1", 30)), Err(StoreError::NoNetwork)));
}

pub fn thirty_agents_joining_at_once_get_thirty_subnets(open: Open) {
    open().init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), true).unwrap();
    let subnets: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                scope.spawn(move || {
                    acquire(open().as_ref(), &request(&format!("node-{i}"), 60)).unwrap().lease.subnet
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<_> = subnets.iter().collect();
    assert_eq!(distinct.len(), 30, "{subnets:?}");
    assert_eq!(open().list().unwrap().leases.len(), 30);
    clear(open().as_ref());
}

pub fn a_config_in_use_is_not_changed_unless_forced(open: Open) {
    let store = open();
    let network = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
    store.init_network(&network, true).unwrap();
    store.init_network(&network, false).unwrap(); // the same again: fine
    acquire(store.as_ref(), &request("n1", 60)).unwrap();
    let vxlan = NetworkConfig { backend: Backend::Vxlan, ..network.clone() };
    assert!(matches!(store.init_network(&vxlan, false), Err(StoreError::NetworkInUse { nodes: 1 })));
    store.init_network(&vxlan, true).unwrap();
    assert_eq!(store.network().unwrap(), Some(vxlan));
    clear(store.as_ref());
    store.init_network(&network, false).unwrap();
}

pub fn a_lost_compare_and_swap_writes_nothing(open: Open) {
    let store = open();
    let ttl = Duration::from_secs(60);
    let held = acquire(store.as_ref(), &request("n1", 60)).unwrap();
    let mut stale = held.clone();
    stale.version -= 1;
    let mut update = held.lease.clone();
    update.public_ip = "192.0.2.99".parse().unwrap();
    assert!(store.put_lease(&update, Some(&stale), ttl).unwrap().is_none(), "expected version differs");
    assert!(store.put_lease(&update, None, ttl).unwrap().is_none(), "the node holds a lease already");
    let mut thief = held.lease.clone();
    thief.node = "n2".into();
    assert!(store.put_lease(&thief, None, ttl).unwrap().is_none(), "the subnet is taken");
    let snapshot = store.list().unwrap();
    assert_eq!(snapshot.leases, vec![held.clone()]);
    // the right expectation wins, and moves the version on
    let moved = store.put_lease(&update, Some(&held), ttl).unwrap().expect("a fresh expectation wins");
    assert!(moved.version > held.version);
    assert_eq!(store.list().unwrap().leases, vec![moved]);
    clear(store.as_ref());
}

pub fn a_watch_delivers_every_change_after_its_revision_in_order(open: Open) {
    let watcher = open();
    let writer = open();
    let since = watcher.list().unwrap().revision;
    // Made before the watch exists, after the listing: still delivered.
    let n1 = acquire(writer.as_ref(), &request("n1", 60)).unwrap();
    let mut watch = watcher.watch(since).unwrap();
    let n2 = acquire(writer.as_ref(), &request("n2", 60)).unwrap();
    writer.delete_lease("n1").unwrap();
    let events = drain(watch.as_mut(), Duration::from_secs(10), 3);
    assert_eq!(
        events,
        vec![Event::LeasePut(n1), Event::LeasePut(n2.clone()), Event::LeaseDeleted("n1".into())],
        "in the order they were made"
    );
    assert!(drain(watch.as_mut(), Duration::from_millis(300), 1).is_empty(), "and nothing else");
    // a watch from the latest revision sees only what comes after it
    let now = watcher.list().unwrap().revision;
    let mut later = watcher.watch(now).unwrap();
    writer.delete_lease("n2").unwrap();
    assert_eq!(drain(later.as_mut(), Duration::from_secs(10), 1), vec![Event::LeaseDeleted("n2".into())]);
}

pub fn keeping_a_lease_alive_and_restarting_write_nothing_a_watcher_sees(open: Open) {
    let agent = open();
    let held = acquire(agent.as_ref(), &request("n1", 60)).unwrap();
    let watcher = open();
    let since = watcher.list().unwrap().revision;
    let mut watch = watcher.watch(since).unwrap();
    for _ in 0..3 {
        assert_eq!(agent.keep_alive(&held).unwrap(), Some(Duration::from_secs(60)));
    }
    // A restarted agent (a new handle) finds its lease as it would write it: kept, not rewritten.
    let restarted = acquire(open().as_ref(), &request("n1", 60)).unwrap();
    assert_eq!(restarted, held, "same value, same version, same liveness");
    assert_eq!(drain(watch.as_mut(), Duration::from_millis(500), 1), vec![], "a watcher heard nothing");
    assert_eq!(watcher.list().unwrap().revision, since, "the revision did not move");
    // Another TTL than the lease lives by: written again.
    let longer = acquire(agent.as_ref(), &request("n1", 90)).unwrap();
    assert_eq!(longer.lease, held.lease);
    assert_ne!(longer.version, held.version);
    assert_eq!(agent.keep_alive(&held).unwrap(), None, "the replaced lease is gone");
    clear(agent.as_ref());
}

pub fn a_lease_not_kept_alive_vanishes_and_watchers_hear_it(open: Open) {
    let store = open();
    let since = store.list().unwrap().revision;
    let mut watch = store.watch(since).unwrap();
    let held = acquire(open().as_ref(), &request("n1", 2)).unwrap();
    let events = drain(watch.as_mut(), Duration::from_secs(20), 2);
    assert_eq!(events, vec![Event::LeasePut(held.clone()), Event::LeaseDeleted("n1".into())]);
    assert_eq!(store.keep_alive(&held).unwrap(), None, "an expired lease cannot be kept alive");
    assert!(store.list().unwrap().leases.is_empty());
}

pub fn the_informer_turns_changes_into_deltas_and_lists_once(open: Open) {
    let writer = open();
    let mut informer = Informer::new(Arc::from(open()));
    let first = informer.poll(Duration::ZERO).unwrap();
    assert!(matches!(&first[..], [Delta::Network { before: None, after: Some(_) }]), "{first:?}");
    let held = acquire(writer.as_ref(), &request("n1", 60)).unwrap();
    let mut moved = held.lease.clone();
    moved.public_ip = "192.0.2.77".parse().unwrap();
    writer.put_lease(&moved, Some(&held), Duration::from_secs(60)).unwrap().unwrap();
    writer.delete_lease("n1").unwrap();
    let mut deltas = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while deltas.len() < 3 && Instant::now() < deadline {
        deltas.extend(informer.poll(Duration::from_millis(100)).unwrap());
    }
    assert_eq!(
        deltas,
        vec![
            Delta::Lease { node: "n1".into(), before: None, after: Some(held.lease.clone()) },
            Delta::Lease { node: "n1".into(), before: Some(held.lease.clone()), after: Some(moved.clone()) },
            Delta::Lease { node: "n1".into(), before: Some(moved), after: None },
        ]
    );
    assert_eq!(informer.stats().lists, 1, "one listing, then only the changes");
    assert!(informer.cluster().leases.is_empty());
    assert_eq!(informer.cluster().revision, writer.list().unwrap().revision);
}

pub fn after_a_compaction_the_informer_lists_once_more(open: Open) {
    let writer = open();
    let mut informer = Informer::new(Arc::from(open()));
    informer.poll(Duration::ZERO).unwrap();
    // While the informer is not watching, history it would need is compacted away.
    let n1 = acquire(writer.as_ref(), &request("n1", 60)).unwrap();
    let n2 = acquire(writer.as_ref(), &request("n2", 60)).unwrap();
    writer.delete_lease("n1").unwrap();
    let revision = writer.list().unwrap().revision;
    writer.compact(revision).unwrap();
    let deltas = informer.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(deltas, vec![Delta::Lease { node: "n2".into(), before: None, after: Some(n2.lease.clone()) }]);
    assert_eq!(informer.stats().lists, 2, "listed again, once");
    assert!(informer.cluster().lease("n1").is_none() && n1.lease.node == "n1");
    // and watches on from there
    writer.delete_lease("n2").unwrap();
    let mut later = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while later.is_empty() && Instant::now() < deadline {
        later = informer.poll(Duration::from_millis(100)).unwrap();
    }
    assert_eq!(later, vec![Delta::Lease { node: "n2".into(), before: Some(n2.lease), after: None }]);
    assert_eq!(informer.stats().lists, 2);
}

pub fn a_restarting_agent_keeps_its_subnet_and_a_dead_ones_is_freed(open: Open) {
    let store = open();
    // two /17s: room for two nodes
    let small = NetworkConfig { subnet_len: 17, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
    store.init_network(&small, true).unwrap();
    let first = acquire(store.as_ref(), &request("n1", 2)).unwrap();
    let renewed = acquire(store.as_ref(), &request("n1", 2)).unwrap();
    assert_eq!(renewed.lease.subnet, first.lease.subnet, "a renewal keeps the subnet");
    acquire(store.as_ref(), &request("n2", 60)).unwrap();
    assert!(matches!(acquire(store.as_ref(), &request("n3", 60)), Err(StoreError::Exhausted(2))));
    // n1 stops renewing; once its lease expires n3 gets its subnet
    let deadline = Instant::now() + Duration::from_secs(20);
    let taken = loop {
        match acquire(store.as_ref(), &request("n3", 60)) {
            Ok(lease) => break lease,
            Err(StoreError::Exhausted(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250))
            }
            Err(e) => panic!("n3 never got n1's subnet: {e}"),
        }
    };
    assert_eq!(taken.lease.subnet, first.lease.subnet);
    let nodes: Vec<String> = store.list().unwrap().leases.into_iter().map(|l| l.lease.node).collect();
    assert_eq!(nodes, vec!["n2", "n3"]);
    clear(store.as_ref());
}

/// Thirty agents lease at once from a dual network whose IPv6 pool has room for 32: most
/// compare-and-swaps that lose, lose on the IPv6 subnet after the IPv4 one was free. Every
/// lease is whole, and no subnet of either family is given twice.
pub fn thirty_agents_joining_a_dual_network_at_once_get_whole_leases(open: Open) {
    open().init_network(&dual("fd00:10:244::/59"), true).unwrap();
    std::thread::scope(|scope| {
        for i in 0..30 {
            scope.spawn(move || acquire(open().as_ref(), &request(&format!("node-{i}"), 60)).unwrap());
        }
    });
    let leases = open().list().unwrap().leases;
    assert_eq!(leases.len(), 30);
    let v4: HashSet<_> = leases.iter().map(|l| l.lease.subnet).collect();
    let v6: HashSet<_> = leases.iter().filter_map(|l| l.lease.subnet6).collect();
    assert_eq!((v4.len(), v6.len()), (30, 30), "{leases:?}");
    assert!(v4.iter().all(|s| s.addr().is_ipv4() && s.prefix_len() == 24));
    assert!(v6.iter().all(|s| !s.addr().is_ipv4() && s.prefix_len() == 64));
    clear(open().as_ref());
}

/// A lease that claims a free IPv4 subnet and a taken IPv6 one writes nothing, nor does one
/// that claims the other way round.
pub fn a_dual_lease_is_claimed_whole_or_not_at_all(open: Open) {
    let store = open();
    let ttl = Duration::from_secs(60);
    store.init_network(&dual("fd00:10:244::/56"), true).unwrap();
    let n1 = acquire(store.as_ref(), &request("n1", 60)).unwrap();
    assert!(n1.lease.subnet6.is_some(), "a dual network's lease has both halves: {:?}", n1.lease);
    let mut n2 = n1.lease.clone();
    n2.node = "n2".into();
    n2.subnet = "10.244.250.0/24".parse().unwrap();
    assert!(store.put_lease(&n2, None, ttl).unwrap().is_none(), "n1 holds the IPv6 subnet");
    let mut n2b = n1.lease.clone();
    n2b.node = "n2".into();
    n2b.subnet6 = Some("fd00:10:244:fa::/64".parse().unwrap());
    assert!(store.put_lease(&n2b, None, ttl).unwrap().is_none(), "n1 holds the IPv4 subnet");
    assert_eq!(store.list().unwrap().leases, vec![n1.clone()], "neither half was written");
    n2.subnet6 = n2b.subnet6;
    let held = store.put_lease(&n2, None, ttl).unwrap().expect("both halves free");
    // n1 gives up its IPv6 half: n2 may then have it, and nobody else n1's IPv4 one
    let mut n1_single = n1.lease.clone();
    n1_single.subnet6 = Some("fd00:10:244:fb::/64".parse().unwrap());
    let moved = store.put_lease(&n1_single, Some(&n1), ttl).unwrap().expect("n1 moves its IPv6 half");
    let mut n3 = n1.lease.clone();
    n3.node = "n3".into();
    n3.subnet = "10.244.251.0/24".parse().unwrap();
    assert!(store.put_lease(&n3, None, ttl).unwrap().is_some(), "n1's old IPv6 subnet is free again");
    let nodes: Vec<_> = store.list().unwrap().leases.into_iter().map(|l| l.lease).collect();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.contains(&held.lease) && nodes.contains(&moved.lease));
    clear(store.as_ref());
}

/// An IPv4 network that becomes dual (a forced change): a node's next lease keeps its IPv4
/// subnet, so its pods keep their addresses, and gains an IPv6 one.
pub fn a_single_family_lease_gains_its_ipv6_half_keeping_its_ipv4_subnet(open: Open) {
    let store = open();
    store.init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), true).unwrap();
    let single = acquire(store.as_ref(), &request("n1", 60)).unwrap();
    assert_eq!(single.lease.subnet6, None);
    store.init_network(&dual("fd00:10:244::/56"), true).unwrap();
    let whole = acquire(store.as_ref(), &request("n1", 60)).unwrap();
    assert_eq!(whole.lease.subnet, single.lease.subnet);
    assert!(whole.lease.subnet6.is_some_and(|s| s.prefix_len() == 64));
    clear(store.as_ref());
    store.init_network(&NetworkConfig::new("10.244.0.0/16".parse().unwrap()), true).unwrap();
}
