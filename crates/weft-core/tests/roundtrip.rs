//! Property tests: what weft writes of its files and store values (node file, lease,
//! network config, status file) reads back the same. The fuzz targets (fuzz/) go the
//! other way, from hostile bytes.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_core::lease::{Lease, MacAddr};
use weft_core::network::{Backend, Family, NetworkConfig, Pool};
use weft_core::plan::{PeerPath, PlannedRoute};
use weft_core::status::{
    BgpSessionStatus, LeaseStatus, PassStatus, PeerStatus, RejectedLease, Role, StatusFile, StoreStatus,
};
use weft_core::{AttachMode, NodeFile, NodeSubnet};

fn v4() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0..=32u8).prop_map(|(a, len)| Ipv4Net::new(Ipv4Addr::from(a), len).unwrap())
}

fn v6() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0..=128u8).prop_map(|(a, len)| Ipv6Net::new(Ipv6Addr::from(a), len).unwrap())
}

/// Any network, host bits and all (the JSON keeps what it is given).
fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![v4().prop_map(IpNet::V4), v6().prop_map(IpNet::V6)]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::from(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::from(Ipv6Addr::from(a)))
    ]
}

/// Any text, escapes and all, or a name.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,20}", "[a-z0-9.-]{1,20}"]
}

fn backend() -> impl Strategy<Value = Backend> {
    prop_oneof![
        Just(Backend::Route),
        Just(Backend::Vxlan),
        Just(Backend::Auto),
        Just(Backend::Bgp),
        Just(Backend::L2)
    ]
}

fn lease() -> impl Strategy<Value = Lease> {
    (
        text(),
        net(),
        ip(),
        backend(),
        proptest::option::of(any::<[u8; 6]>()),
        proptest::option::of(v6().prop_map(IpNet::V6)),
        proptest::option::of(ip()),
    )
        .prop_map(|(node, subnet, public_ip, backend, mac, subnet6, other_public_ip)| Lease {
            node,
            subnet,
            public_ip,
            backend,
            vtep_mac: mac.map(MacAddr),
            subnet6,
            other_public_ip,
        })
}

/// One subnet of a node file, valid: a gateway of its family in the subnet, and inside the
/// segment when there is one (a supernet of the subnet).
fn node_subnet(v6: bool) -> impl Strategy<Value = NodeSubnet> {
    let subnet = if v6 { self::v6().prop_map(IpNet::V6).boxed() } else { v4().prop_map(IpNet::V4).boxed() };
    (subnet, any::<bool>(), any::<u8>(), any::<u128>()).prop_map(|(subnet, segmented, shorter, host)| {
        let host_bits = u32::from(subnet.max_prefix_len() - subnet.prefix_len());
        let offset = if host_bits == 0 { 0 } else { host % (1u128 << host_bits.min(127)) };
        let gateway = match subnet {
            IpNet::V4(n) => IpAddr::from(Ipv4Addr::from(u32::from(n.network()).wrapping_add(offset as u32))),
            IpNet::V6(n) => IpAddr::from(Ipv6Addr::from(u128::from(n.network()).wrapping_add(offset))),
        };
        if segmented {
            let len = subnet.prefix_len().saturating_sub(shorter % 8);
            let segment = IpNet::new(subnet.addr(), len).unwrap().trunc();
            NodeSubnet { subnet, gateway: Some(gateway), segment: Some(segment) }
        } else {
            NodeSubnet { subnet, gateway: Some(gateway).filter(|_| shorter % 2 == 0), segment: None }
        }
    })
}

fn node_file() -> impl Strategy<Value = NodeFile> {
    (
        proptest::option::of(text()),
        prop_oneof![
            node_subnet(false).prop_map(|s| vec![s]),
            node_subnet(true).prop_map(|s| vec![s]),
            (node_subnet(false), node_subnet(true)).prop_map(|(a, b)| vec![a, b]),
            (node_subnet(true), node_subnet(false)).prop_map(|(a, b)| vec![a, b]),
        ],
        proptest::option::of(68..=65535u32),
        proptest::option::of(prop_oneof![Just(AttachMode::Routed), Just(AttachMode::Bridge)]),
        proptest::option::of(text()),
    )
        .prop_map(|(node, subnets, mtu, attach, bridge)| NodeFile { node, subnets, mtu, attach, bridge })
}

fn network_config() -> impl Strategy<Value = NetworkConfig> {
    (
        net(),
        any::<u8>(),
        backend(),
        any::<u32>(),
        any::<u16>(),
        proptest::option::of(ip()),
        proptest::collection::vec(net(), 0..4),
        proptest::collection::vec(net(), 0..4),
        proptest::option::of(pool()),
        proptest::collection::vec(prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)], 0..2),
    )
        .prop_map(
            |(
                cidr,
                subnet_len,
                backend,
                vni,
                port,
                gateway,
                reserved,
                overlay_sources,
                ipv6,
                no_masquerade,
            )| {
                NetworkConfig {
                    cidr,
                    subnet_len,
                    backend,
                    vni,
                    port,
                    gateway,
                    reserved,
                    overlay_sources,
                    ipv6,
                    no_masquerade,
                }
            },
        )
}

