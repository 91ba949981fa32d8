//! BGP-4 messages (RFC 4271) as weft needs them: OPEN with capabilities (multiprotocol
//! IPv4 and IPv6 unicast, 4-octet AS numbers, RFC 6793), UPDATE for IPv4 unicast and, in
//! MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760), IPv6 unicast, NOTIFICATION and KEEPALIVE. Pure: bytes in, messages out, and a decoding error carries the NOTIFICATION
//! the peer should get.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The 2-octet stand-in for a 4-octet AS number (RFC 6793).
pub const AS_TRANS: u16 = 23456;

const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;

const CAPABILITIES: u8 = 2;
const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_FOUR_OCTET_AS: u8 = 65;
const CAP_GRACEFUL_RESTART: u8 = 64;

const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const ATTR_LOCAL_PREF: u8 = 5;
const ATTR_MP_REACH_NLRI: u8 = 14;
const ATTR_MP_UNREACH_NLRI: u8 = 15;
/// Address family identifiers (IANA) and the unicast SAFI.
const AFI_IPV4: u16 = 1;
const AFI_IPV6: u16 = 2;
const SAFI_UNICAST: u8 = 1;
const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_EXTENDED_LENGTH: u8 = 0x10;
const AS_SEQUENCE: u8 = 2;
pub const ORIGIN_IGP: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    /// The peer can carry 4-octet AS numbers (and then `asn` is its real number).
    pub four_octet_as: bool,
    /// The peer offers IPv4 unicast by capability (no capability means IPv4 unicast too).
    pub ipv4_unicast: bool,
    /// The peer offers IPv6 unicast by capability (RFC 4760).
    pub ipv6_unicast: bool,
    /// Graceful restart (RFC 4724) for IPv4 unicast: the restart time in seconds, and
    /// whether forwarding is kept while the speaker is away.
    pub graceful_restart: Option<GracefulRestart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestart {
    pub restart_time: u16,
    /// The speaker has just restarted (the R bit).
    pub restarting: bool,
    /// Its forwarding state (the kernel's routes) survived (the F bit, for every family
    /// the OPEN offers).
    pub forwarding_kept: bool,
}

/// MP_REACH_NLRI for IPv6 unicast: IPv6 prefixes and their next hop (a global address, and
/// optionally the same interface's link-local one, RFC 2545).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub next_hop: Ipv6Addr,
    pub link_local: Option<Ipv6Addr>,
    pub nlri: Vec<Ipv6Net>,
}

/// An UPDATE: IPv4 unicast in its own fields, IPv6 unicast in the multiprotocol
/// attributes. Attributes weft does not use (and other families' MP attributes) are kept
/// only as their codes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub origin: Option<u8>,
    pub as_path: Vec<u32>,
    pub next_hop: Option<Ipv4Addr>,
    pub local_pref: Option<u32>,
    /// IPv6 unicast announced.
    pub mp_reach: Option<MpReach>,
    /// IPv6 unicast withdrawn (`Some` of none: IPv6's End-of-RIB, RFC 4724).
    pub mp_unreach: Option<Vec<Ipv6Net>>,
    pub other_attributes: Vec<u8>,
    pub nlri: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8) -> Notification {
        Notification { code, subcode, data: Vec::new() }
    }

    /// Cease, administrative shutdown (RFC 4486): how weft says goodbye.
    pub fn shutdown() -> Notification {
        Notification::new(6, 2)
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (self.code, self.subcode) {
            (1, 1) => "message header error: connection not synchronised",
            (1, 2) => "message header error: bad message length",
            (1, 3) => "message header error: bad message type",
            (1, _) => "message header error",
            (2, 1) => "OPEN error: unsupported version number",
            (2, 2) => "OPEN error: bad peer AS",
            (2, 3) => "OPEN error: bad BGP identifier",
            (2, 6) => "OPEN error: unacceptable hold time",
            (2, _) => "OPEN error",
            (3, _) => "UPDATE error",
            (4, _) => "hold timer expired",
            (5, _) => "finite state machine error",
            (6, 2) => "cease: administrative shutdown",
            (6, 3) => "cease: peer de-configured",
            (6, 4) => "cease: administrative reset",
            (6, _) => "cease",
            _ => "unknown error",
        };
        write!(f, "{what} ({}/{})", self.code, self.subcode)
    }
}

