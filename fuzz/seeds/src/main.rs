//! Seeds for the fuzz corpus (see Cargo.toml).
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::Path;
use weft_bgp::message::{GracefulRestart, Message, Notification, Open, Update};
use weft_bgp::session::{open_for, updates, Local};
use weft_core::lease::{vtep_mac, Lease};
use weft_core::network::{Backend, NetworkConfig};
use weft_core::plan::{PeerPath, PlannedRoute};
use weft_core::status::{
    BgpSessionStatus, LeaseStatus, PassStatus, PeerStatus, RejectedLease, Role, StatusFile, StoreStatus,
};
use weft_core::{AttachMode, NodeFile, NodeSubnet};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn local(asn: u32, graceful_restart: Option<u16>) -> Local {
    Local {
        asn,
        router_id: Ipv4Addr::new(198, 18, 1, 11),
        hold_time: 9,
        next_hop: Ipv4Addr::new(198, 18, 1, 11),
        next_hop6: None,
        graceful_restart,
    }
}

/// A peer's OPEN as BIRD and FRR send it: route refresh (2), 4-octet AS, multiprotocol
/// IPv4 unicast, enhanced route refresh (70), graceful restart, FQDN (73).
fn router_open(asn: u16, hold: u16, four_octet_asn: u32) -> Vec<u8> {
    let mut caps = vec![2, 0, 70, 0, 1, 4, 0, 1, 0, 1, 65, 4];
    caps.extend_from_slice(&four_octet_asn.to_be_bytes());
    caps.extend_from_slice(&[64, 6, 0x80, 120, 0, 1, 1, 0x80]);
    caps.extend_from_slice(&[73, 8, 6, b'r', b'o', b'u', b't', b'e', b'r', 0]);
    let mut params = Vec::new();
    // each capability in a parameter of its own, as FRR does
    let mut rest = &caps[..];
    while let [_, len, ..] = rest {
        let take = 2 + usize::from(*len);
        params.extend_from_slice(&[2, take as u8]);
        params.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
    }
    let mut body = vec![4];
    body.extend_from_slice(&asn.to_be_bytes());
    body.extend_from_slice(&hold.to_be_bytes());
    body.extend_from_slice(&[198, 18, 1, 1, params.len() as u8]);
    body.extend_from_slice(&params);
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(1);
    out.extend_from_slice(&body);
    out
}

/// A router's UPDATE with attributes weft keeps only as codes: MED (4), COMMUNITIES (8),
/// and an AS_SET segment (1) after the AS_SEQUENCE.
fn router_update() -> Vec<u8> {
    let mut attributes = vec![0x40, 1, 1, 0];
    attributes
        .extend_from_slice(&[0x40, 2, 16, 2, 2, 0, 0, 0xfd, 0xe8, 0, 0, 0xfd, 0xe9, 1, 1, 0, 0, 0xfd, 0xea]);
    attributes.extend_from_slice(&[0x40, 3, 4, 198, 18, 1, 1]);
    attributes.extend_from_slice(&[0x80, 4, 4, 0, 0, 0, 10]);
    attributes.extend_from_slice(&[0xc0, 8, 4, 0xfd, 0xe8, 0, 100]);
    let mut body = vec![0, 3, 16, 10, 99];
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(&attributes);
    body.extend_from_slice(&[24, 192, 0, 2, 8, 10, 0]);
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&body);
    out
}

