//! Address arithmetic that treats IPv4 and IPv6 the same way, through `u128`.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The gateway a routed pod uses: link-local, so every pod on every node has the same one
/// and no pod subnet address is spent on it (the host side of the veth answers for it).
pub const ROUTED_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// IPv6 counterpart of [`ROUTED_GATEWAY_V4`].
pub const ROUTED_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

pub fn routed_gateway(subnet: &IpNet) -> IpAddr {
    match subnet {
        IpNet::V4(_) => IpAddr::V4(ROUTED_GATEWAY_V4),
        IpNet::V6(_) => IpAddr::V6(ROUTED_GATEWAY_V6),
    }
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of the same family as `like` whose numeric value is `n`.
pub fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The `n`th address of `subnet` counting from its network address (0).
/// `None` when `n` lies outside the subnet.
pub fn nth(subnet: &IpNet, n: u128) -> Option<IpAddr> {
    let size = size(subnet);
    (n < size).then(|| from_u128(subnet.network(), to_u128(subnet.network()) + n))
}

/// How many addresses the subnet spans, network and broadcast included.
pub fn size(subnet: &IpNet) -> u128 {
    let host_bits = u32::from(subnet.max_prefix_len() - subnet.prefix_len());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// Whether an address of the subnet can be given to a host: IPv4 keeps the network and
/// broadcast addresses back (except in /31 and /32), IPv6 only the subnet-router anycast.
pub fn is_assignable(subnet: &IpNet, ip: IpAddr) -> bool {
    if !subnet.contains(&ip) {
        return false;
    }
    match subnet {
        IpNet::V4(v4) if v4.prefix_len() >= 31 => true,
        IpNet::V4(v4) => ip != IpAddr::V4(v4.network()) && ip != IpAddr::V4(v4.broadcast()),
        IpNet::V6(v6) if v6.prefix_len() >= 127 => true,
        IpNet::V6(v6) => ip != IpAddr::V6(v6.network()),
    }
}

/// The first assignable address: where a bridge's gateway conventionally sits.
pub fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    (0..size(subnet).min(4)).filter_map(|n| nth(subnet, n)).find(|ip| is_assignable(subnet, *ip))
}

/// A host route's prefix length for this family: /32 or /128.
pub fn host_prefix_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(size(&net("10.0.0.0/24")), 256);
        assert_eq!(size(&net("10.0.0.5/32")), 1);
        assert_eq!(size(&net("fd00::/120")), 256);
        assert_eq!(size(&net("::/0")), u128::MAX);
    }

    #[test]
    fn assignable_excludes_network_and_broadcast() {
        let s = net("10.0.0.0/24");
        assert!(!is_assignable(&s, "10.0.0.0".parse().unwrap()));
        assert!(!is_assignable(&s, "10.0.0.255".parse().unwrap()));
        assert!(is_assignable(&s, "10.0.0.1".parse().unwrap()));
        assert!(!is_assignable(&s, "10.0.1.1".parse().unwrap()));
        let p2p = net("10.0.0.0/31");
        assert!(is_assignable(&p2p, "10.0.0.0".parse().unwrap()));
        let v6 = net("fd00::/64");
        assert!(!is_assignable(&v6, "fd00::".parse().unwrap()));
        assert!(is_assignable(&v6, "fd00::ffff".parse().unwrap()));
    }

    #[test]
    fn first_host_per_family() {
        assert_eq!(first_host(&net("10.1.2.0/24")), Some("10.1.2.1".parse().unwrap()));
        assert_eq!(first_host(&net("fd00:1::/64")), Some("fd00:1::1".parse().unwrap()));
        assert_eq!(first_host(&net("10.1.2.7/32")), Some("10.1.2.7".parse().unwrap()));
    }

    #[test]
    fn nth_stays_inside() {
        let s = net("10.0.0.0/30");
        assert_eq!(nth(&s, 3), Some("10.0.0.3".parse().unwrap()));
        assert_eq!(nth(&s, 4), None);
    }
}
