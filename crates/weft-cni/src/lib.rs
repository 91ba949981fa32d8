//! weft's CNI plugin: spec 1.1.0 (and 0.3.0 to 1.0.0 configs), built-in IPAM, routed or
//! bridged pod attachment.
//!
//! The plugin is synchronous and small: it reads its environment and stdin, makes a
//! handful of netlink requests, prints a result or an error object, and exits.

pub mod attach;
pub mod error;
pub mod ipam;
pub mod spec;

use attach::PodAddress;
use error::{code, CniError};
use ipam::{Ipam, Owner};
use ipnet::IpNet;
use serde_json::Value;
use spec::{
    CniResult, Command, Env, Interface, IpConfig, NetConf, RouteConfig, CURRENT_VERSION, SUPPORTED_VERSIONS,
};
use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use weft_core::{addr, AttachMode, NodeFile};
use weft_kernel::{format_mac, NetNs, Netlink};

pub const DEFAULT_STATE_DIR: &str = "/run/weft";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/weft";
pub const DEFAULT_BRIDGE: &str = "weft0";
const FALLBACK_MTU: u32 = 1500;

/// What the plugin prints and how it exits.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub exit_code: i32,
}

/// Runs one CNI invocation from the process environment and stdin.
pub fn run_from_process() -> Outcome {
    run(|name| std::env::var(name).ok(), std::io::stdin().lock())
}

/// Runs one CNI invocation. Errors become the spec's error object on stdout and a
/// non-zero exit code; panics too, so a runtime always gets an answer it can read.
pub fn run(vars: impl Fn(&str) -> Option<String>, mut stdin: impl Read) -> Outcome {
    let mut version = CURRENT_VERSION.to_string();
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&vars, &mut stdin, &mut version)));
    let result = outcome.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(CniError::new(code::KERNEL, "internal error", text))
    });
    match result {
        Ok(Some(value)) => Outcome { stdout: value.to_string(), exit_code: 0 },
        Ok(None) => Outcome { stdout: String::new(), exit_code: 0 },
        Err(e) => Outcome { stdout: e.to_json(&version).to_string(), exit_code: 1 },
    }
}

fn dispatch(
    vars: &impl Fn(&str) -> Option<String>,
    stdin: &mut impl Read,
    version: &mut String,
) -> Result<Option<Value>, CniError> {
    let env = Env::from_vars(vars)?;
    let mut input = Vec::new();
    stdin
        .read_to_end(&mut input)
        .map_err(|e| CniError::new(code::IO_FAILURE, "cannot read stdin", e.to_string()))?;
    let (env, conf) = match parse_request(env, &input, version)? {
        Request::Version(answer) => return Ok(Some(answer)),
        Request::Verb(env, conf) => (env, conf),
    };
    match env.command {
        Command::Add => add(&env, &conf).map(Some),
        Command::Del => del(&env, &conf).map(|()| None),
        Command::Check => check(&env, &conf).map(|()| None),
        Command::Status => status(&conf).map(|()| None),
        Command::Gc => gc(&conf).map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}

/// What one invocation asks, read and checked before anything is touched.
/// (Made once per process: its size does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// VERSION, and its answer.
    Version(Value),
    /// Any other verb, with its checked network configuration.
    Verb(Env, NetConf),
}

/// Reads an invocation's stdin for the verb its variables name. Pure: the CNI request
/// parser as the plugin runs it, apart from the process (the fuzz target calls it).
/// `version` becomes the config's version as soon as it is known and spoken, for errors to
/// answer in.
pub fn parse_request(env: Env, input: &[u8], version: &mut String) -> Result<Request, CniError> {
    if env.command == Command::Version {
        return Ok(Request::Version(version_info(input)));
    }
    // Errors answer in the config's version as soon as it is known and spoken.
    let conf = NetConf::decode(input)?;
    if SUPPORTED_VERSIONS.contains(&conf.version()) {
        *version = conf.version().to_string();
    }
    Ok(Request::Verb(env, conf.validated()?))
}

