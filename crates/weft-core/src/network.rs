//! The cluster network's configuration, as `weft network init` writes it into the store.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// VXLAN's conventional VNI and UDP port (flannel's, and Linux's default 8472).
pub const DEFAULT_VNI: u32 = 1;
pub const DEFAULT_VXLAN_PORT: u16 = 8472;

/// What carries pod traffic between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Each node routes every other node's pod subnet via that node's IP ("host-gw").
    Route,
    /// Pod packets are encapsulated in UDP between nodes.
    Vxlan,
    /// `route` to peers on the same L2 segment, `vxlan` to the rest.
    #[default]
    Auto,
    /// Each node announces its subnet to the physical routers over BGP: `route` to peers on
    /// the same segment, the rest through the routers (no overlay).
    Bgp,
    /// Pods live on the nodes' own L2 segment: the CIDR is the segment's subnet, each node
    /// leases a slice of it, pods join a bridge holding the node's uplink and use the
    /// segment's router. No routes, no encapsulation: ARP finds everyone.
    L2,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Route => "route",
            Backend::Vxlan => "vxlan",
            Backend::Auto => "auto",
            Backend::Bgp => "bgp",
            Backend::L2 => "l2",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfig {
    /// The cluster CIDR every pod address comes from.
    pub cidr: IpNet,
    /// Prefix length of each node's lease.
    pub subnet_len: u8,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default = "default_vni")]
    pub vni: u32,
    #[serde(default = "default_port")]
    pub port: u16,
    /// L2: the segment's router, the pods' gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::IpAddr>,
    /// Ranges of the CIDR never leased to nodes: on an L2 segment, the router's and the
    /// nodes' own addresses and anything else that lives there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<IpNet>,
    /// Underlay addresses besides the nodes' that may send into the overlay (vxlan, auto):
    /// gateways and clients, which hold no lease. Nodes take VXLAN from their peers and
    /// these, and drop it from anyone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlay_sources: Vec<IpNet>,
    /// Dual stack: the IPv6 pool beside the IPv4 one above (`cidr` is then IPv4). An
    /// IPv6-only network has its IPv6 CIDR in `cidr` and none here. A lease then holds one
    /// subnet of each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Pool>,
    /// Families whose pods leaving the cluster are not masqueraded (IPv6 pods are often
    /// meant to be globally routed). Empty: both are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_masquerade: Vec<Family>,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    pub fn of_net(net: &IpNet) -> Family {
        Family::of(net.addr())
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The second family's pool of a dual-stack network: the same fields as the first's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pool {
    pub cidr: IpNet,
    pub subnet_len: u8,
    /// L2: the segment's IPv6 router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<IpNet>,
}

impl Pool {
    /// A pool with the conventional subnet length of its family (/24, /64).
    pub fn new(cidr: IpNet) -> Pool {
        let subnet_len = if cidr.addr().is_ipv4() { 24 } else { 64 };
        Pool {
            cidr: cidr.trunc(),
            subnet_len: subnet_len.max(cidr.prefix_len() + 1),
            gateway: None,
            reserved: vec![],
        }
    }
}

fn default_vni() -> u32 {
    DEFAULT_VNI
}

