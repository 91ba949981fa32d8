//! The difference between a plan and what the kernel holds: what to change, and nothing
//! else. Pure; the agent reads the kernel, asks [`diff`], and applies the answer. weft never
//! flushes: state it does not own (other protocols' routes, other devices' neighbours) never
//! appears here, and state that is already right is left alone, so a restarted agent
//! changes nothing on a node that is as planned.

use crate::plan::{PeerChange, PeerPlan, Plan, PlannedFdb, PlannedNeighbour, PlannedRoute};
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

/// What to change so that a kernel holding `observed` holds `plan`: a full pass.
pub fn diff(plan: &Plan, observed: &Observed) -> Changes {
    let (delete_routes, set_routes) = compare(&plan.routes(), &observed.routes, |r| r.destination);
    let (delete_neighbours, set_neighbours) =
        compare(&plan.neighbours(), &observed.neighbours, |n| (n.device.clone(), n.ip));
    let (delete_fdb, set_fdb) = compare(&plan.fdb(), &observed.fdb, |f| (f.device.clone(), f.mac));
    Changes { delete_routes, delete_fdb, delete_neighbours, set_neighbours, set_fdb, set_routes }
}

/// What to change for one peer's change, given that the kernel held the plan before it: a
/// delta pass, which reads nothing from the kernel. An entry the peer no longer needs is
/// deleted only if no peer of `plan` (the plan after the change) still plans it.
pub fn peer_changes(plan: &Plan, change: &PeerChange) -> Changes {
    let mut changes = Changes::default();
    let before = change.before.as_ref();
    let after = change.after.as_ref();
    let empty = PeerPlan::default_empty();
    let was = before.unwrap_or(&empty);
    for route in &was.routes {
        if !plan.plans_route(&route.destination) {
            changes.delete_routes.push(route.clone());
        }
    }
    if let Some(fdb) = &was.fdb {
        if !plan.plans_fdb(&fdb.device, fdb.mac) {
            changes.delete_fdb.push(fdb.clone());
        }
    }
    for neighbour in &was.neighbours {
        if !plan.plans_neighbour(&neighbour.device, neighbour.ip) {
            changes.delete_neighbours.push(neighbour.clone());
        }
    }
    if let Some(after) = after {
        // Set whatever is new or differs; an entry equal to before's is already there.
        changes
            .set_neighbours
            .extend(after.neighbours.iter().filter(|n| !was.neighbours.contains(n)).cloned());
        if after.fdb.is_some() && after.fdb != was.fdb {
            changes.set_fdb.extend(after.fdb.clone());
        }
        changes.set_routes.extend(after.routes.iter().filter(|r| !was.routes.contains(r)).cloned());
    }
    changes
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
            subnet6: None,
            other_public_ip: None,
        }
    }

    fn planned(leases: &[Lease]) -> Plan {
        let config =
            NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
        plan(&local(), &config, leases)
    }

    fn as_observed(plan: &Plan) -> Observed {
        Observed { routes: plan.routes(), neighbours: plan.neighbours(), fdb: plan.fdb() }
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
        assert_eq!(changes.set_routes, vec![plan.routes()[0].clone()]);
        assert_eq!(changes.set_fdb, vec![plan.fdb()[1].clone()]);
        assert!(changes.delete_fdb.is_empty(), "a changed entry is replaced, not deleted");
        assert_eq!(changes.count(), 2);
    }

    /// Applies changes to an observed kernel, as a kernel would.
    fn apply(observed: &mut Observed, changes: &Changes) {
        observed.routes.retain(|r| !changes.delete_routes.iter().any(|d| d.destination == r.destination));
        observed.fdb.retain(|f| !changes.delete_fdb.iter().any(|d| d.device == f.device && d.mac == f.mac));
        observed
            .neighbours
            .retain(|n| !changes.delete_neighbours.iter().any(|d| d.device == n.device && d.ip == n.ip));
        for route in &changes.set_routes {
            observed.routes.retain(|r| r.destination != route.destination);
            observed.routes.push(route.clone());
        }
        for fdb in &changes.set_fdb {
            observed.fdb.retain(|f| !(f.device == fdb.device && f.mac == fdb.mac));
            observed.fdb.push(fdb.clone());
        }
        for neighbour in &changes.set_neighbours {
            observed.neighbours.retain(|n| !(n.device == neighbour.device && n.ip == neighbour.ip));
            observed.neighbours.push(neighbour.clone());
        }
        observed.routes.sort();
        observed.fdb.sort();
        observed.neighbours.sort();
    }

    #[test]
    fn deltas_lead_where_a_full_diff_does() {
        let config =
            NetworkConfig { backend: Backend::Auto, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
        let mut plan = crate::plan::Plan::new(&local(), &config);
        let mut kernel = Observed::default();
        let mut moved = peer(3);
        moved.public_ip = "192.0.2.33".parse().unwrap(); // onto this node's segment: vxlan -> route
        let mut renamed_mac = peer(2);
        renamed_mac.vtep_mac = Some(vtep_mac("elsewhere"));
        let steps: Vec<Result<Lease, &str>> = vec![
            Ok(peer(2)),
            Ok(peer(3)),
            Ok(peer(4)),
            Ok(moved),
            Ok(renamed_mac),
            Err("n4"),
            Err("n9"),
            Err("n2"),
        ];
        for step in steps {
            let change = match &step {
                Ok(lease) => plan.set_peer(&local(), &config, lease),
                Err(node) => plan.remove_peer(node),
            };
            apply(&mut kernel, &peer_changes(&plan, &change));
            assert!(diff(&plan, &kernel).is_empty(), "after {step:?}: {:?}", diff(&plan, &kernel));
        }
        assert_eq!(kernel.routes.len(), 1, "only the moved n3 is left, by route");
    }

    #[test]
    fn an_entry_another_peer_still_needs_is_not_deleted() {
        let config =
            NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
        let mut plan = crate::plan::Plan::new(&local(), &config);
        let mut twin = peer(3);
        twin.node = "twin".into(); // a second lease on n3's subnet (a bad writer)
        let mut kernel = Observed::default();
        for lease in [peer(3), twin] {
            let change = plan.set_peer(&local(), &config, &lease);
            apply(&mut kernel, &peer_changes(&plan, &change));
        }
        let gone = plan.remove_peer("twin");
        let changes = peer_changes(&plan, &gone);
        assert!(changes.delete_routes.is_empty(), "n3 still routes there: {changes:?}");
        apply(&mut kernel, &changes);
        assert!(diff(&plan, &kernel).is_empty());
    }

    #[test]
    fn an_unchanged_lease_changes_nothing() {
        let config =
            NetworkConfig { backend: Backend::Vxlan, ..NetworkConfig::new("10.244.0.0/16".parse().unwrap()) };
        let mut plan = crate::plan::Plan::new(&local(), &config);
        assert!(!plan.set_peer(&local(), &config, &peer(2)).is_empty());
        assert!(plan.set_peer(&local(), &config, &peer(2)).is_empty());
        assert!(plan.remove_peer("n7").is_empty());
    }
}
