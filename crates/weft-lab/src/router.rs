//! The lab router's BGP daemon, a real one: BIRD 2 or FRR (zebra + bgpd), in the router's
//! namespace, with a session to every node (bgp mode) or gateway. It takes only routes
//! inside the pod network, announces nothing, and installs what it learns into the router's
//! kernel, several next hops at once when several gateways offer the same route.

use crate::topology::{POD_CIDR, POD_CIDR6, ROUTER_ASN};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

/// The router's hold time in the lab: failover after 3 s without a keepalive.
pub const HOLD_TIME: u16 = 3;

/// A machine the router keeps a session with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub name: String,
    /// Its IPv4 address, or (an IPv6-only lab) its IPv6 one.
    pub address: IpAddr,
}

/// `cluster_asn`: the nodes' and gateways' AS (the router's own: iBGP).
/// `password`: TCP-MD5 on every session. `ipv6`: the sessions carry IPv6 unicast too (a
/// dual-stack lab), taken only inside the pods' IPv6 network.
pub fn bird_config(
    router_id: Ipv4Addr,
    cluster_asn: u32,
    neighbors: &[Neighbor],
    password: Option<&str>,
    ipv6: bool,
) -> String {
    let ipv4 = neighbors.iter().all(|n| n.address.is_ipv4());
    // BIRD's string syntax: a quote or backslash would end or escape it (the lab's passwords
    // are hex).
    debug_assert!(password.is_none_or(|p| !p.contains(['"', '\\'])), "a password BIRD cannot quote");
    let password = password.map(|p| format!("  password \"{p}\";\n")).unwrap_or_default();
    let (kernel6, filter6, channel6) = match ipv6 {
        true => (
            "protocol kernel {\n  ipv6 { import none; export all; };\n  merge paths on;\n}\n".to_string(),
            format!("filter pods6 {{\n  if net ~ [ {POD_CIDR6}{{56,128}} ] then accept;\n  reject;\n}}\n"),
            "  ipv6 { import filter pods6; export none; };\n",
        ),
        false => (String::new(), String::new(), ""),
    };
    // (Sessions to IPv6 addresses, in an IPv6-only lab, carry IPv6 alone.)
    let channel4 = if ipv4 { "  ipv4 { import filter pods; export none; };\n" } else { "" };
    let mut out = format!(
        "router id {router_id};\n\
         log stderr all;\n\
         protocol device {{ }}\n\
         protocol kernel {{\n  ipv4 {{ import none; export all; }};\n  merge paths on;\n}}\n{kernel6}\
         filter pods {{\n  if net ~ [ {POD_CIDR}{{16,32}} ] then accept;\n  reject;\n}}\n{filter6}\
         template bgp weft_cluster {{\n  local as {ROUTER_ASN};\n  direct;\n  hold time {HOLD_TIME};\n  keepalive time 1;\n  \
         connect retry time 2;\n{password}{channel4}{channel6}}}\n"
    );
    for n in neighbors {
        let _ = writeln!(
            out,
            "protocol bgp {} from weft_cluster {{ neighbor {} as {cluster_asn}; }}",
            n.name, n.address
        );
    }
    out
}

