//! Choosing a free address in a subnet. Pure: the caller says which addresses are taken.

use crate::addr::{is_assignable, size, to_u128};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;

/// The next free, assignable address of `subnet` after `last` (round robin, wrapping), so a
/// freed address is not handed out again at once: a pod that just left may still have
/// packets in flight. `None` when the subnet is full.
pub fn pick_free(subnet: &IpNet, taken: &HashSet<IpAddr>, last: Option<IpAddr>) -> Option<IpAddr> {
    let size = size(subnet);
    let base = to_u128(subnet.network());
    let start = match last {
        Some(ip) if subnet.contains(&ip) => (to_u128(ip) - base).wrapping_add(1) % size.max(1),
        _ => 0,
    };
    // Among `taken + 3` consecutive addresses at most `taken` are in use and at most two
    // (network, broadcast) cannot be assigned, so a free one is found within that many
    // steps or the subnet has none. This keeps an IPv6 /64 from being walked end to end.
    let steps = size.min(taken.len() as u128 + 3);
    (0..steps)
        .map(|i| crate::addr::from_u128(subnet.network(), base + (start + i) % size))
        .find(|ip| is_assignable(subnet, *ip) && !taken.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ips: &[&str]) -> HashSet<IpAddr> {
        ips.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn first_pick_skips_network_address() {
        let s: IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(pick_free(&s, &set(&[]), None), Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn round_robin_after_last_and_wraps() {
        let s: IpNet = "10.0.0.0/29".parse().unwrap();
        let taken = set(&["10.0.0.1"]);
        let last = Some("10.0.0.5".parse().unwrap());
        assert_eq!(pick_free(&s, &taken, last), Some("10.0.0.6".parse().unwrap()));
        let last = Some("10.0.0.6".parse().unwrap());
        // .7 is broadcast, .0 network, .1 taken: wraps to .2
        assert_eq!(pick_free(&s, &taken, last), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn full_subnet_gives_none() {
        let s: IpNet = "10.0.0.0/30".parse().unwrap();
        assert_eq!(pick_free(&s, &set(&["10.0.0.1", "10.0.0.2"]), None), None);
    }

    #[test]
    fn huge_ipv6_subnet_is_not_walked() {
        let s: IpNet = "fd00::/64".parse().unwrap();
        let taken = set(&["fd00::1", "fd00::2"]);
        assert_eq!(pick_free(&s, &taken, None), Some("fd00::3".parse().unwrap()));
        let last = Some("fd00::ffff:ffff:ffff:ffff".parse().unwrap());
        // wraps to the start, skipping the subnet-router anycast address
        assert_eq!(pick_free(&s, &taken, last), Some("fd00::3".parse().unwrap()));
    }

    #[test]
    fn every_address_is_given_once() {
        let s: IpNet = "10.9.0.0/28".parse().unwrap();
        let mut taken = HashSet::new();
        let mut last = None;
        while let Some(ip) = pick_free(&s, &taken, last) {
            assert!(taken.insert(ip), "{ip} handed out twice");
            last = Some(ip);
        }
        assert_eq!(taken.len(), 14);
    }
}
