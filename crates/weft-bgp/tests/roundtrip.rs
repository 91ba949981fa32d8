//! Property tests: every message the encoder can say decodes back to itself, with the
//! length it took, and is not a message until its last byte is there. The fuzz targets
//! (fuzz/) go the other way, from hostile bytes.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use weft_bgp::message::{GracefulRestart, Message, MpReach, Notification, Open, Update, MAX_MESSAGE_LEN};
use weft_bgp::session::{open_for, updates, Local};

fn prefix() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0..=32u8).prop_map(|(a, len)| Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc())
}

fn prefix6() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0..=128u8).prop_map(|(a, len)| Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc())
}

fn any_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![prefix().prop_map(IpNet::V4), prefix6().prop_map(IpNet::V6)]
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    (any::<u128>(), proptest::option::of(any::<u128>()), proptest::collection::vec(prefix6(), 0..10))
        .prop_map(|(next_hop, link_local, nlri)| MpReach {
            next_hop: Ipv6Addr::from(next_hop),
            link_local: link_local.map(Ipv6Addr::from),
            nlri,
        })
}

fn address() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

/// An AS number as the session's encoding can carry it: any with 4-octet AS numbers,
/// 2-octet ones otherwise.
fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        any::<u32>().boxed()
    } else {
        any::<u16>().prop_map(u32::from).boxed()
    }
}

fn open() -> impl Strategy<Value = Open> {
    any::<bool>().prop_flat_map(|four_octet_as| {
        (
            asn(four_octet_as),
            any::<u16>(),
            address(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of((0..=0x0fffu16, any::<bool>(), any::<bool>())),
        )
            .prop_map(move |(asn, hold_time, router_id, ipv4_unicast, ipv6_unicast, gr)| Open {
                asn,
                hold_time,
                router_id,
                four_octet_as,
                ipv4_unicast,
                ipv6_unicast,
                graceful_restart: gr.map(|(restart_time, restarting, forwarding_kept)| GracefulRestart {
                    restart_time,
                    restarting,
                    forwarding_kept,
                }),
            })
    })
}

/// UPDATEs the encoder can say within one message: announced prefixes come with ORIGIN
/// and NEXT_HOP (the decoder insists), attributes weft keeps only as codes are never sent.
fn update(four: bool) -> impl Strategy<Value = Update> {
    (
        proptest::collection::vec(prefix(), 0..100),
        proptest::option::of(0..=2u8),
        proptest::collection::vec(asn(four), 0..600),
        proptest::option::of(address()),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(prefix(), 0..100),
        proptest::option::of(mp_reach()),
        proptest::option::of(proptest::collection::vec(prefix6(), 0..10)),
    )
        .prop_map(|(withdrawn, origin, as_path, next_hop, local_pref, nlri, mp_reach, mp_unreach)| {
            let announcing6 = mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
            let origin = if announcing6 { Some(origin.unwrap_or(0)) } else { origin };
            let announcing = !nlri.is_empty();
            Update {
                withdrawn,
                origin: if announcing { Some(origin.unwrap_or(0)) } else { origin },
                as_path,
                next_hop: if announcing {
                    Some(next_hop.unwrap_or(Ipv4Addr::new(192, 0, 2, 1)))
                } else {
                    next_hop
                },
                local_pref,
                mp_reach,
                mp_unreach,
                other_attributes: Vec::new(),
                nlri,
            }
        })
}

fn message(four: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Keepalive),
        (any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(code, subcode, data)| Message::Notification(Notification { code, subcode, data })),
        open().prop_map(Message::Open),
        update(four).prop_map(Message::Update),
    ]
}

fn round_trip(message: &Message, four: bool) -> Result<(), TestCaseError> {
    let bytes = message.encode(four);
    prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
    let decoded = Message::decode(&bytes, four);
    prop_assert_eq!(decoded, Ok(Some((message.clone(), bytes.len()))));
    prop_assert_eq!(Message::decode(&bytes[..bytes.len() - 1], four), Ok(None));
    Ok(())
}

proptest! {
    #[test]
    fn messages_decode_to_themselves(
        (four, message) in any::<bool>().prop_flat_map(|four| (Just(four), message(four)))
    ) {
        round_trip(&message, four)?;
    }

    #[test]
    fn a_sequence_decodes_one_message_at_a_time(messages in proptest::collection::vec(message(true), 1..8)) {
        let stream: Vec<u8> = messages.iter().flat_map(|m| m.encode(true)).collect();
        let mut rest = &stream[..];
        for message in &messages {
            let (decoded, used) = Message::decode(rest, true).unwrap().unwrap();
            prop_assert_eq!(&decoded, message);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn what_the_session_sends_decodes_to_itself(
        asn in 1..=u32::MAX,
        peer_asn in 1..=u32::MAX,
        hold_time in any::<u16>(),
        router_id in address(),
        graceful_restart in proptest::option::of(1..=4095u16),
        announced in proptest::collection::btree_set(any_prefix(), 0..50),
        wanted in proptest::collection::btree_set(any_prefix(), 0..1000),
        next_hop6 in proptest::option::of(any::<u128>().prop_map(Ipv6Addr::from)),
    ) {
        let local = Local { asn, router_id, hold_time, next_hop: router_id, next_hop6, graceful_restart };
        round_trip(&open_for(&local), false)?;
        let ipv6 = next_hop6.is_some();
        for message in updates(&local, peer_asn, &announced, &wanted, ipv6) {
            round_trip(&message, true)?;
        }
        for message in updates(&local, peer_asn, &wanted, &BTreeSet::new(), ipv6) {
            round_trip(&message, true)?;
        }
    }
}
