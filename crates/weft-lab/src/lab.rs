//! A lab: built from its spec, its processes (agents, etcd members, the router's BGP), its
//! pods, and the probes of `check`. Everything it makes is named in its state before it is
//! made.

use crate::process::{self, spawn_daemon};
use crate::promise::{probes, Design, Probe};
use crate::report::Report;
use crate::router::Neighbor;
use crate::state::{lab_dir, LabState, PodRecord, Process, LAB_ROOT};
use crate::topology::{
    IpFamily, LabSpec, Member, Mode, StoreKind, Topology, L2_SLICE_LEN6, OUTSIDE_CLIENT_IP,
    OUTSIDE_CLIENT_IP6, OUTSIDE_GATEWAY_IP, OUTSIDE_GATEWAY_IP6, OUTSIDE_SUBNET, OUTSIDE_SUBNET6, POD_CIDR,
    POD_CIDR6, ROUTER_ASN,
};
use crate::wiring::{cable, create_bridge, create_machine, create_namespace, open_namespace, sysctl_in, End};
use crate::LabError;
use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_core::network::Family;
use weft_core::plan::PeerPath;
use weft_core::status::{StatusFile, STATUS_FILE_NAME};
use weft_kernel::NetNs;
use weft_trace::probe;

/// One finished step of building a lab, for progress lines.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    pub took: Duration,
}

/// How long `up` waits for agents to lease and to agree, and `check` for echo replies.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Lab {
    pub state: LabState,
    /// The weft binary: the agents and the CNI plugin.
    weft: PathBuf,
    /// Processes this process started, reaped when they stop.
    pub(crate) children: HashMap<u32, Child>,
    tear_down_on_drop: bool,
}

impl Lab {
    /// Everything `up` checks before it builds anything: the spec, the programs it needs, and
    /// that neither the lab nor one of its namespaces exists. The command line asks first, so
    /// that it prints nothing before a refusal. (`up` asks again; claiming the lab's
    /// directory settles a race between two `up`s of one name.)
    pub fn preflight(spec: &LabSpec) -> Result<(), LabError> {
        spec.validate()?;
        if spec.store == StoreKind::Etcd && !process::installed("etcd") {
            return Err(LabError::Invalid(
                "--store etcd needs the etcd program (Debian: etcd-server)".into(),
            ));
        }
        if lab_dir(&spec.name).exists() {
            return Err(LabError::Exists(spec.name.clone()));
        }
        if let Some(taken) = Topology::of(spec)
            .namespaces()
            .into_iter()
            .find(|ns| Path::new(weft_kernel::netns::NETNS_RUN_DIR).join(ns).exists())
        {
            return Err(LabError::Invalid(format!(
                "namespace {taken} exists, but no lab {} does: remove it with `ip netns delete {taken}` \
                 (or `weft lab down {}`), or choose another name",
                spec.name, spec.name
            )));
        }
        Ok(())
    }