fn version_info(input: &[u8]) -> Value {
    // VERSION answers in the version it was asked in, when weft speaks it.
    let asked = serde_json::from_slice::<Value>(input)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()));
    serde_json::json!({
        "cniVersion": asked.as_deref().unwrap_or(CURRENT_VERSION),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

/// Kills the process at a named point when `WEFT_CRASH_AT` names it: the crash-safety
/// tests use it to stop an ADD half-way, as a power cut or `kill -9` would.
pub(crate) fn crash_point(name: &str) {
    if std::env::var_os("WEFT_CRASH_AT").is_some_and(|v| v == name) {
        // SAFETY: signalling ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

// ---- the node's plan: what the pod gets ----------------------------------------------

struct NodePlan {
    /// (subnet, the pods' gateway in it, the L2 segment it is a slice of)
    subnets: Vec<(IpNet, IpAddr, Option<IpNet>)>,
    attach: AttachMode,
    mtu: Option<u32>,
    /// The bridge the node file names (L2: the one holding the uplink).
    bridge: Option<String>,
}

impl NodePlan {
    /// Addresses IPAM must not hand out: a gateway inside the subnet.
    fn excluded(&self, subnet: &IpNet) -> Vec<IpAddr> {
        self.subnets.iter().filter(|(s, gw, _)| s == subnet && s.contains(gw)).map(|(_, gw, _)| *gw).collect()
    }
}

fn state_dir(conf: &NetConf) -> PathBuf {
    conf.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

fn data_dir(conf: &NetConf) -> PathBuf {
    conf.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The config's bridge, else the node file's, else weft's own.
fn bridge_name<'a>(conf: &'a NetConf, plan: &'a NodePlan) -> &'a str {
    conf.bridge.as_deref().or(plan.bridge.as_deref()).unwrap_or(DEFAULT_BRIDGE)
}

fn read_node_file(state_dir: &Path) -> Result<NodeFile, CniError> {
    let path = state_dir.join(weft_core::node::NODE_FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CniError::new(
            code::TRY_AGAIN_LATER,
            "node has no pod subnet yet",
            format!(
                "{} does not exist: is the weft agent running on this node? (or set \"subnet\")",
                path.display()
            ),
        ),
        _ => CniError::new(code::IO_FAILURE, "cannot read node file", format!("{}: {e}", path.display())),
    })?;
    NodeFile::parse(&text).map_err(|e| {
        CniError::new(code::DECODING_FAILURE, "node file is corrupt", format!("{}: {e}", path.display()))
    })
}

fn node_plan(conf: &NetConf) -> Result<NodePlan, CniError> {
    type Subnets = Vec<(IpNet, Option<IpAddr>, Option<IpNet>)>;
    let (subnets, node_attach, node_mtu, bridge): (Subnets, _, _, _) = if conf.subnet.is_some() {
        (conf.subnets().into_iter().map(|s| (s, None, None)).collect(), None, None, None)
    } else {
        let node = read_node_file(&state_dir(conf))?;
        let subnets = node.subnets.iter().map(|s| (s.subnet, s.gateway, s.segment)).collect();
        (subnets, node.attach, node.mtu, node.bridge)
    };
    let attach = conf.attach.or(node_attach).unwrap_or_default();
    let invalid = |details: String| CniError::new(code::INVALID_NETWORK_CONFIG, "invalid subnet", details);
    if subnets.is_empty() {
        return Err(invalid("no subnet given".into()));
    }
    let mut planned = Vec::new();
    for (subnet, gateway, segment) in subnets {
        if planned.iter().any(|(s, _, _): &(IpNet, IpAddr, _)| s.addr().is_ipv4() == subnet.addr().is_ipv4())
        {
            return Err(invalid(format!("two subnets of one address family ({subnet})")));
        }
        let gateway = match (gateway, attach) {
            (Some(gateway), _) => gateway,
            (None, AttachMode::Routed) => addr::routed_gateway(&subnet),
            (None, AttachMode::Bridge) => addr::first_host(&subnet)
                .ok_or_else(|| invalid(format!("{subnet} has no room for a gateway")))?,
        };
        if segment.is_some() && attach != AttachMode::Bridge {
            return Err(invalid(format!(
                "{subnet} is a slice of an L2 segment: pods must attach to its bridge"
            )));
        }
        if let (Some(_), Some(asked), Some(theirs)) = (segment, &conf.bridge, &bridge) {
            if asked != theirs {
                return Err(invalid(format!(
                    "{subnet} is a slice of the L2 segment behind bridge {theirs}; the config's bridge {asked} \
                     would strand pods off it"
                )));
            }
        }
        planned.push((subnet, gateway, segment));
    }
    Ok(NodePlan { subnets: planned, attach, mtu: conf.mtu.or(node_mtu), bridge })
}

/// Opens the pod's namespace, refusing the plugin's own: turning the node's namespace
/// into a "pod" would take the node's network apart.
fn open_pod_netns(path: &Path) -> Result<NetNs, CniError> {
    let netns = NetNs::open(path).map_err(|e| match e.errno() {
        Some(libc::ENOENT) => CniError::new(
            code::UNKNOWN_CONTAINER,
            "container network namespace does not exist",
            e.to_string(),
        ),
        _ => CniError::new(code::INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace", e.to_string()),
    })?;
    if netns.is_current()? {
        return Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            "CNI_NETNS is the plugin's own network namespace",
            path.display().to_string(),
        ));
    }
    Ok(netns)
}

// ---- verbs ---------------------------------------------------------------------------

fn add(env: &Env, conf: &NetConf) -> Result<Value, CniError> {
    let pod_name = spec::pod_from_args(env.args.as_deref())?;
    let plan = node_plan(conf)?;
    let netns_path = env.netns.as_deref().expect("checked by Env");
    let netns = open_pod_netns(netns_path)?;
    let mut previous = match &conf.prev_result {
        Some(value) => CniResult::from_prev_result(value)?,
        None => CniResult::default(),
    };
    let ipam = Ipam::open(&data_dir(conf), conf.name())?;
    let owner = Owner::new(env.container_id(), env.ifname());
    let mut addresses = Vec::new();
    for (subnet, gateway, segment) in &plan.subnets {
        match ipam.reserve(&owner, pod_name.as_ref(), subnet, &plan.excluded(subnet)) {
            Ok(ip) => {
                // L2 pods see the whole segment as on-link: its prefix, not their slice's.
                let prefix = match (plan.attach, segment) {
                    (AttachMode::Routed, _) => addr::host_prefix_len(ip),
                    (AttachMode::Bridge, Some(segment)) => segment.prefix_len(),
                    (AttachMode::Bridge, None) => subnet.prefix_len(),
                };
                let address = IpNet::new(ip, prefix).expect("prefix fits the family");
                addresses.push(PodAddress { address, gateway: *gateway, subnet: *subnet, segment: *segment });
            }
            Err(e) => {
                release(&ipam, &addresses);
                return Err(e);
            }
        }
    }
    crash_point("after-reserve");
    let attached = (|| {
        let mut host = Netlink::open()?;
        let mut pod = Netlink::open_in(&netns)?;
        let mtu = match plan.mtu {
            Some(mtu) => mtu,
            None => attach::default_route_mtu(&mut host)?.unwrap_or(FALLBACK_MTU),
        };
        let spec = attach::PodSpec {
            network: conf.name(),
            container_id: env.container_id(),
            ifname: env.ifname(),
            netns: &netns,
            addresses: &addresses,
            attach: plan.attach,
            mtu,
            bridge: bridge_name(conf, &plan),
        };
        attach::add(&mut host, &mut pod, &spec).map(|a| (a, mtu))
    })();
    let (attached, mtu) = attached.inspect_err(|_| release(&ipam, &addresses))?;

    // Our interfaces go after the ones a previous plugin reported, so its indices hold.
    if let Some((name, mac)) = attached.bridge {
        previous.interfaces.push(Interface { name, mac: Some(format_mac(&mac)), ..Default::default() });
    }
    previous.interfaces.push(Interface {
        name: attached.host_name,
        mac: Some(format_mac(&attached.host_mac)),
        mtu: Some(mtu),
        ..Default::default()
    });
    previous.interfaces.push(Interface {
        name: env.ifname().to_string(),
        mac: Some(format_mac(&attached.pod_mac)),
        mtu: Some(mtu),
        sandbox: Some(netns_path.display().to_string()),
        ..Default::default()
    });
    let pod_index = previous.interfaces.len() - 1;
    for address in &addresses {
        previous.ips.push(IpConfig {
            address: address.address,
            gateway: Some(address.gateway),
            interface: Some(pod_index),
        });
        let default = if address.address.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        previous.routes.push(RouteConfig {
            dst: default.parse().expect("valid default"),
            gw: Some(address.gateway),
            other: Default::default(),
        });
    }
    if conf.dns.is_some() {
        previous.dns = conf.dns.clone();
    }
    Ok(previous.to_version(conf.version()))
}

fn release(ipam: &Ipam, addresses: &[PodAddress]) {
    for address in addresses {
        let _ = ipam.release_ip(address.address.addr());
    }
}

fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    // DEL needs neither the node file nor the pod's namespace: whatever is gone is done.
    // It goes on past a failure and reports the first one, so one stuck part does not
    // keep the others from being cleaned up.
    let mut errors: Vec<CniError> = Vec::new();
    let mut host = Netlink::open()?;
    let mut pod = None;
    if let Some(path) = &env.netns {
        // The node's own namespace is never a pod's: nothing in it is touched.
        if let Some(netns) = NetNs::open(path).ok().filter(|ns| !ns.is_current().unwrap_or(true)) {
            match Netlink::open_in(&netns) {
                Ok(socket) => pod = Some(socket),
                Err(e) => errors.push(e.into()),
            }
        }
    }
    let retired = attach::retire(&mut host, pod.as_mut(), env.container_id(), env.ifname());
    let released = Ipam::open(&data_dir(conf), conf.name())
        .and_then(|ipam| ipam.release(&Owner::new(env.container_id(), env.ifname())));
    match retired {
        Ok(Some(index)) => delete_in_background(&mut host, index),
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    if let Err(e) = released {
        errors.push(e);
    }
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Deletes a retired link from a child process, so the runtime does not wait the ≈ 17 ms
/// the kernel spends unregistering a device (an RCU barrier). By then the link is down,
/// renamed and routeless, and its addresses are free: nothing depends on it any more.
fn delete_in_background(host: &mut Netlink, index: u32) {
    // SAFETY: the plugin is single-threaded; the child only makes syscalls and _exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: plain syscalls; the child lets go of the runtime's pipes first, so
            // the runtime sees the plugin's output end when the parent exits.
            unsafe {
                let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if devnull >= 0 {
                    for fd in 0..3 {
                        libc::dup2(devnull, fd);
                    }
                }
                libc::setsid();
            }
            let _ = host.delete_link(index);
            // SAFETY: leave without running the parent's atexit handlers or flushing its buffers.
            unsafe { libc::_exit(0) }
        }
        -1 => {
            let _ = host.delete_link(index);
        }
        _ => {}
    }
}

fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    require_version(conf, "0.4.0", "CHECK")?;
    let previous = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_NETWORK_CONFIG, "CHECK needs a prevResult", ""))?;
    let previous = CniResult::from_prev_result(previous)?;
    let netns_path = env.netns.as_deref().expect("checked by Env");
    let sandbox = netns_path.display().to_string();
    let pod_index = previous
        .interfaces
        .iter()
        .position(|i| i.name == env.ifname() && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| {
            CniError::new(
                code::CHECK_MISMATCH,
                "prevResult does not list the pod interface",
                format!("{} in {sandbox}", env.ifname()),
            )
        })?;
    let addresses: Vec<(IpNet, Option<IpAddr>)> = previous
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(pod_index))
        .map(|ip| (ip.address, ip.gateway))
        .collect();
    let plan = node_plan(conf)?;
    let netns = open_pod_netns(netns_path)?;
    let mut host = Netlink::open()?;
    let mut pod = Netlink::open_in(&netns)?;
    attach::check(
        &mut host,
        &mut pod,
        &attach::Expected {
            network: conf.name(),
            container_id: env.container_id(),
            ifname: env.ifname(),
            pod_mac: previous.interfaces[pod_index].mac.as_deref(),
            addresses: addresses.clone(),
            attach: plan.attach,
            bridge: bridge_name(conf, &plan),
        },
    )?;
    let owned =
        Ipam::open(&data_dir(conf), conf.name())?.owned_by(&Owner::new(env.container_id(), env.ifname()))?;
    for (address, _) in &addresses {
        if !owned.contains(&address.addr()) {
            return Err(CniError::new(
                code::CHECK_MISMATCH,
                "pod network differs from what ADD made",
                format!("IPAM holds no reservation of {} for this pod", address.addr()),
            ));
        }
    }
    Ok(())
}

