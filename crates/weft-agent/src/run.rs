//! The agent's loop: hold a lease, write the node file, and keep the kernel as the
//! cluster's leases call for: on every store change, and every resync interval (which
//! repairs drift: a route deleted by hand comes back).

use crate::metrics::Metrics;
use crate::node::{discover, NodeError};
use crate::reconcile::reconcile;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::lease::Lease;
use weft_core::network::Backend;
use weft_core::node::{NodeFile, NodeSubnet, NODE_FILE_NAME};
use weft_core::plan::{plan, LocalNode, PeerPath};
use weft_kernel::Netlink;
use weft_store::{acquire, LeaseRequest, LeaseStore, StoreError};

/// What the machine the agent runs on is to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Hosts pods: leases a subnet, writes the node file, masquerades.
    Node,
    /// Hosts no pods; joins the overlay and forwards between the physical network and the
    /// cluster, announcing the cluster CIDR to the routers by BGP.
    Gateway,
    /// Hosts no pods; joins the overlay to reach pods directly.
    Client,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Gateway => "gateway",
            Role::Client => "client",
        }
    }
}

/// The BGP speaker's settings: this machine's AS and the routers it talks to.
#[derive(Debug, Clone)]
pub struct BgpOptions {
    pub asn: u32,
    pub peers: Vec<weft_bgp::PeerConfig>,
    pub hold_time: u16,
    /// Seconds peers keep our routes after we stop (RFC 4724); None: stopping withdraws.
    pub graceful_restart: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub role: Role,
    /// Announce by BGP (a node its subnet, a gateway the cluster CIDR).
    pub bgp: Option<BgpOptions>,
    pub store: String,
    pub node: String,
    pub iface: Option<String>,
    pub public_ip: Option<IpAddr>,
    pub state_dir: PathBuf,
    pub lease_ttl: Duration,
    pub resync: Duration,
    /// SNAT pods' traffic leaving the cluster CIDR.
    pub masquerade: bool,
    /// Where to serve `/metrics` and `/healthz` (None: nowhere).
    pub metrics_address: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Kernel(#[from] weft_kernel::Error),
    #[error("write node file {path}: {source}")]
    NodeFile { path: PathBuf, source: std::io::Error },
    #[error("serve metrics on {address}: {source}")]
    Metrics { address: std::net::SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Options(String),
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn log(node: &str, message: impl std::fmt::Display) {
    eprintln!("weft agent {node}: {message}");
}

/// Writes a file of the state dir atomically (a reader sees the old one or the new one).
fn write_state_file(options: &AgentOptions, name: &str, text: &str) -> Result<(), AgentError> {
    let path = options.state_dir.join(name);
    let temporary = options.state_dir.join(format!(".{name}.{}", std::process::id()));
    let wrap = |source| AgentError::NodeFile { path: path.clone(), source };
    std::fs::create_dir_all(&options.state_dir).map_err(wrap)?;
    std::fs::write(&temporary, text).map_err(wrap)?;
    std::fs::rename(&temporary, &path).map_err(wrap)
}

/// File in the state dir where the agent says how things stand, for `weft status`.
pub const STATUS_FILE_NAME: &str = "status.json";

fn status_json(
    role: Role,
    lease: Option<&Lease>,
    planned: &weft_core::plan::Plan,
    outcome: &Result<usize, String>,
    bgp: &[weft_bgp::PeerStatus],
    local_asn: Option<u32>,
) -> serde_json::Value {
    let peers: Vec<serde_json::Value> = planned
        .peers
        .iter()
        .map(|peer| {
            let path = match &peer.path {
                PeerPath::Route => "route".to_string(),
                PeerPath::Vxlan => "vxlan".to_string(),
                PeerPath::Bgp => "bgp: through the routers".to_string(),
                PeerPath::L2 => "l2: on the segment".to_string(),
                PeerPath::Unreachable(why) => format!("unreachable: {why}"),
            };
            serde_json::json!({ "node": peer.node, "subnet": peer.subnet, "path": path })
        })
        .collect();
    let routes: Vec<serde_json::Value> = planned
        .routes
        .iter()
        .map(
            |r| serde_json::json!({ "destination": r.destination, "gateway": r.gateway, "device": r.device }),
        )
        .collect();
    let bgp: Vec<serde_json::Value> = bgp
        .iter()
        .map(|s| {
            serde_json::json!({
                "peer": s.peer.address, "asn": s.peer.asn, "localAsn": local_asn, "state": s.state.name(),
                "announced": s.announced, "lastError": s.last_error,
            })
        })
        .collect();
    serde_json::json!({
        "role": role.name(),
        "lease": lease,
        "bgp": bgp,
        "peers": peers,
        "plannedRoutes": routes,
        "lastReconcile": match outcome {
            Ok(changes) => serde_json::json!({ "at": now(), "changes": changes }),
            Err(error) => serde_json::json!({ "at": now(), "error": error }),
        },
    })
}

/// Sleeps up to `duration` in short steps, returning early when asked to stop.
fn pause(duration: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
    }
}

/// Gets the node's lease, waiting (and saying why) while there is no network config yet or
/// no free subnet. `None` if asked to stop first.
fn lease(
    store: &dyn LeaseStore,
    request: &LeaseRequest,
    stop: &AtomicBool,
) -> Result<Option<Lease>, AgentError> {
    while !stop.load(Ordering::Relaxed) {
        match acquire(store, request, now()) {
            Ok(lease) => return Ok(Some(lease)),
            // No network config yet, no free subnet, the store away: say so and wait.
            Err(e) => {
                log(request.node, format_args!("{e}; trying again in 2 s"));
                pause(Duration::from_secs(2), stop);
            }
        }
    }
    Ok(None)
}

/// Runs until `stop` is set. Leaves the kernel as it is on the way out: a restarted agent
/// finds it as planned and changes nothing, so no packet is lost. (BGP announcements are
/// withdrawn: a stopped speaker cannot keep them fresh.)
pub fn run(options: &AgentOptions, stop: &AtomicBool) -> Result<(), AgentError> {
    if options.role == Role::Gateway && options.bgp.is_none() {
        return Err(AgentError::Options(
            "a gateway announces the cluster CIDR to the routers by BGP: pass --asn and --bgp-peer".into(),
        ));
    }
    let store = weft_store::open(&options.store)?;
    let mut netlink = Netlink::open()?;
    let uplink = discover(&mut netlink, options.iface.as_deref(), options.public_ip)?;
    log(
        &options.node,
        format_args!(
            "{} on uplink {} (MTU {}), reached at {}",
            options.role.name(),
            uplink.name,
            uplink.mtu,
            uplink.public_ip
        ),
    );
    if options.role == Role::Gateway {
        // A gateway's job is forwarding between the routers and the overlay.
        weft_kernel::sysctl::ensure("net.ipv4.ip_forward", "1")?;
    }
    let speaker = match &options.bgp {
        Some(bgp) => Some(start_speaker(options, bgp, uplink.public_ip)?),
        None => None,
    };
    let outcome = serve(options, stop, store.as_ref(), &mut netlink, &uplink, speaker.as_ref());
    if let Some(speaker) = speaker {
        speaker.stop();
    }
    log(&options.node, "stopping; the kernel keeps its state for the next start");
    outcome
}

fn start_speaker(
    options: &AgentOptions,
    bgp: &BgpOptions,
    public_ip: IpAddr,
) -> Result<weft_bgp::Speaker, AgentError> {
    let IpAddr::V4(address) = public_ip else {
        return Err(AgentError::Options(format!(
            "BGP needs an IPv4 address to speak from; {public_ip} is not"
        )));
    };
    let local = weft_bgp::Local {
        asn: bgp.asn,
        router_id: address,
        hold_time: bgp.hold_time,
        next_hop: address,
        graceful_restart: bgp.graceful_restart,
    };
    let node = options.node.clone();
    Ok(weft_bgp::Speaker::start(local, bgp.peers.clone(), move |line| log(&node, line)))
}

/// What this machine announces by BGP now: a node its subnet while its lease lives, a
/// gateway the cluster CIDR. (IPv4 only.)
fn announcement(role: Role, lease: Option<&Lease>, cidr: ipnet::IpNet) -> Vec<ipnet::Ipv4Net> {
    let prefix = match (role, lease) {
        (Role::Gateway, _) => Some(cidr),
        (Role::Node, Some(lease)) if lease.expires_at > now() => Some(lease.subnet),
        _ => None,
    };
    match prefix {
        Some(ipnet::IpNet::V4(v4)) => vec![v4],
        _ => Vec::new(),
    }
}

fn serve(
    options: &AgentOptions,
    stop: &AtomicBool,
    store: &dyn LeaseStore,
    netlink: &mut Netlink,
    uplink: &crate::node::Uplink,
    speaker: Option<&weft_bgp::Speaker>,
) -> Result<(), AgentError> {
    let mut uplink = uplink.clone();
    // The subnet this node had before a restart, from its node file: pods may still use it.
    let previous = std::fs::read_to_string(options.state_dir.join(NODE_FILE_NAME))
        .ok()
        .and_then(|text| NodeFile::parse(&text).ok())
        .and_then(|file| file.subnets.first().map(|s| s.subnet));
    let mut request =
        LeaseRequest { node: &options.node, public_ip: uplink.public_ip, ttl: options.lease_ttl, previous };
    // Only a node leases a subnet; gateways and clients host no pods.
    let mut lease = match options.role {
        Role::Node => {
            let Some(lease) = lease(store, &request, stop)? else { return Ok(()) };
            request.previous = Some(lease.subnet);
            log(&options.node, format_args!("leased {}", lease.subnet));
            Some(lease)
        }
        Role::Gateway | Role::Client => None,
    };
    let renew_every = (options.lease_ttl / 3).max(Duration::from_secs(1));
    let mut renewed_at = Instant::now();
    let mut node_file: Option<NodeFile> = None;
    let mut warned_no_bgp: Option<()> = None;
    let mut masqueraded: Option<(ipnet::IpNet, Instant)> = None;
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = options.metrics_address {
        let bound = crate::metrics::serve(address, metrics.clone())
            .map_err(|source| AgentError::Metrics { address, source })?;
        log(&options.node, format_args!("metrics on http://{bound}/metrics"));
    }
    while !stop.load(Ordering::Relaxed) {
        if let Some(held) = lease.as_mut().filter(|_| renewed_at.elapsed() >= renew_every) {
            let renewed = match acquire(store, &request, now()) {
                Ok(renewed) => renewed,
                Err(e) => {
                    metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                    metrics.healthy.store(false, Ordering::Relaxed);
                    log(&options.node, format_args!("cannot renew the lease ({e}); trying again"));
                    if let Some(speaker) = speaker {
                        // A lease that lapsed may be another node's soon: stop announcing it.
                        speaker.announce(announcement(options.role, Some(held), ipnet::IpNet::default()));
                    }
                    pause(Duration::from_secs(1), stop);
                    continue;
                }
            };
            if renewed.subnet != held.subnet {
                log(&options.node, format_args!("lease on {} was lost; now {}", held.subnet, renewed.subnet));
            }
            *held = renewed;
            request.previous = Some(held.subnet);
            renewed_at = Instant::now();
        }
        // The store may be away (etcd restarting, a partition): the kernel keeps what it
        // has, so pods keep talking, and the agent catches up when the store is back.
        let snapshot =
            store.network().and_then(|c| Ok((c.ok_or(StoreError::NoNetwork)?, store.leases(now())?)));
        let (config, (leases, revision)) = match snapshot {
            Ok(snapshot) => snapshot,
            Err(e) => {
                metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                metrics.healthy.store(false, Ordering::Relaxed);
                log(&options.node, format_args!("{e}; the kernel keeps its state, trying again in 1 s"));
                pause(Duration::from_secs(1), stop);
                continue;
            }
        };
        if config.backend == Backend::L2 {
            // Every pass: a move an earlier run left half-done is finished.
            let port = uplink.port.clone().unwrap_or_else(|| uplink.name.clone());
            let moved = match crate::l2::take_over(netlink, &port) {
                Ok(changes) => changes,
                Err(e) => {
                    // Nothing half-done is unsafe (each step keeps a way out); try again.
                    log(&options.node, format_args!("{e}; trying again in 1 s"));
                    pause(Duration::from_secs(1), stop);
                    continue;
                }
            };
            if moved > 0 {
                uplink = discover(netlink, Some(weft_core::plan::L2_BRIDGE), options.public_ip)?;
                log(
                    &options.node,
                    format_args!(
                        "l2: {port} is now a port of {}, which holds its addresses and routes",
                        uplink.name
                    ),
                );
            }
        }
        let l2 = config.backend == Backend::L2;
        let local = LocalNode {
            name: options.node.clone(),
            subnet: lease.as_ref().map(|l| l.subnet),
            public_ip: uplink.public_ip,
            uplink: uplink.name.clone(),
            uplink_mtu: uplink.mtu,
            connected: uplink.connected.clone(),
        };
        let planned = plan(&local, &config, &leases);
        if let Some(lease) = &lease {
            // L2 pods join the uplink's bridge and live on the segment, its router their gateway.
            let wanted = NodeFile {
                node: Some(options.node.clone()),
                subnets: vec![NodeSubnet {
                    subnet: lease.subnet,
                    gateway: config.gateway.filter(|_| l2),
                    segment: l2.then_some(config.cidr),
                }],
                mtu: Some(planned.pod_mtu),
                attach: l2.then_some(weft_core::AttachMode::Bridge),
                bridge: l2.then(|| weft_core::plan::L2_BRIDGE.to_string()),
            };
            if node_file.as_ref() != Some(&wanted) {
                write_state_file(options, NODE_FILE_NAME, &wanted.to_json())?;
                node_file = Some(wanted);
            }
            // Re-asserted every resync interval: a firewall reload may have removed the table.
            let masquerade_due = masqueraded
                .as_ref()
                .is_none_or(|(cidr, at)| *cidr != config.cidr || at.elapsed() >= options.resync);
            // L2 pods hold addresses of the physical segment: nothing to hide.
            if options.masquerade && masquerade_due && !l2 {
                match crate::masquerade::apply(&config.cidr) {
                    Ok(()) => masqueraded = Some((config.cidr, Instant::now())),
                    Err(e) => log(&options.node, format_args!("masquerade: {e}")),
                }
            }
        }
        let started = Instant::now();
        let outcome = reconcile(netlink, &planned).map(|c| c.count()).map_err(|e| e.to_string());
        if let Some(device) = planned.vxlan.as_ref().filter(|_| outcome.is_ok()) {
            // Gateways and clients send into the overlay from outside the cluster; pods answer
            // by the node's ordinary routes. Strict reverse-path filtering would drop what
            // arrives: loose on the tunnel (the kernel takes the larger of all and the device).
            let key = format!("net/ipv4/conf/{}/rp_filter", device.name);
            if let Err(e) = weft_kernel::sysctl::ensure(&key, "2") {
                log(&options.node, format_args!("{e}"));
            }
        }
        if let Some(speaker) = speaker {
            // A gateway that cannot forward into the overlay must not draw traffic: it
            // withdraws, and the routers use the others.
            let serving = options.role != Role::Gateway
                || (outcome.is_ok() && matches!(config.backend, Backend::Vxlan | Backend::Auto));
            let prefixes =
                if serving { announcement(options.role, lease.as_ref(), config.cidr) } else { Vec::new() };
            speaker.announce(prefixes);
        } else if config.backend == Backend::Bgp && options.role == Role::Node && outcome.is_ok() {
            warned_no_bgp.get_or_insert_with(|| {
                log(
                    &options.node,
                    "the bgp backend, but no --asn/--bgp-peer: nothing announces this node's subnet",
                );
            });
        }
        let micros = started.elapsed().as_micros() as u64;
        metrics.reconciles.fetch_add(1, Ordering::Relaxed);
        metrics.reconcile_micros_total.fetch_add(micros, Ordering::Relaxed);
        metrics.last_reconcile_micros.store(micros, Ordering::Relaxed);
        metrics.leases.store(leases.len() as u64, Ordering::Relaxed);
        metrics.peers.store(planned.peers.len() as u64, Ordering::Relaxed);
        let unreachable = planned.peers.iter().filter(|p| matches!(p.path, PeerPath::Unreachable(_))).count();
        metrics.unreachable_peers.store(unreachable as u64, Ordering::Relaxed);
        metrics.healthy.store(outcome.is_ok(), Ordering::Relaxed);
        match &outcome {
            Ok(0) => {}
            Ok(changes) => {
                metrics.changes.fetch_add(*changes as u64, Ordering::Relaxed);
                log(&options.node, format_args!("{changes} change(s) for {} peer(s)", planned.peers.len()))
            }
            Err(e) => {
                metrics.reconcile_errors.fetch_add(1, Ordering::Relaxed);
                log(&options.node, format_args!("reconcile failed: {e}; retrying"))
            }
        }
        let bgp = speaker.map(|s| s.status()).unwrap_or_default();
        let local_asn = options.bgp.as_ref().map(|b| b.asn);
        let status = status_json(options.role, lease.as_ref(), &planned, &outcome, &bgp, local_asn);
        if let Err(e) = write_state_file(options, STATUS_FILE_NAME, &status.to_string()) {
            log(&options.node, e);
        }
        // Until the store changes, the resync interval passes, or it is time to renew.
        let renew_in =
            if lease.is_some() { renew_every.saturating_sub(renewed_at.elapsed()) } else { options.resync };
        let wait_until = Instant::now() + options.resync.min(renew_in);
        while !stop.load(Ordering::Relaxed) && Instant::now() < wait_until {
            let step = Duration::from_millis(500).min(wait_until - Instant::now());
            match store.wait_for_change(revision, step) {
                Ok(current) if current != revision => break,
                Ok(_) => {}
                Err(_) => break, // reported by the next pass
            }
        }
    }
    Ok(())
}
