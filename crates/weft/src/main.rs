//! The one weft binary. With `CNI_COMMAND` set (the spec's defining variable) it is the CNI
//! plugin, and does nothing else first: no argument parsing, no threads, so a pod's ADD costs
//! only what it must. Otherwise it is the command line: `CNI_PATH` or another CNI variable
//! left in an operator's environment changes nothing.

/// A line on stdout from a command that changes things step by step (`lab up`, `lab demo`,
/// `lab show`, `install-cni`): a reader that goes away (`… | head -1`) must not stop it
/// half-way, so it carries on and what it cannot write is dropped (SIGPIPE ignored for it:
/// see `finish_despite_a_closed_pipe`).
macro_rules! say {
    () => { say!("") };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `say!` without the newline.
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

#[cfg(test)]
mod deploy_check;
mod install_cni;
mod lab_cli;
mod pods;
mod status_cli;
mod trace_cli;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use weft_core::network::{Backend, NetworkConfig};
use weft_core::status::Role;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "weft: a pod network",
    long_about = "weft: a pod network. Every pod gets an address every other pod reaches: \
        on one L2 segment (l2), routed between nodes (route), announced to the routers by BGP \
        (bgp), through a VXLAN overlay (vxlan), or routed within a segment and tunnelled across \
        (auto).\n\n\
        One binary: the node agent (`weft agent`), the cluster's config (`weft network init`), \
        `weft status` and `weft trace` on a node, and the lab (`weft lab demo`). When a container \
        runtime runs it with CNI_COMMAND set, it is the CNI plugin (spec 0.3.0 to 1.1.0) and \
        answers on stdout as the spec says; nothing else on its command line is read then."
)]
struct Cli {
    /// How much to log (to stderr): error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: tracing::level_filters::LevelFilter,
    /// How log lines look: text (time, level, message) or json (one object a line, for
    /// collectors).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// Seconds a lease lives without renewal (renewed every third of it; 3 to 86400).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..=86400))]
        lease_ttl: u64,
        /// Seconds between full passes that repair drift from the cache (1 to 3600).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        resync: u64,
        /// Do not SNAT pods' traffic that leaves the cluster CIDR.
        #[arg(long)]
        no_masquerade: bool,
        /// Take VXLAN from anyone (vxlan, auto): by default only the peers' underlay
        /// addresses and the network's --overlay-source ranges may send into the overlay.
        #[arg(long)]
        no_overlay_filter: bool,
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
        /// A router to announce to: IPv4[:ASN], IPv6 or [IPv6]:ASN (without ASN: iBGP, our
        /// own AS). Repeatable.
        #[arg(long, requires = "asn")]
        bgp_peer: Vec<String>,
        /// TCP-MD5 passwords (RFC 2385) for the BGP sessions, from a file (never a flag: a
        /// flag shows in every process listing): a line `PEER-IP PASSWORD` per peer, or
        /// `* PASSWORD` for every peer not named; `#` starts a comment.
        #[arg(long, requires = "bgp_peer", value_name = "FILE")]
        bgp_password_file: Option<PathBuf>,
        /// BGP hold time offered to peers, in seconds (0: no keepalives, or 3 to 65535).
        #[arg(long, default_value_t = 9, requires = "asn")]
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
    /// This node's lease, its peers, whether its agent is alive, and whether the kernel of
    /// the agent's namespace holds the planned routes (exit 1 when not).
    Status {
        /// The agent's state dir (its --state-dir). In a lab: `weft lab status LAB NODE`.
        #[arg(long, default_value = weft_cni::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Everything as JSON: the status file, the agent's liveness, the kernel check.
        #[arg(long)]
        json: bool,
        /// The CNI plugin's IPAM store (its `dataDir`), to list this node's pods.
        #[arg(long, default_value = weft_cni::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// A packet's path hop by hop, from the kernel's own tables: in a lab (FROM TO), or on
    /// this node (TO, the part of the path the node can see). Exit 0: delivered; 1: a kernel
    /// stops it, or (--verify) the probe is not seen at every hop; 3: it leaves what the trace
    /// can see before it is delivered.
    Trace {
        /// The lab: FROM is a member (pod, node, gateway, router, outside), TO a member or an address.
        #[arg(long)]
        lab: Option<String>,
        /// On a node: its agent's state dir.
        #[arg(long, conflicts_with = "lab")]
        state_dir: Option<PathBuf>,
        /// On a node: the CNI plugin's IPAM store (its `dataDir`), to name the pods traced to
        /// (TO may be a pod's `namespace/name` there, as `weft status` lists it).
        #[arg(long, conflicts_with = "lab", default_value = weft_cni::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// FROM TO (with --lab) or TO (with --state-dir): members, addresses, or pods by name.
        args: Vec<String>,
        /// Send a real probe and catch it at every hop (packet sockets).
        #[arg(long)]
        verify: bool,
        /// The trace as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Whole clusters of network namespaces on this machine: `weft lab demo` to start.
    Lab {
        #[command(subcommand)]
        command: lab_cli::LabCommand,
    },
    /// weft's version, the commit it was built from, and the target.
    Version {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A shell completion script on stdout (e.g. `weft completions bash > /etc/bash_completion.d/weft`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page, weft(1), in roff on stdout (e.g. `weft man > weft.1; man ./weft.1`).
    Man,
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Write the network config into the store.
    Init {
        /// The cluster's store: sqlite:PATH (created if missing; its directory must exist),
        /// or etcd://HOST:PORT[,HOST:PORT...][?ca=FILE&cert=FILE&key=FILE].
        #[arg(long)]
        store: String,
        /// The cluster CIDR every pod address comes from, as a network (10.244.0.0/16). Give
        /// one IPv4 and one IPv6 CIDR for a dual-stack network (each node leases a subnet of
        /// each), or one IPv6 CIDR for an IPv6-only one.
        #[arg(long, value_parser = parse_network, required = true, num_args = 1)]
        cidr: Vec<ipnet::IpNet>,
        /// Prefix length of each node's subnet (default: 24 for IPv4, 64 for IPv6). With two
        /// CIDRs, one per CIDR, in the same order.
        #[arg(long)]
        subnet_len: Vec<u8>,
        /// What carries pod traffic between nodes.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        /// VXLAN network identifier (1 to 16777215).
        #[arg(long, default_value_t = weft_core::network::DEFAULT_VNI, value_parser = clap::value_parser!(u32).range(1..=0xff_ffff))]
        vni: u32,
        /// VXLAN's UDP port.
        #[arg(long, default_value_t = weft_core::network::DEFAULT_VXLAN_PORT, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Change a config that nodes already use.
        #[arg(long)]
        force: bool,
        /// l2: the segment's router, the pods' gateway. Dual stack: one per family.
        #[arg(long)]
        gateway: Vec<IpAddr>,
        /// A range of the CIDR never leased to nodes (l2: the router's and nodes' own
        /// addresses). Repeatable.
        #[arg(long, value_parser = parse_network)]
        reserve: Vec<ipnet::IpNet>,
        /// An underlay address or range besides the nodes' that may send into the overlay
        /// (vxlan, auto): a gateway's or a client's. Nodes drop VXLAN from anyone else.
        /// Repeatable.
        #[arg(long, value_parser = parse_network, value_name = "CIDR")]
        overlay_source: Vec<ipnet::IpNet>,
        /// Do not masquerade this family's pods leaving the cluster (IPv6 pods are often
        /// globally routed). Repeatable.
        #[arg(long, value_enum, value_name = "FAMILY")]
        no_masquerade: Vec<FamilyArg>,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum FamilyArg {
    /// IPv4 pods.
    Ipv4,
    /// IPv6 pods.
    Ipv6,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// Each node routes every other node's pod subnet via that node (host-gw): nodes on one L2 segment.
    Route,
    /// Pod packets in UDP between nodes (an overlay): nodes need only IP reachability.
    Vxlan,
    /// route to peers on this node's segment, vxlan to the rest.
    Auto,
    /// route on the segment; the routers learn each node's subnet by BGP (weft agent --bgp-peer).
    Bgp,
    /// Pods on the nodes' own segment, its router their gateway (needs --gateway).
    L2,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Hosts pods: leases a subnet, writes the node file.
    Node,
    /// Hosts no pods; joins the overlay and announces the cluster CIDR to the routers by BGP.
    Gateway,
    /// Hosts no pods; joins the overlay to reach pods directly.
    Client,
}

/// A network in CIDR notation, with a message that says which part is wrong; host bits set
/// are refused, not silently cleared.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let (address, length) = text
        .split_once('/')
        .ok_or_else(|| format!("{text}: a network with its prefix length, e.g. 10.244.0.0/16"))?;
    let address: IpAddr =
        address.parse().map_err(|_| format!("{text}: {address} is not an IPv4 or IPv6 address"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let length: u8 = length
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("{text}: the prefix length {length} is not between 0 and {max}"))?;
    let network = ipnet::IpNet::new(address, length).expect("length checked");
    if network.trunc() != network {
        return Err(format!(
            "{text}: host bits are set; the network is {} (or give a longer prefix)",
            network.trunc()
        ));
    }
    Ok(network)
}

fn role_name(role: RoleArg) -> &'static str {
    match role {
        RoleArg::Node => "node",
        RoleArg::Gateway => "gateway",
        RoleArg::Client => "client",
    }
}

/// For a command that must not stop half-way when its reader goes (those above, which print
/// with `say!`, and the agent, which writes to `nft`'s stdin and prints nothing).
fn finish_despite_a_closed_pipe() {
    // SAFETY: sets the disposition of one signal; children get the default back at exec
    // (std's Command resets SIGPIPE).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

fn main() -> ExitCode {
    if std::env::var_os("CNI_COMMAND").is_some() {
        let outcome = weft_cni::run_from_process();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(outcome.stdout.as_bytes());
        let _ = stdout.flush();
        return ExitCode::from(outcome.exit_code as u8);
    }
    // A reader that goes away (`weft … | head -1`) ends the command quietly, as it does any
    // other command line tool, instead of a panic on the next print.
    // SAFETY: restores the default disposition of one signal before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    logging(cli.log_level, cli.log_format);
    match command(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // (A closed stderr must not turn the failure into a panic.)
            let _ = writeln!(std::io::stderr(), "weft: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

fn command(command: Commands) -> anyhow::Result<()> {
    match command {
        Commands::Network {
            command:
                NetworkCommand::Init {
                    store,
                    cidr,
                    subnet_len,
                    backend,
                    vni,
                    port,
                    force,
                    gateway,
                    reserve,
                    overlay_source,
                    no_masquerade,
                },
        } => {
            use weft_core::network::Family;
            let mut config = NetworkConfig::with_cidrs(&cidr)
                .map_err(|e| anyhow::anyhow!("--cidr: {e}; give one CIDR, or one IPv4 and one IPv6"))?;
            match (subnet_len.as_slice(), cidr.as_slice()) {
                ([], _) => {}
                (&[len], &[_]) => config.subnet_len = len,
                (lens, cidrs) if lens.len() == cidrs.len() => {
                    for (len, cidr) in lens.iter().zip(cidrs) {
                        match (cidr.addr().is_ipv4(), config.ipv6.as_mut()) {
                            (false, Some(pool)) => pool.subnet_len = *len,
                            _ => config.subnet_len = *len,
                        }
                    }
                }
                _ => bail!("--subnet-len: give one per --cidr, in the same order"),
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
            // Gateways and reserved ranges go to their family's pool.
            // (Each to the pool of its family; one of a family the network has not is refused.)
            let first_family = Family::of_net(&config.cidr);
            let families = config.families();
            for gateway in gateway {
                match (Family::of(gateway), config.ipv6.as_mut()) {
                    (Family::Ipv6, Some(pool)) if pool.gateway.is_none() => pool.gateway = Some(gateway),
                    (family, _) if family == first_family && config.gateway.is_none() => {
                        config.gateway = Some(gateway)
                    }
                    (family, _) if families.contains(&family) => {
                        bail!("--gateway {gateway}: one per family")
                    }
                    (family, _) => bail!("--gateway {gateway}: the network has no {family} CIDR"),
                }
            }
            for range in reserve {
                match (Family::of_net(&range), config.ipv6.as_mut()) {
                    (Family::Ipv6, Some(pool)) => pool.reserved.push(range),
                    (family, _) if family == first_family => config.reserved.push(range),
                    (family, _) => bail!("--reserve {range}: the network has no {family} CIDR"),
                }
            }
            config.overlay_sources = overlay_source;
            config.no_masquerade = no_masquerade
                .into_iter()
                .map(|f| if f == FamilyArg::Ipv4 { Family::Ipv4 } else { Family::Ipv6 })
                .collect();
            config.no_masquerade.dedup();
            if let Err(e) = config.validate() {
                use weft_core::network::NetworkConfigError as E;
                match e {
                    E::SubnetLen { .. } => bail!("--subnet-len: {e}"),
                    E::InPool { ref error, .. } if matches!(**error, E::SubnetLen { .. }) => {
                        bail!("--subnet-len: {e}")
                    }
                    E::InPool { ref error, .. } if matches!(**error, E::L2Gateway(_)) => {
                        bail!("--backend l2 needs the segment's routers: pass --gateway once per family, {e}")
                    }
                    E::L2Gateway(cidr) => bail!(
                        "--backend l2 needs the segment's router: pass --gateway with its address in {cidr}"
                    ),
                    E::OverlaySource(source, why) => bail!("--overlay-source {source}: {why}"),
                    e => bail!("network init: {e}"),
                }
            }
            check_sqlite_store(&store, true)?;
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
            no_overlay_filter,
            metrics_address,
            role,
            asn,
            bgp_peer,
            bgp_password_file,
            bgp_hold_time,
            bgp_graceful_restart,
            cni_conf_dir,
            cni_conflist,
            proc_sys,
        } => {
            // A daemon: a reader that goes away (an `nft` that exits before it read its whole
            // script, say) must not end it; it writes no stdout of its own.
            finish_despite_a_closed_pipe();
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
                    peers: bgp_peers(&bgp_peer, asn, bgp_password_file.as_deref())?,
                    hold_time: bgp_hold_time,
                    graceful_restart: bgp_graceful_restart,
                }),
                None => None,
            };
            check_sqlite_store(&store, false)?;
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
                overlay_filter: !no_overlay_filter,
                metrics_address,
                cni_conflist,
            };
            weft_agent::run(&options, &stop).context("agent")?;
            Ok(())
        }
        Commands::InstallCni { bin_dir, conf_dir, conflist, state_dir, plugin } => {
            finish_despite_a_closed_pipe();
            install_cni::run(&bin_dir, conf_dir.as_deref(), conflist.as_deref(), &state_dir, &plugin)
        }
        Commands::Status { state_dir, json, data_dir } => status_cli::run(&state_dir, &data_dir, json),
        Commands::Version { json } => {
            let (version, commit, target) =
                (env!("CARGO_PKG_VERSION"), env!("WEFT_COMMIT"), env!("WEFT_TARGET"));
            if json {
                println!("{}", serde_json::json!({ "version": version, "commit": commit, "target": target }));
            } else {
                println!("weft {version} (commit {commit}, {target})");
            }
            Ok(())
        }
        Commands::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "weft", &mut std::io::stdout());
            Ok(())
        }
        Commands::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Commands::Lab { command } => lab_cli::run(command),
        Commands::Trace { lab, state_dir, data_dir, args, verify, json } => {
            let node = state_dir.as_deref().map(|state_dir| (state_dir, data_dir.as_path()));
            trace_cli::run(lab.as_deref(), node, &args, verify, json)
        }
    }
}

/// An error and its causes on one line, each said once: libraries often repeat their
/// source's words in their own message.
fn describe(error: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.retain(|s| !text.contains(s.as_str()) || text == *s);
            said.push(text);
        }
    }
    said.join(": ")
}

/// The `--bgp-peer`s, each with its password from `--bgp-password-file`. A file that names a
/// peer not among them is refused: a typo there would leave a session unsigned.
fn bgp_peers(
    texts: &[String],
    asn: u32,
    password_file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<weft_bgp::PeerConfig>> {
    let mut peers = texts
        .iter()
        .map(|peer| weft_bgp::parse_peer(peer, asn).with_context(|| format!("--bgp-peer {peer}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Some(path) = password_file else { return Ok(peers) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--bgp-password-file {}: cannot read it", path.display()))?;
    let passwords = weft_bgp::auth::Passwords::parse(&text)
        .with_context(|| format!("--bgp-password-file {}", path.display()))?;
    if let Some(stranger) = passwords.peers.keys().find(|a| !peers.iter().any(|p| p.address == **a)) {
        bail!("--bgp-password-file {}: a password for {stranger}, which is no --bgp-peer", path.display());
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            tracing::warn!(
                "--bgp-password-file {}: others may read it (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    for peer in &mut peers {
        peer.password = passwords.for_peer(peer.address).cloned();
    }
    Ok(peers)
}

/// An `sqlite:` store's file: its directory must exist (a typo must not make a new store
/// somewhere); an agent needs the file itself, which `weft network init` makes.
fn check_sqlite_store(store: &str, creating: bool) -> anyhow::Result<()> {
    let Some(path) = store.strip_prefix("sqlite:").map(std::path::Path::new) else { return Ok(()) };
    let directory = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !directory.is_dir() {
        bail!("--store {store}: directory {} does not exist", directory.display());
    }
    if path.is_dir() {
        bail!("--store {store}: {} is a directory; name a file in it", path.display());
    }
    if !creating && !path.is_file() {
        bail!("--store {store}: no store there; make it with `weft network init --store {store} --cidr …`");
    }
    Ok(())
}

/// Logs to stderr with time and level; colours only on a terminal. weft's own lines at
/// `level`; the libraries under it (gRPC, HTTP/2) only their warnings, unless tracing.
fn logging(level: tracing::level_filters::LevelFilter, format: LogFormat) {
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
    let text = matches!(format, LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
    });
    let json = matches!(format, LogFormat::Json)
        .then(|| tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_target(true));
    tracing_subscriber::registry().with(text).with(json).with(filter).init();
}

#[cfg(test)]
mod help {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command and every argument a user can give, with what `--help` says of it.
    fn undescribed(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if argument.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if argument.get_help().is_none() && argument.get_long_help().is_none() {
                missing.push(format!("{path} <{id}>"));
            }
        }
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(path.clone());
            }
            undescribed(sub, &path, missing);
        }
    }

    #[test]
    fn every_command_and_argument_says_what_it_is() {
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        undescribed(&command, "weft", &mut missing);
        assert!(missing.is_empty(), "without a description in --help: {missing:#?}");
    }
}
