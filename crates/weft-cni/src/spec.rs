//! The CNI protocol as the plugin sees it: environment, network configuration, results,
//! in every version weft speaks.

use crate::error::{code, CniError};
use crate::ipam::PodName;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::path::PathBuf;
use weft_core::AttachMode;

/// Versions accepted in a network config, oldest first. ADD answers in the version asked.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const CURRENT_VERSION: &str = "1.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

/// The `CNI_*` variables of one invocation, checked.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    /// `CNI_ARGS`, as given: read by [`pod_from_args`] when a pod is added.
    pub args: Option<String>,
}

impl Env {
    /// Reads and checks the variables the command needs, the way the reference `skel` does:
    /// every missing name is reported at once, with code 4.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some(other) => {
                return Err(CniError::new(
                    code::INVALID_ENVIRONMENT,
                    format!("unknown CNI_COMMAND: {other}"),
                    "",
                ))
            }
            None => {
                return Err(CniError::new(
                    code::INVALID_ENVIRONMENT,
                    "required env variables [CNI_COMMAND] missing",
                    "",
                ))
            }
        };
        let attachment_verb = matches!(command, Command::Add | Command::Del | Command::Check);
        let needs_netns = matches!(command, Command::Add | Command::Check);
        let env = Env {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
        };
        let mut missing = Vec::new();
        if attachment_verb && env.container_id.is_none() {
            missing.push("CNI_CONTAINERID");
        }
        if needs_netns && env.netns.is_none() {
            missing.push("CNI_NETNS");
        }
        if attachment_verb && env.ifname.is_none() {
            missing.push("CNI_IFNAME");
        }
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("required env variables [{}] missing", missing.join(",")),
                "",
            ));
        }
        if attachment_verb {
            validate_container_id(env.container_id.as_deref().unwrap_or_default())?;
            validate_ifname(env.ifname.as_deref().unwrap_or_default())?;
        }
        Ok(env)
    }

    pub fn container_id(&self) -> &str {
        self.container_id.as_deref().unwrap_or_default()
    }

    pub fn ifname(&self) -> &str {
        self.ifname.as_deref().unwrap_or_default()
    }
}

/// The `CNI_ARGS` keys weft knows: the ones Kubernetes runtimes (containerd, CRI-O) send,
/// and the reference plugins' `IgnoreUnknown`.
const KNOWN_ARGS: [&str; 5] =
    ["IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"];

/// The pod named in `CNI_ARGS`, read as the reference plugins read it (libcni's
/// `types.LoadArgs`): `K=V` pairs separated by `;`, each with exactly one `=`; a key no
/// plugin of the chain may know is refused unless `IgnoreUnknown` is `1` or `true` (which
/// containerd and CRI-O always send). A name is recorded only when both the namespace and
/// the name are given, and each is a valid Kubernetes name (a DNS label, a DNS subdomain):
/// they end up in the IPAM store.
pub fn pod_from_args(args: Option<&str>) -> Result<Option<PodName>, CniError> {
    let invalid = |what: String| CniError::new(code::INVALID_ENVIRONMENT, "invalid CNI_ARGS", what);
    let Some(args) = args.filter(|a| !a.is_empty()) else { return Ok(None) };
    let mut unknown = Vec::new();
    let mut ignore_unknown = false;
    let (mut namespace, mut name) = (None, None);
    for pair in args.split(';') {
        let mut parts = pair.split('=');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(format!("ARGS: invalid pair {pair:?}")));
        };
        match key {
            "IgnoreUnknown" => {
                ignore_unknown = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(invalid(format!("ARGS: error parsing value of pair {pair:?}"))),
                }
            }
            "K8S_POD_NAMESPACE" => namespace = Some(value),
            "K8S_POD_NAME" => name = Some(value),
            _ if KNOWN_ARGS.contains(&key) => {}
            _ => unknown.push(pair),
        }
    }
    if !unknown.is_empty() && !ignore_unknown {
        return Err(invalid(format!("ARGS: unknown args {unknown:?} (IgnoreUnknown=1 lets them pass)")));
    }
    let (Some(namespace), Some(name)) = (namespace.filter(|v| !v.is_empty()), name.filter(|v| !v.is_empty()))
    else {
        return Ok(None);
    };
    if !is_dns_label(namespace) {
        return Err(invalid(format!("K8S_POD_NAMESPACE {namespace:?} is not a Kubernetes namespace name")));
    }
    if !is_dns_subdomain(name) {
        return Err(invalid(format!("K8S_POD_NAME {name:?} is not a Kubernetes pod name")));
    }
    Ok(Some(PodName { namespace: namespace.into(), name: name.into() }))
}

