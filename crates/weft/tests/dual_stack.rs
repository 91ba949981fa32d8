//! Dual stack end to end: labs whose machines and pods have IPv4 and IPv6 addresses (the
//! underlay IPv4), every design without BGP checked in both families, the kernel state each
//! family takes, and an agent restart that loses no packet of either. Needs root.

mod support;

use std::time::Duration;
use support::exec_in;
use support::lab::ns;
use weft_core::network::Family;
use weft_lab::promise::Category;
use weft_lab::topology::{IpFamily, RouterKind};
use weft_lab::{Lab, Mode};

fn dual(mode: Mode, client: bool) -> Lab {
    support::lab::lab(mode, |spec| {
        spec.ip_family = IpFamily::Dual;
        spec.client = client;
    })
}

/// (reached, probed) of a category in a family.
fn reached(report: &weft_lab::report::Report, family: Family, category: Category) -> (usize, usize) {
    let cells: Vec<_> =
        report.cells.iter().filter(|c| c.family == family && c.category == category).collect();
    (cells.iter().filter(|c| c.reached).count(), cells.len())
}

/// `count` pings every 10 ms from n1-p1 to n3-p1 in each family, side by side, while the agent
/// of `node` stops (SIGTERM) and starts again after `away`: the two pings' summaries.
fn pings_in_both_families_while_restarting(
    lab: &mut Lab,
    node: &str,
    count: u32,
    away: Duration,
) -> (String, String) {
    let pod = ns(lab, "n1-p1");
    let target = lab.state.pods.iter().find(|p| p.name == "n3-p1").unwrap().clone();
    let (v4, v6) = (target.address.unwrap().to_string(), target.address6.unwrap().to_string());
    let mut summary6 = String::new();
    let summary4 = support::ping_while(&pod, &v4, count, || {
        summary6 = support::ping_while(&pod, &v6, count, || {
            std::thread::sleep(Duration::from_millis(500));
            lab.stop_agent(node, libc::SIGTERM);
            std::thread::sleep(away);
            lab.start_agent(node).unwrap();
        });
    });
    (summary4, summary6)
}

/// Every design without BGP, a client of the overlay as the last: (mode, client).
const DESIGNS_WITHOUT_BGP: [(Mode, bool); 5] =
    [(Mode::Route, false), (Mode::Vxlan, false), (Mode::Auto, false), (Mode::L2, false), (Mode::Vxlan, true)];

