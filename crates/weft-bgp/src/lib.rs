//! weft's BGP speaker, written for the one job a pod network gives it: tell the physical
//! routers which pod subnets live behind which node (or which gateway leads into the
//! overlay), and take that back when it stops being true.
//!
//! Our own rather than a general-purpose crate: weft needs only the active side of a session
//! for IPv4 unicast, announce-only, and this reads top to bottom.
//! - [`message`] (pure): the wire format and the NOTIFICATION for each malformation.
//! - [`session`] (pure): OPEN negotiation and the UPDATEs between two sets of prefixes.
//! - [`speaker`]: a thread per peer; TCP, timers, backoff.

pub mod message;
pub mod session;
pub mod speaker;

pub use session::{Local, State};
pub use speaker::{PeerConfig, PeerStatus, Speaker, BGP_PORT};

/// Parses `IP[:ASN]`, the ASN defaulting to `default_asn` (iBGP with our own AS).
pub fn parse_peer(text: &str, default_asn: u32) -> Result<PeerConfig, String> {
    let (address, asn) = match text.split_once(':') {
        Some((address, asn)) => {
            (address, asn.parse::<u32>().map_err(|_| format!("bad ASN in peer {text:?}"))?)
        }
        None => (text, default_asn),
    };
    let address = address.parse().map_err(|_| format!("bad IPv4 address in peer {text:?} (IP[:ASN])"))?;
    if asn == 0 {
        return Err(format!("AS 0 in peer {text:?} is reserved"));
    }
    Ok(PeerConfig { address, port: BGP_PORT, asn })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_or_without_their_asn() {
        let peer = parse_peer("198.18.1.1:65000", 65001).unwrap();
        assert_eq!((peer.address.to_string(), peer.asn, peer.port), ("198.18.1.1".into(), 65000, 179));
        assert_eq!(parse_peer("198.18.1.1", 65001).unwrap().asn, 65001);
        assert!(parse_peer("198.18.1.1:x", 1).unwrap_err().contains("bad ASN"));
        assert!(parse_peer("fe80::1", 1).is_err());
        assert!(parse_peer("10.0.0.1:0", 1).is_err());
    }
}
