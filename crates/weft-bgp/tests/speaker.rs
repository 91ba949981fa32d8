//! The speaker against peers that misbehave, on loopback. Real BIRD and FRR sessions are in
//! the lab's tests; these peers are scripted because no real router sends garbage, refuses
//! with a chosen NOTIFICATION or goes silent on cue. Each peer is our own codec on a
//! TcpListener at 127.0.0.1.

use ipnet::{IpNet, Ipv4Net};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_bgp::message::{Message, Notification, Open, Update, ORIGIN_IGP};
use weft_bgp::{Local, PeerConfig, Speaker, State};

const PEER_ASN: u32 = 65000;

fn local() -> Local {
    Local {
        asn: 65100,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        hold_time: 9,
        next_hop: Ipv4Addr::new(10, 0, 0, 1),
        next_hop6: None,
        graceful_restart: None,
    }
}

fn subnet() -> Ipv4Net {
    "10.244.7.0/24".parse().unwrap()
}

/// A scripted peer: a listener, and the session it accepts.
struct Peer {
    listener: TcpListener,
}

impl Peer {
    fn new() -> Peer {
        Peer { listener: TcpListener::bind("127.0.0.1:0").unwrap() }
    }

    /// A peer at an IPv6 address (the loopback ::1).
    fn new6() -> Peer {
        Peer { listener: TcpListener::bind("[::1]:0").unwrap() }
    }

    fn config(&self) -> PeerConfig {
        PeerConfig {
            address: self.listener.local_addr().unwrap().ip(),
            port: self.listener.local_addr().unwrap().port(),
            asn: PEER_ASN,
            password: None,
        }
    }

    fn accept(&self) -> Session {
        let (stream, _) = self.listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Session { stream, buffer: Vec::new() }
    }
}

