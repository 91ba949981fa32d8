//! weft's built-in IPAM: one directory per network, one symlink per reserved address.
//!
//! `<dataDir>/networks/<network>/<ip>` is a symlink whose target reads
//! `<containerID>/<ifname>`, or `<namespace>/<pod>/<containerID>/<ifname>` when the runtime
//! named the pod (`K8S_POD_NAMESPACE`, `K8S_POD_NAME` in `CNI_ARGS`), so `ls -l` says whose
//! an address is. `symlink(2)` creates the name and its content in one atomic step and
//! fails if the name exists, so:
//! - no address is ever given twice, even between processes that ignore the lock;
//! - a process killed at any point leaves either a whole reservation or none: there is no
//!   half-written record to repair. A reservation whose pod never came up is freed by the
//!   DEL the runtime sends after a failed ADD, or by GC.
//!
//! An `flock` on `<dir>/lock` serialises allocation so concurrent ADDs do not race for the
//! same candidate. The lock file's bytes hold the round-robin hints (the last address
//! given per family), written in place: a new name or a rewritten small file costs a
//! metadata commit, tens to hundreds of microseconds on ext4, a data write to a cached
//! page a few. A torn hint only costs the round robin.

use crate::error::{code, CniError};
use ipnet::IpNet;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};

pub struct Ipam {
    dir: PathBuf,
}

/// Who holds an address: the attachment, which is what DEL, CHECK and GC name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub container_id: String,
    pub ifname: String,
}

impl Owner {
    pub fn new(container_id: &str, ifname: &str) -> Self {
        Owner { container_id: container_id.into(), ifname: ifname.into() }
    }
}

/// The Kubernetes pod an attachment serves, as the runtime named it. Not part of the
/// owner's identity: a label for people (`ls -l`, `weft status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodName {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: IpAddr,
    pub owner: Owner,
    pub pod: Option<PodName>,
}

/// The symlink's target: `[namespace/pod/]containerID/ifname`. None of the parts holds a
/// `/` (container IDs, interface names and Kubernetes names are checked for that before
/// they get here), so the number of parts tells the two forms apart.
fn encode(owner: &Owner, pod: Option<&PodName>) -> String {
    match pod {
        Some(pod) => format!("{}/{}/{}/{}", pod.namespace, pod.name, owner.container_id, owner.ifname),
        None => format!("{}/{}", owner.container_id, owner.ifname),
    }
}

fn decode(text: &str) -> Option<(Owner, Option<PodName>)> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts[..] {
        [container_id, ifname] => Some((Owner::new(container_id, ifname), None)),
        [namespace, name, container_id, ifname] => Some((
            Owner::new(container_id, ifname),
            Some(PodName { namespace: namespace.into(), name: name.into() }),
        )),
        _ => None,
    }
}

/// Taken candidates probed one by one before listing the whole directory.
const PROBES_BEFORE_LISTING: usize = 32;

/// Room for one hint: the longest IPv6 address is 39 characters.
const HINT_LEN: u64 = 40;

/// Held while allocating; the kernel drops the lock if the process dies.
struct Lock(File);

impl Lock {
    fn hint_offset(v6: bool) -> u64 {
        if v6 {
            HINT_LEN
        } else {
            0
        }
    }

    fn hint(&self, v6: bool) -> Option<IpAddr> {
        let mut buf = [0u8; HINT_LEN as usize];
        let n = self.0.read_at(&mut buf, Self::hint_offset(v6)).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim_end_matches([' ', '\0']).parse().ok()
    }

