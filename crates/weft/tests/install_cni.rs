//! Installing the plugin as a DaemonSet does, and the node turning Ready. `weft install-cni`
//! puts the binary and the config list in place whole; the agent writes the list only once
//! the node can wire pods (a lease, the node file), and a runtime listing the conf dir all
//! along (as containerd's CRI plugin watches it) never reads a partial list, never finds
//! the list before the node file, and never loses it while the agent restarts. `/readyz`
//! says the same. Needs root (the agent runs in a node namespace).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::agent::NodeAgent;
use support::*;

fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("{}{what}", unique_prefix())).tempdir().unwrap()
}

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(WEFT).args(args).output().unwrap()
}

/// The files a runtime loads from a CNI conf dir (libcni: `.conf`, `.conflist`, `.json`).
fn runtime_visible(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conf" | "conflist" | "json")))
        .collect()
}

#[test]
fn install_cni_puts_the_binary_and_the_list_in_place_whole() {
    let dir = temp_dir("install");
    let (bin, conf) = (dir.path().join("bin"), dir.path().join("net.d"));
    // An older plugin is there, and a runtime keeps reading it while we replace it.
    std::fs::create_dir_all(&bin).unwrap();
    let old = b"#!/bin/sh\necho old weft\n".repeat(1000);
    std::fs::write(bin.join("weft"), &old).unwrap();
    let new = std::fs::read(WEFT).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, stop, old, new) = (bin.join("weft"), stop.clone(), old.clone(), new.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    bytes == old || bytes == new,
                    "a runtime read {} bytes of neither binary",
                    bytes.len()
                );
                reads += 1;
            }
            reads
        })
    };
    let output = weft(&[
        "install-cni",
        "--bin-dir",
        bin.to_str().unwrap(),
        "--conf-dir",
        conf.to_str().unwrap(),
        "--plugin",
        &format!("{REFERENCE_PLUGINS}/portmap"),
    ]);
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(output.status.success(), "install-cni: {}", String::from_utf8_lossy(&output.stderr));
    assert!(reads > 0);
    assert_eq!(std::fs::read(bin.join("weft")).unwrap(), new);
    assert_eq!(
        std::fs::read(bin.join("portmap")).unwrap(),
        std::fs::read(format!("{REFERENCE_PLUGINS}/portmap")).unwrap()
    );
    // What was installed runs as the plugin.
    let version = Command::new(bin.join("weft")).env("CNI_COMMAND", "VERSION").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("supportedVersions"));
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(conf.join("10-weft.conflist")).unwrap()).unwrap();
    assert_eq!(list["plugins"][0]["type"], "weft");
    assert_eq!(list["plugins"][1]["type"], "portmap");
    let names: Vec<String> =
        std::fs::read_dir(&bin).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");

    // A list of one's own is checked first: one that would not run weft writes nothing.
    let mine = dir.path().join("20-mine.conflist");
    std::fs::write(&mine, r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]}"#).unwrap();
    let other_conf = dir.path().join("other.d");
    let output = weft(&[
        "install-cni",
        "--bin-dir",
        bin.to_str().unwrap(),
        "--conf-dir",
        other_conf.to_str().unwrap(),
        "--conflist",
        mine.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no weft plugin"));
    assert!(!other_conf.exists());
}

#[test]
fn the_agent_writes_the_list_once_the_node_can_wire_pods_and_never_takes_it_back() {
    let node = Node::new();
    let conf_dir = node.state_dir.path().join("net.d");
    let node_file = node.state_dir.path().join("node.json");
    let mut agent = NodeAgent::new(&node, Some(&conf_dir));

    // The runtime: lists the conf dir as fast as it can and reads what it would load.
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = {
        let (conf_dir, node_file, stop) = (conf_dir.clone(), node_file.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut listings, mut first_seen) = (0u64, None);
            while !stop.load(Ordering::Relaxed) {
                let files = runtime_visible(&conf_dir);
                if let Some(seen) = first_seen {
                    assert_eq!(files.len(), 1, "the list went away {:?} after it came", seen);
                }
                for file in files {
                    let text = std::fs::read_to_string(&file).unwrap();
                    let list: serde_json::Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("a runtime read a partial list ({e}): {text:?}"));
                    assert_eq!(list["plugins"][0]["type"], "weft");
                    assert!(node_file.exists(), "the list is there before the node file");
                    first_seen.get_or_insert_with(Instant::now);
                }
                listings += 1;
            }
            (listings, first_seen.is_some())
        })
    };

    // No network yet: the agent runs and is healthy enough to answer, but cannot lease.
    agent.start(&node);
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.get("/readyz").is_none() {
        assert!(Instant::now() < deadline, "the agent does not answer:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(agent.get("/readyz").unwrap().0, 503);
    assert!(runtime_visible(&conf_dir).is_empty() && !node_file.exists());

    // The network appears: lease, node file, list, ready.
    agent.init_network();
    agent.wait_ready();
    assert!(node_file.exists());
    assert_eq!(runtime_visible(&conf_dir), vec![conf_dir.join("10-weft.conflist")]);
    let metrics = agent.get("/metrics").unwrap().1;
    assert!(metrics.contains("weft_ready 1"), "{metrics}");

    // A restart (a DaemonSet rollout): the list stays all along, and the node is Ready again.
    agent.stop();
    assert!(runtime_visible(&conf_dir).len() == 1, "a stopped agent leaves the list");
    agent.start(&node);
    agent.wait_ready();

    stop.store(true, Ordering::Relaxed);
    let (listings, seen) = runtime.join().unwrap();
    assert!(seen, "the runtime never saw the list");
    assert!(listings > 100, "the runtime listed the dir only {listings} times");
    eprintln!("the runtime listed the conf dir {listings} times");
}
