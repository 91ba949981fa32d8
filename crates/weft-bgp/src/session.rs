//! The decisions of one BGP session, apart from sockets and clocks: what to say in the
//! OPEN, whether the peer's OPEN is acceptable (and the NOTIFICATION if not), what the
//! session's timers are, and which UPDATEs move the peer from what it was told to what it
//! should know. Pure.

use crate::message::{Message, MpReach, Notification, Open, Update, ORIGIN_IGP};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// RFC 4271's states, for status and logs. (Idle covers the backoff between attempts.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connect => "connect",
            State::OpenSent => "open-sent",
            State::OpenConfirm => "open-confirm",
            State::Established => "established",
        }
    }
}

/// This side of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// The hold time we offer; the session uses the smaller of both offers.
    pub hold_time: u16,
    /// Where peers send traffic for what we announce: this node's address.
    pub next_hop: Ipv4Addr,
    /// The same for IPv6 prefixes: this node's IPv6 address on the peer's segment. With
    /// it the OPEN offers IPv6 unicast (RFC 4760) on the same session; without, IPv6
    /// prefixes are not announced.
    pub next_hop6: Option<Ipv6Addr>,
    /// Graceful restart (RFC 4724): peers keep our routes this many seconds after we stop,
    /// so a restarting agent loses no traffic. None: a stop withdraws everything.
    pub graceful_restart: Option<u16>,
}

/// What came of the OPENs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Zero: no keepalives, no hold timer.
    pub hold_time: Duration,
    pub keepalive: Duration,
    pub four_octet_as: bool,
    /// Both sides offered IPv6 unicast: IPv6 prefixes may be announced.
    pub ipv6: bool,
    /// The peer takes IPv4 unicast: offered it, or offered no family at all (a session
    /// without multiprotocol capabilities is IPv4 unicast).
    pub ipv4: bool,
}

pub fn open_for(local: &Local) -> Message {
    Message::Open(Open {
        asn: local.asn,
        hold_time: local.hold_time,
        router_id: local.router_id,
        four_octet_as: true,
        ipv4_unicast: true,
        ipv6_unicast: local.next_hop6.is_some(),
        // The kernel keeps forwarding while the agent is away: F set. R set too: a speaker
        // that may just have restarted wants its peers' routes without waiting.
        graceful_restart: local.graceful_restart.map(|restart_time| crate::message::GracefulRestart {
            restart_time,
            restarting: true,
            forwarding_kept: true,
        }),
    })
}

/// Accepts the peer's OPEN or says which NOTIFICATION refuses it.
pub fn accept_open(local: &Local, expected_asn: u32, open: &Open) -> Result<Negotiated, Notification> {
    if open.asn != expected_asn {
        let mut refusal = Notification::new(2, 2);
        refusal.data = u16::try_from(open.asn).unwrap_or(crate::message::AS_TRANS).to_be_bytes().to_vec();
        return Err(refusal);
    }
    if open.router_id.is_unspecified() || (open.router_id == local.router_id && expected_asn == local.asn) {
        return Err(Notification::new(2, 3));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(Notification::new(2, 6));
    }
    if local.asn > u32::from(u16::MAX) && !open.four_octet_as {
        // Our number cannot be said to a peer that knows only 2-octet numbers (it would see
        // AS_TRANS in AS_PATH). Unsupported capability.
        return Err(Notification::new(2, 7));
    }
    let hold = local.hold_time.min(open.hold_time);
    Ok(Negotiated {
        hold_time: Duration::from_secs(u64::from(hold)),
        keepalive: Duration::from_secs(u64::from(hold / 3)),
        four_octet_as: open.four_octet_as,
        ipv6: open.ipv6_unicast && local.next_hop6.is_some(),
        ipv4: open.ipv4_unicast || !open.ipv6_unicast,
    })
}

