use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a request; `source` carries its errno.
    #[error("{op}: {source}")]
    Kernel { op: String, source: io::Error },
    /// The kernel answered something we could not read.
    #[error("{op}: unreadable netlink reply: {detail}")]
    Decode { op: String, detail: String },
    /// A system call around netlink (sockets, setns, mounts, files) failed.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    /// The errno behind the error, if there is one (EEXIST, ENODEV, ...).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            Error::Decode { .. } => None,
        }
    }

    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object is not there: no such device, address, route or entry.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::EADDRNOTAVAIL)
        )
    }
}
