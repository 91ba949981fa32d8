//! What the agent finds out about its own node: the uplink, its MTU and addresses.

use ipnet::IpNet;
use std::net::IpAddr;
use weft_core::plan::L2_BRIDGE;
use weft_kernel::netlink::MAIN_TABLE;
use weft_kernel::Netlink;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no default route to take the uplink from: pass --iface")]
    NoDefaultRoute,
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    #[error("interface {0} has no address to be reached at: pass --public-ip")]
    NoAddress(String),
    #[error(transparent)]
    Kernel(#[from] weft_kernel::Error),
}

#[derive(Debug, Clone)]
pub struct Uplink {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
    pub public_ip: IpAddr,
    /// The uplink's first global address of the other family, if it has one: the next hop
    /// peers route that family's pods to.
    pub other_public_ip: Option<IpAddr>,
    /// Prefixes directly connected on the uplink.
    pub connected: Vec<IpNet>,
    /// When the l2 backend took the uplink into its bridge: the uplink is the bridge, and
    /// this is the physical port in it.
    pub port: Option<String>,
}

/// The uplink: `iface` if given, else the device of the default route (IPv4 first); its
/// first global address is the public IP unless `public_ip` says otherwise.
pub fn discover(
    nl: &mut Netlink,
    iface: Option<&str>,
    public_ip: Option<IpAddr>,
) -> Result<Uplink, NodeError> {
    let link = match iface {
        Some(name) => nl.link_by_name(name)?.ok_or_else(|| NodeError::NoSuchInterface(name.into()))?,
        None => {
            let mut oif = None;
            for v6 in [false, true] {
                oif = oif.or_else(|| {
                    nl.routes(v6)
                        .ok()?
                        .into_iter()
                        .find(|r| {
                            r.destination.prefix_len() == 0 && r.table == MAIN_TABLE && r.oif.is_some()
                        })?
                        .oif
                });
            }
            let oif = oif.ok_or(NodeError::NoDefaultRoute)?;
            nl.link_by_index(oif)?.ok_or(NodeError::NoDefaultRoute)?
        }
    };
    // Once the l2 backend has taken the uplink into its bridge, the bridge is the uplink.
    let master = link.master.map(|m| nl.link_by_index(m)).transpose()?.flatten();
    let (link, port) = match master {
        Some(bridge) if bridge.name == L2_BRIDGE => (bridge, Some(link.name)),
        _ if link.name == L2_BRIDGE => {
            // Its physical port: not a pod's veth.
            let port = nl
                .links()?
                .into_iter()
                .find(|l| {
                    l.master == Some(link.index) && !l.name.starts_with("wv") && !l.name.starts_with("wx")
                })
                .map(|l| l.name)
                .ok_or_else(|| NodeError::NoSuchInterface(format!("the uplink port of {L2_BRIDGE}")))?;
            (link, Some(port))
        }
        _ => (link, None),
    };
    let addresses: Vec<IpNet> = nl
        .addresses()?
        .into_iter()
        .filter(|(index, net)| *index == link.index && !is_link_local(net.addr()))
        .map(|(_, net)| net)
        .collect();
    let public_ip = match public_ip {
        Some(ip) => ip,
        None => addresses
            .iter()
            .map(|net| net.addr())
            .min_by_key(|ip| ip.is_ipv6())
            .ok_or_else(|| NodeError::NoAddress(link.name.clone()))?,
    };
    let other_public_ip =
        addresses.iter().map(|net| net.addr()).find(|ip| ip.is_ipv4() != public_ip.is_ipv4());
    Ok(Uplink {
        name: link.name,
        index: link.index,
        mtu: link.mtu,
        public_ip,
        other_public_ip,
        connected: addresses.iter().map(|net| net.trunc()).collect(),
        port,
    })
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}