/// Why bytes are not a message: the NOTIFICATION to send before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {why} (answered with {notification})")]
pub struct DecodeError {
    pub notification: Notification,
    pub why: String,
}

fn error(code: u8, subcode: u8, why: impl Into<String>) -> DecodeError {
    DecodeError { notification: Notification::new(code, subcode), why: why.into() }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn push_prefix(out: &mut Vec<u8>, net: &Ipv4Net) {
    let len = net.prefix_len();
    out.push(len);
    out.extend_from_slice(&net.network().octets()[..usize::from(len).div_ceil(8)]);
}

fn push_prefix6(out: &mut Vec<u8>, net: &Ipv6Net) {
    let len = net.prefix_len();
    out.push(len);
    out.extend_from_slice(&net.network().octets()[..usize::from(len).div_ceil(8)]);
}

fn push_attribute(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

impl Message {
    /// The message on the wire. `four_octet_as`: both sides negotiated 4-octet AS numbers
    /// (AS_PATH entries are then 4 octets).
    pub fn encode(&self, four_octet_as: bool) -> Vec<u8> {
        match self {
            Message::Keepalive => frame(KEEPALIVE, &[]),
            Message::Notification(n) => {
                let mut body = vec![n.code, n.subcode];
                body.extend_from_slice(&n.data);
                frame(NOTIFICATION, &body)
            }
            Message::Open(open) => {
                let mut capabilities = Vec::new();
                if open.ipv4_unicast {
                    capabilities.extend_from_slice(&[CAP_MULTIPROTOCOL, 4, 0, 1, 0, 1]);
                }
                if open.ipv6_unicast {
                    capabilities.extend_from_slice(&[CAP_MULTIPROTOCOL, 4, 0, 2, 0, 1]);
                }
                if open.four_octet_as {
                    capabilities.extend_from_slice(&[CAP_FOUR_OCTET_AS, 4]);
                    capabilities.extend_from_slice(&open.asn.to_be_bytes());
                }
                if let Some(gr) = open.graceful_restart {
                    let flags_and_time = (u16::from(gr.restarting) << 15) | (gr.restart_time & 0x0fff);
                    // One (AFI, SAFI, flags) for each family offered (IPv4 when none is:
                    // without the capability, a session is IPv4 unicast).
                    let ipv4 = open.ipv4_unicast || !open.ipv6_unicast;
                    let afis: Vec<u16> = [(ipv4, AFI_IPV4), (open.ipv6_unicast, AFI_IPV6)]
                        .into_iter()
                        .filter_map(|(offered, afi)| offered.then_some(afi))
                        .collect();
                    capabilities.extend_from_slice(&[CAP_GRACEFUL_RESTART, 2 + 4 * afis.len() as u8]);
                    capabilities.extend_from_slice(&flags_and_time.to_be_bytes());
                    for afi in afis {
                        capabilities.extend_from_slice(&afi.to_be_bytes());
                        capabilities
                            .extend_from_slice(&[SAFI_UNICAST, if gr.forwarding_kept { 0x80 } else { 0 }]);
                    }
                }
                let two_octet = u16::try_from(open.asn).unwrap_or(AS_TRANS);
                let mut body = vec![4];
                body.extend_from_slice(&two_octet.to_be_bytes());
                body.extend_from_slice(&open.hold_time.to_be_bytes());
                body.extend_from_slice(&open.router_id.octets());
                if capabilities.is_empty() {
                    body.push(0);
                } else {
                    body.push(capabilities.len() as u8 + 2);
                    body.extend_from_slice(&[CAPABILITIES, capabilities.len() as u8]);
                    body.extend_from_slice(&capabilities);
                }
                frame(OPEN, &body)
            }
            Message::Update(update) => {
                let mut withdrawn = Vec::new();
                for net in &update.withdrawn {
                    push_prefix(&mut withdrawn, net);
                }
                let mut attributes = Vec::new();
                if let Some(origin) = update.origin {
                    push_attribute(&mut attributes, FLAG_TRANSITIVE, ATTR_ORIGIN, &[origin]);
                }
                if update.origin.is_some() || !update.as_path.is_empty() {
                    let mut path = Vec::new();
                    // A segment counts at most 255 AS numbers: a longer path takes several.
                    for segment in update.as_path.chunks(255) {
                        path.extend_from_slice(&[AS_SEQUENCE, segment.len() as u8]);
                        for asn in segment {
                            if four_octet_as {
                                path.extend_from_slice(&asn.to_be_bytes());
                            } else {
                                path.extend_from_slice(
                                    &u16::try_from(*asn).unwrap_or(AS_TRANS).to_be_bytes(),
                                );
                            }
                        }
                    }
                    push_attribute(&mut attributes, FLAG_TRANSITIVE, ATTR_AS_PATH, &path);
                }
                if let Some(next_hop) = update.next_hop {
                    push_attribute(&mut attributes, FLAG_TRANSITIVE, ATTR_NEXT_HOP, &next_hop.octets());
                }
                if let Some(preference) = update.local_pref {
                    push_attribute(
                        &mut attributes,
                        FLAG_TRANSITIVE,
                        ATTR_LOCAL_PREF,
                        &preference.to_be_bytes(),
                    );
                }
                if let Some(reach) = &update.mp_reach {
                    let mut value = AFI_IPV6.to_be_bytes().to_vec();
                    value.push(SAFI_UNICAST);
                    value.push(if reach.link_local.is_some() { 32 } else { 16 });
                    value.extend_from_slice(&reach.next_hop.octets());
                    if let Some(link_local) = reach.link_local {
                        value.extend_from_slice(&link_local.octets());
                    }
                    value.push(0); // reserved
                    for net in &reach.nlri {
                        push_prefix6(&mut value, net);
                    }
                    push_attribute(&mut attributes, FLAG_OPTIONAL, ATTR_MP_REACH_NLRI, &value);
                }
                if let Some(unreach) = &update.mp_unreach {
                    let mut value = AFI_IPV6.to_be_bytes().to_vec();
                    value.push(SAFI_UNICAST);
                    for net in unreach {
                        push_prefix6(&mut value, net);
                    }
                    push_attribute(&mut attributes, FLAG_OPTIONAL, ATTR_MP_UNREACH_NLRI, &value);
                }
                let mut body = Vec::new();
                body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
                body.extend_from_slice(&withdrawn);
                body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
                body.extend_from_slice(&attributes);
                for net in &update.nlri {
                    push_prefix(&mut body, net);
                }
                frame(UPDATE, &body)
            }
        }
    }

    /// One message from the front of `buffer`: `Ok(None)` until it holds a whole one, else
    /// the message and how many bytes it took.
    pub fn decode(buffer: &[u8], four_octet_as: bool) -> Result<Option<(Message, usize)>, DecodeError> {
        if buffer.len() < HEADER_LEN {
            return Ok(None);
        }
        if buffer[..16].iter().any(|b| *b != 0xff) {
            return Err(error(1, 1, "the marker is not all ones"));
        }
        let length = usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
        let kind = buffer[18];
        let length_ok = match kind {
            OPEN => length >= HEADER_LEN + 10,
            UPDATE => length >= HEADER_LEN + 4,
            NOTIFICATION => length >= HEADER_LEN + 2,
            KEEPALIVE => length == HEADER_LEN,
            _ => return Err(error(1, 3, format!("message type {kind}"))),
        };
        if !length_ok || length > MAX_MESSAGE_LEN {
            let mut e = error(1, 2, format!("length {length} for message type {kind}"));
            e.notification.data = (length as u16).to_be_bytes().to_vec();
            return Err(e);
        }
        if buffer.len() < length {
            return Ok(None);
        }
        let body = &buffer[HEADER_LEN..length];
        let message = match kind {
            OPEN => Message::Open(decode_open(body)?),
            UPDATE => Message::Update(decode_update(body, four_octet_as)?),
            NOTIFICATION => Message::Notification(Notification {
                code: body[0],
                subcode: body[1],
                data: body[2..].to_vec(),
            }),
            _ => Message::Keepalive,
        };
        Ok(Some((message, length)))
    }
}

fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    if body[0] != 4 {
        let mut e = error(2, 1, format!("BGP version {}", body[0]));
        e.notification.data = vec![0, 4];
        return Err(e);
    }
    let mut open = Open {
        asn: u32::from(u16::from_be_bytes([body[1], body[2]])),
        hold_time: u16::from_be_bytes([body[3], body[4]]),
        router_id: Ipv4Addr::new(body[5], body[6], body[7], body[8]),
        four_octet_as: false,
        ipv4_unicast: false,
        ipv6_unicast: false,
        graceful_restart: None,
    };
    let optional_len = usize::from(body[9]);
    let mut parameters =
        body.get(10..10 + optional_len).ok_or_else(|| error(2, 0, "optional parameters overrun"))?;
    while !parameters.is_empty() {
        let (kind, len) = match parameters {
            [kind, len, ..] => (*kind, usize::from(*len)),
            _ => return Err(error(2, 0, "truncated optional parameter")),
        };
        let value = parameters.get(2..2 + len).ok_or_else(|| error(2, 0, "optional parameter overruns"))?;
        if kind == CAPABILITIES {
            let mut capabilities = value;
            while !capabilities.is_empty() {
                let (code, len) = match capabilities {
                    [code, len, ..] => (*code, usize::from(*len)),
                    _ => return Err(error(2, 0, "truncated capability")),
                };
                let value = capabilities.get(2..2 + len).ok_or_else(|| error(2, 0, "capability overruns"))?;
                match (code, value) {
                    (CAP_FOUR_OCTET_AS, [a, b, c, d]) => {
                        open.four_octet_as = true;
                        open.asn = u32::from_be_bytes([*a, *b, *c, *d]);
                    }
                    (CAP_MULTIPROTOCOL, [0, 1, _, 1]) => open.ipv4_unicast = true,
                    (CAP_MULTIPROTOCOL, [0, 2, _, 1]) => open.ipv6_unicast = true,
                    (CAP_GRACEFUL_RESTART, [high, low, families @ ..]) => {
                        let flags_and_time = u16::from_be_bytes([*high, *low]);
                        let forwarding_kept = families
                            .chunks(4)
                            .any(|f| matches!(f, [0, 1 | 2, 1, flags] if flags & 0x80 != 0));
                        open.graceful_restart = Some(GracefulRestart {
                            restart_time: flags_and_time & 0x0fff,
                            restarting: flags_and_time & 0x8000 != 0,
                            forwarding_kept,
                        });
                    }
                    _ => {}
                }
                capabilities = &capabilities[2 + len..];
            }
        }
        parameters = &parameters[2 + len..];
    }
    Ok(open)
}

/// Prefixes as NLRI and withdrawn routes carry them (a length, then as many octets as it
/// needs), of an address `N` octets long; a bad one is answered with UPDATE error `subcode`.
fn decode_nets<const N: usize>(mut bytes: &[u8], subcode: u8) -> Result<Vec<([u8; N], u8)>, DecodeError> {
    let mut nets = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        let octets = usize::from(len).div_ceil(8);
        if usize::from(len) > N * 8 || rest.len() < octets {
            return Err(error(3, subcode, format!("prefix of length {len} ({}-bit addresses)", N * 8)));
        }
        let mut address = [0u8; N];
        address[..octets].copy_from_slice(&rest[..octets]);
        nets.push((address, len));
        bytes = &rest[octets..];
    }
    Ok(nets)
}