/// RFC 1123 label, as Kubernetes checks a namespace: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at
/// most 63 characters.
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// RFC 1123 subdomain, as Kubernetes checks a pod's name: labels joined by dots, at most
/// 253 characters.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` as in the reference skel, and no `..` either: the
/// container ID names files of the IPAM store, and must never climb out of it.
fn is_safe_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !id.contains("..")
}

pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if is_safe_identifier(id) {
        Ok(())
    } else {
        Err(CniError::new(code::INVALID_ENVIRONMENT, "invalid characters in CNI_CONTAINERID", id))
    }
}

/// The kernel's rules for an interface name, checked before any request is made.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let fail = |msg: &str| Err(CniError::new(code::INVALID_ENVIRONMENT, format!("CNI_IFNAME: {msg}"), name));
    if name.is_empty() {
        fail("interface name is empty")
    } else if name.len() > weft_core::names::MAX_IFNAME_LEN {
        fail("interface name is longer than 15 bytes")
    } else if name == "." || name == ".." {
        fail("interface name is . or ..")
    } else if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        fail("interface name contains / or : or whitespace")
    } else {
        Ok(())
    }
}

/// One subnet or several (dual-stack).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(IpNet),
    Many(Vec<IpNet>),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The network configuration on stdin: the spec's fields and weft's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: Option<String>,
    pub name: Option<String>,
    /// Where the agent's node file lives.
    pub state_dir: Option<PathBuf>,
    /// Serve these subnets instead of the node file's.
    pub subnet: Option<OneOrMany>,
    pub attach: Option<AttachMode>,
    pub mtu: Option<u32>,
    /// IPAM state.
    pub data_dir: Option<PathBuf>,
    /// The node bridge, in bridge attach mode.
    pub bridge: Option<String>,
    /// Passed through into the result as it is.
    pub dns: Option<Value>,
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The key's name in the first 1.1.0 text; libcni sends both.
    #[serde(rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// Decodes stdin and checks it.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        Self::decode(bytes)?.validated()
    }

    /// The JSON, read but not yet checked.
    pub fn decode(bytes: &[u8]) -> Result<NetConf, CniError> {
        serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(code::DECODING_FAILURE, "cannot decode network configuration", e.to_string())
        })
    }

    /// Checks what every verb relies on: the version, the name, weft's own fields.
    pub fn validated(self) -> Result<NetConf, CniError> {
        let conf = self;
        let version = conf.version();
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                "incompatible CNI versions",
                format!("config is {version:?}, plugin supports {SUPPORTED_VERSIONS:?}"),
            ));
        }
        match conf.name.as_deref() {
            None | Some("") => {
                return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "missing network name", ""))
            }
            Some(name) if !is_safe_identifier(name) => {
                return Err(CniError::new(
                    code::INVALID_NETWORK_CONFIG,
                    "invalid characters found in network name",
                    name,
                ))
            }
            _ => {}
        }
        if let Some(mtu) = conf.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(CniError::new(
                    code::INVALID_NETWORK_CONFIG,
                    "mtu out of range",
                    format!("{mtu} is not in 68..=65535"),
                ));
            }
        }
        if let Some(bridge) = &conf.bridge {
            validate_ifname(bridge).map_err(|e| {
                CniError::new(code::INVALID_NETWORK_CONFIG, "bridge is not a valid interface name", e.details)
            })?;
        }
        Ok(conf)
    }

    /// A config without `cniVersion` is a 0.1.0 config, which weft does not speak.
    pub fn version(&self) -> &str {
        self.cni_version.as_deref().unwrap_or("0.1.0")
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    pub fn subnets(&self) -> Vec<IpNet> {
        match &self.subnet {
            None => Vec::new(),
            Some(OneOrMany::One(net)) => vec![*net],
            Some(OneOrMany::Many(nets)) => nets.clone(),
        }
    }

    pub fn valid_attachments(&self) -> Option<&[Attachment]> {
        self.valid_attachments.as_deref().or(self.attachments.as_deref())
    }

    /// Whether the config's version is at least `minimum` (both from SUPPORTED_VERSIONS).
    pub fn version_at_least(&self, minimum: &str) -> bool {
        let rank = |v: &str| SUPPORTED_VERSIONS.iter().position(|s| *s == v);
        rank(self.version()) >= rank(minimum)
    }
}

