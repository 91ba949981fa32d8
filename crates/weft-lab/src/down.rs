//! Removing labs: every process in their namespaces, the namespaces, their files. Works
//! from what the lab's state names and from the namespaces' prefix, so it also cleans up
//! after an `up` that crashed or was killed half-way.

use crate::process::{processes_in, stop_all};
use crate::state::{lab_dir, lab_names, LabState, LAB_ROOT};
use crate::topology::{Topology, NETNS_PREFIX};
use crate::LabError;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_kernel::netns;

/// What a `down` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub labs: Vec<String>,
    pub namespaces: usize,
    pub processes: usize,
}

/// How long processes get to stop on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Removes one lab.
pub fn down(state: &LabState) -> Result<Removed, LabError> {
    let mut namespaces = Topology::of(&state.spec).namespaces();
    for pod in &state.pods {
        let name = crate::topology::netns_name(&state.spec.name, &pod.name);
        if !namespaces.contains(&name) {
            namespaces.insert(0, name);
        }
    }
    let mut removed = remove_namespaces(&namespaces)?;
    let dir = state.dir();
    std::fs::remove_dir_all(&dir)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(|e| LabError::io(format!("remove {}", dir.display()), e))?;
    removed.labs.push(state.spec.name.clone());
    Ok(removed)
}

/// Removes the lab `name`, by its state.
pub fn down_named(name: &str) -> Result<Removed, LabError> {
    crate::topology::validate_name(name)?;
    match LabState::load(name) {
        Ok(state) => down(&state),
        // `up` died between making the directory and writing the state: nothing else made.
        Err(LabError::Invalid(_)) | Err(LabError::NotFound(_)) if lab_dir(name).exists() => {
            std::fs::remove_dir_all(lab_dir(name))
                .map_err(|e| LabError::io(format!("remove {}", lab_dir(name).display()), e))?;
            Ok(Removed { labs: vec![name.to_string()], ..Removed::default() })
        }
        Err(e) => Err(e),
    }
}

/// Removes every lab: each one with a state, then any namespace with the labs' prefix and
/// any directory left under /run/weft-lab.
pub fn down_all() -> Result<Removed, LabError> {
    let mut all = Removed::default();
    let mut first_error = None;
    for name in lab_names() {
        match down_named(&name) {
            Ok(removed) => {
                all.labs.extend(removed.labs);
                all.namespaces += removed.namespaces;
                all.processes += removed.processes;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let strays: Vec<String> = netns::list_named()
        .map_err(|e| LabError::kernel("list namespaces", e))?
        .into_iter()
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .collect();
    match remove_namespaces(&strays) {
        Ok(stray) => {
            all.namespaces += stray.namespaces;
            all.processes += stray.processes;
        }
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    for name in lab_names() {
        let _ = std::fs::remove_dir_all(Path::new(LAB_ROOT).join(name));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

/// Stops every process inside `names` (those that exist), then removes them, going on past
/// failures and returning the first.
fn remove_namespaces(names: &[String]) -> Result<Removed, LabError> {
    let existing: Vec<&String> =
        names.iter().filter(|n| Path::new(netns::NETNS_RUN_DIR).join(n).exists()).collect();
    let paths: Vec<PathBuf> = existing.iter().map(|n| Path::new(netns::NETNS_RUN_DIR).join(n)).collect();
    let processes = processes_in(&paths);
    stop_all(&processes, GRACE);
    let mut first_error = None;
    for name in &existing {
        if let Err(e) = netns::delete_named(name) {
            first_error.get_or_insert(LabError::kernel(
                format!("remove namespace {name} (try again, or `ip netns delete {name}`)"),
                e,
            ));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Removed { labs: Vec::new(), namespaces: existing.len(), processes: processes.len() }),
    }
}
