//! The lab itself, driven through `weft lab` as a user drives it: up, check, exec and down,
//! two labs side by side, every mode's promises, a broken promise, bad input. Needs root.

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use support::lab::{lab_name, ns};
use support::{exec_in, WEFT};
use weft_lab::process::is_running;
use weft_lab::promise::Category;
use weft_lab::state::Process;
use weft_lab::Mode;

fn weft(args: &[&str]) -> Output {
    Command::new(WEFT).args(args).output().expect("run weft")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs `weft lab ...`, asserting it succeeds; returns its stdout.
fn lab_ok(args: &[&str]) -> String {
    let output = weft(&[&["lab"][..], args].concat());
    assert!(output.status.success(), "weft lab {args:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Removes a lab made through the command line when the test ends, also when it fails.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = weft_lab::down::down_named(&self.0);
    }
}

/// Nothing of lab `name` is left: no namespace, no directory, none of its agents.
fn assert_gone(name: &str, agents: &[Process]) {
    let prefix = weft_lab::topology::netns_prefix(name);
    let left: Vec<String> =
        weft_kernel::netns::list_named().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!weft_lab::state::lab_dir(name).exists(), "the lab's directory is left");
    for agent in agents {
        assert!(!is_running(agent), "agent {} still runs", agent.pid);
    }
}

fn agents(name: &str) -> Vec<Process> {
    weft_lab::state::LabState::load(name).unwrap().agents.into_values().collect()
}

