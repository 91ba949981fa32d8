//! Following a packet through namespaces by asking each kernel on the way: its route lookup
//! (with the input interface and source a forwarded packet has), its neighbour entry for the
//! next hop, the VXLAN device's FDB for the far tunnel end, a bridge's FDB for the port. The
//! next namespace is where the veth's other end lives.

use crate::model::{Fate, Header, Hop, Outer, Trace};
use crate::TraceError;
use std::net::IpAddr;
use weft_kernel::netlink::{Lookup, Verdict};
use weft_kernel::{format_mac, Link, LinkKind, Mac, NetNs, Netlink};

/// A namespace the walk may enter, by the name people know it by.
pub struct Place {
    pub name: String,
    pub netns: String,
    pub ns: NetNs,
    /// A node that masquerades pods' traffic leaving these cluster CIDRs, one per family
    /// (weft's nft tables).
    pub masquerade: Vec<ipnet::IpNet>,
}

/// Where the walk may go: a lab's namespaces, or only this node's.
pub struct World {
    pub places: Vec<Place>,
}

const MAX_HOPS: usize = 32;

/// The packet as it travels: inner addresses, and the outer ones while encapsulated.
#[derive(Clone)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    outer: Option<(IpAddr, IpAddr, u16, u32)>,
}

impl Packet {
    fn header(&self, src_mac: Option<Mac>, dst_mac: Option<Mac>) -> Header {
        Header {
            src: self.src.to_string(),
            dst: self.dst.to_string(),
            src_mac: src_mac.as_ref().map(format_mac),
            dst_mac: dst_mac.as_ref().map(format_mac),
            outer: self.outer.map(|(src, dst, udp_port, vni)| Outer {
                src: src.to_string(),
                dst: dst.to_string(),
                udp_port,
                vni,
            }),
        }
    }

    /// The addresses routing decides on: the outer ones while encapsulated.
    fn routed(&self) -> (IpAddr, IpAddr) {
        self.outer.map_or((self.src, self.dst), |(src, dst, _, _)| (src, dst))
    }
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        12 => "bird".into(),
        186 => "bgp".into(),
        87 => "87 (weft: pod)".into(),
        88 => "88 (weft: peer)".into(),
        other => other.to_string(),
    }
}

fn describe_route(lookup: &Lookup, names: &dyn Fn(u32) -> String) -> String {
    let entry = lookup.matched.as_ref().unwrap_or(&lookup.resolved);
    let mut text = format!("route   {}", entry.destination);
    if let Some(gateway) = lookup.resolved.gateway {
        text += &format!(" via {gateway}");
    }
    if let Some(oif) = lookup.resolved.oif {
        text += &format!(" dev {}", names(oif));
    }
    text += &format!(" proto {}", protocol_name(entry.protocol));
    if entry.onlink || lookup.resolved.onlink {
        text += " onlink";
    }
    if lookup.verdict == Verdict::Local {
        text += " (local)";
    }
    text
}

struct Cursor<'w> {
    world: &'w World,
    place: usize,
    /// The interface the packet arrived on, in this place.
    ingress: Option<Link>,
    /// The Ethernet addresses the frame arrived with (a bridge forwards it by them).
    frame: (Option<String>, Option<String>),
    /// The address the frame is for at L2 (the route's gateway, or the destination).
    next_hop: Option<IpAddr>,
    /// (place, input device, encapsulated) states seen, to notice loops.
    visited: Vec<(usize, Option<String>, bool)>,
}