    fn set_hint(&self, ip: IpAddr) {
        let text = format!("{ip:<width$}", width = HINT_LEN as usize);
        let _ = self.0.write_at(text.as_bytes(), Self::hint_offset(ip.is_ipv6()));
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn io_error(what: String, e: io::Error) -> CniError {
    CniError::new(code::IO_FAILURE, "IPAM store", format!("{what}: {e}"))
}

impl Ipam {
    /// The store of `network` under `data_dir`, created if needed. The caller has checked
    /// that `network` is a safe file name.
    pub fn open(data_dir: &Path, network: &str) -> Result<Ipam, CniError> {
        let dir = data_dir.join("networks").join(network);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| io_error(format!("create {}", dir.display()), e))?;
        }
        Ok(Ipam { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<Lock, CniError> {
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(format!("open {}", path.display()), e))?;
        // SAFETY: flock on an fd we own; blocks until the lock is ours.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_error(format!("lock {}", path.display()), io::Error::last_os_error()));
        }
        Ok(Lock(file))
    }

    /// Every reservation of the network, with the pod's name where it was recorded.
    pub fn list(&self) -> Result<Vec<Reservation>, CniError> {
        let mut out = Vec::new();
        for (ip, path) in self.reservation_names()? {
            match fs::read_link(&path) {
                Ok(target) => {
                    if let Some((owner, pod)) = target.to_str().and_then(decode) {
                        out.push(Reservation { ip, owner, pod });
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {} // released meanwhile
                Err(e) => return Err(io_error(format!("read {}", path.display()), e)),
            }
        }
        Ok(out)
    }

    /// Every reservation of the network, as (address, owner).
    pub fn reservations(&self) -> Result<Vec<(IpAddr, Owner)>, CniError> {
        Ok(self.list()?.into_iter().map(|r| (r.ip, r.owner)).collect())
    }

    /// The reservations' names, which are their addresses (other names: the lock).
    fn reservation_names(&self) -> Result<Vec<(IpAddr, PathBuf)>, CniError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| io_error(format!("list {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(format!("list {}", self.dir.display()), e))?;
            if let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) {
                out.push((ip, entry.path()));
            }
        }
        Ok(out)
    }

    /// Reserves an address of `subnet` for `owner`, never one of `excluded` (a bridge's
    /// gateway).
    ///
    /// Cost does not grow with the number of pods: candidates are probed one name at a
    /// time from the round-robin hint (on a subnet with room the first is nearly always
    /// free), and the directory is listed only when many in a row are taken. An ADD
    /// repeated after a crash usually finds its earlier reservation at the hint and gets
    /// it back; otherwise it gets a second one, which its DEL frees with the first.
    ///
    /// `pod` is recorded beside the owner when the runtime named the pod.
    pub fn reserve(
        &self,
        owner: &Owner,
        pod: Option<&PodName>,
        subnet: &IpNet,
        excluded: &[IpAddr],
    ) -> Result<IpAddr, CniError> {
        let lock = self.lock()?;
        let hint = lock.hint(subnet.addr().is_ipv6()).filter(|ip| subnet.contains(ip));
        if let Some(ip) = hint {
            if self.owner_of(ip).as_ref() == Some(owner) {
                return Ok(ip);
            }
        }
        let mut taken: HashSet<IpAddr> = excluded.iter().copied().collect();
        let mut listed = false;
        let mut last = hint;
        loop {
            let Some(ip) = weft_core::alloc::pick_free(subnet, &taken, last) else {
                return Err(CniError::new(
                    code::TRY_AGAIN_LATER,
                    "no free address",
                    format!("subnet {subnet} is full ({} addresses in use)", taken.len()),
                ));
            };
            match symlink(encode(owner, pod), self.dir.join(ip.to_string())) {
                Ok(()) => {
                    lock.set_hint(ip);
                    return Ok(ip);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    taken.insert(ip);
                    last = Some(ip);
                    if !listed && taken.len() > PROBES_BEFORE_LISTING {
                        taken.extend(self.reservation_names()?.into_iter().map(|(ip, _)| ip));
                        listed = true;
                    }
                }
                Err(e) => return Err(io_error(format!("reserve {ip}"), e)),
            }
        }
    }

    fn owner_of(&self, ip: IpAddr) -> Option<Owner> {
        fs::read_link(self.dir.join(ip.to_string())).ok()?.to_str().and_then(decode).map(|(owner, _)| owner)
    }

    /// Whether no address of `subnet` is free.
    pub fn is_full(&self, subnet: &IpNet, excluded: &[IpAddr]) -> Result<bool, CniError> {
        let mut taken: HashSet<IpAddr> = self.reservation_names()?.into_iter().map(|(ip, _)| ip).collect();
        taken.extend(excluded.iter().copied());
        Ok(weft_core::alloc::pick_free(subnet, &taken, None).is_none())
    }

    /// Addresses held by `owner`.
    pub fn owned_by(&self, owner: &Owner) -> Result<Vec<IpAddr>, CniError> {
        Ok(self.reservations()?.into_iter().filter(|(_, o)| o == owner).map(|(ip, _)| ip).collect())
    }

    /// Frees every address `owner` holds; freeing nothing is not an error.
    pub fn release(&self, owner: &Owner) -> Result<Vec<IpAddr>, CniError> {
        let _lock = self.lock()?;
        Ok(self.release_where(|o| o == owner)?.into_iter().map(|(ip, _)| ip).collect())
    }

    /// Frees one address, whoever holds it (undoing a reservation just made).
    pub fn release_ip(&self, ip: IpAddr) -> Result<(), CniError> {
        let _lock = self.lock()?;
        remove_if_exists(&self.dir.join(ip.to_string()))
    }

    /// GC: frees every address whose owner is not in `valid`; returns what it freed.
    pub fn retain(&self, valid: &HashSet<Owner>) -> Result<Vec<(IpAddr, Owner)>, CniError> {
        let _lock = self.lock()?;
        self.release_where(|o| !valid.contains(o))
    }

    fn release_where(&self, doomed: impl Fn(&Owner) -> bool) -> Result<Vec<(IpAddr, Owner)>, CniError> {
        let mut freed = Vec::new();
        for (ip, owner) in self.reservations()? {
            if doomed(&owner) {
                remove_if_exists(&self.dir.join(ip.to_string()))?;
                freed.push((ip, owner));
            }
        }
        Ok(freed)
    }
}

fn remove_if_exists(path: &Path) -> Result<(), CniError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error(format!("remove {}", path.display()), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Ipam) {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), "net1").unwrap();
        (dir, ipam)
    }

    #[test]
    fn reserve_release_round_robin() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/29".parse().unwrap();
        let a = ipam.reserve(&Owner::new("a", "eth0"), None, &subnet, &[]).unwrap();
        let b = ipam.reserve(&Owner::new("b", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!((a.to_string().as_str(), b.to_string().as_str()), ("10.1.0.1", "10.1.0.2"));
        assert_eq!(ipam.release(&Owner::new("a", "eth0")).unwrap(), vec![a]);
        // round robin: the freed .1 is not handed out again at once
        let c = ipam.reserve(&Owner::new("c", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!(c.to_string(), "10.1.0.3");
        // releasing twice is fine
        assert!(ipam.release(&Owner::new("a", "eth0")).unwrap().is_empty());
    }

    #[test]
    fn a_crowded_subnet_is_listed_not_probed_forever() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/24".parse().unwrap();
        // 200 reservations made behind the store's back, then the hint forgotten
        for i in 1..=200 {
            symlink("other/eth0", ipam.dir().join(format!("10.1.0.{i}"))).unwrap();
        }
        let ip = ipam.reserve(&Owner::new("a", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!(ip.to_string(), "10.1.0.201");
        fs::write(ipam.dir().join("lock"), "").unwrap();
        let ip = ipam.reserve(&Owner::new("b", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!(ip.to_string(), "10.1.0.202");
    }

    #[test]
    fn repeated_reserve_returns_the_same_address() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/24".parse().unwrap();
        let owner = Owner::new("a", "eth0");
        let first = ipam.reserve(&owner, None, &subnet, &[]).unwrap();
        assert_eq!(ipam.reserve(&owner, None, &subnet, &[]).unwrap(), first);
        assert_eq!(ipam.owned_by(&owner).unwrap(), vec![first]);
    }

    #[test]
    fn full_subnet_is_an_error_not_a_panic() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/30".parse().unwrap();
        let gateway: IpAddr = "10.1.0.1".parse().unwrap();
        ipam.reserve(&Owner::new("a", "eth0"), None, &subnet, &[gateway]).unwrap();
        let e = ipam.reserve(&Owner::new("b", "eth0"), None, &subnet, &[gateway]).unwrap_err();
        assert_eq!(e.code, code::TRY_AGAIN_LATER);
        assert!(ipam.is_full(&subnet, &[gateway]).unwrap());
    }

    #[test]
    fn a_reservation_made_behind_the_lock_is_respected() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/29".parse().unwrap();
        symlink("intruder/eth0", ipam.dir().join("10.1.0.1")).unwrap();
        let ip = ipam.reserve(&Owner::new("a", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!(ip.to_string(), "10.1.0.2");
    }

    #[test]
    fn gc_keeps_only_valid_owners() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "fd00::/64".parse().unwrap();
        let keep = Owner::new("keep", "eth0");
        let kept = ipam.reserve(&keep, None, &subnet, &[]).unwrap();
        let gone = ipam.reserve(&Owner::new("gone", "eth0"), None, &subnet, &[]).unwrap();
        let freed = ipam.retain(&HashSet::from([keep.clone()])).unwrap();
        assert_eq!(freed, vec![(gone, Owner::new("gone", "eth0"))]);
        assert_eq!(ipam.owned_by(&keep).unwrap(), vec![kept]);
    }

    #[test]
    fn round_robin_survives_a_torn_hint() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/24".parse().unwrap();
        ipam.reserve(&Owner::new("a", "eth0"), None, &subnet, &[]).unwrap();
        fs::write(ipam.dir().join("lock"), "10.1.").unwrap(); // as if cut short by a crash
        let ip = ipam.reserve(&Owner::new("b", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!(ip.to_string(), "10.1.0.2");
        let v6: IpNet = "fd00::/64".parse().unwrap();
        ipam.reserve(&Owner::new("c", "eth0"), None, &v6, &[]).unwrap();
        // each family keeps its own hint
        assert_eq!(
            ipam.reserve(&Owner::new("d", "eth0"), None, &subnet, &[]).unwrap().to_string(),
            "10.1.0.3"
        );
        assert_eq!(ipam.reserve(&Owner::new("e", "eth0"), None, &v6, &[]).unwrap().to_string(), "fd00::2");
    }

    #[test]
    fn a_named_pod_is_recorded_beside_its_owner() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/24".parse().unwrap();
        let owner = Owner::new("c0ffee", "eth0");
        let pod = PodName { namespace: "default".into(), name: "web-0".into() };
        let ip = ipam.reserve(&owner, Some(&pod), &subnet, &[]).unwrap();
        let target = fs::read_link(ipam.dir().join(ip.to_string())).unwrap();
        assert_eq!(target.to_str(), Some("default/web-0/c0ffee/eth0"));
        assert_eq!(ipam.list().unwrap(), vec![Reservation { ip, owner: owner.clone(), pod: Some(pod) }]);
        // the name is a label: the attachment alone finds, keeps and frees the address
        assert_eq!(ipam.reserve(&owner, None, &subnet, &[]).unwrap(), ip);
        assert_eq!(ipam.owned_by(&owner).unwrap(), vec![ip]);
        assert!(ipam.retain(&HashSet::from([owner.clone()])).unwrap().is_empty());
        assert_eq!(ipam.release(&owner).unwrap(), vec![ip]);
        assert!(ipam.list().unwrap().is_empty());
    }

    #[test]
    fn reservations_without_a_name_still_count() {
        let (_dir, ipam) = store();
        let subnet: IpNet = "10.1.0.0/29".parse().unwrap();
        // as an earlier weft wrote them, and something that is not a reservation at all
        symlink("old/eth0", ipam.dir().join("10.1.0.1")).unwrap();
        symlink("a/b/c", ipam.dir().join("10.1.0.2")).unwrap();
        let listed = ipam.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].owner.container_id.as_str(), listed[0].pod.as_ref()), ("old", None));
        // neither address is handed out again
        let ip = ipam.reserve(&Owner::new("new", "eth0"), None, &subnet, &[]).unwrap();
        assert_eq!(ip.to_string(), "10.1.0.3");
        assert_eq!(ipam.release(&Owner::new("old", "eth0")).unwrap().len(), 1);
    }

    #[test]
    fn concurrent_reservations_are_distinct() {
        let (_dir, ipam) = store();
        let dir = ipam.dir().parent().unwrap().parent().unwrap().to_path_buf();
        let subnet: IpNet = "10.2.0.0/24".parse().unwrap();
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    Ipam::open(&dir, "net1")
                        .unwrap()
                        .reserve(&Owner::new(&format!("c{i}"), "eth0"), None, &subnet, &[])
                        .unwrap()
                })
            })
            .collect();
        let ips: HashSet<IpAddr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(ips.len(), 40);
    }
}
