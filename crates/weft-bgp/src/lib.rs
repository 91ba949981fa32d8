//! weft's BGP speaker, written for the one job a pod network gives it: tell the physical
//! routers which pod subnets live behind which node (or which gateway leads into the
//! overlay), and take that back when it stops being true.
//!
//! Our own rather than a general-purpose crate: weft needs only the active side of a session
//! for unicast (IPv4, and IPv6 by RFC 4760), announce-only, and this reads top to bottom.
//! - [`message`] (pure): the wire format and the NOTIFICATION for each malformation.
//! - [`session`] (pure): OPEN negotiation and the UPDATEs between two sets of prefixes.
//! - [`speaker`]: a thread per peer; TCP, timers, backoff.
//! - [`auth`]: TCP-MD5 passwords (RFC 2385), per peer, from a file.

pub mod auth;
pub mod message;
pub mod session;
pub mod speaker;

pub use session::{Local, State};
pub use speaker::{PeerConfig, PeerStatus, Speaker, BGP_PORT};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    #[error("bad ASN in peer {0:?}")]
    BadAsn(String),
    #[error("bad address in peer {0:?} (IPv4[:ASN], IPv6 or [IPv6]:ASN)")]
    BadAddress(String),
    #[error("AS 0 in peer {0:?} is reserved")]
    ReservedAsn(String),
}

/// Parses `IPv4[:ASN]`, `IPv6` or `[IPv6]:ASN`, the ASN defaulting to `default_asn` (iBGP
/// with our own AS). No password: see [`auth::Passwords::for_peer`].
pub fn parse_peer(text: &str, default_asn: u32) -> Result<PeerConfig, PeerError> {
    let bad_asn = || PeerError::BadAsn(text.into());
    let (address, asn) = if let Ok(address) = text.parse::<std::net::IpAddr>() {
        (address.to_string(), default_asn)
    } else if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or_else(|| PeerError::BadAddress(text.into()))?;
        let asn = match after.strip_prefix(':') {
            Some(asn) => asn.parse::<u32>().map_err(|_| bad_asn())?,
            None if after.is_empty() => default_asn,
            None => return Err(PeerError::BadAddress(text.into())),
        };
        (address.to_string(), asn)
    } else {
        match text.split_once(':') {
            Some((address, asn)) => (address.to_string(), asn.parse::<u32>().map_err(|_| bad_asn())?),
            None => (text.to_string(), default_asn),
        }
    };
    let address: std::net::IpAddr = address.parse().map_err(|_| PeerError::BadAddress(text.into()))?;
    // (A link-local router would need an interface to reach it by: not taken.)
    let link_local = matches!(address, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
    if address.is_unspecified() || address.is_multicast() || link_local {
        return Err(PeerError::BadAddress(text.into()));
    }
    if asn == 0 {
        return Err(PeerError::ReservedAsn(text.into()));
    }
    Ok(PeerConfig { address, port: BGP_PORT, asn, password: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_or_without_their_asn() {
        let peer = parse_peer("198.18.1.1:65000", 65001).unwrap();
        assert_eq!((peer.address.to_string(), peer.asn, peer.port), ("198.18.1.1".into(), 65000, 179));
        assert_eq!(parse_peer("198.18.1.1", 65001).unwrap().asn, 65001);
        assert!(parse_peer("198.18.1.1:x", 1).unwrap_err().to_string().contains("bad ASN"));
        assert!(parse_peer("10.0.0.1:0", 1).is_err());
        let v6 = parse_peer("[2001:db8:1::1]:65000", 65001).unwrap();
        assert_eq!((v6.address.to_string(), v6.asn), ("2001:db8:1::1".into(), 65000));
        assert_eq!(parse_peer("2001:db8:1::1", 65001).unwrap().asn, 65001);
        assert_eq!(parse_peer("[2001:db8:1::1]", 65001).unwrap().asn, 65001);
        assert!(parse_peer("[2001:db8:1::1]:x", 1).unwrap_err().to_string().contains("bad ASN"));
        assert!(parse_peer("[2001:db8:1::1", 1).is_err());
        assert!(parse_peer("::", 1).is_err() && parse_peer("ff02::1", 1).is_err());
        assert!(parse_peer("fe80::1", 1).is_err(), "link-local: no interface to reach it by");
    }
}
