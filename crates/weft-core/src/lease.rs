//! Leases: one node's claim on one pod subnet, and how a node picks a free subnet.

use crate::names::fnv1a;
use crate::network::{Backend, Family, NetworkConfig};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An Ethernet address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bytes: Vec<u8> = text
            .split(':')
            .map(|part| u8::from_str_radix(part, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{text:?} is not a MAC address"))?;
        let bytes: [u8; 6] = bytes.try_into().map_err(|_| format!("{text:?} is not a MAC address"))?;
        Ok(MacAddr(bytes))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The VTEP MAC of a node: derived from its name, so it is the same after every restart
/// and peers' FDB entries stay right (flannel #1795 is what happens otherwise). Locally
/// administered, unicast.
pub fn vtep_mac(node: &str) -> MacAddr {
    let hash = fnv1a(&[b"weft-vtep\0", node.as_bytes()]).to_be_bytes();
    let mut mac = [hash[0], hash[1], hash[2], hash[3], hash[4], hash[5]];
    mac[0] = (mac[0] & 0xfe) | 0x02;
    MacAddr(mac)
}

/// One node's lease on a pod subnet: what the node says of itself. Unknown fields are
/// ignored, so that a newer agent's leases do not stop older ones during a rolling upgrade
/// (and the `expiresAt` of leases written before liveness moved out of the value is ignored).
///
/// How long a lease lives is not part of it: the store keeps that beside it (an etcd lease
/// kept alive; a column in SQLite), so that renewing a lease writes nothing that others
/// watch. The value changes only when what it says changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub node: String,
    pub subnet: IpNet,
    /// The address other nodes reach this node at: next hop (route) or VTEP (vxlan).
    pub public_ip: IpAddr,
    pub backend: Backend,
    /// The node's VTEP MAC, for the vxlan and auto backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<MacAddr>,
    /// Dual stack: the node's IPv6 pod subnet (`subnet` is the IPv4 one). Written in the same
    /// value, so one compare-and-swap gives a node both or neither. Agents from before dual
    /// stack ignore it and keep reaching the IPv4 pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<IpNet>,
    /// The node's uplink address of the other family than `public_ip`, where it has one: the
    /// next hop of that family's routes to this node (`public_ip` stays the VTEP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_public_ip: Option<IpAddr>,
}

impl Lease {
    /// The node's pod subnets, IPv4 first.
    pub fn subnets(&self) -> impl Iterator<Item = IpNet> + '_ {
        std::iter::once(self.subnet).chain(self.subnet6)
    }

    /// The node's pod subnet of `family`.
    pub fn subnet_of(&self, family: Family) -> Option<IpNet> {
        self.subnets().find(|s| Family::of_net(s) == family)
    }

    /// The node's uplink address of `family`, if it has one.
    pub fn public_ip_of(&self, family: Family) -> Option<IpAddr> {
        std::iter::once(self.public_ip).chain(self.other_public_ip).find(|ip| Family::of(*ip) == family)
    }
}

