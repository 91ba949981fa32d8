//! The border between pods and the physical network, in labs with a real BGP router (BIRD
//! or FRR): bgp mode, gateways and their failover, clients, withdrawals, a wrong ASN.
//! Needs root, bird2 and frr.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::exec_in;
use support::lab::{lab, ns, wait_for};
use weft_lab::promise::Category;
use weft_lab::topology::RouterKind;
use weft_lab::{Lab, Mode};

fn router_routes(lab: &Lab) -> String {
    exec_in(&ns(lab, "router"), "ip", &["route"], true)
}

/// `weft status` of a member's agent, run in its namespace.
fn weft_status(lab: &Lab, member: &str) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", &ns(lab, member), support::WEFT, "status", "--state-dir"])
        .arg(lab.state.node_dir(member))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn outside_reaches_every_pod(lab: &Lab) {
    let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
    assert!(report.ok, "{}", weft_lab::report::render(&report, weft_lab::Style { color: false }));
    let from_outside: Vec<_> = report.cells.iter().filter(|c| c.category == Category::OutsideToPod).collect();
    assert!(!from_outside.is_empty() && from_outside.iter().all(|c| c.reached));
}

#[test]
fn bgp_mode_with_frr_as_the_router() {
    let lab = lab(Mode::Bgp, |spec| spec.router = RouterKind::Frr);
    outside_reaches_every_pod(&lab);
    let routes = router_routes(&lab);
    assert_eq!(routes.matches("proto bgp").count(), 4, "one route per node, learned by FRR: {routes}");
}

#[test]
fn bgp_withdraws_a_stopped_nodes_subnet_and_keeps_the_others() {
    let mut lab = lab(Mode::Bgp, |spec| spec.pods_per_node = 1);
    let subnet_of = |lab: &Lab, node: &str| {
        let text = std::fs::read_to_string(lab.state.node_dir(node).join("node.json")).unwrap();
        weft_core::NodeFile::parse(&text).unwrap().subnets[0].subnet.to_string()
    };
    let (n3, n4) = (subnet_of(&lab, "n3"), subnet_of(&lab, "n4"));
    assert!(router_routes(&lab).contains(&format!("{n3} via 198.18.2.11 dev rack2 proto bird")));
    lab.stop_agent("n3", libc::SIGTERM);
    wait_for(Duration::from_secs(5), || !router_routes(&lab).contains(&n3), "n3's subnet to be withdrawn");
    let routes = router_routes(&lab);
    assert!(routes.contains(&n4) && routes.matches("proto bird").count() == 3, "{routes}");
    // back: announced again
    lab.start_agent("n3").unwrap();
    wait_for(Duration::from_secs(10), || router_routes(&lab).contains(&n3), "n3's subnet to come back");
}

#[test]
fn a_node_whose_lease_lapses_withdraws_its_subnet_while_the_session_stays_up() {
    // On etcd, so the store can go away while the router stays: the agents cannot renew, and
    // once a lease's time is up its subnet may be another node's.
    let mut lab = lab(Mode::Bgp, |spec| {
        spec.store = weft_lab::StoreKind::Etcd;
        spec.racks = 1;
        spec.pods_per_node = 0;
    });
    assert_eq!(router_routes(&lab).matches("proto bird").count(), 2);
    lab.stop_store();
    let lapsed = Instant::now();
    wait_for(
        Duration::from_secs(20),
        || !router_routes(&lab).contains("proto bird"),
        "both subnets withdrawn",
    );
    assert!(lapsed.elapsed() >= Duration::from_secs(3), "not before the 6 s leases could lapse");
    // Withdrawn by UPDATE, not by losing the session: BIRD still has both sessions up.
    let protocols = exec_in(
        &ns(&lab, "router"),
        "birdc",
        &["-s", lab.state.dir().join("router/bird.ctl").to_str().unwrap(), "show", "protocols"],
        true,
    );
    assert_eq!(protocols.matches("Established").count(), 2, "{protocols}");
    // The store back: leases renewed, subnets announced again.
    lab.start_store().unwrap();
    wait_for(
        Duration::from_secs(20),
        || router_routes(&lab).matches("proto bird").count() == 2,
        "re-announced",
    );
}

