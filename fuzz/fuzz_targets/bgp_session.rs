//! A BGP session's reaction to whatever the peer sends: the speaker's own steps
//! (session::react, accept_open, updates, open_for) driven over a message sequence, as
//! speaker.rs drives them from the socket, without the socket.
//!
//! Input: 16 bytes of configuration (our AS, hold time, router ID, graceful restart and,
//! in its top bit, whether we speak IPv6 too; the peer's AS), then the bytes the peer sends. Our configuration stays within what
//! `weft agent` accepts (hold time 0 or 3+, AS not 0 or 23456, restart 1..=4095 s). The
//! routes the peer announces and withdraws double as the set we are asked to announce,
//! so the UPDATEs we send cover hostile shapes too.
//!
//! Checked: every message the session sends is a valid message that decodes to itself
//! with the session's encoding and fits 4096 bytes; OPEN is accepted only in OpenSent
//! and on terms within RFC 4271 (hold time 0 or 3+, at most ours); the session is
//! established only from OpenConfirm on a KEEPALIVE; routes are taken in Established
//! only; a NOTIFICATION is never answered with one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use weft_bgp::message::{Message, Notification, AS_TRANS, MAX_MESSAGE_LEN};
use weft_bgp::session::{open_for, react, updates, Local, Negotiated, Reaction, State};

fn sends(message: &Message, negotiated: &Option<Negotiated>) {
    let four = negotiated.is_some_and(|n| n.four_octet_as);
    let bytes = message.encode(four);
    assert!(bytes.len() <= MAX_MESSAGE_LEN, "the session sends {} bytes in one message", bytes.len());
    match Message::decode(&bytes, four) {
        Ok(Some((decoded, used))) => {
            assert_eq!(used, bytes.len());
            assert_eq!(&decoded, message, "the session sends what the peer would read otherwise");
        }
        other => panic!("the session sends {message:?} as {bytes:?}, which decodes to {other:?}"),
    }
}

fn asn(bytes: [u8; 4]) -> u32 {
    match u32::from_be_bytes(bytes) {
        0 => 1,
        n if n == u32::from(AS_TRANS) => n + 1,
        n => n,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (config, mut buffer) = data.split_at(16);
    let hold_time = match u16::from_be_bytes([config[4], config[5]]) {
        1 | 2 => 3,
        n => n,
    };
    let restart_and_flags = u16::from_be_bytes([config[10], config[11]]);
    let graceful_restart = match restart_and_flags & 0x0fff {
        0 => None,
        n => Some(n),
    };
    // The top bit: a dual-stack node, offering IPv6 unicast with an IPv6 next hop.
    let next_hop6 = (restart_and_flags & 0x8000 != 0).then(|| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11));
    let router_id = Ipv4Addr::new(config[6], config[7], config[8], config[9]);
    let local = Local {
        asn: asn([config[0], config[1], config[2], config[3]]),
        router_id,
        hold_time,
        next_hop: router_id,
        next_hop6,
        graceful_restart,
    };
    let peer_asn = asn([config[12], config[13], config[14], config[15]]);

    let mut state = State::OpenSent;
    let mut negotiated: Option<Negotiated> = None;
    let mut announced = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    sends(&open_for(&local), &negotiated);
    loop {
        let four = negotiated.is_some_and(|n| n.four_octet_as);
        let message = match Message::decode(buffer, four) {
            Ok(Some((message, used))) => {
                buffer = &buffer[used..];
                message
            }
            Ok(None) => break,
            Err(e) => {
                sends(&Message::Notification(e.notification), &negotiated);
                return;
            }
        };
        match react(&local, peer_asn, state, &message) {
            Reaction::Close { notification, why } => {
                assert!(!why.is_empty());
                if matches!(message, Message::Notification(_)) {
                    assert_eq!(notification, None, "a NOTIFICATION answered with one");
                }
                if let Some(notification) = notification {
                    sends(&Message::Notification(notification), &negotiated);
                }
                return;
            }
            Reaction::Accept(terms) => {
                assert!(state == State::OpenSent && matches!(message, Message::Open(_)));
                let hold = terms.hold_time.as_secs();
                assert!(hold == 0 || (3..=u64::from(local.hold_time)).contains(&hold), "hold time {hold}");
                assert_eq!(terms.keepalive, Duration::from_secs(hold / 3));
                assert!(terms.four_octet_as || local.asn <= u32::from(u16::MAX));
                negotiated = Some(terms);
                sends(&Message::Keepalive, &negotiated);
                state = State::OpenConfirm;
            }
            Reaction::Establish => {
                assert!(state == State::OpenConfirm && message == Message::Keepalive);
                state = State::Established;
            }
            Reaction::Stay => {
                assert_eq!(state, State::Established);
                if let Message::Update(update) = &message {
                    for net in &update.withdrawn {
                        wanted.remove(&IpNet::V4(*net));
                    }
                    for net in update.mp_unreach.iter().flatten() {
                        wanted.remove(&IpNet::V6(*net));
                    }
                    wanted.extend(update.nlri.iter().copied().map(IpNet::V4));
                    wanted.extend(update.mp_reach.iter().flat_map(|r| r.nlri.iter().copied()).map(IpNet::V6));
                }
                let ipv6 = negotiated.is_some_and(|n| n.ipv6);
                assert!(!ipv6 || next_hop6.is_some(), "IPv6 negotiated without an IPv6 next hop");
                for message in updates(&local, peer_asn, &announced, &wanted, ipv6) {
                    sends(&message, &negotiated);
                }
                announced = wanted.clone();
            }
        }
    }
    // The speaker stops: everything withdrawn, then goodbye.
    if state == State::Established {
        let ipv6 = negotiated.is_some_and(|n| n.ipv6);
        for message in updates(&local, peer_asn, &announced, &BTreeSet::new(), ipv6) {
            sends(&message, &negotiated);
        }
    }
    sends(&Message::Notification(Notification::shutdown()), &negotiated);
});
