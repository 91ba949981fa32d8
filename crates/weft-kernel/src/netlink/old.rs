//! A synchronous NETLINK_ROUTE socket with typed operations on the objects weft manages.
//!
//! Every request asks for an ACK, so a failure is reported by the call that caused it,
//! with the errno the kernel gave.

use crate::{Error, Mac, NetNs, Result};
use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
    RouteScope as NlScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Routes weft installs carry this protocol number, so weft can tell its own routes from
/// everyone else's and never touch the others. (`ip route` shows it as "proto 87".)
pub const WEFT_ROUTE_PROTOCOL: u8 = 87;
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;
/// The loopback device's index in every namespace.
pub const LOOPBACK_INDEX: u32 = 1;

pub struct Netlink {
    socket: Socket,
    sequence: u32,
    recv_buf: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Veth,
    Bridge,
    Vxlan,
    Dummy,
    Other(String),
}

/// What weft needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub up: bool,
    /// The bridge (or other controller) this link is a port of.
    pub master: Option<u32>,
    pub kind: Option<LinkKind>,
    /// For a veth: the peer's index, in the peer's namespace.
    pub peer_index: Option<u32>,
    /// Free text an owner attaches to a link (`ip link set X alias Y`); weft records in it
    /// which attachment a link belongs to.
    pub alias: Option<String>,
}

/// A veth pair to create: one end here, the peer optionally straight into another
/// namespace, both named, addressed and (optionally) up in a single request.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    pub name: &'a str,
    pub mac: Mac,
    pub mtu: u32,
    /// Bridge to join, by index.
    pub master: Option<u32>,
    pub peer_name: &'a str,
    pub peer_mac: Mac,
    pub peer_netns: Option<&'a NetNs>,
    /// Bring this end (not the peer) up.
    pub up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScope {
    Universe,
    Link,
    Host,
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub scope: RouteScope,
    /// Use the gateway even though no address of the device covers it.
    pub onlink: bool,
    pub table: u32,
    pub protocol: u8,
    pub metric: Option<u32>,
}

impl Route {
    /// A route as weft installs it: main table, weft's protocol number.
    pub fn new(destination: IpNet) -> Self {
        Route {
            destination: destination.trunc(),
            gateway: None,
            oif: None,
            scope: RouteScope::Universe,
            onlink: false,
            table: MAIN_TABLE,
            protocol: WEFT_ROUTE_PROTOCOL,
            metric: None,
        }
    }

    /// `destination dev oif scope link`
    pub fn direct(destination: IpNet, oif: u32) -> Self {
        Route { oif: Some(oif), scope: RouteScope::Link, ..Route::new(destination) }
    }

    /// `destination via gateway dev oif [onlink]`
    pub fn via(destination: IpNet, gateway: IpAddr, oif: u32, onlink: bool) -> Self {
        Route { gateway: Some(gateway), oif: Some(oif), onlink, ..Route::new(destination) }
    }

