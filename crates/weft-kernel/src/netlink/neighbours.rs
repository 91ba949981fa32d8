//! Neighbour (ARP/NDP) entries.

use super::{family_of, Batch, Netlink};
use crate::{Mac, Result};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::IpAddr;

impl Batch {
    /// Sets a permanent neighbour entry (adds it, or replaces what is there).
    pub fn set_permanent_neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac) -> &mut Batch {
        self.neighbour(index, ip, mac, NeighbourState::Permanent)
    }

    fn neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac, state: NeighbourState) -> &mut Batch {
        let mut message = NeighbourMessage::default();
        message.header.family = family_of(&ip);
        message.header.ifindex = index;
        message.header.state = state;
        message.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.push(
            format!("set neighbour {ip} on link #{index}"),
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }
}

impl Netlink {
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
}
