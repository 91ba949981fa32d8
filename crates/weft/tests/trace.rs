//! `weft trace` on every design of the lab: the path from the kernels' own tables, proved by
//! a probe caught at every hop; a path broken by hand stops where the kernel stops it; on a
//! node, the part of the path the node can see. Needs root.

mod support;

use std::process::Command;
use support::exec_in;
use support::lab::{lab, ns};
use weft_lab::{Lab, LabSpec, Mode};
use weft_trace::Trace;

/// Traces with --verify and asserts the packet is delivered and seen at every hop.
fn verified(lab: &Lab, from: &str, to: &str) -> Trace {
    let trace = lab.trace(from, to, true).unwrap();
    let text = weft_trace::render(&trace);
    assert!(trace.delivered && trace.verified == Some(true), "{text}");
    assert!(trace.hops.iter().all(|h| h.seen != Some(false)), "{text}");
    trace
}

fn entries(trace: &Trace) -> String {
    trace
        .hops
        .iter()
        .flat_map(|h| h.decided_by.iter().map(|e| format!("{}: {e}", h.place)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn places(trace: &Trace) -> Vec<&str> {
    trace.hops.iter().map(|h| h.place.as_str()).collect()
}

#[test]
fn every_design_explains_its_paths_hop_by_hop() {
    type Edit = fn(&mut LabSpec);
    let designs: Vec<(Mode, Edit)> = vec![
        (Mode::Route, |_| {}),
        (Mode::Vxlan, |_| {}),
        (Mode::Auto, |_| {}),
        (Mode::Bgp, |_| {}),
        (Mode::L2, |_| {}),
        (Mode::Vxlan, |spec| spec.gateways = 1),
        (Mode::Vxlan, |spec| spec.client = true),
    ];
    for (mode, edit) in designs {
        let lab = lab(mode, |spec| {
            spec.pods_per_node = 1;
            edit(spec);
        });
        let design = weft_lab::report::render(
            &lab.check(std::time::Duration::from_secs(1)).unwrap(),
            weft_lab::Style { color: false },
        );
        let spec = lab.state.spec.clone();
        match (mode, spec.gateways, spec.client) {
            (Mode::Route, ..) => {
                let t = verified(&lab, "n1-p1", "n2-p1");
                assert_eq!(places(&t), ["n1-p1", "n1", "rack1", "n2", "n2-p1"], "{design}");
                assert!(
                    entries(&t).contains(
                        "n1: route   10.244.217.0/24 via 198.18.1.12 dev eth0 proto 88 (weft: peer)"
                    ),
                    "{}",
                    entries(&t)
                );
            }
            (Mode::Vxlan | Mode::Auto, 0, false) => {
                let t = verified(&lab, "n1-p1", "n3-p1");
                let outer =
                    t.hops.iter().find_map(|h| h.header.outer.clone()).expect("encapsulated somewhere");
                assert_eq!(
                    (outer.src.as_str(), outer.dst.as_str(), outer.udp_port, outer.vni),
                    ("198.18.1.11", "198.18.2.11", 8472, 1)
                );
                assert!(
                    entries(&t).contains("fdb     ") && entries(&t).contains("decapsulated"),
                    "{}",
                    entries(&t)
                );
                assert!(places(&t).contains(&"router"));
            }
            (Mode::Bgp, ..) => {
                let t = verified(&lab, "outside", "n3-p1");
                assert!(
                    entries(&t)
                        .contains("router: route   10.244.38.0/24 via 198.18.2.11 dev rack2 proto bird"),
                    "{}",
                    entries(&t)
                );
            }
            (Mode::L2, ..) => {
                let t = verified(&lab, "outside", "n2-p1");
                // The router reaches the pod on its own segment, through n2's bridge.
                assert_eq!(places(&t), ["outside", "router", "rack1", "n2", "n2-p1"], "{}", entries(&t));
                assert!(
                    entries(&t).contains("router: route   198.18.1.0/24 dev rack1 proto kernel"),
                    "{}",
                    entries(&t)
                );
                assert!(
                    entries(&t).contains("on port wv"),
                    "n2's bridge forwards to the pod's port: {}",
                    entries(&t)
                );
            }
            (_, 1, _) => {
                let t = verified(&lab, "outside", "n3-p1");
                assert!(places(&t).contains(&"g1"), "through the gateway: {}", entries(&t));
                assert!(
                    entries(&t).contains("router: route   10.244.0.0/16 via 198.18.1.201"),
                    "{}",
                    entries(&t)
                );
            }
            (_, _, true) => {
                let t = verified(&lab, "outside", "n3-p1");
                assert!(
                    entries(&t).contains("outside: route   10.244.38.0/24 via 10.244.38.0 dev weft.1"),
                    "{}",
                    entries(&t)
                );
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_route_deleted_by_hand_shows_where_the_packet_stops_and_why() {
    let mut lab = lab(Mode::Vxlan, |spec| spec.pods_per_node = 1);
    lab.stop_agent("n1", libc::SIGTERM); // it would put the route back
    let node_file = std::fs::read_to_string(lab.state.node_dir("n3").join("node.json")).unwrap();
    let subnet = weft_core::NodeFile::parse(&node_file).unwrap().subnets[0].subnet.to_string();
    exec_in(&ns(&lab, "n1"), "ip", &["route", "del", &subnet], true);

    let output = Command::new(support::WEFT)
        .args(["trace", "--lab", lab.name(), "n1-p1", "n3-p1", "--verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let trace: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let hops = trace["hops"].as_array().unwrap();
    let last = hops.last().unwrap();
    assert_eq!(last["place"], "router", "{trace}");
    assert_eq!(
        last["fate"]["drop"],
        format!("no route to {} in router", trace["dst"].as_str().unwrap()),
        "{trace}"
    );
    // n1 sent it to its default route instead, and the probe really got that far.
    assert!(
        hops[1]["decided_by"][0].as_str().unwrap().starts_with("route   0.0.0.0/0 via 198.18.1.1"),
        "{trace}"
    );
    assert!(hops.iter().all(|h| h["seen"] == true), "seen up to where it stops: {trace}");
    assert_eq!(trace["delivered"], false);
}

#[test]
fn on_a_node_the_trace_covers_what_the_node_sees() {
    let lab = lab(Mode::Vxlan, |spec| {
        spec.racks = 1;
        spec.pods_per_node = 1;
    });
    let target = lab.pod_address("n2-p1").unwrap().to_string();
    let output = Command::new("ip")
        .args(["netns", "exec", &ns(&lab, "n1"), support::WEFT, "trace", "--state-dir"])
        .arg(lab.state.node_dir("n1"))
        .arg(&target)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // It leaves what n1 can see (into the tunnel) before it is delivered: exit 3, not 0.
    assert_eq!(output.status.code(), Some(3), "{text}{}", String::from_utf8_lossy(&output.stderr));
    // Over the tunnel the kernel sends from the tunnel device's address: n1's subnet's first.
    let node_file = std::fs::read_to_string(lab.state.node_dir("n1").join("node.json")).unwrap();
    let tunnel_address = weft_core::NodeFile::parse(&node_file).unwrap().subnets[0].subnet.network();
    assert!(text.starts_with(&format!("n1 ({tunnel_address}) → {target} ({target})")), "{text}");
    assert!(
        text.contains("fdb     ") && text.contains("outer   198.18.1.11 → 198.18.1.12  udp 8472  vni 1"),
        "{text}"
    );
    assert!(text.contains("leaves: by eth0 to a machine this trace cannot see"), "{text}");
}

#[test]
fn a_link_down_where_the_tables_cannot_see_it_shows_as_not_seen() {
    let lab = lab(Mode::Auto, |spec| spec.pods_per_node = 1);
    // rack2's switch port to n3 goes down: every table still routes there.
    exec_in(&ns(&lab, "rack2"), "ip", &["link", "set", "n3", "down"], true);
    let trace = lab.trace("n1-p1", "n3-p1", true).unwrap();
    let text = weft_trace::render(&trace);
    assert_eq!(trace.verified, Some(false), "{text}");
    let seen: Vec<(&str, Option<bool>)> = trace.hops.iter().map(|h| (h.place.as_str(), h.seen)).collect();
    // Seen up to rack1's switch; the router has nobody to send it to on rack2 (its ARP
    // for n3 finds no one), so from there on it is not seen.
    let rack1 = seen.iter().position(|(p, _)| *p == "rack1").unwrap();
    assert!(seen[..=rack1].iter().all(|(_, s)| *s == Some(true)), "seen up to rack1: {text}");
    assert!(seen.iter().any(|(p, s)| *p == "n3" && *s == Some(false)), "not seen at n3: {text}");
}

#[test]
fn a_pod_leaving_the_cluster_is_masqueraded_on_its_way_out() {
    let lab = lab(Mode::Vxlan, |spec| spec.pods_per_node = 1);
    let trace = verified(&lab, "n1-p1", "outside");
    let n1 = trace.hops.iter().find(|h| h.place == "n1").unwrap();
    let pod = lab.pod_address("n1-p1").unwrap();
    assert!(
        n1.decided_by.iter().any(|e| e
            == &format!("nat     masquerade {pod} → 198.18.1.11 (weft's table: pods leaving 10.244.0.0/16)")),
        "{}",
        weft_trace::render(&trace)
    );
    let router = trace.hops.iter().find(|h| h.place == "router").unwrap();
    assert_eq!(router.header.src, "198.18.1.11", "past the node the packet carries the node's address");
}

#[test]
fn in_l2_a_node_bridge_delivers_to_the_node_itself_and_to_its_pods() {
    let lab = lab(Mode::L2, |_| {});
    // A pod to its own node: the frame is for the node's bridge, which routes it locally.
    let to_node = verified(&lab, "n1-p1", "n1");
    assert_eq!(places(&to_node), ["n1-p1", "n1"], "{}", entries(&to_node));
    assert!(
        entries(&to_node).contains("n1: bridge  the frame is for weft-l2 itself: routed here"),
        "{}",
        entries(&to_node)
    );
    // The router to a pod on an idle segment: found behind the node's bridge.
    let to_pod = verified(&lab, "router", "n3-p2");
    assert_eq!(places(&to_pod), ["router", "rack1", "n3", "n3-p2"], "{}", entries(&to_pod));
}
