//! weft's node agent. So far: the reconciler, which makes the kernel hold what the planner
//! says and nothing it does not own. Leases, stores, the watch loop, masquerade and
//! metrics come with the rest of the agent.

pub mod reconcile;

pub use reconcile::{reconcile, ReconcileError};
