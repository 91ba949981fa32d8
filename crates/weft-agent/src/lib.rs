//! weft's node agent: it leases this node a pod subnet, writes the node file for the CNI
//! plugin, and keeps the kernel's routes, neighbours and FDB entries as the cluster's
//! leases call for, changing only what differs.
//!
//! - [`node`]: finding the uplink, its MTU and addresses.
//! - [`reconcile`]: plan → kernel, never flushing.
//! - [`run`]: the loop: lease, node file, reconcile on every change and on a resync timer.
//! - [`masquerade`]: SNAT for pod traffic leaving the cluster, in a table of weft's own.
//! - [`metrics`]: `/metrics` and `/healthz`.
//!
//! Roles: a node hosts pods; a gateway or a client hosts none and only joins the overlay. With
//! `--bgp-peer`, weft-bgp announces the node's subnet (a gateway: the cluster CIDR).

pub mod l2;
pub mod masquerade;
pub mod metrics;
pub mod node;
pub mod reconcile;
pub mod run;

pub use reconcile::{reconcile, ReconcileError};
pub use run::{run, AgentError, AgentOptions, BgpOptions, Role};
