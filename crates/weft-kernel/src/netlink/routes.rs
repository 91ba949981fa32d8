//! Routes: weft's own carry the protocol number [`WEFT_ROUTE_PROTOCOL`].

use super::{family_of, Batch, Netlink};
use crate::Result;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
    RouteScope as NlScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// Routes weft installs carry this protocol number, so weft can tell its own routes from
/// everyone else's and never touch the others. (`ip route` shows it as "proto 87".)
pub const WEFT_ROUTE_PROTOCOL: u8 = 87;
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

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
    /// The next hops of a multipath (ECMP) route, as the kernel reports them; empty for a
    /// route with one next hop (`gateway`, `oif`). Read only: weft installs no such route.
    pub multipath: Vec<NextHop>,
}

/// One next hop of a multipath route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub oif: u32,
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
            multipath: Vec::new(),
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
}

fn route_message(route: &Route) -> RouteMessage {
    let mut message = RouteMessage::default();
    let dst = route.destination;
    message.header.address_family = family_of(&dst.addr());
    message.header.destination_prefix_length = dst.prefix_len();
    message.header.table = if route.table < 256 { route.table as u8 } else { RouteHeader::RT_TABLE_UNSPEC };
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

impl Batch {
    pub fn add_route(&mut self, route: &Route) -> &mut Batch {
        self.push(
            format!("add route {}", describe_route(route)),
            RouteNetlinkMessage::NewRoute(route_message(route)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds the route, or replaces a route to the same destination (same table, metric).
    pub fn replace_route(&mut self, route: &Route) -> &mut Batch {
        self.push(
            format!("replace route {}", describe_route(route)),
            RouteNetlinkMessage::NewRoute(route_message(route)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn delete_route(&mut self, route: &Route) -> &mut Batch {
        let mut message = route_message(route);
        // Match on destination/gateway/oif/table only: protocol and scope as read back may
        // differ from what was asked for.
        message.header.protocol = RouteProtocol::Unspec;
        message.header.scope = NlScope::NoWhere;
        self.push(
            format!("delete route {}", describe_route(route)),
            RouteNetlinkMessage::DelRoute(message),
            0,
        )
    }
}

impl Netlink {
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

pub(super) fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

pub(super) fn parse_route(message: &RouteMessage) -> Option<Route> {
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
        multipath: Vec::new(),
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => destination = route_address(address),
            RouteAttribute::Gateway(address) => route.gateway = route_address(address),
            RouteAttribute::Oif(oif) => route.oif = Some(*oif),
            RouteAttribute::Table(table) => route.table = *table,
            RouteAttribute::Priority(metric) => route.metric = Some(*metric),
            RouteAttribute::MultiPath(hops) => {
                route.multipath = hops
                    .iter()
                    .map(|hop| NextHop {
                        gateway: hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(address) => route_address(address),
                            _ => None,
                        }),
                        oif: hop.interface_index,
                    })
                    .collect();
            }
            _ => {}
        }
    }
    let unspecified: IpAddr =
        if v6 { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
    route.destination =
        IpNet::new(destination.unwrap_or(unspecified), header.destination_prefix_length).ok()?;
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteNextHop;
    use std::net::Ipv4Addr;

    #[test]
    fn a_multipath_route_keeps_every_next_hop() {
        let hop = |last: u8, oif: u32| {
            let mut hop = RouteNextHop::default();
            hop.interface_index = oif;
            hop.attributes =
                vec![RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, last, 200 + last)))];
            hop
        };
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = 16;
        message.header.kind = RouteType::Unicast;
        message.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 244, 0, 0))),
            RouteAttribute::MultiPath(vec![hop(1, 3), hop(2, 4)]),
        ];
        let route = parse_route(&message).unwrap();
        assert_eq!(route.destination.to_string(), "10.244.0.0/16");
        assert_eq!(route.gateway, None);
        let hops: Vec<(String, u32)> =
            route.multipath.iter().map(|h| (h.gateway.unwrap().to_string(), h.oif)).collect();
        assert_eq!(hops, [("198.18.1.201".to_string(), 3), ("198.18.2.202".to_string(), 4)]);
    }
}
