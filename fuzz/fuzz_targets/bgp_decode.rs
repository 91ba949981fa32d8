//! The BGP message decoder on bytes from the peer's socket, read as the speaker reads them:
//! messages one after another from the front of a buffer.
//!
//! Input: one byte of flags (bit 0: 4-octet AS numbers negotiated), then the bytes.
//!
//! Checked beyond "no panic": a decoded message took at least a header and at most the
//! buffer and 4096 bytes; the same bytes cut short are not yet a message; a message the
//! encoder can say (all but UPDATEs with attributes weft keeps only as codes) decodes
//! from its encoding to itself; an error's NOTIFICATION is itself a valid message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weft_bgp::message::{Message, HEADER_LEN, MAX_MESSAGE_LEN};

fn says_again(message: &Message, four: bool) {
    let bytes = message.encode(four);
    assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes encoded", bytes.len());
    match Message::decode(&bytes, four) {
        Ok(Some((decoded, used))) => {
            assert_eq!(used, bytes.len());
            assert_eq!(&decoded, message, "decode(encode(m)) != m");
        }
        other => panic!("{message:?} encodes to {bytes:?}, which decodes to {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut buffer)) = data.split_first() else { return };
    let four = flags & 1 != 0;
    loop {
        match Message::decode(buffer, four) {
            Ok(None) => {
                let whole = buffer.len() >= HEADER_LEN
                    && buffer.len() >= usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
                assert!(!whole, "a whole message's worth of bytes is not a message");
                break;
            }
            Err(e) => {
                says_again(&Message::Notification(e.notification.clone()), four);
                assert!(!e.to_string().is_empty());
                break;
            }
            Ok(Some((message, used))) => {
                assert!((HEADER_LEN..=MAX_MESSAGE_LEN).contains(&used) && used <= buffer.len());
                assert_eq!(Message::decode(&buffer[..used - 1], four), Ok(None), "a cut message decodes");
                let representable = match &message {
                    Message::Update(update) => update.other_attributes.is_empty(),
                    _ => true,
                };
                if representable {
                    says_again(&message, four);
                }
                buffer = &buffer[used..];
            }
        }
    }
});
