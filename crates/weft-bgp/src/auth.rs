//! TCP-MD5 (RFC 2385) for BGP sessions: passwords per peer, read from a file, and set on the
//! socket before it connects (the kernel then signs every segment and drops any segment
//! from the peer that is not signed with the same key, SYNs included).
//!
//! A password never reaches a log, a status or a process's arguments: [`Password`] prints as
//! `<hidden>`, and it comes from a file, never from a flag.

use socket2::Socket;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// The kernel's limit on a TCP-MD5 key (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_PASSWORD_LEN: usize = 80;

/// A TCP-MD5 password: 1 to 80 bytes, printed as `<hidden>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Password, PasswordError> {
        let bytes = bytes.into();
        match bytes.len() {
            0 => Err(PasswordError::Empty),
            n if n > MAX_PASSWORD_LEN => Err(PasswordError::TooLong(n)),
            _ => Ok(Password(bytes)),
        }
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("an empty password")]
    Empty,
    #[error("a password of {0} bytes; TCP-MD5 keys have at most {MAX_PASSWORD_LEN}")]
    TooLong(usize),
}

/// Which password each peer's session uses: a line per peer, or `*` for every peer not
/// named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwords {
    pub peers: BTreeMap<IpAddr, Password>,
    pub default: Option<Password>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordFileError {
    #[error("line {line}: {what} (each line: PEER-IP PASSWORD, or * PASSWORD for every other peer)")]
    Line { line: usize, what: String },
    #[error("line {line}: {source}")]
    Password { line: usize, source: PasswordError },
}

impl Passwords {
    /// Parses a password file: `PEER-IP PASSWORD` or `* PASSWORD` per line; the password is
    /// the rest of the line after the first run of blanks (it may hold blanks itself, but
    /// not at its ends); blank lines and lines starting with `#` say nothing.
    pub fn parse(text: &str) -> Result<Passwords, PasswordFileError> {
        let mut passwords = Passwords::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let bad = |what: &str| PasswordFileError::Line { line, what: what.to_string() };
            let Some((peer, password)) = trimmed.split_once(char::is_whitespace) else {
                return Err(bad("a peer without a password"));
            };
            let password = Password::new(password.trim().as_bytes())
                .map_err(|source| PasswordFileError::Password { line, source })?;
            if peer == "*" {
                if passwords.default.replace(password).is_some() {
                    return Err(bad("a second * line"));
                }
                continue;
            }
            let address: IpAddr = peer.parse().map_err(|_| bad("the peer is not an IP address or *"))?;
            if passwords.peers.insert(address, password).is_some() {
                return Err(bad(&format!("a second line for {address}")));
            }
        }
        Ok(passwords)
    }

    /// The password for a session to `peer`, if any.
    pub fn for_peer(&self, peer: IpAddr) -> Option<&Password> {
        self.peers.get(&peer).or(self.default.as_ref())
    }
}

/// `struct tcp_md5sig` of `<linux/tcp.h>` (not in the libc crate).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: i32,
    key: [u8; MAX_PASSWORD_LEN],
}

// The kernel reads exactly this many bytes: a libc whose sockaddr_storage changed would
// break the layout silently.
const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

/// Signs every segment between `socket` and `peer` with `password` (set before connect, so
/// the SYN is signed too).
pub fn set_md5(socket: &Socket, peer: SocketAddr, password: &Password) -> std::io::Result<()> {
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    // The peer's address as the kernel takes it (socket2's SockAddr is the C sockaddr).
    let address = socket2::SockAddr::from(peer);
    // SAFETY: a sockaddr_in or sockaddr_in6 fits in a sockaddr_storage, which is what the
    // kernel reads; SockAddr holds `len()` valid bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            address.as_ptr() as *const u8,
            &mut sig.addr as *mut libc::sockaddr_storage as *mut u8,
            address.len() as usize,
        )
    };
    sig.key_len = password.0.len() as u16;
    sig.key[..password.0.len()].copy_from_slice(&password.0);
    // SAFETY: a valid socket, and a pointer to a struct of the size we pass.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_names_peers_and_a_default() {
        let text = "# routers\n198.18.1.1 s3cret words \n\n*\tfallback\n";
        let passwords = Passwords::parse(text).unwrap();
        let one = IpAddr::from([198, 18, 1, 1]);
        assert_eq!(passwords.for_peer(one), Some(&Password::new("s3cret words").unwrap()));
        assert_eq!(
            passwords.for_peer(IpAddr::from([10, 0, 0, 1])),
            Some(&Password::new("fallback").unwrap())
        );
        let v6 = Passwords::parse("2001:db8:1::1 six\n").unwrap();
        assert_eq!(v6.for_peer("2001:db8:1::1".parse().unwrap()), Some(&Password::new("six").unwrap()));
        assert_eq!(Passwords::parse("").unwrap().for_peer(one), None);
    }

    #[test]
    fn bad_password_files_say_which_line_and_why() {
        let error = |text: &str| Passwords::parse(text).unwrap_err().to_string();
        assert!(error("198.18.1.1\n").starts_with("line 1: a peer without a password"));
        assert!(error("# x\nrouter1 pw\n").starts_with("line 2: the peer is not an IP address"));
        assert!(error("* a\n* b\n").starts_with("line 2: a second * line"));
        assert!(error("10.0.0.1 a\n10.0.0.1 b\n").contains("a second line for 10.0.0.1"));
        assert!(error(&format!("10.0.0.1 {}\n", "x".repeat(81))).contains("81 bytes"));
    }

    #[test]
    fn a_password_never_prints() {
        let passwords = Passwords::parse("10.0.0.1 hunter2\n").unwrap();
        assert!(!format!("{passwords:?}").contains("hunter2"));
    }

    #[test]
    fn the_kernel_takes_the_key() {
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let peer = SocketAddr::from(([127, 0, 0, 1], 179));
        set_md5(&socket, peer, &Password::new("secret").unwrap()).unwrap();
        let socket6 = Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        let peer6: SocketAddr = "[::1]:179".parse().unwrap();
        set_md5(&socket6, peer6, &Password::new("secret").unwrap()).unwrap();
    }
}
