//! The lab's cabling, over netlink: namespaces, bridges, veth cables between namespaces,
//! addresses and static routes.

use crate::LabError;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_kernel::{netns, random_mac, Batch, NetNs, Netlink, Route, VethSpec};

/// `proto static`: routes the lab sets, which no weft component owns.
const STATIC_ROUTE_PROTOCOL: u8 = 4;
const MTU: u32 = 1500;
/// Every rack's switch.
pub const BRIDGE: &str = "br0";

pub fn create_namespace(name: &str) -> Result<NetNs, LabError> {
    netns::create_named(name).map_err(|e| LabError::kernel(format!("create namespace {name}"), e))
}

/// A machine of the lab (router, outside client, rack switch, node, gateway, etcd member):
/// a namespace whose interfaces skip IPv6 duplicate address detection. A link-local
/// address stays tentative for up to two seconds after its link comes up, and until then
/// the kernel sends no neighbour solicitation for a packet it forwards (it has no source
/// address to send one from): the router would drop the first seconds of IPv6 traffic to a
/// gateway it has not heard from. Machines that have been up a while do not; the lab's
/// are seconds old. (Pods keep the defaults their runtime gives them.)
pub fn create_machine(name: &str) -> Result<NetNs, LabError> {
    let ns = create_namespace(name)?;
    for scope in ["all", "default"] {
        sysctl_in(&ns, &format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
    }
    Ok(ns)
}

pub fn open_namespace(name: &str) -> Result<NetNs, LabError> {
    NetNs::open(format!("{}/{name}", netns::NETNS_RUN_DIR))
        .map_err(|e| LabError::kernel(format!("open namespace {name}"), e))
}

fn netlink_in(ns: &NetNs) -> Result<Netlink, LabError> {
    Netlink::open_in(ns).map_err(|e| LabError::kernel(format!("netlink in {}", ns.path().display()), e))
}

/// A bridge (the rack's switch), up.
pub fn create_bridge(ns: &NetNs) -> Result<u32, LabError> {
    let mut nl = netlink_in(ns)?;
    let bridge = nl.ensure_bridge(BRIDGE, MTU).map_err(|e| LabError::kernel("create bridge", e))?;
    Ok(bridge.index)
}

/// One end of a cable.
pub struct End<'a> {
    pub ns: &'a NetNs,
    pub name: &'a str,
    /// A port of this bridge (by index) ...
    pub bridge: Option<u32>,
    /// ... or an address of its own, with the default route through `gateway`.
    pub address: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Dual stack: an IPv6 address too, with the default IPv6 route through `gateway6`.
    pub address6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
}

impl<'a> End<'a> {
    pub fn port(ns: &'a NetNs, name: &'a str, bridge: u32) -> End<'a> {
        End { ns, name, bridge: Some(bridge), address: None, gateway: None, address6: None, gateway6: None }
    }

    pub fn host(ns: &'a NetNs, name: &'a str, address: Ipv4Net, gateway: Option<Ipv4Addr>) -> End<'a> {
        End { ns, name, bridge: None, address: Some(address), gateway, address6: None, gateway6: None }
    }

    /// This end without its IPv4 address and route, when `drop` (an IPv6-only lab).
    pub fn without_ipv4(self, drop: bool) -> End<'a> {
        match drop {
            true => End { address: None, gateway: None, ..self },
            false => self,
        }
    }

    /// This end with an IPv6 address (and default route) too, if `address6` is some.
    pub fn and_ipv6(self, address6: Option<Ipv6Net>, gateway6: Option<Ipv6Addr>) -> End<'a> {
        End { address6, gateway6: gateway6.filter(|_| address6.is_some()), ..self }
    }
}

/// A veth pair from `a` to `b`, both ends up, addressed and routed as they ask.
pub fn cable(a: &End, b: &End) -> Result<(), LabError> {
    let what = format!("cable {}:{} — {}:{}", a.ns.path().display(), a.name, b.ns.path().display(), b.name);
    let mut nl_a = netlink_in(a.ns)?;
    nl_a.create_veth(&VethSpec {
        name: a.name,
        mac: random_mac(),
        mtu: MTU,
        master: a.bridge,
        peer_name: b.name,
        peer_mac: random_mac(),
        peer_netns: Some(b.ns),
        up: false,
    })
    .map_err(|e| LabError::kernel(&what, e))?;
    // The peer exists only once the pair is made; each end is set up in its namespace.
    configure(&mut nl_a, a).map_err(|e| LabError::kernel(&what, e))?;
    configure(&mut netlink_in(b.ns)?, b).map_err(|e| LabError::kernel(&what, e))
}

fn configure(nl: &mut Netlink, end: &End) -> weft_kernel::Result<()> {
    let link = nl.link_by_name(end.name)?.ok_or_else(|| {
        weft_kernel::Error::io(format!("find {}", end.name), std::io::Error::from_raw_os_error(libc::ENODEV))
    })?;
    let mut batch = Batch::new();
    batch.set_up(link.index, true);
    if let Some(address) = end.address {
        batch.add_address(link.index, IpNet::V4(address), false);
    }
    if let Some(address) = end.address6 {
        // No duplicate address detection: the lab hands out each address once, and a
        // tentative address could not be used for the first seconds.
        batch.add_address(link.index, IpNet::V6(address), true);
    }
    let defaults =
        [end.gateway.map(|g| ("0.0.0.0/0", IpAddr::V4(g))), end.gateway6.map(|g| ("::/0", IpAddr::V6(g)))];
    for (any, gateway) in defaults.into_iter().flatten() {
        let mut default = Route::via(any.parse().expect("a network"), gateway, link.index, false);
        default.protocol = STATIC_ROUTE_PROTOCOL;
        batch.add_route(&default);
    }
    nl.apply(&mut batch)
}

/// A sysctl inside `ns` (its own /proc/sys/net).
pub fn sysctl_in(ns: &NetNs, key: &str, value: &str) -> Result<(), LabError> {
    ns.run(|| weft_kernel::sysctl::ensure(key, value))
        .and_then(|r| r)
        .map(|_| ())
        .map_err(|e| LabError::kernel(format!("set {key}={value} in {}", ns.path().display()), e))
}