/// A free subnet of the network for `node`: its previous one if that is still free (an
/// agent that restarts gets its subnet back), else the first free one from a starting point
/// derived from the node's name, so that agents starting together mostly try different
/// subnets and their compare-and-swaps rarely collide. `None` when the CIDR is full.
pub fn pick_subnet(
    config: &NetworkConfig,
    taken: &HashSet<IpNet>,
    node: &str,
    previous: Option<IpNet>,
) -> Option<IpNet> {
    // After a forced config change leases of another length may remain: an overlap is as
    // taken as an equal subnet.
    let mixed = taken.iter().any(|t| t.prefix_len() != config.subnet_len);
    let free = |subnet: &IpNet| {
        !config.is_reserved(subnet)
            && !taken.contains(subnet)
            && (!mixed
                || !taken.iter().any(|t| t.contains(&subnet.network()) || subnet.contains(&t.network())))
    };
    let usable = |subnet: &IpNet| {
        subnet.prefix_len() == config.subnet_len && config.cidr.contains(subnet) && free(subnet)
    };
    if let Some(previous) = previous.map(|p| p.trunc()).filter(usable) {
        return Some(previous);
    }
    let count = config.subnet_count();
    let host_bits = u32::from(config.cidr.max_prefix_len() - config.subnet_len);
    let base = crate::addr::to_u128(config.cidr.network());
    let start = u128::from(fnv1a(&[node.as_bytes()])) % count.max(1);
    // As in address picking: within `taken + 1` consecutive subnets one is free, or none is
    // (with leases of other lengths, a bounded wider search).
    let reservations = config.gateway.is_some() || !config.reserved.is_empty();
    let steps = if mixed || reservations {
        count.min(65_536 + taken.len() as u128)
    } else {
        count.min(taken.len() as u128 + 1)
    };
    (0..steps)
        .map(|i| {
            let index = (start + i) % count;
            let network = crate::addr::from_u128(config.cidr.network(), base + (index << host_bits));
            IpNet::new(network, config.subnet_len).expect("length checked by validate")
        })
        .find(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_slices_avoid_the_router_and_the_reserved_ranges() {
        let mut config = NetworkConfig::new("198.18.1.0/24".parse().unwrap());
        config.subnet_len = 28;
        config.backend = crate::network::Backend::L2;
        config.gateway = Some("198.18.1.1".parse().unwrap());
        config.reserved = vec!["198.18.1.0/25".parse().unwrap()];
        let mut taken = HashSet::new();
        for i in 0..8 {
            let slice = pick_subnet(&config, &taken, &format!("n{i}"), None).unwrap();
            assert!(slice.network() >= "198.18.1.128".parse::<std::net::IpAddr>().unwrap(), "{slice}");
            assert!(taken.insert(slice));
        }
        assert_eq!(pick_subnet(&config, &taken, "n9", None), None, "the upper half holds eight slices");
        // a previous slice in the reserved range is not handed back
        assert_ne!(
            pick_subnet(&config, &HashSet::new(), "n1", Some("198.18.1.0/28".parse().unwrap())),
            Some("198.18.1.0/28".parse().unwrap())
        );
    }

    fn config(cidr: &str, len: u8) -> NetworkConfig {
        NetworkConfig { subnet_len: len, ..NetworkConfig::new(cidr.parse().unwrap()) }
    }

    #[test]
    fn leases_written_before_liveness_moved_out_still_read() {
        let old = r#"{"node":"n1","subnet":"10.244.1.0/24","publicIp":"192.0.2.11","backend":"vxlan","vtepMac":"02:00:00:00:00:01","expiresAt":1700000000}"#;
        let lease: Lease = serde_json::from_str(old).unwrap();
        assert_eq!(lease.node, "n1");
        assert!(!serde_json::to_string(&lease).unwrap().contains("expiresAt"));
    }

    #[test]
    fn mac_text_round_trip() {
        let mac: MacAddr = "02:ab:00:ff:10:01".parse().unwrap();
        assert_eq!(mac.to_string(), "02:ab:00:ff:10:01");
        assert!("02:ab:00".parse::<MacAddr>().is_err());
        assert!("zz:ab:00:ff:10:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn vtep_macs_are_stable_local_unicast_and_distinct() {
        let a = vtep_mac("node-a");
        assert_eq!(a, vtep_mac("node-a"));
        assert_ne!(a, vtep_mac("node-b"));
        assert_eq!(a.0[0] & 0x03, 0x02, "locally administered, unicast");
    }

    #[test]
    fn a_restarting_node_gets_its_subnet_back() {
        let config = config("10.244.0.0/16", 24);
        let previous: IpNet = "10.244.7.0/24".parse().unwrap();
        assert_eq!(pick_subnet(&config, &HashSet::new(), "n1", Some(previous)), Some(previous));
        // unless someone else holds it now
        let taken = HashSet::from([previous]);
        let picked = pick_subnet(&config, &taken, "n1", Some(previous)).unwrap();
        assert_ne!(picked, previous);
        assert!(config.cidr.contains(&picked) && picked.prefix_len() == 24);
    }

    #[test]
    fn every_subnet_is_given_once_then_none() {
        let config = config("10.9.0.0/22", 24);
        let mut taken = HashSet::new();
        for i in 0..4 {
            let subnet = pick_subnet(&config, &taken, &format!("node-{i}"), None).unwrap();
            assert!(taken.insert(subnet), "{subnet} given twice");
        }
        assert_eq!(pick_subnet(&config, &taken, "node-4", None), None, "CIDR exhausted");
    }

    #[test]
    fn nodes_start_from_different_subnets() {
        let config = config("10.244.0.0/16", 24);
        let picks: HashSet<IpNet> = (0..30)
            .filter_map(|i| pick_subnet(&config, &HashSet::new(), &format!("node-{i}"), None))
            .collect();
        assert!(picks.len() > 20, "30 nodes mostly try different subnets first: {}", picks.len());
    }

    #[test]
    fn leases_of_another_length_are_not_overlapped() {
        let config = config("10.9.0.0/22", 24);
        // a /23 from before a forced change holds 10.9.0.0-10.9.1.255
        let taken = HashSet::from(["10.9.0.0/23".parse().unwrap()]);
        for i in 0..10 {
            let subnet =
                pick_subnet(&config, &taken, &format!("n{i}"), Some("10.9.1.0/24".parse().unwrap())).unwrap();
            assert!(subnet.to_string() == "10.9.2.0/24" || subnet.to_string() == "10.9.3.0/24", "{subnet}");
        }
    }

    #[test]
    fn ipv6_subnets() {
        let config = config("fd00:244::/48", 64);
        let subnet = pick_subnet(&config, &HashSet::new(), "n1", None).unwrap();
        assert_eq!(subnet.prefix_len(), 64);
        assert!(config.cidr.contains(&subnet));
    }
}
