//! `--verify`: a real probe, caught at every hop. A packet socket (AF_PACKET, every
//! protocol) in each hop's namespace watches the interface the hop names; the probe is an
//! ICMP echo carrying 16 random bytes, found again in whatever the socket sees, encapsulated
//! or not, masqueraded or not.

use crate::walk::World;
use crate::{probe, Trace, TraceError};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const ETH_P_ALL: u16 = 0x0003;
/// How long the capture waits for the probe to pass.
const WAIT: Duration = Duration::from_millis(1500);

fn packet_socket(ifindex: u32) -> std::io::Result<OwnedFd> {
    let protocol = ETH_P_ALL.to_be();
    // SAFETY: socket returns a new fd or -1; ownership passes to OwnedFd.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(protocol),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_ll is valid; we fill family, protocol and interface.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = ifindex as i32;
    // SAFETY: the address outlives the call; its size is passed.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(socket)
}

/// Whether a frame carries our echo request: the marker, right after an ICMP echo request
/// header (type 8, or ICMPv6's 128; then code, checksum, id, sequence).
fn is_probe(frame: &[u8], marker: &[u8; 16]) -> bool {
    frame
        .windows(marker.len())
        .enumerate()
        .any(|(i, w)| w == marker && i >= 8 && matches!(frame[i - 8], 8 | 128))
}

fn marker() -> [u8; 16] {
    let mut marker = [0u8; 16];
    marker.copy_from_slice(
        &[weft_kernel::random_u64().to_ne_bytes(), weft_kernel::random_u64().to_ne_bytes()].concat(),
    );
    marker
}

/// Sends a probe from `from` (a place of `world`) to `dst` and marks each hop of `trace` seen
/// or not; `trace.verified` says whether every hop saw it.
pub fn verify(world: &World, trace: &mut Trace, from: &str, dst: IpAddr) -> Result<(), TraceError> {
    let target = dst;
    let place = |netns: &str| world.places.iter().find(|p| p.netns == netns);
    // One socket per hop that names where to watch.
    let mut watching: Vec<(usize, OwnedFd, bool)> = Vec::new();
    for (n, hop) in trace.hops.iter().enumerate() {
        let Some((netns, ifindex, leaving)) = &hop.watch else { continue };
        let Some(place) = place(netns) else { continue };
        let socket = place
            .ns
            .run(|| packet_socket(*ifindex))
            .map_err(|e| TraceError::kernel(format!("enter {netns}"), e))?
            .map_err(|e| TraceError::io(format!("open a packet socket in {netns}"), e))?;
        watching.push((n, socket, *leaving));
    }
    let source = world
        .places
        .iter()
        .find(|p| p.name == from)
        .ok_or_else(|| TraceError::Invalid(format!("no place called {from}")))?;
    let marker = marker();
    let mut seen = vec![false; trace.hops.len()];
    let started = Instant::now();
    let deadline = started + WAIT;
    let mut sent = 0;
    let mut buffer = vec![0u8; 65536];
    while Instant::now() < deadline {
        // Three probes, 200 ms apart: the first may wait for ARP somewhere.
        if sent < 3 && started.elapsed() >= Duration::from_millis(200) * sent {
            // A source without a route cannot send: the hops then go unseen, as they should.
            let _ = probe::send_marked(&source.ns, target, &marker);
            sent += 1;
        }
        let mut polls: Vec<libc::pollfd> = watching
            .iter()
            .map(|(_, s, _)| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: the pollfds are valid for the call.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 50) };
        if ready <= 0 {
            continue;
        }
        for (poll, (hop, socket, leaving)) in polls.iter().zip(&watching) {
            if poll.revents & libc::POLLIN == 0 {
                continue;
            }
            // What is queued now, no more (a busy uplink must not keep us past the deadline).
            for _ in 0..256 {
                // SAFETY: a zeroed sockaddr_ll is valid for recvfrom to fill.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: the buffer and address outlive the call; their lengths are passed.
                let n = unsafe {
                    libc::recvfrom(
                        socket.as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        0,
                        (&mut from as *mut libc::sockaddr_ll).cast(),
                        &mut from_len,
                    )
                };
                if n <= 0 {
                    break;
                }
                // Only the request, and only going the way the hop says (not its echo
                // reply, nor the request seen the other way on an asymmetric path).
                let outgoing = from.sll_pkttype == libc::PACKET_OUTGOING;
                seen[*hop] |= outgoing == *leaving && is_probe(&buffer[..n as usize], &marker);
            }
        }
        if watching.iter().all(|(hop, _, _)| seen[*hop]) {
            break;
        }
    }
    for (n, hop) in trace.hops.iter_mut().enumerate() {
        hop.seen = hop.watch.as_ref().map(|_| seen[n]);
    }
    trace.verified = Some(trace.hops.iter().all(|h| h.seen != Some(false)));
    Ok(())
}
