//! weft's vocabulary, free of I/O so that everything here is tested without root.
//!
//! - [`conflist`]: the CNI network config list weft installs for the node's runtime.
//! - [`node`]: the node file, the contract between the agent and the CNI plugin.
//! - [`addr`]: address arithmetic over IPv4 and IPv6 alike.
//! - [`alloc`]: picking a free address in a subnet.
//! - [`names`]: stable names for the links weft creates.
//! - [`network`]: the cluster network's configuration.
//! - [`lease`]: leases, VTEP MACs, picking a free subnet.
//! - [`plan`]: the planner: this node and the leases → the kernel state the node should hold.
//! - [`reconcile`]: the difference between a plan and the kernel's state.
//! - [`status`]: the status file, the agent's word on how things stand.
//! - [`trust`]: what a lease read from the store must be before anything is planned from it.

pub mod addr;
pub mod alloc;
pub mod conflist;
pub mod lease;
pub mod names;
pub mod network;
pub mod node;
pub mod plan;
pub mod reconcile;
pub mod status;
pub mod trust;

pub use node::{AttachMode, NodeFile, NodeSubnet};

/// Unix time in seconds: the one clock weft reads for times it writes down or compares with
/// other processes'.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
