//! `weft status`: what the agent last wrote, whether the agent is still there to write it,
//! and whether the kernel it programs (its own namespace's, wherever `weft status` runs)
//! holds the planned routes. It says so rather than compare the wrong kernel.

use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use weft_core::status::{StatusFile, STATUS_FILE_NAME};
use weft_kernel::{NetNs, Netlink};

/// Whether the agent that wrote a status file is there, and keeps it fresh.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Liveness {
    pub running: bool,
    /// Seconds since the agent last wrote the file.
    pub age: u64,
    /// The file is older than the agent lets it get (its refresh interval, with slack).
    pub stale: bool,
}

impl Liveness {
    pub fn of(status: &StatusFile) -> Liveness {
        let age = weft_core::now().saturating_sub(status.written_at);
        Liveness { running: agent_running(status), age, stale: age > 3 * status.refresh.max(1) + 5 }
    }

    pub fn healthy(&self) -> bool {
        self.running && !self.stale
    }

    /// One line for people: "running", or why not to trust the rest.
    pub fn describe(&self, status: &StatusFile) -> String {
        match (self.running, self.stale) {
            (true, false) => format!("running (pid {}), last wrote {} s ago", status.pid, self.age),
            (true, true) => format!(
                "STALE: last pass {} s ago (it writes every {} s); agent pid {} is running but not passing",
                self.age, status.refresh, status.pid
            ),
            (false, _) => {
                format!("STALE: last pass {} s ago, agent pid {} not running", self.age, status.pid)
            }
        }
    }
}

/// Whether the process that wrote the file still runs, and is a weft agent (a pid may be
/// reused).
fn agent_running(status: &StatusFile) -> bool {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", status.pid)).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    words.iter().any(|w| *w == b"agent") && words.first().is_some_and(|w| w.ends_with(b"weft"))
}

/// The kernel check: planned routes against the kernel's protocol-88 routes.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelCheck {
    /// What was checked, or why nothing was.
    pub checked: Option<String>,
    pub refused: Option<String>,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
}

impl KernelCheck {
    pub fn matches(&self) -> bool {
        self.checked.is_some() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Reads and parses the status file in `state_dir`.
pub fn read(state_dir: &Path) -> anyhow::Result<StatusFile> {
    let path = state_dir.join(STATUS_FILE_NAME);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "read {}: is an agent running with --state-dir {}? (in a lab: `weft lab status LAB NODE`)",
            path.display(),
            state_dir.display()
        )
    })?;
    StatusFile::parse(&text).with_context(|| format!("parse {}", path.display()))
}

/// Checks the kernel of the agent's own namespace: this one if it is the agent's, else the
/// agent's through /proc while it runs; else refuses.
pub fn check_kernel(status: &StatusFile, liveness: &Liveness) -> anyhow::Result<KernelCheck> {
    let here = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok();
    let mut check = KernelCheck::default();
    let netlink = if status.netns_inode.is_none() || status.netns_inode == here {
        check.checked = Some("this network namespace, the agent's".into());
        Netlink::open()?
    } else if liveness.running {
        let path = format!("/proc/{}/ns/net", status.pid);
        check.checked = Some(format!("the agent's network namespace ({path})"));
        Netlink::open_in(&NetNs::open(&path)?)?
    } else {
        check.refused = Some(format!(
            "the agent ran in another network namespace (inode {}) and is gone: its kernel cannot be \
             found from here; run weft status in that namespace",
            status.netns_inode.unwrap_or_default()
        ));
        return Ok(check);
    };
    let mut netlink = netlink;
    let names: std::collections::HashMap<u32, String> =
        netlink.links()?.into_iter().map(|link| (link.index, link.name)).collect();
    let mut held = HashSet::new();
    for v6 in [false, true] {
        for route in netlink.routes(v6)? {
            if route.protocol == weft_core::plan::PEER_ROUTE_PROTOCOL {
                let device = route.oif.and_then(|i| names.get(&i).cloned()).unwrap_or_default();
                let gateway = route.gateway.map(|g| g.to_string()).unwrap_or_default();
                held.insert(format!("{} via {gateway} dev {device}", route.destination));
            }
        }
    }
    let planned: HashSet<String> = status
        .planned_routes
        .iter()
        .map(|r| format!("{} via {} dev {}", r.destination, r.gateway, r.device))
        .collect();
    check.missing = planned.difference(&held).cloned().collect();
    check.extra = held.difference(&planned).cloned().collect();
    check.missing.sort();
    check.extra.sort();
    Ok(check)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    status: &'a StatusFile,
    agent: &'a Liveness,
    kernel: &'a KernelCheck,
}