#[test]
fn every_design_without_bgp_keeps_its_promises_in_both_families() {
    for (mode, client) in DESIGNS_WITHOUT_BGP {
        let what = format!("{mode:?}{}", if client { " with a client" } else { "" });
        let lab = dual(mode, client);
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
        assert!(report.ok, "{what}: {}", weft_lab::report::render(&report, weft_lab::Style { color: false }));
        // What the probes found in IPv6 is what they found in IPv4, category by category, and
        // that is not nothing: a check that probed no IPv6 would fail here.
        for category in [
            Category::PodToPodSameNode,
            Category::PodToPodSameRack,
            Category::PodToPodOtherRack,
            Category::NodeToPodSameRack,
            Category::NodeToPodOtherRack,
            Category::PodToOutside,
            Category::OutsideToPod,
        ] {
            assert_eq!(
                reached(&report, Family::Ipv6, category),
                reached(&report, Family::Ipv4, category),
                "{what}: {category:?}"
            );
        }
        let pods = lab.state.pods.len();
        assert_eq!(reached(&report, Family::Ipv6, Category::PodToOutside), (pods, pods), "{what}");
        let across = if matches!(mode, Mode::Route | Mode::L2) { 0 } else { 32 };
        assert_eq!(reached(&report, Family::Ipv6, Category::PodToPodOtherRack).0, across, "{what}");

        // Each pod has one address of each family, the IPv6 one from the pods' IPv6 network
        // (l2: the rack's IPv6 segment).
        let pod6 = std::net::IpAddr::V6(lab.state.pods[0].address6.expect("an IPv6 address"));
        let inside: ipnet::IpNet =
            if mode == Mode::L2 { "2001:db8:1:0:8000::/65" } else { "fd00:10:244::/56" }.parse().unwrap();
        assert!(inside.contains(&pod6), "{what}: {pod6}");
        // The kernel: IPv6 peer routes of weft's protocol as the design programs them, and
        // masquerade in an ip6 table (l2 pods live on the segment: nothing to hide).
        let routes6 = exec_in(&ns(&lab, "n1"), "ip", &["-6", "route", "show", "proto", "88"], true);
        match mode {
            Mode::Route => assert!(routes6.contains("via 2001:db8:1::12 dev eth0"), "{what}: {routes6}"),
            Mode::Vxlan | Mode::Auto => {
                assert!(routes6.contains("dev weft.1") && routes6.contains("onlink"), "{what}: {routes6}")
            }
            _ => assert!(routes6.trim().is_empty(), "{what}: {routes6}"),
        }
        let ruleset = exec_in(&ns(&lab, "n1"), "nft", &["list", "ruleset"], true);
        assert_eq!(ruleset.contains("table ip6 weft"), mode != Mode::L2, "{what}: {ruleset}");
        if mode == Mode::Vxlan {
            // One device for both families: an IPv6 neighbour per peer, one FDB entry each.
            let neighbours = exec_in(&ns(&lab, "n1"), "ip", &["-6", "neigh", "show", "dev", "weft.1"], true);
            assert_eq!(neighbours.lines().filter(|l| l.contains("PERMANENT")).count(), 3, "{neighbours}");
            let fdb = exec_in(&ns(&lab, "n1"), "bridge", &["fdb", "show", "dev", "weft.1"], true);
            assert_eq!(fdb.lines().filter(|l| l.contains("dst 198.18.")).count(), 3, "{fdb}");
        }
    }
}

#[test]
fn an_agent_restart_in_a_dual_stack_lab_loses_no_packet_of_either_family() {
    let mut lab = dual(Mode::Vxlan, false);
    // Across racks (through the overlay), while n1's agent stops and starts again.
    let (summary4, summary6) =
        pings_in_both_families_while_restarting(&mut lab, "n1", 300, Duration::from_millis(500));
    for (family, summary) in [("IPv4", &summary4), ("IPv6", &summary6)] {
        assert!(
            summary.contains("300 received") && summary.contains(" 0% packet loss"),
            "{family}: {summary}"
        );
    }
}

fn router_routes6(lab: &Lab) -> String {
    exec_in(&ns(lab, "router"), "ip", &["-6", "route"], true)
}

/// bgp mode in a dual-stack lab, against real BIRD and real FRR: each node announces its
/// IPv6 subnet on its IPv4 session (MP_REACH_NLRI, its IPv6 address the next hop), the router
/// installs them, and every promise holds in both families; with graceful restart, an agent
/// restart loses no packet of either family across racks, and the router still holds every
/// IPv6 subnet after it.
#[test]
fn bgp_mode_carries_ipv6_with_bird_and_with_frr_and_a_graceful_restart_loses_nothing() {
    for router in [RouterKind::Bird, RouterKind::Frr] {
        let mut lab = support::lab::lab(Mode::Bgp, |spec| {
            spec.ip_family = IpFamily::Dual;
            spec.router = router;
            spec.graceful_restart = 60;
            spec.pods_per_node = 1;
        });
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
        let text = weft_lab::report::render(&report, weft_lab::Style { color: false });
        assert!(report.ok, "{}: {text}", router.name());
        assert_eq!(reached(&report, Family::Ipv6, Category::PodToPodOtherRack), (8, 8), "{}", router.name());
        assert_eq!(reached(&report, Family::Ipv6, Category::OutsideToPod), (4, 4), "{}", router.name());
        // One IPv6 route per node, via the node's IPv6 address, learned by BGP.
        let proto = if router == RouterKind::Bird { "proto bird" } else { "proto bgp" };
        let learned = |lab: &Lab| {
            router_routes6(lab).lines().filter(|l| l.starts_with("fd00:10:244:") && l.contains(proto)).count()
        };
        let routes = router_routes6(&lab);
        assert_eq!(learned(&lab), 4, "{}: {routes}", router.name());
        assert!(routes.contains("via 2001:db8:2::11 dev rack2"), "{}: {routes}", router.name());

        let (summary4, summary6) =
            pings_in_both_families_while_restarting(&mut lab, "n3", 400, Duration::from_millis(1500));
        for (family, summary) in [("IPv4", &summary4), ("IPv6", &summary6)] {
            assert!(
                summary.contains("400 received") && summary.contains(" 0% packet loss"),
                "{} {family}: {summary}",
                router.name()
            );
        }
        support::lab::wait_for(
            Duration::from_secs(10),
            || learned(&lab) == 4,
            "n3's IPv6 subnet announced again",
        );
    }
}

