//! The kernel, as the agent needs it: a seam, as youki puts a `Syscall` trait under its
//! container code. [`NetlinkKernel`] is the real one (netlink through weft-kernel, nftables,
//! sysctls); [`RecordingKernel`] holds what would be programmed in memory, so that unit tests
//! and the fleet benchmark run the agent's passes without root.

use crate::nft::{self, NftError, OverlayFilter};
use crate::node::{discover, NodeError, Uplink};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use weft_core::lease::MacAddr;
use weft_core::network::Family;
use weft_core::plan::{PlannedFdb, PlannedNeighbour, PlannedRoute, VxlanDevice, PEER_ROUTE_PROTOCOL};
use weft_core::reconcile::{Changes, Observed};
use weft_kernel::netlink::MAIN_TABLE;
use weft_kernel::{Batch, Link, Netlink, Route, VxlanSpec};

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("the plan names device {0}, which this node does not have")]
    MissingDevice(String),
    #[error("a link named {0} exists and is not a VXLAN device: weft will not touch it")]
    NameTaken(String),
    #[error(transparent)]
    Netlink(#[from] weft_kernel::Error),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error(transparent)]
    L2(#[from] crate::l2::TakeOverError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// What the agent asks of its node's kernel. Only weft's own state: routes with the
/// peer-route protocol, the VXLAN device and its neighbours and FDB entries, weft's nftables
/// table, the sysctls it needs, and (l2) the uplink's move into the bridge.
pub trait Kernel: Send {
    /// The uplink as it is now: the named interface, else the default route's.
    fn uplink(&mut self, iface: Option<&str>, public_ip: Option<IpAddr>) -> Result<Uplink, KernelError>;

    /// Makes the VXLAN device as planned: creates it, or recreates it if its identity
    /// changed (VNI, port, local address, underlay), and fixes its MTU, MAC and address in
    /// place. Returns how many things it changed.
    fn ensure_vxlan(&mut self, device: &VxlanDevice) -> Result<usize, KernelError>;

    /// What the kernel holds of what weft owns, in the planner's terms. `vxlan`: the
    /// device whose neighbours and FDB entries to read.
    fn observe(&mut self, vxlan: Option<&str>) -> Result<Observed, KernelError>;

    /// Makes `changes`, in their order.
    fn apply(&mut self, changes: &Changes) -> Result<(), KernelError>;

    /// SNAT for pods' traffic leaving `cidr` (weft's own table, replaced whole).
    fn masquerade(&mut self, family: Family, cidr: Option<&IpNet>) -> Result<(), KernelError>;

    /// VXLAN only from these sources (weft's own table, its set replaced atomically); `None`:
    /// no filter (the table removed).
    fn overlay_filter(&mut self, filter: Option<&OverlayFilter>) -> Result<(), KernelError>;

    /// Sets a sysctl (`net.ipv4.ip_forward`, `net/ipv4/conf/DEV/rp_filter`) if it differs.
    fn sysctl(&mut self, key: &str, value: &str) -> Result<(), KernelError>;

    /// L2: takes the uplink `port` into weft's bridge, each step checked first; returns how
    /// many steps it took (none: already done).
    fn take_over_uplink(&mut self, port: &str) -> Result<usize, KernelError>;
}

/// The real kernel of the namespace the agent runs in.
pub struct NetlinkKernel {
    nl: Netlink,
}

impl NetlinkKernel {
    pub fn open() -> Result<NetlinkKernel, KernelError> {
        Ok(NetlinkKernel { nl: Netlink::open()? })
    }

    pub fn open_in(ns: &weft_kernel::NetNs) -> Result<NetlinkKernel, KernelError> {
        Ok(NetlinkKernel { nl: Netlink::open_in(ns)? })
    }

    fn indices(&mut self) -> Result<HashMap<String, u32>, KernelError> {
        Ok(self.nl.links()?.into_iter().map(|l| (l.name, l.index)).collect())
    }
}

fn peer_route(route: &PlannedRoute, oif: u32) -> Route {
    Route { protocol: PEER_ROUTE_PROTOCOL, ..Route::via(route.destination, route.gateway, oif, route.onlink) }
}

/// Whether an existing device is the one planned (anything else about it is fixed in place).
fn same_tunnel(link: &Link, device: &VxlanDevice, underlay: u32) -> bool {
    link.vxlan.as_ref().is_some_and(|vxlan| {
        vxlan.vni == Some(device.vni)
            && vxlan.port == Some(device.port)
            && vxlan.local == Some(device.local)
            && vxlan.underlay == Some(underlay)
    })
}

impl Kernel for NetlinkKernel {
    fn uplink(&mut self, iface: Option<&str>, public_ip: Option<IpAddr>) -> Result<Uplink, KernelError> {
        Ok(discover(&mut self.nl, iface, public_ip)?)
    }

    fn ensure_vxlan(&mut self, device: &VxlanDevice) -> Result<usize, KernelError> {
        let nl = &mut self.nl;
        let underlay = nl
            .link_by_name(&device.underlay)?
            .ok_or_else(|| KernelError::MissingDevice(device.underlay.clone()))?
            .index;
        let mut changed = 0;
        let link = match nl.link_by_name(&device.name)? {
            Some(link) if same_tunnel(&link, device, underlay) => link,
            Some(link) if link.kind != Some(weft_kernel::LinkKind::Vxlan) => {
                return Err(KernelError::NameTaken(link.name));
            }
            other => {
                if let Some(stale) = other {
                    nl.delete_link(stale.index)?;
                }
                changed += 1;
                nl.create_vxlan(&VxlanSpec {
                    name: &device.name,
                    vni: device.vni,
                    port: device.port,
                    local: device.local,
                    underlay,
                    mtu: device.mtu,
                    mac: device.mac.0,
                })?
            }
        };
        let mut fixes = Batch::new();
        if link.mtu != device.mtu {
            fixes.set_mtu(link.index, device.mtu);
        }
        if link.mac != Some(device.mac.0) {
            fixes.set_mac(link.index, device.mac.0);
        }
        if !link.up {
            fixes.set_up(link.index, true);
        }
        let held: Vec<IpNet> =
            nl.addresses()?.into_iter().filter(|(index, _)| *index == link.index).map(|(_, a)| a).collect();
        for address in device.addresses.iter().filter(|a| !held.contains(a)) {
            fixes.ensure_address(link.index, *address, true);
        }
        // An address left from a subnet this node no longer holds would make the new holder's
        // tunnel gateway local here. (The kernel's own IPv6 link-local address stays.)
        let link_local = |a: &IpNet| matches!(a.addr(), IpAddr::V6(v6) if v6.is_unicast_link_local());
        for address in held {
            if !device.addresses.contains(&address) && !link_local(&address) {
                fixes.delete_address(link.index, address);
            }
        }
        if !fixes.is_empty() {
            changed += 1;
        }
        nl.apply(&mut fixes)?;
        Ok(changed)
    }

    fn observe(&mut self, vxlan: Option<&str>) -> Result<Observed, KernelError> {
        let names: HashMap<u32, String> =
            self.indices()?.into_iter().map(|(name, index)| (index, name)).collect();
        let nl = &mut self.nl;
        let mut observed = Observed::default();
        for v6 in [false, true] {
            for route in nl.routes(v6)? {
                if route.protocol != PEER_ROUTE_PROTOCOL || route.table != MAIN_TABLE {
                    continue;
                }
                let (Some(gateway), Some(device)) = (route.gateway, route.oif.and_then(|i| names.get(&i)))
                else {
                    continue;
                };
                observed.routes.push(PlannedRoute {
                    destination: route.destination,
                    gateway,
                    device: device.clone(),
                    onlink: route.onlink,
                });
            }
        }
        let vxlan = vxlan.and_then(|name| names.iter().find(|(_, n)| n.as_str() == name));
        if let Some((&index, device)) = vxlan {
            for (link, ip, mac) in nl.permanent_neighbours()? {
                if link == index {
                    observed.neighbours.push(PlannedNeighbour {
                        device: device.clone(),
                        ip,
                        mac: MacAddr(mac),
                    });
                }
            }
            for (mac, remote) in nl.fdb_entries(index)? {
                observed.fdb.push(PlannedFdb { device: device.clone(), mac: MacAddr(mac), remote });
            }
        }
        Ok(observed)
    }

    fn apply(&mut self, changes: &Changes) -> Result<(), KernelError> {
        if changes.is_empty() {
            return Ok(());
        }
        let indices = self.indices()?;
        let index_of = |device: &str| {
            indices.get(device).copied().ok_or_else(|| KernelError::MissingDevice(device.into()))
        };
        let mut batch = Batch::new();
        for route in &changes.delete_routes {
            batch.delete_route(&peer_route(route, index_of(&route.device)?));
        }
        for fdb in &changes.delete_fdb {
            batch.delete_fdb_entry(index_of(&fdb.device)?, fdb.mac.0, fdb.remote);
        }
        for neighbour in &changes.delete_neighbours {
            batch.delete_neighbour(index_of(&neighbour.device)?, neighbour.ip);
        }
        for neighbour in &changes.set_neighbours {
            batch.set_permanent_neighbour(index_of(&neighbour.device)?, neighbour.ip, neighbour.mac.0);
        }
        for fdb in &changes.set_fdb {
            batch.set_fdb_entry(index_of(&fdb.device)?, fdb.mac.0, fdb.remote);
        }
        for route in &changes.set_routes {
            batch.replace_route(&peer_route(route, index_of(&route.device)?));
        }
        self.nl.apply(&mut batch)?;
        Ok(())
    }

    fn masquerade(&mut self, family: Family, cidr: Option<&IpNet>) -> Result<(), KernelError> {
        Ok(nft::masquerade(family, cidr)?)
    }

    fn overlay_filter(&mut self, filter: Option<&OverlayFilter>) -> Result<(), KernelError> {
        Ok(nft::overlay_filter(filter)?)
    }

    fn sysctl(&mut self, key: &str, value: &str) -> Result<(), KernelError> {
        weft_kernel::sysctl::ensure(key, value)?;
        Ok(())
    }

    fn take_over_uplink(&mut self, port: &str) -> Result<usize, KernelError> {
        Ok(crate::l2::take_over(&mut self.nl, port)?)
    }
}

/// A kernel in memory: it holds what the agent programs and answers as a kernel would.
/// For tests and the fleet benchmark, which run agents without root.
#[derive(Debug, Clone, Default)]
pub struct RecordingKernel {
    pub uplink: Option<Uplink>,
    pub vxlan: Option<VxlanDevice>,
    pub routes: BTreeMap<IpNet, PlannedRoute>,
    pub neighbours: BTreeMap<(String, IpAddr), PlannedNeighbour>,
    pub fdb: BTreeMap<(String, MacAddr), PlannedFdb>,
    /// Each family's masqueraded CIDR (shared, for a test to look at once the agent owns
    /// the kernel).
    pub masqueraded: std::sync::Arc<std::sync::Mutex<BTreeMap<Family, IpNet>>>,
    /// The overlay filter as last set (`Some(None)`: removed).
    pub overlay_filter: Option<Option<OverlayFilter>>,
    pub sysctls: BTreeMap<String, String>,
    /// Changes applied, counted one per entry.
    pub applied: usize,
    /// Whole-kernel reads.
    pub observed: usize,
    /// When set, the next `apply` fails with this (a kernel refusing), once. Shared, so a
    /// test can set it while an agent owns the kernel.
    pub refuse_next_apply: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// The same for the next `overlay_filter`.
    pub refuse_next_overlay_filter: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl RecordingKernel {
    pub fn new(uplink: Uplink) -> RecordingKernel {
        RecordingKernel { uplink: Some(uplink), ..RecordingKernel::default() }
    }
}

impl Kernel for RecordingKernel {
    fn uplink(&mut self, _: Option<&str>, _: Option<IpAddr>) -> Result<Uplink, KernelError> {
        self.uplink.clone().ok_or(KernelError::Node(NodeError::NoDefaultRoute))
    }

    fn ensure_vxlan(&mut self, device: &VxlanDevice) -> Result<usize, KernelError> {
        if self.vxlan.as_ref() == Some(device) {
            return Ok(0);
        }
        self.vxlan = Some(device.clone());
        Ok(1)
    }

    fn observe(&mut self, vxlan: Option<&str>) -> Result<Observed, KernelError> {
        self.observed += 1;
        let on = |device: &String| Some(device.as_str()) == vxlan;
        Ok(Observed {
            routes: self.routes.values().cloned().collect(),
            neighbours: self.neighbours.values().filter(|n| on(&n.device)).cloned().collect(),
            fdb: self.fdb.values().filter(|f| on(&f.device)).cloned().collect(),
        })
    }

    fn apply(&mut self, changes: &Changes) -> Result<(), KernelError> {
        if let Some(why) = self.refuse_next_apply.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(KernelError::MissingDevice(why));
        }
        for route in &changes.delete_routes {
            self.routes.remove(&route.destination);
        }
        for fdb in &changes.delete_fdb {
            self.fdb.remove(&(fdb.device.clone(), fdb.mac));
        }
        for neighbour in &changes.delete_neighbours {
            self.neighbours.remove(&(neighbour.device.clone(), neighbour.ip));
        }
        for neighbour in &changes.set_neighbours {
            self.neighbours.insert((neighbour.device.clone(), neighbour.ip), neighbour.clone());
        }
        for fdb in &changes.set_fdb {
            self.fdb.insert((fdb.device.clone(), fdb.mac), fdb.clone());
        }
        for route in &changes.set_routes {
            self.routes.insert(route.destination, route.clone());
        }
        self.applied += changes.count();
        Ok(())
    }

    fn masquerade(&mut self, family: Family, cidr: Option<&IpNet>) -> Result<(), KernelError> {
        let mut masqueraded = self.masqueraded.lock().unwrap_or_else(|p| p.into_inner());
        match cidr {
            Some(cidr) => masqueraded.insert(family, *cidr),
            None => masqueraded.remove(&family),
        };
        Ok(())
    }

    fn overlay_filter(&mut self, filter: Option<&OverlayFilter>) -> Result<(), KernelError> {
        if let Some(why) = self.refuse_next_overlay_filter.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(KernelError::Nft(NftError::Refused(why)));
        }
        self.overlay_filter = Some(filter.cloned());
        Ok(())
    }

    fn sysctl(&mut self, key: &str, value: &str) -> Result<(), KernelError> {
        self.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn take_over_uplink(&mut self, _: &str) -> Result<usize, KernelError> {
        Ok(0)
    }
}
