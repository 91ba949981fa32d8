//! `weft trace`: a packet's journey hop by hop, explained from the kernel's own tables, and
//! with `--verify` proved by a real probe caught at every hop.
//!
//! - [`model`] (pure): hops, headers, the entries that decided, and their text.
//! - [`walk`]: following the packet by asking each namespace's kernel.
//! - [`capture`]: packet sockets along the path, for `--verify`.
//! - [`probe`]: ICMP echo on raw sockets (also `weft lab check`'s prober).

pub mod capture;
pub mod model;
pub mod probe;
pub mod walk;

pub use model::{render, Fate, Hop, Trace};
pub use walk::{trace, Place, World};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Kernel { what: String, source: weft_kernel::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl TraceError {
    pub fn kernel(what: impl Into<String>, source: weft_kernel::Error) -> TraceError {
        TraceError::Kernel { what: what.into(), source }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> TraceError {
        TraceError::Io { what: what.into(), source }
    }
}