pub fn frr_config(
    router_id: Ipv4Addr,
    cluster_asn: u32,
    neighbors: &[Neighbor],
    password: Option<&str>,
    ipv6: bool,
) -> String {
    let policy6 = match ipv6 {
        true => format!(
            "ipv6 prefix-list pods6 seq 5 permit {POD_CIDR6} le 128\n\
             route-map from-cluster6 permit 10\n match ipv6 address prefix-list pods6\nexit\n"
        ),
        false => String::new(),
    };
    let mut out = format!(
        "frr defaults traditional\nhostname router\n\
         ip prefix-list pods seq 5 permit {POD_CIDR} le 32\n\
         route-map from-cluster permit 10\n match ip address prefix-list pods\nexit\n{policy6}\
         route-map nothing deny 10\nexit\n\
         router bgp {ROUTER_ASN}\n bgp router-id {router_id}\n no bgp ebgp-requires-policy\n \
         timers bgp 1 {HOLD_TIME}\n"
    );
    for n in neighbors {
        let _ = writeln!(out, " neighbor {} remote-as {cluster_asn}", n.address);
        if let Some(password) = password {
            let _ = writeln!(out, " neighbor {} password {password}", n.address);
        }
    }
    // Each family's sessions: routes into the pods taken, nothing announced. (IPv6 unicast
    // on the same sessions, which the nodes offer; its routes come with the nodes' IPv6
    // addresses as next hops.)
    let mut family = |name: &str, activate: bool, route_map: &str| {
        let _ = writeln!(out, " address-family {name} unicast\n  maximum-paths 8");
        for n in neighbors {
            if activate {
                let _ = writeln!(out, "  neighbor {} activate", n.address);
            }
            let _ = writeln!(
                out,
                "  neighbor {0} route-map {route_map} in\n  neighbor {0} route-map nothing out",
                n.address
            );
        }
        out.push_str(" exit-address-family\n");
    };
    family("ipv4", false, "from-cluster");
    if ipv6 {
        family("ipv6", true, "from-cluster6");
    }
    out.push_str("exit\n");
    out
}

/// Writes the daemon's configuration into `dir` and returns the commands that run it in
/// the foreground (BIRD: one; FRR: zebra, then bgpd).
pub fn commands(
    kind: crate::topology::RouterKind,
    dir: &Path,
    router_id: Ipv4Addr,
    cluster_asn: u32,
    neighbors: &[Neighbor],
    password: Option<&str>,
    ipv6: bool,
) -> std::io::Result<Vec<Command>> {
    std::fs::create_dir_all(dir)?;
    let path = |name: &str| dir.join(name);
    // The configurations may hold the password: for the daemon's eyes only.
    let write = |name: &str, text: String| -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path(name))?;
        // A file left from before keeps its mode through open: set it.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    };
    match kind {
        crate::topology::RouterKind::Bird => {
            write("bird.conf", bird_config(router_id, cluster_asn, neighbors, password, ipv6))?;
            let mut bird = Command::new("bird");
            bird.arg("-f")
                .arg("-c")
                .arg(path("bird.conf"))
                .arg("-s")
                .arg(path("bird.ctl"))
                .arg("-P")
                .arg(path("bird.pid"));
            Ok(vec![bird])
        }
        crate::topology::RouterKind::Frr => {
            write("zebra.conf", "hostname router\n".into())?;
            write("bgpd.conf", frr_config(router_id, cluster_asn, neighbors, password, ipv6))?;
            // FRR's daemons drop to the frr user, which must own their sockets and pid files.
            let (uid, gid) = frr_user().ok_or_else(|| std::io::Error::other("no frr user (Debian: frr)"))?;
            for entry in [dir.to_path_buf(), path("zebra.conf"), path("bgpd.conf")] {
                std::os::unix::fs::chown(entry, Some(uid), Some(gid))?;
            }
            let daemon = |name: &str| {
                let mut command = Command::new(format!("/usr/lib/frr/{name}"));
                command
                    .arg("-f")
                    .arg(path(&format!("{name}.conf")))
                    .arg("-i")
                    .arg(path(&format!("{name}.pid")))
                    .arg("-z")
                    .arg(path("zserv.api"))
                    .arg("--vty_socket")
                    .arg(dir)
                    .args(["-u", "frr", "-g", "frr"]);
                command
            };
            Ok(vec![daemon("zebra"), daemon("bgpd")])
        }
    }
}

fn frr_user() -> Option<(u32, u32)> {
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    unsafe {
        let entry = libc::getpwnam(c"frr".as_ptr());
        (!entry.is_null()).then(|| ((*entry).pw_uid, (*entry).pw_gid))
    }
}

