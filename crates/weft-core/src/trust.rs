//! What a lease read from the store must be before anything is planned from it. The store
//! is not trusted blindly: another writer (a bug, an old agent, someone with access to the
//! store) may have written a lease that would route a cluster's pods, or the underlay, to the
//! wrong place. A lease that fails is ignored and named, never programmed.

use crate::lease::{Lease, MacAddr};
use crate::network::NetworkConfig;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// Why a lease is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// The key holds no lease: its value does not parse (an unknown backend, say).
    Unreadable(String),
    BadName,
    SubnetOutsideCidr {
        subnet: IpNet,
        cidr: IpNet,
    },
    SubnetLength {
        subnet: IpNet,
        length: u8,
    },
    /// Another lease, older, claims an overlapping subnet.
    Overlaps {
        subnet: IpNet,
        holder: String,
    },
    PublicIpInPodNetwork {
        ip: IpAddr,
        cidr: IpNet,
    },
    PublicIpNotUnicast(IpAddr),
    /// Two public IPs of one family: the second is meant to be the other family's.
    PublicIpsOfOneFamily(IpAddr, IpAddr),
    VtepMac(MacAddr),
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distrust::Unreadable(why) => write!(f, "not a lease: {why}"),
            Distrust::BadName => {
                f.write_str("the node's name is not a DNS name (lower-case letters, digits, '-' and '.')")
            }
            Distrust::SubnetOutsideCidr { subnet, cidr } => {
                write!(f, "subnet {subnet} is outside the cluster CIDR {cidr}")
            }
            Distrust::SubnetLength { subnet, length } => {
                write!(f, "subnet {subnet} is not a /{length}, the length the network gives nodes")
            }
            Distrust::Overlaps { subnet, holder } => {
                write!(f, "subnet {subnet} overlaps the lease of {holder}, which is older")
            }
            Distrust::PublicIpInPodNetwork { ip, cidr } => {
                write!(f, "public IP {ip} is inside the pod network {cidr}")
            }
            Distrust::PublicIpNotUnicast(ip) => write!(f, "public IP {ip} is not a unicast address"),
            Distrust::PublicIpsOfOneFamily(a, b) => {
                write!(f, "public IPs {a} and {b} are of one family; the second must be of the other")
            }
            Distrust::VtepMac(mac) => write!(f, "VTEP MAC {mac} is not a unicast Ethernet address"),
        }
    }
}

/// A node name as Kubernetes takes it (a DNS-1123 subdomain): 1 to 253 characters, lower-case
/// letters, digits, '-' and '.', starting and ending with a letter or digit.
pub fn valid_node_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| alphanumeric(c) || c == '-' || c == '.')
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
}

fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.is_loopback())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast() || v6.is_loopback()),
    }
}