#[test]
fn a_wrong_asn_is_refused_by_the_router_and_the_agent_carries_on() {
    let mut lab = lab(Mode::Bgp, |spec| {
        spec.racks = 1;
        spec.pods_per_node = 0;
        spec.start_agents = false;
    });
    lab.start_agent("n2").unwrap();
    // n1's agent says it is AS 65199; BIRD expects 65100 from it.
    let log_path = lab.state.dir().join("logs").join("n1-wrong-asn.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut agent = Command::new("ip")
        .args(["netns", "exec", &ns(&lab, "n1"), support::WEFT, "agent", "--store", &lab.state.store_url])
        .args(["--node", "n1", "--iface", "eth0", "--asn", "65199", "--bgp-peer", "198.18.1.1:65000"])
        .args(["--state-dir", lab.state.node_dir("n1").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(Duration::from_secs(15), || said().contains("bad peer AS"), "the refusal in n1's log");
    assert!(said().contains("the peer closed the session: OPEN error: bad peer AS (2/2)"), "{}", said());
    assert!(agent.try_wait().unwrap().is_none(), "the agent carries on");
    // n1 still leased and wrote its node file; n2's announcement is untouched.
    wait_for(
        Duration::from_secs(10),
        || lab.state.node_dir("n1").join("node.json").exists(),
        "n1's node file (the refusal may come before the lease)",
    );
    wait_for(
        Duration::from_secs(10),
        || router_routes(&lab).matches("proto bird").count() == 1,
        "n2's route",
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
}

#[test]
fn a_client_reaches_pods_over_the_overlay_where_the_router_cannot() {
    let lab = lab(Mode::Vxlan, |spec| spec.client = true);
    outside_reaches_every_pod(&lab);
    assert!(!router_routes(&lab).contains("10.244."), "the router knows no pod route");
    let client_routes = exec_in(&ns(&lab, "outside"), "ip", &["route"], true);
    assert_eq!(client_routes.matches("dev weft.1 proto 88 onlink").count(), 4, "{client_routes}");
    let status = weft_status(&lab, "outside");
    assert!(
        status.contains("node      outside (client)") && !status.contains("subnet"),
        "a client leases nothing: {status}"
    );
}

/// Two gateways; the outside client pings a pod every 10 ms while the gateway carrying the
/// flow loses its link. Returns the longest time without a reply.
fn gateway_failover_gap(router: RouterKind) -> Duration {
    let lab = lab(Mode::Vxlan, |spec| {
        spec.gateways = 2;
        spec.nodes_per_rack = 1;
        spec.pods_per_node = 1;
        spec.router = router;
    });
    outside_reaches_every_pod(&lab);
    wait_for(
        Duration::from_secs(10),
        || lab.status_of("g2").is_some_and(|status| status.bgp.iter().any(|s| s.state == "established")),
        "both gateways' sessions",
    );
    // (the status file is rewritten on each resync: at most a resync interval behind)
    wait_for(
        Duration::from_secs(10),
        || {
            let status = weft_status(&lab, "g1");
            status.contains("node      g1 (gateway)")
                && status.contains(
                    "bgp       198.18.1.1 (AS 65000, ours 65100): established, announcing 10.244.0.0/16",
                )
        },
        "weft status to show g1's announcement",
    );
    let target = lab.pod_address("n1-p1").unwrap().to_string();
    // The gateway the router sends this flow to.
    let via = exec_in(
        &ns(&lab, "router"),
        "ip",
        &["route", "get", &target, "from", "203.0.113.10", "iif", "outside"],
        true,
    );
    let gateway = lab
        .topology()
        .gateways
        .iter()
        .find(|g| via.contains(&format!("via {} ", g.ip)))
        .unwrap()
        .name
        .clone();
    let outside = ns(&lab, "outside");
    let pings = std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &outside, "ping", "-D", "-n", "-i", "0.01", "-w", "12", &target])
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let failed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    exec_in(&ns(&lab, &gateway), "ip", &["link", "set", "eth0", "down"], true);
    let output = pings.join().unwrap();
    let replies: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    assert!(replies.first().is_some_and(|t| *t < failed_at), "replies before the failure");
    assert!(replies.last().is_some_and(|t| *t > failed_at + 5.0), "traffic flows again after the failover");
    let gap = replies.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Duration::from_secs_f64(gap)
}

#[test]
fn gateways_fail_over_within_the_bgp_hold_time() {
    let started = Instant::now();
    for router in [RouterKind::Bird, RouterKind::Frr] {
        let gap = gateway_failover_gap(router);
        println!(
            "gateway failover with {}: {:.2} s without replies (hold time 3 s)",
            router.name(),
            gap.as_secs_f64()
        );
        assert!(gap < Duration::from_secs(8), "{}: {gap:?}", router.name());
    }
    println!("({:.0} s)", started.elapsed().as_secs_f64());
}

#[test]
fn ibgp_with_bird_and_with_frr() {
    for router in [RouterKind::Bird, RouterKind::Frr] {
        let lab = lab(Mode::Bgp, |spec| {
            spec.router = router;
            spec.ibgp = true;
            spec.pods_per_node = 1;
        });
        outside_reaches_every_pod(&lab);
        let routes = router_routes(&lab);
        let learned = routes.lines().filter(|l| l.starts_with("10.244.")).count();
        assert_eq!(learned, 4, "{}: {routes}", router.name());
        // The node speaks from the router's own AS: iBGP.
        let status = lab.status_of("n1").expect("n1's status");
        assert_eq!((status.bgp[0].asn, status.bgp[0].local_asn), (65000, 65000), "{status:?}");
    }
}

#[test]
fn with_graceful_restart_an_agent_restart_loses_no_packet_across_racks() {
    for router in [RouterKind::Bird, RouterKind::Frr] {
        restart_without_loss(router);
    }
}

fn restart_without_loss(router: RouterKind) {
    let mut lab = lab(Mode::Bgp, |spec| {
        spec.pods_per_node = 1;
        spec.graceful_restart = 60;
        spec.router = router;
    });
    let (pod, target) = (ns(&lab, "n1-p1"), lab.pod_address("n3-p1").unwrap().to_string());
    // n3's agent stops and starts again while n1-p1 pings n3-p1 through the router every 10 ms.
    let summary = support::ping_while(&pod, &target, 400, || {
        std::thread::sleep(Duration::from_millis(500));
        lab.stop_agent("n3", libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(1500));
        lab.start_agent("n3").unwrap();
    });
    assert!(
        summary.contains("400 received") && summary.contains(" 0% packet loss"),
        "{}: {summary}",
        router.name()
    );
    let log = std::fs::read_to_string(lab.state.log_file("n3")).unwrap();
    assert!(log.contains("closed for a graceful restart"), "{log}");
    let learned = || router_routes(&lab).lines().filter(|l| l.starts_with("10.244.")).count();
    wait_for(Duration::from_secs(10), || learned() == 4, "n3's subnet announced again");
}

#[test]
fn bgp_sessions_signed_with_tcp_md5_with_bird_and_with_frr() {
    for router in [RouterKind::Bird, RouterKind::Frr] {
        signed_sessions(router);
    }
}

/// A lab whose sessions are all signed (`--bgp-password`): n2 with the lab's password gets
/// its route to the router; n1 with a wrong password, then with none, gets no session, says
/// why in its log and keeps trying, and n2's route never moves. The password is in no log,
/// no status file and no process's arguments.
fn signed_sessions(router: RouterKind) {
    let mut lab = lab(Mode::Bgp, |spec| {
        spec.racks = 1;
        spec.pods_per_node = 0;
        spec.start_agents = false;
        spec.router = router;
        spec.bgp_password = true;
    });
    let password = lab.state.bgp_password().expect("the lab made a password");
    let (n1, n2) = (lab.address_of("n1").unwrap(), lab.address_of("n2").unwrap());
    lab.start_agent("n2").unwrap();
    let n2_routed = || router_routes(&lab).contains(&format!("via {n2} "));
    wait_for(Duration::from_secs(20), n2_routed, &format!("{router:?}: n2's route, over a signed session"));
    let n2_status = || std::fs::read_to_string(lab.state.node_dir("n2").join("status.json")).unwrap();
    wait_for(
        Duration::from_secs(10),
        || n2_status().contains("\"established\""),
        "n2's status to say established",
    );

    let wrong = lab.state.dir().join("wrong-passwords");
    std::fs::write(&wrong, "198.18.1.1 not-the-routers-password\n").unwrap();
    for (case, file) in [("wrong", Some(&wrong)), ("none", None)] {
        let log_path = lab.state.dir().join("logs").join(format!("n1-{case}-password.log"));
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns(&lab, "n1"), support::WEFT, "agent", "--store", &lab.state.store_url])
            .args(["--node", "n1", "--iface", "eth0", "--asn", "65100", "--bgp-peer", "198.18.1.1:65000"])
            .args(["--state-dir", lab.state.node_dir("n1").to_str().unwrap()]);
        if let Some(file) = file {
            command.arg("--bgp-password-file").arg(file);
        }
        let mut agent =
            command.stdout(Stdio::null()).stderr(std::fs::File::create(&log_path).unwrap()).spawn().unwrap();
        let said = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let attempts =
            |text: &str| text.matches("bgp 198.18.1.1 (AS 65000): cannot connect: no answer").count();
        // Two failed attempts: it says why, and tries again.
        wait_for(
            Duration::from_secs(30),
            || attempts(&said()) >= 2,
            &format!("{router:?}, {case}: two refusals"),
        );
        let text = said();
        match case {
            "wrong" => assert!(text.contains("this session is signed with TCP-MD5"), "{text}"),
            _ => assert!(text.contains("give it with --bgp-password-file"), "{text}"),
        }
        assert!(text.contains("trying again in"), "{text}");
        assert!(agent.try_wait().unwrap().is_none(), "{case}: the agent carries on");
        let routes = router_routes(&lab);
        assert!(!routes.contains(&format!("via {n1} ")), "{router:?}, {case}: n1 got in: {routes}");
        assert!(n2_routed(), "{router:?}, {case}: n2's route moved: {routes}");
        agent.kill().unwrap();
        agent.wait().unwrap();
    }

    // Nothing says the password: logs, status files, the agents' arguments.
    for entry in std::fs::read_dir(lab.state.dir().join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(!text.contains(&password), "{} says the password", path.display());
    }
    assert!(!n2_status().contains(&password));
    let pid = lab.state.agents["n2"].pid;
    let arguments = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&arguments).contains(&password));
    assert!(String::from_utf8_lossy(&arguments).contains("--bgp-password-file"));
}
