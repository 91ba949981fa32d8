//! weft's lab: whole clusters out of network namespaces on one machine.
//!
//! A lab has racks (each an L2 segment: a bridge in a namespace of its own), a router
//! joining the racks and leading to an outside client, nodes with an uplink to their rack,
//! each running a real `weft agent`, and pods wired by the CNI plugin exactly as a runtime
//! wires them. `check` then probes what reaches what and holds it against what the mode
//! promises.
//!
//! - [`topology`] (pure): the spec → namespaces, names and addresses.
//! - [`promise`] (pure): what each mode promises for each kind of path, and why.
//! - [`report`] (pure): the matrix as a table or JSON.
//! - [`lab`]: building a lab, its processes, pods and probes; [`down`]: removing labs.
//! - [`etcd`]: the lab's etcd cluster (members, leader, compaction, metrics); [`cut`]:
//!   network partitions between a member and addresses.

pub mod cut;
pub mod down;
pub mod etcd;
pub mod lab;
pub mod picture;
pub mod process;
pub mod promise;
pub mod report;
pub mod router;
pub mod state;
pub mod topology;
mod wiring;

pub use etcd::{EtcdMember, EtcdStatus};
pub use lab::{Lab, Step};
pub use report::{Report, Style};
pub use topology::{LabSpec, Mode, StoreKind, Topology};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Invalid(String),
    #[error("a lab named {0:?} exists already (remove it with `weft lab down {0}`)")]
    Exists(String),
    #[error("no lab named {0:?} (`weft lab down --all` removes whatever labs left behind)")]
    NotFound(String),
    #[error("{what}: {source}")]
    Kernel { what: String, source: weft_kernel::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Store { what: String, source: weft_store::StoreError },
    /// The lab's etcd did not answer as asked.
    #[error("etcd: {0}")]
    Etcd(String),
    /// A step that did not finish in time, with what to look at.
    #[error("{0}")]
    Timeout(String),
    #[error(transparent)]
    Trace(#[from] weft_trace::TraceError),
    /// The CNI plugin refused a pod.
    #[error("CNI ADD of pod {pod}: {detail}")]
    Cni { pod: String, detail: String },
}

impl LabError {
    pub fn kernel(what: impl Into<String>, source: weft_kernel::Error) -> LabError {
        LabError::Kernel { what: what.into(), source }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io { what: what.into(), source }
    }
}