struct Session {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Session {
    /// The next message from the speaker; None when it closed the connection.
    fn receive(&mut self) -> Option<Message> {
        loop {
            if let Some((message, used)) = Message::decode(&self.buffer, true).unwrap() {
                self.buffer.drain(..used);
                return Some(message);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn send(&mut self, message: &Message) {
        self.stream.write_all(&message.encode(true)).unwrap();
    }

    fn open(asn: u32) -> Message {
        Message::Open(Open {
            asn,
            hold_time: 3,
            router_id: Ipv4Addr::new(10, 0, 0, 254),
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: true,
            graceful_restart: None,
        })
    }

    /// Answers the speaker's OPEN and returns what it announces once established.
    fn establish(&mut self) -> Update {
        assert!(matches!(self.receive(), Some(Message::Open(open)) if open.asn == 65100));
        self.send(&Session::open(PEER_ASN));
        self.send(&Message::Keepalive);
        loop {
            match self.receive() {
                Some(Message::Keepalive) => continue,
                Some(Message::Update(update)) => return update,
                other => panic!("expected an UPDATE, got {other:?}"),
            }
        }
    }
}

/// A speaker with a log we can read.
fn speaker(peers: Vec<PeerConfig>) -> (Speaker, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = lines.clone();
    let speaker = Speaker::start(local(), peers, move |line| log.lock().unwrap().push(line));
    speaker.announce([IpNet::V4(subnet())]);
    (speaker, lines)
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn logged(lines: &Mutex<Vec<String>>, text: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.contains(text))
}

#[test]
fn announces_with_ebgp_attributes_and_withdraws_on_stop() {
    let peer = Peer::new();
    let (speaker, _) = speaker(vec![peer.config()]);
    let mut session = peer.accept();
    let update = session.establish();
    assert_eq!(update.nlri, [subnet()]);
    assert_eq!(
        (update.origin, update.as_path.clone(), update.next_hop),
        (Some(ORIGIN_IGP), vec![65100], Some(Ipv4Addr::LOCALHOST)), // next hop self: the session's own address
    );
    wait_until("established", || speaker.status()[0].state == State::Established);
    // A new lease: the old subnet is withdrawn, the new one announced.
    let next: Ipv4Net = "10.244.9.0/24".parse().unwrap();
    speaker.announce([IpNet::V4(next)]);
    let mut seen = (false, false);
    while seen != (true, true) {
        match session.receive() {
            Some(Message::Update(u)) if u.withdrawn == [subnet()] => seen.0 = true,
            Some(Message::Update(u)) if u.nlri == [next] => seen.1 = true,
            Some(Message::Keepalive) => {}
            other => panic!("{other:?}"),
        }
    }
    std::thread::spawn(move || speaker.stop());
    let mut goodbye = Vec::new();
    while let Some(message) = session.receive() {
        goodbye.push(message);
    }
    assert!(goodbye.iter().any(|m| matches!(m, Message::Update(u) if u.withdrawn == [next])), "{goodbye:?}");
    assert_eq!(goodbye.last(), Some(&Message::Notification(Notification::shutdown())));
}

#[test]
fn garbage_gets_a_notification_a_backoff_and_leaves_the_other_session_alone() {
    let (bad, good) = (Peer::new(), Peer::new());
    let (speaker, log) = speaker(vec![bad.config(), good.config()]);
    let mut healthy = good.accept();
    assert_eq!(healthy.establish().nlri, [subnet()]);

    let mut broken = bad.accept();
    assert!(matches!(broken.receive(), Some(Message::Open(_))));
    broken.stream.write_all(&[0u8; 19]).unwrap(); // a header without its marker
    assert_eq!(broken.receive(), Some(Message::Notification(Notification::new(1, 1))));
    assert_eq!(broken.receive(), None, "the speaker closed the connection");
    wait_until("the log line", || {
        logged(&log, "the peer sent a malformed message: the marker is not all ones")
    });
    // it tries again after its backoff, and the healthy session never noticed
    let started = Instant::now();
    let mut again = bad.accept();
    assert!(started.elapsed() >= Duration::from_millis(500), "backed off before trying again");
    assert!(matches!(again.receive(), Some(Message::Open(_))));
    let status = speaker.status();
    assert_eq!(status[1].state, State::Established);
    assert_eq!(status[1].announced, [IpNet::V4(subnet())]);
    assert!(status[0].last_error.as_deref().unwrap().contains("malformed"));
}

#[test]
fn a_wrong_asn_and_a_peers_notification_are_named_in_the_log() {
    let peer = Peer::new();
    let (_speaker, log) = speaker(vec![peer.config()]);
    let mut first = peer.accept();
    assert!(matches!(first.receive(), Some(Message::Open(_))));
    first.send(&Session::open(65099));
    assert!(matches!(first.receive(), Some(Message::Notification(n)) if (n.code, n.subcode) == (2, 2)));
    wait_until("the refusal in the log", || {
        logged(&log, "refused the peer's OPEN (AS 65099") && logged(&log, "bad peer AS")
    });

    let mut second = peer.accept();
    assert!(matches!(second.receive(), Some(Message::Open(_))));
    second.send(&Message::Notification(Notification::new(6, 4)));
    wait_until("the peer's reason in the log", || {
        logged(&log, "the peer closed the session: cease: administrative reset (6/4)")
    });
}

#[test]
fn routes_a_peer_announces_are_read_and_never_taken() {
    let peer = Peer::new();
    let (speaker, log) = speaker(vec![peer.config()]);
    let mut session = peer.accept();
    session.establish();
    // a peer claiming a node's subnet, and another pod subnet
    session.send(&Message::Update(Update {
        origin: Some(ORIGIN_IGP),
        as_path: vec![PEER_ASN],
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 254)),
        nlri: vec![subnet(), "10.244.0.0/16".parse().unwrap()],
        ..Update::default()
    }));
    wait_until("the log line", || logged(&log, "ignoring routes the peer announces (first: 10.244.7.0/24)"));
    session.send(&Message::Keepalive);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        speaker.status()[0].state,
        State::Established,
        "a route offered is not a reason to drop the session"
    );
}

#[test]
fn a_silent_peer_and_one_that_never_answers_cost_nothing_but_their_own_session() {
    let silent = Peer::new();
    // A port nobody listens on: connecting is refused, again and again.
    let nobody = PeerConfig {
        port: TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
        ..silent.config()
    };
    let good = Peer::new();
    let (speaker, log) = speaker(vec![silent.config(), nobody, good.config()]);
    let _quiet = silent.accept(); // accepts, says nothing
    let mut healthy = good.accept();
    healthy.establish();
    wait_until("the refusals in the log", || logged(&log, "cannot connect"));
    let status = speaker.status();
    assert_eq!((status[0].state, status[2].state), (State::OpenSent, State::Established));
    // stopping does not wait for any of them
    let started = Instant::now();
    speaker.stop();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_peer_gone_quiet_after_establishing_is_dropped_when_the_hold_time_runs_out() {
    let peer = Peer::new();
    let (speaker, log) = speaker(vec![peer.config()]);
    let mut session = peer.accept();
    session.establish(); // the peer offered a 3 s hold time, then says nothing more
    let started = Instant::now();
    let mut last = None;
    while let Some(message) = session.receive() {
        if let Message::Notification(n) = &message {
            last = Some(n.clone());
        }
    }
    assert_eq!(last, Some(Notification::new(4, 0)), "hold timer expired");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6), "{waited:?}");
    wait_until("the log line", || logged(&log, "hold timer expired: nothing from the peer for 3 s"));
    assert_ne!(speaker.status()[0].state, State::Established);
}

