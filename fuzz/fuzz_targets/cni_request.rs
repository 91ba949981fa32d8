//! One CNI invocation's request: the `CNI_*` variables and the network config on stdin,
//! parsed the way the plugin does (Env::from_vars, then parse_request, then CNI_ARGS and
//! the prevResult for ADD), without touching the process or the kernel.
//!
//! Input: `NAME=VALUE` lines (the environment), a NUL byte, then stdin's bytes. With no
//! NUL, the whole input is stdin and the variables are those of an ADD.
//!
//! Checked beyond "no panic": what passes names no path outside the IPAM store (container
//! ID, network name, pod name), speaks a supported version, and every error is the spec's
//! error object in a version the plugin speaks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use weft_cni::error::CniError;
use weft_cni::spec::{pod_from_args, CniResult, Command, Env, CURRENT_VERSION, SUPPORTED_VERSIONS};
use weft_cni::{parse_request, Request};

fn safe_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains("..") && !name.starts_with('.')
}

fn check_error(error: &CniError, version: &str) {
    assert!(SUPPORTED_VERSIONS.contains(&version), "error in version {version:?}");
    let object = error.to_json(version);
    assert_eq!(object["code"].as_u64(), Some(u64::from(error.code)));
    assert!(!error.msg.is_empty());
    serde_json::from_str::<serde_json::Value>(&object.to_string()).expect("the error object is JSON");
}

fuzz_target!(|data: &[u8]| {
    let (vars, stdin) = match data.iter().position(|b| *b == 0) {
        Some(nul) => {
            let text = String::from_utf8_lossy(&data[..nul]);
            let vars: HashMap<String, String> = text
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (vars, &data[nul + 1..])
        }
        None => {
            let add = [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c0ffee"),
                ("CNI_NETNS", "/var/run/netns/pod"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"),
            ];
            (add.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), data)
        }
    };
    let env = match Env::from_vars(|name| vars.get(name).cloned()) {
        Ok(env) => env,
        Err(e) => return check_error(&e, CURRENT_VERSION),
    };
    if matches!(env.command, Command::Add | Command::Del | Command::Check) {
        assert!(safe_name(env.container_id()), "container ID {:?} passed", env.container_id());
        let ifname = env.ifname();
        assert!(!ifname.is_empty() && ifname.len() <= 15 && !ifname.contains('/'), "ifname {ifname:?}");
    }
    let mut version = CURRENT_VERSION.to_string();
    match parse_request(env, stdin, &mut version) {
        Err(e) => check_error(&e, &version),
        Ok(Request::Version(answer)) => {
            let asked = answer["cniVersion"].as_str().expect("VERSION names its version");
            assert!(SUPPORTED_VERSIONS.contains(&asked));
        }
        Ok(Request::Verb(env, conf)) => {
            assert!(SUPPORTED_VERSIONS.contains(&conf.version()));
            assert_eq!(version, conf.version());
            assert!(safe_name(conf.name()), "network name {:?} passed", conf.name());
            assert!(conf.mtu.is_none_or(|mtu| (68..=65535).contains(&mtu)));
            let _ = (conf.subnets(), conf.valid_attachments(), conf.version_at_least("1.0.0"));
            if env.command != Command::Add {
                return;
            }
            match pod_from_args(env.args.as_deref()) {
                Ok(Some(pod)) => {
                    assert!(safe_name(&pod.namespace) && safe_name(&pod.name), "pod {pod} passed");
                }
                Ok(None) => {}
                Err(e) => check_error(&e, &version),
            }
            if let Some(prev) = &conf.prev_result {
                match CniResult::from_prev_result(prev) {
                    Ok(result) => {
                        // What the plugin prints reads back as the same addresses.
                        let printed = result.to_version(conf.version());
                        let again = CniResult::from_prev_result(&printed).expect("our own result reads back");
                        assert_eq!(again.ips, result.ips);
                    }
                    Err(e) => check_error(&e, &version),
                }
            }
        }
    }
});
