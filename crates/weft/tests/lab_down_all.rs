//! `weft lab down --all` after `weft lab up` was killed half-way removes every namespace,
//! process and file the lab made. A test binary of its own: `--all` removes every lab on
//! the machine, and cargo runs test binaries one after another. Needs root.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::lab::lab_name;
use support::WEFT;
use weft_lab::process::is_running;
use weft_lab::state::LabState;

#[test]
fn down_all_after_a_killed_up_cleans_everything() {
    let name = lab_name();
    // Big enough that `up` is still wiring pods when it is killed.
    let mut up = Command::new(WEFT)
        .args(["lab", "up", "--name", &name, "--racks", "3", "--nodes-per-rack", "4", "--pods-per-node", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let agents = loop {
        let state = LabState::load(&name).ok();
        if let Some(state) =
            state.filter(|s| s.agents.len() == 12 && s.pods.iter().any(|p| p.address.is_some()))
        {
            break state.agents.values().cloned().collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "up never got to wiring pods");
        std::thread::sleep(Duration::from_millis(5));
    };
    up.kill().unwrap(); // SIGKILL
    up.wait().unwrap();
    let state = LabState::load(&name).unwrap();
    assert!(state.pods.iter().any(|p| p.address.is_none()), "up was killed before it finished the pods");
    assert!(agents.iter().all(is_running), "agents outlive up");
    let prefix = weft_lab::topology::netns_prefix(&name);
    let namespaces = || -> Vec<String> {
        weft_kernel::netns::list_named().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect()
    };
    assert!(namespaces().len() > 12 + 3 + 2, "the killed up left its namespaces: {:?}", namespaces());

    let down = Command::new(WEFT).args(["lab", "down", "--all"]).output().unwrap();
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(down.status.success(), "{said}{}", String::from_utf8_lossy(&down.stderr));
    assert!(said.starts_with("removed ") && said.contains(&name), "{said}");
    assert!(namespaces().is_empty(), "left: {:?}", namespaces());
    assert!(!weft_lab::state::lab_dir(&name).exists());
    assert!(!agents.iter().any(is_running), "agents still run after down --all");
}
