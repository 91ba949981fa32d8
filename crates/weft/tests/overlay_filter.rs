//! The overlay takes VXLAN only from its peers: a stranger on a rack (a namespace of the
//! test's, cabled to the rack's switch, not a node) sends well-formed VXLAN with a forged pod
//! source to a node, and the pod never sees it, while peers' traffic flows; admitted by the
//! network's overlay sources, the same packets arrive; a node that leaves leaves the set; an
//! agent restart drops no peer packet. Needs root and nft.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::lab::{lab, ns, wait_for};
use support::{exec_in, ping_while};
use weft_lab::{Lab, Mode};

const STRANGER_IP: &str = "198.18.1.200";
/// A pod address no node leased: the stranger's forgery.
const FORGED_POD: &str = "10.244.250.1";
/// "weftstranger", the stranger's ping payload, found again by the capture.
const MARKER: &str = "77656674737472616e676572";

/// The stranger's namespace, removed on drop.
struct Stranger {
    name: String,
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(output.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A machine on rack 1 that is no node, with a VXLAN device aimed at `node` (see
/// [`vxlan_towards`]).
fn stranger(lab: &Lab, node: &str, pod: &str) -> Stranger {
    let stranger = Stranger { name: format!("{}stranger", support::unique_prefix()) };
    let rack = ns(lab, "rack1");
    ip(&["netns", "add", &stranger.name]);
    let s = stranger.name.as_str();
    ip(&["-n", &rack, "link", "add", "stranger0", "type", "veth", "peer", "name", "eth0", "netns", s]);
    ip(&["-n", &rack, "link", "set", "stranger0", "master", "br0", "up"]);
    ip(&["-n", s, "link", "set", "lo", "up"]);
    ip(&["-n", s, "addr", "add", &format!("{STRANGER_IP}/24"), "dev", "eth0"]);
    ip(&["-n", s, "link", "set", "eth0", "up"]);
    vxlan_towards(lab, s, node, pod);
    stranger
}

/// In namespace `from`, a VXLAN device of the cluster's VNI and port aimed at `node`'s VTEP
/// (its MAC as the inner destination), and a route to `pod` through it from a forged pod
/// address: well-formed VXLAN, as a node would send it.
fn vxlan_towards(lab: &Lab, from: &str, node: &str, pod: &str) {
    let status = lab.status_of(node).expect("the node's status");
    let lease = status.lease.expect("the node's lease").lease;
    let mac = lease.vtep_mac.expect("a VTEP MAC").to_string();
    let vtep = lease.public_ip.to_string();
    ip(&["-n", from, "link", "add", "vx0", "type", "vxlan", "id", "1", "dstport", "8472"]);
    ip(&["-n", from, "link", "set", "vx0", "up"]);
    ip(&["-n", from, "addr", "add", &format!("{FORGED_POD}/32"), "dev", "vx0"]);
    ip(&["-n", from, "route", "add", &format!("{pod}/32"), "dev", "vx0"]);
    ip(&["-n", from, "neigh", "add", pod, "lladdr", &mac, "dev", "vx0", "nud", "permanent"]);
    let fdb = Command::new("bridge")
        .args(["-n", from, "fdb", "append", &mac, "dev", "vx0", "dst", &vtep])
        .output()
        .unwrap();
    assert!(fdb.status.success(), "{}", String::from_utf8_lossy(&fdb.stderr));
    // The underlay's ARP first, so that no VXLAN packet waits for it (and is dropped).
    assert!(support::pings(from, &vtep), "{from} reaches {node}'s underlay address");
}

/// Frames that carry the marker, seen on any interface of namespace `ns_name` while
/// `during` runs (a packet socket: what the pod's kernel received).
fn seen_in(ns_name: &str, during: impl FnOnce()) -> usize {
    let marker: Vec<u8> =
        (0..MARKER.len() / 2).map(|i| u8::from_str_radix(&MARKER[2 * i..2 * i + 2], 16).unwrap()).collect();
    let path = format!("{}/{ns_name}", weft_kernel::netns::NETNS_RUN_DIR);
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let capture = {
        let (stop, ready) = (stop.clone(), ready.clone());
        std::thread::spawn(move || {
            weft_kernel::NetNs::open(path).unwrap().enter().unwrap();
            let protocol = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: a new socket; ownership passes to OwnedFd.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
            assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            // SAFETY: a valid socket and a timeval of the size passed.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&timeout as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            ready.store(true, Ordering::Relaxed);
            let (mut buffer, mut seen) = (vec![0u8; 65536], 0);
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the buffer outlives the call; its length is passed.
                let n =
                    unsafe { libc::recv(socket.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0) };
                if n > 0 && buffer[..n as usize].windows(marker.len()).any(|w| w == marker.as_slice()) {
                    seen += 1;
                }
            }
            seen
        })
    };
    while !ready.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
    during();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    capture.join().unwrap()
}

/// Five pings from namespace `from` to `pod`, marked.
fn marked_pings(from: &str, pod: &str) {
    let _ = Command::new("ip")
        .args(["netns", "exec", from, "ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", "-p", MARKER, pod])
        .output()
        .unwrap();
}

/// Whether `address` is in `node`'s overlay filter set (asked of nft, element by element:
/// the set merges neighbouring addresses into ranges).
fn admitted(lab: &Lab, node: &str, address: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &ns(lab, node), "nft", "get", "element", "ip", "weft_overlay", "peers"])
        .arg(format!("{{ {address} }}"))
        .output()
        .unwrap()
        .status
        .success()
}

