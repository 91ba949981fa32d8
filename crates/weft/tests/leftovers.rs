//! Run after the whole suite (the README's test command does): the tests left no
//! namespace, no link and no file behind. Ignored in a plain `cargo test`, where it would
//! race the tests that are still running.

use weft_kernel::{netns, Netlink};

const TEST_PREFIX: &str = "wtest-";

#[test]
#[ignore = "run after the suite: scripts/test.sh does"]
fn the_suite_left_nothing_behind() {
    // The tests' own namespaces, and any lab's (tests' labs are `weftlab-wtest-…`; the demo
    // removes its own).
    let namespaces: Vec<String> = netns::list_named()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(TEST_PREFIX) || n.starts_with(weft_lab::topology::NETNS_PREFIX))
        .collect();
    assert!(namespaces.is_empty(), "namespaces left behind: {namespaces:?}");
    let labs = weft_lab::state::lab_names();
    assert!(labs.is_empty(), "labs left behind in {}: {labs:?}", weft_lab::state::LAB_ROOT);

    // Test state lives in the temp dir, benchmark state under /var/lib.
    for dir in [std::env::temp_dir(), "/var/lib".into()] {
        let files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEST_PREFIX))
            .collect();
        assert!(files.is_empty(), "files left behind in {}: {files:?}", dir.display());
    }

    // The CRI test's containerd: its pods' cgroups, and the shims' sockets (containerd 1.6
    // keeps those in /run/containerd/s whatever its state dir).
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|hierarchies| {
            hierarchies
                .filter_map(|h| h.ok())
                .flat_map(|h| std::fs::read_dir(h.path()).into_iter().flatten().filter_map(|e| e.ok()))
                .map(|e| e.path().display().to_string())
                .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(TEST_PREFIX)))
                .collect()
        })
        .unwrap_or_default();
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
    let shim_sockets: Vec<_> = std::fs::read_dir("/run/containerd/s")
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(shim_sockets.is_empty(), "containerd shims left behind: {shim_sockets:?}");

    // Only read the namespace the tests run in (the machine's own): nothing of weft's may
    // ever appear there.
    let links = Netlink::open().unwrap().links().unwrap();
    let ours: Vec<String> = links
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n.starts_with("wv") || n.starts_with("wx") || n.starts_with("weft"))
        .collect();
    assert!(ours.is_empty(), "weft links in the root namespace: {ours:?}");
}