/// What a session does with one message from its peer, given its state. Announce-only:
/// routes the peer sends were checked by the decoder and are dropped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing changes: a KEEPALIVE or an UPDATE while established.
    Stay,
    /// The peer's OPEN is acceptable on these terms: answer with a KEEPALIVE and wait in
    /// OpenConfirm for the peer's.
    Accept(Negotiated),
    /// The peer's KEEPALIVE confirms our OPEN: established.
    Establish,
    /// The session ends: send `notification` (if any), close, and report `why`.
    Close { notification: Option<Notification>, why: String },
}

/// The state machine's step on a message (RFC 4271 section 8, the active side's part).
pub fn react(local: &Local, peer_asn: u32, state: State, message: &Message) -> Reaction {
    match (state, message) {
        (_, Message::Notification(n)) => {
            Reaction::Close { notification: None, why: format!("the peer closed the session: {n}") }
        }
        (State::OpenSent, Message::Open(open)) => match accept_open(local, peer_asn, open) {
            Ok(accepted) => Reaction::Accept(accepted),
            Err(refusal) => Reaction::Close {
                why: format!(
                    "refused the peer's OPEN (AS {}, hold time {} s, router id {}): {refusal}",
                    open.asn, open.hold_time, open.router_id
                ),
                notification: Some(refusal),
            },
        },
        (State::OpenConfirm, Message::Keepalive) => Reaction::Establish,
        (State::Established, Message::Keepalive | Message::Update(_)) => Reaction::Stay,
        (state, message) => Reaction::Close {
            notification: Some(Notification::new(5, 0)),
            why: format!("unexpected {} in state {}", kind(message), state.name()),
        },
    }
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
    }
}

/// Prefixes in one UPDATE, withdrawn or announced: at most 5 bytes each, 4000 bytes with
/// the 19 of the header, 4 of the lengths and at most 30 of our path attributes stay
/// within the 4096 bytes of a message.
const PREFIXES_PER_UPDATE: usize = 800;
/// The same for IPv6 prefixes, at most 17 bytes each, after the MP attribute's 41 bytes of
/// header and next hops.
const PREFIXES6_PER_UPDATE: usize = 200;

/// The UPDATEs that take a peer from knowing `announced` to knowing `wanted`: those
/// withdrawing what went, then those announcing what came (with our path attributes),
/// as many as 4096 bytes a message need.
///
/// IPv6 prefixes go in MP_REACH_NLRI / MP_UNREACH_NLRI, with `local.next_hop6`, when the
/// session negotiated IPv6 (`ipv6`); otherwise they are left out (and so never announced).
pub fn updates(
    local: &Local,
    peer_asn: u32,
    announced: &BTreeSet<IpNet>,
    wanted: &BTreeSet<IpNet>,
    ipv6: bool,
) -> Vec<Message> {
    let mut messages = Vec::new();
    let v4 = |set: &BTreeSet<IpNet>| -> BTreeSet<Ipv4Net> {
        set.iter().filter_map(|n| if let IpNet::V4(v4) = n { Some(*v4) } else { None }).collect()
    };
    let v6 = |set: &BTreeSet<IpNet>| -> BTreeSet<Ipv6Net> {
        set.iter().filter_map(|n| if let IpNet::V6(v6) = n { Some(*v6) } else { None }).collect()
    };
    let (announced6, wanted6) = (v6(announced), v6(wanted));
    let (announced, wanted) = (&v4(announced), &v4(wanted));
    let withdrawn: Vec<Ipv4Net> = announced.difference(wanted).copied().collect();
    for withdrawn in withdrawn.chunks(PREFIXES_PER_UPDATE) {
        messages.push(Message::Update(Update { withdrawn: withdrawn.to_vec(), ..Update::default() }));
    }
    let added: Vec<Ipv4Net> = wanted.difference(announced).copied().collect();
    let internal = peer_asn == local.asn;
    for added in added.chunks(PREFIXES_PER_UPDATE) {
        messages.push(Message::Update(Update {
            origin: Some(ORIGIN_IGP),
            // eBGP: our AS first; iBGP: empty, with a local preference.
            as_path: if internal { Vec::new() } else { vec![local.asn] },
            next_hop: Some(local.next_hop),
            local_pref: internal.then_some(100),
            nlri: added.to_vec(),
            ..Update::default()
        }));
    }
    let Some(next_hop) = local.next_hop6.filter(|_| ipv6) else { return messages };
    let withdrawn6: Vec<Ipv6Net> = announced6.difference(&wanted6).copied().collect();
    for withdrawn in withdrawn6.chunks(PREFIXES6_PER_UPDATE) {
        messages.push(Message::Update(Update { mp_unreach: Some(withdrawn.to_vec()), ..Update::default() }));
    }
    let added6: Vec<Ipv6Net> = wanted6.difference(&announced6).copied().collect();
    for added in added6.chunks(PREFIXES6_PER_UPDATE) {
        messages.push(Message::Update(Update {
            origin: Some(ORIGIN_IGP),
            as_path: if internal { Vec::new() } else { vec![local.asn] },
            local_pref: internal.then_some(100),
            mp_reach: Some(MpReach { next_hop, link_local: None, nlri: added.to_vec() }),
            ..Update::default()
        }));
    }
    messages
}

