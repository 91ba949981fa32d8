//! The command line as a user meets it: what it prints, what it refuses and how it says so,
//! the conventions of a command line tool (version, completions, a man page, a closed pipe),
//! and the lab's and `weft status`'s commands on a real lab. Needs root for the lab part.

mod support;

use std::process::{Command, Output, Stdio};
use support::lab::{lab_name, wait_for};
use support::WEFT;

fn weft(args: &[&str]) -> Output {
    Command::new(WEFT).args(args).env_remove("CNI_COMMAND").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `args` and expects it refused: non-zero, nothing on stdout, stderr saying `words`.
fn refused(args: &[&str], words: &[&str]) {
    let output = weft(args);
    assert!(!output.status.success(), "{args:?} was accepted: {}", stdout(&output));
    assert_eq!(stdout(&output), "", "{args:?} printed before refusing");
    for word in words {
        assert!(stderr(&output).contains(word), "{args:?}: {:?} does not say {word:?}", stderr(&output));
    }
}

#[test]
fn version_completions_and_man_page() {
    let version = weft(&["version"]);
    assert!(version.status.success());
    let text = stdout(&version);
    assert!(text.starts_with(&format!("weft {} (commit ", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("x86_64-unknown-linux-gnu"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&weft(&["version", "--json"]).stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["commit"].as_str().is_some_and(|c| !c.is_empty()));
    for (shell, mark) in [("bash", "complete -F"), ("zsh", "#compdef weft"), ("fish", "complete -c weft")] {
        let script = stdout(&weft(&["completions", shell]));
        assert!(script.contains(mark), "{shell}: {}", &script[..script.len().min(200)]);
        assert!(script.contains("network") && script.contains("lab"), "{shell} completes the subcommands");
    }
    let man = stdout(&weft(&["man"]));
    assert!(man.contains(".TH weft") && man.contains("CNI_COMMAND"), "{}", &man[..man.len().min(300)]);
}

#[test]
fn only_cni_command_makes_it_the_plugin() {
    // An operator's shell with CNI_PATH set: the command line, not a CNI error object.
    let help = Command::new(WEFT).arg("--help").env("CNI_PATH", "/opt/cni/bin").output().unwrap();
    assert!(help.status.success(), "{}", stderr(&help));
    assert!(
        stdout(&help).contains("CNI_COMMAND") && stdout(&help).contains("Usage: weft"),
        "{}",
        stdout(&help)
    );
    // A runtime's variables but no CNI_COMMAND: not the plugin either; nothing touched.
    let output = Command::new(WEFT)
        .env("CNI_CONTAINERID", "abc")
        .env("CNI_NETNS", "/var/run/netns/none")
        .env("CNI_IFNAME", "eth0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(!stdout(&output).starts_with('{'), "no CNI error object: {}", stdout(&output));
    // With CNI_COMMAND, the plugin, as before.
    let plugin = Command::new(WEFT).env("CNI_COMMAND", "VERSION").stdin(Stdio::null()).output().unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&plugin.stdout).unwrap();
    assert!(answer["supportedVersions"].as_array().is_some_and(|v| !v.is_empty()), "{answer}");
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    for command in [
        "--help",
        "version",
        "completions bash",
        "man",
        "lab list",
        "lab --help",
        "network init --help",
        "agent --help",
    ] {
        for _ in 0..3 {
            let output = Command::new("sh")
                .arg("-c")
                .arg(format!("{WEFT} {command} | head -c 1 >/dev/null"))
                .output()
                .unwrap();
            let said = stderr(&output);
            assert!(!said.contains("panicked") && !said.contains("Broken pipe"), "{command}: {said}");
        }
    }
}

#[test]
fn network_init_says_what_is_wrong_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    refused(
        &["network", "init", "--store", &store, "--cidr", "10.244.0.0/33"],
        &["prefix length 33", "between 0 and 32"],
    );
    refused(
        &["network", "init", "--store", &store, "--cidr", "10.244.1.0/16"],
        &["host bits are set", "the network is 10.244.0.0/16"],
    );
    refused(
        &["network", "init", "--store", &store, "--cidr", "10.244.0/16"],
        &["not an IPv4 or IPv6 address"],
    );
    refused(
        &["network", "init", "--store", &store, "--cidr", "10.244.0.0/16", "--subnet-len", "12"],
        &["--subnet-len"],
    );
    let said = stderr(&weft(&[
        "network",
        "init",
        "--store",
        &store,
        "--cidr",
        "10.244.0.0/16",
        "--subnet-len",
        "12",
    ]));
    assert!(!said.contains('{'), "no config dump: {said}");
    refused(
        &["network", "init", "--store", &store, "--cidr", "198.18.1.0/24", "--backend", "l2"],
        &["--gateway"],
    );
    refused(
        &["network", "init", "--store", "sqlite:/nonexistent-dir/x.db", "--cidr", "10.244.0.0/16"],
        &["does not exist"],
    );
    let dir_path = format!("sqlite:{}", dir.path().display());
    refused(&["network", "init", "--store", &dir_path, "--cidr", "10.244.0.0/16"], &["is a directory"]);
    refused(&["network", "init", "--store", &store, "--cidr", "10.244.0.0/16", "--vni", "0"], &["--vni"]);
    refused(
        &["network", "init", "--store", "mysql://x", "--cidr", "10.244.0.0/16"],
        &["sqlite:PATH or etcd://"],
    );
    for (source, says) in
        [("0.0.0.0/0", "--no-overlay-filter"), ("10.244.9.0/24", "overlaps the pod network")]
    {
        refused(
            &["network", "init", "--store", &store, "--cidr", "10.244.0.0/16", "--overlay-source", source],
            &["--overlay-source", says],
        );
    }
    assert!(!dir.path().join("store.db").exists(), "nothing was written");
    // the agent refuses a store that does not exist (a typo must not make a new one)
    refused(&["agent", "--store", &store, "--node", "n1"], &["no store there", "weft network init"]);
    // a BGP password file that is not there, or names a router that is no --bgp-peer
    let passwords = dir.path().join("bgp-passwords");
    let bgp = |file: &std::path::Path| {
        let file = file.to_str().unwrap().to_string();
        ["agent", "--store", "sqlite:/x.db", "--node", "n1", "--asn", "65001", "--bgp-peer", "192.0.2.1"]
            .into_iter()
            .map(String::from)
            .chain(["--bgp-password-file".into(), file])
            .collect::<Vec<String>>()
    };
    let args = bgp(&passwords);
    refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), &["--bgp-password-file", "cannot read it"]);
    std::fs::write(&passwords, "192.0.2.9 s3cret\n").unwrap();
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["a password for 192.0.2.9, which is no --bgp-peer"],
    );
    std::fs::write(&passwords, "192.0.2.1\n").unwrap();
    refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), &["line 1: a peer without a password"]);
    // and the good config is written and printed
    let good = weft(&["network", "init", "--store", &store, "--cidr", "10.244.0.0/16"]);
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(stdout(&good).contains("\"cidr\": \"10.244.0.0/16\""));
}