/// Follows a packet from `src` (an address of `from`) to `dst`.
pub fn trace(world: &World, from: &str, to: &str, src: IpAddr, dst: IpAddr) -> Result<Trace, TraceError> {
    let start = world
        .places
        .iter()
        .position(|p| p.name == from)
        .ok_or_else(|| TraceError::Invalid(format!("no place called {from}")))?;
    let mut cursor = Cursor {
        world,
        place: start,
        ingress: None,
        frame: (None, None),
        next_hop: None,
        visited: Vec::new(),
    };
    let mut packet = Packet { src, dst, outer: None };
    let mut hops = Vec::new();
    let mut delivered = false;
    while hops.len() < MAX_HOPS {
        let hop = cursor.step(&mut packet)?;
        let fate = hop.fate.clone();
        hops.push(hop);
        match fate {
            Fate::Forward => {}
            Fate::Deliver => {
                delivered = true;
                break;
            }
            Fate::Drop(_) | Fate::Leave(_) => break,
        }
    }
    Ok(Trace {
        from: from.into(),
        to: to.into(),
        src: src.to_string(),
        dst: dst.to_string(),
        hops,
        delivered,
        verified: None,
    })
}

impl Cursor<'_> {
    fn here(&self) -> &Place {
        &self.world.places[self.place]
    }

    fn netlink(&self) -> Result<Netlink, TraceError> {
        Netlink::open_in(&self.here().ns)
            .map_err(|e| TraceError::kernel(format!("netlink in {}", self.here().netns), e))
    }

    /// What happens to the packet in the current place; moves the cursor on.
    fn step(&mut self, packet: &mut Packet) -> Result<Hop, TraceError> {
        let mut nl = self.netlink()?;
        let netns = self.here().netns.clone();
        let kernel = |e| TraceError::kernel(format!("ask the kernel in {netns}"), e);
        let links = nl.links().map_err(kernel)?;
        let name_of = |index: u32| {
            links.iter().find(|l| l.index == index).map_or(format!("#{index}"), |l| l.name.clone())
        };
        let mut hop = Hop {
            place: self.here().name.clone(),
            netns: self.here().netns.clone(),
            ingress: self.ingress.as_ref().map(|l| l.name.clone()),
            egress: None,
            header: Header {
                src_mac: self.frame.0.clone(),
                dst_mac: self.frame.1.clone(),
                ..packet.header(None, None)
            },
            decided_by: Vec::new(),
            fate: Fate::Forward,
            seen: None,
            watch: self.ingress.as_ref().map(|l| (self.here().netns.clone(), l.index, false)),
        };
        // The same state twice is a loop: the packet circles until its TTL runs out.
        let state = (self.place, hop.ingress.clone(), packet.outer.is_some());
        if self.visited.contains(&state) {
            hop.fate = Fate::Drop(format!(
                "a loop: it came back to {} (it circles until its TTL runs out)",
                hop.place
            ));
            return Ok(hop);
        }
        self.visited.push(state);
        // Arriving on a bridge port: the bridge forwards it by its FDB, unless the frame is for
        // the bridge itself (a node's l2 bridge holds the node's address), which routes it.
        if let Some(port) = self.ingress.clone().filter(|l| l.master.is_some()) {
            let bridge = port.master.expect("filtered");
            (hop.header.src_mac, hop.header.dst_mac) = self.frame.clone();
            let bridge_link = links.iter().find(|l| l.index == bridge).cloned();
            let for_the_bridge = bridge_link
                .as_ref()
                .is_some_and(|b| b.mac.as_ref().map(format_mac).is_some_and(|mac| Some(mac) == self.frame.1));
            if !for_the_bridge {
                return self.cross_bridge(&mut nl, &links, bridge, hop, packet);
            }
            let bridge_link = bridge_link.expect("checked");
            hop.decided_by.push(format!("bridge  the frame is for {} itself: routed here", bridge_link.name));
            self.ingress = Some(bridge_link);
        }
        let (src, dst) = packet.routed();
        // A packet sent from here is looked up as sent from here (its source must be local);
        // a forwarded one with its input interface and source.
        let lookup = match &self.ingress {
            None => nl.route_get(dst, Some(src), None),
            Some(link) => nl.route_get(dst, Some(src), Some(link.index)),
        };
        // The kernel refusing the lookup is an answer too.
        let lookup = match lookup {
            Ok(lookup) => lookup,
            Err(e) => {
                let why = match e.errno() {
                    Some(libc::EXDEV) => format!(
                        "the reverse-path filter drops it: {src} is not reachable back through {}",
                        hop.ingress.clone().unwrap_or_default()
                    ),
                    Some(libc::EACCES) => format!("a prohibit route for {dst}"),
                    Some(libc::EHOSTUNREACH) => format!("no route to {dst} (or forwarding is off here)"),
                    Some(libc::EINVAL) => format!(
                        "no valid route to {dst} from {src} (a blackhole, or a source not allowed here)"
                    ),
                    _ => return Err(kernel(e)),
                };
                hop.fate = Fate::Drop(why);
                return Ok(hop);
            }
        };
        let Some(lookup) = lookup else {
            hop.fate = Fate::Drop(format!("no route to {dst} in {}", self.here().name));
            return Ok(hop);
        };
        hop.decided_by.push(describe_route(&lookup, &name_of));
        match lookup.verdict {
            Verdict::Unreachable => {
                hop.fate = Fate::Drop(format!("the route to {dst} here is unreachable"));
                return Ok(hop);
            }
            Verdict::Local if packet.outer.is_some() => {
                // The far end of the tunnel: the VXLAN device with this VNI takes the inner packet.
                let (_, _, port, vni) = packet.outer.expect("checked");
                let device = links.iter().find(|l| {
                    l.kind == Some(LinkKind::Vxlan) && l.vxlan.as_ref().is_some_and(|v| v.vni == Some(vni))
                });
                let Some(device) = device else {
                    hop.fate =
                        Fate::Drop(format!("no VXLAN device with VNI {vni} here to take UDP port {port}"));
                    return Ok(hop);
                };
                hop.decided_by
                    .push(format!("vxlan   {} takes VNI {vni} on UDP {port}: decapsulated", device.name));
                hop.egress = Some(device.name.clone());
                let arrived = hop.header.clone();
                packet.outer = None;
                // The inner packet arrives on the VXLAN device, in the same place.
                let mut next = self.step_from(device.clone(), packet)?;
                next.decided_by.splice(0..0, hop.decided_by);
                next.ingress = hop.ingress.clone().or(next.ingress);
                next.header.outer = arrived.outer;
                return Ok(next);
            }
            Verdict::Local => {
                hop.fate = Fate::Deliver;
                return Ok(hop);
            }
            Verdict::Unicast => {}
        }
        let Some(oif) = lookup.resolved.oif.and_then(|i| links.iter().find(|l| l.index == i).cloned()) else {
            hop.fate = Fate::Drop("the route names no output device".into());
            return Ok(hop);
        };
        let next_hop = lookup.resolved.gateway.unwrap_or(dst);
        self.next_hop = Some(next_hop);
        let neighbour = nl.neighbours(oif.index).map_err(kernel)?.into_iter().find(|n| n.ip == next_hop);
        let dst_mac = neighbour.as_ref().and_then(|n| n.mac);
        match &neighbour {
            Some(n) => hop.decided_by.push(format!(
                "neigh   {next_hop} lladdr {} {} on {}",
                n.mac.as_ref().map(format_mac).unwrap_or_else(|| "-".into()),
                n.state,
                oif.name
            )),
            None => hop.decided_by.push(format!(
                "neigh   {next_hop}: no entry on {}; the kernel would {} for it",
                oif.name,
                if next_hop.is_ipv4() { "ARP" } else { "solicit a neighbour" }
            )),
        }
        // weft's masquerade: a pod's packet leaving the cluster takes the node's address.
        let family = |net: &ipnet::IpNet| net.addr().is_ipv4() == packet.src.is_ipv4();
        if let Some(&cidr) = self.world.places[self.place].masquerade.iter().find(|c| family(c)) {
            let (inner_src, inner_dst) = (packet.src, packet.dst);
            let leaves = packet.outer.is_none() && cidr.contains(&inner_src) && !cidr.contains(&inner_dst);
            // The address masquerade picks: the route's preferred source, else the output
            // device's first address of the family.
            let address = lookup.prefsrc.or_else(|| {
                nl.addresses()
                    .ok()?
                    .into_iter()
                    .find(|(i, net)| {
                        let link_local = matches!(net.addr(), IpAddr::V6(v6) if v6.is_unicast_link_local());
                        *i == oif.index && net.addr().is_ipv4() == inner_src.is_ipv4() && !link_local
                    })
                    .map(|(_, net)| net.addr())
            });
            if let (true, Some(address)) = (leaves, address) {
                hop.decided_by.push(format!(
                    "nat     masquerade {inner_src} → {address} (weft's table: pods leaving {cidr})"
                ));
                packet.src = address;
            }
        }
        hop.egress = Some(oif.name.clone());
        hop.header = packet.header(oif.mac, dst_mac);
        hop.watch = Some((self.here().netns.clone(), oif.index, true));
        match oif.kind {
            Some(LinkKind::Vxlan) => {
                let info = oif.vxlan.clone().unwrap_or_default();
                let fdb = nl.fdb_entries(oif.index).map_err(kernel)?;
                let Some(remote) =
                    dst_mac.and_then(|mac| fdb.iter().find(|(m, _)| *m == mac).map(|(_, r)| *r))
                else {
                    hop.fate = Fate::Drop(format!("no FDB entry on {} for the next hop's MAC", oif.name));
                    return Ok(hop);
                };
                let (vni, port) = (info.vni.unwrap_or(0), info.port.unwrap_or(8472));
                hop.decided_by.push(format!(
                    "fdb     {} dst {remote} on {} (VNI {vni}, UDP {port})",
                    dst_mac.as_ref().map(format_mac).unwrap_or_default(),
                    oif.name
                ));
                let local = info.local.or(lookup.prefsrc).unwrap_or(src);
                packet.outer = Some((local, remote, port, vni));
                // The encapsulated packet is sent from this same place.
                self.ingress = None;
                Ok(hop)
            }
            Some(LinkKind::Bridge) => {
                let bridge = oif.index;
                let next = self.cross_bridge(&mut nl, &links, bridge, hop, packet)?;
                Ok(next)
            }
            _ => self.through_cable(&oif, hop),
        }
    }

    /// The inner packet arriving on `device` (a VXLAN device) in this place.
    fn step_from(&mut self, device: Link, packet: &mut Packet) -> Result<Hop, TraceError> {
        self.ingress = Some(device);
        self.frame = (None, None);
        self.step(packet)
    }

    /// A bridge forwards by its FDB to one port; that port's cable leads on.
    fn cross_bridge(
        &mut self,
        nl: &mut Netlink,
        links: &[Link],
        bridge: u32,
        mut hop: Hop,
        packet: &Packet,
    ) -> Result<Hop, TraceError> {
        let bridge_name =
            links.iter().find(|l| l.index == bridge).map_or("bridge".into(), |l| l.name.clone());
        let dst_mac = hop.header.dst_mac.clone();
        let fdb = nl.bridge_fdb(bridge).map_err(|e| TraceError::kernel("read the bridge's FDB", e))?;
        let arrived = self.ingress.as_ref().map(|l| l.index);
        let port = dst_mac
            .as_ref()
            .and_then(|mac| fdb.iter().find(|(m, p)| format_mac(m) == *mac && Some(*p) != arrived))
            .and_then(|(_, port)| links.iter().find(|l| l.index == *port));
        let port = match port {
            Some(port) => {
                hop.decided_by.push(format!(
                    "fdb     {} on port {} of {bridge_name}",
                    dst_mac.clone().unwrap_or_default(),
                    port.name
                ));
                port.clone()
            }
            None => {
                // Not learned (yet): the bridge floods; the port whose far end holds the
                // destination is the one that answers.
                let dst = self.next_hop.unwrap_or(packet.routed().1);
                let owner = links
                    .iter()
                    .filter(|l| l.master == Some(bridge) && Some(l.index) != arrived)
                    .find(|l| self.reaches(l, dst, 3));
                match owner {
                    Some(port) => {
                        hop.decided_by.push(format!(
                            "fdb     no entry for {} on {bridge_name}: flooded; {} answers behind port {}",
                            dst_mac.clone().unwrap_or_else(|| "the next hop".into()),
                            dst,
                            port.name
                        ));
                        port.clone()
                    }
                    None => {
                        hop.fate = Fate::Drop(format!("{bridge_name} knows no port for the next hop"));
                        return Ok(hop);
                    }
                }
            }
        };
        hop.egress = Some(port.name.clone());
        hop.watch = Some((self.here().netns.clone(), port.index, true));
        self.through_cable(&port, hop)
    }

    /// The packet leaves by a veth: the walk goes on at its other end.
    fn through_cable(&mut self, link: &Link, mut hop: Hop) -> Result<Hop, TraceError> {
        match self.far_end(link) {
            Some((place, peer)) => {
                self.place = place;
                self.ingress = Some(peer);
                self.frame = (hop.header.src_mac.clone(), hop.header.dst_mac.clone());
                Ok(hop)
            }
            None => {
                hop.fate = Fate::Leave(format!("by {} to a machine this trace cannot see", link.name));
                Ok(hop)
            }
        }
    }

    /// The place and link at the other end of a veth: the namespace whose id (as this one
    /// knows it) the veth names, else this namespace itself.
    fn far_end(&self, link: &Link) -> Option<(usize, Link)> {
        if link.kind != Some(LinkKind::Veth) {
            return None;
        }
        let peer_index = link.peer_index?;
        let candidates: Vec<usize> = match link.peer_netnsid {
            None => vec![self.place],
            Some(id) => {
                let mut here = Netlink::open_in(&self.here().ns).ok()?;
                (0..self.world.places.len())
                    .filter(|i| here.nsid_of(&self.world.places[*i].ns).ok().flatten() == Some(id))
                    .collect()
            }
        };
        candidates.into_iter().find_map(|i| {
            let mut nl = Netlink::open_in(&self.world.places[i].ns).ok()?;
            let peer = nl.link_by_index(peer_index).ok()??;
            (peer.kind == Some(LinkKind::Veth)).then_some((i, peer))
        })
    }

    /// Whether `ip` is at the far end of `link`, or behind a bridge there (`depth` bridges deep).
    fn reaches(&self, link: &Link, ip: IpAddr, depth: usize) -> bool {
        let Some((place, peer)) = self.far_end(link) else { return false };
        if self.owns(place, ip) {
            return true;
        }
        let (Some(bridge), true) = (peer.master, depth > 0) else { return false };
        let Ok(links) = Netlink::open_in(&self.world.places[place].ns).and_then(|mut nl| nl.links()) else {
            return false;
        };
        let there = Cursor {
            world: self.world,
            place,
            ingress: None,
            frame: (None, None),
            next_hop: None,
            visited: Vec::new(),
        };
        links
            .iter()
            .filter(|l| l.master == Some(bridge) && l.index != peer.index)
            .any(|l| there.reaches(l, ip, depth - 1))
    }

    /// Whether `ip` is an address of the place.
    fn owns(&self, place: usize, ip: IpAddr) -> bool {
        Netlink::open_in(&self.world.places[place].ns)
            .and_then(|mut nl| nl.addresses())
            .is_ok_and(|addresses| addresses.iter().any(|(_, net)| net.addr() == ip))
            || Netlink::open_in(&self.world.places[place].ns)
                .and_then(|mut nl| nl.route_get(ip, None, None))
                .is_ok_and(|l| l.is_some_and(|l| l.verdict == Verdict::Local))
    }
}
