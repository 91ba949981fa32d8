//! `weft trace`: a packet's path hop by hop, in a lab (every namespace of it) or on this
//! node (the part of the path it can see).

use anyhow::{bail, Context};
use std::net::IpAddr;
use std::path::Path;

/// Runs a trace and prints it: in `lab`, or on this node (`node`: its agent's state dir and
/// the plugin's IPAM store); fails when a kernel on the way stops the packet or, with
/// `verify`, the probe is not seen at every hop.
pub fn run(
    lab: Option<&str>,
    node: Option<(&Path, &Path)>,
    args: &[String],
    verify: bool,
    json: bool,
) -> anyhow::Result<()> {
    let trace = match (lab, node, args) {
        (Some(lab), None, [from, to]) => {
            let lab = weft_lab::Lab::open(lab, &std::env::current_exe()?)?;
            lab.trace(from, to, verify)?
        }
        (None, Some((state_dir, data_dir)), [to]) => on_this_node(state_dir, data_dir, to, verify)?,
        (Some(_), _, _) => bail!("weft trace --lab LAB FROM TO"),
        _ => bail!("weft trace --lab LAB FROM TO, or weft trace --state-dir DIR TO (on a node)"),
    };
    if json {
        println!("{}", trace.to_json());
    } else {
        print!("{}", weft_trace::render(&trace));
    }
    // Exit 0 only for a packet delivered; 1 when a kernel stops it or the probe goes unseen;
    // 3 when it leaves what this trace can see (a node's trace: the next machine has the rest).
    let stopped = trace.hops.iter().any(|h| matches!(h.fate, weft_trace::Fate::Drop(_)));
    let delivered = trace.hops.iter().any(|h| matches!(h.fate, weft_trace::Fate::Deliver));
    match (stopped, trace.verified) {
        (true, _) => bail!("the packet does not reach {}", trace.dst),
        (false, Some(false)) => bail!("the probe was not seen at every hop"),
        _ if delivered => Ok(()),
        _ => {
            eprintln!("weft: the packet leaves what this trace can see before it is delivered (exit 3)");
            std::process::exit(3)
        }
    }
}

/// On a real node: this namespace only, from the node's own address. TO is an address, or a
/// pod of this node by the name its runtime gave (`namespace/name`); either way a pod of this
/// node is shown by its name.
fn on_this_node(
    state_dir: &Path,
    data_dir: &Path,
    to: &str,
    verify: bool,
) -> anyhow::Result<weft_trace::Trace> {
    let (dst, to) = destination(data_dir, to)?;
    let to = to.as_str();
    let status_path = state_dir.join(weft_core::status::STATUS_FILE_NAME);
    let name = std::fs::read_to_string(&status_path)
        .ok()
        .and_then(|text| weft_core::status::StatusFile::parse(&text).ok())
        .map_or_else(|| "this node".to_string(), |status| status.node);
    let mut netlink = weft_kernel::Netlink::open()?;
    // The source the kernel picks for this destination (over a tunnel: the tunnel's).
    let src = netlink
        .route_get(dst, None, None)?
        .and_then(|lookup| lookup.prefsrc)
        .with_context(|| format!("no route to {dst} from this node"))?;
    let here = weft_kernel::NetNs::current()?;
    let world = weft_trace::World {
        places: vec![weft_trace::Place {
            name: name.clone(),
            netns: here.path().display().to_string(),
            ns: here,
            masquerade: Vec::new(),
        }],
    };
    let mut trace = weft_trace::trace(&world, &name, to, src, dst)?;
    if verify {
        weft_trace::capture::verify(&world, &mut trace, &name, dst)?;
    }
    Ok(trace)
}

/// The address to trace to and how to call it: a pod of this node by its name.
fn destination(data_dir: &Path, to: &str) -> anyhow::Result<(IpAddr, String)> {
    let pods = crate::pods::list(data_dir);
    let named = |pod: &crate::pods::PodLine| pod.pod.as_ref().map(|name| name.to_string());
    if let Ok(dst) = to.parse::<IpAddr>() {
        // An address is traced whatever the IPAM store says; its pod's name is a bonus.
        let name = pods.ok().and_then(|pods| pods.iter().find(|pod| pod.ips.contains(&dst)).and_then(named));
        return Ok((dst, name.unwrap_or_else(|| to.to_string())));
    }
    let pods = pods.with_context(|| format!("{to} is not an address; to find it as a pod"))?;
    let pod = pods.iter().find(|pod| named(pod).as_deref() == Some(to)).with_context(|| {
        format!(
            "{to} is neither an address nor a pod of this node in {} (`weft status` lists them)",
            data_dir.display()
        )
    })?;
    let dst = pod.ips.iter().find(|ip| ip.is_ipv4()).or(pod.ips.first()).copied();
    Ok((dst.with_context(|| format!("{to} holds no address"))?, to.to_string()))
}