#[test]
fn network_init_takes_one_cidr_per_family_and_each_familys_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    let init = |more: &[&str]| {
        let mut args = vec!["network", "init", "--store", &store];
        args.extend_from_slice(more);
        args.into_iter().map(String::from).collect::<Vec<String>>()
    };
    let run = |more: &[&str]| {
        let args = init(more);
        weft(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refuse = |more: &[&str], words: &[&str]| {
        let args = init(more);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), words)
    };
    refuse(&["--cidr", "10.244.0.0/16", "--cidr", "10.9.0.0/16"], &["--cidr", "one IPv4 and one IPv6"]);
    refuse(
        &["--cidr", "10.244.0.0/16", "--cidr", "fd00:10:244::/56", "--subnet-len", "24"],
        &["--subnet-len", "one per --cidr"],
    );
    refuse(
        &[
            "--cidr",
            "10.244.0.0/16",
            "--cidr",
            "fd00:10:244::/56",
            "--subnet-len",
            "24",
            "--subnet-len",
            "127",
        ],
        &["--subnet-len", "IPv6 pool"],
    );
    refuse(
        &[
            "--cidr",
            "198.18.1.0/24",
            "--cidr",
            "2001:db8:1::/64",
            "--backend",
            "l2",
            "--gateway",
            "198.18.1.1",
        ],
        &["--gateway once per family"],
    );
    refuse(
        &["--cidr", "10.244.0.0/16", "--backend", "l2", "--gateway", "2001:db8:1::1"],
        &["--gateway 2001:db8:1::1", "no IPv6 CIDR"],
    );
    refuse(&["--cidr", "10.244.0.0/16", "--reserve", "2001:db8:1::/72"], &["--reserve", "no IPv6 CIDR"]);
    refuse(
        &[
            "--cidr",
            "198.18.1.0/24",
            "--cidr",
            "2001:db8:1::/64",
            "--backend",
            "l2",
            "--gateway",
            "2001:db8:1::1",
            "--gateway",
            "2001:db8:1::2",
        ],
        &["--gateway 2001:db8:1::2", "one per family"],
    );
    assert!(!dir.path().join("store.db").exists(), "nothing was written");
    // IPv6 first on the command line: IPv4 first in the config, each length to its CIDR
    let good = run(&[
        "--cidr",
        "fd00:10:244::/56",
        "--cidr",
        "10.244.0.0/16",
        "--subnet-len",
        "80",
        "--subnet-len",
        "20",
        "--no-masquerade",
        "ipv6",
    ]);
    assert!(good.status.success(), "{}", stderr(&good));
    let config: weft_core::network::NetworkConfig = serde_json::from_str(&stdout(&good)).unwrap();
    assert_eq!((config.cidr.to_string(), config.subnet_len), ("10.244.0.0/16".into(), 20));
    let v6 = config.ipv6.clone().unwrap();
    assert_eq!((v6.cidr.to_string(), v6.subnet_len), ("fd00:10:244::/56".into(), 80));
    assert_eq!(config.no_masquerade, vec![weft_core::network::Family::Ipv6]);
    // l2 with a router per family
    let l2 = run(&[
        "--cidr",
        "198.18.1.0/24",
        "--cidr",
        "2001:db8:1::/64",
        "--backend",
        "l2",
        "--gateway",
        "198.18.1.1",
        "--gateway",
        "2001:db8:1::1",
        "--reserve",
        "2001:db8:1::/72",
        "--subnet-len",
        "28",
        "--subnet-len",
        "80",
        "--force",
    ]);
    assert!(l2.status.success(), "{}", stderr(&l2));
    let config: weft_core::network::NetworkConfig = serde_json::from_str(&stdout(&l2)).unwrap();
    let v6 = config.ipv6.unwrap();
    assert_eq!(v6.gateway, Some("2001:db8:1::1".parse().unwrap()));
    assert_eq!(v6.reserved, vec!["2001:db8:1::/72".parse().unwrap()]);
    assert_eq!(config.gateway, Some("198.18.1.1".parse().unwrap()));
}

