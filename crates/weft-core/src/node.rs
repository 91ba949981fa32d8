//! The node file: what the agent tells the CNI plugin about this node.
//!
//! The agent writes it into its state dir (`<stateDir>/node.json`) whenever its lease
//! changes; the CNI plugin reads it on every ADD. One definition here keeps both sides in
//! step.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// File name of the node file inside the state dir.
pub const NODE_FILE_NAME: &str = "node.json";

/// How a pod's interface is joined to its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// A veth pair; the pod gets a host address (/32, /128) and a default route via a
    /// link-local gateway, the node a host route to the pod. No bridge, no ARP flooding:
    /// the faster path.
    #[default]
    Routed,
    /// The node side of the veth joins a node bridge that holds the subnet's gateway.
    Bridge,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Routed => "routed",
            AttachMode::Bridge => "bridge",
        })
    }
}

/// One pod subnet of this node (one per address family in a dual-stack cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSubnet {
    pub subnet: IpNet,
    /// The pods' gateway. When absent: the link-local gateway in routed mode, the subnet's
    /// first address in bridge mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// L2: the segment this subnet is a slice of. Pods get the segment's prefix length, and
    /// the gateway is the segment's router, not an address of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeFile {
    /// The node's name in the store, for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub subnets: Vec<NodeSubnet>,
    /// MTU for pod interfaces (the agent subtracts any overlay's overhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<AttachMode>,
    /// The bridge pods join in bridge mode (L2: the bridge holding the node's uplink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeFileError {
    #[error("node file is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("node file lists no subnet")]
    NoSubnet,
    #[error("node file lists two subnets of the same address family ({0} and {1})")]
    SameFamilyTwice(IpNet, IpNet),
    #[error("gateway {gateway} is not of the same address family as subnet {subnet}")]
    GatewayFamily { subnet: IpNet, gateway: IpAddr },
    #[error("MTU {0} is out of range (68..=65535)")]
    Mtu(u32),
    #[error("subnet {subnet} must lie in its segment {segment}, with a gateway there")]
    Segment { subnet: IpNet, segment: IpNet },
}

impl NodeFile {
    pub fn parse(text: &str) -> Result<Self, NodeFileError> {
        let file: NodeFile = serde_json::from_str(text)?;
        file.validate()?;
        Ok(file)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("node file always serialises")
    }

    pub fn validate(&self) -> Result<(), NodeFileError> {
        if self.subnets.is_empty() {
            return Err(NodeFileError::NoSubnet);
        }
        for (i, a) in self.subnets.iter().enumerate() {
            for b in &self.subnets[i + 1..] {
                if a.subnet.addr().is_ipv4() == b.subnet.addr().is_ipv4() {
                    return Err(NodeFileError::SameFamilyTwice(a.subnet, b.subnet));
                }
            }
            if let Some(gw) = a.gateway {
                if gw.is_ipv4() != a.subnet.addr().is_ipv4() {
                    return Err(NodeFileError::GatewayFamily { subnet: a.subnet, gateway: gw });
                }
            }
            if let Some(segment) = a.segment {
                if !segment.contains(&a.subnet) || !a.gateway.is_some_and(|g| segment.contains(&g)) {
                    return Err(NodeFileError::Segment { subnet: a.subnet, segment });
                }
            }
        }
        match self.mtu {
            Some(mtu) if !(68..=65535).contains(&mtu) => Err(NodeFileError::Mtu(mtu)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let file = NodeFile {
            node: Some("n1".into()),
            subnets: vec![
                NodeSubnet { subnet: "10.244.1.0/24".parse().unwrap(), gateway: None, segment: None },
                NodeSubnet {
                    subnet: "fd00:244:1::/64".parse().unwrap(),
                    gateway: Some("fd00:244:1::1".parse().unwrap()),
                    segment: None,
                },
            ],
            mtu: Some(1450),
            attach: Some(AttachMode::Bridge),
            bridge: None,
        };
        assert_eq!(NodeFile::parse(&file.to_json()).unwrap(), file);
    }

    #[test]
    fn rejects_what_would_mislead_the_plugin() {
        let bad = [
            r#"{"subnets": []}"#,
            r#"{"subnets": [{"subnet": "10.0.0.0/24"}, {"subnet": "10.1.0.0/24"}]}"#,
            r#"{"subnets": [{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]}"#,
            r#"{"subnets": [{"subnet": "10.0.0.0/24"}], "mtu": 20}"#,
            r#"{"subnets": [{"subnet": "10.0.0.0/24"}], "attach": "tunnel"}"#,
            r#"{"subnets": [{"subnet": "10.0.0.0/33"}]}"#,
            r#"{"subnets": [{"subnet": "10.0.1.0/28", "gateway": "10.0.1.1", "segment": "10.0.2.0/24"}]}"#,
            r#"{"subnets": [{"subnet": "10.0.1.64/28", "segment": "10.0.1.0/24"}]}"#,
            r#"{"subnet": "10.0.0.0/24"}"#,
            "not json",
        ];
        for text in bad {
            assert!(NodeFile::parse(text).is_err(), "accepted: {text}");
        }
    }
}