/// End-of-RIB (RFC 4724) for each family the session carries: everything is said; a
/// graceful-restart peer drops the stale routes not announced again.
pub fn end_of_rib(ipv4: bool, ipv6: bool) -> Vec<Message> {
    let mut messages = Vec::new();
    if ipv4 {
        messages.push(Message::Update(Update::default()));
    }
    if ipv6 {
        messages.push(Message::Update(Update { mp_unreach: Some(Vec::new()), ..Update::default() }));
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            asn: 65001,
            router_id: Ipv4Addr::new(198, 18, 1, 11),
            hold_time: 9,
            next_hop: Ipv4Addr::new(198, 18, 1, 11),
            next_hop6: None,
            graceful_restart: None,
        }
    }

    fn peer_open(asn: u32, hold_time: u16) -> Open {
        Open {
            asn,
            hold_time,
            router_id: Ipv4Addr::new(198, 18, 1, 1),
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: false,
            graceful_restart: None,
        }
    }

    #[test]
    fn the_smaller_hold_time_wins_and_keepalives_come_at_a_third() {
        let negotiated = accept_open(&local(), 65000, &peer_open(65000, 3)).unwrap();
        assert_eq!(negotiated.hold_time, Duration::from_secs(3));
        assert_eq!(negotiated.keepalive, Duration::from_secs(1));
        let negotiated = accept_open(&local(), 65000, &peer_open(65000, 240)).unwrap();
        assert_eq!(negotiated.hold_time, Duration::from_secs(9));
    }

    #[test]
    fn a_wrong_peer_is_refused_with_the_rfcs_notification() {
        assert_eq!(accept_open(&local(), 65000, &peer_open(65099, 9)).unwrap_err().subcode, 2, "bad peer AS");
        assert_eq!(accept_open(&local(), 65000, &peer_open(65000, 2)).unwrap_err().subcode, 6, "hold time");
        let mut same_id = peer_open(65001, 9);
        same_id.router_id = local().router_id;
        assert_eq!(
            accept_open(&local(), 65001, &same_id).unwrap_err().subcode,
            3,
            "our own router id in iBGP"
        );
        let big = Local { asn: 4_200_000_000, ..local() };
        let mut old = peer_open(65000, 9);
        old.four_octet_as = false;
        assert_eq!(accept_open(&big, 65000, &old).unwrap_err().subcode, 7);
    }

    #[test]
    fn updates_withdraw_what_went_and_announce_what_came() {
        let (a4, b4): (Ipv4Net, Ipv4Net) =
            ("10.244.1.0/24".parse().unwrap(), "10.244.2.0/24".parse().unwrap());
        let (a, b) = (IpNet::V4(a4), IpNet::V4(b4));
        let messages = updates(&local(), 65000, &[a].into(), &[b].into(), false);
        assert_eq!(messages.len(), 2);
        let Message::Update(withdraw) = &messages[0] else { panic!() };
        assert_eq!(withdraw.withdrawn, [a4]);
        assert!(withdraw.nlri.is_empty());
        let Message::Update(announce) = &messages[1] else { panic!() };
        assert_eq!(
            (announce.nlri.clone(), announce.as_path.clone(), announce.local_pref),
            (vec![b4], vec![65001], None)
        );
        assert_eq!(announce.next_hop, Some(Ipv4Addr::new(198, 18, 1, 11)));
        // iBGP: no AS prepended, a local preference
        let Message::Update(internal) = &updates(&local(), 65001, &BTreeSet::new(), &[b].into(), false)[0]
        else {
            panic!()
        };
        assert_eq!((internal.as_path.is_empty(), internal.local_pref), (true, Some(100)));
        assert!(updates(&local(), 65000, &[a].into(), &[a].into(), false).is_empty(), "nothing to say");
    }

    #[test]
    fn ipv6_prefixes_go_in_the_multiprotocol_attributes_only_where_negotiated() {
        let v6: IpNet = "fd00:10:244:2::/64".parse().unwrap();
        let gone: IpNet = "fd00:10:244:1::/64".parse().unwrap();
        let v4: IpNet = "10.244.2.0/24".parse().unwrap();
        let dual = Local { next_hop6: Some("2001:db8:1::11".parse().unwrap()), ..local() };
        let Message::Open(open) = open_for(&dual) else { panic!() };
        assert!(open.ipv4_unicast && open.ipv6_unicast);
        let Message::Open(single) = open_for(&local()) else { panic!() };
        assert!(!single.ipv6_unicast, "no IPv6 next hop: IPv6 is not offered");
        let mut peer = peer_open(65000, 9);
        assert!(!accept_open(&dual, 65000, &peer).unwrap().ipv6, "the peer did not offer it");
        peer.ipv6_unicast = true;
        assert!(accept_open(&dual, 65000, &peer).unwrap().ipv6);

        let messages = updates(&dual, 65000, &[gone].into(), &[v4, v6].into(), true);
        let updates: Vec<&Update> =
            messages.iter().map(|m| if let Message::Update(u) = m { u } else { panic!() }).collect();
        assert_eq!(updates.len(), 3, "IPv4 announced, IPv6 withdrawn, IPv6 announced");
        assert_eq!(updates[1].mp_unreach, Some(vec!["fd00:10:244:1::/64".parse().unwrap()]));
        let reach = updates[2].mp_reach.clone().unwrap();
        assert_eq!(reach.next_hop.to_string(), "2001:db8:1::11");
        assert_eq!(reach.nlri, vec!["fd00:10:244:2::/64".parse::<Ipv6Net>().unwrap()]);
        assert_eq!(
            (updates[2].origin, updates[2].as_path.clone(), updates[2].next_hop),
            (Some(0), vec![65001], None)
        );
        // Not negotiated: IPv6 is left out, IPv4 said as before.
        assert_eq!(super::updates(&dual, 65000, &[gone].into(), &[v4, v6].into(), false).len(), 1);
        assert_eq!(end_of_rib(true, true).len(), 2);
        assert_eq!(end_of_rib(true, false), vec![Message::Update(Update::default())]);
        assert_eq!(end_of_rib(false, true).len(), 1, "an IPv6-only peer: its End-of-RIB alone");
        let mut six_only = peer_open(65000, 9);
        (six_only.ipv4_unicast, six_only.ipv6_unicast) = (false, true);
        let negotiated = accept_open(&dual, 65000, &six_only).unwrap();
        assert!(negotiated.ipv6 && !negotiated.ipv4, "a peer offering IPv6 alone takes no IPv4");
        let mut bare = peer_open(65000, 9);
        bare.ipv4_unicast = false;
        assert!(accept_open(&dual, 65000, &bare).unwrap().ipv4, "no capability: IPv4 unicast");
    }

    #[test]
    fn the_session_moves_from_open_to_established_and_refuses_the_rest() {
        let open = Message::Open(peer_open(65000, 9));
        assert!(matches!(react(&local(), 65000, State::OpenSent, &open), Reaction::Accept(_)));
        assert_eq!(react(&local(), 65000, State::OpenConfirm, &Message::Keepalive), Reaction::Establish);
        assert_eq!(react(&local(), 65000, State::Established, &Message::Keepalive), Reaction::Stay);
        let update = Message::Update(Update::default());
        assert_eq!(react(&local(), 65000, State::Established, &update), Reaction::Stay);
        // an UPDATE before the session is up, a second OPEN: finite state machine error
        for (state, message) in [(State::OpenConfirm, &update), (State::Established, &open)] {
            let Reaction::Close { notification, .. } = react(&local(), 65000, state, message) else {
                panic!()
            };
            assert_eq!(notification, Some(Notification::new(5, 0)));
        }
        // a refused OPEN is answered with the refusal; a NOTIFICATION is not answered
        let Reaction::Close { notification, .. } =
            react(&local(), 65000, State::OpenSent, &Message::Open(peer_open(65099, 9)))
        else {
            panic!()
        };
        assert_eq!(notification.map(|n| (n.code, n.subcode)), Some((2, 2)));
        let bye = Message::Notification(Notification::shutdown());
        assert!(matches!(
            react(&local(), 65000, State::Established, &bye),
            Reaction::Close { notification: None, .. }
        ));
    }

    /// Found with the bgp_session fuzz target (fuzz/, its input kept here): announcing
    /// the 1200 routes a router sent made one UPDATE of 4823 bytes, over the 4096 a peer
    /// reads (it would refuse it, closing the session, again at each attempt).
    #[test]
    fn many_prefixes_take_several_updates_of_at_most_4096_bytes() {
        let input = include_bytes!("../tests/fuzz-crashes/bgp_session-full-table");
        let mut buffer = &input[16..];
        let mut routes = BTreeSet::new();
        while let Some((message, used)) = Message::decode(buffer, true).unwrap() {
            if let Message::Update(update) = message {
                routes.extend(update.nlri);
            }
            buffer = &buffer[used..];
        }
        assert_eq!(routes.len(), 1200);
        // And as many IPv6 routes of the longest kind (17 bytes each), in the MP attributes.
        let mut routes: BTreeSet<IpNet> = routes.into_iter().map(IpNet::V4).collect();
        routes.extend(
            (0..1200u128)
                .map(|i| IpNet::V6(Ipv6Net::new(Ipv6Addr::from((0xfd00u128 << 112) + i), 128).unwrap())),
        );
        let dual = Local { next_hop6: Some("2001:db8:1::11".parse().unwrap()), ..local() };
        let none = BTreeSet::new();
        for (peer_asn, from, to) in [(65000, &none, &routes), (65001, &routes, &none)] {
            let mut said = BTreeSet::new();
            for message in updates(&dual, peer_asn, from, to, true) {
                let bytes = message.encode(true);
                assert!(bytes.len() <= crate::message::MAX_MESSAGE_LEN, "{} bytes", bytes.len());
                let (decoded, _) = Message::decode(&bytes, true).unwrap().unwrap();
                assert_eq!(decoded, message);
                let Message::Update(update) = decoded else { panic!() };
                said.extend(update.nlri.into_iter().chain(update.withdrawn).map(IpNet::V4));
                said.extend(update.mp_reach.into_iter().flat_map(|r| r.nlri).map(IpNet::V6));
                said.extend(update.mp_unreach.into_iter().flatten().map(IpNet::V6));
            }
            assert_eq!(said, routes);
        }
    }
}
