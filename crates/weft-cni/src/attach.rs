//! Joining a pod's namespace to its node, and taking it apart again.
//!
//! Routed (default): a veth pair. The pod gets its address as a host address (/32, /128),
//! a permanent neighbour for the link-local gateway (the node side's MAC) and a default
//! route through it; the node gets a host route and a permanent neighbour for the pod. No
//! ARP, no bridge, no flooding.
//!
//! Bridge: the node side joins the node bridge, which holds the gateway address; the pod
//! gets its address with the subnet's prefix and a default route via the gateway.

use crate::error::{code, CniError};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use weft_core::names::host_veth_name;
use weft_core::AttachMode;
use weft_kernel::{format_mac, netlink::LinkKind, random_mac, Batch, Link, Mac, NetNs, Netlink, Route};

/// One address the pod gets, with its gateway.
#[derive(Debug, Clone)]
pub struct PodAddress {
    /// The address with the prefix length the pod sees (/32 routed, the subnet's bridged).
    pub address: IpNet,
    pub gateway: IpAddr,
    /// The subnet it came from (the bridge's gateway address uses its prefix).
    pub subnet: IpNet,
    /// L2: the segment the pod lives on. Its gateway is the segment's router, which the
    /// node's bridge must not claim.
    pub segment: Option<IpNet>,
}

pub struct PodSpec<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub netns: &'a NetNs,
    pub addresses: &'a [PodAddress],
    pub attach: AttachMode,
    pub mtu: u32,
    pub bridge: &'a str,
}

/// What ADD made, for the result.
pub struct Attached {
    pub bridge: Option<(String, Mac)>,
    pub host_name: String,
    pub host_mac: Mac,
    pub pod_mac: Mac,
}

/// The alias weft writes on the node side of a pod's veth: which attachment it serves.
pub fn alias_for(network: &str, container_id: &str, ifname: &str) -> String {
    format!("weft:{network}:{container_id}/{ifname}")
}

/// Reads an alias written by [`alias_for`]: (network, container ID, ifname).
pub fn parse_alias(alias: &str) -> Option<(&str, &str, &str)> {
    let rest = alias.strip_prefix("weft:")?;
    let (network, attachment) = rest.split_once(':')?;
    let (container_id, ifname) = attachment.split_once('/')?;
    Some((network, container_id, ifname))
}

/// The MTU of the device that carries the node's default route, if it has one.
pub fn default_route_mtu(host: &mut Netlink) -> Result<Option<u32>, CniError> {
    for v6 in [false, true] {
        let default = host.routes(v6)?.into_iter().find(|r| {
            r.destination.prefix_len() == 0 && r.table == weft_kernel::netlink::MAIN_TABLE && r.oif.is_some()
        });
        if let Some(oif) = default.and_then(|r| r.oif) {
            if let Some(link) = host.link_by_index(oif)? {
                return Ok(Some(link.mtu));
            }
        }
    }
    Ok(None)
}

fn ensure_bridge(host: &mut Netlink, spec: &PodSpec) -> Result<Link, CniError> {
    let bridge = host.ensure_bridge(spec.bridge, spec.mtu)?;
    if bridge.kind != Some(LinkKind::Bridge) {
        return Err(CniError::new(
            code::INVALID_NETWORK_CONFIG,
            "bridge name is taken",
            format!("{} exists and is not a bridge", spec.bridge),
        ));
    }
    if !bridge.up {
        host.set_up(bridge.index, true)?;
    }
    // Its gateway addresses are (re)asserted with the node side's batch.
    Ok(bridge)
}