    /// Builds the lab `spec` asks for, reporting each step to `progress`. On failure what was
    /// built stays for inspection; `down` removes it.
    pub fn up(spec: LabSpec, weft: &Path, progress: &mut dyn FnMut(&Step)) -> Result<Lab, LabError> {
        Lab::preflight(&spec)?;
        let topology = Topology::of(&spec);
        let dir = lab_dir(&spec.name);
        // Claiming the directory claims the name: of two `up`s with one name, one fails here.
        std::fs::create_dir_all(LAB_ROOT).map_err(|e| LabError::io(format!("create {LAB_ROOT}"), e))?;
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => LabError::Exists(spec.name.clone()),
            _ => LabError::io(format!("create {}", dir.display()), e),
        })?;
        let store_url = match spec.store {
            StoreKind::Sqlite => format!("sqlite:{}", dir.join("store.db").display()),
            StoreKind::Etcd => topology.etcd_url().expect("an etcd store has members"),
        };
        let pods = topology
            .pods
            .iter()
            .map(|p| PodRecord { name: p.name.clone(), node: p.node.clone(), address: None, address6: None })
            .collect();
        let state = LabState {
            spec: spec.clone(),
            created_at: weft_core::now(),
            store_url,
            pods,
            agents: Default::default(),
            etcd_members: Default::default(),
            router: Vec::new(),
            cuts: Default::default(),
        };
        state.save()?;
        if spec.bgp_password {
            write_password_file(&state.bgp_password_file())?;
        }
        let mut lab =
            Lab { state, weft: weft.to_path_buf(), children: HashMap::new(), tear_down_on_drop: false };
        lab.build(&topology, progress)?;
        Ok(lab)
    }

    /// A lab that `up` built earlier, perhaps in another process.
    pub fn open(name: &str, weft: &Path) -> Result<Lab, LabError> {
        crate::topology::validate_name(name)?;
        Ok(Lab {
            state: LabState::load(name)?,
            weft: weft.to_path_buf(),
            children: HashMap::new(),
            tear_down_on_drop: false,
        })
    }

    /// Removes the lab when this value is dropped (tests, also when they fail).
    pub fn tear_down_on_drop(&mut self) {
        self.tear_down_on_drop = true;
    }

    /// The lab's topology with the pods it has now.
    pub fn topology(&self) -> Topology {
        let mut topology = Topology::of(&self.state.spec);
        topology.pods = self
            .state
            .pods
            .iter()
            .map(|p| crate::topology::Pod {
                name: p.name.clone(),
                node: p.node.clone(),
                netns: crate::topology::netns_name(&self.state.spec.name, &p.name),
            })
            .collect();
        topology
    }

    pub fn name(&self) -> &str {
        &self.state.spec.name
    }

    /// A member's namespace (a pod, node, rack, gateway, etcd member, `router` or `outside`).
    pub fn netns(&self, member: &str) -> Result<String, LabError> {
        let topology = self.topology();
        match topology.member(member) {
            Some(m) => Ok(topology.netns_of(m).to_string()),
            None => Err(LabError::Invalid(format!(
                "lab {} has no {member:?}; it has {}",
                self.name(),
                topology.member_names().join(", ")
            ))),
        }
    }

    /// A member's namespace, opened.
    pub fn open_netns(&self, member: &str) -> Result<NetNs, LabError> {
        open_namespace(&self.netns(member)?)
    }

    pub fn pod_address(&self, pod: &str) -> Option<Ipv4Addr> {
        self.state.pods.iter().find(|p| p.name == pod)?.address
    }

    fn build(&mut self, topology: &Topology, progress: &mut dyn FnMut(&Step)) -> Result<(), LabError> {
        let timed = |what: String, started: Instant, progress: &mut dyn FnMut(&Step)| {
            progress(&Step { what, took: started.elapsed() });
        };

        let started = Instant::now();
        let router = create_machine(&topology.router_netns)?;
        let outside = create_machine(&topology.outside_netns)?;
        sysctl_in(&router, "net.ipv4.ip_forward", "1")?;
        let dual = topology.ip_family.has_ipv6();
        if dual {
            sysctl_in(&router, "net.ipv6.conf.all.forwarding", "1")?;
        }
        let outside_net: Ipv4Net = OUTSIDE_SUBNET.parse().expect("a network");
        let v6 = |ip: Ipv6Addr| dual.then(|| Ipv6Net::new(ip, 64).expect("/64"));
        // An IPv6-only lab: the machines keep no IPv4 address.
        let only6 = !topology.ip_family.has_ipv4();
        cable(
            &End::host(
                &router,
                "outside",
                Ipv4Net::new(OUTSIDE_GATEWAY_IP, outside_net.prefix_len()).expect("/24"),
                None,
            )
            .without_ipv4(only6)
            .and_ipv6(v6(OUTSIDE_GATEWAY_IP6), None),
            &End::host(
                &outside,
                "eth0",
                Ipv4Net::new(OUTSIDE_CLIENT_IP, outside_net.prefix_len()).expect("/24"),
                Some(OUTSIDE_GATEWAY_IP),
            )
            .without_ipv4(only6)
            .and_ipv6(v6(OUTSIDE_CLIENT_IP6), Some(OUTSIDE_GATEWAY_IP6)),
        )?;
        timed(
            match (dual, only6) {
                (_, true) => {
                    format!("router, and the outside client at {OUTSIDE_CLIENT_IP6} ({OUTSIDE_SUBNET6})")
                }
                (false, _) => {
                    format!("router, and the outside client at {OUTSIDE_CLIENT_IP} ({OUTSIDE_SUBNET})")
                }
                (true, false) => format!(
                    "router, and the outside client at {OUTSIDE_CLIENT_IP} ({OUTSIDE_SUBNET}) and \
                     {OUTSIDE_CLIENT_IP6} ({OUTSIDE_SUBNET6})"
                ),
            },
            started,
            progress,
        );

        for rack in &topology.racks {
            let started = Instant::now();
            let switch = create_machine(&rack.netns)?;
            let bridge = create_bridge(&switch)?;
            let gateway = Ipv4Net::new(rack.gateway, rack.subnet.prefix_len()).expect("/24");
            let gateway6 = topology.ipv6(rack.gateway);
            cable(
                &End::port(&switch, "router", bridge),
                &End::host(&router, &rack.name, gateway, None)
                    .without_ipv4(only6)
                    .and_ipv6(gateway6.and_then(v6), None),
            )?;
            // Nodes, gateways and etcd members plug in alike: eth0 on a port named after them.
            let machines = topology
                .nodes
                .iter()
                .filter(|n| n.rack == rack.number)
                .map(|n| (&n.name, &n.netns, n.ip, ""))
                .chain(
                    topology
                        .gateways
                        .iter()
                        .filter(|g| g.rack == rack.number)
                        .map(|g| (&g.name, &g.netns, g.ip, "gateway ")),
                )
                .chain(
                    topology
                        .etcd
                        .iter()
                        .filter(|e| e.rack == rack.number)
                        .map(|e| (&e.name, &e.netns, e.ip, "")),
                );
            let mut nodes = Vec::new();
            for (name, netns, ip, kind) in machines {
                let ns = create_machine(netns)?;
                let address = Ipv4Net::new(ip, rack.subnet.prefix_len()).expect("/24");
                cable(
                    &End::port(&switch, name, bridge),
                    &End::host(&ns, "eth0", address, Some(rack.gateway))
                        .without_ipv4(only6)
                        .and_ipv6(topology.ipv6(ip).and_then(v6), gateway6),
                )?;
                match topology.ipv6(ip).filter(|_| only6) {
                    Some(ip6) => nodes.push(format!("{kind}{name} {ip6}")),
                    None => nodes.push(format!("{kind}{name} {ip}")),
                }
            }
            let segments = match (rack.subnet6, only6) {
                (Some(v6), true) => v6.to_string(),
                (Some(v6), false) => format!("{} + {v6}", rack.subnet),
                (None, _) => rack.subnet.to_string(),
            };
            timed(format!("{} {segments}: {}", rack.name, nodes.join(", ")), started, progress);
        }

        if self.state.spec.store == StoreKind::Etcd {
            let started = Instant::now();
            let leader = self.start_store()?;
            let members: Vec<String> = topology.etcd.iter().map(|e| format!("{} {}", e.name, e.ip)).collect();
            let count = match members.len() {
                1 => "1 member".to_string(),
                n => format!("{n} members"),
            };
            timed(format!("etcd: {count} {}, leader {leader}", members.join(", ")), started, progress);
        }
        let started = Instant::now();
        let network = self.init_network()?;
        timed(
            format!(
                "store {}: network {network}, backend {}",
                self.state.store_url,
                self.state.spec.mode.name()
            ),
            started,
            progress,
        );

        if self.state.spec.router_speaks_bgp() {
            let started = Instant::now();
            self.start_router(topology)?;
            timed(
                format!(
                    "router speaks BGP ({}, AS {ROUTER_ASN}) with {}",
                    self.state.spec.router.name(),
                    self.bgp_neighbors(topology)
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                started,
                progress,
            );
        }

        if !self.state.spec.start_agents {
            return Ok(());
        }
        let started = Instant::now();
        for node in &topology.nodes {
            self.start_agent(&node.name)?;
        }
        let subnets =
            self.wait_for_node_files(&topology.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>())?;
        timed(format!("agents leased {}", subnets.join(", ")), started, progress);

        if !topology.pods.is_empty() {
            let started = Instant::now();
            for pod in &topology.pods {
                self.wire_pod(&pod.node, &pod.name)?;
            }
            timed(
                format!(
                    "{} pods wired by the CNI plugin (ADD), {} per node",
                    topology.pods.len(),
                    self.state.spec.pods_per_node
                ),
                started,
                progress,
            );
        }

        if !topology.gateways.is_empty() || topology.client {
            let started = Instant::now();
            let mut joined = Vec::new();
            for gateway in &topology.gateways {
                self.start_agent(&gateway.name)?;
                joined.push(format!("gateway {}", gateway.name));
            }
            if topology.client {
                self.start_agent("outside")?;
                joined.push("the outside client".to_string());
            }
            timed(format!("{} joined the overlay", joined.join(", ")), started, progress);
        }

        let started = Instant::now();
        self.wait_converged()?;
        timed(
            format!("agents agree: each node programs its {} peers", topology.nodes.len() - 1),
            started,
            progress,
        );
        if self.state.spec.router_speaks_bgp() {
            let started = Instant::now();
            let learned = self.wait_for_router_routes(topology)?;
            timed(format!("router learned {learned} by BGP"), started, progress);
        }
        Ok(())
    }

    /// Writes the network config (the lab's mode) into the store.
    /// Returns the pods' network.
    fn init_network(&self) -> Result<String, LabError> {
        let mut config = weft_core::network::NetworkConfig::new(POD_CIDR.parse().expect("a network"));
        if self.state.spec.mode == Mode::L2 {
            // The pods' network is rack 1's segment; nodes lease slices of its upper half.
            let rack = &self.topology().racks[0];
            config = weft_core::network::NetworkConfig::new(ipnet::IpNet::V4(rack.subnet));
            config.subnet_len = crate::topology::L2_SLICE_LEN;
            config.gateway = Some(rack.gateway.into());
            let lower_half =
                ipnet::Ipv4Net::new(rack.subnet.network(), rack.subnet.prefix_len() + 1).expect("a /25");
            config.reserved = vec![ipnet::IpNet::V4(lower_half)];
        }
        let topology = self.topology();
        if topology.ip_family.has_ipv6() {
            // Dual stack: the second pool is the pods' IPv6 network (l2: rack 1's IPv6
            // segment, its upper half sliced as the IPv4 one is).
            let mut pool = weft_core::network::Pool::new(POD_CIDR6.parse().expect("a network"));
            if let (Mode::L2, Some(segment)) = (self.state.spec.mode, topology.racks[0].subnet6) {
                pool = weft_core::network::Pool::new(ipnet::IpNet::V6(segment));
                pool.subnet_len = L2_SLICE_LEN6;
                pool.gateway = topology.ipv6(topology.racks[0].gateway).map(Into::into);
                let lower_half = Ipv6Net::new(segment.network(), segment.prefix_len() + 1).expect("a /65");
                pool.reserved = vec![ipnet::IpNet::V6(lower_half)];
            }
            config.ipv6 = Some(pool);
            if !topology.ip_family.has_ipv4() {
                // IPv6 only: the IPv6 pool alone.
                config = config.for_family(Family::Ipv6).expect("an IPv6 pool");
            }
        }
        config.backend = self.state.spec.mode.backend();
        // Gateways and the client send into the overlay without holding a lease: the nodes'
        // overlay filter takes VXLAN from them by name of their addresses.
        // (Of the underlay's family.)
        let v6 = self.state.spec.underlay_family() == Family::Ipv6;
        let address = |ip: Ipv4Addr| -> std::net::IpAddr {
            match topology.ipv6(ip).filter(|_| v6) {
                Some(ip6) => ip6.into(),
                None => ip.into(),
            }
        };
        config.overlay_sources =
            topology.gateways.iter().map(|g| ipnet::IpNet::from(address(g.ip))).collect();
        if topology.client {
            let client: std::net::IpAddr =
                if v6 { OUTSIDE_CLIENT_IP6.into() } else { OUTSIDE_CLIENT_IP.into() };
            config.overlay_sources.push(client.into());
        }
        let cidrs: Vec<String> = config.pools().iter().map(|p| p.cidr.to_string()).collect();
        let url = self.state.store_url.clone();
        // From the router's namespace, which reaches every etcd member.
        let router = open_namespace(&self.topology().router_netns)?;
        router
            .run(|| weft_store::open(&url).and_then(|store| store.init_network(&config, false)))
            .map_err(|e| LabError::kernel("enter the router's namespace", e))?
            .map_err(|source| LabError::Store { what: format!("network init in {url}"), source })?;
        Ok(cidrs.join(" and "))
    }

    /// Starts (or starts again) the agent of `member` inside its namespace: a node's, a
    /// gateway's (`--role gateway`), or the outside client's (`--role client`).
    pub fn start_agent(&mut self, member: &str) -> Result<(), LabError> {
        let topology = self.topology();
        let ns = open_namespace(&self.netns(member)?)?;
        let node_dir = self.state.node_dir(member);
        let spec = &self.state.spec;
        let mut command = Command::new(&self.weft);
        command
            .args([
                "agent",
                "--store",
                &self.state.store_url,
                "--node",
                member,
                "--iface",
                "eth0",
                "--state-dir",
            ])
            .arg(&node_dir)
            .args(["--lease-ttl", &spec.lease_ttl.to_string()])
            .args(["--resync", &spec.resync.to_string()]);
        // An IPv6 underlay: the member is reached (and its VTEP is) at its IPv6 address.
        if spec.underlay == Family::Ipv6 {
            let ip6 = match topology.member(member) {
                Some(Member::Node(node)) => topology.ipv6(node.ip),
                Some(Member::Gateway(gateway)) => topology.ipv6(gateway.ip),
                Some(Member::Outside) => Some(OUTSIDE_CLIENT_IP6),
                _ => None,
            };
            if let Some(ip6) = ip6 {
                command.args(["--public-ip", &ip6.to_string()]);
            }
        }
        // The router's address on the member's own rack (IPv6 in an IPv6-only lab).
        let router_on = |rack: u32| {
            let gateway = topology.rack(rack).gateway;
            match topology.ipv6(gateway).filter(|_| !topology.ip_family.has_ipv4()) {
                Some(gateway6) => format!("[{gateway6}]:{ROUTER_ASN}"),
                None => format!("{gateway}:{ROUTER_ASN}"),
            }
        };
        if spec.graceful_restart > 0 {
            command.args(["--bgp-graceful-restart", &spec.graceful_restart.to_string()]);
        }
        let speaks_bgp = match topology.member(member) {
            Some(Member::Node(_)) => spec.mode == Mode::Bgp,
            Some(Member::Gateway(_)) => true,
            _ => false,
        };
        if spec.bgp_password && speaks_bgp {
            command.arg("--bgp-password-file").arg(self.state.bgp_password_file());
        }
        match topology.member(member) {
            Some(Member::Node(node)) if spec.mode == Mode::Bgp => {
                command.args(["--asn", &spec.cluster_asn().to_string(), "--bgp-peer", &router_on(node.rack)]);
            }
            Some(Member::Gateway(gateway)) => {
                command.args(["--role", "gateway", "--asn", &spec.cluster_asn().to_string()]);
                command.args(["--bgp-peer", &router_on(gateway.rack)]);
            }
            Some(Member::Outside) => {
                command.args(["--role", "client"]);
            }
            _ => {}
        }
        let (child, process) = spawn_daemon(command, &ns, &self.state.log_file(member))?;
        self.children.insert(process.pid, child);
        self.state.agents.insert(member.to_string(), process);
        self.state.save()
    }

    /// The machines the router keeps BGP sessions with: every node in bgp mode, else the
    /// gateways.
    fn bgp_neighbors(&self, topology: &Topology) -> Vec<Neighbor> {
        // (Their IPv6 addresses in an IPv6-only lab.)
        let address = |ip: Ipv4Addr| -> std::net::IpAddr {
            match topology.ipv6(ip).filter(|_| !topology.ip_family.has_ipv4()) {
                Some(ip6) => ip6.into(),
                None => ip.into(),
            }
        };
        if self.state.spec.mode == Mode::Bgp {
            topology.nodes.iter().map(|n| Neighbor { name: n.name.clone(), address: address(n.ip) }).collect()
        } else {
            topology
                .gateways
                .iter()
                .map(|g| Neighbor { name: g.name.clone(), address: address(g.ip) })
                .collect()
        }
    }

    /// Starts the router's BGP daemon (BIRD or FRR) in its namespace.
    fn start_router(&mut self, topology: &Topology) -> Result<(), LabError> {
        let kind = self.state.spec.router;
        let (program, package) = crate::router::program(kind);
        if !process::installed(program) {
            return Err(LabError::Invalid(format!("the router's BGP needs {program} (Debian: {package})")));
        }
        let router = open_namespace(&topology.router_netns)?;
        let dir = self.state.dir().join("router");
        let commands = crate::router::commands(
            kind,
            &dir,
            topology.racks[0].gateway,
            self.state.spec.cluster_asn(),
            &self.bgp_neighbors(topology),
            self.state.bgp_password().as_deref(),
            topology.ip_family.has_ipv6(),
        )
        .map_err(|e| LabError::io(format!("write the router's configuration in {}", dir.display()), e))?;
        for command in commands {
            let name = Path::new(command.get_program()).file_name().map(|n| n.to_string_lossy().into_owned());
            let (child, process) =
                spawn_daemon(command, &router, &self.state.log_file(name.as_deref().unwrap_or_default()))?;
            self.children.insert(process.pid, child);
            self.state.router.push(process.clone());
            self.state.save()?;
            // zebra's socket must be there before bgpd starts; and a daemon that refuses its
            // configuration is gone by then.
            std::thread::sleep(Duration::from_millis(200));
            if !process::is_running(&process) {
                let log = self.state.log_file(name.as_deref().unwrap_or_default());
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(LabError::Invalid(format!(
                    "the router's {} stopped at once: {}",
                    kind.name(),
                    said.lines().last().unwrap_or("(no output)")
                )));
            }
        }
        Ok(())
    }

    /// Waits until the router's kernel holds what BGP should have taught it: every node's
    /// subnet (bgp mode) or the pod network (gateways). Returns what it learned.
    fn wait_for_router_routes(&self, topology: &Topology) -> Result<String, LabError> {
        let wanted: Vec<ipnet::IpNet> = if self.state.spec.mode == Mode::Bgp {
            let mut subnets = Vec::new();
            for node in self.state.agents.keys().filter(|a| topology.node(a).is_some()) {
                let text =
                    std::fs::read_to_string(self.state.node_dir(node).join("node.json")).unwrap_or_default();
                if let Ok(file) = weft_core::NodeFile::parse(&text) {
                    subnets.extend(file.subnets.iter().map(|s| s.subnet));
                }
            }
            subnets
        } else {
            let mut networks = Vec::new();
            if topology.ip_family.has_ipv4() {
                networks.push(POD_CIDR.parse().expect("a network"));
            }
            if topology.ip_family.has_ipv6() {
                networks.push(POD_CIDR6.parse().expect("a network"));
            }
            networks
        };
        let router = open_namespace(&topology.router_netns)?;
        let mut netlink = weft_kernel::Netlink::open_in(&router)
            .map_err(|e| LabError::kernel("netlink in the router's namespace", e))?;
        let deadline = Instant::now() + AGENT_TIMEOUT;
        loop {
            let mut routes =
                netlink.routes(false).map_err(|e| LabError::kernel("read the router's routes", e))?;
            if topology.ip_family.has_ipv6() {
                routes.extend(
                    netlink.routes(true).map_err(|e| LabError::kernel("read the router's IPv6 routes", e))?,
                );
            }
            let missing: Vec<String> = wanted
                .iter()
                .filter(|w| !routes.iter().any(|r| r.destination == **w))
                .map(|w| w.to_string())
                .collect();
            if missing.is_empty() {
                return Ok(wanted.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", "));
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(format!(
                    "the router did not learn {} by BGP within {} s; see the logs in {}",
                    missing.join(", "),
                    AGENT_TIMEOUT.as_secs(),
                    self.state.dir().join("logs").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops node `node`'s agent with `signal`: SIGTERM (a clean stop) or SIGKILL (a crash).
    pub fn stop_agent(&mut self, node: &str, signal: libc::c_int) {
        if let Some(agent) = self.state.agents.remove(node) {
            self.stop(&agent, signal);
        }
        let _ = self.state.save();
    }

    /// Signals a process and waits until it is gone (reaping it if it is our child); one
    /// that outlives a SIGTERM by 10 s gets SIGKILL.
    pub(crate) fn stop(&mut self, process: &Process, signal: libc::c_int) {
        process::signal(process, signal);
        if !process::wait_gone(std::slice::from_ref(process), Duration::from_secs(10)) {
            process::signal(process, libc::SIGKILL);
            process::wait_gone(std::slice::from_ref(process), Duration::from_secs(5));
        }
        if let Some(mut child) = self.children.remove(&process.pid) {
            let _ = child.wait();
        }
    }

    /// Waits until each of `nodes` has its node file (its lease); returns their subnets.
    pub fn wait_for_node_files(&self, nodes: &[String]) -> Result<Vec<String>, LabError> {
        let deadline = Instant::now() + AGENT_TIMEOUT;
        let mut subnets = Vec::new();
        for node in nodes {
            let path = self.state.node_dir(node).join("node.json");
            loop {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if let Ok(file) = weft_core::NodeFile::parse(&text) {
                    let subnet: Vec<String> = file.subnets.iter().map(|s| s.subnet.to_string()).collect();
                    subnets.push(format!("{node} {}", subnet.join(" + ")));
                    break;
                }
                if Instant::now() > deadline {
                    return Err(self.agent_timeout(node, "lease a subnet"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(subnets)
    }

    fn agent_timeout(&self, node: &str, what: &str) -> LabError {
        LabError::Timeout(format!(
            "the agent of {node} did not {what} within {} s; its log: {}",
            AGENT_TIMEOUT.as_secs(),
            self.state.log_file(node).display()
        ))
    }

    /// Waits until every running agent has planned and programmed all the others.
    pub fn wait_converged(&self) -> Result<(), LabError> {
        let topology = self.topology();
        let running: Vec<&String> = self.state.agents.keys().collect();
        let nodes = running.iter().filter(|a| topology.node(a).is_some()).count();
        let deadline = Instant::now() + AGENT_TIMEOUT;
        for node in &running {
            // A node's peers are the other nodes; a gateway's or client's, all of them.
            let expected = if topology.node(node).is_some() { nodes - 1 } else { nodes };
            loop {
                let agreed = self.status_of(node).is_some_and(|status| {
                    status.peers.len() >= expected
                        && status.last_pass.at > 0
                        && status.last_pass.error.is_none()
                });
                if agreed {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(self.agent_timeout(node, &format!("see all {expected} peers")));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Adds a pod on `node`: a namespace, wired by the CNI plugin (ADD) run in the node's
    /// namespace with the spec's variables, as a runtime runs it. Returns its address.
    pub fn add_pod(&mut self, node: &str, pod: &str) -> Result<std::net::IpAddr, LabError> {
        crate::topology::validate_name(pod)?;
        if self.topology().member(pod).is_some() {
            return Err(LabError::Invalid(format!("lab {} has a member called {pod} already", self.name())));
        }
        self.netns(node)?;
        let netns = crate::topology::netns_name(self.name(), pod);
        if Path::new(weft_kernel::netns::NETNS_RUN_DIR).join(&netns).exists() {
            return Err(LabError::Invalid(format!("namespace {netns} exists already")));
        }
        self.state.pods.push(PodRecord {
            name: pod.to_string(),
            node: node.to_string(),
            address: None,
            address6: None,
        });
        self.state.save()?;
        self.wire_pod(node, pod)
    }

    fn wire_pod(&mut self, node: &str, pod: &str) -> Result<std::net::IpAddr, LabError> {
        let pod_ns = crate::topology::netns_name(self.name(), pod);
        create_namespace(&pod_ns)?;
        let node_ns = open_namespace(&self.netns(node)?)?;
        let node_dir = self.state.node_dir(node);
        let conf = serde_json::json!({
            "cniVersion": "1.1.0", "name": "lab", "type": "weft",
            "stateDir": node_dir, "dataDir": node_dir.join("ipam"),
        });
        let netns_path = format!("{}/{pod_ns}", weft_kernel::netns::NETNS_RUN_DIR);
        let plugin_dir = self.weft.parent().map(|d| d.display().to_string()).unwrap_or_default();
        let output = run_plugin(
            &self.weft,
            &node_ns,
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", &format!("{}-{pod}", self.name())),
                ("CNI_NETNS", &netns_path),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", &plugin_dir),
            ],
            &conf.to_string(),
        )?;
        let cni_error = |detail: String| LabError::Cni { pod: pod.to_string(), detail };
        let result: serde_json::Value = serde_json::from_str(&output.stdout).map_err(|_| {
            cni_error(format!(
                "exit {:?}, stdout {:?}, stderr {:?}",
                output.code, output.stdout, output.stderr
            ))
        })?;
        let output = output.stdout;
        if let Some(message) = result["msg"].as_str() {
            return Err(cni_error(format!("error {}: {message}", result["code"])));
        }
        let addresses: Vec<std::net::IpAddr> = result["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
            .collect();
        let address = addresses.iter().find_map(|ip| match ip {
            std::net::IpAddr::V4(v4) => Some(*v4),
            _ => None,
        });
        let address6 = addresses.iter().find_map(|ip| match ip {
            std::net::IpAddr::V6(v6) => Some(*v6),
            _ => None,
        });
        let families = self.topology().ip_family;
        if families.has_ipv4() && address.is_none() {
            return Err(cni_error(format!("no IPv4 address in the result: {output}")));
        }
        if families.has_ipv6() && address6.is_none() {
            return Err(cni_error(format!("no IPv6 address in the result of a lab with IPv6: {output}")));
        }
        if let Some(record) = self.state.pods.iter_mut().find(|p| p.name == pod) {
            record.address = address;
            record.address6 = address6;
        }
        self.state.save()?;
        Ok(address.map(std::net::IpAddr::V4).or(address6.map(std::net::IpAddr::V6)).expect("checked above"))
    }

    /// Probes the matrix (every pod and node to every pod, pods to the outside client and
    /// back) and holds each outcome against what the mode promises.
    pub fn check(&self, timeout: Duration) -> Result<Report, LabError> {
        let topology = self.topology();
        let families = topology.ip_family;
        let unwired: Vec<&str> = self
            .state
            .pods
            .iter()
            .filter(|p| {
                families.has_ipv4() && p.address.is_none() || families.has_ipv6() && p.address6.is_none()
            })
            .map(|p| p.name.as_str())
            .collect();
        if !unwired.is_empty() {
            return Err(LabError::Invalid(format!(
                "lab {} is not whole: pods {} have no address (did `up` fail?); \
                 `weft lab down {}` and up again",
                self.name(),
                unwired.join(", "),
                self.name()
            )));
        }
        let probes: Vec<Probe> = probes(&topology);
        if probes.is_empty() {
            return Err(LabError::Invalid(format!("lab {} has no pods to probe", self.name())));
        }
        // Each probe's target: the pod's (or the outside client's) address of its family.
        let target = |probe: &Probe| -> std::net::IpAddr {
            match probe.family {
                Family::Ipv4 => self.pod_address(&probe.to).unwrap_or(OUTSIDE_CLIENT_IP).into(),
                Family::Ipv6 => self
                    .state
                    .pods
                    .iter()
                    .find(|p| p.name == probe.to)
                    .and_then(|p| p.address6)
                    .unwrap_or(OUTSIDE_CLIENT_IP6)
                    .into(),
            }
        };
        let mut sources: Vec<&str> = Vec::new();
        for probe in &probes {
            if !sources.contains(&probe.from.as_str()) {
                sources.push(&probe.from);
            }
        }
        // Every source probes its targets at once, all sources side by side.
        let results: Vec<Result<Vec<bool>, LabError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .iter()
                .map(|from| {
                    let targets: Vec<std::net::IpAddr> =
                        probes.iter().filter(|p| p.from == *from).map(target).collect();
                    let netns = self.netns(from);
                    scope.spawn(move || {
                        let ns = open_namespace(&netns?)?;
                        Ok(probe::reachable(&ns, &targets, timeout)?)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("probe thread")).collect()
        });
        let mut reached: HashMap<&str, std::vec::IntoIter<bool>> = HashMap::new();
        for (from, result) in sources.iter().zip(results) {
            reached.insert(from, result?.into_iter());
        }
        // Each source's answers come in the order of its probes.
        let found: Vec<(String, bool)> = probes
            .iter()
            .map(|p| {
                let ok = reached.get_mut(p.from.as_str()).and_then(Iterator::next).unwrap_or(false);
                (target(p).to_string(), ok)
            })
            .collect();
        Ok(Report::new(self.name(), Design::of(&topology), &probes, &found))
    }

    /// Removes the lab: its processes, namespaces and files.
    pub fn down(mut self) -> Result<crate::down::Removed, LabError> {
        self.tear_down_on_drop = false;
        let removed = crate::down::down(&self.state);
        for (_, mut child) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        removed
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.tear_down_on_drop {
            let _ = crate::down::down(&self.state);
        }
        // Reap what we started and what has stopped; the rest runs on as daemons.
        for child in self.children.values_mut() {
            if self.tear_down_on_drop {
                let _ = child.kill();
                let _ = child.wait();
            } else {
                let _ = child.try_wait();
            }
        }
    }
}

/// What a plugin run printed and how it ended.
struct PluginOutput {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

/// Runs the CNI plugin inside `ns` with `vars` and `stdin`, as a runtime does.
fn run_plugin(
    binary: &Path,
    ns: &NetNs,
    vars: &[(&str, &str)],
    stdin: &str,
) -> Result<PluginOutput, LabError> {
    let mut command = Command::new(binary);
    command.env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    command.envs(vars.iter().copied());
    process::runs_in(&mut command, ns);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::io(format!("run the CNI plugin {}", binary.display()), e))?;
    // A plugin may exit before reading stdin: its output says why.
    let _ = child.stdin.take().expect("piped").write_all(stdin.as_bytes());
    let output = child.wait_with_output().map_err(|e| LabError::io("wait for the CNI plugin", e))?;
    Ok(PluginOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    })
}

impl Lab {
    /// Every namespace of the lab, named as its members are, for `weft trace`.
    pub fn world(&self) -> Result<weft_trace::World, LabError> {
        let topology = self.topology();
        let mut places = Vec::new();
        // Nodes masquerade pods' traffic leaving the pod networks (not in l2 mode).
        let mut pods: Vec<ipnet::IpNet> = Vec::new();
        if self.state.spec.mode != Mode::L2 {
            if topology.ip_family.has_ipv4() {
                pods.push(POD_CIDR.parse().expect("a network"));
            }
            if topology.ip_family.has_ipv6() {
                pods.push(POD_CIDR6.parse().expect("a network"));
            }
        }
        for name in topology.member_names() {
            let netns = self.netns(&name)?;
            let ns = open_namespace(&netns)?;
            let masquerade = if topology.node(&name).is_some() { pods.clone() } else { Vec::new() };
            places.push(weft_trace::Place { name, netns, ns, masquerade });
        }
        Ok(weft_trace::World { places })
    }

    /// The address a member sends from, or is reached at.
    pub fn address_of(&self, member: &str) -> Option<Ipv4Addr> {
        let topology = self.topology();
        match topology.member(member)? {
            Member::Pod(pod) => self.pod_address(&pod.name),
            Member::Node(node) => Some(node.ip),
            Member::Gateway(gateway) => Some(gateway.ip),
            Member::Etcd(etcd) => Some(etcd.ip),
            Member::Outside => Some(OUTSIDE_CLIENT_IP),
            Member::Router => Some(topology.racks[0].gateway),
            Member::Rack(_) => None,
        }
    }

    /// A member's address of `family`, if it has one.
    pub fn address_of_family(&self, member: &str, family: Family) -> Option<std::net::IpAddr> {
        let topology = self.topology();
        if family == Family::Ipv4 {
            return self.address_of(member).filter(|_| topology.ip_family.has_ipv4()).map(Into::into);
        }
        let twin = |ip: Ipv4Addr| topology.ipv6(ip).map(Into::into);
        match topology.member(member)? {
            Member::Pod(pod) => self.state.pods.iter().find(|p| p.name == pod.name)?.address6.map(Into::into),
            Member::Node(node) => twin(node.ip),
            Member::Gateway(gateway) => twin(gateway.ip),
            Member::Etcd(etcd) => twin(etcd.ip),
            Member::Outside => topology.ip_family.has_ipv6().then_some(OUTSIDE_CLIENT_IP6.into()),
            Member::Router => twin(topology.racks[0].gateway),
            Member::Rack(_) => None,
        }
    }

    /// The path of a packet from member `from` to `to` (a member, or an address of either
    /// family), from the kernels' own tables; with `verify`, a real probe caught at every hop.
    /// To a member, in IPv4 if the lab has it, else IPv6; to an IPv6 address, from the
    /// member's IPv6 address.
    pub fn trace(&self, from: &str, to: &str, verify: bool) -> Result<weft_trace::Trace, LabError> {
        let families = self.topology().ip_family;
        let dst: std::net::IpAddr = match to.parse() {
            Ok(ip) => ip,
            Err(_) => {
                let family = if families.has_ipv4() { Family::Ipv4 } else { Family::Ipv6 };
                self.address_of_family(to, family).ok_or_else(|| {
                    LabError::Invalid(format!(
                        "{to} is neither an address nor a member of lab {}",
                        self.name()
                    ))
                })?
            }
        };
        let src = self.address_of_family(from, Family::of(dst)).ok_or_else(|| {
            LabError::Invalid(format!(
                "{from} is not a member of lab {} that sends (a pod, node, gateway, router or outside), \
                 or has no {} address",
                self.name(),
                Family::of(dst)
            ))
        })?;
        let world = self.world()?;
        // The source the kernel would pick there (a node sending over the tunnel speaks from
        // its tunnel address), else the member's own.
        let src: std::net::IpAddr = world
            .places
            .iter()
            .find(|p| p.name == from)
            .and_then(|p| weft_kernel::Netlink::open_in(&p.ns).ok())
            .and_then(|mut nl| nl.route_get(dst, None, None).ok().flatten())
            .and_then(|lookup| lookup.prefsrc)
            .unwrap_or(src);
        let mut trace = weft_trace::trace(&world, from, to, src, dst)?;
        if verify {
            weft_trace::capture::verify(&world, &mut trace, from, dst)?;
            // The probe made the kernels resolve what they had not (ARP, bridges learning):
            // read the tables again. The same path keeps what the captures saw; a new one is
            // verified in its turn.
            let mut again = weft_trace::trace(&world, from, to, src, dst)?;
            let same = again.hops.len() == trace.hops.len()
                && again
                    .hops
                    .iter()
                    .zip(&trace.hops)
                    .all(|(a, b)| a.place == b.place && a.egress == b.egress);
            if same {
                for (hop, before) in again.hops.iter_mut().zip(&trace.hops) {
                    hop.seen = before.seen;
                }
                again.verified = trace.verified;
            } else {
                weft_trace::capture::verify(&world, &mut again, from, dst)?;
            }
            trace = again;
        }
        Ok(trace)
    }
}

impl Lab {
    /// What a member's agent last said of itself.
    pub fn status_of(&self, member: &str) -> Option<StatusFile> {
        std::fs::read_to_string(self.state.node_dir(member).join(STATUS_FILE_NAME))
            .ok()
            .and_then(|text| StatusFile::parse(&text).ok())
    }

    /// The lab as a picture shows it: the topology with what the agents report now (subnets,
    /// tunnels, BGP sessions), what the router's kernel holds, the store (and etcd's leader),
    /// and a traced path if given. The one place the picture's live state is read.
    pub fn scene(&self, trace: Option<weft_trace::Trace>) -> crate::picture::Scene {
        use crate::picture::{BgpSession, EtcdBox, NodeBox, PodBox, RackBox, Scene, StoreBox};
        let topology = self.topology();
        // Every family the lab has, IPv4 first, joined: "10.244.7.0/24 fd00:10:244:7::/64".
        let subnet_of = |node: &str| {
            std::fs::read_to_string(self.state.node_dir(node).join("node.json"))
                .ok()
                .and_then(|text| weft_core::NodeFile::parse(&text).ok())
                .map(|file| file.subnets.iter().map(|s| s.subnet.to_string()).collect::<Vec<_>>().join(" "))
                .filter(|subnets| !subnets.is_empty())
                .unwrap_or_else(|| "(no lease)".into())
        };
        let machine = |ip: Ipv4Addr| {
            let v4 = topology.ip_family.has_ipv4().then(|| ip.to_string());
            v4.into_iter().chain(topology.ipv6(ip).map(|v6| v6.to_string())).collect::<Vec<_>>().join(" ")
        };
        let pod_address = |p: &PodRecord| {
            let both: Vec<String> = p
                .address
                .map(|a| a.to_string())
                .into_iter()
                .chain(p.address6.map(|a| a.to_string()))
                .collect();
            if both.is_empty() {
                "(unwired)".to_string()
            } else {
                both.join(" ")
            }
        };
        let leader = if self.state.spec.store == StoreKind::Etcd { self.etcd_leader().ok() } else { None };
        let racks = topology
            .racks
            .iter()
            .map(|rack| {
                let mut nodes: Vec<NodeBox> = topology
                    .nodes
                    .iter()
                    .filter(|n| n.rack == rack.number)
                    .map(|node| NodeBox {
                        name: node.name.clone(),
                        address: machine(node.ip),
                        subnet: subnet_of(&node.name),
                        pods: self
                            .state
                            .pods
                            .iter()
                            .filter(|p| p.node == node.name)
                            .map(|p| PodBox { name: p.name.clone(), address: pod_address(p) })
                            .collect(),
                        gateway: false,
                    })
                    .collect();
                nodes.extend(topology.gateways.iter().filter(|g| g.rack == rack.number).map(|g| NodeBox {
                    name: g.name.clone(),
                    address: machine(g.ip),
                    subnet: String::new(),
                    pods: Vec::new(),
                    gateway: true,
                }));
                let etcd = topology
                    .etcd
                    .iter()
                    .filter(|e| e.rack == rack.number)
                    .map(|e| EtcdBox {
                        name: e.name.clone(),
                        address: e.ip.to_string(),
                        leader: leader.as_deref() == Some(e.name.as_str()),
                    })
                    .collect();
                let segments: Vec<String> = topology
                    .ip_family
                    .has_ipv4()
                    .then(|| rack.subnet.to_string())
                    .into_iter()
                    .chain(rack.subnet6.map(|s| s.to_string()))
                    .collect();
                RackBox { name: rack.name.clone(), subnet: segments.join(" "), nodes, etcd }
            })
            .collect();
        let mut tunnels: Vec<(String, String)> = Vec::new();
        let mut bgp = Vec::new();
        for member in self.state.agents.keys() {
            let Some(status) = self.status_of(member) else { continue };
            for peer in status.peers.iter().filter(|p| p.path == PeerPath::Vxlan) {
                let other = &peer.node;
                let pair = if member < other {
                    (member.clone(), other.clone())
                } else {
                    (other.clone(), member.clone())
                };
                if !tunnels.contains(&pair) {
                    tunnels.push(pair);
                }
            }
            if let Some(session) = status.bgp.first() {
                bgp.push(BgpSession {
                    machine: member.clone(),
                    asn: session.local_asn,
                    peer_asn: session.asn,
                    state: session.state.clone(),
                });
            }
        }
        let store = match self.state.spec.store {
            StoreKind::Sqlite => {
                StoreBox::Sqlite { path: self.state.store_url.trim_start_matches("sqlite:").to_string() }
            }
            StoreKind::Etcd => StoreBox::Etcd { members: topology.etcd.len(), leader },
        };
        Scene {
            lab: self.name().to_string(),
            design: Design::of(&topology).to_string(),
            racks,
            router: self.router_box(&topology),
            outside: match topology.ip_family {
                IpFamily::Ipv4 => OUTSIDE_CLIENT_IP.to_string(),
                IpFamily::Dual => format!("{OUTSIDE_CLIENT_IP} {OUTSIDE_CLIENT_IP6}"),
                IpFamily::Ipv6 => OUTSIDE_CLIENT_IP6.to_string(),
            },
            client: topology.client,
            store,
            tunnels,
            bgp,
            trace,
        }
    }

    /// The router as its kernel has it: interfaces and their addresses, and every route into
    /// the pods' network with all its next hops (several when BGP learned one route from
    /// several gateways: ECMP). Its AS and BGP daemon from the lab's spec.
    fn router_box(&self, topology: &Topology) -> crate::picture::RouterBox {
        use crate::picture::{NextHop, PodRoute, RouterBox};
        let speaks = self.state.spec.router_speaks_bgp();
        // The pods' networks, of each family: l2 mode's pods live on rack 1's own segment.
        let mut pods: Vec<ipnet::IpNet> = Vec::new();
        if topology.ip_family.has_ipv4() {
            pods.push(match self.state.spec.mode {
                Mode::L2 => ipnet::IpNet::V4(topology.racks[0].subnet),
                _ => POD_CIDR.parse().expect("a network"),
            });
        }
        if topology.ip_family.has_ipv6() {
            pods.push(match (self.state.spec.mode, topology.racks[0].subnet6) {
                (Mode::L2, Some(segment)) => ipnet::IpNet::V6(segment),
                _ => POD_CIDR6.parse().expect("a network"),
            });
        }
        let mut router = RouterBox {
            asn: speaks.then_some(ROUTER_ASN),
            daemon: speaks.then(|| self.state.spec.router.name().to_string()),
            pod_network: pods.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "),
            ..Default::default()
        };
        let read = || {
            let ns = open_namespace(&topology.router_netns).map_err(|e| e.to_string())?;
            let mut netlink = weft_kernel::Netlink::open_in(&ns).map_err(|e| e.to_string())?;
            let links = netlink.links().map_err(|e| e.to_string())?;
            let addresses = netlink.addresses().map_err(|e| e.to_string())?;
            let mut routes = netlink.routes(false).map_err(|e| e.to_string())?;
            routes.extend(netlink.routes(true).map_err(|e| e.to_string())?);
            Ok::<_, String>((links, addresses, routes))
        };
        let (links, addresses, routes) = match read() {
            Ok(read) => read,
            Err(e) => {
                router.unread = Some(format!("its kernel was not read: {e}"));
                return router;
            }
        };
        let name_of = |index: u32| links.iter().find(|l| l.index == index).map(|l| l.name.clone());
        // Racks first, in order, then the rest (the outside).
        let mut interfaces: Vec<(String, String)> = addresses
            .iter()
            .filter(|(_, net)| !net.addr().is_loopback() && !is_link_local(net.addr()))
            .filter_map(|(index, net)| Some((name_of(*index)?, net.to_string())))
            .collect();
        let rank = |name: &str| topology.racks.iter().position(|r| r.name == name).unwrap_or(usize::MAX);
        interfaces.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        router.interfaces = interfaces;
        let member_at = |address: std::net::IpAddr| {
            topology
                .nodes
                .iter()
                .map(|n| (&n.name, n.ip))
                .chain(topology.gateways.iter().map(|g| (&g.name, g.ip)))
                .chain(topology.etcd.iter().map(|e| (&e.name, e.ip)))
                .find(|(_, ip)| {
                    std::net::IpAddr::V4(*ip) == address
                        || topology.ipv6(*ip).map(Into::into) == Some(address)
                })
                .map(|(name, _)| name.clone())
        };
        router.routes = routes
            .iter()
            .filter(|r| {
                r.table == weft_kernel::netlink::MAIN_TABLE && pods.iter().any(|p| p.contains(&r.destination))
            })
            .map(|r| {
                let hops: Vec<(Option<std::net::IpAddr>, Option<u32>)> = if r.multipath.is_empty() {
                    vec![(r.gateway, r.oif)]
                } else {
                    r.multipath.iter().map(|h| (h.gateway, Some(h.oif))).collect()
                };
                PodRoute {
                    destination: r.destination.to_string(),
                    next_hops: hops
                        .into_iter()
                        .map(|(gateway, oif)| NextHop {
                            address: gateway.map(|g| g.to_string()),
                            member: gateway.and_then(member_at),
                            interface: oif.and_then(name_of),
                        })
                        .collect(),
                }
            })
            .collect();
        router
    }
}

fn is_link_local(address: std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// A password for every BGP session of a lab: 16 random bytes in hex, in a file only root
/// reads, as `* PASSWORD` (the agents' `--bgp-password-file` form).
fn write_password_file(path: &Path) -> Result<(), LabError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| LabError::io(format!("write {}", path.display()), e);
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(io)?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    writeln!(file, "* {password}").map_err(io)
}
