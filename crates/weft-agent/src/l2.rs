//! The l2 backend's one piece of kernel work: the node's uplink goes into a bridge that
//! pods then join, so they sit on the physical segment. The uplink's addresses and routes
//! move to the bridge in an order that always leaves the node a way out: the bridge (with
//! the uplink's MAC, so neighbours' ARP caches stay right) gets the addresses first, then
//! the uplink becomes its port, then the routes move (replaced, never deleted first), and
//! only then do the uplink's own addresses go.
//!
//! Every step checks before it acts, and all of them run on every pass: an agent killed
//! half-way finishes the move when it starts again.

use weft_core::plan::L2_BRIDGE;
use weft_kernel::netlink::MAIN_TABLE;
use weft_kernel::{Batch, Netlink, Route};

/// RTPROT_KERNEL: connected routes, which follow their addresses by themselves.
const KERNEL_ROUTE_PROTOCOL: u8 = 2;

/// A step of the move that failed.
#[derive(Debug, thiserror::Error)]
#[error("l2: {step} ({port} into {L2_BRIDGE}): {cause}")]
pub struct TakeOverError {
    pub step: &'static str,
    pub port: String,
    pub cause: weft_kernel::Error,
}

/// Moves the physical uplink `port` into the L2 bridge, or finishes a move begun earlier.
/// Returns how many changes it made (none once done).
pub fn take_over(nl: &mut Netlink, port: &str) -> Result<usize, TakeOverError> {
    let name = port.to_string();
    let failed = |step: &'static str| {
        let port = name.clone();
        move |cause| TakeOverError { step, port, cause }
    };
    let port = nl.link_by_name(port).map_err(failed("find the uplink"))?.ok_or_else(|| TakeOverError {
        step: "find the uplink",
        port: port.to_string(),
        cause: weft_kernel::Error::io("no such link", std::io::ErrorKind::NotFound.into()),
    })?;
    let bridge = nl.ensure_bridge(L2_BRIDGE, port.mtu).map_err(failed("make the bridge"))?;
    let addresses: Vec<ipnet::IpNet> = nl
        .addresses()
        .map_err(failed("read the uplink's addresses"))?
        .into_iter()
        .filter(|(index, net)| *index == port.index && !is_link_local(net))
        .map(|(_, net)| net)
        .collect();
    let mut changes = 0;
    let mut first = Batch::new();
    if let Some(mac) = port.mac.filter(|mac| bridge.mac != Some(*mac)) {
        first.set_mac(bridge.index, mac);
    }
    if !bridge.up {
        first.set_up(bridge.index, true);
    }
    for address in &addresses {
        first.ensure_address(bridge.index, *address, true);
    }
    if port.master != Some(bridge.index) {
        first.set_master(port.index, bridge.index);
    }
    if !first.is_empty() {
        nl.apply(&mut first)
            .map_err(failed("give the bridge the uplink's MAC and addresses, then the uplink"))?;
        changes += 1;
    }
    let mut routes = Batch::new();
    for v6 in [false, true] {
        for route in nl.routes(v6).map_err(failed("read the routes"))? {
            if route.oif == Some(port.index)
                && route.protocol != KERNEL_ROUTE_PROTOCOL
                && route.table == MAIN_TABLE
            {
                routes.replace_route(&Route { oif: Some(bridge.index), ..route });
            }
        }
    }
    if !routes.is_empty() {
        nl.apply(&mut routes).map_err(failed("move the uplink's routes to the bridge"))?;
        changes += 1;
    }
    let mut last = Batch::new();
    for address in &addresses {
        last.delete_address(port.index, *address);
    }
    if !last.is_empty() {
        nl.apply(&mut last).map_err(failed("remove the uplink's own addresses"))?;
        changes += 1;
    }
    Ok(changes)
}

fn is_link_local(net: &ipnet::IpNet) -> bool {
    match net.addr() {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}