fn bgp(dir: &Path) {
    let nets =
        |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect::<std::collections::BTreeSet<_>>();
    let plain = local(65001, None);
    let big = local(4_200_000_001, Some(120));
    let dual = Local { next_hop6: Some("2001:db8:1::11".parse().unwrap()), ..local(65001, Some(60)) };
    let mut messages: Vec<(&str, Message)> = vec![
        ("keepalive", Message::Keepalive),
        ("notification-cease", Message::Notification(Notification::shutdown())),
        (
            "notification-bad-length",
            Message::Notification(Notification { code: 1, subcode: 2, data: vec![0, 18] }),
        ),
        ("open-2-octet", open_for(&plain)),
        ("open-4-octet-gr", open_for(&big)),
        (
            "open-bare",
            Message::Open(Open {
                asn: 65000,
                hold_time: 0,
                router_id: Ipv4Addr::new(10, 0, 0, 1),
                four_octet_as: false,
                ipv4_unicast: false,
                ipv6_unicast: false,
                graceful_restart: Some(GracefulRestart {
                    restart_time: 0,
                    restarting: false,
                    forwarding_kept: false,
                }),
            }),
        ),
        ("update-end-of-rib", Message::Update(Update::default())),
        ("update-end-of-rib-ipv6", Message::Update(Update { mp_unreach: Some(vec![]), ..Update::default() })),
        ("open-dual", open_for(&dual)),
    ];
    for (name, message) in [
        ("update-ebgp", updates(&plain, 65000, &nets(&[]), &nets(&["10.244.1.0/24", "10.244.7.0/24"]), false)),
        ("update-ibgp", updates(&plain, 65001, &nets(&[]), &nets(&["10.244.0.0/16"]), false)),
        (
            "update-withdraw-and-announce",
            updates(&big, 65000, &nets(&["10.244.1.0/24"]), &nets(&["0.0.0.0/0", "10.244.2.128/25"]), false),
        ),
        (
            "update-dual",
            updates(
                &dual,
                65000,
                &nets(&["fd00:10:244:1::/64"]),
                &nets(&["10.244.1.0/24", "fd00:10:244:2::/64", "::/0"]),
                true,
            ),
        ),
    ] {
        for (i, m) in message.into_iter().enumerate() {
            messages.push((if i == 0 { name } else { "update-second" }, m));
        }
    }
    for (name, message) in &messages {
        for four in [false, true] {
            let mut bytes = vec![u8::from(four)];
            bytes.extend_from_slice(&message.encode(four));
            write(dir, "bgp_decode", &format!("{name}-{}", if four { 4 } else { 2 }), &bytes);
        }
    }
    let mut bytes = vec![1];
    bytes.extend_from_slice(&router_open(23456, 90, 4_200_000_000));
    bytes.extend_from_slice(&router_update());
    bytes.extend_from_slice(&Message::Keepalive.encode(true));
    write(dir, "bgp_decode", "router-open-update-keepalive", &bytes);
    let mut bytes = vec![0];
    bytes.extend_from_slice(&router_update());
    write(dir, "bgp_decode", "router-update-2-octet", &bytes);
    // A long AS_PATH, as prepending makes them: two segments, 300 AS numbers in all.
    let mut path = vec![2, 200];
    path.extend((0..200u16).flat_map(|i| (65000 + i % 3).to_be_bytes()));
    path.extend([2, 100]);
    path.extend((0..100u16).flat_map(|i| (64512 + i).to_be_bytes()));
    let mut attributes = vec![0x40, 1, 1, 0, 0x50, 2];
    attributes.extend((path.len() as u16).to_be_bytes());
    attributes.extend(&path);
    attributes.extend([0x40, 3, 4, 198, 18, 1, 1]);
    let mut body = vec![0, 0];
    body.extend((attributes.len() as u16).to_be_bytes());
    body.extend(&attributes);
    body.extend([24, 192, 0, 2]);
    let mut bytes = vec![0];
    bytes.extend(vec![0xff; 16]);
    bytes.extend(((19 + body.len()) as u16).to_be_bytes());
    bytes.push(2);
    bytes.extend(&body);
    write(dir, "bgp_decode", "update-long-as-path", &bytes);

    // Sessions: our configuration (16 bytes), then what the peer says.
    let config = |local: &Local, peer_asn: u32| {
        let mut c = Vec::new();
        c.extend_from_slice(&local.asn.to_be_bytes());
        c.extend_from_slice(&local.hold_time.to_be_bytes());
        c.extend_from_slice(&local.router_id.octets());
        c.extend_from_slice(&local.graceful_restart.unwrap_or(0).to_be_bytes());
        c.extend_from_slice(&peer_asn.to_be_bytes());
        c
    };
    let peer = |asn: u32, gr: bool| Local {
        asn,
        router_id: Ipv4Addr::new(198, 18, 1, 1),
        hold_time: 90,
        next_hop: Ipv4Addr::new(198, 18, 1, 1),
        next_hop6: None,
        graceful_restart: gr.then_some(120),
    };
    let sessions: Vec<(&str, &Local, u32, Vec<u8>)> = vec![
        ("ebgp-established", &plain, 65000, {
            let mut b = open_for(&peer(65000, false)).encode(false);
            b.extend(Message::Keepalive.encode(true));
            b.extend(Message::Keepalive.encode(true));
            b.extend(router_update());
            b.extend(Message::Keepalive.encode(true));
            b
        }),
        ("ibgp-withdraw-then-cease", &plain, 65001, {
            let mut b = open_for(&peer(65001, true)).encode(false);
            b.extend(Message::Keepalive.encode(true));
            for m in updates(&peer(65001, true), 65001, &nets(&[]), &nets(&["192.0.2.0/24"]), false) {
                b.extend(m.encode(true));
            }
            for m in updates(&peer(65001, true), 65001, &nets(&["192.0.2.0/24"]), &nets(&[]), false) {
                b.extend(m.encode(true));
            }
            b.extend(Message::Notification(Notification::shutdown()).encode(true));
            b
        }),
        ("4-octet-router", &big, 65000, {
            let mut b = router_open(65000, 90, 65000);
            b.extend(Message::Keepalive.encode(true));
            b.extend(Message::Update(Update::default()).encode(true));
            b
        }),
        ("full-table", &plain, 65000, {
            // A router sending 1200 routes in three UPDATEs (the target then asks the
            // session to announce them all back).
            let mut b = open_for(&peer(65000, false)).encode(false);
            b.extend(Message::Keepalive.encode(true));
            for part in 0..3u32 {
                let routes: Vec<String> =
                    (0..400u32).map(|i| format!("10.{}.{}.0/24", part * 2 + i / 256, i % 256)).collect();
                let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
                for m in updates(&peer(65000, false), 65001, &nets(&[]), &nets(&routes), false) {
                    b.extend(m.encode(true));
                }
            }
            b
        }),
        ("refused-peer-as", &plain, 65000, open_for(&peer(65099, false)).encode(false)),
        ("update-before-established", &plain, 65000, {
            let mut b = open_for(&peer(65000, false)).encode(false);
            b.extend(Message::Update(Update::default()).encode(true));
            b
        }),
    ];
    for (name, local, peer_asn, stream) in sessions {
        let mut bytes = config(local, peer_asn);
        bytes.extend_from_slice(&stream);
        write(dir, "bgp_session", name, &bytes);
    }
}

