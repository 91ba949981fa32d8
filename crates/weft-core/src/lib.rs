//! weft's vocabulary, free of I/O so that everything here is tested without root.
//!
//! - [`node`]: the node file, the contract between the agent and the CNI plugin.
//! - [`addr`]: address arithmetic over IPv4 and IPv6 alike.
//! - [`alloc`]: picking a free address in a subnet.
//! - [`names`]: stable names for the links weft creates.

pub mod addr;
pub mod alloc;
pub mod names;
pub mod node;

pub use node::{AttachMode, NodeFile, NodeSubnet};