/// The program each kind needs, for a clear error when it is missing.
pub fn program(kind: crate::topology::RouterKind) -> (&'static str, &'static str) {
    match kind {
        crate::topology::RouterKind::Bird => ("bird", "bird2"),
        crate::topology::RouterKind::Frr => ("/usr/lib/frr/bgpd", "frr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neighbors() -> Vec<Neighbor> {
        vec![
            Neighbor { name: "n1".into(), address: IpAddr::from([198, 18, 1, 11]) },
            Neighbor { name: "n3".into(), address: IpAddr::from([198, 18, 2, 11]) },
        ]
    }

    #[test]
    fn bird_takes_only_pod_routes_and_merges_paths() {
        let conf = bird_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), None, false);
        assert!(conf.contains("router id 198.18.1.1;"));
        assert!(conf.contains("if net ~ [ 10.244.0.0/16{16,32} ] then accept;"));
        assert!(conf.contains("merge paths on;") && conf.contains("export none;"));
        assert!(conf.contains("protocol bgp n3 from weft_cluster { neighbor 198.18.2.11 as 65100; }"));
        assert!(conf.contains("hold time 3;") && !conf.contains("password"));
        let signed = bird_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), Some("pw1"), false);
        assert!(signed.contains("  password \"pw1\";\n"), "{signed}");
    }

    #[test]
    fn frr_is_told_the_same() {
        let conf = frr_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), None, false);
        assert!(conf.contains("router bgp 65000") && conf.contains("bgp router-id 198.18.1.1"));
        assert!(conf.contains(" neighbor 198.18.2.11 remote-as 65100"));
        assert!(conf.contains("ip prefix-list pods seq 5 permit 10.244.0.0/16 le 32"));
        assert!(conf.contains("  neighbor 198.18.1.11 route-map from-cluster in"));
        assert!(conf.contains("maximum-paths 8") && conf.contains("timers bgp 1 3"));
        assert!(!conf.contains("password"));
        let signed = frr_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), Some("pw1"), false);
        assert!(signed.contains(" neighbor 198.18.2.11 password pw1\n"), "{signed}");
    }

    #[test]
    fn dual_stack_sessions_take_ipv6_pod_routes_too() {
        let bird = bird_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), None, true);
        assert!(bird.contains("ipv6 { import filter pods6; export none; };"), "{bird}");
        assert!(bird.contains("if net ~ [ fd00:10:244::/56{56,128} ] then accept;"), "{bird}");
        assert!(bird.contains("ipv6 { import none; export all; }"), "{bird}");
        assert!(!bird_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), None, false).contains("ipv6"));
        let frr = frr_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), None, true);
        assert!(frr.contains("ipv6 prefix-list pods6 seq 5 permit fd00:10:244::/56 le 128"), "{frr}");
        assert!(
            frr.contains(" address-family ipv6 unicast\n  maximum-paths 8\n  neighbor 198.18.1.11 activate"),
            "{frr}"
        );
        assert!(frr.contains("  neighbor 198.18.2.11 route-map from-cluster6 in"), "{frr}");
        assert!(!frr_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &neighbors(), None, false).contains("ipv6"));
    }

    #[test]
    fn ipv6_only_sessions_carry_ipv6_alone() {
        let six = vec![Neighbor { name: "n1".into(), address: "2001:db8:1::11".parse().unwrap() }];
        let bird = bird_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &six, None, true);
        assert!(
            bird.contains("protocol bgp n1 from weft_cluster { neighbor 2001:db8:1::11 as 65100; }"),
            "{bird}"
        );
        assert!(
            bird.contains("ipv6 { import filter pods6;") && !bird.contains("ipv4 { import filter pods;"),
            "{bird}"
        );
        let frr = frr_config(Ipv4Addr::new(198, 18, 1, 1), 65100, &six, None, true);
        assert!(
            frr.contains(" neighbor 2001:db8:1::11 remote-as 65100")
                && frr.contains("  neighbor 2001:db8:1::11 activate")
        );
    }
}
