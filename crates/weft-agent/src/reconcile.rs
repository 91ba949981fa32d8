//! Makes the kernel match a plan, through the [`Kernel`] seam, changing only what differs and
//! never flushing: running it again, or after a restart, on a node that is as planned changes
//! nothing and drops no packet.
//!
//! Two ways, as the cause calls for:
//! - [`full`]: reads everything weft owns and compares it with the whole plan (at start, on
//!   the resync timer to repair drift, after a config change or a failed pass);
//! - [`delta`]: applies what some peers' changes call for, reading nothing (a store event
//!   costs a few netlink messages, whatever the size of the cluster).

use crate::kernel::{Kernel, KernelError};
use weft_core::plan::{PeerChange, Plan};
use weft_core::reconcile::{diff, peer_changes, Changes};

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub changes: Changes,
    /// Changes to the VXLAN device itself (made, recreated, fixed).
    pub device_changes: usize,
}

impl Reconciled {
    pub fn count(&self) -> usize {
        self.changes.count() + self.device_changes
    }
}

/// Makes the node's kernel hold `plan`, reading what it holds first.
pub fn full(kernel: &mut dyn Kernel, plan: &Plan) -> Result<Reconciled, KernelError> {
    let device_changes = match &plan.vxlan {
        Some(device) => kernel.ensure_vxlan(device)?,
        None => 0,
    };
    let observed = kernel.observe(plan.vxlan.as_ref().map(|d| d.name.as_str()))?;
    let changes = diff(plan, &observed);
    kernel.apply(&changes)?;
    Ok(Reconciled { changes, device_changes })
}

/// Makes what `changed` peers' changes call for, given a kernel that held the plan before
/// them (`plan` is the plan after).
pub fn delta(
    kernel: &mut dyn Kernel,
    plan: &Plan,
    changed: &[PeerChange],
) -> Result<Reconciled, KernelError> {
    let mut changes = Changes::default();
    for change in changed {
        let more = peer_changes(plan, change);
        changes.delete_routes.extend(more.delete_routes);
        changes.delete_fdb.extend(more.delete_fdb);
        changes.delete_neighbours.extend(more.delete_neighbours);
        changes.set_neighbours.extend(more.set_neighbours);
        changes.set_fdb.extend(more.set_fdb);
        changes.set_routes.extend(more.set_routes);
    }
    kernel.apply(&changes)?;
    Ok(Reconciled { changes, device_changes: 0 })
}