#[test]
fn lab_flags_that_cannot_apply_are_refused_before_anything_is_printed() {
    let name = lab_name();
    refused(&["lab", "up", &name, "--mode", "vxlan", "--router", "frr"], &["--router", "bgp"]);
    refused(&["lab", "up", &name, "--mode", "route", "--ibgp"], &["--ibgp"]);
    refused(
        &["lab", "up", &name, "--mode", "vxlan", "--bgp-password"],
        &["--bgp-password", "nothing speaks BGP"],
    );
    refused(&["lab", "up", &name, "--mode", "auto", "--graceful-restart", "30"], &["--graceful-restart"]);
    refused(&["lab", "up", &name, "--graceful-restart", "0"], &["0"]);
    refused(&["lab", "up", "MyLab"], &["lab name \"MyLab\""]);
    refused(&["lab", "up", &name, "--lease-ttl", "2"], &["--lease-ttl"]);
    refused(&["lab", "up", &name, "--racks", "0"], &["--racks 0"]);
    refused(&["lab", "check", &name, "--timeout", "0"], &["--timeout"]);
    refused(&["lab", "up", &name, "--name", &name], &["cannot be used with"]);
    refused(&["lab", "show", &name, "--html", "/tmp/x.html", "--verify"], &["--trace"]);
    refused(
        &["status", "--state-dir", "/nonexistent-weft"],
        &["is an agent running with --state-dir", "weft lab status"],
    );
    // A program the lab needs is missing: refused before the banner too.
    let no_etcd = Command::new(WEFT)
        .args(["lab", "up", &name, "--store", "etcd"])
        .env("PATH", "/nonexistent-weft")
        .output()
        .unwrap();
    assert!(!no_etcd.status.success() && stdout(&no_etcd).is_empty(), "{}", stdout(&no_etcd));
    assert!(stderr(&no_etcd).contains("needs the etcd program"), "{}", stderr(&no_etcd));
    assert!(!weft_lab::state::lab_dir(&name).exists(), "no lab was made");
}

