//! `weft lab ...`: the lab's commands, with progress lines and tables for people and JSON
//! for scripts. The lab itself is the weft-lab crate.

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weft_lab::{Lab, LabSpec, Mode, Step, StoreKind, Style};

const DEFAULT_NAME: &str = "lab";

#[derive(Subcommand)]
pub enum LabCommand {
    /// Build a lab: racks, a router, an outside client, nodes running agents, pods.
    Up {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
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
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreArg,
        /// Members of the etcd cluster (with --store etcd): 1, 3 or 5, each a machine of its
        /// own (etcd1, etcd2, …) on a rack, the store URL listing them all.
        #[arg(long, default_value_t = 1)]
        etcd_members: u32,
        /// Seconds an agent's lease lives without renewal.
        #[arg(long, default_value_t = 30)]
        lease_ttl: u64,
        /// Seconds between the agents' full resyncs.
        #[arg(long, default_value_t = 2)]
        resync: u64,
        /// Gateway machines (g1, g2, …) that join the overlay and announce the pod network
        /// to the router by BGP (vxlan and auto modes).
        #[arg(long, default_value_t = 0)]
        gateways: u32,
        /// The outside client runs the agent as a client, joining the overlay.
        #[arg(long)]
        client: bool,
        /// What speaks BGP on the router.
        #[arg(long, value_enum, default_value = "bird")]
        router: RouterArg,
        /// Nodes and gateways in the router's own AS (iBGP) rather than their own (eBGP).
        #[arg(long)]
        ibgp: bool,
        /// BGP graceful restart: the router keeps a stopped agent's routes this many seconds.
        #[arg(long, default_value_t = 0)]
        graceful_restart: u16,
    },
    /// Probe what reaches what and hold it against what the mode promises (exit 1 if a
    /// promise is broken).
    Check {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// The matrix as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for each probe's answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Run a command inside a member's network namespace: a pod (n1-p1), a node (n1), a
    /// rack (rack1), a gateway (g1), an etcd member (etcd1), `router` or `outside`. (Only the
    /// network namespace: /sys stays the machine's, unlike `ip netns exec`.)
    Exec {
        /// The lab.
        lab: String,
        /// The member.
        member: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Remove a lab (or every lab): processes, namespaces, files. Also after a crash.
    Down {
        #[arg(long, default_value = DEFAULT_NAME, conflicts_with = "all")]
        name: String,
        #[arg(long)]
        all: bool,
    },
    /// The lab as a picture (racks, router, nodes, pods, tunnels, BGP sessions), with a
    /// traced path drawn over it: a self-contained HTML page and/or an SVG.
    Show {
        /// The lab.
        lab: String,
        #[arg(long)]
        html: Option<PathBuf>,
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
    // SAFETY: isatty only inspects the descriptor.
    let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    Style { color: terminal && std::env::var_os("NO_COLOR").is_none() }
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

fn print_step(step: &Step) {
    let style = style();
    println!("  {} {:<72} {}", style.green("✓"), step.what, style.dim(&millis(step.took)));
}

pub fn run(command: LabCommand) -> anyhow::Result<()> {
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
        } => {
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
                graceful_restart,
                router: match router {
                    RouterArg::Bird => weft_lab::topology::RouterKind::Bird,
                    RouterArg::Frr => weft_lab::topology::RouterKind::Frr,
                },
                ..defaults
            };
            up(spec)?;
            println!(
                "\nNext:  weft lab check --name {name}   ·   weft lab exec {name} n1-p1 -- ip addr   ·   weft lab down --name {name}"
            );
            Ok(())
        }
        LabCommand::Check { name, json, timeout } => {
            let lab = Lab::open(&name, &weft_binary()?)?;
            let report = lab.check(Duration::from_secs(timeout))?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("weft lab check {name}: {}\n", report.design);
                print!("{}", weft_lab::report::render(&report, style()));
            }
            if !report.ok {
                bail!(
                    "{} probe(s) of lab {name} broke the promises of {}",
                    report.broken().count(),
                    report.design
                );
            }
            Ok(())
        }
        LabCommand::Exec { lab, member, command } => {
            let lab = Lab::open(&lab, &weft_binary()?)?;
            lab.open_netns(&member)?.enter().with_context(|| format!("enter {member}'s namespace"))?;
            let error = std::process::Command::new(&command[0]).args(&command[1..]).exec();
            Err(error).with_context(|| format!("run {} in {member}", command[0]))
        }
        LabCommand::Down { name, all } => {
            let started = Instant::now();
            let removed = if all { weft_lab::down::down_all()? } else { weft_lab::down::down_named(&name)? };
            let labs = if removed.labs.is_empty() { "no lab".to_string() } else { removed.labs.join(", ") };
            println!(
                "removed {labs}: {} namespaces, {} processes, in {}",
                removed.namespaces,
                removed.processes,
                millis(started.elapsed())
            );
            Ok(())
        }
        LabCommand::Show { lab, html, svg, trace, verify } => {
            if html.is_none() && svg.is_none() {
                bail!("say where the picture goes: --html FILE and/or --svg FILE");
            }
            let lab = Lab::open(&lab, &weft_binary()?)?;
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
                    println!("wrote {}", path.display());
                }
            }
            Ok(())
        }
        LabCommand::Demo => demo(),
    }
}

/// Builds the lab with progress lines; on failure says how to clean up.
fn up(spec: LabSpec) -> anyhow::Result<Lab> {
    let name = spec.name.clone();
    println!(
        "{} {name}: {}, {} rack(s) × {} node(s) × {} pod(s), {} store",
        style().bold("weft lab up"),
        weft_lab::promise::Design { mode: spec.mode, gateways: spec.gateways, client: spec.client },
        spec.racks,
        spec.nodes_per_rack,
        spec.pods_per_node,
        match spec.store {
            StoreKind::Sqlite => "sqlite".to_string(),
            StoreKind::Etcd if spec.etcd_members == 1 => "etcd".to_string(),
            StoreKind::Etcd => format!("etcd ({} members)", spec.etcd_members),
        }
    );
    let started = Instant::now();
    match Lab::up(spec, &weft_binary()?, &mut print_step) {
        Ok(lab) => {
            println!("  lab {name} is up in {}", millis(started.elapsed()));
            Ok(lab)
        }
        Err(e @ (weft_lab::LabError::Exists(_) | weft_lab::LabError::Invalid(_))) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "lab up {name} failed; what was built is left for a look, remove it with `weft lab down --name {name}`"
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
    labs
}

fn demo() -> anyhow::Result<()> {
    let style = style();
    println!(
        "{}: a lab for each design (2 racks × 2 nodes × 2 pods; l2: one segment of 3 nodes), on the \
         embedded store: up, check, down.\n",
        style.bold("weft lab demo")
    );
    let mut outcomes = Vec::new();
    for (title, spec, about) in demo_labs() {
        let name = spec.name.clone();
        println!("{}", style.bold(&format!("━━ {title}: {about}")));
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
        println!();
        print!("{}", weft_lab::report::render(&report, style));
        let removed = removed?;
        println!(
            "\n  down: {} namespaces and {} processes removed in {}\n",
            removed.namespaces,
            removed.processes,
            millis(down_started.elapsed())
        );
        outcomes.push((title, report.ok, report.broken().count(), started.elapsed()));
    }
    println!("{}", style.bold("━━ summary"));
    for (title, ok, broken, took) in &outcomes {
        let verdict = if *ok {
            style.green("every promise holds")
        } else {
            style.red(&format!("{broken} probe(s) broke a promise"))
        };
        println!("  {title:<9} {verdict}  {}", style.dim(&millis(*took)));
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
