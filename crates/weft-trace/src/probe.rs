//! ICMP echo on raw sockets (root): reachability probes from inside a namespace to many
//! targets at once, resent until each answers or the time is up (`weft lab check`); and
//! single marked probes for `weft trace --verify`.

use crate::TraceError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};
use weft_kernel::NetNs;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const RESEND_EVERY: Duration = Duration::from_millis(250);
/// What a reachability probe carries.
const PROBE_PAYLOAD: &[u8; 16] = b"weft lab probe!!";

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// From inside `ns`, which of `targets` answer an echo request within `timeout`: ICMP for
/// IPv4 targets, ICMPv6 for IPv6 ones, side by side.
pub fn reachable(ns: &NetNs, targets: &[IpAddr], timeout: Duration) -> Result<Vec<bool>, TraceError> {
    ns.run(|| ping_all(targets, timeout))
        .map_err(|e| TraceError::kernel(format!("enter {}", ns.path().display()), e))?
}

fn ping_all(targets: &[IpAddr], timeout: Duration) -> Result<Vec<bool>, TraceError> {
    let v4 = targets.iter().any(IpAddr::is_ipv4).then(|| icmp_socket(false)).transpose()?;
    let v6 = targets.iter().any(IpAddr::is_ipv6).then(|| icmp_socket(true)).transpose()?;
    // One id per probing run, told apart from other runs' replies in the same namespace.
    let id =
        (std::process::id() as u16).wrapping_mul(31).wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let mut answered = vec![false; targets.len()];
    let deadline = Instant::now() + timeout;
    let mut next_send = Instant::now();
    while Instant::now() < deadline && answered.iter().any(|a| !a) {
        if Instant::now() >= next_send {
            for (seq, target) in targets.iter().enumerate().filter(|(i, _)| !answered[*i]) {
                // A target without a route fails here (ENETUNREACH): it stays unanswered.
                let _ = match (target, &v4, &v6) {
                    (IpAddr::V4(ip), Some(socket), _) => {
                        send_echo(socket, (*ip).into(), &echo_request(id, seq as u16))
                    }
                    (IpAddr::V6(ip), _, Some(socket)) => {
                        send_echo(socket, (*ip).into(), &echo6_request(id, seq as u16))
                    }
                    _ => Ok(()),
                };
            }
            next_send = Instant::now() + RESEND_EVERY;
        }
        let wait = next_send.min(deadline).saturating_duration_since(Instant::now());
        for index in receive_replies(v4.as_ref(), v6.as_ref(), id, targets, wait)? {
            answered[index] = true;
        }
    }
    Ok(answered)
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 =
        bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with a 16-byte payload (`marker`, for a probe `weft trace --verify`
/// must find again in captures).
pub fn echo_request_with(id: u16, seq: u16, marker: &[u8; 16]) -> [u8; 24] {
    let mut packet = [0u8; 24];
    packet[0] = ICMP_ECHO_REQUEST;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(marker);
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

fn echo_request(id: u16, seq: u16) -> [u8; 24] {
    echo_request_with(id, seq, PROBE_PAYLOAD)
}

/// Sends one echo request carrying `marker` from inside `ns` to `target` (ICMPv6 for an
/// IPv6 target).
pub fn send_marked(ns: &NetNs, target: IpAddr, marker: &[u8; 16]) -> Result<(), TraceError> {
    ns.run(|| {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let sent = match target {
            IpAddr::V4(_) => send_echo(&icmp_socket(false)?, target, &echo_request_with(id, 0, marker)),
            IpAddr::V6(_) => {
                let mut packet = echo6_request(id, 0);
                packet[8..].copy_from_slice(marker);
                send_echo(&icmp_socket(true)?, target, &packet)
            }
        };
        sent.map_err(|e| TraceError::io(format!("send a probe to {target}"), e))
    })
    .map_err(|e| TraceError::kernel(format!("enter {}", ns.path().display()), e))?
}

/// A raw ICMP socket, or ICMPv6 one with `ipv6` (root only).
fn icmp_socket(ipv6: bool) -> Result<OwnedFd, TraceError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (domain, protocol, what) = match ipv6 {
        false => (Domain::IPV4, Protocol::ICMPV4, "open an ICMP socket (needs root)"),
        true => (Domain::IPV6, Protocol::ICMPV6, "open an ICMPv6 socket (needs root)"),
    };
    Socket::new(domain, Type::RAW, Some(protocol)).map(OwnedFd::from).map_err(|e| TraceError::io(what, e))
}

/// Sends `packet` on a raw ICMP or ICMPv6 socket to `target` (the address built by socket2,
/// the C sockaddr of either family).
fn send_echo(socket: &OwnedFd, target: IpAddr, packet: &[u8]) -> std::io::Result<()> {
    let address = socket2::SockAddr::from(std::net::SocketAddr::new(target, 0));
    // SAFETY: the buffer and address outlive the call; lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            address.as_ptr().cast(),
            address.len(),
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Echo replies to our probes (from either socket), as the indices of the targets that sent
/// them, waiting up to `wait` for the first.
fn receive_replies(
    v4: Option<&OwnedFd>,
    v6: Option<&OwnedFd>,
    id: u16,
    targets: &[IpAddr],
    wait: Duration,
) -> Result<Vec<usize>, TraceError> {
    let sockets: Vec<(&OwnedFd, bool)> =
        v4.map(|s| (s, false)).into_iter().chain(v6.map(|s| (s, true))).collect();
    let mut polls: Vec<libc::pollfd> = sockets
        .iter()
        .map(|(s, _)| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 })
        .collect();
    let millis = wait.as_millis().clamp(1, 1000) as libc::c_int;
    // SAFETY: the pollfds are valid for the call, their number is passed.
    if unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, millis) } <= 0 {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for ((socket, is_v6), poll) in sockets.iter().zip(&polls) {
        if poll.revents & libc::POLLIN == 0 {
            continue;
        }
        let mut buffer = [0u8; 1500];
        // SAFETY: sockaddr_in6 is plain data, all zeroes a valid value.
        let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: the buffer and address outlive the call; their lengths are passed.
        let n = unsafe {
            libc::recvfrom(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
                (&mut from as *mut libc::sockaddr_in6).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(TraceError::io("receive ICMP", error));
        }
        let packet = &buffer[..n as usize];
        let index = if *is_v6 {
            parse_reply6(packet, Ipv6Addr::from(from.sin6_addr.s6_addr), id, targets)
        } else {
            parse_reply(packet, id, targets)
        };
        found.extend(index);
    }
    Ok(found)
}

/// The index of the target a reply answers: our id, a sequence number naming a target, and
/// sent by that target. A raw ICMP socket hands over the IP header too.
fn parse_reply(packet: &[u8], id: u16, targets: &[IpAddr]) -> Option<usize> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    let icmp = packet.get(header_len..header_len + 8)?;
    if icmp[0] != ICMP_ECHO_REPLY || u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let index = usize::from(u16::from_be_bytes([icmp[6], icmp[7]]));
    (targets.get(index) == Some(&IpAddr::V4(from))).then_some(index)
}

/// The same for ICMPv6, which a raw socket hands over without the IP header (the sender
/// comes from the socket address).
fn parse_reply6(packet: &[u8], from: Ipv6Addr, id: u16, targets: &[IpAddr]) -> Option<usize> {
    let icmp = packet.get(..8)?;
    if icmp[0] != ICMPV6_ECHO_REPLY || u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    let index = usize::from(u16::from_be_bytes([icmp[6], icmp[7]]));
    (targets.get(index) == Some(&IpAddr::V6(from))).then_some(index)
}

/// An ICMPv6 echo request; the kernel fills in the checksum (it covers the IPv6
/// pseudo-header, which only the kernel knows in full).
fn echo6_request(id: u16, seq: u16) -> [u8; 24] {
    let mut packet = [0u8; 24];
    packet[0] = ICMPV6_ECHO_REQUEST;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(PROBE_PAYLOAD);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_checks_out() {
        let packet = echo_request(0x1234, 7);
        assert_eq!(checksum(&packet), 0, "a packet with its checksum sums to zero");
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn replies_are_matched_by_id_and_sender() {
        let mut reply = vec![0x45, 0, 0, 44, 0, 0, 0, 0, 64, 1, 0, 0, 10, 244, 1, 2, 10, 244, 0, 2];
        let mut icmp = echo_request(99, 3).to_vec();
        icmp[0] = ICMP_ECHO_REPLY;
        reply.extend_from_slice(&icmp);
        let mut targets = vec![IpAddr::from([10, 244, 9, 9]); 4];
        targets[3] = IpAddr::from([10, 244, 1, 2]);
        assert_eq!(parse_reply(&reply, 99, &targets), Some(3));
        assert_eq!(parse_reply(&reply, 98, &targets), None, "another prober's reply");
        assert_eq!(parse_reply(&reply, 99, &targets[..3]), None, "a sequence number of no target");
        targets[3] = IpAddr::from([10, 244, 1, 3]);
        assert_eq!(parse_reply(&reply, 99, &targets), None, "an answer from someone else");
        targets[3] = IpAddr::from([10, 244, 1, 2]);
        reply[20] = ICMP_ECHO_REQUEST;
        assert_eq!(parse_reply(&reply, 99, &targets), None, "a request is not a reply");
    }

    #[test]
    fn icmpv6_replies_are_matched_by_id_and_sender() {
        let pod: Ipv6Addr = "fd00:10:244:2::5".parse().unwrap();
        let targets = vec![IpAddr::from([10, 244, 2, 5]), IpAddr::V6(pod)];
        let mut reply = echo6_request(7, 1).to_vec();
        assert_eq!(parse_reply6(&reply, pod, 7, &targets), None, "a request is not a reply");
        reply[0] = ICMPV6_ECHO_REPLY;
        assert_eq!(parse_reply6(&reply, pod, 7, &targets), Some(1));
        assert_eq!(parse_reply6(&reply, pod, 8, &targets), None, "another prober's reply");
        assert_eq!(parse_reply6(&reply, "fd00::1".parse().unwrap(), 7, &targets), None, "someone else");
        reply[7] = 0;
        assert_eq!(parse_reply6(&reply, pod, 7, &targets), None, "sequence 0 names the IPv4 target");
    }
}