fn cni(dir: &Path) {
    let add =
        "CNI_COMMAND=ADD\nCNI_CONTAINERID=pod-web\nCNI_NETNS=/var/run/netns/cni-1234\nCNI_IFNAME=eth0\n\
               CNI_PATH=/opt/cni/bin\nCNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
               K8S_POD_INFRA_CONTAINER_ID=3f2a;K8S_POD_UID=1b4e-99\n";
    let requests = [
        (
            "add-readme",
            add,
            json!({"cniVersion": "1.1.0", "name": "pods", "type": "weft", "subnet": "10.244.1.0/24"}),
        ),
        (
            "add-dual-stack-bridge",
            add,
            json!({"cniVersion": "1.0.0", "name": "testnet", "type": "weft", "dataDir": "/var/lib/weft",
                   "stateDir": "/run/weft", "subnet": ["10.244.40.0/24", "fd00:244:40::/64"], "attach": "bridge",
                   "bridge": "weft0", "mtu": 1450, "dns": {"nameservers": ["10.96.0.10"]}}),
        ),
        (
            "add-0.4.0-prev-result",
            add,
            json!({"cniVersion": "0.4.0", "name": "testnet", "type": "weft",
                   "prevResult": {"cniVersion": "0.4.0",
                       "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/var/run/netns/x"}],
                       "ips": [{"version": "4", "address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}],
                       "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1", "mtu": 1400, "table": 100}],
                       "dns": {}}}),
        ),
        (
            "del-runtime-config",
            "CNI_COMMAND=DEL\nCNI_CONTAINERID=pod-web\nCNI_IFNAME=eth0\nCNI_PATH=/opt/cni/bin\n",
            json!({"cniVersion": "1.0.0", "name": "testnet", "type": "weft",
                   "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}),
        ),
        (
            "check",
            "CNI_COMMAND=CHECK\nCNI_CONTAINERID=c1\nCNI_NETNS=/proc/1/ns/net\nCNI_IFNAME=eth1\n",
            json!({"cniVersion": "1.1.0", "name": "n", "type": "weft", "prevResult": {"cniVersion": "1.1.0", "ips": []}}),
        ),
        (
            "gc",
            "CNI_COMMAND=GC\nCNI_PATH=/opt/cni/bin\n",
            json!({"cniVersion": "1.1.0", "name": "testnet", "type": "weft",
                   "cni.dev/valid-attachments": [{"containerID": "pod-web", "ifname": "eth0"}],
                   "cni.dev/attachments": [{"containerID": "pod-db", "ifname": "eth0"}]}),
        ),
        ("status", "CNI_COMMAND=STATUS\n", json!({"cniVersion": "1.1.0", "name": "testnet", "type": "weft"})),
        ("version", "CNI_COMMAND=VERSION\n", json!({"cniVersion": "0.3.1"})),
    ];
    for (name, env, conf) in requests {
        let mut bytes = env.as_bytes().to_vec();
        bytes.push(0);
        bytes.extend_from_slice(serde_json::to_string_pretty(&conf).unwrap().as_bytes());
        write(dir, "cni_request", name, &bytes);
    }
    write(dir, "cni_request", "bad-json", b"CNI_COMMAND=ADD\nCNI_CONTAINERID=x\nCNI_NETNS=/n\nCNI_IFNAME=eth0\n\0{\"cniVersion\": \"1.0.0\", \"name\": ");
}

