//! Network namespaces: a handle to one, entering it, and named namespaces in the
//! `/run/netns` convention that `ip netns` uses, so both tools see the same namespaces.

use crate::{Error, Netlink, Result};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const NETNS_RUN_DIR: &str = "/run/netns";
const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
const CURRENT: &str = "/proc/thread-self/ns/net";

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl AsRawFd for NetNs {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl NetNs {
    /// Opens the namespace at `path`, checking that it is one: a path to some other file
    /// would only fail later, at setns, with a less helpful error.
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(format!("open netns {}", path.display()), e))?;
        // SAFETY: statfs fills the struct we pass; the fd is valid for the call.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
            return Err(Error::io(format!("statfs {}", path.display()), io::Error::last_os_error()));
        }
        if stat.f_type as libc::c_long != NSFS_MAGIC {
            return Err(Error::io(
                format!("open netns {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidInput, "not a network namespace"),
            ));
        }
        Ok(NetNs { file, path: path.to_path_buf() })
    }

    /// The calling thread's namespace.
    pub fn current() -> Result<NetNs> {
        Self::open(CURRENT)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the calling thread's own namespace.
    pub fn is_current(&self) -> Result<bool> {
        let mine = self.file.metadata().map_err(|e| Error::io("stat netns", e))?;
        let current = std::fs::metadata(CURRENT).map_err(|e| Error::io(format!("stat {CURRENT}"), e))?;
        Ok(mine.st_dev() == current.st_dev() && mine.st_ino() == current.st_ino())
    }

    /// Moves the calling thread into this namespace.
    pub fn enter(&self) -> Result<()> {
        // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
        if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error::io(
                format!("enter netns {}", self.path.display()),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Runs `f` inside this namespace and brings the thread back to where it was, also
    /// if `f` panics.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        /// Returns the thread home when dropped. Failing to would leave it in the wrong
        /// namespace, where every later call would act on the wrong network: the process
        /// stops rather than carry on from there.
        struct ReturnHome(NetNs);
        impl Drop for ReturnHome {
            fn drop(&mut self) {
                if self.0.enter().is_err() {
                    eprintln!("weft: cannot return to the original network namespace; aborting");
                    std::process::abort();
                }
            }
        }
        let _home = ReturnHome(NetNs::current()?);
        self.enter()?;
        Ok(f())
    }
}

fn named_path(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::io(
            format!("netns name {name:?}"),
            io::Error::new(io::ErrorKind::InvalidInput, "not a valid namespace name"),
        ));
    }
    Ok(Path::new(NETNS_RUN_DIR).join(name))
}

/// Makes `/run/netns` a mount point of its own with shared propagation, as `ip netns add`
/// and containerd do before their first namespace. Without it, the first of them to run
/// later bind-mounts `/run/netns` over itself and strands the mounts beneath: every
/// namespace named before then can no longer be removed (EBUSY) until that mount goes.
fn prepare_run_dir() -> Result<()> {
    fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| Error::io(format!("create {NETNS_RUN_DIR}"), e))?;
    // One at a time, threads and processes alike (a lab names many namespaces at once): two
    // that both found no mount point would stack two, and strand what the first one held.
    let lock = File::open(NETNS_RUN_DIR).map_err(|e| Error::io(format!("open {NETNS_RUN_DIR}"), e))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(format!("lock {NETNS_RUN_DIR}"), io::Error::last_os_error()));
    }
    let dir = std::ffi::CString::new(NETNS_RUN_DIR).expect("no NUL in the path");
    // mount(2) of `source` (a path, or "none") on the directory.
    let mount = |source: &std::ffi::CStr, flags: libc::c_ulong| {
        // SAFETY: mount(2) with strings that outlive the call.
        let done =
            unsafe { libc::mount(source.as_ptr(), dir.as_ptr(), c"none".as_ptr(), flags, std::ptr::null()) };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let prepared = match mount(c"none", libc::MS_SHARED | libc::MS_REC) {
        // EINVAL: not a mount point yet. Bind it onto itself, then share it.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => mount(&dir, libc::MS_BIND | libc::MS_REC)
            .and_then(|()| mount(c"none", libc::MS_SHARED | libc::MS_REC)),
        other => other,
    };
    prepared.map_err(|e| Error::io(format!("make {NETNS_RUN_DIR} a shared mount point"), e))
}

/// Creates a named namespace (as `ip netns add` does) with its loopback up.
pub fn create_named(name: &str) -> Result<NetNs> {
    let path = named_path(name)?;
    prepare_run_dir()?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    let target = path.clone();
    // A fresh thread unshares, so the caller's threads stay where they are; the bind mount
    // keeps the namespace alive after the thread ends.
    let mounted = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: plain syscalls on this thread; the strings outlive the calls.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            let source = c"/proc/thread-self/ns/net";
            let target = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).unwrap();
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })
    .join()
    .expect("netns thread panicked");
    if let Err(e) = mounted {
        let _ = fs::remove_file(&path);
        return Err(Error::io(format!("create netns {name}"), e));
    }
    let ns = NetNs::open(&path)?;
    let lo_up = Netlink::open_in(&ns).and_then(|mut nl| nl.set_up(crate::netlink::LOOPBACK_INDEX, true));
    if let Err(e) = lo_up {
        let _ = delete_named(name);
        return Err(e);
    }
    Ok(ns)
}

/// Removes a named namespace. The namespace itself goes when its last user does. A name
/// that does not exist is not an error.
pub fn delete_named(name: &str) -> Result<()> {
    let path = named_path(name)?;
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: umount2 on a path string that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point (half-created); ENOENT: already gone.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(Error::io(format!("unmount {}", path.display()), e));
        }
    }
    match fs::remove_file(&path) {
        // Still a mount point after the unmount: mounted again beneath a later mount of
        // `/run/netns` over itself (see `prepare_run_dir`), where no path reaches it.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(Error::io(
            format!(
                "remove {}: it is also mounted beneath a later mount of {NETNS_RUN_DIR} over itself, \
                 where no path reaches it (`grep netns /proc/self/mountinfo` shows both); the \
                 namespace lasts until that mount goes",
                path.display()
            ),
            e,
        )),
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Names of the namespaces in `/run/netns`.
pub fn list_named() -> Result<Vec<String>> {
    match fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => {
            Ok(entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("list {NETNS_RUN_DIR}"), e)),
    }
}
