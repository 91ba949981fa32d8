//! `weft install-cni`: what a DaemonSet's init container does on each node. Copies this
//! binary into the CNI bin dir and, with `--conf-dir`, writes the network config list, both
//! whole (temporary file, then rename). The agent writes the same list itself with
//! `--cni-conf-dir`, once the node can wire pods: that is how the DaemonSet uses it.

use anyhow::Context;
use std::path::{Path, PathBuf};
use weft_agent::install::install_binary;
use weft_agent::CniConflist;
use weft_core::conflist::{check_conflist, default_conflist, DEFAULT_CONFLIST_NAME};

/// The list to write into `conf_dir`: `file` (checked, under its own name), else weft's
/// default `[weft, portmap]` as `10-weft.conflist`.
pub fn conflist(conf_dir: &Path, file: Option<&Path>, state_dir: &Path) -> anyhow::Result<CniConflist> {
    let (name, text) = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
            check_conflist(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".conflist"))
                .ok_or_else(|| {
                    anyhow::anyhow!("{}: name it *.conflist, as runtimes look for", file.display())
                })?;
            (name, text)
        }
        None => (
            DEFAULT_CONFLIST_NAME.to_string(),
            default_conflist(state_dir, Path::new(weft_cni::DEFAULT_STATE_DIR)),
        ),
    };
    Ok(CniConflist { dir: conf_dir.to_path_buf(), name, text })
}

pub fn run(
    bin_dir: &Path,
    conf_dir: Option<&Path>,
    conflist_file: Option<&Path>,
    state_dir: &Path,
    plugins: &[PathBuf],
) -> anyhow::Result<()> {
    // Everything is read and checked before anything is written.
    let list = conf_dir.map(|dir| conflist(dir, conflist_file, state_dir)).transpose()?;
    let me = std::env::current_exe().context("find this binary")?;
    let (path, wrote) = install_binary(&me, bin_dir, "weft")
        .with_context(|| format!("install weft into {}", bin_dir.display()))?;
    say!("{} {}", if wrote { "installed" } else { "up to date:" }, path.display());
    for plugin in plugins {
        let name = plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow::anyhow!("--plugin {}: not a file", plugin.display()))?;
        if bin_dir.join(&name).exists() {
            // The node's own (its runtime's package, kubeadm's kubernetes-cni) stays.
            say!("kept {} (the node has one)", bin_dir.join(&name).display());
            continue;
        }
        let (path, _) = install_binary(plugin, bin_dir, &name)
            .with_context(|| format!("install {} into {}", plugin.display(), bin_dir.display()))?;
        say!("installed {}", path.display());
    }
    if let Some(list) = list {
        let wrote = list.write().with_context(|| format!("write {}", list.path().display()))?;
        say!("{} {}", if wrote { "wrote" } else { "up to date:" }, list.path().display());
    }
    Ok(())
}
