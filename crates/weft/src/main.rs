//! The one weft binary. With any of the CNI variables set it is the CNI plugin, and does
//! nothing else first: no argument parsing, no threads, so a pod's ADD costs only what it
//! must. (Any of them, not only `CNI_COMMAND`: a runtime that forgot `CNI_COMMAND` gets the
//! spec's error object, not a usage text it cannot read.)

#[cfg(test)]
mod deploy_check;
mod install_cni;
mod lab_cli;
mod pods;
mod trace_cli;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use weft_core::network::{Backend, NetworkConfig};
use weft_core::status::{Role, StatusFile, STATUS_FILE_NAME};

#[derive(Parser)]
#[command(name = "weft", version, about = "weft: a pod network")]
struct Cli {
    /// How much to log (to stderr): error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: tracing::level_filters::LevelFilter,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// The cluster network's configuration.
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Run the node agent: lease this node a pod subnet and keep the kernel in step.
    Agent {
        /// The cluster's store: sqlite:PATH, or etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE].
        #[arg(long)]
        store: String,
        /// This node's name in the store.
        #[arg(long)]
        node: String,
        /// The uplink (default: the interface of the default route).
        #[arg(long)]
        iface: Option<String>,
        /// The address other nodes reach this one at (default: the uplink's first).
        #[arg(long)]
        public_ip: Option<IpAddr>,
        /// Where the node file for the CNI plugin goes.
        #[arg(long, default_value = weft_cni::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Seconds a lease lives without renewal (renewed every third of it; at least 3).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..))]
        lease_ttl: u64,
        /// Seconds between full resyncs that repair drift.
        #[arg(long, default_value_t = 10)]
        resync: u64,
        /// Do not SNAT pods' traffic that leaves the cluster CIDR.
        #[arg(long)]
        no_masquerade: bool,
        /// Where to serve /metrics, /healthz and /readyz ("off": nowhere).
        #[arg(long, default_value = "127.0.0.1:9473")]
        metrics_address: String,
        /// node: hosts pods; gateway: forwards between the physical network and the overlay,
        /// announcing the cluster CIDR by BGP; client: joins the overlay to reach pods.
        #[arg(long, value_enum, default_value = "node")]
        role: RoleArg,
        /// This machine's AS number, for BGP.
        #[arg(long, requires = "bgp_peer")]
        asn: Option<u32>,
        /// A router to announce to: IP[:ASN] (without ASN: iBGP, our own AS). Repeatable.
        #[arg(long, requires = "asn")]
        bgp_peer: Vec<String>,
        /// BGP hold time offered to peers, in seconds (0, or at least 3).
        #[arg(long, default_value_t = 9)]
        bgp_hold_time: u16,
        /// Graceful restart: peers keep this node's routes this many seconds after the agent
        /// stops, so a restart loses no traffic (without it, stopping withdraws them).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4095))]
        bgp_graceful_restart: Option<u16>,
        /// Write the CNI network config list into this directory (the runtime's, e.g.
        /// /etc/cni/net.d) once this node can wire pods: a lease held, the node file written.
        /// The node turns Ready then. Never removed.
        #[arg(long)]
        cni_conf_dir: Option<PathBuf>,
        /// The list to write there (default: weft then portmap, as 10-weft.conflist).
        #[arg(long, requires = "cni_conf_dir")]
        cni_conflist: Option<PathBuf>,
        /// Where to write sysctls (rp_filter on the VXLAN device): a container without
        /// privileges has /proc/sys read-only and mounts the host's /proc/sys/net elsewhere.
        #[arg(long, default_value = "/proc/sys")]
        proc_sys: PathBuf,
    },
    /// Install the CNI plugin on this node: this binary into the CNI bin dir, atomically, and
    /// with --conf-dir the network config list (a DaemonSet leaves the list to the agent's
    /// --cni-conf-dir, so that the node turns Ready only once pods can be wired).
    InstallCni {
        /// The runtime's CNI bin dir (e.g. /opt/cni/bin).
        #[arg(long)]
        bin_dir: PathBuf,
        /// Write the network config list into this directory too (e.g. /etc/cni/net.d).
        #[arg(long)]
        conf_dir: Option<PathBuf>,
        /// The list to write (default: weft then portmap, as 10-weft.conflist).
        #[arg(long, requires = "conf_dir")]
        conflist: Option<PathBuf>,
        /// The agent's state dir, named in the default list when it is not /run/weft.
        #[arg(long, default_value = weft_cni::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Another plugin binary to install beside weft, when the bin dir has none of that
        /// name (the image's portmap, for nodes without the reference plugins). Repeatable.
        #[arg(long)]
        plugin: Vec<PathBuf>,
    },
    /// This node's lease, its peers, and whether the kernel holds the planned routes.
    Status {
        #[arg(long, default_value = weft_cni::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// The CNI plugin's IPAM store (its `dataDir`), to list this node's pods.
        #[arg(long, default_value = weft_cni::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// A packet's path hop by hop, from the kernel's own tables: in a lab (FROM TO), or on
    /// this node (TO, the part of the path the node can see).
    Trace {
        /// The lab: FROM is a member (pod, node, gateway, router, outside), TO a member or an address.
        #[arg(long)]
        lab: Option<String>,
        /// On a node: its agent's state dir.
        #[arg(long, conflicts_with = "lab")]
        state_dir: Option<PathBuf>,
        /// FROM TO (with --lab) or TO (with --state-dir).
        args: Vec<String>,
        /// Send a real probe and catch it at every hop (packet sockets).
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
    /// Whole clusters of network namespaces on this machine: `weft lab demo` to start.
    Lab {
        #[command(subcommand)]
        command: lab_cli::LabCommand,
    },
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Write the network config into the store.
    Init {
        #[arg(long)]
        store: String,
        #[arg(long)]
        cidr: ipnet::IpNet,
        /// Prefix length of each node's subnet (default: 24 for IPv4, 64 for IPv6).
        #[arg(long)]
        subnet_len: Option<u8>,
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        #[arg(long, default_value_t = weft_core::network::DEFAULT_VNI)]
        vni: u32,
        #[arg(long, default_value_t = weft_core::network::DEFAULT_VXLAN_PORT)]
        port: u16,
        /// Change a config that nodes already use.
        #[arg(long)]
        force: bool,
        /// l2: the segment's router, the pods' gateway.
        #[arg(long)]
        gateway: Option<IpAddr>,
        /// A range of the CIDR never leased to nodes (l2: the router's and nodes' own
        /// addresses). Repeatable.
        #[arg(long)]
        reserve: Vec<ipnet::IpNet>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Route,
    Vxlan,
    Auto,
    Bgp,
    L2,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Node,
    Gateway,
    Client,
}

fn role_name(role: RoleArg) -> &'static str {
    match role {
        RoleArg::Node => "node",
        RoleArg::Gateway => "gateway",
        RoleArg::Client => "client",
    }
}

fn main() -> ExitCode {
    const CNI_VARIABLES: [&str; 6] =
        ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS"];
    if CNI_VARIABLES.iter().any(|name| std::env::var_os(name).is_some()) {
        let outcome = weft_cni::run_from_process();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(outcome.stdout.as_bytes());
        let _ = stdout.flush();
        return ExitCode::from(outcome.exit_code as u8);
    }
    let cli = Cli::parse();
    logging(cli.log_level);
    match command(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn command(command: Commands) -> anyhow::Result<()> {
    match command {
        Commands::Network {
            command:
                NetworkCommand::Init { store, cidr, subnet_len, backend, vni, port, force, gateway, reserve },
        } => {
            let mut config = NetworkConfig::new(cidr);
            if let Some(len) = subnet_len {
                config.subnet_len = len;
            }
            config.backend = match backend {
                BackendArg::Route => Backend::Route,
                BackendArg::Vxlan => Backend::Vxlan,
                BackendArg::Auto => Backend::Auto,
                BackendArg::Bgp => Backend::Bgp,
                BackendArg::L2 => Backend::L2,
            };
            config.vni = vni;
            config.port = port;
            config.gateway = gateway;
            config.reserved = reserve;
            config.validate().with_context(|| {
                format!("network init: {}", serde_json::to_string(&config).unwrap_or_default())
            })?;
            weft_store::open(&store)
                .and_then(|s| s.init_network(&config, force))
                .with_context(|| format!("network init in {store}"))?;
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(())
        }
        Commands::Agent {
            store,
            node,
            iface,
            public_ip,
            state_dir,
            lease_ttl,
            resync,
            no_masquerade,
            metrics_address,
            role,
            asn,
            bgp_peer,
            bgp_hold_time,
            bgp_graceful_restart,
            cni_conf_dir,
            cni_conflist,
            proc_sys,
        } => {
            weft_kernel::sysctl::set_root(proc_sys);
            if cni_conf_dir.is_some() && !matches!(role, RoleArg::Node) {
                anyhow::bail!("--cni-conf-dir: only a node hosts pods (this is a {})", role_name(role));
            }
            let cni_conflist = cni_conf_dir
                .as_deref()
                .map(|dir| install_cni::conflist(dir, cni_conflist.as_deref(), &state_dir))
                .transpose()?;
            if bgp_hold_time == 1 || bgp_hold_time == 2 {
                anyhow::bail!("--bgp-hold-time {bgp_hold_time}: 0, or at least 3 (RFC 4271)");
            }
            if asn.is_some_and(|asn| asn == 0 || asn == u32::from(weft_bgp::message::AS_TRANS)) {
                anyhow::bail!(
                    "--asn {}: reserved (0 and 23456, AS_TRANS, cannot be a speaker's)",
                    asn.unwrap_or(0)
                );
            }
            let bgp = match asn {
                Some(asn) => Some(weft_agent::BgpOptions {
                    asn,
                    peers: bgp_peer
                        .iter()
                        .map(|peer| weft_bgp::parse_peer(peer, asn).map_err(anyhow::Error::msg))
                        .collect::<anyhow::Result<_>>()?,
                    hold_time: bgp_hold_time,
                    graceful_restart: bgp_graceful_restart,
                }),
                None => None,
            };
            let metrics_address = match metrics_address.as_str() {
                "off" => None,
                address => Some(address.parse().with_context(|| format!("--metrics-address {address}"))?),
            };
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, stop.clone()).context("handle SIGTERM and SIGINT")?;
            }
            let options = weft_agent::AgentOptions {
                role: match role {
                    RoleArg::Node => Role::Node,
                    RoleArg::Gateway => Role::Gateway,
                    RoleArg::Client => Role::Client,
                },
                bgp,
                store,
                node,
                iface,
                public_ip,
                state_dir,
                lease_ttl: Duration::from_secs(lease_ttl),
                resync: Duration::from_secs(resync),
                masquerade: !no_masquerade,
                metrics_address,
                cni_conflist,
            };
            weft_agent::run(&options, &stop).context("agent")?;
            Ok(())
        }
        Commands::InstallCni { bin_dir, conf_dir, conflist, state_dir, plugin } => {
            install_cni::run(&bin_dir, conf_dir.as_deref(), conflist.as_deref(), &state_dir, &plugin)
        }
        Commands::Status { state_dir, data_dir } => status(&state_dir, &data_dir),
        Commands::Lab { command } => lab_cli::run(command),
        Commands::Trace { lab, state_dir, args, verify, json } => {
            trace_cli::run(lab.as_deref(), state_dir.as_deref(), &args, verify, json)
        }
    }
}

/// Logs to stderr with time and level; colours only on a terminal. weft's own lines at
/// `level`; the libraries under it (gRPC, HTTP/2) only their warnings, unless tracing.
fn logging(level: tracing::level_filters::LevelFilter) {
    use std::io::IsTerminal;
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::prelude::*;
    let libraries = if level == LevelFilter::TRACE { level } else { level.min(LevelFilter::WARN) };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(libraries)
        .with_target("weft", level)
        .with_target("weft_agent", level)
        .with_target("weft_store", level)
        .with_target("weft_bgp", level)
        .with_target("weft_lab", level);
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    tracing_subscriber::registry().with(format).with(filter).init();
}

/// Prints what the agent last wrote, then checks the kernel against it.
fn status(state_dir: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = state_dir.join(STATUS_FILE_NAME);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read {} (is the agent running with this --state-dir?)", path.display()))?;
    let status = StatusFile::parse(&text).with_context(|| format!("parse {}", path.display()))?;
    let now = weft_core::now();
    println!("role      {}", status.role.name());
    println!("node      {}", status.node);
    if let Some(held) = &status.lease {
        println!("subnet    {}", held.lease.subnet);
        println!("public IP {}", held.lease.public_ip);
        let expires = held.renewed_at + held.ttl;
        println!(
            "lease     {}",
            if expires > now {
                format!(
                    "renewed {} s ago, lives {} s more without renewal",
                    now.saturating_sub(held.renewed_at),
                    expires - now
                )
            } else {
                "EXPIRED".into()
            }
        );
    }
    println!(
        "store     {} at revision {}{} ({} listing(s), {} watch resume(s), {} event(s))",
        status.store.url,
        status.store.revision,
        if status.store.connected { "" } else { ", NOT CONNECTED" },
        status.store.lists,
        status.store.watch_resumes,
        status.store.events
    );
    for session in &status.bgp {
        println!(
            "bgp       {} (AS {}): {}{}{}",
            session.peer,
            session.asn,
            session.state,
            if session.announced.is_empty() {
                String::new()
            } else {
                format!(
                    ", announcing {}",
                    session.announced.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                )
            },
            session.last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
        );
    }
    let ago = now.saturating_sub(status.last_pass.at);
    match &status.last_pass.error {
        Some(error) => println!("last pass failed {ago} s ago: {error}"),
        None => println!("last pass {ago} s ago"),
    }
    println!("\npeers ({}):", status.peers.len());
    for peer in &status.peers {
        println!("  {:<20} {:<20} {}", peer.node, peer.subnet.to_string(), peer.path);
    }
    pods::print(data_dir);
    // The kernel, read now: does it hold every planned route, and none of weft's others?
    let mut netlink = weft_kernel::Netlink::open()?;
    let names: std::collections::HashMap<u32, String> =
        netlink.links()?.into_iter().map(|link| (link.index, link.name)).collect();
    let mut held = std::collections::HashSet::new();
    for v6 in [false, true] {
        for route in netlink.routes(v6)? {
            if route.protocol == weft_core::plan::PEER_ROUTE_PROTOCOL {
                let device = route.oif.and_then(|i| names.get(&i).cloned()).unwrap_or_default();
                let gateway = route.gateway.map(|g| g.to_string()).unwrap_or_default();
                held.insert((route.destination.to_string(), gateway, device));
            }
        }
    }
    let planned: std::collections::HashSet<(String, String, String)> = status
        .planned_routes
        .iter()
        .map(|r| (r.destination.to_string(), r.gateway.to_string(), r.device.clone()))
        .collect();
    let missing: Vec<_> = planned.difference(&held).collect();
    let extra: Vec<_> = held.difference(&planned).collect();
    if missing.is_empty() && extra.is_empty() {
        println!("\nkernel matches the plan ({} routes)", planned.len());
        Ok(())
    } else {
        for (destination, gateway, device) in &missing {
            println!("missing from the kernel: {destination} via {gateway} dev {device}");
        }
        for (destination, gateway, device) in &extra {
            println!("in the kernel, not planned: {destination} via {gateway} dev {device}");
        }
        anyhow::bail!("the kernel does not match the plan")
    }
}