/// Gateways in a dual-stack lab announce both pod networks; the router spreads each over
/// both gateways, and the outside client reaches every pod in both families through them.
#[test]
fn gateways_announce_both_pod_networks_with_bird_and_with_frr() {
    for router in [RouterKind::Bird, RouterKind::Frr] {
        let lab = support::lab::lab(Mode::Vxlan, |spec| {
            spec.ip_family = IpFamily::Dual;
            spec.gateways = 2;
            spec.router = router;
        });
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
        let text = weft_lab::report::render(&report, weft_lab::Style { color: false });
        assert!(report.ok, "{}: {text}", router.name());
        assert_eq!(reached(&report, Family::Ipv6, Category::OutsideToPod), (8, 8), "{}", router.name());
        // (Each gateway's announcement may come a moment apart: the second next hop joins.)
        let route = || exec_in(&ns(&lab, "router"), "ip", &["-6", "route", "show", "fd00:10:244::/56"], true);
        let both = || {
            let route = route();
            route.contains("via 2001:db8:1::201 dev rack1") && route.contains("via 2001:db8:2::202 dev rack2")
        };
        support::lab::wait_for(
            Duration::from_secs(10),
            both,
            &format!("{}: both gateways as next hops", router.name()),
        );
    }
}

/// VXLAN over an IPv6 underlay (machines reached at their IPv6 addresses): one device with
/// an IPv6 VTEP carries both families, 70 bytes of MTU go to the overlay, the FDB points at
/// the peers' IPv6 addresses, the overlay filter is an ip6 table of IPv6 sources (the IPv4
/// one gone), and every promise holds in both families, a client and gateways included.
#[test]
fn vxlan_over_an_ipv6_underlay_carries_both_families() {
    let lab = support::lab::lab(Mode::Vxlan, |spec| {
        spec.ip_family = IpFamily::Dual;
        spec.underlay = Family::Ipv6;
        spec.client = true;
        spec.gateways = 1;
    });
    let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
    assert!(report.ok, "{}", weft_lab::report::render(&report, weft_lab::Style { color: false }));
    for family in [Family::Ipv4, Family::Ipv6] {
        assert_eq!(reached(&report, family, Category::PodToPodOtherRack), (32, 32), "{family}");
        assert_eq!(reached(&report, family, Category::OutsideToPod), (8, 8), "{family}");
    }
    let n1 = ns(&lab, "n1");
    let link = exec_in(&n1, "ip", &["-d", "link", "show", "weft.1"], true);
    assert!(link.contains("mtu 1430") && link.contains("local 2001:db8:1::11"), "{link}");
    let fdb = exec_in(&n1, "bridge", &["fdb", "show", "dev", "weft.1"], true);
    assert!(fdb.contains("dst 2001:db8:2::11") && !fdb.contains("dst 198.18."), "{fdb}");
    let ruleset = exec_in(&n1, "nft", &["list", "ruleset"], true);
    assert!(
        ruleset.contains("table ip6 weft_overlay") && !ruleset.contains("table ip weft_overlay"),
        "{ruleset}"
    );
    assert!(ruleset.contains("ip6 saddr != @peers"), "{ruleset}");
    let peers = exec_in(&n1, "nft", &["list", "set", "ip6", "weft_overlay", "peers"], true);
    for source in ["2001:db8:1::12", "2001:db8:2::11", "2001:db8:1::201", "2001:db8:ff::10"] {
        assert!(peers.contains(source), "{source}: {peers}");
    }
    // The node file tells the CNI plugin the smaller MTU.
    let node = std::fs::read_to_string(lab.state.node_dir("n1").join("node.json")).unwrap();
    assert_eq!(weft_core::NodeFile::parse(&node).unwrap().mtu, Some(1430));
}