#[test]
fn a_lab_through_its_commands_and_weft_status_that_cannot_lie() {
    let name = lab_name();
    let up = weft(&[
        "lab",
        "up",
        &name,
        "--mode",
        "bgp",
        "--racks",
        "1",
        "--nodes-per-rack",
        "2",
        "--pods-per-node",
        "1",
    ]);
    let _down = scopeguard(&name);
    assert!(up.status.success(), "{}{}", stdout(&up), stderr(&up));
    let said = stdout(&up);
    assert!(said.contains("1 rack × 2 nodes × 1 pod"), "{said}");
    assert!(said.contains(&format!("  {name} is up in ")) && !said.contains("rack(s)"), "{said}");
    // The same name again: refused before anything is printed.
    refused(&["lab", "up", &name], &["exists already", &format!("weft lab down {name}")]);

    // the lab as the first argument, and --name as before
    for args in [vec!["lab", "check", &name], vec!["lab", "check", "--name", &name]] {
        let check = weft(&args);
        assert!(check.status.success(), "{args:?}: {}{}", stdout(&check), stderr(&check));
    }
    let list: serde_json::Value = serde_json::from_slice(&weft(&["lab", "list", "--json"]).stdout).unwrap();
    let mine = list.as_array().unwrap().iter().find(|l| l["name"] == name.as_str()).expect("listed");
    assert_eq!((mine["mode"].as_str(), mine["agentsRunning"].as_u64()), (Some("bgp"), Some(2)));

    // the agents' view: all running, kernels as planned
    let status = weft(&["lab", "status", &name]);
    assert!(status.status.success(), "{}{}", stdout(&status), stderr(&status));
    let table = stdout(&status);
    assert!(table.lines().filter(|l| l.contains("running") && l.contains("matches")).count() == 2, "{table}");
    assert!(table.contains("198.18.1.1 established"), "BGP sessions shown: {table}");
    let one: serde_json::Value =
        serde_json::from_slice(&weft(&["lab", "status", &name, "n1", "--json"]).stdout).unwrap();
    assert_eq!(one[0]["status"]["node"], "n1");
    assert_eq!(one[0]["agent"]["running"], true);

    // `weft status` in the node (weft inside `lab exec` is this weft) and from the machine's
    // own namespace: both check the agent's kernel, not the caller's
    let dir = weft_lab::Lab::open(&name, WEFT.as_ref()).unwrap().state.node_dir("n1").display().to_string();
    let inside = weft(&["lab", "exec", &name, "n1", "--", "weft", "status", "--state-dir", &dir]);
    assert!(inside.status.success(), "{}{}", stdout(&inside), stderr(&inside));
    assert!(
        stdout(&inside).contains("kernel    matches the plan (1 route), in this network namespace"),
        "{}",
        stdout(&inside)
    );
    let outside = weft(&["status", "--state-dir", &dir]);
    assert!(outside.status.success(), "{}{}", stdout(&outside), stderr(&outside));
    assert!(stdout(&outside).contains("in the agent's network namespace (/proc/"), "{}", stdout(&outside));
    let json: serde_json::Value =
        serde_json::from_slice(&weft(&["status", "--state-dir", &dir, "--json"]).stdout).unwrap();
    assert_eq!(
        (json["agent"]["running"].as_bool(), json["kernel"]["missing"].as_array().map(Vec::len)),
        (Some(true), Some(0))
    );

    // a closed pipe after each lab command
    for command in [
        format!("lab exec {name} n1 -- ip addr"),
        format!("lab check {name}"),
        format!("lab status {name}"),
        format!("lab status {name} n1 --json"),
        "lab list".to_string(),
        format!("lab logs {name} n1"),
        format!("lab trace {name} n1-p1 n2-p1"),
        format!("status --state-dir {dir}"),
    ] {
        let piped = Command::new("sh").arg("-c").arg(format!("{WEFT} {command} | head -1")).output().unwrap();
        assert!(!stderr(&piped).contains("panicked"), "{command}: {}", stderr(&piped));
        assert_eq!(stdout(&piped).lines().count(), 1, "{command}");
    }

    // logs, trace, the router's daemon
    let logs = stdout(&weft(&["lab", "logs", &name, "n1"]));
    assert!(logs.contains(" INFO ") && logs.contains("leased"), "{logs}");
    let trace = weft(&["lab", "trace", &name, "n1-p1", "n2-p1"]);
    assert!(trace.status.success() && stdout(&trace).contains("delivered"), "{}", stdout(&trace));
    let bird = weft(&["lab", "router", &name, "--", "birdc", "show", "protocols"]);
    assert!(stdout(&bird).contains("BGP"), "{}{}", stdout(&bird), stderr(&bird));

    // a restart: another pid, the same subnet, nothing changed in the kernel
    let before = weft_lab::Lab::open(&name, WEFT.as_ref()).unwrap().state.agents["n1"].pid;
    let restart = weft(&["lab", "restart", &name, "n1"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    let after = weft_lab::Lab::open(&name, WEFT.as_ref()).unwrap().state.agents["n1"].pid;
    assert_ne!(before, after);
    let lab = weft_lab::Lab::open(&name, WEFT.as_ref()).unwrap();
    wait_for(
        std::time::Duration::from_secs(10),
        || lab.status_of("n1").is_some_and(|s| s.pid == after),
        "the restarted agent's first pass",
    );

    // the agent gone: weft status says so, and fails, instead of "reconciled 6 s ago"
    unsafe { libc::kill(after as i32, libc::SIGKILL) };
    wait_for(
        std::time::Duration::from_secs(10),
        || !std::path::Path::new(&format!("/proc/{after}")).exists(),
        "the agent gone",
    );
    let gone = weft(&["status", "--state-dir", &dir]);
    assert!(!gone.status.success());
    assert!(stdout(&gone).contains(&format!("agent pid {after} not running")), "{}", stdout(&gone));
    assert!(stderr(&gone).contains("not running"), "{}", stderr(&gone));
    let table = weft(&["lab", "status", &name]);
    assert!(!table.status.success() && stdout(&table).contains("GONE"), "{}", stdout(&table));
}

/// Removes the lab when the test ends, passed or not.
fn scopeguard(name: &str) -> impl Drop + '_ {
    struct Down<'a>(&'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = weft_lab::down::down_named(self.0);
        }
    }
    Down(name)
}

