//! Addresses on links.

use super::{family_of, Batch, Netlink};
use crate::Result;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::RouteNetlinkMessage;

fn address_message(index: u32, address: IpNet, nodad: bool) -> AddressMessage {
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
    message
}

impl Batch {
    /// Adds an IPv4 `address` of host scope: the node answers ARP for it on this link but
    /// never picks it as a source address. (Leaves it as it is if the link has it.)
    pub fn ensure_host_scoped_address(&mut self, index: u32, address: IpNet) -> &mut Batch {
        let mut message = address_message(index, address, true);
        message.header.scope = AddressScope::Host;
        self.push(
            format!("ensure address {address} scope host on link #{index}"),
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn delete_address(&mut self, index: u32, address: IpNet) -> &mut Batch {
        self.push(
            format!("delete address {address} from link #{index}"),
            RouteNetlinkMessage::DelAddress(address_message(index, address, false)),
            0,
        )
    }

    /// Adds `address`, or leaves it as it is if the link has it already.
    pub fn ensure_address(&mut self, index: u32, address: IpNet, nodad: bool) -> &mut Batch {
        self.push(
            format!("ensure address {address} on link #{index}"),
            RouteNetlinkMessage::NewAddress(address_message(index, address, nodad)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Adds `address` (with its prefix length) to a link. `nodad` skips IPv6 duplicate
    /// address detection, for addresses weft's IPAM already made unique.
    pub fn add_address(&mut self, index: u32, address: IpNet, nodad: bool) -> &mut Batch {
        self.push(
            format!("add address {address} to link #{index}"),
            RouteNetlinkMessage::NewAddress(address_message(index, address, nodad)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}

impl Netlink {
    pub fn add_address(&mut self, index: u32, address: IpNet, nodad: bool) -> Result<()> {
        self.apply(Batch::new().add_address(index, address, nodad))
    }

    /// Every address of the namespace as (link index, address/prefix).
    pub fn addresses(&mut self) -> Result<Vec<(u32, IpNet)>> {
        let replies =
            self.dump("list addresses", RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(message) = reply else { continue };
            let find = |local: bool| {
                message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) if local => Some(*ip),
                    AddressAttribute::Address(ip) if !local => Some(*ip),
                    _ => None,
                })
            };
            if let Some(ip) = find(true).or(find(false)) {
                if let Ok(net) = IpNet::new(ip, message.header.prefix_len) {
                    out.push((message.header.index, net));
                }
            }
        }
        Ok(out)
    }
}
