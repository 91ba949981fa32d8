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

fn is_mount_point(dir: &str) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo.lines().any(|line| line.split(' ').nth(4) == Some(dir))
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
    let dir = c"/run/netns";
    // SAFETY: umount2 with a static string; private propagation keeps it to this namespace.
    while unsafe { libc::umount2(dir.as_ptr(), libc::MNT_DETACH) } == 0 {}
    assert!(!is_mount_point(netns::NETNS_RUN_DIR));

    let prefix = format!("wtest-{}-", std::process::id());
    let (ours, theirs) = (format!("{prefix}weft"), format!("{prefix}ip"));
    netns::create_named(&ours).unwrap();
    assert!(is_mount_point(netns::NETNS_RUN_DIR), "weft made {} a mount point", netns::NETNS_RUN_DIR);
    let added = Command::new("ip").args(["netns", "add", &theirs]).status().unwrap();
    assert!(added.success());

    let removed = (netns::delete_named(&ours), netns::delete_named(&theirs));
    let left: Vec<String> =
        netns::list_named().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    removed.0.unwrap();
    removed.1.unwrap();
    assert!(left.is_empty(), "left: {left:?}");
}