/// `weft status`.
pub fn run(state_dir: &Path, data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let status = read(state_dir)?;
    let liveness = Liveness::of(&status);
    let kernel = check_kernel(&status, &liveness)?;
    if json {
        let pods: Vec<serde_json::Value> = crate::pods::list(data_dir)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "network": p.network,
                    "pod": p.pod.as_ref().map(|n| n.to_string()),
                    "containerId": p.owner.container_id,
                    "ifname": p.owner.ifname,
                    "ips": p.ips,
                })
            })
            .collect();
        let mut value = serde_json::to_value(Report { status: &status, agent: &liveness, kernel: &kernel })?;
        value["pods"] = pods.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&status, &liveness, &kernel));
        crate::pods::print(data_dir);
    }
    if !liveness.healthy() {
        bail!("{}", liveness.describe(&status));
    }
    if let Some(why) = &kernel.refused {
        bail!("{why}");
    }
    if !kernel.matches() {
        bail!("the kernel does not match the plan");
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn render(status: &StatusFile, liveness: &Liveness, kernel: &KernelCheck) -> String {
    use std::fmt::Write;
    let now = weft_core::now();
    let mut out = String::new();
    let _ = writeln!(out, "node      {} ({})", status.node, status.role.name());
    let _ = writeln!(out, "agent     {}", liveness.describe(status));
    if let Some(held) = &status.lease {
        let expires = held.renewed_at + held.ttl;
        let subnets: Vec<String> = held.lease.subnets().map(|s| s.to_string()).collect();
        let _ = writeln!(out, "subnet    {}", subnets.join(", "));
        let _ = writeln!(out, "public IP {}", held.lease.public_ip);
        let _ = writeln!(
            out,
            "lease     {}",
            if expires > now {
                format!(
                    "renewed {} s ago, lives {} s more without renewal",
                    now.saturating_sub(held.renewed_at),
                    expires - now
                )
            } else {
                "EXPIRED (as last written)".into()
            }
        );
    }
    let store = &status.store;
    let _ = writeln!(
        out,
        "store     {} at revision {}{}; {}, {}, {}",
        store.url,
        store.revision,
        if store.connected { "" } else { ", NOT CONNECTED" },
        plural(store.lists as usize, "listing", "listings"),
        plural(store.watch_resumes as usize, "watch resume", "watch resumes"),
        plural(store.events as usize, "event", "events")
    );
    for session in &status.bgp {
        let announced: Vec<String> = session.announced.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "bgp       {} (AS {}, ours {}): {}{}{}",
            session.peer,
            session.asn,
            session.local_asn,
            session.state,
            if announced.is_empty() {
                String::new()
            } else {
                format!(", announcing {}", announced.join(", "))
            },
            session.last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
        );
    }
    let ago = now.saturating_sub(status.last_pass.at);
    match &status.last_pass.error {
        Some(error) => {
            let _ = writeln!(out, "last pass {ago} s ago, failed: {error}");
        }
        None => {
            let _ = writeln!(
                out,
                "last pass {ago} s ago, {}",
                plural(status.last_pass.changes, "change", "changes")
            );
        }
    }
    let _ = writeln!(out, "\npeers ({}):", status.peers.len());
    let width = status.peers.iter().map(|p| p.node.len()).max().unwrap_or(4).max(4);
    for peer in &status.peers {
        let subnets: Vec<String> =
            std::iter::once(peer.subnet).chain(peer.subnet6).map(|s| s.to_string()).collect();
        let _ = writeln!(out, "  {:<width$}  {:<20} {}", peer.node, subnets.join(", "), peer.path);
    }
    if let Some(error) = &status.overlay_filter_error {
        let _ = writeln!(out, "\noverlay   FILTER NOT SET: {error}");
    }
    if let Some(sources) = &status.overlay_sources {
        let _ = writeln!(
            out,
            "\noverlay   VXLAN taken only from {} (others dropped): {}",
            plural(sources.len(), "source", "sources"),
            sources.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    if !status.rejected.is_empty() {
        let _ = writeln!(out, "\nleases not believed ({}), never programmed:", status.rejected.len());
        for rejected in &status.rejected {
            let _ = writeln!(out, "  {:<width$}  {}", rejected.node, rejected.reason);
        }
    }
    let _ = writeln!(out);
    match (&kernel.checked, &kernel.refused) {
        (_, Some(why)) => {
            let _ = writeln!(out, "kernel    NOT CHECKED: {why}");
        }
        (Some(which), None) if kernel.matches() => {
            let _ = writeln!(
                out,
                "kernel    matches the plan ({}), in {which}",
                plural(status.planned_routes.len(), "route", "routes")
            );
        }
        (Some(which), None) => {
            let _ = writeln!(out, "kernel    DIFFERS from the plan, in {which}:");
            for route in &kernel.missing {
                let _ = writeln!(out, "  missing from the kernel: {route}");
            }
            for route in &kernel.extra {
                let _ = writeln!(out, "  in the kernel, not planned: {route}");
            }
        }
        (None, None) => {}
    }
    out
}