/// CHECK arrived in 0.4.0, STATUS and GC in 1.1.0: older configs cannot ask for them.
fn require_version(conf: &NetConf, minimum: &str, verb: &str) -> Result<(), CniError> {
    if conf.version_at_least(minimum) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version does not allow {verb}"),
            format!("{verb} needs cniVersion {minimum} or later, the config says {}", conf.version()),
        ))
    }
}

fn status(conf: &NetConf) -> Result<(), CniError> {
    require_version(conf, "1.1.0", "STATUS")?;
    let unavailable = |e: CniError| CniError::new(code::NOT_AVAILABLE, "plugin not available", e.to_string());
    let plan = node_plan(conf).map_err(unavailable)?;
    let ipam = Ipam::open(&data_dir(conf), conf.name()).map_err(unavailable)?;
    for (subnet, _, _) in &plan.subnets {
        if ipam.is_full(subnet, &plan.excluded(subnet)).map_err(unavailable)? {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                "plugin not available",
                format!("subnet {subnet} is full"),
            ));
        }
    }
    Ok(())
}

fn gc(conf: &NetConf) -> Result<(), CniError> {
    require_version(conf, "1.1.0", "GC")?;
    // Without the list, GC cannot tell the living from the dead: refuse rather than guess.
    let valid = conf.valid_attachments().ok_or_else(|| {
        CniError::new(code::INVALID_NETWORK_CONFIG, "GC needs cni.dev/valid-attachments", "")
    })?;
    let owners: HashSet<Owner> = valid.iter().map(|a| Owner::new(&a.container_id, &a.ifname)).collect();
    let pairs: HashSet<(String, String)> =
        valid.iter().map(|a| (a.container_id.clone(), a.ifname.clone())).collect();
    // Addresses first: the attachments whose reservations go are the ones whose
    // unlabelled veths (an ADD killed half-way) may go too. Both halves run even if one
    // fails; the first error is reported.
    let freed = Ipam::open(&data_dir(conf), conf.name()).and_then(|ipam| ipam.retain(&owners));
    let orphans: HashSet<(String, String)> = match &freed {
        Ok(freed) => freed.iter().map(|(_, o)| (o.container_id.clone(), o.ifname.clone())).collect(),
        Err(_) => HashSet::new(),
    };
    let links = Netlink::open()
        .map_err(CniError::from)
        .and_then(|mut host| attach::collect_garbage(&mut host, conf.name(), &pairs, &orphans));
    freed?;
    links?;
    Ok(())
}