fn dropped(lab: &Lab, node: &str) -> u64 {
    let counter = exec_in(&ns(lab, node), "nft", &["list", "counter", "ip", "weft_overlay", "dropped"], true);
    let packets = counter.split("packets ").nth(1).and_then(|rest| rest.split_whitespace().next());
    packets.and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no count in {counter}"))
}

/// `weft network init --force` on the lab's store: the lab's vxlan network, with these
/// overlay sources.
fn network_with_sources(lab: &Lab, sources: &[&str]) {
    let mut command = Command::new(support::WEFT);
    command.args(["network", "init", "--force", "--store", &lab.state.store_url, "--cidr", "10.244.0.0/16"]);
    command.args(["--backend", "vxlan"]);
    for source in sources {
        command.args(["--overlay-source", source]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn admits(lab: &Lab, node: &str, source: &str) -> bool {
    let source: ipnet::IpNet = source.parse().unwrap();
    lab.status_of(node).and_then(|s| s.overlay_sources).is_some_and(|sources| sources.contains(&source))
}

#[test]
fn the_overlay_takes_vxlan_only_from_its_peers() {
    let mut lab = lab(Mode::Vxlan, |spec| {
        spec.racks = 1;
        spec.nodes_per_rack = 2;
        spec.pods_per_node = 1;
    });
    let pod = lab.pod_address("n1-p1").unwrap().to_string();
    let (n1, n2) = (lab.address_of("n1").unwrap().to_string(), lab.address_of("n2").unwrap().to_string());
    wait_for(Duration::from_secs(10), || admitted(&lab, "n1", &n2), "n2 in n1's overlay filter");
    assert!(!admitted(&lab, "n1", STRANGER_IP));

    // Peers' traffic flows through the filter.
    let report = lab.check(weft_lab::lab::PROBE_TIMEOUT).unwrap();
    assert!(report.ok, "{}", weft_lab::report::render(&report, weft_lab::Style { color: false }));

    // The stranger's VXLAN, well-formed, from a forged pod address: dropped before the
    // device; the pod sees nothing.
    let stranger = stranger(&lab, "n1", &pod);
    let before = dropped(&lab, "n1");
    let seen = seen_in(&ns(&lab, "n1-p1"), || marked_pings(&stranger.name, &pod));
    assert_eq!(seen, 0, "the pod saw the stranger's packets");
    assert!(dropped(&lab, "n1") >= before + 5, "n1's filter dropped the stranger's five packets");

    // Admitted as an overlay source, the very same packets arrive (so the capture would have
    // seen them); taken out again, they stop.
    network_with_sources(&lab, &[&format!("{STRANGER_IP}/32")]);
    wait_for(
        Duration::from_secs(10),
        || admits(&lab, "n1", &format!("{STRANGER_IP}/32")),
        "the stranger admitted",
    );
    let seen = seen_in(&ns(&lab, "n1-p1"), || marked_pings(&stranger.name, &pod));
    assert!(seen >= 3, "admitted, the pod sees the stranger's pings: {seen}");
    network_with_sources(&lab, &[]);
    wait_for(
        Duration::from_secs(10),
        || !admits(&lab, "n1", &format!("{STRANGER_IP}/32")),
        "the stranger out",
    );
    assert_eq!(seen_in(&ns(&lab, "n1-p1"), || marked_pings(&stranger.name, &pod)), 0);

    // A node that leaves leaves the set; back, it is in again.
    lab.stop_agent("n2", libc::SIGTERM);
    wait_for(Duration::from_secs(20), || !admitted(&lab, "n1", &n2), "n2 out of n1's filter");
    // Meanwhile n2's table (as its agent left it) still lets n1 in. A pod on n1 sending VXLAN
    // to n2 now, while n2 is no peer of n1's, would pass masqueraded as n1 (and its flow carry
    // on once n2 is back): n1 drops it anyway, whoever it is aimed at.
    let n1_pod = ns(&lab, "n1-p1");
    let n2_pod_ip = lab.pod_address("n2-p1").unwrap().to_string();
    vxlan_towards(&lab, &n1_pod, "n2", &n2_pod_ip);
    let before = dropped(&lab, "n1");
    let seen = seen_in(&ns(&lab, "n2-p1"), || marked_pings(&n1_pod, &n2_pod_ip));
    assert_eq!(seen, 0, "a pod's VXLAN to a node that was no peer got in");
    assert!(dropped(&lab, "n1") >= before + 5, "n1's filter dropped its pod's five packets");
    ip(&["-n", &n1_pod, "link", "del", "vx0"]);
    lab.start_agent("n2").unwrap();
    wait_for(Duration::from_secs(20), || admitted(&lab, "n1", &n2), "n2 back in n1's filter");
    wait_for(Duration::from_secs(20), || admitted(&lab, "n2", &n1), "n1 in n2's filter");

    // A pod may not send VXLAN to a peer: masqueraded, it would pass as its node, which the
    // peer lets in. n2's pods_out chain drops it (each packet: none gets a flow going); n1-p1
    // sees nothing.
    let n2_pod = ns(&lab, "n2-p1");
    vxlan_towards(&lab, &n2_pod, "n1", &pod);
    let before = dropped(&lab, "n2");
    assert_eq!(seen_in(&ns(&lab, "n1-p1"), || marked_pings(&n2_pod, &pod)), 0, "a pod's VXLAN got in");
    assert!(dropped(&lab, "n2") >= before + 5, "n2's filter dropped its pod's five packets");
    ip(&["-n", &n2_pod, "link", "del", "vx0"]);

    // An agent restart drops no peer packet: the table stays through it. The pings go on
    // (5 s) past the new agent's first pass.
    let target = lab.pod_address("n2-p1").unwrap().to_string();
    let summary = ping_while(&ns(&lab, "n1-p1"), &target, 500, || {
        lab.stop_agent("n2", libc::SIGTERM);
        lab.start_agent("n2").unwrap();
        let pid = lab.state.agents["n2"].pid;
        wait_for(
            Duration::from_secs(4),
            || lab.status_of("n2").is_some_and(|s| s.pid == pid && s.overlay_sources.is_some()),
            "the new agent's filter",
        );
    });
    assert!(summary.contains("500 packets transmitted, 500 received"), "through n2's restart: {summary}");
}