fn pool() -> impl Strategy<Value = Pool> {
    (net(), any::<u8>(), proptest::option::of(ip()), proptest::collection::vec(net(), 0..3))
        .prop_map(|(cidr, subnet_len, gateway, reserved)| Pool { cidr, subnet_len, gateway, reserved })
}

fn peer_path() -> impl Strategy<Value = PeerPath> {
    prop_oneof![
        Just(PeerPath::Route),
        Just(PeerPath::Vxlan),
        Just(PeerPath::Bgp),
        Just(PeerPath::L2),
        text().prop_map(PeerPath::Unreachable)
    ]
}

fn status_file() -> impl Strategy<Value = StatusFile> {
    let head = (
        text(),
        prop_oneof![Just(Role::Node), Just(Role::Gateway), Just(Role::Client)],
        any::<u32>(),
        proptest::option::of(any::<u64>()),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of((lease(), any::<u64>(), any::<u64>())),
    );
    let store = (text(), any::<u64>(), any::<bool>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(url, revision, connected, lists, watch_resumes, events)| StoreStatus {
            url,
            revision,
            connected,
            lists,
            watch_resumes,
            events,
        },
    );
    let bgp = proptest::collection::vec(
        (
            ip(),
            any::<u32>(),
            any::<u32>(),
            text(),
            proptest::collection::vec(net(), 0..3),
            proptest::option::of(text()),
        ),
        0..3,
    )
    .prop_map(|sessions| {
        sessions
            .into_iter()
            .map(|(peer, asn, local_asn, state, announced, last_error)| BgpSessionStatus {
                peer,
                asn,
                local_asn,
                state,
                announced,
                last_error,
            })
            .collect::<Vec<_>>()
    });
    let overlay =
        (proptest::option::of(proptest::collection::vec(net(), 0..4)), proptest::option::of(text()));
    let rest = (
        proptest::collection::vec((text(), net(), peer_path()), 0..4),
        proptest::collection::vec((text(), text()), 0..3),
        proptest::collection::vec((net(), ip(), text(), any::<bool>()), 0..4),
        (any::<u64>(), any::<usize>(), proptest::option::of(text())),
    );
    (head, store, bgp, overlay, rest).prop_map(
        |(
            (node, role, pid, netns_inode, written_at, refresh, lease),
            store,
            bgp,
            (overlay_sources, overlay_filter_error),
            (peers, rejected, routes, pass),
        )| {
            StatusFile {
                node,
                role,
                pid,
                netns_inode,
                written_at,
                refresh,
                lease: lease.map(|(lease, ttl, renewed_at)| LeaseStatus { lease, ttl, renewed_at }),
                store,
                bgp,
                overlay_sources,
                overlay_filter_error,
                peers: peers
                    .into_iter()
                    .map(|(node, subnet, path)| PeerStatus { node, subnet, subnet6: None, path })
                    .collect(),
                rejected: rejected.into_iter().map(|(node, reason)| RejectedLease { node, reason }).collect(),
                planned_routes: routes
                    .into_iter()
                    .map(|(destination, gateway, device, onlink)| PlannedRoute {
                        destination,
                        gateway,
                        device,
                        onlink,
                    })
                    .collect(),
                last_pass: PassStatus { at: pass.0, changes: pass.1, error: pass.2 },
            }
        },
    )
}

proptest! {
    #[test]
    fn node_files_read_back(file in node_file()) {
        prop_assert!(file.validate().is_ok(), "{:?}", file.validate());
        prop_assert_eq!(NodeFile::parse(&file.to_json()).unwrap(), file);
    }

    #[test]
    fn leases_read_back(lease in lease()) {
        let text = serde_json::to_string(&lease).unwrap();
        prop_assert_eq!(serde_json::from_str::<Lease>(&text).unwrap(), lease.clone());
        prop_assert_eq!(serde_json::from_slice::<Lease>(text.as_bytes()).unwrap(), lease);
    }

    #[test]
    fn network_configs_read_back(config in network_config()) {
        let text = serde_json::to_string(&config).unwrap();
        prop_assert_eq!(serde_json::from_str::<NetworkConfig>(&text).unwrap(), config);
    }

    #[test]
    fn status_files_read_back(status in status_file()) {
        prop_assert_eq!(StatusFile::parse(&status.to_json()).unwrap(), status);
    }
}
