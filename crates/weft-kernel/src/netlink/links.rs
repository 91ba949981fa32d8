//! Links: veth pairs, bridges, and their state.

use super::{Batch, Netlink};
use crate::{Error, Mac, NetNs, Result};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::InfoVxlan;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

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
    /// For a veth whose peer is in another namespace: that namespace's id as this namespace
    /// knows it (see [`Netlink::nsid_of`]).
    pub peer_netnsid: Option<i32>,
    /// Free text an owner attaches to a link (`ip link set X alias Y`); weft records in it
    /// which attachment a link belongs to.
    pub alias: Option<String>,
    /// For a VXLAN device: how it is set up.
    pub vxlan: Option<VxlanInfo>,
}

/// A VXLAN device's settings as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<IpAddr>,
    pub underlay: Option<u32>,
    pub learning: Option<bool>,
}

/// A VXLAN device to create: learning off (weft programs every neighbour and FDB entry
/// itself), bound to an underlay device and a local address.
#[derive(Debug, Clone)]
pub struct VxlanSpec<'a> {
    pub name: &'a str,
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    pub underlay: u32,
    pub mtu: u32,
    pub mac: Mac,
}

/// A veth pair to create: one end here, the peer optionally straight into another
/// namespace, both named and addressed in a single request.
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

fn up_flags(up: bool) -> LinkFlags {
    if up {
        LinkFlags::Up
    } else {
        LinkFlags::empty()
    }
}