/// IPv6-only labs: machines and pods without an IPv4 address, the overlay on the machines'
/// IPv6 addresses. Every design without BGP keeps its promises, all probed in IPv6, and the
/// nodes hold only IPv6 state (weft's tables are ip6 ones).
#[test]
fn every_design_without_bgp_keeps_its_promises_in_an_ipv6_only_lab() {
    for (mode, client) in DESIGNS_WITHOUT_BGP {
        let what = format!("{mode:?}{}", if client { " with a client" } else { "" });
        let lab = support::lab::lab(mode, |spec| {
            spec.ip_family = IpFamily::Ipv6;
            spec.client = client;
        });
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
        assert!(report.ok, "{what}: {}", weft_lab::report::render(&report, weft_lab::Style { color: false }));
        assert!(!report.cells.is_empty() && report.cells.iter().all(|c| c.family == Family::Ipv6), "{what}");
        let pods = lab.state.pods.len();
        assert!(lab.state.pods.iter().all(|p| p.address.is_none() && p.address6.is_some()), "{what}");
        assert_eq!(reached(&report, Family::Ipv6, Category::PodToOutside), (pods, pods), "{what}");
        let across = if matches!(mode, Mode::Route | Mode::L2) { 0 } else { 32 };
        assert_eq!(reached(&report, Family::Ipv6, Category::PodToPodOtherRack).0, across, "{what}");
        let outside = if mode == Mode::L2 || client { pods } else { 0 };
        assert_eq!(reached(&report, Family::Ipv6, Category::OutsideToPod).0, outside, "{what}");

        let n1 = ns(&lab, "n1");
        let v4 = exec_in(&n1, "ip", &["-4", "-o", "addr", "show", "dev", "eth0"], true);
        assert!(v4.trim().is_empty(), "{what}: {v4}");
        let tables = exec_in(&n1, "nft", &["list", "tables"], true);
        assert!(!tables.contains("table ip "), "{what}: {tables}");
        if mode == Mode::Vxlan {
            let link = exec_in(&n1, "ip", &["-d", "link", "show", "weft.1"], true);
            assert!(link.contains("mtu 1430") && link.contains("local 2001:db8:1::11"), "{what}: {link}");
            assert!(tables.contains("table ip6 weft_overlay"), "{what}: {tables}");
        }
    }
}

/// `weft lab trace` to an IPv6 address: the path from the kernels' tables, with a real
/// ICMPv6 probe seen at every hop: across racks through the overlay (over IPv4 and over an
/// IPv6 underlay), and through the router in bgp mode, the router's route learned by BGP.
#[test]
fn a_trace_to_an_ipv6_address_is_explained_and_seen_at_every_hop() {
    let designs: [(Mode, Family, &str); 3] = [
        (Mode::Vxlan, Family::Ipv4, "198.18.2.11"),
        (Mode::Vxlan, Family::Ipv6, "2001:db8:2::11"),
        (Mode::Bgp, Family::Ipv4, ""),
    ];
    for (mode, underlay, outer_dst) in designs {
        let lab = support::lab::lab(mode, |spec| {
            spec.ip_family = IpFamily::Dual;
            spec.underlay = underlay;
            spec.pods_per_node = 1;
        });
        let target = lab.state.pods.iter().find(|p| p.name == "n3-p1").unwrap().address6.unwrap().to_string();
        let trace = lab.trace("n1-p1", &target, true).unwrap();
        let text = weft_trace::render(&trace);
        assert!(trace.delivered && trace.verified == Some(true), "{mode:?} over {underlay}: {text}");
        assert!(trace.hops.iter().all(|h| h.seen != Some(false)), "{text}");
        let places: Vec<&str> = trace.hops.iter().map(|h| h.place.as_str()).collect();
        assert_eq!((places[0], *places.last().unwrap()), ("n1-p1", "n3-p1"), "{text}");
        assert!(places.contains(&"router"), "{text}");
        match mode {
            Mode::Vxlan => {
                let outer = trace.hops.iter().find_map(|h| h.header.outer.clone()).expect("encapsulated");
                assert_eq!(outer.dst, outer_dst, "{text}");
            }
            _ => assert!(text.contains("via 2001:db8:2::11 dev rack2 proto bird"), "{text}"),
        }
    }
}

