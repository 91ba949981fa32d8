//! Test labs. The lab (weft-lab) is the project's one multi-node harness; this names each
//! test's lab uniquely (`wtest-<pid>-<n>`, namespaces `weftlab-wtest-<pid>-<n>.…`) and
//! removes it when the test ends, also when it fails.
#![allow(dead_code)]

use super::*;
use weft_lab::promise::Category;
use weft_lab::{Lab, LabSpec, Mode};

/// A unique lab name for this test.
pub fn lab_name() -> String {
    unique_prefix().trim_end_matches('-').to_string()
}

/// A lab with short lease TTL and resync (6 s, 1 s), as `edit` shapes it, removed on drop.
pub fn lab(mode: Mode, edit: impl FnOnce(&mut LabSpec)) -> Lab {
    let mut spec = LabSpec { lease_ttl: 6, resync: 1, ..LabSpec::new(&lab_name(), mode) };
    edit(&mut spec);
    let name = spec.name.clone();
    match Lab::up(spec, Path::new(WEFT), &mut |_| {}) {
        Ok(mut lab) => {
            lab.tear_down_on_drop();
            lab
        }
        Err(e) => {
            let _ = weft_lab::down::down_named(&name);
            panic!("lab up {name}: {e}");
        }
    }
}

/// One rack of `nodes` nodes with two pods each.
pub fn one_rack(mode: Mode, nodes: u32) -> Lab {
    lab(mode, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = nodes;
    })
}

const POD_TO_POD: [Category; 3] =
    [Category::PodToPodSameNode, Category::PodToPodSameRack, Category::PodToPodOtherRack];

/// Pairs of pods that do not reach each other (the lab's probes, 2 s per probe at most).
pub fn unreachable_pods(lab: &Lab) -> Vec<(String, String)> {
    let report = lab.check(Duration::from_secs(2)).expect("lab check");
    report
        .cells
        .iter()
        .filter(|c| POD_TO_POD.contains(&c.category) && !c.reached)
        .map(|c| (c.from.clone(), c.to.clone()))
        .collect()
}

/// Waits until every pod reaches every other pod.
pub fn wait_for_full_mesh(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let broken = unreachable_pods(lab);
        if broken.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "pods that never reached each other: {broken:?}");
    }
}

/// A lab member's namespace name (for `exec_in`).
pub fn ns(lab: &Lab, member: &str) -> String {
    lab.netns(member).unwrap()
}

pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `f` on a thread inside the namespace `ns_name` (a lab member's: its store, its
/// kernel), and returns what it returns.
pub fn inside<T: Send + 'static>(ns_name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("{}/{ns_name}", weft_kernel::netns::NETNS_RUN_DIR);
    std::thread::spawn(move || {
        weft_kernel::NetNs::open(path).unwrap().enter().unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A field of a process's memory (`VmRSS:`, `VmHWM:`), in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
