//! The speaker: one thread per peer, each opening a TCP session to the peer's port 179,
//! running the session (OPEN, KEEPALIVE, hold timer, UPDATEs) and, when it fails, saying
//! why and trying again after a backoff. Sessions are independent: one peer's trouble never
//! touches another's announcements. Announce-only: routes the peers send are read, checked
//! and dropped; weft installs nothing it learns by BGP, so no peer can hijack a node's
//! subnet.

use crate::auth::{set_md5, Password};
use crate::message::{Message, Notification};
use crate::session::{end_of_rib, open_for, react, updates, Local, Negotiated, Reaction, State};
use ipnet::IpNet;
use socket2::{Domain, Socket, Type};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BGP_PORT: u16 = 179;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// RFC 4271's hold time while waiting for the peer's OPEN.
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub port: u16,
    pub asn: u32,
    /// TCP-MD5 (RFC 2385): the password both ends sign every segment with.
    pub password: Option<Password>,
}

impl std::fmt::Display for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (AS {})", self.address, self.asn)
    }
}

#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub peer: PeerConfig,
    pub state: State,
    /// Why the last session ended or never began.
    pub last_error: Option<String>,
    /// What the peer was last told, while established.
    pub announced: Vec<IpNet>,
}

struct Shared {
    /// What every peer should know, with a version that moves on each change.
    wanted: Mutex<(u64, BTreeSet<IpNet>)>,
    stop: AtomicBool,
    status: Mutex<Vec<PeerStatus>>,
    log: Box<dyn Fn(String) + Send + Sync>,
}

pub struct Speaker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Speaker {
    /// Starts a session to each of `peers`, announcing nothing until [`Speaker::announce`].
    pub fn start(
        local: Local,
        peers: Vec<PeerConfig>,
        log: impl Fn(String) + Send + Sync + 'static,
    ) -> Speaker {
        let shared = Arc::new(Shared {
            wanted: Mutex::new((0, BTreeSet::new())),
            stop: AtomicBool::new(false),
            status: Mutex::new(
                peers
                    .iter()
                    .map(|peer| PeerStatus {
                        peer: peer.clone(),
                        state: State::Idle,
                        last_error: None,
                        announced: Vec::new(),
                    })
                    .collect(),
            ),
            log: Box::new(log),
        });
        let threads = peers
            .into_iter()
            .enumerate()
            .map(|(index, peer)| {
                let (shared, local) = (shared.clone(), local.clone());
                std::thread::spawn(move || keep_session(&shared, &local, &peer, index))
            })
            .collect();
        Speaker { shared, threads }
    }

    /// What every peer should know from now on (replacing what they knew).
    pub fn announce(&self, prefixes: impl IntoIterator<Item = IpNet>) {
        let prefixes: BTreeSet<IpNet> = prefixes.into_iter().map(|p| p.trunc()).collect();
        let mut wanted = self.shared.wanted.lock().expect("not poisoned");
        // Version 0 means "not said yet": the first call always counts, even if empty.
        if wanted.0 == 0 || wanted.1 != prefixes {
            *wanted = (wanted.0 + 1, prefixes);
        }
    }

    pub fn status(&self) -> Vec<PeerStatus> {
        self.shared.status.lock().expect("not poisoned").clone()
    }

