//! weft's vocabulary, free of I/O so that everything here is tested without root.
//!
//! - [`node`]: the node file, the contract between the agent and the CNI plugin.
//! - [`addr`]: address arithmetic over IPv4 and IPv6 alike.
//! - [`alloc`]: picking a free address in a subnet.
//! - [`names`]: stable names for the links weft creates.
//! - [`network`]: the cluster network's configuration.
//! - [`lease`]: leases, VTEP MACs, picking a free subnet.
//! - [`plan`]: the planner: this node and the leases → the kernel state the node should hold.
//! - [`reconcile`]: the difference between a plan and the kernel's state.

pub mod addr;
pub mod alloc;
pub mod lease;
pub mod names;
pub mod network;
pub mod node;
pub mod plan;
pub mod reconcile;

pub use node::{AttachMode, NodeFile, NodeSubnet};