/// Log lines carry their time and level as text, or are one JSON object each for collectors;
/// `--log-level` filters them. (A warning the agent gives before it refuses a missing store.)
#[test]
fn log_lines_carry_time_and_level_or_are_json_and_the_level_filters_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, "192.0.2.1 not-for-the-log\n").unwrap();
    std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = format!("sqlite:{}", dir.path().join("none.db").display());
    let agent = |global: &[&str]| {
        let output = weft(
            &[
                global,
                &["agent", "--store", &store, "--node", "n1", "--asn", "65001"],
                &["--bgp-peer", "192.0.2.1:65000", "--bgp-password-file", passwords.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(!output.status.success(), "no store there");
        let said = stderr(&output);
        assert!(!said.contains("not-for-the-log"), "the password was logged: {said}");
        said
    };

    let text = agent(&[]);
    let line = text.lines().find(|l| l.contains("others may read it")).unwrap_or_else(|| panic!("{text}"));
    let mut words = line.split_whitespace();
    let time = words.next().unwrap();
    assert!(
        time.len() >= 20 && time.as_bytes()[4] == b'-' && time.contains('T') && time.ends_with('Z'),
        "{line}"
    );
    assert_eq!(words.next(), Some("WARN"), "{line}");

    let json = agent(&["--log-format", "json"]);
    let line = json.lines().find(|l| l.contains("others may read it")).unwrap_or_else(|| panic!("{json}"));
    let object: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(object["level"], "WARN", "{line}");
    assert!(object["timestamp"].as_str().is_some_and(|t| t.contains('T')), "{line}");

    let quiet = agent(&["--log-level", "error"]);
    assert!(!quiet.contains("others may read it") && quiet.contains("no store there"), "{quiet}");
}

/// A command that builds something carries on when its reader goes away (`| head -1`): the
/// lab is whole, the store holds the network, every file is installed; and the commands that
/// only print stop quietly.
#[test]
fn a_closed_pipe_does_not_stop_a_command_half_way() {
    let piped = |command: &str| {
        let output =
            Command::new("sh").arg("-c").arg(format!("{WEFT} {command} | head -1")).output().unwrap();
        assert!(!stderr(&output).contains("panicked"), "{command}: {}", stderr(&output));
        assert_eq!(stdout(&output).lines().count(), 1, "{command}: {}", stdout(&output));
    };
    let name = lab_name();
    let _down = scopeguard(&name);
    piped(&format!("lab up {name} --racks 1 --nodes-per-rack 2 --pods-per-node 1"));
    let check = weft(&["lab", "check", &name]);
    assert!(check.status.success(), "the lab is whole: {}{}", stdout(&check), stderr(&check));
    let dir = tempfile::tempdir().unwrap();
    let (html, svg) = (dir.path().join("lab.html"), dir.path().join("lab.svg"));
    piped(&format!("lab show {name} --html {} --svg {}", html.display(), svg.display()));
    assert!(html.exists() && svg.exists(), "both pictures written");
    piped(&format!("lab down {name}"));
    assert!(!weft_lab::state::lab_dir(&name).exists());
    let prefix = weft_lab::topology::netns_prefix(&name);
    let left: Vec<String> =
        weft_kernel::netns::list_named().unwrap().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "{left:?}");

    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    piped(&format!("network init --store {store} --cidr 10.244.0.0/16"));
    let (bin, conf) = (dir.path().join("bin"), dir.path().join("conf"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    piped(&format!(
        "install-cni --bin-dir {} --conf-dir {} --state-dir {}",
        bin.display(),
        conf.display(),
        dir.path().display()
    ));
    assert!(bin.join("weft").exists() && conf.join("10-weft.conflist").exists(), "install-cni finished");
    let network = weft_store::open(&store).unwrap().network().unwrap();
    assert_eq!(network.map(|n| n.cidr.to_string()), Some("10.244.0.0/16".into()), "network init finished");
}