fn core(dir: &Path) {
    let node = NodeFile {
        node: Some("n1".into()),
        subnets: vec![
            NodeSubnet { subnet: "10.244.1.0/24".parse().unwrap(), gateway: None, segment: None },
            NodeSubnet {
                subnet: "fd00:244:1::/64".parse().unwrap(),
                gateway: Some("fd00:244:1::1".parse().unwrap()),
                segment: None,
            },
        ],
        mtu: Some(1450),
        attach: Some(AttachMode::Routed),
        bridge: None,
    };
    write(dir, "node_file", "dual-stack", node.to_json().as_bytes());
    let l2 = NodeFile {
        node: Some("n2".into()),
        subnets: vec![NodeSubnet {
            subnet: "198.18.1.128/28".parse().unwrap(),
            gateway: Some("198.18.1.1".parse().unwrap()),
            segment: Some("198.18.1.0/24".parse().unwrap()),
        }],
        mtu: None,
        attach: Some(AttachMode::Bridge),
        bridge: Some("br-uplink".into()),
    };
    write(dir, "node_file", "l2-slice", l2.to_json().as_bytes());
    write(
        dir,
        "node_file",
        "readme",
        br#"{
  "node": "n1",
  "subnets": [{ "subnet": "10.244.1.0/24" }, { "subnet": "fd00:244:1::/64", "gateway": "fd00:244:1::1" }],
  "mtu": 1450,
  "attach": "routed"
}"#,
    );

    let lease = Lease {
        node: "n1".into(),
        subnet: "10.244.1.0/24".parse().unwrap(),
        public_ip: "192.0.2.11".parse().unwrap(),
        backend: Backend::Vxlan,
        vtep_mac: Some(vtep_mac("n1")),
        subnet6: None,
        other_public_ip: None,
    };
    write(dir, "lease", "vxlan", serde_json::to_string(&lease).unwrap().as_bytes());
    let v6 = Lease {
        node: "node-b.example".into(),
        subnet: "fd00:244:2::/64".parse().unwrap(),
        public_ip: "2001:db8::b".parse().unwrap(),
        backend: Backend::Route,
        vtep_mac: None,
        subnet6: None,
        other_public_ip: None,
    };
    write(dir, "lease", "route-v6", serde_json::to_string(&v6).unwrap().as_bytes());
    let dual = Lease {
        subnet6: Some("fd00:10:244:1::/64".parse().unwrap()),
        other_public_ip: Some("2001:db8:2::11".parse().unwrap()),
        ..lease.clone()
    };
    write(dir, "lease", "dual", serde_json::to_string(&dual).unwrap().as_bytes());
    write(
        dir,
        "lease",
        "old-with-expiry",
        br#"{"node":"n1","subnet":"10.244.1.0/24","publicIp":"192.0.2.11","backend":"vxlan","vtepMac":"02:00:00:00:00:01","expiresAt":1700000000}"#,
    );

    let mut config = NetworkConfig::new("10.244.0.0/16".parse().unwrap());
    write(dir, "network_config", "default", serde_json::to_string(&config).unwrap().as_bytes());
    config.backend = Backend::L2;
    config.cidr = "198.18.1.0/24".parse().unwrap();
    config.subnet_len = 28;
    config.gateway = Some("198.18.1.1".parse().unwrap());
    config.reserved = vec!["198.18.1.0/25".parse().unwrap()];
    write(dir, "network_config", "l2", serde_json::to_string(&config).unwrap().as_bytes());
    let v6 = NetworkConfig { backend: Backend::Bgp, ..NetworkConfig::new("fd00:244::/48".parse().unwrap()) };
    write(dir, "network_config", "bgp-v6", serde_json::to_string(&v6).unwrap().as_bytes());
    write(dir, "network_config", "minimal", br#"{"cidr":"10.244.0.0/16","subnetLen":24}"#);
    let vxlan = NetworkConfig {
        backend: Backend::Vxlan,
        overlay_sources: vec!["198.18.2.11/32".parse().unwrap(), "198.18.3.0/28".parse().unwrap()],
        ..NetworkConfig::new("10.244.0.0/16".parse().unwrap())
    };
    write(dir, "network_config", "vxlan-overlay-sources", serde_json::to_string(&vxlan).unwrap().as_bytes());
    let dual = NetworkConfig {
        backend: Backend::L2,
        gateway: Some("198.18.1.1".parse().unwrap()),
        ipv6: Some(weft_core::network::Pool {
            cidr: "2001:db8:1::/64".parse().unwrap(),
            subnet_len: 80,
            gateway: Some("2001:db8:1::1".parse().unwrap()),
            reserved: vec!["2001:db8:1::/72".parse().unwrap()],
        }),
        no_masquerade: vec![weft_core::network::Family::Ipv6],
        ..NetworkConfig::new("198.18.1.0/24".parse().unwrap())
    };
    write(dir, "network_config", "dual-l2", serde_json::to_string(&dual).unwrap().as_bytes());

    let status = StatusFile {
        node: "n1".into(),
        role: Role::Node,
        pid: 42,
        netns_inode: Some(4026531840),
        written_at: 1_700_000_000,
        refresh: 10,
        lease: Some(LeaseStatus { lease, ttl: 60, renewed_at: 1_699_999_990 }),
        store: StoreStatus {
            url: "etcd://127.0.0.1:2379".into(),
            revision: 7,
            connected: true,
            lists: 1,
            watch_resumes: 2,
            events: 30,
        },
        bgp: vec![BgpSessionStatus {
            peer: "198.18.1.1".parse().unwrap(),
            asn: 65000,
            local_asn: 65001,
            state: "established".into(),
            announced: vec!["10.244.1.0/24".parse().unwrap()],
            last_error: Some("hold timer expired".into()),
        }],
        overlay_sources: Some(vec!["198.18.1.12/32".parse().unwrap(), "198.18.2.11/32".parse().unwrap()]),
        overlay_filter_error: Some("nft: Operation not permitted".into()),
        peers: vec![
            PeerStatus { node: "n2".into(), subnet: "10.244.2.0/24".parse().unwrap(), subnet6: None, path: PeerPath::Vxlan },
            PeerStatus {
                node: "n3".into(),
                subnet: "10.244.3.0/24".parse().unwrap(),
                subnet6: Some("fd00:10:244:3::/64".parse().unwrap()),
                path: PeerPath::Unreachable("no VTEP MAC".into()),
            },
        ],
        rejected: vec![RejectedLease {
            node: "n9".into(),
            reason: "subnet 10.99.0.0/24 is outside the cluster CIDR".into(),
        }],
        planned_routes: vec![PlannedRoute {
            destination: "10.244.2.0/24".parse().unwrap(),
            gateway: "10.244.2.0".parse().unwrap(),
            device: "weft.1".into(),
            onlink: true,
        }],
        last_pass: PassStatus { at: 1_700_000_000, changes: 3, error: Some("netlink: EPERM".into()) },
    };
    write(dir, "status_file", "node", status.to_json().as_bytes());
    let gateway = StatusFile {
        role: Role::Gateway,
        lease: None,
        netns_inode: None,
        bgp: Vec::new(),
        rejected: Vec::new(),
        last_pass: PassStatus::default(),
        ..status
    };
    write(dir, "status_file", "gateway", gateway.to_json().as_bytes());
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: weft-fuzz-seeds DIR");
    let dir = Path::new(&dir);
    bgp(dir);
    cni(dir);
    core(dir);
}
