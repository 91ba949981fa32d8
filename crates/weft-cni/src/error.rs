//! The CNI error object and the codes weft uses.

use serde_json::json;

/// Well-known codes from the CNI specification (§ Error).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Also: the container's netns does not exist, so there is nothing to clean up.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// The node file is not there yet (the agent has not leased a subnet), or the subnet
    /// is full: conditions that clear up on their own, so the runtime should retry.
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    // weft's own codes (100+ is the plugin's range).
    /// A netlink request failed; the details carry the operation and the errno.
    pub const KERNEL: u32 = 100;
    /// CHECK found the pod's network different from what ADD made.
    pub const CHECK_MISMATCH: u32 = 101;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError { code, msg: msg.into(), details: details.into() }
    }

    /// The error object, as the spec shapes it.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut object = json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            object["details"] = json!(self.details);
        }
        object
    }
}

impl From<weft_kernel::Error> for CniError {
    fn from(e: weft_kernel::Error) -> Self {
        CniError::new(code::KERNEL, "kernel request failed", e.to_string())
    }
}
