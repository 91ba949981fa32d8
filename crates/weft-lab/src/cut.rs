//! Network partitions for tests: a lab member cut off from some addresses by an nftables
//! table of the lab's own (`inet weftlab-cut`) inside that member's namespace, dropping what
//! it receives from them and what it sends to them. Healing deletes the table. Uses the `nft`
//! program (Debian's nftables) as the agent's masquerade does; no other table is read or
//! written (weft's own, `weft`, never).

use crate::lab::Lab;
use crate::process::runs_in;
use crate::wiring::open_namespace;
use crate::LabError;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The lab's table (family `inet`: IPv4 and IPv6 alike).
pub const TABLE: &str = "weftlab-cut";

/// An `nft -f` script that replaces the table whole, dropping all traffic to and from
/// `addresses` (none: the table goes).
pub fn ruleset(addresses: &[IpAddr]) -> String {
    // Created first, so that the delete never fails: the idiom of an atomic replace.
    let mut script = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
    if addresses.is_empty() {
        return script;
    }
    let set = |v6: bool| {
        let members: Vec<String> =
            addresses.iter().filter(|a| a.is_ipv6() == v6).map(|a| a.to_string()).collect();
        (!members.is_empty()).then(|| format!("{{ {} }}", members.join(", ")))
    };
    let mut input = String::new();
    let mut output = String::new();
    for (family, members) in [("ip", set(false)), ("ip6", set(true))] {
        if let Some(members) = members {
            input.push_str(&format!("\t\t{family} saddr {members} drop\n"));
            output.push_str(&format!("\t\t{family} daddr {members} drop\n"));
        }
    }
    // Ahead of any filter of weft's own (priority 0).
    script.push_str(&format!(
        "table inet {TABLE} {{\n\
         \tchain input {{\n\t\ttype filter hook input priority -10; policy accept;\n{input}\t}}\n\
         \tchain output {{\n\t\ttype filter hook output priority -10; policy accept;\n{output}\t}}\n\
         }}\n"
    ));
    script
}

/// Runs `nft -f -` with `script` inside the namespace `netns`.
fn nft_in(netns: &str, script: &str) -> Result<(), LabError> {
    let ns = open_namespace(netns)?;
    let mut command = Command::new("nft");
    command.args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    runs_in(&mut command, &ns);
    let mut child =
        command.spawn().map_err(|e| LabError::io("run nft (is Debian's nftables installed?)", e))?;
    let _ = child.stdin.take().expect("piped").write_all(script.as_bytes());
    let output = child.wait_with_output().map_err(|e| LabError::io("wait for nft", e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "nft in {netns} refused the table {TABLE}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

impl Lab {
    /// Drops all traffic between lab member `member` (any of the lab's namespaces: a node,
    /// an etcd member, the router, …) and `addresses`, in both directions, by a table of
    /// the lab's own in that member's namespace only. Cuts add up: a second cut of the same
    /// member drops these addresses as well as the earlier ones, until [`Lab::heal`].
    pub fn cut(&mut self, member: &str, addresses: &[IpAddr]) -> Result<(), LabError> {
        let netns = self.netns(member)?;
        if addresses.is_empty() {
            return Err(LabError::Invalid(format!("cut {member} from what? no addresses given")));
        }
        let mut all = self.state.cuts.get(member).cloned().unwrap_or_default();
        for address in addresses {
            if !all.contains(address) {
                all.push(*address);
            }
        }
        nft_in(&netns, &ruleset(&all))?;
        self.state.cuts.insert(member.to_string(), all);
        self.state.save()
    }

    /// Undoes every [`Lab::cut`] of `member`: its table goes.
    pub fn heal(&mut self, member: &str) -> Result<(), LabError> {
        let netns = self.netns(member)?;
        nft_in(&netns, &ruleset(&[]))?;
        self.state.cuts.remove(member);
        self.state.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_drops_both_ways_in_a_table_of_its_own() {
        let addresses: Vec<IpAddr> = vec![
            "198.18.1.101".parse().unwrap(),
            "198.18.2.102".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        ];
        let script = ruleset(&addresses);
        assert!(
            script.starts_with("add table inet weftlab-cut\ndelete table inet weftlab-cut\n"),
            "{script}"
        );
        assert!(script.contains("ip saddr { 198.18.1.101, 198.18.2.102 } drop"), "{script}");
        assert!(script.contains("ip daddr { 198.18.1.101, 198.18.2.102 } drop"), "{script}");
        assert!(
            script.contains("ip6 saddr { fd00::1 } drop") && script.contains("ip6 daddr { fd00::1 } drop")
        );
        assert!(script.contains("type filter hook input") && script.contains("type filter hook output"));
        assert!(!script.contains("table ip weft") && !script.contains("inet weft "), "only the lab's table");
        // Healing: only the delete.
        assert_eq!(ruleset(&[]), "add table inet weftlab-cut\ndelete table inet weftlab-cut\n");
        assert!(!ruleset(&addresses[..1]).contains("ip6"));
    }
}