    /// Whether `self` (as read from the kernel) is the route `wanted` asks for. Fields
    /// `wanted` leaves open (metric) match anything.
    pub fn satisfies(&self, wanted: &Route) -> bool {
        self.destination == wanted.destination
            && self.gateway == wanted.gateway
            && (wanted.oif.is_none() || self.oif == wanted.oif)
            && self.table == wanted.table
            && (wanted.metric.is_none() || self.metric == wanted.metric)
    }
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("open netlink socket", e))?;
        socket.bind_auto().map_err(|e| Error::io("bind netlink socket", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| Error::io("connect netlink socket", e))?;
        Ok(Netlink { socket, sequence: 0, recv_buf: vec![0; 64 * 1024] })
    }

    /// A socket bound to `ns`. The socket keeps talking to that namespace after the thread
    /// has gone back to its own.
    pub fn open_in(ns: &NetNs) -> Result<Self> {
        ns.run(Self::open)?
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(|e| Error::io("send netlink request", e))?;
        Ok(self.sequence)
    }

    /// Reads replies to `sequence` until an ACK (or error) or, for dumps, DONE.
    fn receive(&mut self, op: &str, sequence: u32) -> Result<Vec<RouteNetlinkMessage>> {
        let mut replies = Vec::new();
        loop {
            let size = self
                .socket
                .recv(&mut &mut self.recv_buf[..], 0)
                .map_err(|e| Error::io(format!("{op}: receive netlink reply"), e))?;
            let mut offset = 0;
            while offset < size {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.recv_buf[offset..size])
                        .map_err(|e| Error::Decode { op: op.to_string(), detail: e.to_string() })?;
                let length = message.header.length as usize;
                if length == 0 {
                    return Err(Error::Decode { op: op.into(), detail: "zero-length message".into() });
                }
                offset += (length + 3) & !3;
                if message.header.sequence_number != sequence {
                    continue; // a late reply to an earlier request
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(code) => Err(Error::Kernel {
                                op: op.to_string(),
                                source: io::Error::from_raw_os_error(-code.get()),
                            }),
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A change (new, set, delete): returns once the kernel has acknowledged it.
    fn change(&mut self, op: &str, message: RouteNetlinkMessage, flags: u16) -> Result<()> {
        let sequence = self.send(message, flags | NLM_F_ACK)?;
        self.receive(op, sequence).map(drop)
    }

    fn dump(&mut self, op: &str, message: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        let sequence = self.send(message, NLM_F_DUMP)?;
        self.receive(op, sequence)
    }

    fn get(&mut self, op: &str, message: RouteNetlinkMessage) -> Result<RouteNetlinkMessage> {
        let sequence = self.send(message, NLM_F_ACK)?;
        self.receive(op, sequence)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Decode { op: op.into(), detail: "no reply".into() })
    }

    // ---- links ----------------------------------------------------------------------

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut request = LinkMessage::default();
        request.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(&format!("look up link {name}"), request)
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        self.get_link(&format!("look up link #{index}"), request)
    }

    fn get_link(&mut self, op: &str, request: LinkMessage) -> Result<Option<Link>> {
        match self.get(op, RouteNetlinkMessage::GetLink(request)) {
            Ok(RouteNetlinkMessage::NewLink(message)) => Ok(Some(parse_link(&message))),
            Ok(other) => Err(Error::Decode { op: op.into(), detail: format!("{other:?}") }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.dump("list links", RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(parse_link(link)),
                _ => None,
            })
            .collect())
    }

    pub fn create_veth(&mut self, spec: &VethSpec) -> Result<()> {
        let flags = if spec.up { LinkFlags::Up } else { LinkFlags::empty() };
        // The peer cannot be brought up here: the kernel opens it before the pair is
        // joined, and veth refuses that (ENOTCONN). The caller sets it up afterwards.
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(spec.peer_name.to_string()));
        peer.attributes.push(LinkAttribute::Address(spec.peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::Mtu(spec.mtu));
        if let Some(ns) = spec.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        let mut link = LinkMessage::default();
        link.header.flags = flags;
        link.header.change_mask = LinkFlags::Up;
        link.attributes.push(LinkAttribute::IfName(spec.name.to_string()));
        link.attributes.push(LinkAttribute::Address(spec.mac.to_vec()));
        link.attributes.push(LinkAttribute::Mtu(spec.mtu));
        if let Some(master) = spec.master {
            link.attributes.push(LinkAttribute::Controller(master));
        }
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.change(
            &format!("create veth {} (peer {})", spec.name, spec.peer_name),
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a link of a kind that needs no further data (bridge, dummy), up.
    /// Succeeds without change if a link of that name exists already.
    pub fn ensure_simple_link(&mut self, name: &str, kind: LinkKind, mtu: Option<u32>) -> Result<Link> {
        if let Some(link) = self.link_by_name(name)? {
            return Ok(link);
        }
        let info_kind = match &kind {
            LinkKind::Bridge => InfoKind::Bridge,
            LinkKind::Dummy => InfoKind::Dummy,
            other => {
                return Err(Error::io(
                    format!("create {name}"),
                    io::Error::new(io::ErrorKind::Unsupported, format!("kind {other:?} needs data")),
                ))
            }
        };
        let mut link = LinkMessage::default();
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        link.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            link.attributes.push(LinkAttribute::Mtu(mtu));
        }
        link.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(info_kind)]));
        match self.change(
            &format!("create {name}"),
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {} // another process won the race: fine
            Err(e) => return Err(e),
        }
        self.link_by_name(name)?.ok_or_else(|| Error::Kernel {
            op: format!("create {name}"),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    fn set_link(&mut self, op: &str, index: u32, edit: impl FnOnce(&mut LinkMessage)) -> Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        edit(&mut link);
        self.change(op, RouteNetlinkMessage::SetLink(link), 0)
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        self.set_link(&format!("set link #{index} {}", if up { "up" } else { "down" }), index, |l| {
            l.header.flags = if up { LinkFlags::Up } else { LinkFlags::empty() };
            l.header.change_mask = LinkFlags::Up;
        })
    }

    /// Renames a link; the kernel requires it to be down.
    pub fn rename(&mut self, index: u32, name: &str) -> Result<()> {
        self.set_link(&format!("rename link #{index} to {name}"), index, |l| {
            l.attributes.push(LinkAttribute::IfName(name.to_string()))
        })
    }

    /// Sets the link's alias (the kernel ignores one given at creation).
    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.set_link(&format!("set alias of link #{index}"), index, |l| {
            l.attributes.push(LinkAttribute::IfAlias(alias.to_string()))
        })
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_link(&format!("set MTU of link #{index} to {mtu}"), index, |l| {
            l.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        self.change(&format!("delete link #{index}"), RouteNetlinkMessage::DelLink(link), 0)
    }

    /// Sends a link deletion without waiting for the kernel to finish it. Unregistering a
    /// device waits for an RCU grace period (≈ 17 ms here); a caller that has nothing left
    /// to do with the link can go on while the kernel completes it. Used from a child
    /// process that owns nothing else.
    pub fn delete_link_no_wait(&mut self, index: u32) -> Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        self.send(RouteNetlinkMessage::DelLink(link), 0).map(drop)
    }

    // ---- addresses ------------------------------------------------------------------

    /// Adds `address` (with its prefix length) to a link. `nodad` skips IPv6 duplicate
    /// address detection, for addresses weft's IPAM already made unique.
    pub fn add_address(&mut self, index: u32, address: IpNet, nodad: bool) -> Result<()> {
        let ip = address.addr();
        let mut message = AddressMessage::default();
        message.header.family = family_of(&ip);
        message.header.prefix_len = address.prefix_len();
        message.header.index = index;
        message.attributes.push(AddressAttribute::Local(ip));
        message.attributes.push(AddressAttribute::Address(ip));
        if nodad {
            message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.change(
            &format!("add address {address} to link #{index}"),
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Every address of the namespace as (link index, address/prefix).
    pub fn addresses(&mut self) -> Result<Vec<(u32, IpNet)>> {
        let replies =
            self.dump("list addresses", RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        let mut out = Vec::new();
        for reply in replies {
            if let RouteNetlinkMessage::NewAddress(message) = reply {
                let local = message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let address = message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                if let Some(ip) = local.or(address) {
                    if let Ok(net) = IpNet::new(ip, message.header.prefix_len) {
                        out.push((message.header.index, net));
                    }
                }
            }
        }
        Ok(out)
    }

    // ---- routes ---------------------------------------------------------------------

    fn route_message(route: &Route) -> RouteMessage {
        let mut message = RouteMessage::default();
        let dst = route.destination;
        message.header.address_family = family_of(&dst.addr());
        message.header.destination_prefix_length = dst.prefix_len();
        message.header.table =
            if route.table < 256 { route.table as u8 } else { RouteHeader::RT_TABLE_UNSPEC };
        message.header.protocol = RouteProtocol::from(route.protocol);
        message.header.scope = match route.scope {
            RouteScope::Universe => NlScope::Universe,
            RouteScope::Link => NlScope::Link,
            RouteScope::Host => NlScope::Host,
            RouteScope::Other(n) => NlScope::from(n),
        };
        message.header.kind = RouteType::Unicast;
        if route.onlink {
            message.header.flags = RouteFlags::Onlink;
        }
        if dst.prefix_len() > 0 {
            message.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
        }
        if let Some(gateway) = route.gateway {
            message.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        }
        if let Some(oif) = route.oif {
            message.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(metric) = route.metric {
            message.attributes.push(RouteAttribute::Priority(metric));
        }
        message.attributes.push(RouteAttribute::Table(route.table));
        message
    }

    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        self.change(
            &format!("add route {}", describe_route(route)),
            RouteNetlinkMessage::NewRoute(Self::route_message(route)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds the route, or replaces a route to the same destination (same table, metric).
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        self.change(
            &format!("replace route {}", describe_route(route)),
            RouteNetlinkMessage::NewRoute(Self::route_message(route)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn delete_route(&mut self, route: &Route) -> Result<()> {
        let mut message = Self::route_message(route);
        // Match on destination/gateway/oif/table only: protocol and scope as read back may
        // differ from what was asked for.
        message.header.protocol = RouteProtocol::Unspec;
        message.header.scope = NlScope::NoWhere;
        self.change(
            &format!("delete route {}", describe_route(route)),
            RouteNetlinkMessage::DelRoute(message),
            0,
        )
    }

    /// The unicast routes of one address family, every table.
    pub fn routes(&mut self, v6: bool) -> Result<Vec<Route>> {
        let mut request = RouteMessage::default();
        request.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        let replies = self.dump("list routes", RouteNetlinkMessage::GetRoute(request))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Unicast => parse_route(r),
                _ => None,
            })
            .collect())
    }

    // ---- neighbours -----------------------------------------------------------------

    /// Sets a permanent neighbour entry (adds it, or replaces what is there).
    pub fn set_permanent_neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = family_of(&ip);
        message.header.ifindex = index;
        message.header.state = NeighbourState::Permanent;
        message.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.change(
            &format!("set neighbour {ip} on link #{index}"),
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Permanent neighbour entries as (link index, IP, MAC).
    pub fn permanent_neighbours(&mut self) -> Result<Vec<(u32, IpAddr, Mac)>> {
        let replies =
            self.dump("list neighbours", RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewNeighbour(message) = reply else { continue };
            if message.header.state != NeighbourState::Permanent {
                continue;
            }
            let ip = message.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            });
            let mac = message.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(bytes) => Mac::try_from(bytes.as_slice()).ok(),
                _ => None,
            });
            if let (Some(ip), Some(mac)) = (ip, mac) {
                out.push((message.header.ifindex, ip, mac));
            }
        }
        Ok(out)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn describe_route(route: &Route) -> String {
    let mut text = route.destination.to_string();
    if let Some(gateway) = route.gateway {
        text += &format!(" via {gateway}");
    }
    if let Some(oif) = route.oif {
        text += &format!(" dev #{oif}");
    }
    if route.onlink {
        text += " onlink";
    }
    text
}

fn parse_link(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
        master: None,
        kind: None,
        peer_index: None,
        alias: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(bytes) => link.mac = Mac::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Controller(master) => link.master = Some(*master),
            LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(match kind {
                            InfoKind::Veth => LinkKind::Veth,
                            InfoKind::Bridge => LinkKind::Bridge,
                            InfoKind::Vxlan => LinkKind::Vxlan,
                            InfoKind::Dummy => LinkKind::Dummy,
                            other => LinkKind::Other(other.to_string()),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn parse_route(message: &RouteMessage) -> Option<Route> {
    let header = &message.header;
    let v6 = header.address_family == AddressFamily::Inet6;
    let mut destination = None;
    let mut route = Route {
        destination: IpNet::default(),
        gateway: None,
        oif: None,
        scope: match header.scope {
            NlScope::Universe => RouteScope::Universe,
            NlScope::Link => RouteScope::Link,
            NlScope::Host => RouteScope::Host,
            other => RouteScope::Other(u8::from(other)),
        },
        onlink: header.flags.contains(RouteFlags::Onlink),
        table: u32::from(header.table),
        protocol: u8::from(header.protocol),
        metric: None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => destination = route_address(address),
            RouteAttribute::Gateway(address) => route.gateway = route_address(address),
            RouteAttribute::Oif(oif) => route.oif = Some(*oif),
            RouteAttribute::Table(table) => route.table = *table,
            RouteAttribute::Priority(metric) => route.metric = Some(*metric),
            _ => {}
        }
    }
    let unspecified: IpAddr =
        if v6 { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
    route.destination =
        IpNet::new(destination.unwrap_or(unspecified), header.destination_prefix_length).ok()?;
    Some(route)
}