#[test]
fn two_labs_side_by_side_up_check_exec_down_leave_nothing() {
    let (a, b) = (lab_name(), lab_name());
    let _cleanup = (Cleanup(a.clone()), Cleanup(b.clone()));
    let progress = lab_ok(&["up", "--name", &a, "--mode", "route"]);
    assert!(progress.contains("rack2 198.18.2.0/24: n3 198.18.2.11, n4 198.18.2.12"), "{progress}");
    assert!(progress.contains("8 pods wired by the CNI plugin"), "{progress}");
    lab_ok(&[
        "up",
        "--name",
        &b,
        "--mode",
        "vxlan",
        "--racks",
        "1",
        "--nodes-per-rack",
        "3",
        "--pods-per-node",
        "1",
    ]);
    let (agents_a, agents_b) = (agents(&a), agents(&b));
    assert_eq!((agents_a.len(), agents_b.len()), (4, 3));

    // Both labs hold their promises, each its own.
    for (name, mode, pods) in [(&a, "route", 8), (&b, "vxlan", 3)] {
        let report: Value = serde_json::from_str(&lab_ok(&["check", "--name", name, "--json"])).unwrap();
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["design"]["mode"], mode);
        let outside_to_pod =
            report["cells"].as_array().unwrap().iter().filter(|c| c["category"] == "outside-to-pod");
        assert_eq!(outside_to_pod.count(), pods);
    }
    // The table, for people: plain when piped.
    let table = lab_ok(&["check", "--name", &a]);
    assert!(
        table.contains("pod → pod, other rack     0/32")
            && table.contains("every promise of route mode holds"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "no colours into a pipe");

    // exec runs in the member's namespace: the pod has its address, and reaches a pod of its
    // rack by name of its address.
    let state = weft_lab::state::LabState::load(&a).unwrap();
    let address = |pod: &str| state.pods.iter().find(|p| p.name == pod).unwrap().address.unwrap().to_string();
    let addresses = lab_ok(&["exec", &a, "n1-p1", "--", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addresses.contains(&format!("inet {}/32", address("n1-p1"))), "{addresses}");
    lab_ok(&["exec", &a, "n1-p1", "--", "ping", "-c", "1", "-W", "2", &address("n2-p2")]);
    let unreachable =
        weft(&["lab", "exec", &a, "n1-p1", "--", "ping", "-c", "1", "-W", "1", &address("n3-p1")]);
    assert!(
        !unreachable.status.success(),
        "route mode does not cross racks; exec passes ping's exit code on"
    );

    // Down one: the other is untouched.
    let removed = lab_ok(&["down", "--name", &a]);
    assert!(removed.contains("16 namespaces, 4 processes"), "{removed}");
    assert_gone(&a, &agents_a);
    let report: Value = serde_json::from_str(&lab_ok(&["check", "--name", &b, "--json"])).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    lab_ok(&["down", "--name", &b]);
    assert_gone(&b, &agents_b);
}

#[test]
fn every_mode_keeps_its_promises() {
    for mode in Mode::ALL {
        let lab = support::lab::lab(mode, |_| {});
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
        assert!(
            report.ok,
            "{mode:?}: {}",
            weft_lab::report::render(&report, weft_lab::Style { color: false })
        );
        let reached = |category: Category| {
            let cells: Vec<_> = report.cells.iter().filter(|c| c.category == category).collect();
            (cells.iter().filter(|c| c.reached).count(), cells.len())
        };
        // What the probes found, not only that they matched: a check that saw nothing
        // would fail here. (l2: one segment of 3 nodes, 6 pods; the others 2 racks, 8 pods.)
        let (pods, rack_mates, across) = if mode == Mode::L2 { (6, 24, 0) } else { (8, 16, 32) };
        assert_eq!(reached(Category::PodToPodSameRack), (rack_mates, rack_mates), "{mode:?}");
        assert_eq!(reached(Category::PodToOutside), (pods, pods), "{mode:?}");
        // Only bgp and l2 tell the router where pods are.
        let from_outside = if matches!(mode, Mode::Bgp | Mode::L2) { pods } else { 0 };
        assert_eq!(reached(Category::OutsideToPod), (from_outside, pods), "{mode:?}");
        let crossed = if mode == Mode::Route { 0 } else { across };
        assert_eq!(reached(Category::PodToPodOtherRack), (crossed, across), "{mode:?}");
        let agents: Vec<Process> = lab.state.agents.values().cloned().collect();
        let name = lab.name().to_string();
        lab.down().unwrap();
        assert_gone(&name, &agents);
    }
}

#[test]
fn a_broken_promise_fails_the_check_and_names_the_probe() {
    let mut lab = support::lab::lab(Mode::Vxlan, |spec| spec.pods_per_node = 1);
    // With n1's agent stopped (it would repair this), its route to n3's pods goes.
    lab.stop_agent("n1", libc::SIGTERM);
    let node_file = std::fs::read_to_string(lab.state.node_dir("n3").join("node.json")).unwrap();
    let subnet = weft_core::NodeFile::parse(&node_file).unwrap().subnets[0].subnet.to_string();
    exec_in(&ns(&lab, "n1"), "ip", &["route", "del", &subnet], true);
    let output = weft(&["lab", "check", "--name", lab.name(), "--timeout", "1"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let table = text(&output);
    let n3_p1 = lab.pod_address("n3-p1").unwrap();
    assert!(
        table.contains(&format!("n1-p1 → n3-p1 ({n3_p1}): not reached, but vxlan mode promises it")),
        "{table}"
    );
    assert!(table.contains("BROKEN") && table.contains("broke the promises of vxlan mode"), "{table}");
    // The agent back: it repairs the route and the promise holds again.
    lab.start_agent("n1").unwrap();
    support::lab::wait_for_full_mesh(&lab);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let bad_name = weft(&["lab", "up", "--name", "Not Good"]);
    assert!(
        !bad_name.status.success() && text(&bad_name).contains("lower-case letters, digits and dashes"),
        "{}",
        text(&bad_name)
    );
    let too_big = weft(&["lab", "up", "--name", &lab_name(), "--racks", "40"]);
    assert!(
        !too_big.status.success() && text(&too_big).contains("--racks 40: between 1 and 16"),
        "{}",
        text(&too_big)
    );
    let missing = weft(&["lab", "check", "--name", &lab_name()]);
    assert!(!missing.status.success() && text(&missing).contains("no lab named"), "{}", text(&missing));

    let lab = support::lab::lab(Mode::Route, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = 1;
        spec.pods_per_node = 1;
    });
    let again = weft(&["lab", "up", "--name", lab.name()]);
    assert!(!again.status.success() && text(&again).contains("exists already"), "{}", text(&again));
    let stranger = weft(&["lab", "exec", lab.name(), "n9", "--", "true"]);
    assert!(
        !stranger.status.success()
            && text(&stranger).contains("has no \"n9\"; it has router, outside, rack1, n1, n1-p1"),
        "{}",
        text(&stranger)
    );
    // Nothing of the refused `up` touched the lab that exists.
    assert!(lab.check(std::time::Duration::from_secs(1)).unwrap().ok);
}