/// Checks what one lease says on its own against the network config (whether another lease
/// claims its subnet is the caller's to judge, with [`Distrust::Overlaps`]).
pub fn check(lease: &Lease, config: &NetworkConfig) -> Result<(), Distrust> {
    if !valid_node_name(&lease.node) {
        return Err(Distrust::BadName);
    }
    // The first subnet is of the first pool's family; a dual lease's second is IPv6, and a
    // lease from before dual stack may lack it.
    let first = config.pools().remove(0);
    let mut pools = vec![(lease.subnet, first)];
    if let Some(subnet6) = lease.subnet6 {
        match config.ipv6.clone() {
            Some(pool) => pools.push((subnet6, pool)),
            None => return Err(Distrust::SubnetOutsideCidr { subnet: subnet6, cidr: config.cidr }),
        }
    }
    for (subnet, pool) in &pools {
        if !pool.cidr.contains(subnet) {
            return Err(Distrust::SubnetOutsideCidr { subnet: *subnet, cidr: pool.cidr });
        }
        if subnet.prefix_len() != pool.subnet_len || subnet.trunc() != *subnet {
            return Err(Distrust::SubnetLength { subnet: *subnet, length: pool.subnet_len });
        }
    }
    let other = lease.other_public_ip.filter(|ip| ip.is_ipv4() == lease.public_ip.is_ipv4());
    if let Some(ip) = other {
        return Err(Distrust::PublicIpsOfOneFamily(lease.public_ip, ip));
    }
    for ip in std::iter::once(lease.public_ip).chain(lease.other_public_ip) {
        if !unicast(ip) {
            return Err(Distrust::PublicIpNotUnicast(ip));
        }
        // Every pool of the network, whether the lease has a subnet in it or not (a lease
        // without an IPv6 half must not name an IPv6 pod address either). In l2 the CIDRs are
        // the nodes' own segments: there only the lease's pod subnets may not hold it.
        let l2 = config.backend == crate::network::Backend::L2;
        let pods: Vec<IpNet> = match l2 {
            true => pools.iter().map(|(subnet, _)| *subnet).collect(),
            false => config.pools().into_iter().map(|p| p.cidr).collect(),
        };
        if let Some(cidr) = pods.into_iter().find(|pods| pods.contains(&ip)) {
            return Err(Distrust::PublicIpInPodNetwork { ip, cidr });
        }
    }
    if let Some(mac) = lease.vtep_mac {
        if mac.0[0] & 1 == 1 || mac.0 == [0; 6] {
            return Err(Distrust::VtepMac(mac));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::vtep_mac;
    use crate::network::Backend;

    fn good() -> Lease {
        Lease {
            node: "node-1.rack-a".into(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            public_ip: "192.0.2.11".parse().unwrap(),
            backend: Backend::Vxlan,
            vtep_mac: Some(vtep_mac("node-1.rack-a")),
            subnet6: None,
            other_public_ip: None,
        }
    }

    #[test]
    fn each_thing_a_lease_may_lie_about() {
        let config = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
        assert_eq!(check(&good(), &config), Ok(()));
        type Edit = Box<dyn Fn(&mut Lease)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "outside the CIDR",
                Box::new(|l| l.subnet = "10.99.1.0/24".parse().unwrap()),
                "outside the cluster CIDR",
            ),
            ("a /16", Box::new(|l| l.subnet = "10.244.0.0/16".parse().unwrap()), "is not a /24"),
            ("host bits", Box::new(|l| l.subnet = "10.244.1.7/24".parse().unwrap()), "is not a /24"),
            (
                "public IP among pods",
                Box::new(|l| l.public_ip = "10.244.9.9".parse().unwrap()),
                "inside the pod network",
            ),
            (
                "multicast public IP",
                Box::new(|l| l.public_ip = "224.0.0.5".parse().unwrap()),
                "not a unicast address",
            ),
            (
                "loopback public IP",
                Box::new(|l| l.public_ip = "127.0.0.1".parse().unwrap()),
                "not a unicast address",
            ),
            (
                "multicast MAC",
                Box::new(|l| l.vtep_mac = Some("01:00:5e:00:00:01".parse().unwrap())),
                "VTEP MAC",
            ),
            ("zero MAC", Box::new(|l| l.vtep_mac = Some("00:00:00:00:00:00".parse().unwrap())), "VTEP MAC"),
            ("a path for a name", Box::new(|l| l.node = "../etc".into()), "DNS name"),
            ("upper case", Box::new(|l| l.node = "Node-1".into()), "DNS name"),
            ("empty name", Box::new(|l| l.node = String::new()), "DNS name"),
        ];
        for (what, edit, says) in cases {
            let mut lease = good();
            edit(&mut lease);
            let verdict = check(&lease, &config).expect_err(what);
            assert!(verdict.to_string().contains(says), "{what}: {verdict}");
        }
    }

    #[test]
    fn each_thing_a_dual_lease_may_lie_about() {
        let config = NetworkConfig::with_cidrs(&[
            "fd00:10:244::/56".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
        ])
        .unwrap();
        let dual = || Lease {
            subnet6: Some("fd00:10:244:1::/64".parse().unwrap()),
            other_public_ip: Some("2001:db8::11".parse().unwrap()),
            ..good()
        };
        assert_eq!(check(&dual(), &config), Ok(()));
        assert_eq!(check(&good(), &config), Ok(()), "a lease from before dual stack is believed");
        type Edit = Box<dyn Fn(&mut Lease)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "IPv6 half outside",
                Box::new(|l| l.subnet6 = Some("fd00:99::/64".parse().unwrap())),
                "outside the cluster CIDR fd00:10:244::/56",
            ),
            (
                "IPv6 half a /60",
                Box::new(|l| l.subnet6 = Some("fd00:10:244::/60".parse().unwrap())),
                "not a /64",
            ),
            (
                "IPv6 address among pods",
                Box::new(|l| l.other_public_ip = Some("fd00:10:244:9::1".parse().unwrap())),
                "inside the pod network",
            ),
            (
                "two IPv4 addresses",
                Box::new(|l| l.other_public_ip = Some("192.0.2.99".parse().unwrap())),
                "of one family",
            ),
            ("multicast IPv6", Box::new(|l| l.other_public_ip = Some("ff02::1".parse().unwrap())), "unicast"),
        ];
        for (what, edit, says) in cases {
            let mut lease = dual();
            edit(&mut lease);
            let verdict = check(&lease, &config).expect_err(what);
            assert!(verdict.to_string().contains(says), "{what}: {verdict}");
        }
        // A lease without an IPv6 half (from before dual stack, or forged) may not name an
        // IPv6 pod address either: it would become a VTEP and an overlay source.
        let half = Lease { public_ip: "fd00:10:244:9::1".parse().unwrap(), other_public_ip: None, ..good() };
        let verdict = check(&half, &config).expect_err("an IPv6 pod address as public IP");
        assert!(verdict.to_string().contains("inside the pod network fd00:10:244::/56"), "{verdict}");
        let single = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
        let verdict = check(&dual(), &single).expect_err("an IPv6 half where the network has none");
        assert!(verdict.to_string().contains("outside"), "{verdict}");
    }

    #[test]
    fn names_as_kubernetes_takes_them() {
        for name in ["n1", "node-1", "ip-10-0-0-1.ec2.internal", "a"] {
            assert!(valid_node_name(name), "{name}");
        }
        for name in ["-n1", "n1-", "N1", "n_1", "n 1", "n1/x", ""] {
            assert!(!valid_node_name(name), "{name}");
        }
        assert!(!valid_node_name(&"a".repeat(254)));
    }
}
