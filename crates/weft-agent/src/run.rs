//! The agent as a process: open the store and the kernel, find the uplink, start the BGP
//! speaker and the metrics endpoint, then run [`Agent`] passes until asked to stop.

use crate::agent::{Agent, AgentConfig};
use crate::kernel::{Kernel, NetlinkKernel};
use crate::metrics::Metrics;
use crate::AgentError;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;
use weft_core::status::Role;

/// The BGP speaker's settings: this machine's AS and the routers it talks to.
#[derive(Debug, Clone)]
pub struct BgpOptions {
    pub asn: u32,
    pub peers: Vec<weft_bgp::PeerConfig>,
    pub hold_time: u16,
    /// Seconds peers keep our routes after we stop (RFC 4724); None: stopping withdraws.
    pub graceful_restart: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub role: Role,
    /// Announce by BGP (a node its subnet, a gateway the cluster CIDR).
    pub bgp: Option<BgpOptions>,
    pub store: String,
    pub node: String,
    pub iface: Option<String>,
    pub public_ip: Option<IpAddr>,
    pub state_dir: PathBuf,
    pub lease_ttl: Duration,
    pub resync: Duration,
    /// SNAT pods' traffic leaving the cluster CIDR.
    pub masquerade: bool,
    /// Take VXLAN only from peers and the network's overlay sources.
    pub overlay_filter: bool,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (None: nowhere).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// The CNI network config list to write once the node can wire pods (None: none).
    pub cni_conflist: Option<crate::install::CniConflist>,
}

/// Runs until `stop` is set. Leaves the kernel as it is on the way out: a restarted agent
/// finds it as planned and changes nothing, so no packet is lost. (BGP announcements are
/// withdrawn unless graceful restart keeps them: a stopped speaker cannot keep them fresh.)
pub fn run(options: &AgentOptions, stop: &AtomicBool) -> Result<(), AgentError> {
    if options.role == Role::Gateway && options.bgp.is_none() {
        return Err(AgentError::Options(
            "a gateway announces the cluster CIDR to the routers by BGP: pass --asn and --bgp-peer".into(),
        ));
    }
    let store: Arc<dyn weft_store::Store> = Arc::from(weft_store::open(&options.store)?);
    let mut kernel = NetlinkKernel::open()?;
    let uplink = kernel.uplink(options.iface.as_deref(), options.public_ip)?;
    info!(
        "{} {} on uplink {} (MTU {}), reached at {}; store {}",
        options.role.name(),
        options.node,
        uplink.name,
        uplink.mtu,
        uplink.public_ip,
        store.describe()
    );
    if options.role == Role::Gateway {
        // A gateway's job is forwarding between the routers and the overlay.
        kernel.sysctl("net.ipv4.ip_forward", "1")?;
    }
    let speaker = match &options.bgp {
        Some(bgp) => Some(start_speaker(bgp, uplink.public_ip, uplink.other_public_ip)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = options.metrics_address {
        let bound = crate::metrics::serve(address, metrics.clone())
            .map_err(|source| AgentError::Metrics { address, source })?;
        info!("metrics on http://{bound}/metrics");
    }
    let config = AgentConfig {
        role: options.role,
        node: options.node.clone(),
        state_dir: Some(options.state_dir.clone()),
        lease_ttl: options.lease_ttl,
        resync: options.resync,
        masquerade: options.masquerade,
        overlay_filter: options.overlay_filter,
        public_ip: options.public_ip,
        local_asn: options.bgp.as_ref().map(|b| b.asn),
        cni_conflist: options.cni_conflist.clone(),
    };
    let mut agent = Agent::new(config, store, Box::new(kernel), uplink, speaker, metrics);
    agent.run(stop);
    info!("stopping; the kernel keeps its state for the next start");
    Ok(())
}

/// The speaker, on IPv4 sessions; with an IPv6 address on the uplink (`other_ip`), the
/// same sessions carry IPv6 unicast too, that address the IPv6 prefixes' next hop.
fn start_speaker(
    bgp: &BgpOptions,
    public_ip: IpAddr,
    other_ip: Option<IpAddr>,
) -> Result<weft_bgp::Speaker, AgentError> {
    // IPv4 prefixes' next hop and the router ID are the uplink's IPv4 address, whichever
    // family the overlay uses; IPv6 prefixes' next hop its IPv6 one (a session to a router's
    // IPv6 address speaks from, and announces, the address it speaks from).
    let (address, other_ip) = match (public_ip, other_ip) {
        (IpAddr::V4(v4), other) => (v4, other),
        (v6, Some(IpAddr::V4(v4))) => (v4, Some(v6)),
        // No IPv4 at all: a router ID made from the IPv6 address (it only has to be unique
        // among the routers' peers, and stable).
        (v6, _) => (router_id_of(v6), Some(v6)),
    };
    let local = weft_bgp::Local {
        asn: bgp.asn,
        router_id: address,
        hold_time: bgp.hold_time,
        next_hop: address,
        next_hop6: match other_ip {
            Some(IpAddr::V6(v6)) => Some(v6),
            _ => None,
        },
        graceful_restart: bgp.graceful_restart,
    };
    Ok(weft_bgp::Speaker::start(local, bgp.peers.clone(), |line| info!(target: "weft_bgp", "{line}")))
}

/// A BGP router ID (32 bits, not zero) for a node without IPv4: a hash of its IPv6 address,
/// the same at every start.
fn router_id_of(ip: IpAddr) -> std::net::Ipv4Addr {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let hash = weft_core::names::fnv1a(&[b"weft-router-id\0", &octets]) as u32;
    std::net::Ipv4Addr::from(hash.max(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_without_ipv4_gets_a_stable_router_id_of_its_own() {
        let a = super::router_id_of("2001:db8:1::11".parse().unwrap());
        assert_eq!(a, super::router_id_of("2001:db8:1::11".parse().unwrap()));
        assert_ne!(a, super::router_id_of("2001:db8:2::11".parse().unwrap()));
        assert!(!a.is_unspecified());
    }
}