/// bgp mode and gateways in an IPv6-only lab: the sessions are IPv6 (the router's IPv6
/// addresses as peers), announce the IPv6 subnets (or the IPv6 cluster CIDR) with the
/// session's address as next hop, and every promise holds, against BIRD and FRR.
#[test]
fn bgp_over_ipv6_sessions_in_an_ipv6_only_lab_with_bird_and_with_frr() {
    for (router, gateways) in [(RouterKind::Bird, 0), (RouterKind::Frr, 0), (RouterKind::Bird, 2)] {
        let mode = if gateways > 0 { Mode::Vxlan } else { Mode::Bgp };
        let what = format!("{} {mode:?} with {gateways} gateways", router.name());
        let lab = support::lab::lab(mode, |spec| {
            spec.ip_family = IpFamily::Ipv6;
            spec.router = router;
            spec.gateways = gateways;
            spec.pods_per_node = 1;
        });
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
        assert!(report.ok, "{what}: {}", weft_lab::report::render(&report, weft_lab::Style { color: false }));
        assert_eq!(reached(&report, Family::Ipv6, Category::OutsideToPod), (4, 4), "{what}");
        let routes = router_routes6(&lab);
        if gateways > 0 {
            assert!(routes.contains("fd00:10:244::/56"), "{what}: {routes}");
        } else {
            let learned = routes
                .lines()
                .filter(|l| l.starts_with("fd00:10:244:") && l.contains("via 2001:db8:"))
                .count();
            assert_eq!(learned, 4, "{what}: {routes}");
        }
        let status = lab.status_of(if gateways > 0 { "g1" } else { "n1" }).expect("a status file");
        assert!(
            status.bgp.iter().any(|s| s.peer.is_ipv6() && s.state == "established"),
            "{what}: {:?}",
            status.bgp
        );
    }
}

/// The picture of a dual-stack lab: every machine, pod and rack with both addresses, and the
/// router's IPv6 routes into the pods (learned by BGP) beside the IPv4 ones, in the SVG
/// `weft lab show` writes.
#[test]
fn the_picture_of_a_dual_stack_lab_shows_both_families() {
    let lab = support::lab::lab(Mode::Bgp, |spec| {
        spec.ip_family = IpFamily::Dual;
        spec.pods_per_node = 1;
    });
    let scene = lab.scene(None);
    let svg = weft_lab::picture::svg(&scene);
    let n3_p1 = lab.state.pods.iter().find(|p| p.name == "n3-p1").unwrap();
    for text in [
        "198.18.2.11 2001:db8:2::11".to_string(),
        format!("{} {}", n3_p1.address.unwrap(), n3_p1.address6.unwrap()),
        "198.18.1.0/24 2001:db8:1::/64".to_string(),
        "203.0.113.10 2001:db8:ff::10".to_string(),
    ] {
        assert!(svg.contains(&text), "{text} is not in the picture");
    }
    let v6_routes: Vec<_> =
        scene.router.routes.iter().filter(|r| r.destination.starts_with("fd00:10:244:")).collect();
    assert_eq!(v6_routes.len(), 4, "{:?}", scene.router.routes);
    assert!(v6_routes.iter().all(|r| r.next_hops.iter().all(|h| h.member.is_some())), "{v6_routes:?}");
}