#[test]
fn with_graceful_restart_a_stop_leaves_the_routes_with_the_peer() {
    let peer = Peer::new();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = lines.clone();
    let local = Local { graceful_restart: Some(60), ..local() };
    let speaker = Speaker::start(local, vec![peer.config()], move |line| log.lock().unwrap().push(line));
    speaker.announce([IpNet::V4(subnet())]);
    let mut session = peer.accept();
    let Some(Message::Open(open)) = session.receive() else { panic!("an OPEN first") };
    let gr = open.graceful_restart.expect("the graceful restart capability");
    assert_eq!((gr.restart_time, gr.forwarding_kept), (60, true));
    session.send(&Session::open(PEER_ASN));
    session.send(&Message::Keepalive);
    let mut updates = Vec::new();
    while updates.len() < 2 {
        match session.receive() {
            Some(Message::Update(update)) => updates.push(update),
            Some(Message::Keepalive) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(updates[0].nlri, [subnet()]);
    assert_eq!(updates[1], Update::default(), "End-of-RIB after the announcement");
    std::thread::spawn(move || speaker.stop());
    let mut after = Vec::new();
    while let Some(message) = session.receive() {
        after.push(message);
    }
    assert!(
        after.iter().all(|m| matches!(m, Message::Keepalive)),
        "no withdrawal, no NOTIFICATION: the peer keeps our routes as stale: {after:?}"
    );
    assert!(logged(&lines, "closed for a graceful restart; the peer keeps our routes 60 s"));
}

/// A dual-stack node on one IPv4 session: the OPEN offers IPv6 unicast, the IPv6 subnet goes
/// in MP_REACH_NLRI with the node's IPv6 address as next hop, each family gets its
/// End-of-RIB, and a new IPv6 subnet withdraws the old one in MP_UNREACH_NLRI.
#[test]
fn ipv6_subnets_ride_the_same_session_in_the_multiprotocol_attributes() {
    let peer = Peer::new();
    let local =
        Local { graceful_restart: Some(60), next_hop6: Some("2001:db8:1::11".parse().unwrap()), ..local() };
    let speaker = Speaker::start(local, vec![peer.config()], |_| {});
    let v6: IpNet = "fd00:10:244:7::/64".parse().unwrap();
    speaker.announce([IpNet::V4(subnet()), v6]);
    let mut session = peer.accept();
    let Some(Message::Open(open)) = session.receive() else { panic!("an OPEN first") };
    assert!(open.ipv4_unicast && open.ipv6_unicast);
    session.send(&Session::open(PEER_ASN));
    session.send(&Message::Keepalive);
    let mut updates = Vec::new();
    while updates.len() < 4 {
        match session.receive() {
            Some(Message::Update(update)) => updates.push(update),
            Some(Message::Keepalive) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(updates[0].nlri, [subnet()]);
    let reach = updates[1].mp_reach.clone().expect("IPv6 in MP_REACH_NLRI");
    assert_eq!((reach.next_hop.to_string(), reach.nlri.len()), ("2001:db8:1::11".into(), 1));
    assert_eq!(IpNet::V6(reach.nlri[0]), v6);
    assert_eq!(updates[2], Update::default(), "IPv4's End-of-RIB");
    assert_eq!(updates[3], Update { mp_unreach: Some(vec![]), ..Update::default() }, "IPv6's End-of-RIB");
    wait_until("both announced in the status", || speaker.status()[0].announced.len() == 2);

    let moved: IpNet = "fd00:10:244:9::/64".parse().unwrap();
    speaker.announce([IpNet::V4(subnet()), moved]);
    let mut seen = (false, false);
    while seen != (true, true) {
        match session.receive() {
            Some(Message::Update(u)) if u.mp_unreach.as_ref().is_some_and(|w| w.len() == 1) => {
                assert_eq!(IpNet::V6(u.mp_unreach.unwrap()[0]), v6);
                seen.0 = true;
            }
            Some(Message::Update(u)) if u.mp_reach.is_some() => {
                assert_eq!(IpNet::V6(u.mp_reach.unwrap().nlri[0]), moved);
                seen.1 = true;
            }
            Some(Message::Keepalive) => {}
            other => panic!("{other:?}"),
        }
    }
    std::thread::spawn(move || speaker.stop());
}

/// A peer that does not offer IPv6 is told IPv4 only: nothing it cannot read.
#[test]
fn a_peer_without_ipv6_hears_ipv4_only() {
    let peer = Peer::new();
    let local = Local { next_hop6: Some("2001:db8:1::11".parse().unwrap()), ..local() };
    let speaker = Speaker::start(local, vec![peer.config()], |_| {});
    speaker.announce([IpNet::V4(subnet()), "fd00:10:244:7::/64".parse().unwrap()]);
    let mut session = peer.accept();
    assert!(matches!(session.receive(), Some(Message::Open(_))));
    let Message::Open(mut open) = Session::open(PEER_ASN) else { unreachable!() };
    open.ipv6_unicast = false;
    session.send(&Message::Open(open));
    session.send(&Message::Keepalive);
    let mut updates = Vec::new();
    // (Within the 3 s hold time: this peer sends no keepalives.)
    let deadline = Instant::now() + Duration::from_millis(1500);
    session.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while Instant::now() < deadline {
        if let Some(Message::Update(update)) = session.receive() {
            updates.push(update);
        }
    }
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!((updates[0].nlri.clone(), updates[0].mp_reach.clone()), (vec![subnet()], None));
    assert_eq!(speaker.status()[0].announced, [IpNet::V4(subnet())]);
    std::thread::spawn(move || speaker.stop());
}

/// A session to a router's IPv6 address (an IPv6-only node): IPv6 prefixes go with the
/// address the session speaks from as next hop, no IPv6 next hop configured.
#[test]
fn a_session_to_an_ipv6_address_announces_with_its_own_address_as_next_hop() {
    let peer = Peer::new6();
    let speaker = Speaker::start(local(), vec![peer.config()], |_| {});
    let v6: IpNet = "fd00:10:244:7::/64".parse().unwrap();
    speaker.announce([v6]);
    let mut session = peer.accept();
    let update = session.establish();
    let reach = update.mp_reach.expect("IPv6 in MP_REACH_NLRI");
    assert_eq!((reach.next_hop.to_string(), IpNet::V6(reach.nlri[0])), ("::1".to_string(), v6));
    assert!(update.nlri.is_empty());
    assert_eq!(speaker.status()[0].peer.address.to_string(), "::1");
    std::thread::spawn(move || speaker.stop());
}
