//! Makes the kernel match a plan: reads what weft owns (routes with the peer-route
//! protocol, neighbours and FDB entries of the VXLAN device, the device itself), asks
//! `weft_core::reconcile::diff` what differs, and changes only that. Never flushes, so
//! running it again, or after a restart, on a node that is as planned changes nothing and
//! drops no packet.

use std::collections::HashMap;
use weft_core::plan::{Plan, PlannedFdb, PlannedNeighbour, PlannedRoute, VxlanDevice, PEER_ROUTE_PROTOCOL};
use weft_core::reconcile::{diff, Changes, Observed};
use weft_kernel::netlink::MAIN_TABLE;
use weft_kernel::{Batch, Link, Netlink, Route, VxlanSpec};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the plan names device {0}, which this node does not have")]
    MissingDevice(String),
    #[error("a link named {0} exists and is not a VXLAN device: weft will not touch it")]
    NameTaken(String),
    #[error(transparent)]
    Kernel(#[from] weft_kernel::Error),
}

fn peer_route(route: &PlannedRoute, oif: u32) -> Route {
    Route { protocol: PEER_ROUTE_PROTOCOL, ..Route::via(route.destination, route.gateway, oif, route.onlink) }
}

/// Whether an existing device is the one planned (anything else about it is fixed in place).
fn same_tunnel(link: &Link, device: &VxlanDevice, underlay: u32) -> bool {
    link.vxlan.as_ref().is_some_and(|vxlan| {
        vxlan.vni == Some(device.vni)
            && vxlan.port == Some(device.port)
            && vxlan.local == Some(device.local)
            && vxlan.underlay == Some(underlay)
    })
}

/// Creates the VXLAN device, or recreates it if its identity changed (VNI, port, local
/// address, underlay), and fixes its MTU, MAC and address in place.
fn ensure_vxlan(nl: &mut Netlink, device: &VxlanDevice, underlay: u32) -> Result<Link, ReconcileError> {
    let existing = nl.link_by_name(&device.name)?;
    let link = match existing {
        Some(link) if same_tunnel(&link, device, underlay) => link,
        Some(link) if link.kind != Some(weft_kernel::LinkKind::Vxlan) => {
            return Err(ReconcileError::NameTaken(link.name));
        }
        other => {
            if let Some(stale) = other {
                nl.delete_link(stale.index)?;
            }
            nl.create_vxlan(&VxlanSpec {
                name: &device.name,
                vni: device.vni,
                port: device.port,
                local: device.local,
                underlay,
                mtu: device.mtu,
                mac: device.mac.0,
            })?
        }
    };
    let mut fixes = Batch::new();
    if link.mtu != device.mtu {
        fixes.set_mtu(link.index, device.mtu);
    }
    if link.mac != Some(device.mac.0) {
        fixes.set_mac(link.index, device.mac.0);
    }
    if !link.up {
        fixes.set_up(link.index, true);
    }
    if let Some(address) = device.address {
        fixes.ensure_address(link.index, address, true);
    }
    // An address left from a subnet this node no longer holds would make the new holder's
    // tunnel gateway local here.
    for (index, address) in nl.addresses()? {
        if index == link.index && Some(address) != device.address && !address.addr().is_ipv6() {
            fixes.delete_address(index, address);
        }
    }
    nl.apply(&mut fixes)?;
    Ok(link)
}

/// What the kernel holds of what weft owns, in the planner's terms.
fn observe(
    nl: &mut Netlink,
    names: &HashMap<u32, String>,
    vxlan: Option<u32>,
) -> Result<Observed, ReconcileError> {
    let mut observed = Observed::default();
    for v6 in [false, true] {
        for route in nl.routes(v6)? {
            if route.protocol != PEER_ROUTE_PROTOCOL || route.table != MAIN_TABLE {
                continue;
            }
            let (Some(gateway), Some(device)) = (route.gateway, route.oif.and_then(|i| names.get(&i))) else {
                continue;
            };
            observed.routes.push(PlannedRoute {
                destination: route.destination,
                gateway,
                device: device.clone(),
                onlink: route.onlink,
            });
        }
    }
    if let Some(index) = vxlan {
        let device = names[&index].clone();
        for (link, ip, mac) in nl.permanent_neighbours()? {
            if link == index {
                observed.neighbours.push(PlannedNeighbour {
                    device: device.clone(),
                    ip,
                    mac: weft_core::lease::MacAddr(mac),
                });
            }
        }
        for (mac, remote) in nl.fdb_entries(index)? {
            observed.fdb.push(PlannedFdb {
                device: device.clone(),
                mac: weft_core::lease::MacAddr(mac),
                remote,
            });
        }
    }
    Ok(observed)
}

/// Makes the node's kernel hold `plan`; returns what it changed (empty when the node was
/// already as planned).
pub fn reconcile(nl: &mut Netlink, plan: &Plan) -> Result<Changes, ReconcileError> {
    let mut indices: HashMap<String, u32> = nl.links()?.into_iter().map(|l| (l.name, l.index)).collect();
    let vxlan = match &plan.vxlan {
        Some(device) => {
            let underlay = *indices
                .get(&device.underlay)
                .ok_or_else(|| ReconcileError::MissingDevice(device.underlay.clone()))?;
            let link = ensure_vxlan(nl, device, underlay)?;
            indices.insert(link.name.clone(), link.index);
            Some(link.index)
        }
        None => None,
    };
    let names: HashMap<u32, String> = indices.iter().map(|(name, index)| (*index, name.clone())).collect();
    let changes = diff(plan, &observe(nl, &names, vxlan)?);
    let index_of = |device: &str| {
        indices.get(device).copied().ok_or_else(|| ReconcileError::MissingDevice(device.into()))
    };

    let mut batch = Batch::new();
    for route in &changes.delete_routes {
        batch.delete_route(&peer_route(route, index_of(&route.device)?));
    }
    for fdb in &changes.delete_fdb {
        batch.delete_fdb_entry(index_of(&fdb.device)?, fdb.mac.0, fdb.remote);
    }
    for neighbour in &changes.delete_neighbours {
        batch.delete_neighbour(index_of(&neighbour.device)?, neighbour.ip);
    }
    for neighbour in &changes.set_neighbours {
        batch.set_permanent_neighbour(index_of(&neighbour.device)?, neighbour.ip, neighbour.mac.0);
    }
    for fdb in &changes.set_fdb {
        batch.set_fdb_entry(index_of(&fdb.device)?, fdb.mac.0, fdb.remote);
    }
    for route in &changes.set_routes {
        batch.replace_route(&peer_route(route, index_of(&route.device)?));
    }
    nl.apply(&mut batch)?;
    Ok(changes)
}
