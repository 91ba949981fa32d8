//! Named namespaces stay removable when `ip netns add` (or containerd) runs after weft
//! named its first one. On a fresh machine `/run/netns` is a plain directory, and the first
//! of those tools to run bind-mounts it over itself: a namespace weft had named before then
//! stayed mounted beneath, and removing it failed with EBUSY (seen in CI on a fresh machine).
//!
//! The test re-runs itself under `unshare --mount --propagation private`, where it can make
//! `/run/netns` a plain directory again without touching the machine's own mounts. Needs
//! root and `ip` (iproute2).

use std::process::Command;
use weft_kernel::netns;

const INSIDE: &str = "WEFT_TEST_PRIVATE_MOUNTS";

/// How many mounts `dir` is the mount point of (stacked ones count each).
fn mounts_at(dir: &str) -> usize {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo.lines().filter(|line| line.split(' ').nth(4) == Some(dir)).count()
}

#[test]
fn a_namespace_named_before_ip_netns_add_first_ran_can_still_be_removed() {
    if std::env::var_os(INSIDE).is_none() {
        let me = std::env::current_exe().unwrap();
        let run = Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(me)
            .args(["--exact", "a_namespace_named_before_ip_netns_add_first_ran_can_still_be_removed"])
            .args(["--nocapture", "--test-threads", "1"])
            .env(INSIDE, "1")
            .output()
            .unwrap();
        let said =
            format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert!(run.status.success(), "{said}");
        assert!(said.contains("1 passed"), "the test did not run inside: {said}");
        return;
    }
    // In a mount namespace of our own: undo any mount of /run/netns, as on a fresh machine.
    // Then threads name namespaces at once, as a lab's parallel tests do: one mount of
    // /run/netns, not a stack of them (a race: a few rounds, so that it shows).
    let prefix = format!("wtest-{}-", std::process::id());
    for round in 0..5 {
        let dir = std::ffi::CString::new(netns::NETNS_RUN_DIR).unwrap();
        // SAFETY: umount2 with a string that outlives the call; private propagation keeps it
        // to this namespace.
        while unsafe { libc::umount2(dir.as_ptr(), libc::MNT_DETACH) } == 0 {}
        assert_eq!(mounts_at(netns::NETNS_RUN_DIR), 0);

        let ours: Vec<String> = (0..16).map(|i| format!("{prefix}{round}-weft{i}")).collect();
        let start = std::sync::Barrier::new(ours.len());
        let made: Vec<_> = std::thread::scope(|scope| {
            let start = &start;
            let threads: Vec<_> = ours
                .iter()
                .map(|name| {
                    scope.spawn(move || {
                        start.wait();
                        netns::create_named(name)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mounts = mounts_at(netns::NETNS_RUN_DIR);
        let theirs = format!("{prefix}{round}-ip");
        let added = Command::new("ip").args(["netns", "add", &theirs]).status().unwrap();

        let removed: Vec<_> =
            ours.iter().chain([&theirs]).map(|name| (name, netns::delete_named(name))).collect();
        let left: Vec<String> =
            netns::list_named().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect();
        for (made, name) in made.into_iter().zip(&ours) {
            made.unwrap_or_else(|e| panic!("create {name}: {e}"));
        }
        assert_eq!(mounts, 1, "round {round}: weft made {} one mount point", netns::NETNS_RUN_DIR);
        assert!(added.success());
        for (name, removed) in removed {
            removed.unwrap_or_else(|e| panic!("remove {name}: {e}"));
        }
        assert!(left.is_empty(), "left: {left:?}");
    }
}