impl Batch {
    fn set_link(&mut self, op: String, index: u32, edit: impl FnOnce(&mut LinkMessage)) -> &mut Batch {
        let mut link = LinkMessage::default();
        link.header.index = index;
        edit(&mut link);
        self.push(op, RouteNetlinkMessage::SetLink(link), 0)
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> &mut Batch {
        self.set_link(format!("set link #{index} {}", if up { "up" } else { "down" }), index, |l| {
            l.header.flags = up_flags(up);
            l.header.change_mask = LinkFlags::Up;
        })
    }

    /// Renames a link; the kernel requires it to be down.
    pub fn rename(&mut self, index: u32, name: &str) -> &mut Batch {
        self.set_link(format!("rename link #{index} to {name}"), index, |l| {
            l.attributes.push(LinkAttribute::IfName(name.to_string()))
        })
    }

    /// Sets the link's alias (the kernel ignores one given at creation).
    pub fn set_alias(&mut self, index: u32, alias: &str) -> &mut Batch {
        self.set_link(format!("set alias of link #{index}"), index, |l| {
            l.attributes.push(LinkAttribute::IfAlias(alias.to_string()))
        })
    }

    pub fn set_mac(&mut self, index: u32, mac: Mac) -> &mut Batch {
        self.set_link(format!("set MAC of link #{index}"), index, |l| {
            l.attributes.push(LinkAttribute::Address(mac.to_vec()))
        })
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> &mut Batch {
        self.set_link(format!("set MTU of link #{index} to {mtu}"), index, |l| {
            l.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    /// Makes the link a port of bridge `master`.
    pub fn set_master(&mut self, index: u32, master: u32) -> &mut Batch {
        self.set_link(format!("make link #{index} a port of #{master}"), index, |l| {
            l.attributes.push(LinkAttribute::Controller(master))
        })
    }

    pub fn delete_link(&mut self, index: u32) -> &mut Batch {
        let mut link = LinkMessage::default();
        link.header.index = index;
        self.push(format!("delete link #{index}"), RouteNetlinkMessage::DelLink(link), 0)
    }
}

impl Netlink {
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

    /// Creates the pair and returns this end as the kernel made it (index, peer index),
    /// looked up if the kernel did not echo it.
    pub fn create_veth(&mut self, spec: &VethSpec) -> Result<Link> {
        // The peer cannot be brought up here: the kernel opens it before the pair is
        // joined, and veth refuses that (ENOTCONN). The caller sets it up afterwards.
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(spec.peer_name.to_string()));
        peer.attributes.push(LinkAttribute::Address(spec.peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::Mtu(spec.mtu));
        // One queue each way. veth defaults to one per CPU, each with its sysfs entries,
        // which only XDP can use; on a big node that is most of the cost of a pod's veth.
        peer.attributes.push(LinkAttribute::NumTxQueues(1));
        peer.attributes.push(LinkAttribute::NumRxQueues(1));
        if let Some(ns) = spec.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        let mut link = LinkMessage::default();
        link.header.flags = up_flags(spec.up);
        link.header.change_mask = LinkFlags::Up;
        link.attributes.push(LinkAttribute::IfName(spec.name.to_string()));
        link.attributes.push(LinkAttribute::Address(spec.mac.to_vec()));
        link.attributes.push(LinkAttribute::Mtu(spec.mtu));
        link.attributes.push(LinkAttribute::NumTxQueues(1));
        link.attributes.push(LinkAttribute::NumRxQueues(1));
        if let Some(master) = spec.master {
            link.attributes.push(LinkAttribute::Controller(master));
        }
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let op = format!("create veth {} (peer {})", spec.name, spec.peer_name);
        self.create_link(op, spec.name, link)
    }

    /// Creates a VXLAN device, up, and returns it as the kernel made it.
    pub fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<Link> {
        let mut data = vec![
            InfoVxlan::Id(spec.vni),
            InfoVxlan::Port(spec.port),
            InfoVxlan::Link(spec.underlay),
            InfoVxlan::Learning(false),
        ];
        data.push(match spec.local {
            IpAddr::V4(v4) => InfoVxlan::Local(v4),
            IpAddr::V6(v6) => InfoVxlan::Local6(v6),
        });
        let mut link = LinkMessage::default();
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        link.attributes.push(LinkAttribute::IfName(spec.name.to_string()));
        link.attributes.push(LinkAttribute::Address(spec.mac.to_vec()));
        link.attributes.push(LinkAttribute::Mtu(spec.mtu));
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        let op = format!("create vxlan {} (vni {})", spec.name, spec.vni);
        self.create_link(op, spec.name, link)
    }

    /// Sends a link creation and returns the link as the kernel made it: from the kernel's
    /// echo, or looked up by name where the kernel does not echo (before 6.1).
    fn create_link(&mut self, op: String, name: &str, link: LinkMessage) -> Result<Link> {
        let echoed =
            self.change_echoed(op.clone(), RouteNetlinkMessage::NewLink(link), NLM_F_CREATE | NLM_F_EXCL)?;
        let created = echoed.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(parse_link(link)),
            _ => None,
        });
        match created {
            Some(link) if link.name == name => Ok(link),
            _ => self
                .link_by_name(name)?
                .ok_or_else(|| Error::Kernel { op, source: io::Error::from_raw_os_error(libc::ENODEV) }),
        }
    }

    /// A bridge, up: the link of that name if there is one (the caller checks its kind),
    /// else a new one. Another process creating it at the same moment is fine.
    pub fn ensure_bridge(&mut self, name: &str, mtu: u32) -> Result<Link> {
        if let Some(link) = self.link_by_name(name)? {
            return Ok(link);
        }
        let mut link = LinkMessage::default();
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        link.attributes.push(LinkAttribute::IfName(name.to_string()));
        link.attributes.push(LinkAttribute::Mtu(mtu));
        link.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        match self.create_link(format!("create bridge {name}"), name, link) {
            Err(e) if e.is_exists() => self.link_by_name(name)?.ok_or_else(|| Error::Kernel {
                op: format!("create bridge {name}"),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            }),
            created => created,
        }
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        self.apply(Batch::new().set_up(index, up))
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.apply(Batch::new().delete_link(index))
    }
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
        peer_netnsid: None,
        alias: None,
        vxlan: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(bytes) => link.mac = Mac::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Controller(master) => link.master = Some(*master),
            LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
            LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(*id),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Data(InfoData::Vxlan(settings)) = info {
                        let mut vxlan = VxlanInfo::default();
                        for setting in settings {
                            match setting {
                                InfoVxlan::Id(vni) => vxlan.vni = Some(*vni),
                                InfoVxlan::Port(port) => vxlan.port = Some(*port),
                                InfoVxlan::Local(v4) => vxlan.local = Some(IpAddr::V4(*v4)),
                                InfoVxlan::Local6(v6) => vxlan.local = Some(IpAddr::V6(*v6)),
                                InfoVxlan::Link(underlay) => vxlan.underlay = Some(*underlay),
                                InfoVxlan::Learning(learning) => vxlan.learning = Some(*learning),
                                _ => {}
                            }
                        }
                        link.vxlan = Some(vxlan);
                    }
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
