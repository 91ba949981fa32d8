//! weft's only door to the kernel. Nothing else in weft opens a netlink socket.
//!
//! Synchronous on purpose: the CNI plugin is a short process that makes a handful of calls
//! and exits, and must not pull in an async runtime.
//!
//! - [`netlink`]: a small request/ack/dump wrapper over a NETLINK_ROUTE socket, and typed
//!   operations on links, addresses, routes and neighbours.
//! - [`netns`]: network namespaces: open, enter, create and remove named ones.
//! - [`sysctl`]: per-namespace sysctls such as forwarding.

pub mod error;
pub mod netlink;
pub mod netns;
pub mod sysctl;

pub use error::{Error, Result};
pub use netlink::{Batch, Link, LinkKind, Netlink, NextHop, Route, RouteScope, VethSpec, VxlanSpec};
pub use netns::NetNs;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// `aa:bb:cc:dd:ee:ff`
pub fn format_mac(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A random, locally administered, unicast MAC. Chosen by weft rather than the kernel so
/// the plugin knows both ends' addresses without asking the kernel again.
pub fn random_mac() -> Mac {
    let mut mac = [0u8; 6];
    fill_random(&mut mac);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Random bits from the kernel, for names and addresses that must not collide.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill_random(&mut bytes);
    u64::from_ne_bytes(bytes)
}

fn fill_random(buf: &mut [u8]) {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n as usize, buf.len(), "getrandom failed");
}
