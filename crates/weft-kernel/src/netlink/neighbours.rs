//! Neighbour (ARP/NDP) entries, and the FDB entries of VXLAN devices.

use super::{family_of, Batch, Netlink};
use crate::{Mac, Result};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

fn address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

/// An FDB entry of a VXLAN device (AF_BRIDGE, NTF_SELF): `mac` is at the VTEP `remote`.
fn fdb_message(index: u32, mac: Mac, remote: IpAddr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.flags = NeighbourFlags::Own;
    message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    message.attributes.push(NeighbourAttribute::Destination(address(remote)));
    message
}

impl Batch {
    /// Sets a permanent neighbour entry (adds it, or replaces what is there).
    pub fn set_permanent_neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac) -> &mut Batch {
        self.neighbour(index, ip, mac, NeighbourState::Permanent)
    }

    /// A permanent forwarding entry on a VXLAN device (`bridge fdb replace MAC dev DEV dst
    /// REMOTE self permanent`): frames for `mac` go to the VTEP at `remote`.
    pub fn set_fdb_entry(&mut self, index: u32, mac: Mac, remote: IpAddr) -> &mut Batch {
        let mut message = fdb_message(index, mac, remote);
        message.header.state = NeighbourState::Permanent;
        self.push(
            format!("set FDB entry {} dst {remote} on link #{index}", crate::format_mac(&mac)),
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn delete_neighbour(&mut self, index: u32, ip: IpAddr) -> &mut Batch {
        let mut message = NeighbourMessage::default();
        message.header.family = family_of(&ip);
        message.header.ifindex = index;
        message.attributes.push(NeighbourAttribute::Destination(address(ip)));
        self.push(
            format!("delete neighbour {ip} on link #{index}"),
            RouteNetlinkMessage::DelNeighbour(message),
            0,
        )
    }

    pub fn delete_fdb_entry(&mut self, index: u32, mac: Mac, remote: IpAddr) -> &mut Batch {
        self.push(
            format!("delete FDB entry {} on link #{index}", crate::format_mac(&mac)),
            RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, remote)),
            0,
        )
    }

    fn neighbour(&mut self, index: u32, ip: IpAddr, mac: Mac, state: NeighbourState) -> &mut Batch {
        let mut message = NeighbourMessage::default();
        message.header.family = family_of(&ip);
        message.header.ifindex = index;
        message.header.state = state;
        message.attributes.push(NeighbourAttribute::Destination(address(ip)));
        message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.push(
            format!("set neighbour {ip} on link #{index}"),
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }
}

impl Netlink {
    /// Permanent FDB entries of one device as (MAC, remote VTEP).
    pub fn fdb_entries(&mut self, index: u32) -> Result<Vec<(Mac, IpAddr)>> {
        let mut request = NeighbourMessage::default();
        request.header.family = AddressFamily::Bridge;
        let replies = self.dump("list FDB entries", RouteNetlinkMessage::GetNeighbour(request))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewNeighbour(message) = reply else { continue };
            if message.header.ifindex != index || message.header.state != NeighbourState::Permanent {
                continue;
            }
            let mac = message.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(bytes) => Mac::try_from(bytes.as_slice()).ok(),
                _ => None,
            });
            // In an AF_BRIDGE message the destination comes as raw bytes: 4 or 16 of them.
            let remote = message.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => match bytes.len() {
                    4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
                    _ => None,
                },
                _ => None,
            });
            if let (Some(mac), Some(remote)) = (mac, remote) {
                out.push((mac, remote));
            }
        }
        Ok(out)
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
}