fn decode_prefixes(bytes: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    let nets = decode_nets::<4>(bytes, 10)?.into_iter();
    Ok(nets.map(|(a, len)| Ipv4Net::new(Ipv4Addr::from(a), len).expect("length checked").trunc()).collect())
}

/// IPv6 prefixes of the MP attributes (an error there is an optional attribute's, 9).
fn decode_prefixes6(bytes: &[u8]) -> Result<Vec<Ipv6Net>, DecodeError> {
    let nets = decode_nets::<16>(bytes, 9)?.into_iter();
    Ok(nets.map(|(a, len)| Ipv6Net::new(Ipv6Addr::from(a), len).expect("length checked").trunc()).collect())
}

fn decode_update(body: &[u8], four_octet_as: bool) -> Result<Update, DecodeError> {
    let malformed = |why: &str| error(3, 1, why);
    let withdrawn_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let withdrawn = body.get(2..2 + withdrawn_len).ok_or_else(|| malformed("withdrawn routes overrun"))?;
    let rest = &body[2 + withdrawn_len..];
    let attributes_len = match rest {
        [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        _ => return Err(malformed("no path attribute length")),
    };
    let mut attributes =
        rest.get(2..2 + attributes_len).ok_or_else(|| malformed("path attributes overrun"))?;
    let nlri = &rest[2 + attributes_len..];
    let mut update =
        Update { withdrawn: decode_prefixes(withdrawn)?, nlri: decode_prefixes(nlri)?, ..Update::default() };
    while !attributes.is_empty() {
        let (flags, code) = match attributes {
            [flags, code, ..] => (*flags, *code),
            _ => return Err(malformed("truncated attribute")),
        };
        let (len, start) = if flags & FLAG_EXTENDED_LENGTH != 0 {
            match attributes.get(2..4) {
                Some([a, b]) => (usize::from(u16::from_be_bytes([*a, *b])), 4),
                _ => return Err(malformed("truncated attribute length")),
            }
        } else {
            match attributes.get(2) {
                Some(len) => (usize::from(*len), 3),
                None => return Err(malformed("truncated attribute length")),
            }
        };
        let value = attributes.get(start..start + len).ok_or_else(|| error(3, 5, "attribute length"))?;
        match code {
            ATTR_ORIGIN => match value {
                [origin] if *origin <= 2 => update.origin = Some(*origin),
                _ => return Err(error(3, 6, "invalid ORIGIN")),
            },
            ATTR_AS_PATH => update.as_path = decode_as_path(value, four_octet_as)?,
            ATTR_NEXT_HOP => match value {
                [a, b, c, d] => update.next_hop = Some(Ipv4Addr::new(*a, *b, *c, *d)),
                _ => return Err(error(3, 8, "invalid NEXT_HOP")),
            },
            ATTR_LOCAL_PREF => match value {
                [a, b, c, d] => update.local_pref = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => return Err(error(3, 5, "LOCAL_PREF length")),
            },
            ATTR_MP_REACH_NLRI => match value {
                [0, 2, SAFI_UNICAST, length, rest @ ..] => {
                    let length = usize::from(*length);
                    let hops = rest.get(..length).filter(|_| length == 16 || length == 32);
                    let hops = hops
                        .ok_or_else(|| error(3, 9, "MP_REACH_NLRI: an IPv6 next hop is 16 or 32 octets"))?;
                    let octets = |at: usize| <[u8; 16]>::try_from(&hops[at..at + 16]).expect("16 octets");
                    let nlri =
                        rest.get(length + 1..).ok_or_else(|| error(3, 9, "MP_REACH_NLRI truncated"))?;
                    update.mp_reach = Some(MpReach {
                        next_hop: Ipv6Addr::from(octets(0)),
                        link_local: (length == 32).then(|| Ipv6Addr::from(octets(16))),
                        nlri: decode_prefixes6(nlri)?,
                    });
                }
                [_, _, _, ..] => update.other_attributes.push(code),
                _ => return Err(error(3, 9, "MP_REACH_NLRI truncated")),
            },
            ATTR_MP_UNREACH_NLRI => match value {
                [0, 2, SAFI_UNICAST, withdrawn @ ..] => {
                    update.mp_unreach = Some(decode_prefixes6(withdrawn)?)
                }
                [_, _, _, ..] => update.other_attributes.push(code),
                _ => return Err(error(3, 9, "MP_UNREACH_NLRI truncated")),
            },
            other if flags & FLAG_OPTIONAL == 0 && other > ATTR_LOCAL_PREF + 2 => {
                return Err(error(3, 2, format!("unrecognised well-known attribute {other}")))
            }
            other => update.other_attributes.push(other),
        }
        attributes = &attributes[start + len..];
    }
    if !update.nlri.is_empty() && (update.origin.is_none() || update.next_hop.is_none()) {
        return Err(error(3, 3, "NLRI without ORIGIN or NEXT_HOP"));
    }
    if update.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty()) && update.origin.is_none() {
        return Err(error(3, 3, "MP_REACH_NLRI without ORIGIN"));
    }
    Ok(update)
}

