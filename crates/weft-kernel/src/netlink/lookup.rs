//! Asking the kernel what it would do with one packet: the route lookup (`ip route get`,
//! with the input interface and source of a forwarded packet), the neighbour entry for a
//! next hop, and the bridge's FDB. For `weft trace`, which explains a path from the
//! kernel's own answers rather than from weft's plan.

use super::routes::{parse_route, route_address};
use super::{family_of, Netlink};
use crate::{Mac, Result, Route};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// What kind of route decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded or sent out of `oif`.
    Unicast,
    /// Addressed to this namespace.
    Local,
    /// An unreachable, blackhole or prohibit route, or no route at all.
    Unreachable,
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub verdict: Verdict,
    /// The route as resolved for this packet: output device, gateway.
    pub resolved: Route,
    /// The routing table's entry that matched (its prefix, protocol, flags).
    pub matched: Option<Route>,
    /// The source address the kernel would pick.
    pub prefsrc: Option<IpAddr>,
}

/// One neighbour entry, in any state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: Option<Mac>,
    pub state: String,
}

fn route_request(dst: IpAddr, src: Option<IpAddr>, iif: Option<u32>, fib_match: bool) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family_of(&dst);
    message.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
    if fib_match {
        message.header.flags = RouteFlags::FibMatch;
    }
    message.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst)));
    if let Some(src) = src {
        message.header.source_prefix_length = if src.is_ipv4() { 32 } else { 128 };
        message.attributes.push(RouteAttribute::Source(RouteAddress::from(src)));
    }
    if let Some(iif) = iif {
        message.attributes.push(RouteAttribute::Iif(iif));
    }
    message
}

impl Netlink {
    /// The kernel's route lookup for a packet to `dst` from `src`, arriving on `iif` (None:
    /// sent from this namespace). `Ok(None)` when the kernel has no route at all; other
    /// refusals (EXDEV from reverse-path filtering, EACCES, EHOSTUNREACH, EINVAL) come back
    /// as errors for the caller to explain.
    pub fn route_get(
        &mut self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<u32>,
    ) -> Result<Option<Lookup>> {
        let op = format!("look up the route to {dst}");
        let reply = match self.get(&op, RouteNetlinkMessage::GetRoute(route_request(dst, src, iif, false))) {
            Ok(RouteNetlinkMessage::NewRoute(reply)) => reply,
            Ok(_) => return Ok(None),
            Err(e) if e.errno() == Some(libc::ENETUNREACH) => return Ok(None),
            Err(e) => return Err(e),
        };
        let verdict = match reply.header.kind {
            RouteType::Unicast => Verdict::Unicast,
            RouteType::Local | RouteType::Broadcast | RouteType::Multicast => Verdict::Local,
            _ => Verdict::Unreachable,
        };
        let prefsrc = reply.attributes.iter().find_map(|a| match a {
            RouteAttribute::PrefSource(address) => route_address(address),
            _ => None,
        });
        let Some(resolved) = parse_route(&reply) else { return Ok(None) };
        // The entry that matched (kernel 4.13+): its prefix and protocol.
        let matched = match self.get(&op, RouteNetlinkMessage::GetRoute(route_request(dst, src, iif, true))) {
            Ok(RouteNetlinkMessage::NewRoute(entry)) => parse_route(&entry),
            _ => None,
        };
        Ok(Some(Lookup { verdict, resolved, matched, prefsrc }))
    }

    /// Every neighbour entry on link `index`, whatever its state.
    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>> {
        let replies =
            self.dump("list neighbours", RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()))?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(message) if message.header.ifindex == index => {
                    Some(message)
                }
                _ => None,
            })
            .filter_map(|message| {
                let ip = message.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                    _ => None,
                })?;
                let mac = message.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(bytes) => Mac::try_from(bytes.as_slice()).ok(),
                    _ => None,
                });
                let state = match message.header.state {
                    NeighbourState::Permanent => "permanent",
                    NeighbourState::Reachable => "reachable",
                    NeighbourState::Stale => "stale",
                    NeighbourState::Delay => "delay",
                    NeighbourState::Probe => "probe",
                    NeighbourState::Failed => "failed",
                    NeighbourState::Incomplete => "incomplete",
                    NeighbourState::Noarp => "noarp",
                    _ => "none",
                };
                Some(Neighbour { ip, mac, state: state.into() })
            })
            .collect())
    }

    /// The id this namespace gives `other` (what its veths' `peer_netnsid` say), if any.
    pub fn nsid_of(&mut self, other: &crate::NetNs) -> Result<Option<i32>> {
        use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
        use std::os::fd::AsRawFd;
        let mut request = NsidMessage::default();
        request.attributes.push(NsidAttribute::Fd(other.as_raw_fd() as u32));
        let reply = self.get("ask for a namespace id", RouteNetlinkMessage::GetNsId(request))?;
        let RouteNetlinkMessage::NewNsId(reply) = reply else { return Ok(None) };
        Ok(reply.attributes.iter().find_map(|a| match a {
            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
            _ => None,
        }))
    }

    /// A bridge's forwarding database: which port each MAC sits behind, as (MAC, port
    /// index). Entries of the bridge itself (its own MACs) are left out.
    pub fn bridge_fdb(&mut self, bridge: u32) -> Result<Vec<(Mac, u32)>> {
        let mut request = NeighbourMessage::default();
        request.header.family = AddressFamily::Bridge;
        let replies = self.dump("list the bridge's FDB", RouteNetlinkMessage::GetNeighbour(request))?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(message) => Some(message),
                _ => None,
            })
            .filter(|message| {
                message.header.ifindex != bridge
                    && message
                        .attributes
                        .iter()
                        .any(|a| matches!(a, NeighbourAttribute::Controller(m) if *m == bridge))
            })
            .filter_map(|message| {
                let mac = message.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(bytes) => Mac::try_from(bytes.as_slice()).ok(),
                    _ => None,
                })?;
                Some((mac, message.header.ifindex))
            })
            .collect())
    }
}
