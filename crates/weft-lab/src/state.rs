//! A lab's directory under /run/weft-lab: its spec (written before anything is made, so
//! `down` can always find what `up` may have made), the pods' addresses, the processes it
//! started, the store and each node's state.

use crate::topology::LabSpec;
use crate::LabError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Where every lab keeps its files.
pub const LAB_ROOT: &str = "/run/weft-lab";
const STATE_FILE: &str = "lab.json";

pub fn lab_dir(name: &str) -> PathBuf {
    Path::new(LAB_ROOT).join(name)
}

/// A process the lab started, told apart from a later process with the same pid by its
/// start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub pid: u32,
    pub start_time: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub name: String,
    pub node: String,
    pub address: Option<Ipv4Addr>,
    /// Dual stack: the pod's IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<std::net::Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    pub spec: LabSpec,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The store's URL as the agents use it.
    pub store_url: String,
    /// Every pod, named before its namespace is made, its address once the plugin gave it.
    #[serde(default)]
    pub pods: Vec<PodRecord>,
    /// Node name → its agent.
    #[serde(default)]
    pub agents: BTreeMap<String, Process>,
    /// etcd member name → its process.
    #[serde(default)]
    pub etcd_members: BTreeMap<String, Process>,
    /// The router's BGP daemons (BIRD, or FRR's zebra and bgpd).
    #[serde(default)]
    pub router: Vec<Process>,
    /// Member → the addresses it is cut off from (`Lab::cut`), until healed.
    #[serde(default)]
    pub cuts: BTreeMap<String, Vec<IpAddr>>,
}

impl LabState {
    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.spec.name)
    }

    /// A node's agent state dir (node file, status), which is also the CNI plugin's.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir().join("nodes").join(node)
    }

    /// The agents' `--bgp-password-file` (`* PASSWORD`), when the lab signs its sessions.
    pub fn bgp_password_file(&self) -> PathBuf {
        self.dir().join("bgp-passwords")
    }

    /// The password every BGP session of the lab is signed with, if the lab signs them.
    pub fn bgp_password(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.bgp_password_file()).ok()?;
        text.lines().find_map(|l| l.strip_prefix("* ")).map(str::to_string)
    }

    pub fn log_file(&self, process: &str) -> PathBuf {
        self.dir().join("logs").join(format!("{process}.log"))
    }

    pub fn load(name: &str) -> Result<LabState, LabError> {
        let path = lab_dir(name).join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LabError::NotFound(name.to_string())
            } else {
                LabError::io(format!("read {}", path.display()), e)
            }
        })?;
        let state: LabState =
            serde_json::from_str(&text).map_err(|e| LabError::Invalid(format!("{}: {e}", path.display())))?;
        // A state is trusted only for the lab it names: `down` removes what it lists.
        state.spec.validate()?;
        if state.spec.name != name {
            return Err(LabError::Invalid(format!("{} is lab {:?}'s", path.display(), state.spec.name)));
        }
        Ok(state)
    }

    /// Writes the state whole (a rename), so a reader never sees half of it.
    pub fn save(&self) -> Result<(), LabError> {
        let dir = self.dir();
        let path = dir.join(STATE_FILE);
        let temporary = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("lab state serialises");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| LabError::io(format!("write {}", path.display()), e))
    }
}

/// Names of the labs that have a directory.
pub fn lab_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(LAB_ROOT) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Mode, StoreKind};

    #[test]
    fn the_state_of_a_lab_from_before_etcd_clusters_still_reads() {
        let state = LabState {
            spec: LabSpec { store: StoreKind::Etcd, ..LabSpec::new("old", Mode::Vxlan) },
            created_at: 1,
            store_url: "etcd://198.18.1.1:2379".into(),
            pods: Vec::new(),
            agents: BTreeMap::new(),
            etcd_members: BTreeMap::new(),
            router: Vec::new(),
            cuts: BTreeMap::new(),
        };
        // As the code before wrote it: one etcd, no members, no cuts, no member count.
        let mut old = serde_json::to_value(&state).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("etcdMembers");
        fields.remove("cuts");
        fields.insert("etcd".into(), serde_json::json!({ "pid": 7, "startTime": 8 }));
        fields["spec"].as_object_mut().unwrap().remove("etcdMembers");
        let read: LabState = serde_json::from_value(old).unwrap();
        assert_eq!(read, state);
        assert_eq!(read.spec.etcd_members, 1);
    }
}
