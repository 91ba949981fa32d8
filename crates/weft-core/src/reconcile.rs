//! The difference between a plan and what the kernel holds: what to change, and nothing
//! else. Pure; the agent reads the kernel, asks [`diff`], and applies the answer. weft never
//! flushes: state it does not own (other protocols' routes, other devices' neighbours) never
//! appears here, and state that is already right is left alone, so a restarted agent
//! changes nothing on a node that is as planned.

use crate::plan::{Plan, PlannedFdb, PlannedNeighbour, PlannedRoute};
use std::collections::BTreeMap;

/// What the kernel holds of what weft manages: routes with weft's peer-route protocol,
/// neighbours and FDB entries on weft's VXLAN device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub routes: Vec<PlannedRoute>,
    pub neighbours: Vec<PlannedNeighbour>,
    pub fdb: Vec<PlannedFdb>,
}

/// Changes to make, in the order they are to be made: removals route first (so nothing
/// is sent along a path being taken apart), additions route last (so the kernel never
/// looks up a neighbour or VTEP that is not there yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub delete_routes: Vec<PlannedRoute>,
    pub delete_fdb: Vec<PlannedFdb>,
    pub delete_neighbours: Vec<PlannedNeighbour>,
    pub set_neighbours: Vec<PlannedNeighbour>,
    pub set_fdb: Vec<PlannedFdb>,
    /// Added or replaced.
    pub set_routes: Vec<PlannedRoute>,
}

impl Changes {
    pub fn count(&self) -> usize {
        self.delete_routes.len()
            + self.delete_fdb.len()
            + self.delete_neighbours.len()
            + self.set_neighbours.len()
            + self.set_fdb.len()
            + self.set_routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// Entries keyed by what identifies them in the kernel, each with its whole value: an entry
/// whose key matches but whose value differs is replaced, not deleted and re-added.
fn keyed<K: Ord, V: Clone>(items: &[V], key: impl Fn(&V) -> K) -> BTreeMap<K, V> {
    items.iter().map(|item| (key(item), item.clone())).collect()
}

/// (to delete, to set)
fn compare<K: Ord, V: Clone + PartialEq>(
    planned: &[V],
    observed: &[V],
    key: impl Fn(&V) -> K,
) -> (Vec<V>, Vec<V>) {
    let planned_by_key = keyed(planned, &key);
    let observed_by_key = keyed(observed, &key);
    let delete = observed_by_key
        .iter()
        .filter(|(k, _)| !planned_by_key.contains_key(*k))
        .map(|(_, v)| v.clone())
        .collect();
    let set = planned_by_key
        .iter()
        .filter(|(k, v)| observed_by_key.get(*k) != Some(*v))
        .map(|(_, v)| v.clone())
        .collect();
    (delete, set)
}

pub fn diff(plan: &Plan, observed: &Observed) -> Changes {
    let (delete_routes, set_routes) = compare(&plan.routes, &observed.routes, |r| r.destination);
    let (delete_neighbours, set_neighbours) =
        compare(&plan.neighbours, &observed.neighbours, |n| (n.device.clone(), n.ip));
    let (delete_fdb, set_fdb) = compare(&plan.fdb, &observed.fdb, |f| (f.device.clone(), f.mac));
    Changes { delete_routes, delete_fdb, delete_neighbours, set_neighbours, set_fdb, set_routes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{vtep_mac, Lease};
    use crate::network::{Backend, NetworkConfig};
    use crate::plan::plan;
    use crate::plan::tests::local;

    fn peer(n: u8) -> Lease {
        Lease {
            node: format!("n{n}"),
            subnet: format!("10.244.{n}.0/24").parse().unwrap(),
            public_ip: format!("198.51.100.{n}").parse().unwrap(),
            backend: Backend::Vxlan,
            vtep_mac: Some(vtep_mac(&format!("n{n}"))),
            expires_at: u64::MAX,
        }
    }

    fn planned(leases: &[Lease]) -> Plan {
        let config =
            NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
        plan(&local(), &config, leases)
    }

    fn as_observed(plan: &Plan) -> Observed {
        Observed { routes: plan.routes.clone(), neighbours: plan.neighbours.clone(), fdb: plan.fdb.clone() }
    }

    #[test]
    fn an_empty_kernel_gets_everything_and_a_planned_one_nothing() {
        let plan = planned(&[peer(2), peer(3)]);
        let changes = diff(&plan, &Observed::default());
        assert_eq!(
            (changes.set_routes.len(), changes.set_neighbours.len(), changes.set_fdb.len()),
            (2, 2, 2)
        );
        assert!(changes.delete_routes.is_empty());
        assert!(diff(&plan, &as_observed(&plan)).is_empty(), "a node as planned is left alone");
    }

    #[test]
    fn a_departed_peer_is_removed_and_the_others_untouched() {
        let before = planned(&[peer(2), peer(3)]);
        let after = planned(&[peer(2)]);
        let changes = diff(&after, &as_observed(&before));
        assert_eq!(changes.count(), 3);
        assert_eq!(changes.delete_routes[0].destination.to_string(), "10.244.3.0/24");
        assert_eq!(changes.delete_fdb[0].mac, vtep_mac("n3"));
        assert_eq!(changes.delete_neighbours[0].ip.to_string(), "10.244.3.0");
    }

    #[test]
    fn drift_is_repaired_by_replacing_only_what_differs() {
        let plan = planned(&[peer(2), peer(3)]);
        let mut observed = as_observed(&plan);
        observed.routes.remove(0); // deleted by hand
        observed.fdb[1].remote = "198.51.100.99".parse().unwrap(); // a peer that moved
        let changes = diff(&plan, &observed);
        assert_eq!(changes.set_routes, vec![plan.routes[0].clone()]);
        assert_eq!(changes.set_fdb, vec![plan.fdb[1].clone()]);
        assert!(changes.delete_fdb.is_empty(), "a changed entry is replaced, not deleted");
        assert_eq!(changes.count(), 2);
    }
}
