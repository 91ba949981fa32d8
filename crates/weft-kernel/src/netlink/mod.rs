//! A synchronous NETLINK_ROUTE socket with typed operations on the objects weft manages.
//!
//! Changes go in a [`Batch`]: one `sendmsg` carries all of them, and only the last asks
//! for an ACK (the kernel reports a failed request whether asked or not), so a batch of
//! four changes costs two system calls instead of eight. On these machines a system call
//! round trip costs tens of microseconds: a pod's ADD is mostly made of them.

mod addresses;
mod links;
mod lookup;
mod neighbours;
mod routes;

pub use links::{Link, LinkKind, VethSpec, VxlanInfo, VxlanSpec};
pub use lookup::{Lookup, Neighbour, Verdict};
pub use routes::{NextHop, Route, RouteScope, MAIN_TABLE, WEFT_ROUTE_PROTOCOL};

use crate::{Error, NetNs, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO,
    NLM_F_REQUEST,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use std::io;
use std::net::IpAddr;

/// The loopback device's index in every namespace.
pub const LOOPBACK_INDEX: u32 = 1;

/// Requests sent in one `sendmsg` at most (bytes): well inside the socket's send buffer.
const CHUNK: usize = 32 * 1024;

/// Large enough for the biggest datagram the kernel sends on a dump (32 KiB).
const RECV_BUFFER: usize = 64 * 1024;

pub struct Netlink {
    socket: Socket,
    sequence: u32,
    recv_buf: Vec<u8>,
}

/// One change to make, with words for the error if the kernel refuses it.
struct Request {
    op: String,
    message: RouteNetlinkMessage,
    flags: u16,
}

/// Changes sent together; see [`Netlink::apply`]. Built with the methods in the sibling
/// modules (`add_address`, `set_up`, `add_route`, ...).
#[derive(Default)]
pub struct Batch {
    requests: Vec<Request>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    fn push(&mut self, op: String, message: RouteNetlinkMessage, flags: u16) -> &mut Batch {
        self.requests.push(Request { op, message, flags });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Netlink {
    /// A socket in the calling thread's network namespace. No bind or connect: the kernel
    /// binds a netlink socket on its first send and sends to itself by default.
    pub fn open() -> Result<Self> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("open netlink socket", e))?;
        // Capacity, not content: `recv` writes into the spare capacity, so only the pages a
        // reply actually fills are ever touched (an ACK touches one, a big dump several).
        Ok(Netlink { socket, sequence: 0, recv_buf: Vec::with_capacity(RECV_BUFFER) })
    }

    /// A socket bound to `ns`. The socket keeps talking to that namespace after the thread
    /// has gone back to its own.
    pub fn open_in(ns: &NetNs) -> Result<Self> {
        ns.run(Self::open)?
    }

    fn encode(&mut self, message: RouteNetlinkMessage, flags: u16, buf: &mut Vec<u8>) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let start = buf.len();
        buf.resize(start + packet.buffer_len(), 0);
        packet.serialize(&mut buf[start..]);
        self.sequence
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        let mut buf = Vec::new();
        let sequence = self.encode(message, flags, &mut buf);
        self.socket.send(&buf, 0).map_err(|e| Error::io("send netlink request", e))?;
        Ok(sequence)
    }

    /// Reads replies to the requests numbered `first..=last`: messages are collected until
    /// the last one is answered (ACK, error, DONE, or its one reply when `single`). The
    /// first request the kernel refused is reported, under its own `op`.
    fn receive(
        &mut self,
        ops: &[String],
        first: u32,
        last: u32,
        single: bool,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let op_of = |sequence: u32| ops[(sequence.wrapping_sub(first)) as usize % ops.len().max(1)].clone();
        let mut replies = Vec::new();
        let mut refused: Option<Error> = None;
        loop {
            self.recv_buf.clear();
            let size = self
                .socket
                .recv(&mut self.recv_buf, 0)
                .map_err(|e| Error::io(format!("{}: receive netlink reply", op_of(last)), e))?;
            let mut offset = 0;
            while offset < size {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.recv_buf[offset..size])
                        .map_err(|e| Error::Decode { op: op_of(last), detail: e.to_string() })?;
                let length = message.header.length as usize;
                if length == 0 {
                    return Err(Error::Decode { op: op_of(last), detail: "zero-length message".into() });
                }
                offset += (length + 3) & !3;
                let sequence = message.header.sequence_number;
                if message.header.flags & NLM_F_DUMP_INTR != 0 && sequence == last {
                    // The table changed while the kernel was dumping it: what came may be
                    // inconsistent. Reported as EAGAIN, which `dump` retries.
                    refused.get_or_insert(Error::Kernel {
                        op: op_of(sequence),
                        source: io::Error::from_raw_os_error(libc::EAGAIN),
                    });
                }
                if sequence.wrapping_sub(first) > last.wrapping_sub(first) {
                    continue; // a late reply to an earlier request
                }
                let done = match message.payload {
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        single && sequence == last
                    }
                    NetlinkPayload::Done(done) => {
                        if done.code < 0 {
                            refused.get_or_insert(Error::Kernel {
                                op: op_of(sequence),
                                source: io::Error::from_raw_os_error(-done.code),
                            });
                        }
                        sequence == last
                    }
                    NetlinkPayload::Error(error) => {
                        if let Some(code) = error.code {
                            refused.get_or_insert(Error::Kernel {
                                op: op_of(sequence),
                                source: io::Error::from_raw_os_error(-code.get()),
                            });
                        }
                        sequence == last
                    }
                    _ => false,
                };
                if done {
                    return match refused {
                        Some(error) => Err(error),
                        None => Ok(replies),
                    };
                }
            }
        }
    }

    /// Makes every change of the batch, in order, in as few round trips as the socket's
    /// buffer allows (one for anything a pod needs; a few for thousands of peer entries).
    /// The kernel carries on past a refused change; the first refusal is returned.
    pub fn apply(&mut self, batch: &mut Batch) -> Result<()> {
        let mut requests = std::mem::take(&mut batch.requests).into_iter().peekable();
        let mut first_refusal = None;
        while requests.peek().is_some() {
            let mut buf = Vec::new();
            let mut ops = Vec::new();
            let mut first = None;
            let mut last = 0;
            while let Some(request) = requests.next() {
                let ends_chunk = requests.peek().is_none() || buf.len() >= CHUNK;
                let flags = if ends_chunk { request.flags | NLM_F_ACK } else { request.flags };
                last = self.encode(request.message, flags, &mut buf);
                first.get_or_insert(last);
                ops.push(request.op);
                if ends_chunk {
                    break;
                }
            }
            self.socket.send(&buf, 0).map_err(|e| Error::io("send netlink requests", e))?;
            if let Err(e) = self.receive(&ops, first.expect("non-empty chunk"), last, false) {
                first_refusal.get_or_insert(e);
            }
        }
        match first_refusal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A change whose result the kernel also sends back (NLM_F_ECHO), saving the lookup
    /// that would otherwise follow. Kernels before 6.1 send nothing back for some objects:
    /// the caller then looks it up.
    fn change_echoed(
        &mut self,
        op: String,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let sequence = self.send(message, flags | NLM_F_ECHO | NLM_F_ACK)?;
        self.receive(&[op], sequence, sequence, false)
    }

    /// A whole table. Retried a few times if the table changed during the dump.
    fn dump(&mut self, op: &str, message: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        let mut attempts = 0;
        loop {
            let sequence = self.send(message.clone(), NLM_F_DUMP)?;
            match self.receive(&[op.to_string()], sequence, sequence, false) {
                Err(e) if e.errno() == Some(libc::EAGAIN) && attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    /// A request with one reply (no ACK asked: the reply, or an error, is the answer).
    fn get(&mut self, op: &str, message: RouteNetlinkMessage) -> Result<RouteNetlinkMessage> {
        let sequence = self.send(message, 0)?;
        self.receive(&[op.to_string()], sequence, sequence, true)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Decode { op: op.into(), detail: "no reply".into() })
    }
}
