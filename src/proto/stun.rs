//! STUN and TURN messages (RFC 8489, RFC 5389, classic RFC 3489, RFC 8656): the header and the
//! attributes, read with bounds on every length. Pure functions; no state.
//!
//! ```text
//! Header    { 0b00 (2), Message Type (14), Message Length (16), Magic Cookie (32) = 0x2112A442,
//!             Transaction ID (96) }   -- RFC 3489: no cookie, a 128-bit transaction id
//! Attribute { Type (16), Length (16), Value (Length), padding to a multiple of 4 }
//! ```

/// The RFC 5389 magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// REALM attribute.
pub const ATTR_REALM: u16 = 0x0014;
/// SOFTWARE attribute.
pub const ATTR_SOFTWARE: u16 = 0x8022;
/// Most attributes read from one message.
const MAX_ATTRIBUTES: usize = 64;

/// A STUN message, borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Message type (method and class).
    pub msg_type: u16,
    /// An RFC 3489 message (no magic cookie).
    pub classic: bool,
    /// The attribute area.
    attrs: &'a [u8],
}

/// Classic (RFC 3489) message types accepted without a magic cookie: binding and shared-secret
/// requests and responses. Anything else without the cookie is not taken for STUN.
const CLASSIC_TYPES: [u16; 6] = [0x0001, 0x0101, 0x0111, 0x0002, 0x0102, 0x0112];

/// Reads a STUN message at the start of `b` (a UDP payload, or a TCP frame's body).
pub fn parse(b: &[u8]) -> Option<Message<'_>> {
    let hdr = b.get(..20)?;
    if hdr[0] & 0xC0 != 0 {
        return None;
    }
    let msg_type = u16::from_be_bytes([hdr[0], hdr[1]]);
    let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    if len % 4 != 0 {
        return None;
    }
    let attrs = b.get(20..20 + len)?;
    let cookie = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let classic = cookie != MAGIC_COOKIE;
    if classic && (!CLASSIC_TYPES.contains(&msg_type) || b.len() != 20 + len) {
        return None;
    }
    Some(Message {
        msg_type,
        classic,
        attrs,
    })
}

impl<'a> Message<'a> {
    /// The attributes as (type, value), in order; stops at the first malformed one.
    pub fn attributes(&self) -> impl Iterator<Item = (u16, &'a [u8])> {
        let mut rest = self.attrs;
        std::iter::from_fn(move || {
            let hdr = rest.get(..4)?;
            let ty = u16::from_be_bytes([hdr[0], hdr[1]]);
            let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
            let value = rest.get(4..4 + len)?;
            let padded = (len + 3) & !3;
            rest = rest.get(4 + padded..).unwrap_or(&[]);
            Some((ty, value))
        })
        .take(MAX_ATTRIBUTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ty: u16, attrs: &[(u16, &[u8])], cookie: bool) -> Vec<u8> {
        let mut a = Vec::new();
        for (t, v) in attrs {
            a.extend(t.to_be_bytes());
            a.extend((v.len() as u16).to_be_bytes());
            a.extend(*v);
            while a.len() % 4 != 0 {
                a.push(0);
            }
        }
        let mut m = ty.to_be_bytes().to_vec();
        m.extend((a.len() as u16).to_be_bytes());
        m.extend(if cookie {
            MAGIC_COOKIE.to_be_bytes()
        } else {
            [9, 9, 9, 9]
        });
        m.extend([7; 12]);
        m.extend(a);
        m
    }

    #[test]
    fn parse_modern_message_and_attributes() {
        let m = message(
            0x0003,
            &[(ATTR_REALM, b"signal.org"), (0x4003, b"xy")],
            true,
        );
        let s = parse(&m).unwrap();
        assert_eq!(s.msg_type, 0x0003);
        assert!(!s.classic);
        let attrs: Vec<(u16, &[u8])> = s.attributes().collect();
        assert_eq!(
            attrs,
            vec![(ATTR_REALM, &b"signal.org"[..]), (0x4003, &b"xy"[..])]
        );
    }

    #[test]
    fn parse_classic_only_for_known_types_and_exact_length() {
        let m = message(0x0001, &[], false);
        assert!(parse(&m).unwrap().classic);
        assert!(parse(&message(0x0800, &[], false)).is_none());
        let mut longer = message(0x0001, &[], false);
        longer.push(0);
        assert!(parse(&longer).is_none());
    }

    #[test]
    fn parse_rejects_non_stun_and_never_panics() {
        assert!(parse(&[0x80; 40]).is_none(), "top bits set (RTP)");
        let mut m = message(0x0001, &[(ATTR_SOFTWARE, b"abc")], true);
        m[3] = 7; // length not a multiple of 4
        assert!(parse(&m).is_none());
        let m = message(0x0101, &[(0x0020, &[0; 8])], true);
        for cut in 0..m.len() {
            if let Some(s) = parse(&m[..cut]) {
                let _ = s.attributes().count();
            }
        }
        // An attribute whose length runs past the message ends the list.
        let mut m = message(0x0101, &[(0x0020, &[0; 8])], true);
        m[22] = 0xff;
        assert_eq!(parse(&m).unwrap().attributes().count(), 0);
    }
}
