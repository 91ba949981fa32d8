//! weft's node agent: it leases this node a pod subnet, writes the node file for the CNI
//! plugin, and keeps the kernel's routes, neighbours and FDB entries as the cluster's
//! leases call for, changing only what differs.
//!
//! - [`agent`]: [`Agent`], its passes and their reports: the cache of the cluster (list +
//!   watch), the lease kept alive, the plan kept per peer, reconcile by delta or in full.
//! - [`kernel`]: the seam under the reconciler: the real kernel, or one in memory.
//! - [`reconcile`]: plan → kernel, never flushing.
//! - [`run`]: the agent as a process.
//! - [`node`]: finding the uplink, its MTU and addresses.
//! - [`nft`]: weft's own nftables tables: SNAT for pod traffic leaving the cluster, and the
//!   overlay's source filter (VXLAN only from peers).
//! - [`metrics`]: `/metrics`, `/healthz` and `/readyz`.
//! - [`install`]: the CNI plugin and its network config list, written whole where a runtime
//!   finds them.
//!
//! Roles: a node hosts pods; a gateway or a client hosts none and only joins the overlay. With
//! `--bgp-peer`, weft-bgp announces the node's subnet (a gateway: the cluster CIDR).

pub mod agent;
pub mod install;
pub mod kernel;
pub mod l2;
pub mod metrics;
pub mod nft;
pub mod node;
pub mod reconcile;
pub mod run;

pub use agent::{Agent, AgentConfig, LeaseEvent, PassReport, Trigger};
pub use install::CniConflist;
pub use kernel::{Kernel, KernelError, NetlinkKernel, RecordingKernel};
pub use run::{run, AgentOptions, BgpOptions};
pub use weft_core::status::Role;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] weft_store::StoreError),
    #[error(transparent)]
    Kernel(#[from] kernel::KernelError),
    #[error("write {path}: {source}")]
    StateFile { path: PathBuf, source: std::io::Error },
    #[error("serve metrics on {address}: {source}")]
    Metrics { address: std::net::SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Options(String),
}
