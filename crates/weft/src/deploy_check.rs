//! The manifests in deploy/kubernetes run command lines this binary accepts: every
//! container's `command`, its `$(VAR)`s expanded as the kubelet expands them (from the
//! ConfigMap, and sample values for the node's name and IP), parsed by the real CLI. The
//! paths they name are inside the container's volumes, and what the ConfigMap holds (the
//! store URL, the CIDR, the conflist) is what weft reads. (Their schemas are checked against
//! the Kubernetes API by tests/deploy.rs.)

use crate::Cli;
use clap::Parser;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect()
}

fn config_map() -> HashMap<String, String> {
    let doc = documents("configmap.yaml").remove(0);
    doc["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
        .collect()
}

/// A container's environment as the kubelet gives it.
fn environment(container: &Value, config: &HashMap<String, String>) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container["env"].as_sequence().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = if let Some(value) = var["value"].as_str() {
            value.to_string()
        } else if let Some(key) = var["valueFrom"]["configMapKeyRef"]["key"].as_str() {
            assert_eq!(var["valueFrom"]["configMapKeyRef"]["name"].as_str(), Some("weft-config"));
            config.get(key).unwrap_or_else(|| panic!("{name}: the ConfigMap has no {key}")).clone()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("spec.nodeName") => "node-1".into(),
                Some("status.hostIP") => "192.0.2.10".into(),
                other => panic!("{name}: unexpected source {other:?}"),
            }
        };
        env.insert(name, value);
    }
    env
}

/// `$(VAR)` replaced as the kubelet does (an unknown one stays as written).
fn expand(arg: &str, env: &HashMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

/// Every container and init container of a pod template, with its command expanded.
fn commands(file: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let config = config_map();
    let doc = documents(file).remove(0);
    let spec = &doc["spec"]["template"]["spec"];
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for container in spec[list].as_sequence().into_iter().flatten() {
            let env = environment(container, &config);
            let command: Vec<String> = container["command"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{file}: a container without a command"))
                .iter()
                .map(|a| expand(a.as_str().unwrap(), &env))
                .collect();
            assert!(!command.iter().any(|a| a.contains("$(")), "{file}: unexpanded {command:?}");
            let mounts: Vec<String> = container["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|m| m["mountPath"].as_str().unwrap().to_string())
                .collect();
            out.push((container["name"].as_str().unwrap().to_string(), command, mounts));
        }
    }
    out
}

/// The flags whose values are paths the container must have from a volume.
const PATH_FLAGS: [&str; 5] = ["--bin-dir", "--cni-conf-dir", "--cni-conflist", "--proc-sys", "--state-dir"];

fn check(file: &str, expected: &[&str]) {
    let commands = commands(file);
    let names: Vec<&str> = commands.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, expected, "{file}");
    for (name, command, mounts) in &commands {
        assert_eq!(command[0], "/usr/local/bin/weft", "{file}: {name} runs the image's weft");
        if let Err(e) = Cli::try_parse_from(command) {
            panic!("{file}: {name}'s command line is refused by weft:\n{command:?}\n{e}");
        }
        for pair in command.windows(2) {
            if PATH_FLAGS.contains(&pair[0].as_str()) {
                // The agent writes net.* sysctls only: the host's /proc/sys/net is enough.
                let path = match pair[0].as_str() {
                    "--proc-sys" => Path::new(&pair[1]).join("net"),
                    _ => PathBuf::from(&pair[1]),
                };
                assert!(
                    mounts.iter().any(|m| path.starts_with(m)),
                    "{file}: {name}: {} {} is in none of its volumes {mounts:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

#[test]
fn the_daemonsets_command_lines_are_ones_weft_accepts() {
    check("daemonset.yaml", &["install-cni", "agent"]);
    let (_, agent, _) = &commands("daemonset.yaml")[1];
    // The agent writes the config list the ConfigMap holds, once the node is ready.
    assert!(agent.windows(2).any(|p| p[0] == "--cni-conflist" && p[1].ends_with("/10-weft.conflist")));
}

#[test]
fn the_network_init_jobs_command_line_is_one_weft_accepts() {
    check("job.yaml", &["network-init"]);
}

#[test]
fn the_config_map_holds_what_weft_reads() {
    let config = config_map();
    weft_store::etcd::EtcdUrl::parse(&config["store"]).unwrap();
    let cidr: ipnet::IpNet = config["cidr"].parse().unwrap();
    let mut network = weft_core::network::NetworkConfig::new(cidr);
    network.subnet_len = config["subnet-len"].parse().unwrap();
    network.validate().unwrap();
    weft_core::conflist::check_conflist(&config["10-weft.conflist"]).unwrap();
}
