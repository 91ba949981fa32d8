//! The agent's loop: hold a lease, write the node file, and keep the kernel as the
//! cluster's leases call for: on every store change, and every resync interval (which
//! repairs drift: a route deleted by hand comes back).

use crate::node::{discover, NodeError};
use crate::reconcile::{reconcile, ReconcileError};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::lease::Lease;
use weft_core::node::{NodeFile, NodeSubnet, NODE_FILE_NAME};
use weft_core::plan::{plan, LocalNode};
use weft_kernel::Netlink;
use weft_store::{acquire, LeaseRequest, LeaseStore, StoreError};

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub store: String,
    pub node: String,
    pub iface: Option<String>,
    pub public_ip: Option<IpAddr>,
    pub state_dir: PathBuf,
    pub lease_ttl: Duration,
    pub resync: Duration,
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
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn log(node: &str, message: impl std::fmt::Display) {
    eprintln!("weft agent {node}: {message}");
}

/// Writes the node file atomically (a reader sees the old one or the new one).
fn write_node_file(options: &AgentOptions, file: &NodeFile) -> Result<(), AgentError> {
    let path = options.state_dir.join(NODE_FILE_NAME);
    let temporary = options.state_dir.join(format!(".{NODE_FILE_NAME}.{}", std::process::id()));
    let wrap = |source| AgentError::NodeFile { path: path.clone(), source };
    std::fs::create_dir_all(&options.state_dir).map_err(wrap)?;
    std::fs::write(&temporary, file.to_json()).map_err(wrap)?;
    std::fs::rename(&temporary, &path).map_err(wrap)
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
            Err(e @ (StoreError::NoNetwork | StoreError::Exhausted(_) | StoreError::Contended(_))) => {
                log(request.node, format_args!("{e}; trying again in 2 s"));
                pause(Duration::from_secs(2), stop);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Runs until `stop` is set. Leaves the kernel as it is on the way out: a restarted agent
/// finds it as planned and changes nothing, so no packet is lost.
pub fn run(options: &AgentOptions, stop: &AtomicBool) -> Result<(), AgentError> {
    let store = weft_store::open(&options.store)?;
    let mut netlink = Netlink::open()?;
    let uplink = discover(&mut netlink, options.iface.as_deref(), options.public_ip)?;
    log(
        &options.node,
        format_args!("uplink {} (MTU {}), reached at {}", uplink.name, uplink.mtu, uplink.public_ip),
    );
    let request = LeaseRequest { node: &options.node, public_ip: uplink.public_ip, ttl: options.lease_ttl };
    let Some(mut lease) = lease(store.as_ref(), &request, stop)? else { return Ok(()) };
    log(&options.node, format_args!("leased {}", lease.subnet));
    let renew_every = (options.lease_ttl / 3).max(Duration::from_secs(1));
    let mut renewed_at = Instant::now();
    let mut node_file: Option<NodeFile> = None;
    while !stop.load(Ordering::Relaxed) {
        if renewed_at.elapsed() >= renew_every {
            let renewed = match acquire(store.as_ref(), &request, now()) {
                Ok(renewed) => renewed,
                Err(e) => {
                    log(&options.node, format_args!("cannot renew the lease ({e}); trying again"));
                    pause(Duration::from_secs(1), stop);
                    continue;
                }
            };
            if renewed.subnet != lease.subnet {
                log(
                    &options.node,
                    format_args!("lease on {} was lost; now {}", lease.subnet, renewed.subnet),
                );
            }
            lease = renewed;
            renewed_at = Instant::now();
        }
        // The store may be away (etcd restarting, a partition): the kernel keeps what it
        // has, so pods keep talking, and the agent catches up when the store is back.
        let snapshot =
            store.network().and_then(|c| Ok((c.ok_or(StoreError::NoNetwork)?, store.leases(now())?)));
        let (config, (leases, revision)) = match snapshot {
            Ok(snapshot) => snapshot,
            Err(e) => {
                log(&options.node, format_args!("{e}; the kernel keeps its state, trying again in 1 s"));
                pause(Duration::from_secs(1), stop);
                continue;
            }
        };
        let local = LocalNode {
            name: options.node.clone(),
            subnet: lease.subnet,
            public_ip: uplink.public_ip,
            uplink: uplink.name.clone(),
            uplink_mtu: uplink.mtu,
            connected: uplink.connected.clone(),
        };
        let planned = plan(&local, &config, &leases, now());
        let wanted = NodeFile {
            node: Some(options.node.clone()),
            subnets: vec![NodeSubnet { subnet: lease.subnet, gateway: None }],
            mtu: Some(planned.pod_mtu),
            attach: None,
        };
        if node_file.as_ref() != Some(&wanted) {
            write_node_file(options, &wanted)?;
            node_file = Some(wanted);
        }
        match reconcile(&mut netlink, &planned) {
            Ok(changes) if !changes.is_empty() => log(
                &options.node,
                format_args!("{} change(s) for {} peer(s)", changes.count(), planned.peers.len()),
            ),
            Ok(_) => {}
            Err(ReconcileError::Kernel(e)) => {
                log(&options.node, format_args!("reconcile failed: {e}; retrying"))
            }
            Err(e) => log(&options.node, format_args!("reconcile failed: {e}")),
        }
        // Until the store changes, the resync interval passes, or it is time to renew.
        let wait_until =
            Instant::now() + options.resync.min(renew_every.saturating_sub(renewed_at.elapsed()));
        while !stop.load(Ordering::Relaxed) && Instant::now() < wait_until {
            let step = Duration::from_millis(500).min(wait_until - Instant::now());
            match store.wait_for_change(revision, step) {
                Ok(current) if current > revision => break,
                Ok(_) => {}
                Err(_) => break, // reported by the next pass
            }
        }
    }
    log(&options.node, "stopping; the kernel keeps its state for the next start");
    Ok(())
}
