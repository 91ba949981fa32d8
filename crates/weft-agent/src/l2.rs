//! The l2 backend's one piece of kernel work: the node's uplink goes into a bridge that
//! pods then join, so they sit on the physical segment. The uplink's addresses and routes
//! move to the bridge in an order that always leaves the node a way out:
//! the bridge (with the uplink's MAC, so neighbours' ARP caches stay right) gets the
//! addresses first, then the uplink becomes its port, then the routes move (replaced, never
//! deleted first), and only then do the uplink's own addresses go.

use crate::node::Uplink;
use weft_core::plan::L2_BRIDGE;
use weft_kernel::netlink::MAIN_TABLE;
use weft_kernel::{Batch, Netlink, Route};

/// RTPROT_KERNEL: connected routes, which follow their addresses by themselves.
const KERNEL_ROUTE_PROTOCOL: u8 = 2;

/// Takes the uplink into the L2 bridge. Does nothing when it is there already.
pub fn take_over(nl: &mut Netlink, uplink: &Uplink) -> weft_kernel::Result<bool> {
    if uplink.port.is_some() {
        return Ok(false);
    }
    let port = nl.link_by_index(uplink.index)?.ok_or_else(|| {
        weft_kernel::Error::io(format!("find {}", uplink.name), std::io::ErrorKind::NotFound.into())
    })?;
    let bridge = nl.ensure_bridge(L2_BRIDGE, port.mtu)?;
    let mut first = Batch::new();
    if let Some(mac) = port.mac {
        first.set_mac(bridge.index, mac);
    }
    first.set_up(bridge.index, true);
    let addresses: Vec<ipnet::IpNet> = nl
        .addresses()?
        .into_iter()
        .filter(|(index, net)| *index == port.index && !is_link_local(net))
        .map(|(_, net)| net)
        .collect();
    for address in &addresses {
        first.ensure_address(bridge.index, *address, true);
    }
    first.set_master(port.index, bridge.index);
    nl.apply(&mut first)?;

    let mut routes = Batch::new();
    for v6 in [false, true] {
        for route in nl.routes(v6)? {
            if route.oif == Some(port.index)
                && route.protocol != KERNEL_ROUTE_PROTOCOL
                && route.table == MAIN_TABLE
            {
                routes.replace_route(&Route { oif: Some(bridge.index), ..route });
            }
        }
    }
    nl.apply(&mut routes)?;

    let mut last = Batch::new();
    for address in &addresses {
        last.delete_address(port.index, *address);
    }
    nl.apply(&mut last)?;
    Ok(true)
}

fn is_link_local(net: &ipnet::IpNet) -> bool {
    match net.addr() {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}