    /// Withdraws everything, says goodbye (NOTIFICATION cease) and ends every session.
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn set_status(shared: &Shared, index: usize, edit: impl FnOnce(&mut PeerStatus)) {
    edit(&mut shared.status.lock().expect("not poisoned")[index]);
}

/// Keeps a session to `peer` up until the speaker stops, backing off between attempts.
fn keep_session(shared: &Shared, local: &Local, peer: &PeerConfig, index: usize) {
    let mut backoff = FIRST_BACKOFF;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut session = Session { shared, local, peer, index, established: false };
        let outcome = session.run();
        set_status(shared, index, |s| {
            s.state = State::Idle;
            s.announced.clear();
        });
        match outcome {
            Ok(()) => return,
            Err(why) => {
                if session.established {
                    backoff = FIRST_BACKOFF;
                }
                (shared.log)(format!("bgp {peer}: {why}; trying again in {} s", backoff.as_secs()));
                set_status(shared, index, |s| s.last_error = Some(why));
            }
        }
        let until = Instant::now() + backoff;
        while !shared.stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(TICK);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A TCP connection to the peer's BGP port, signed with its password if it has one.
fn connect(peer: &PeerConfig) -> Result<TcpStream, String> {
    let address = SocketAddr::new(peer.address, peer.port);
    let socket =
        Socket::new(Domain::for_address(address), Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
    if let Some(password) = &peer.password {
        set_md5(&socket, address, password).map_err(|e| format!("cannot set the TCP-MD5 password: {e}"))?;
    }
    match socket.connect_timeout(&address.into(), CONNECT_TIMEOUT) {
        Ok(()) => Ok(socket.into()),
        // A TCP-MD5 mismatch is silence: each kernel drops the other's unsigned or
        // wrongly signed segments, SYNs included.
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(match peer.password {
            Some(_) => format!(
                "cannot connect: no answer in {} s (this session is signed with TCP-MD5: a password \
                 that differs from the router's, or a router without one, looks like this)",
                CONNECT_TIMEOUT.as_secs()
            ),
            None => format!(
                "cannot connect: no answer in {} s (if the router expects a TCP-MD5 password, give it \
                 with --bgp-password-file)",
                CONNECT_TIMEOUT.as_secs()
            ),
        }),
        Err(e) => Err(format!("cannot connect: {e}")),
    }
}

struct Session<'a> {
    shared: &'a Shared,
    local: &'a Local,
    peer: &'a PeerConfig,
    index: usize,
    established: bool,
}

impl Session<'_> {
    fn state(&self, state: State) {
        set_status(self.shared, self.index, |s| s.state = state);
    }

    /// One session, from connecting to its end: `Ok` when the speaker stopped it, else why
    /// it ended.
    fn run(&mut self) -> Result<(), String> {
        self.state(State::Connect);
        let mut stream = connect(self.peer)?;
        // Next hop self: the address this session speaks from, which the peer can reach (an
        // IPv6 session's for IPv6 prefixes; IPv4 ones keep the configured IPv4 next hop).
        let mut local = self.local.clone();
        match stream.local_addr() {
            Ok(SocketAddr::V4(source)) => local.next_hop = *source.ip(),
            Ok(SocketAddr::V6(source)) => local.next_hop6 = Some(*source.ip()),
            Err(_) => {}
        }
        let local = &local;
        let io = |e: std::io::Error| format!("connection: {e}");
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(TICK)).map_err(io)?;
        stream.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(io)?;
        let mut negotiated: Option<Negotiated> = None;
        let send = |stream: &mut TcpStream, message: &Message, negotiated: &Option<Negotiated>| {
            let four = negotiated.is_some_and(|n| n.four_octet_as);
            stream.write_all(&message.encode(four)).map_err(|e| format!("send: {e}"))
        };
        send(&mut stream, &open_for(local), &negotiated)?;
        let mut state = State::OpenSent;
        self.state(state);
        let (mut last_received, mut last_sent) = (Instant::now(), Instant::now());
        let mut announced: BTreeSet<IpNet> = BTreeSet::new();
        let mut told_version = None;
        let mut ignored_routes = 0usize;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                if let (Some(restart_time), State::Established) = (local.graceful_restart, state) {
                    // Gone without a word: peers keep our routes, stale, for the restart time;
                    // the restarted agent announces them again.
                    (self.shared.log)(format!(
                        "bgp {}: closed for a graceful restart; the peer keeps our routes {restart_time} s",
                        self.peer
                    ));
                    return Ok(());
                }
                if state == State::Established && !announced.is_empty() {
                    let ipv6 = negotiated.is_some_and(|n| n.ipv6);
                    let withdraw = updates(local, self.peer.asn, &announced, &BTreeSet::new(), ipv6);
                    for message in &withdraw {
                        let _ = send(&mut stream, message, &negotiated);
                    }
                }
                let _ = send(&mut stream, &Message::Notification(Notification::shutdown()), &negotiated);
                (self.shared.log)(format!("bgp {}: withdrawn and closed", self.peer));
                return Ok(());
            }
            let hold = negotiated.map_or(OPEN_HOLD_TIME, |n| n.hold_time);
            if !hold.is_zero() && last_received.elapsed() > hold {
                let _ = send(&mut stream, &Message::Notification(Notification::new(4, 0)), &negotiated);
                return Err(format!("hold timer expired: nothing from the peer for {} s", hold.as_secs()));
            }
            if let Some(n) = negotiated.filter(|n| !n.keepalive.is_zero()) {
                if last_sent.elapsed() >= n.keepalive {
                    send(&mut stream, &Message::Keepalive, &negotiated)?;
                    last_sent = Instant::now();
                }
            }
            if state == State::Established {
                let (version, wanted) = self.shared.wanted.lock().expect("not poisoned").clone();
                // Nothing is said before the agent has said what to announce: an End-of-RIB
                // now would make a graceful-restart peer drop the routes it kept for us.
                let ipv6 = negotiated.is_some_and(|n| n.ipv6);
                let ipv4 = negotiated.is_some_and(|n| n.ipv4);
                // (Prefixes of a family the session does not carry are left out.)
                let wanted: BTreeSet<IpNet> =
                    wanted.into_iter().filter(|p| if p.addr().is_ipv4() { ipv4 } else { ipv6 }).collect();
                if version > 0 && told_version != Some(version) {
                    for message in updates(local, self.peer.asn, &announced, &wanted, ipv6) {
                        send(&mut stream, &message, &negotiated)?;
                    }
                    last_sent = Instant::now();
                    if announced != wanted {
                        (self.shared.log)(format!("bgp {}: announcing {}", self.peer, list(&wanted)));
                    }
                    if told_version.is_none() && local.graceful_restart.is_some() {
                        // End-of-RIB, per family: everything is said; the peer drops stale
                        // routes not announced again.
                        for message in end_of_rib(ipv4, ipv6) {
                            send(&mut stream, &message, &negotiated)?;
                        }
                    }
                    announced = wanted;
                    told_version = Some(version);
                    set_status(self.shared, self.index, |s| {
                        s.announced = announced.iter().copied().collect()
                    });
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Err("the peer closed the connection".into()),
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("receive: {e}")),
            }
            loop {
                let four = negotiated.is_some_and(|n| n.four_octet_as);
                let (message, used) = match Message::decode(&buffer, four) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => break,
                    Err(e) => {
                        let _ =
                            send(&mut stream, &Message::Notification(e.notification.clone()), &negotiated);
                        return Err(format!("the peer sent a {e}"));
                    }
                };
                buffer.drain(..used);
                last_received = Instant::now();
                match react(local, self.peer.asn, state, &message) {
                    Reaction::Close { notification, why } => {
                        if let Some(notification) = notification {
                            let _ = send(&mut stream, &Message::Notification(notification), &negotiated);
                        }
                        return Err(why);
                    }
                    Reaction::Accept(accepted) => {
                        negotiated = Some(accepted);
                        send(&mut stream, &Message::Keepalive, &negotiated)?;
                        last_sent = Instant::now();
                        state = State::OpenConfirm;
                        self.state(state);
                    }
                    Reaction::Establish => {
                        state = State::Established;
                        self.established = true;
                        self.state(state);
                        (self.shared.log)(format!("bgp {}: established", self.peer));
                    }
                    Reaction::Stay => {
                        if let Message::Update(update) = &message {
                            // Read and checked (decode did), never installed.
                            let first = update.nlri.first().map(|n| n.to_string()).or_else(|| {
                                update.mp_reach.as_ref().and_then(|r| r.nlri.first()).map(|n| n.to_string())
                            });
                            if let (0, Some(first)) = (ignored_routes, first) {
                                (self.shared.log)(format!(
                                    "bgp {}: ignoring routes the peer announces (first: {first}); weft installs no route learned by BGP",
                                    self.peer
                                ));
                            }
                            ignored_routes +=
                                update.nlri.len() + update.mp_reach.as_ref().map_or(0, |r| r.nlri.len());
                        }
                    }
                }
            }
        }
    }
}

fn list(prefixes: &BTreeSet<IpNet>) -> String {
    if prefixes.is_empty() {
        return "nothing".into();
    }
    prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}
