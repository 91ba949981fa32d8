//! The pods this node's CNI plugin has wired, read from its IPAM store: for `weft status`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use weft_cni::ipam::{Ipam, Owner, PodName};

/// One attachment: its network, the pod's name if the runtime gave it, its addresses.
#[derive(Debug)]
pub struct PodLine {
    pub network: String,
    pub owner: Owner,
    pub pod: Option<PodName>,
    pub ips: Vec<IpAddr>,
}

/// Every attachment holding an address in `<data_dir>/networks/*`, named pods first.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<PodLine>> {
    let networks = data_dir.join("networks");
    let entries = match std::fs::read_dir(&networks) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("list {}: {e}", networks.display())),
    };
    let mut lines: BTreeMap<(String, String, String), PodLine> = BTreeMap::new();
    for entry in entries.flatten() {
        let network = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() {
            continue;
        }
        let ipam = Ipam::open(data_dir, &network).map_err(|e| anyhow::anyhow!("{e}"))?;
        for reservation in ipam.list().map_err(|e| anyhow::anyhow!("{e}"))? {
            let key = (
                reservation.pod.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "~".into()),
                network.clone(),
                format!("{}/{}", reservation.owner.container_id, reservation.owner.ifname),
            );
            let line = lines.entry(key).or_insert_with(|| PodLine {
                network: network.clone(),
                owner: reservation.owner.clone(),
                pod: reservation.pod.clone(),
                ips: Vec::new(),
            });
            line.ips.push(reservation.ip);
        }
    }
    Ok(lines
        .into_values()
        .map(|mut line| {
            line.ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            line
        })
        .collect())
}

/// `pods (N):` and a line per attachment: the pod (or `-`), its addresses, the network,
/// the container (12 characters, as runtimes abbreviate it) and the interface.
pub fn print(data_dir: &Path) {
    match list(data_dir) {
        Ok(lines) => {
            println!("\npods ({}):", lines.len());
            for line in lines {
                let ips = line.ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ");
                let container: String = line.owner.container_id.chars().take(12).collect();
                println!(
                    "  {:<32} {:<28} {:<10} {container} {}",
                    line.pod.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    ips,
                    line.network,
                    line.owner.ifname
                );
            }
        }
        Err(e) => println!("\npods: cannot read the IPAM store: {e:#}"),
    }
}