/// Creates the veth pair, retrying once after removing a leftover of the same attachment
/// (a pod re-added before a previous DEL's cleanup finished, or an ADD killed half-way).
fn create_pair(host: &mut Netlink, spec: &PodSpec, veth: &weft_kernel::VethSpec) -> Result<Link, CniError> {
    match host.create_veth(veth) {
        Ok(link) => Ok(link),
        Err(e) if e.is_exists() => {
            if let Some(stale) = host.link_by_name(veth.name)? {
                host.delete_link(stale.index)?;
                return host.create_veth(veth).map_err(Into::into);
            }
            Err(CniError::new(
                code::KERNEL,
                "interface already exists",
                format!("{} already exists in {}", spec.ifname, spec.netns.path().display()),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Builds the pod's network. On failure the veth pair is removed again (the caller
/// releases the addresses), so a failed ADD leaves nothing behind.
pub fn add(host: &mut Netlink, pod: &mut Netlink, spec: &PodSpec) -> Result<Attached, CniError> {
    let bridge = match spec.attach {
        AttachMode::Bridge => Some(ensure_bridge(host, spec)?),
        AttachMode::Routed => None,
    };
    let host_name = host_veth_name(spec.container_id, spec.ifname);
    let (host_mac, pod_mac) = (random_mac(), random_mac());
    let host_link = create_pair(
        host,
        spec,
        &weft_kernel::VethSpec {
            name: &host_name,
            mac: host_mac,
            mtu: spec.mtu,
            master: bridge.as_ref().map(|b| b.index),
            peer_name: spec.ifname,
            peer_mac: pod_mac,
            peer_netns: Some(spec.netns),
            up: true,
        },
    )?;
    crate::crash_point("after-veth");
    if let Err(e) = configure(host, pod, spec, &host_link, bridge.as_ref(), host_mac) {
        let _ = host.delete_link(host_link.index);
        return Err(e);
    }
    Ok(Attached { bridge: bridge.map(|b| (b.name, b.mac.unwrap_or_default())), host_name, host_mac, pod_mac })
}

fn configure(
    host: &mut Netlink,
    pod: &mut Netlink,
    spec: &PodSpec,
    host_link: &Link,
    bridge: Option<&Link>,
    host_mac: Mac,
) -> Result<(), CniError> {
    let not_found = |what: &str| {
        CniError::new(code::KERNEL, "interface vanished", format!("{what} is gone after creation"))
    };
    // The node side's IFLA_LINK is the pod side's index: no need to ask the pod's namespace.
    let pod_index = match host_link.peer_index {
        Some(index) => index,
        None => pod.link_by_name(spec.ifname)?.ok_or_else(|| not_found(spec.ifname))?.index,
    };
    let routed = spec.attach == AttachMode::Routed;

    // Node side, one round trip: who it belongs to, and (routed) the way to the pod.
    let mut node_side = Batch::new();
    node_side.set_alias(host_link.index, &alias_for(spec.network, spec.container_id, spec.ifname));
    if let Some(bridge) = bridge {
        for address in spec.addresses.iter().filter(|a| a.segment.is_none()) {
            let gateway =
                IpNet::new(address.gateway, address.subnet.prefix_len()).expect("prefix of a valid subnet");
            node_side.ensure_address(bridge.index, gateway, true);
        }
    }
    if routed {
        for address in spec.addresses {
            let ip = address.address.addr();
            // The node side holds the pod's gateway, so it answers ARP/ND for it should the
            // pod lose its pinned entry (a later plugin changing the pod's MAC flushes it):
            // IPv4 with host scope, never used as the node's source address; an IPv6
            // link-local one as it is. (A global IPv6 gateway from the node file is not
            // added: the node would start using it as a source address.)
            match address.gateway {
                IpAddr::V4(_) => {
                    node_side.ensure_host_scoped_address(
                        host_link.index,
                        IpNet::new(address.gateway, 32).unwrap(),
                    );
                }
                IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                    node_side.ensure_address(host_link.index, IpNet::new(address.gateway, 64).unwrap(), true);
                }
                IpAddr::V6(_) => {}
            }
            // Replace, not add: a route left by a pod that had this address and whose
            // veth is still being removed must not make this ADD fail.
            let host_route = IpNet::new(ip, weft_core::addr::host_prefix_len(ip)).expect("host prefix");
            node_side.replace_route(&Route::direct(host_route, host_link.index));
        }
    }
    host.apply(&mut node_side)?;
    crate::crash_point("after-node-side");

    // Pod side, one round trip: addresses, up, gateway neighbour (pinned to the node
    // side's MAC, so the pod never has to ask), default routes.
    let mut pod_side = Batch::new();
    for address in spec.addresses {
        pod_side.add_address(pod_index, address.address, true);
    }
    pod_side.set_up(pod_index, true);
    for address in spec.addresses {
        let ip = address.address.addr();
        if routed {
            pod_side.set_permanent_neighbour(pod_index, address.gateway, host_mac);
        }
        let default =
            IpNet::new(if ip.is_ipv4() { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u16; 8]) }, 0)
                .expect("prefix 0 is valid");
        // A routed pod's gateway lies outside its /32 (/128): onlink tells the kernel it is
        // reachable on the link anyway (needed for IPv4 and for a non-link-local IPv6
        // gateway from the node file).
        let onlink = routed;
        pod_side.add_route(&Route::via(default, address.gateway, pod_index, onlink));
    }
    pod.apply(&mut pod_side)?;
    enable_forwarding(spec.addresses)
}

/// Pods reach each other and the world through the node, which must forward. Set in the
/// plugin's own namespace: the node's.
fn enable_forwarding(addresses: &[PodAddress]) -> Result<(), CniError> {
    if addresses.iter().any(|a| a.address.addr().is_ipv4()) {
        weft_kernel::sysctl::ensure("net.ipv4.ip_forward", "1")?;
    }
    if addresses.iter().any(|a| a.address.addr().is_ipv6()) {
        weft_kernel::sysctl::ensure("net.ipv6.conf.all.forwarding", "1")?;
    }
    Ok(())
}

/// A name for a link on its way out, so that its old name is free at once.
fn tombstone_name() -> String {
    format!("wx{:013x}", weft_kernel::random_u64() >> 12)
}

/// Takes a pod's veth out of service: both ends down (which also drops the node's routes
/// through it) and renamed, so the names are free for a new ADD at once. Returns the node
/// side's index for the caller to delete: unregistering a device waits for an RCU grace
/// period, which the caller can leave to the kernel's time rather than the runtime's.
///
/// The pod side is touched only if it is the peer of this attachment's node side: a
/// namespace path that led somewhere unexpected (the node's own namespace, a reused
/// /proc path) must not cost anything its `ifname`. Goes on past a failure on the pod
/// side, so the node side is always retired; the first failure is returned.
pub fn retire(
    host: &mut Netlink,
    pod: Option<&mut Netlink>,
    container_id: &str,
    ifname: &str,
) -> Result<Option<u32>, CniError> {
    let Some(host_link) = host.link_by_name(&host_veth_name(container_id, ifname))? else {
        return Ok(None); // the pair is gone: nothing on either side
    };
    let mut first_error = None;
    if let (Some(pod), Some(peer)) = (pod, host_link.peer_index) {
        let pod_side = pod.link_by_name(ifname).map_err(CniError::from).and_then(|link| match link {
            Some(link) if link.index == peer && link.kind == Some(LinkKind::Veth) => pod
                .apply(Batch::new().set_up(link.index, false).rename(link.index, &tombstone_name()))
                .map_err(CniError::from),
            _ => Ok(()),
        });
        first_error = pod_side.err();
    }
    let index = host_link.index;
    host.apply(Batch::new().set_up(index, false).rename(index, &tombstone_name()))?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(Some(index)),
    }
}

/// GC: removes node-side veths of `network` whose attachment is not in `valid`, retired
/// ones that are somehow still there, and the unlabelled veths of `orphans` (attachments
/// whose reservations GC has just freed): an ADD killed between creating the pair and
/// labelling it (the kernel ignores an alias given at creation) leaves one. Goes on past a
/// failure, removing what it can; the first failure is returned.
pub fn collect_garbage(
    host: &mut Netlink,
    network: &str,
    valid: &HashSet<(String, String)>,
    orphans: &HashSet<(String, String)>,
) -> Result<Vec<String>, CniError> {
    let orphan_names: HashSet<String> =
        orphans.iter().map(|(container_id, ifname)| host_veth_name(container_id, ifname)).collect();
    let mut removed = Vec::new();
    let mut first_error = None;
    for link in host.links()? {
        let doomed = match link.alias.as_deref().map(parse_alias) {
            Some(Some((net, container_id, ifname))) => {
                net == network
                    && (link.name.starts_with("wx")
                        || !valid.contains(&(container_id.to_string(), ifname.to_string())))
            }
            Some(None) => false, // someone else's alias
            None => link.kind == Some(LinkKind::Veth) && orphan_names.contains(&link.name),
        };
        if doomed {
            match host.delete_link(link.index) {
                Err(e) if !e.is_not_found() => {
                    first_error.get_or_insert(CniError::from(e));
                }
                _ => removed.push(link.name),
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// One difference CHECK found.
fn mismatch(what: String) -> CniError {
    CniError::new(code::CHECK_MISMATCH, "pod network differs from what ADD made", what)
}

/// What CHECK expects, taken from the prevResult.
pub struct Expected<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub pod_mac: Option<&'a str>,
    pub addresses: Vec<(IpNet, Option<IpAddr>)>,
    pub attach: AttachMode,
    pub bridge: &'a str,
}

pub fn check(host: &mut Netlink, pod: &mut Netlink, expected: &Expected) -> Result<(), CniError> {
    let pod_link = pod
        .link_by_name(expected.ifname)?
        .ok_or_else(|| mismatch(format!("{} is missing from the pod", expected.ifname)))?;
    if !pod_link.up {
        return Err(mismatch(format!("{} is down", expected.ifname)));
    }
    if let (Some(want), Some(have)) = (expected.pod_mac, pod_link.mac) {
        if !want.eq_ignore_ascii_case(&format_mac(&have)) {
            return Err(mismatch(format!(
                "{} has MAC {} where ADD gave {want}",
                expected.ifname,
                format_mac(&have)
            )));
        }
    }
    let host_name = host_veth_name(expected.container_id, expected.ifname);
    let host_link = host
        .link_by_name(&host_name)?
        .ok_or_else(|| mismatch(format!("node side {host_name} is missing")))?;
    if !host_link.up {
        return Err(mismatch(format!("node side {host_name} is down")));
    }
    if host_link.alias.as_deref()
        != Some(alias_for(expected.network, expected.container_id, expected.ifname).as_str())
    {
        return Err(mismatch(format!("{host_name} does not belong to this attachment")));
    }
    if expected.attach == AttachMode::Bridge {
        let bridge = host.link_by_name(expected.bridge)?;
        if bridge.map(|b| b.index) != host_link.master || host_link.master.is_none() {
            return Err(mismatch(format!("{host_name} is not a port of bridge {}", expected.bridge)));
        }
    }
    let pod_addresses = pod.addresses()?;
    let mut pod_routes = pod.routes(false)?;
    pod_routes.extend(pod.routes(true)?);
    let mut host_routes = Vec::new();
    if expected.attach == AttachMode::Routed {
        host_routes = host.routes(false)?;
        host_routes.extend(host.routes(true)?);
    }
    for (address, gateway) in &expected.addresses {
        if !pod_addresses.contains(&(pod_link.index, *address)) {
            return Err(mismatch(format!("address {address} is missing from {}", expected.ifname)));
        }
        if let Some(gateway) = gateway {
            let has_default = pod_routes.iter().any(|r| {
                r.destination.prefix_len() == 0
                    && r.destination.addr().is_ipv4() == address.addr().is_ipv4()
                    && r.gateway == Some(*gateway)
                    && r.oif == Some(pod_link.index)
            });
            if !has_default {
                return Err(mismatch(format!("default route via {gateway} is missing from the pod")));
            }
        }
        if expected.attach == AttachMode::Routed {
            let ip = address.addr();
            let host_route = IpNet::new(ip, weft_core::addr::host_prefix_len(ip)).unwrap();
            if !host_routes.iter().any(|r| r.destination == host_route && r.oif == Some(host_link.index)) {
                return Err(mismatch(format!("node route {host_route} dev {host_name} is missing")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_round_trip() {
        let alias = alias_for("pods", "abc-1", "eth0");
        assert_eq!(parse_alias(&alias), Some(("pods", "abc-1", "eth0")));
        assert_eq!(parse_alias("someone else's"), None);
    }

    #[test]
    fn tombstones_fit_ifnamsiz() {
        let name = tombstone_name();
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("wx"));
    }
}