// ---- results -------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Fields weft does not set itself (socketPath, pciID, ...), kept from a prevResult.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteConfig {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// mtu, advmss, priority, table, scope (1.1.0), kept from a prevResult.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A result in weft's own terms; [`CniResult::to_version`] writes it in any version.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CniResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub dns: Option<Value>,
}

impl CniResult {
    /// Reads a prevResult of any supported version (0.3.x/0.4.0 carry an extra `version`
    /// in each IP, which is derived again when writing).
    pub fn from_prev_result(value: &Value) -> Result<CniResult, CniError> {
        serde_json::from_value(value.clone())
            .map_err(|e| CniError::new(code::DECODING_FAILURE, "cannot decode prevResult", e.to_string()))
    }

    pub fn to_version(&self, version: &str) -> Value {
        let pre_1_0 = version.starts_with("0.");
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|interface| {
                let mut interface = interface.clone();
                if version != "1.1.0" {
                    // mtu, socketPath and pciID first appear in 1.1.0
                    interface.mtu = None;
                    interface.other.remove("socketPath");
                    interface.other.remove("pciID");
                }
                serde_json::to_value(interface).expect("interface serialises")
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut value = serde_json::to_value(ip).expect("ip serialises");
                if pre_1_0 {
                    let family = if ip.address.addr().is_ipv4() { "4" } else { "6" };
                    value["version"] = Value::from(family);
                }
                value
            })
            .collect();
        let mut result = serde_json::json!({ "cniVersion": version });
        if !interfaces.is_empty() {
            result["interfaces"] = Value::from(interfaces);
        }
        if !ips.is_empty() {
            result["ips"] = Value::from(ips);
        }
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|route| {
                    let mut route = route.clone();
                    if version != "1.1.0" {
                        for field in ["mtu", "advmss", "priority", "table", "scope"] {
                            route.other.remove(field); // first appear in 1.1.0
                        }
                    }
                    serde_json::to_value(route).expect("route serialises")
                })
                .collect();
            result["routes"] = Value::from(routes);
        }
        result["dns"] = self.dns.clone().unwrap_or_else(|| serde_json::json!({}));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        Env::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn reports_every_missing_variable() {
        let e = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENVIRONMENT);
        assert!(e.msg.contains("CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME"), "{}", e.msg);
        // DEL does not need a netns
        let e = env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1")]).unwrap_err();
        assert!(e.msg.contains("[CNI_IFNAME]"), "{}", e.msg);
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
        assert_eq!(env(&[]).unwrap_err().code, code::INVALID_ENVIRONMENT);
        assert_eq!(env(&[("CNI_COMMAND", "FLY")]).unwrap_err().code, code::INVALID_ENVIRONMENT);
    }

    #[test]
    fn cni_args_name_the_pod_as_the_reference_plugins_read_them() {
        let containerd = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
                          K8S_POD_INFRA_CONTAINER_ID=3f2a;K8S_POD_UID=1b4e-99";
        let pod = pod_from_args(Some(containerd)).unwrap().unwrap();
        assert_eq!(pod.to_string(), "default/web-0");
        // keys weft knows need no IgnoreUnknown; nothing named is nothing recorded
        assert!(pod_from_args(Some("K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=a.b-1")).unwrap().is_some());
        assert_eq!(pod_from_args(None).unwrap(), None);
        assert_eq!(pod_from_args(Some("")).unwrap(), None);
        assert_eq!(pod_from_args(Some("K8S_POD_NAME=web-0")).unwrap(), None);
        // unknown keys: refused without IgnoreUnknown, ignored with it (1, true, True)
        assert_eq!(pod_from_args(Some("FOO=bar")).unwrap_err().code, code::INVALID_ENVIRONMENT);
        assert_eq!(
            pod_from_args(Some("FOO=bar;IgnoreUnknown=0")).unwrap_err().code,
            code::INVALID_ENVIRONMENT
        );
        for yes in ["1", "true", "True"] {
            let args = format!("FOO=bar;IgnoreUnknown={yes};K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p");
            assert_eq!(pod_from_args(Some(&args)).unwrap().unwrap().to_string(), "ns/p");
        }
        // malformed pairs and values, and names that are not Kubernetes names
        for bad in [
            "K8S_POD_NAME",
            "A=b=c;IgnoreUnknown=1",
            "IgnoreUnknown=yes",
            "K8S_POD_NAMESPACE=Default;K8S_POD_NAME=p",
            "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=../../etc",
            "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=a/b",
            "K8S_POD_NAMESPACE=-ns;K8S_POD_NAME=p",
        ] {
            assert_eq!(pod_from_args(Some(bad)).unwrap_err().code, code::INVALID_ENVIRONMENT, "{bad}");
        }
    }

    #[test]
    fn container_ids_never_climb_out() {
        for bad in ["../etc", "a/b", "a..b", ".hidden", "-x", "a b", "a\0b", ""] {
            assert!(validate_container_id(bad).is_err(), "accepted {bad:?}");
        }
        for good in ["abc", "0123456789abcdef", "pod_1.2-x"] {
            assert!(validate_container_id(good).is_ok(), "refused {good:?}");
        }
    }

    #[test]
    fn interface_names_follow_the_kernel() {
        for bad in ["", "a23456789012345x", ".", "..", "a/b", "a:b", "a b", "tab\t"] {
            assert!(validate_ifname(bad).is_err(), "accepted {bad:?}");
        }
        assert!(validate_ifname("a23456789012345").is_ok());
        assert!(validate_ifname("eth0").is_ok());
    }

    #[test]
    fn config_errors_carry_spec_codes() {
        let cases: [(&str, u32); 6] = [
            ("{", code::DECODING_FAILURE),
            (r#"{"cniVersion":"0.2.0","name":"n"}"#, code::INCOMPATIBLE_VERSION),
            (r#"{"name":"n"}"#, code::INCOMPATIBLE_VERSION),
            (r#"{"cniVersion":"1.0.0"}"#, code::INVALID_NETWORK_CONFIG),
            (r#"{"cniVersion":"1.0.0","name":"../x"}"#, code::INVALID_NETWORK_CONFIG),
            (r#"{"cniVersion":"1.0.0","name":"n","mtu":10}"#, code::INVALID_NETWORK_CONFIG),
        ];
        for (text, expected) in cases {
            assert_eq!(NetConf::parse(text.as_bytes()).unwrap_err().code, expected, "{text}");
        }
    }

    #[test]
    fn subnet_is_one_or_many() {
        let conf = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","subnet":"10.0.0.0/24"}"#).unwrap();
        assert_eq!(conf.subnets().len(), 1);
        let conf =
            NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","subnet":["10.0.0.0/24","fd00::/64"]}"#)
                .unwrap();
        assert_eq!(conf.subnets().len(), 2);
    }

    #[test]
    fn results_take_the_shape_of_their_version() {
        let result = CniResult {
            interfaces: vec![Interface { name: "eth0".into(), mtu: Some(1450), ..Default::default() }],
            ips: vec![IpConfig {
                address: "10.0.0.5/32".parse().unwrap(),
                gateway: None,
                interface: Some(0),
            }],
            routes: vec![],
            dns: None,
        };
        let old = result.to_version("0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        assert!(old["interfaces"][0].get("mtu").is_none());
        let new = result.to_version("1.1.0");
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][0]["mtu"], 1450);
        assert_eq!(new["ips"][0]["address"], "10.0.0.5/32");
        // and what was written reads back
        assert_eq!(CniResult::from_prev_result(&old).unwrap().ips, result.ips);
        // route fields of 1.1.0 kept from a prevResult stay out of older versions
        let prev = serde_json::json!({"routes": [{"dst": "0.0.0.0/0", "mtu": 1400, "table": 100}]});
        let routed = CniResult::from_prev_result(&prev).unwrap();
        assert_eq!(routed.to_version("1.1.0")["routes"][0]["table"], 100);
        assert!(routed.to_version("1.0.0")["routes"][0].get("table").is_none());
        assert!(routed.to_version("0.4.0")["routes"][0].get("mtu").is_none());
    }
}