fn decode_as_path(mut value: &[u8], four_octet_as: bool) -> Result<Vec<u32>, DecodeError> {
    let width = if four_octet_as { 4 } else { 2 };
    let mut path = Vec::new();
    while !value.is_empty() {
        let (kind, count) = match value {
            [kind, count, ..] => (*kind, usize::from(*count)),
            _ => return Err(error(3, 11, "truncated AS_PATH segment")),
        };
        let numbers =
            value.get(2..2 + count * width).ok_or_else(|| error(3, 11, "AS_PATH segment overruns"))?;
        if !(1..=4).contains(&kind) {
            return Err(error(3, 11, format!("AS_PATH segment type {kind}")));
        }
        path.extend(numbers.chunks(width).map(|n| match n {
            [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
            [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
            _ => unreachable!("chunks of the width"),
        }));
        value = &value[2 + count * width..];
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message, four_octet_as: bool) {
        let bytes = message.encode(four_octet_as);
        let (decoded, used) = Message::decode(&bytes, four_octet_as).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(decoded, message);
        // a message cut short is not yet a message
        assert_eq!(Message::decode(&bytes[..bytes.len() - 1], four_octet_as).unwrap(), None);
    }

    #[test]
    fn messages_round_trip() {
        round_trip(Message::Keepalive, true);
        round_trip(Message::Notification(Notification { code: 2, subcode: 2, data: vec![1, 2] }), true);
        let open = Open {
            asn: 4_200_000_001,
            hold_time: 9,
            router_id: Ipv4Addr::new(198, 18, 1, 11),
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: true,
            graceful_restart: Some(GracefulRestart {
                restart_time: 120,
                restarting: true,
                forwarding_kept: true,
            }),
        };
        round_trip(Message::Open(open), false);
        let update = Update {
            withdrawn: vec!["10.244.1.0/24".parse().unwrap()],
            origin: Some(ORIGIN_IGP),
            as_path: vec![65001, 4_200_000_001],
            next_hop: Some(Ipv4Addr::new(198, 18, 1, 11)),
            local_pref: Some(100),
            mp_reach: Some(MpReach {
                next_hop: "2001:db8:1::11".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
                nlri: vec![
                    "fd00:10:244:7::/64".parse().unwrap(),
                    "::/0".parse().unwrap(),
                    "2001:db8::/33".parse().unwrap(),
                ],
            }),
            mp_unreach: Some(vec!["fd00:10:244:1::/64".parse().unwrap()]),
            other_attributes: vec![],
            nlri: vec![
                "10.244.192.0/24".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "0.0.0.0/0".parse().unwrap(),
            ],
        };
        round_trip(Message::Update(update), true);
        // IPv6's End-of-RIB: an MP_UNREACH_NLRI of nothing
        round_trip(Message::Update(Update { mp_unreach: Some(vec![]), ..Update::default() }), true);
    }

    /// The bytes of RFC 4760's attributes, written out by hand from the RFC: flags 0x80
    /// (optional, non-transitive), AFI 2, SAFI 1, next hop length 16, the next hop, a
    /// reserved octet, then the prefixes; MP_UNREACH_NLRI without next hop or reserved octet.
    #[test]
    fn ipv6_routes_travel_in_rfc_4760s_attributes() {
        let update = Update {
            origin: Some(ORIGIN_IGP),
            as_path: vec![65100],
            mp_reach: Some(MpReach {
                next_hop: "2001:db8:1::11".parse().unwrap(),
                link_local: None,
                nlri: vec!["fd00:10:244:7::/64".parse().unwrap()],
            }),
            ..Update::default()
        };
        let bytes = Message::Update(update.clone()).encode(true);
        let mut reach = vec![0x80, 14, 30, 0, 2, 1, 16];
        reach.extend_from_slice(&"2001:db8:1::11".parse::<Ipv6Addr>().unwrap().octets());
        reach.extend_from_slice(&[0, 64, 0xfd, 0, 0, 0x10, 0x02, 0x44, 0, 7]);
        assert!(bytes.windows(reach.len()).any(|w| w == reach), "{bytes:02x?}");
        assert_eq!(Message::decode(&bytes, true).unwrap().unwrap().0, Message::Update(update));
        let withdraw = Message::Update(Update {
            mp_unreach: Some(vec!["fd00:10:244:7::/64".parse().unwrap()]),
            ..Update::default()
        })
        .encode(true);
        assert!(
            withdraw.ends_with(&[0x80, 15, 12, 0, 2, 1, 64, 0xfd, 0, 0, 0x10, 0x02, 0x44, 0, 7]),
            "{withdraw:02x?}"
        );
        // Another family's MP attribute is kept as its code, not misread as IPv6.
        let mut vpn = Message::Update(Update::default()).encode(true);
        let attribute = [0x80, 15, 3, 0, 1, 128];
        vpn[22] = attribute.len() as u8;
        vpn.extend_from_slice(&attribute);
        vpn[17] = vpn.len() as u8;
        let Message::Update(decoded) = Message::decode(&vpn, true).unwrap().unwrap().0 else { panic!() };
        assert_eq!((decoded.mp_unreach, decoded.other_attributes), (None, vec![15]));
    }

    #[test]
    fn an_open_offers_each_family_and_graceful_restart_for_each() {
        let open = Open {
            asn: 65100,
            hold_time: 9,
            router_id: Ipv4Addr::new(198, 18, 1, 11),
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: true,
            graceful_restart: Some(GracefulRestart {
                restart_time: 60,
                restarting: true,
                forwarding_kept: true,
            }),
        };
        let bytes = Message::Open(open).encode(true);
        let ipv6 = [CAP_MULTIPROTOCOL, 4, 0, 2, 0, 1];
        assert!(bytes.windows(6).any(|w| w == ipv6), "{bytes:02x?}");
        let gr = [CAP_GRACEFUL_RESTART, 10, 0x80, 60, 0, 1, 1, 0x80, 0, 2, 1, 0x80];
        assert!(bytes.windows(gr.len()).any(|w| w == gr), "{bytes:02x?}");
    }

    #[test]
    fn a_keepalive_is_nineteen_bytes_of_the_rfc() {
        let mut expected = vec![0xff; 16];
        expected.extend_from_slice(&[0, 19, 4]);
        assert_eq!(Message::Keepalive.encode(true), expected);
    }

    #[test]
    fn a_big_asn_travels_as_as_trans_in_the_fixed_field() {
        let open = Open {
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(1, 2, 3, 4),
            four_octet_as: true,
            ipv4_unicast: false,
            ipv6_unicast: false,
            graceful_restart: None,
        };
        let bytes = Message::Open(open).encode(true);
        assert_eq!(&bytes[20..22], &AS_TRANS.to_be_bytes());
    }

    #[test]
    fn malformed_input_names_the_notification_to_send() {
        let mut bad_marker = Message::Keepalive.encode(true);
        bad_marker[3] = 0;
        assert_eq!(Message::decode(&bad_marker, true).unwrap_err().notification, Notification::new(1, 1));
        let mut bad_type = Message::Keepalive.encode(true);
        bad_type[18] = 9;
        assert_eq!(Message::decode(&bad_type, true).unwrap_err().notification, Notification::new(1, 3));
        let mut long_keepalive = Message::Keepalive.encode(true);
        long_keepalive[17] = 20;
        long_keepalive.push(0);
        assert_eq!(Message::decode(&long_keepalive, true).unwrap_err().notification.code, 1);
        // version 3
        let open = Open {
            asn: 1,
            hold_time: 9,
            router_id: Ipv4Addr::new(1, 1, 1, 1),
            four_octet_as: false,
            ipv4_unicast: false,
            ipv6_unicast: false,
            graceful_restart: None,
        };
        let mut old = Message::Open(open).encode(false);
        old[19] = 3;
        assert_eq!(
            Message::decode(&old, false).unwrap_err().notification,
            Notification { code: 2, subcode: 1, data: vec![0, 4] }
        );
        // an UPDATE whose prefix claims 33 bits
        let mut update = Message::Update(Update {
            nlri: vec!["10.0.0.0/8".parse().unwrap()],
            origin: Some(0),
            next_hop: Some(Ipv4Addr::new(1, 1, 1, 1)),
            ..Update::default()
        })
        .encode(true);
        let last = update.len() - 2;
        update[last] = 33;
        assert_eq!(Message::decode(&update, true).unwrap_err().notification, Notification::new(3, 10));
        // announced prefixes without a next hop
        let orphan = Message::Update(Update {
            nlri: vec!["10.0.0.0/8".parse().unwrap()],
            origin: Some(0),
            ..Update::default()
        })
        .encode(true);
        assert_eq!(Message::decode(&orphan, true).unwrap_err().notification, Notification::new(3, 3));
    }

    /// Found with the bgp_decode fuzz target (fuzz/, its input kept here): a path of more
    /// than 255 AS numbers was written as one segment whose count wrapped, which no peer
    /// could read.
    #[test]
    fn a_long_as_path_reads_back_from_what_we_write() {
        let input = include_bytes!("../tests/fuzz-crashes/bgp_decode-long-as-path");
        let (message, used) = Message::decode(&input[1..], input[0] & 1 != 0).unwrap().unwrap();
        assert_eq!(used, input.len() - 1);
        let Message::Update(update) = &message else { panic!("{message:?}") };
        assert_eq!(update.as_path.len(), 300);
        round_trip(message, false);
    }

    #[test]
    fn notifications_read_as_words() {
        assert_eq!(Notification::new(2, 2).to_string(), "OPEN error: bad peer AS (2/2)");
        assert_eq!(Notification::shutdown().to_string(), "cease: administrative shutdown (6/2)");
    }
}