fn default_port() -> u16 {
    DEFAULT_VXLAN_PORT
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkConfigError {
    #[error("subnet length /{subnet_len} must be longer than the CIDR's /{cidr_len} and at most /{max}")]
    SubnetLen { subnet_len: u8, cidr_len: u8, max: u8 },
    #[error("VNI {0} is out of range (1..=16777215)")]
    Vni(u32),
    #[error("UDP port 0 is not a port")]
    Port,
    #[error("the l2 backend needs the segment's router as gateway, inside {0}")]
    L2Gateway(IpNet),
    #[error("overlay source {0}: {1}")]
    OverlaySource(IpNet, &'static str),
    #[error("a network has at most one CIDR per address family, IPv4 first: {0} and {1}")]
    Families(IpNet, IpNet),
    #[error("the {family} pool: {error}")]
    InPool { family: Family, error: Box<NetworkConfigError> },
}

impl NetworkConfig {
    /// A config with the conventional defaults: /24 leases from an IPv4 CIDR, /64 from an
    /// IPv6 one, backend `auto`, VNI 1, port 8472.
    pub fn new(cidr: IpNet) -> NetworkConfig {
        let pool = Pool::new(cidr);
        NetworkConfig {
            cidr: pool.cidr,
            subnet_len: pool.subnet_len,
            backend: Backend::default(),
            vni: DEFAULT_VNI,
            port: DEFAULT_VXLAN_PORT,
            gateway: None,
            reserved: Vec::new(),
            overlay_sources: Vec::new(),
            ipv6: None,
            no_masquerade: Vec::new(),
        }
    }

    /// A config for one CIDR, or two of different families (dual stack, IPv4 first in the
    /// config whichever order they come in), each with its family's default subnet length.
    pub fn with_cidrs(cidrs: &[IpNet]) -> Result<NetworkConfig, NetworkConfigError> {
        match *cidrs {
            [one] => Ok(NetworkConfig::new(one)),
            [a, b] if Family::of_net(&a) != Family::of_net(&b) => {
                let (v4, v6) = if a.addr().is_ipv4() { (a, b) } else { (b, a) };
                Ok(NetworkConfig { ipv6: Some(Pool::new(v6)), ..NetworkConfig::new(v4) })
            }
            [a, b] => Err(NetworkConfigError::Families(a, b)),
            _ => Err(NetworkConfigError::Families(cidrs[0], cidrs[cidrs.len() - 1])),
        }
    }

    /// The families whose pods this network addresses, IPv4 first.
    pub fn families(&self) -> Vec<Family> {
        self.pools().iter().map(|p| Family::of_net(&p.cidr)).collect()
    }

    /// Each family's pool, IPv4 first.
    pub fn pools(&self) -> Vec<Pool> {
        let first = Pool {
            cidr: self.cidr,
            subnet_len: self.subnet_len,
            gateway: self.gateway,
            reserved: self.reserved.clone(),
        };
        std::iter::once(first).chain(self.ipv6.clone()).collect()
    }

    /// The pool of `family`, if the network has one.
    pub fn pool(&self, family: Family) -> Option<Pool> {
        self.pools().into_iter().find(|p| Family::of_net(&p.cidr) == family)
    }

    /// This config as a single-family network of `family`'s pool (its CIDR, subnet length,
    /// gateway and reserved ranges at the top): what the per-family code works on.
    pub fn for_family(&self, family: Family) -> Option<NetworkConfig> {
        let pool = self.pool(family)?;
        Some(NetworkConfig {
            cidr: pool.cidr,
            subnet_len: pool.subnet_len,
            gateway: pool.gateway,
            reserved: pool.reserved,
            ipv6: None,
            ..self.clone()
        })
    }

    /// Whether `net` lies in one of the network's CIDRs.
    pub fn contains(&self, net: &IpNet) -> bool {
        self.pools().iter().any(|p| p.cidr.contains(net))
    }

    /// Whether `ip` lies in one of the network's CIDRs.
    pub fn contains_ip(&self, ip: &IpAddr) -> bool {
        self.pools().iter().any(|p| p.cidr.contains(ip))
    }

    /// Whether pods of `family` leaving the cluster are masqueraded.
    pub fn masquerades(&self, family: Family) -> bool {
        !self.no_masquerade.contains(&family)
    }

    pub fn validate(&self) -> Result<(), NetworkConfigError> {
        if let Some(pool) = &self.ipv6 {
            if !self.cidr.addr().is_ipv4() || pool.cidr.addr().is_ipv4() {
                return Err(NetworkConfigError::Families(self.cidr, pool.cidr));
            }
            let v6 = self.for_family(Family::Ipv6).expect("an IPv6 pool");
            v6.validate_one()
                .map_err(|e| NetworkConfigError::InPool { family: Family::Ipv6, error: Box::new(e) })?;
        }
        self.validate_one()
    }

    fn validate_one(&self) -> Result<(), NetworkConfigError> {
        // At least two addresses a node can give to pods: /30 (IPv4) and /126 (IPv6).
        let max = self.cidr.max_prefix_len() - 2;
        if self.subnet_len <= self.cidr.prefix_len() || self.subnet_len > max {
            return Err(NetworkConfigError::SubnetLen {
                subnet_len: self.subnet_len,
                cidr_len: self.cidr.prefix_len(),
                max,
            });
        }
        if self.vni == 0 || self.vni > 0x00ff_ffff {
            return Err(NetworkConfigError::Vni(self.vni));
        }
        if self.port == 0 {
            return Err(NetworkConfigError::Port);
        }
        if self.backend == Backend::L2 && !self.gateway.is_some_and(|g| self.cidr.contains(&g)) {
            return Err(NetworkConfigError::L2Gateway(self.cidr));
        }
        for source in &self.overlay_sources {
            let bad = |why| Err(NetworkConfigError::OverlaySource(*source, why));
            if source.prefix_len() == 0 {
                return bad(
                    "lets everyone in; to take VXLAN from anyone, run the agents with --no-overlay-filter",
                );
            }
            let overlaps = self
                .pools()
                .iter()
                .any(|p| source.contains(&p.cidr.network()) || p.cidr.contains(&source.network()));
            if overlaps {
                return bad("overlaps the pod network: pods would pass as gateways");
            }
        }
        Ok(())
    }

    /// Whether `subnet` may not be leased: it overlaps a reserved range or holds the
    /// gateway.
    pub fn is_reserved(&self, subnet: &IpNet) -> bool {
        self.gateway.is_some_and(|g| subnet.contains(&g))
            || self.reserved.iter().any(|r| r.contains(&subnet.network()) || subnet.contains(&r.network()))
    }

    /// How many node subnets the CIDR holds (saturating for huge IPv6 ranges).
    pub fn subnet_count(&self) -> u128 {
        1u128.checked_shl(u32::from(self.subnet_len - self.cidr.prefix_len())).unwrap_or(u128::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_sources_must_be_underlay_addresses_of_some_machines() {
        let config = |source: &str| NetworkConfig {
            overlay_sources: vec![source.parse().unwrap()],
            ..NetworkConfig::new("10.244.0.0/16".parse().unwrap())
        };
        assert!(config("203.0.113.10/32").validate().is_ok());
        assert!(config("2001:db8:ff::10/128").validate().is_ok(), "an IPv6 underlay's source");
        for (source, says) in [
            ("0.0.0.0/0", "lets everyone in"),
            ("::/0", "lets everyone in"),
            ("10.244.3.0/24", "overlaps the pod network"),
            ("10.0.0.0/8", "overlaps the pod network"),
        ] {
            let error = config(source).validate().unwrap_err().to_string();
            assert!(error.contains(says), "{source}: {error}");
        }
    }

    #[test]
    fn dual_stack_is_one_cidr_per_family_ipv4_first() {
        let v4: IpNet = "10.244.0.0/16".parse().unwrap();
        let v6: IpNet = "fd00:10:244::/56".parse().unwrap();
        let dual = NetworkConfig::with_cidrs(&[v6, v4]).unwrap();
        assert_eq!((dual.cidr, dual.subnet_len), (v4, 24));
        assert_eq!(dual.ipv6, Some(Pool::new(v6)));
        assert_eq!(dual.families(), vec![Family::Ipv4, Family::Ipv6]);
        assert_eq!(dual.for_family(Family::Ipv6).unwrap().subnet_len, 64);
        assert!(dual.validate().is_ok());
        assert!(dual.contains(&"fd00:10:244:7::/64".parse().unwrap()));
        let text = serde_json::to_string(&dual).unwrap();
        assert!(text.contains(r#""ipv6":{"cidr":"fd00:10:244::/56","subnetLen":64}"#), "{text}");
        assert_eq!(serde_json::from_str::<NetworkConfig>(&text).unwrap(), dual);
        // two of one family, three, or IPv6 first in the JSON: refused
        assert!(NetworkConfig::with_cidrs(&[v4, "10.9.0.0/16".parse().unwrap()]).is_err());
        assert!(NetworkConfig::with_cidrs(&[v4, v6, v6]).is_err());
        let swapped = NetworkConfig { ipv6: Some(Pool::new(v4)), ..NetworkConfig::new(v6) };
        assert!(matches!(swapped.validate(), Err(NetworkConfigError::Families(..))));
        // each pool validated as a network of its own
        let mut tight = dual.clone();
        tight.ipv6.as_mut().unwrap().subnet_len = 127;
        let error = tight.validate().unwrap_err().to_string();
        assert!(error.starts_with("the IPv6 pool: subnet length /127"), "{error}");
        let l2 = NetworkConfig { backend: Backend::L2, gateway: Some("10.244.0.1".parse().unwrap()), ..dual };
        let error = l2.validate().unwrap_err().to_string();
        assert!(error.contains("IPv6 pool") && error.contains("router"), "{error}");
    }

    #[test]
    fn defaults_per_family() {
        let v4 = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
        assert_eq!((v4.subnet_len, v4.backend, v4.vni, v4.port), (24, Backend::Auto, 1, 8472));
        assert_eq!(v4.subnet_count(), 256);
        let v6 = NetworkConfig::new("fd00:244::/48".parse().unwrap());
        assert_eq!(v6.subnet_len, 64);
        assert!(v4.validate().is_ok() && v6.validate().is_ok());
        // a CIDR given with host bits is kept as its network
        assert_eq!(NetworkConfig::new("10.244.3.7/16".parse().unwrap()).cidr.to_string(), "10.244.0.0/16");
    }

    #[test]
    fn refuses_what_cannot_work() {
        let mut config = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
        config.subnet_len = 16;
        assert!(config.validate().is_err(), "a lease as large as the CIDR");
        config.subnet_len = 31;
        assert!(config.validate().is_err(), "a lease with no room for pods");
        config.subnet_len = 24;
        config.vni = 1 << 24;
        assert!(config.validate().is_err());
        config.vni = 1;
        config.port = 0;
        assert!(config.validate().is_err());
        config.port = 8472;
        config.backend = Backend::L2;
        assert_eq!(
            config.validate(),
            Err(NetworkConfigError::L2Gateway(config.cidr)),
            "l2 without its router"
        );
        config.gateway = Some("10.244.0.1".parse().unwrap());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn json_round_trip_with_defaults() {
        let config: NetworkConfig =
            serde_json::from_str(r#"{"cidr":"10.244.0.0/16","subnetLen":24}"#).unwrap();
        assert_eq!(config, NetworkConfig::new("10.244.0.0/16".parse().unwrap()));
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<NetworkConfig>(&text).unwrap(), config);
        assert!(
            serde_json::from_str::<NetworkConfig>(r#"{"cidr":"10.0.0.0/8","subnetLen":24,"x":1}"#).is_err()
        );
    }
}
