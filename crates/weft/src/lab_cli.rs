//! `weft lab ...`: the lab's commands, with progress lines and tables for people and JSON
//! for scripts. The lab itself is the weft-lab crate.

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weft_lab::topology::IpFamily;
use weft_lab::{Lab, LabSpec, Mode, Step, StoreKind, Style};

const DEFAULT_NAME: &str = "lab";

/// Which lab: the first argument (`weft lab check mylab`), or `--name` as before; `lab`
/// when neither is given.
#[derive(clap::Args, Debug, Clone)]
pub struct LabName {
    /// The lab's name (default: lab).
    #[arg(value_name = "LAB")]
    lab: Option<String>,
    /// The lab's name, as an option (the same as the first argument).
    #[arg(long = "name", value_name = "LAB", conflicts_with = "lab")]
    name: Option<String>,
}

impl LabName {
    fn get(&self) -> String {
        self.lab.clone().or_else(|| self.name.clone()).unwrap_or_else(|| DEFAULT_NAME.into())
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum IpFamilyArg {
    /// IPv4 only.
    Ipv4,
    /// IPv6 only: machines and pods without IPv4 (no etcd store there yet).
    Ipv6,
    /// IPv4 and IPv6 on every machine and pod, over an IPv4 underlay.
    Dual,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum UnderlayArg {
    /// The machines' IPv4 addresses.
    Ipv4,
    /// The machines' IPv6 addresses (a dual-stack lab).
    Ipv6,
}

#[derive(Subcommand)]
pub enum LabCommand {
    /// Build a lab: racks, a router, an outside client, nodes running agents, pods.
    Up {
        #[command(flatten)]
        name: LabName,
        /// The design (see `weft network init --help` for the backends).
        #[arg(long, value_enum, default_value = "auto")]
        mode: ModeArg,
        /// Racks (default 2; l2: 1).
        #[arg(long)]
        racks: Option<u32>,
        /// Nodes per rack (default 2; l2: 3).
        #[arg(long)]
        nodes_per_rack: Option<u32>,
        /// Pods per node (default 2).
        #[arg(long)]
        pods_per_node: Option<u32>,
        /// Where the agents keep leases: an SQLite file in the lab's directory, or a real etcd.
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreArg,
        /// Members of the etcd cluster (with --store etcd): 1, 3 or 5, each a machine of its
        /// own (etcd1, etcd2, …) on a rack, the store URL listing them all.
        #[arg(long, default_value_t = 1)]
        etcd_members: u32,
        /// Seconds an agent's lease lives without renewal (3 to 3600).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
        lease_ttl: u64,
        /// Seconds between the agents' full resyncs (1 to 3600).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
        resync: u64,
        /// Gateway machines (g1, g2, …) that join the overlay and announce the pod network
        /// to the router by BGP (vxlan and auto modes).
        #[arg(long, default_value_t = 0)]
        gateways: u32,
        /// The outside client runs the agent as a client, joining the overlay.
        #[arg(long)]
        client: bool,
        /// What speaks BGP on the router (bgp mode, or with --gateways; default bird).
        #[arg(long, value_enum)]
        router: Option<RouterArg>,
        /// Nodes and gateways in the router's own AS (iBGP) rather than their own (eBGP); bgp
        /// mode or --gateways.
        #[arg(long)]
        ibgp: bool,
        /// BGP graceful restart: the router keeps a stopped agent's routes this many seconds
        /// (1 to 4095; without it, off); bgp mode or --gateways.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4095))]
        graceful_restart: Option<u16>,
        /// Sign every BGP session with TCP-MD5 (RFC 2385), with a password the lab makes and
        /// keeps in its directory (mode 600); bgp mode or --gateways.
        #[arg(long)]
        bgp_password: bool,
        /// The pods' (and machines') address families: ipv4, or dual (every machine and pod
        /// has an IPv6 address too, from 2001:db8::/32 and fd00:10:244::/56; the underlay
        /// stays IPv4 unless --underlay ipv6), or ipv6 (no IPv4 at all; no etcd store yet).
        #[arg(long, value_enum, default_value = "ipv4")]
        ip_family: IpFamilyArg,
        /// What carries the overlay between machines: their IPv4 addresses, or their IPv6
        /// ones (with --ip-family dual; VXLAN then costs 70 bytes of MTU, not 50).
        #[arg(long, value_enum, default_value = "ipv4")]
        underlay: UnderlayArg,
    },
    /// Probe what reaches what and hold it against what the mode promises (exit 1 if a
    /// promise is broken).
    Check {
        #[command(flatten)]
        name: LabName,
        /// The matrix as JSON on stdout.
        #[arg(long, alias = "output-json")]
        json: bool,
        /// Seconds to wait for each probe's answer (1 to 60).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
        timeout: u64,
    },
    /// Run a command inside a member's network namespace: a pod (n1-p1), a node (n1), a
    /// rack (rack1), a gateway (g1), an etcd member (etcd1), `router` or `outside`. (Only the
    /// network namespace: /sys stays the machine's, unlike `ip netns exec`.) `weft` as the
    /// command is this weft binary.
    Exec {
        /// The lab.
        lab: String,
        /// The member.
        member: String,
        /// The command to run in the member's namespace, after `--` (`weft` is this binary).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Remove a lab (or every lab): processes, namespaces, files. Also after a crash.
    Down {
        #[command(flatten)]
        name: LabName,
        /// Every lab on this machine.
        #[arg(long, conflicts_with_all = ["lab", "name"])]
        all: bool,
    },
    /// The lab as a picture (racks, router, nodes, pods, tunnels, BGP sessions), with a
    /// traced path drawn over it: a self-contained HTML page and/or an SVG.
    Show {
        /// The lab.
        lab: String,
        /// Write the picture as a self-contained HTML page (slides for a trace) to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Write the picture as an SVG drawing to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Draw the path of a packet: FROM TO (as `weft trace`).
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
        trace: Option<Vec<String>>,
        /// With --trace: send a real probe and mark each hop seen or not.
        #[arg(long)]
        verify: bool,
    },
    /// Up, check and down for each mode in turn, on the embedded store.
    Demo,
    /// The labs on this machine.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// The agents' view of a lab: each one's lease, peers, store, BGP sessions, whether it
    /// runs and whether its kernel matches its plan (exit 1 when one does not).
    Status {
        /// The lab.
        lab: String,
        /// One member (a node, gateway or the outside client): its whole `weft status`.
        member: Option<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A packet's path hop by hop, from the kernels' own tables (as `weft trace --lab`).
    Trace {
        /// The lab.
        lab: String,
        /// A member: pod, node, gateway, router or outside.
        from: String,
        /// A member or an address.
        to: String,
        /// Send a real probe and catch it at every hop.
        #[arg(long)]
        verify: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A member's log: an agent's (n1, g1, outside), an etcd member's (etcd1), the router's
    /// daemon's (bird, zebra, bgpd).
    Logs {
        /// The lab.
        lab: String,
        /// The node, gateway or outside client whose agent's log to print.
        member: String,
        /// Keep printing what it writes, until interrupted.
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop one agent and start it again (SIGTERM: the kernel keeps its state).
    Restart {
        /// The lab.
        lab: String,
        /// The node, gateway or outside client whose agent to restart.
        member: String,
    },
    /// Talk to the router's BGP daemon: `weft lab router LAB -- birdc show protocols`, or
    /// `-- vtysh -c 'show bgp summary'` (the lab's control sockets are filled in).
    Router {
        /// The lab.
        lab: String,
        /// `birdc …` or `vtysh …` after `--`: run against the lab router's own socket.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Route,
    Vxlan,
    Auto,
    Bgp,
    L2,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Mode {
        match mode {
            ModeArg::Route => Mode::Route,
            ModeArg::Vxlan => Mode::Vxlan,
            ModeArg::Auto => Mode::Auto,
            ModeArg::Bgp => Mode::Bgp,
            ModeArg::L2 => Mode::L2,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RouterArg {
    Bird,
    Frr,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StoreArg {
    Sqlite,
    Etcd,
}

fn style() -> Style {
    use std::io::IsTerminal;
    Style { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
}

fn weft_binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("find the weft binary (the agents and the CNI plugin)")
}

fn millis(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `n thing` or `n things`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_step(step: &Step) {
    let style = style();
    say!("  {} {:<72} {}", style.green("✓"), step.what, style.dim(&millis(step.took)));
}

fn open(lab: &str) -> anyhow::Result<Lab> {
    Ok(Lab::open(lab, &weft_binary()?)?)
}

/// Says on stderr, every second, how long `what` has taken, until dropped (on a terminal;
/// elsewhere one line at the start).
struct Progress {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(what: String) -> Progress {
        use std::io::IsTerminal;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            eprintln!("{what} …");
            return Progress { done, thread: None };
        }
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if started.elapsed() >= Duration::from_secs(1) {
                    eprint!("\r{what} … {}", millis(started.elapsed()));
                }
            }
            if started.elapsed() >= Duration::from_secs(1) {
                eprint!("\r\x1b[2K");
            }
        });
        Progress { done, thread: Some(thread) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn run(command: LabCommand) -> anyhow::Result<()> {
    if matches!(command, LabCommand::Up { .. } | LabCommand::Demo | LabCommand::Show { .. }) {
        crate::finish_despite_a_closed_pipe();
    }
    match command {
        LabCommand::Up {
            name,
            mode,
            racks,
            nodes_per_rack,
            pods_per_node,
            store,
            etcd_members,
            lease_ttl,
            resync,
            gateways,
            client,
            router,
            ibgp,
            graceful_restart,
            bgp_password,
            ip_family,
            underlay,
        } => {
            let name = name.get();
            let defaults = LabSpec::new(&name, mode.into());
            let spec = LabSpec {
                racks: racks.unwrap_or(defaults.racks),
                nodes_per_rack: nodes_per_rack.unwrap_or(defaults.nodes_per_rack),
                pods_per_node: pods_per_node.unwrap_or(defaults.pods_per_node),
                store: match store {
                    StoreArg::Sqlite => StoreKind::Sqlite,
                    StoreArg::Etcd => StoreKind::Etcd,
                },
                etcd_members,
                lease_ttl,
                resync,
                gateways,
                client,
                ibgp,
                graceful_restart: graceful_restart.unwrap_or(0),
                bgp_password,
                ip_family: match ip_family {
                    IpFamilyArg::Ipv4 => IpFamily::Ipv4,
                    IpFamilyArg::Ipv6 => IpFamily::Ipv6,
                    IpFamilyArg::Dual => IpFamily::Dual,
                },
                underlay: match underlay {
                    UnderlayArg::Ipv4 => weft_core::network::Family::Ipv4,
                    UnderlayArg::Ipv6 => weft_core::network::Family::Ipv6,
                },
                router: match router.unwrap_or(RouterArg::Bird) {
                    RouterArg::Bird => weft_lab::topology::RouterKind::Bird,
                    RouterArg::Frr => weft_lab::topology::RouterKind::Frr,
                },
                ..defaults
            };
            if router.is_some() && !spec.router_speaks_bgp() {
                bail!(
                    "--router: the router speaks BGP only in bgp mode or with --gateways; in {} mode \
                     without gateways there is nothing for BIRD or FRR to do",
                    spec.mode.name()
                );
            }
            // (`up` refuses what it must before it prints anything: `Lab::preflight`.)
            let has_pods = spec.pods_per_node > 0;
            up(spec)?;
            let example = if has_pods { "n1-p1 -- ip addr" } else { "n1 -- ip route" };
            say!(
                "\nNext:  weft lab check {name}   ·   weft lab exec {name} {example}   ·   weft lab status {name}   ·   weft lab down {name}"
            );
            Ok(())
        }
        LabCommand::Check { name, json, timeout } => {
            let name = name.get();
            let lab = open(&name)?;
            let report = {
                let _progress = Progress::start(format!("weft lab check {name}: probing"));
                lab.check(Duration::from_secs(timeout))?
            };
            if json {
                println!("{}", report.to_json());
            } else {
                println!("weft lab check {name}: {}\n", report.design);
                print!("{}", weft_lab::report::render(&report, style()));
            }
            if !report.ok {
                bail!(
                    "{} of lab {name} broke the promises of {}",
                    count(report.broken().count() as u64, "probe", "probes"),
                    report.design
                );
            }
            Ok(())
        }
        LabCommand::Exec { lab, member, command } => {
            let lab = open(&lab)?;
            lab.open_netns(&member)?.enter().with_context(|| format!("enter {member}'s namespace"))?;
            // `weft` is this weft, on PATH or not.
            let program = if command[0] == "weft" { weft_binary()? } else { PathBuf::from(&command[0]) };
            let error = std::process::Command::new(&program).args(&command[1..]).exec();
            Err(error).with_context(|| format!("run {} in {member}", command[0]))
        }
        LabCommand::Down { name, all } => {
            let started = Instant::now();
            let removed =
                if all { weft_lab::down::down_all()? } else { weft_lab::down::down_named(&name.get())? };
            let labs = if removed.labs.is_empty() { "no lab".to_string() } else { removed.labs.join(", ") };
            println!(
                "removed {labs}: {}, {}, in {}",
                count(removed.namespaces as u64, "namespace", "namespaces"),
                count(removed.processes as u64, "process", "processes"),
                millis(started.elapsed())
            );
            Ok(())
        }
        LabCommand::Show { lab, html, svg, trace, verify } => {
            if html.is_none() && svg.is_none() {
                bail!("say where the picture goes: --html FILE and/or --svg FILE");
            }
            if verify && trace.is_none() {
                bail!("--verify sends a probe along a traced path: give --trace FROM TO too");
            }
            let lab = open(&lab)?;
            let trace = match trace.as_deref() {
                Some([from, to]) => Some(lab.trace(from, to, verify)?),
                _ => None,
            };
            let scene = lab.scene(trace);
            for (path, text) in [
                (&html, html.as_ref().map(|_| weft_lab::picture::html(&scene))),
                (&svg, svg.as_ref().map(|_| weft_lab::picture::svg(&scene))),
            ] {
                if let (Some(path), Some(text)) = (path, text) {
                    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
                    say!("wrote {}", path.display());
                }
            }
            Ok(())
        }
        LabCommand::Demo => demo(),
        LabCommand::List { json } => list(json),
        LabCommand::Status { lab, member, json } => status(&lab, member.as_deref(), json),
        LabCommand::Trace { lab, from, to, verify, json } => {
            crate::trace_cli::run(Some(&lab), None, &[from, to], verify, json)
        }
        LabCommand::Logs { lab, member, follow } => logs(&lab, &member, follow),
        LabCommand::Restart { lab, member } => {
            let mut lab = open(&lab)?;
            if !lab.state.agents.contains_key(&member) {
                bail!(
                    "{member} runs no agent in lab {}; agents run on {}",
                    lab.name(),
                    lab.state.agents.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            let started = Instant::now();
            lab.stop_agent(&member, libc::SIGTERM);
            lab.start_agent(&member)?;
            println!("restarted the agent of {member} in {}", millis(started.elapsed()));
            Ok(())
        }
        LabCommand::Router { lab, command } => router(&lab, &command),
    }
}

/// `weft lab list`.
fn list(json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for name in weft_lab::state::lab_names() {
        let Ok(state) = weft_lab::state::LabState::load(&name) else { continue };
        let spec = &state.spec;
        let running = state.agents.values().filter(|p| weft_lab::process::is_running(p)).count();
        rows.push(serde_json::json!({
            "name": name,
            "mode": spec.mode.name(),
            "racks": spec.racks,
            "nodesPerRack": spec.nodes_per_rack,
            "podsPerNode": spec.pods_per_node,
            "store": state.store_url,
            "agents": state.agents.len(),
            "agentsRunning": running,
            "createdAt": state.created_at,
        }));
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no lab on this machine (weft lab up NAME, or weft lab demo)");
        return Ok(());
    }
    println!("{:<20} {:<6} {:<18} {:<8} {:<12} store", "lab", "mode", "size", "agents", "age");
    for row in &rows {
        let size = format!("{}×{}×{}", row["racks"], row["nodesPerRack"], row["podsPerNode"]);
        let age = weft_core::now().saturating_sub(row["createdAt"].as_u64().unwrap_or(0));
        println!(
            "{:<20} {:<6} {:<18} {:<8} {:<12} {}",
            row["name"].as_str().unwrap_or("?"),
            row["mode"].as_str().unwrap_or("?"),
            size,
            format!("{}/{}", row["agentsRunning"], row["agents"]),
            millis(Duration::from_secs(age)),
            row["store"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `weft lab status`: each agent's status file, liveness and kernel check, from inside its
/// member's namespace.
fn status(lab: &str, member: Option<&str>, json: bool) -> anyhow::Result<()> {
    let lab = open(lab)?;
    let members: Vec<String> = match member {
        Some(member) => {
            lab.netns(member)?;
            vec![member.to_string()]
        }
        None => lab.state.agents.keys().cloned().collect(),
    };
    if members.is_empty() {
        bail!("no agent runs in lab {}", lab.name());
    }
    let mut reports = Vec::new();
    for name in &members {
        let dir = lab.state.node_dir(name);
        let status = crate::status_cli::read(&dir)?;
        let liveness = crate::status_cli::Liveness::of(&status);
        let ns = lab.open_netns(name)?;
        let checked = {
            let (status, liveness) = (status.clone(), liveness.clone());
            ns.run(move || crate::status_cli::check_kernel(&status, &liveness))
                .map_err(|e| anyhow::anyhow!("enter {name}'s namespace: {e}"))??
        };
        reports.push((name.clone(), status, liveness, checked));
    }
    let healthy = reports.iter().all(|(_, _, l, k)| l.healthy() && k.matches());
    if json {
        let value: Vec<serde_json::Value> = reports
            .iter()
            .map(|(name, status, liveness, kernel)| {
                serde_json::json!({ "member": name, "status": status, "agent": liveness, "kernel": kernel })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if let [(_, status, liveness, kernel)] = &reports[..] {
        print!("{}", crate::status_cli::render(status, liveness, kernel));
    } else {
        // Every subnet of a lease (dual stack: one per family), the column as wide as needed.
        let subnets = |status: &weft_core::status::StatusFile| {
            status.lease.as_ref().map_or("-".to_string(), |l| {
                l.lease.subnets().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
            })
        };
        let width = reports.iter().map(|(_, status, ..)| subnets(status).len()).max().unwrap_or(0).max(18);
        println!(
            "{:<8} {:<8} {:<width$} {:<12} {:<9} {:<10} {:<8} {:<8} bgp",
            "member", "role", "subnet", "peers", "revision", "last pass", "agent", "kernel"
        );
        for (name, status, liveness, kernel) in &reports {
            let unreachable = status
                .peers
                .iter()
                .filter(|p| matches!(p.path, weft_core::plan::PeerPath::Unreachable(_)))
                .count();
            let mut peers = status.peers.len().to_string();
            if unreachable > 0 {
                peers += &format!(" ({unreachable} unreachable)");
            }
            if !status.rejected.is_empty() {
                peers += &format!(" ({} leases not believed)", status.rejected.len());
            }
            let bgp: Vec<String> = status.bgp.iter().map(|s| format!("{} {}", s.peer, s.state)).collect();
            println!(
                "{:<8} {:<8} {:<width$} {:<12} {:<9} {:<10} {:<8} {:<8} {}",
                name,
                status.role.name(),
                subnets(status),
                peers,
                status.store.revision,
                format!("{} s ago", weft_core::now().saturating_sub(status.last_pass.at)),
                if liveness.healthy() {
                    "running"
                } else if liveness.running {
                    "STALE"
                } else {
                    "GONE"
                },
                if kernel.matches() { "matches" } else { "DIFFERS" },
                if bgp.is_empty() { "-".to_string() } else { bgp.join(", ") }
            );
        }
    }
    if !healthy {
        let bad: Vec<&str> = reports
            .iter()
            .filter(|(_, _, l, k)| !(l.healthy() && k.matches()))
            .map(|(n, ..)| n.as_str())
            .collect();
        bail!("not as it should be: {} (weft lab status {} MEMBER says why)", bad.join(", "), lab.name());
    }
    Ok(())
}

/// `weft lab logs`.
fn logs(lab: &str, member: &str, follow: bool) -> anyhow::Result<()> {
    use std::io::{Read, Seek, Write};
    let lab = open(lab)?;
    let path = lab.state.log_file(member);
    let mut file = std::fs::File::open(&path).with_context(|| {
        format!(
            "read {}: {member} keeps no log in lab {} (agents, etcd members and the router's daemons bird, zebra, bgpd do)",
            path.display(),
            lab.name()
        )
    })?;
    let mut stdout = std::io::stdout();
    let mut buffer = Vec::new();
    file.read_to_end(&mut buffer)?;
    stdout.write_all(&buffer)?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let position = file.stream_position()?;
        if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < position {
            file.rewind()?; // truncated: from the start
        }
        buffer.clear();
        file.read_to_end(&mut buffer)?;
        stdout.write_all(&buffer)?;
        stdout.flush()?;
    }
}

/// `weft lab router`: birdc or vtysh in the router's namespace, on the lab's sockets.
fn router(lab: &str, command: &[String]) -> anyhow::Result<()> {
    let lab = open(lab)?;
    if !lab.state.spec.router_speaks_bgp() {
        bail!(
            "the router of lab {} speaks no BGP ({} mode, no gateways): nothing to ask",
            lab.name(),
            lab.state.spec.mode.name()
        );
    }
    let dir = lab.state.dir().join("router");
    let mut full: Vec<String> = vec![command[0].clone()];
    match command[0].as_str() {
        "birdc" => full.extend(["-s".into(), dir.join("bird.ctl").display().to_string()]),
        "vtysh" => full.extend(["--vty_socket".into(), dir.display().to_string()]),
        other => bail!("{other}: the router's daemons answer birdc (BIRD) or vtysh (FRR)"),
    }
    full.extend(command[1..].iter().cloned());
    lab.open_netns("router")?.enter().context("enter the router's namespace")?;
    let error = std::process::Command::new(&full[0]).args(&full[1..]).exec();
    Err(error).with_context(|| format!("run {}", full[0]))
}

/// Builds the lab with progress lines; on failure says how to clean up.
fn up(spec: LabSpec) -> anyhow::Result<Lab> {
    let name = spec.name.clone();
    Lab::preflight(&spec)?;
    say!(
        "{} {name}: {}{}, {} × {} × {}, {} store",
        style().bold("weft lab up"),
        weft_lab::promise::Design { mode: spec.mode, gateways: spec.gateways, client: spec.client },
        match (spec.ip_family, spec.underlay) {
            (IpFamily::Dual, weft_core::network::Family::Ipv6) => ", dual stack over an IPv6 underlay",
            (IpFamily::Dual, _) => ", dual stack",
            (IpFamily::Ipv6, _) => ", IPv6 only",
            _ => "",
        },
        count(spec.racks, "rack", "racks"),
        count(spec.nodes_per_rack, "node", "nodes"),
        count(spec.pods_per_node, "pod", "pods"),
        match spec.store {
            StoreKind::Sqlite => "sqlite".to_string(),
            StoreKind::Etcd if spec.etcd_members == 1 => "etcd".to_string(),
            StoreKind::Etcd => format!("etcd ({} members)", spec.etcd_members),
        }
    );
    let started = Instant::now();
    match Lab::up(spec, &weft_binary()?, &mut print_step) {
        Ok(lab) => {
            say!("  {name} is up in {}", millis(started.elapsed()));
            Ok(lab)
        }
        Err(e @ (weft_lab::LabError::Exists(_) | weft_lab::LabError::Invalid(_))) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "lab up {name} failed; what was built is left for a look, remove it with `weft lab down {name}`"
        ))),
    }
}

/// The demo's labs: each mode, then the overlay's two ways in from outside.
fn demo_labs() -> Vec<(String, LabSpec, &'static str)> {
    let mut labs: Vec<(String, LabSpec, &'static str)> = Mode::ALL
        .into_iter()
        .map(|mode| {
            (mode.name().to_string(), LabSpec::new(&format!("demo-{}", mode.name()), mode), about(mode))
        })
        .collect();
    labs.push((
        "gateways".into(),
        LabSpec { gateways: 2, ..LabSpec::new("demo-gateways", Mode::Vxlan) },
        "vxlan, and two gateway machines announce the pod network to the router by BGP",
    ));
    labs.push((
        "client".into(),
        LabSpec { client: true, ..LabSpec::new("demo-client", Mode::Vxlan) },
        "vxlan, and the outside client runs the agent to join the overlay",
    ));
    labs.push((
        "dual stack".into(),
        LabSpec { ip_family: IpFamily::Dual, ..LabSpec::new("demo-dual", Mode::Bgp) },
        "bgp, every machine and pod with an IPv4 and an IPv6 address; IPv6 routes by BGP too (MP-BGP)",
    ));
    labs.push((
        "ipv6 underlay".into(),
        LabSpec {
            ip_family: IpFamily::Dual,
            underlay: weft_core::network::Family::Ipv6,
            ..LabSpec::new("demo-underlay6", Mode::Vxlan)
        },
        "vxlan between the machines' IPv6 addresses, carrying pods of both families",
    ));
    labs
}

fn demo() -> anyhow::Result<()> {
    let style = style();
    say!(
        "{}: a lab for each design (2 racks × 2 nodes × 2 pods; l2: one segment of 3 nodes), on the \
         embedded store: up, check, down.\n",
        style.bold("weft lab demo")
    );
    let mut outcomes = Vec::new();
    for (title, spec, about) in demo_labs() {
        let name = spec.name.clone();
        say!("{}", style.bold(&format!("━━ {title}: {about}")));
        // A demo lab left by an earlier, interrupted demo goes first.
        if weft_lab::state::lab_dir(&name).exists() {
            weft_lab::down::down_named(&name)?;
        }
        let started = Instant::now();
        let lab = up(spec)?;
        let report = lab.check(weft_lab::lab::PROBE_TIMEOUT);
        let down_started = Instant::now();
        let removed = lab.down();
        let report = report?;
        say!();
        say_part!("{}", weft_lab::report::render(&report, style));
        let removed = removed?;
        say!(
            "\n  down: {} and {} removed in {}\n",
            count(removed.namespaces as u64, "namespace", "namespaces"),
            count(removed.processes as u64, "process", "processes"),
            millis(down_started.elapsed())
        );
        outcomes.push((title, report.ok, report.broken().count(), started.elapsed()));
    }
    say!("{}", style.bold("━━ summary"));
    let width = outcomes.iter().map(|(title, ..)| title.chars().count()).max().unwrap_or(0);
    for (title, ok, broken, took) in &outcomes {
        let verdict = if *ok {
            style.green("every promise holds")
        } else {
            style.red(&format!("{} broke a promise", count(*broken as u64, "probe", "probes")))
        };
        say!("  {title:<width$} {verdict}  {}", style.dim(&millis(*took)));
    }
    if outcomes.iter().any(|(_, ok, ..)| !ok) {
        bail!("the demo found broken promises (above)");
    }
    Ok(())
}

fn about(mode: Mode) -> &'static str {
    match mode {
        Mode::Route => "direct routes between the nodes of a rack; nothing crosses the router",
        Mode::Vxlan => "every node reaches every other through the VXLAN overlay",
        Mode::Auto => "direct routes within a rack, VXLAN across racks",
        Mode::Bgp => "every node announces its subnet to the router by BGP; no overlay",
        Mode::L2 => "pods live on the nodes' own segment: no routes, no overlay",
    }
}
