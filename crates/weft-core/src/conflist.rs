//! The CNI network config list a node's runtime reads: weft's default, and the checks a
//! conflist passes before weft installs it.
//!
//! A Kubernetes node is NotReady until its runtime finds a network config, so the config is
//! the node's "pods can be wired now": the agent writes it once it holds a lease and has
//! written the node file, never removes it, and writes it whole (temp file and rename) so a
//! runtime watching the directory never reads half of one.

use serde_json::{json, Value};
use std::path::Path;

/// The file name: `10-` sorts before the names other networks' installers pick
/// (`10-flannel.conflist`, `10-calico.conflist`, `05-cilium.conflistx` aside), and runtimes
/// load the first by name.
pub const DEFAULT_CONFLIST_NAME: &str = "10-weft.conflist";

/// The network's name, which also names weft's IPAM directory (`<dataDir>/networks/weft`).
pub const DEFAULT_NETWORK_NAME: &str = "weft";

/// The version the default list declares. 1.0.0, not 1.1.0: the libcni of containerd 1.6
/// and 1.7 (and Debian's reference plugins, portmap among them) speak up to 1.0.0, and a
/// list they cannot read leaves the node NotReady. weft answers in the version asked.
pub const DEFAULT_CNI_VERSION: &str = "1.0.0";

/// `[weft, portmap]`: weft wires the pod, portmap maps its `hostPort`s. `state_dir` is
/// written into weft's entry unless it is the plugin's default.
pub fn default_conflist(state_dir: &Path, default_state_dir: &Path) -> String {
    let mut weft = json!({ "type": "weft" });
    if state_dir != default_state_dir {
        weft["stateDir"] = json!(state_dir);
    }
    let list = json!({
        "cniVersion": DEFAULT_CNI_VERSION,
        "name": DEFAULT_NETWORK_NAME,
        "plugins": [weft, { "type": "portmap", "capabilities": { "portMappings": true } }],
    });
    let mut text = serde_json::to_string_pretty(&list).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// Checks that `text` is a network config list a runtime will load and that runs weft: a
/// JSON object with `cniVersion`, a `name`, and a non-empty `plugins` list whose entries
/// each have a `type`, one of them `weft`.
pub fn check_conflist(text: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if field("cniVersion").is_none() {
        return Err("no cniVersion".into());
    }
    if field("name").is_none() {
        return Err("no name".into());
    }
    let plugins =
        value.get("plugins").and_then(Value::as_array).filter(|p| !p.is_empty()).ok_or(
            "no plugins list (a .conflist has one; a single plugin's .conf is not what weft installs)",
        )?;
    let types: Vec<&str> = plugins.iter().filter_map(|p| p.get("type").and_then(Value::as_str)).collect();
    if types.len() != plugins.len() {
        return Err("a plugin without a type".into());
    }
    if !types.contains(&"weft") {
        return Err(format!("no weft plugin in the list (types: {})", types.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_is_weft_then_portmap() {
        let text = default_conflist(Path::new("/run/weft"), Path::new("/run/weft"));
        check_conflist(&text).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(value["plugins"][0], json!({ "type": "weft" }));
        assert_eq!(value["plugins"][1]["type"], "portmap");
        assert_eq!(value["plugins"][1]["capabilities"]["portMappings"], true);
        let moved = default_conflist(Path::new("/var/run/weft-test"), Path::new("/run/weft"));
        let value: Value = serde_json::from_str(&moved).unwrap();
        assert_eq!(value["plugins"][0]["stateDir"], "/var/run/weft-test");
    }

    #[test]
    fn lists_that_would_not_run_weft_are_refused() {
        for bad in [
            "{",
            r#"{"name":"n","plugins":[{"type":"weft"}]}"#,
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"weft"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","type":"weft"}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"weft"},{}]}"#,
        ] {
            assert!(check_conflist(bad).is_err(), "accepted {bad}");
        }
    }
}
