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
    /// The transaction id (the 12 bytes after the cookie; for classic messages, the last 12
    /// of the 16-byte id).
    txid: &'a [u8],
    /// The attribute area.
    attrs: &'a [u8],
}

/// MAPPED-ADDRESS attribute.
pub const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
/// XOR-PEER-ADDRESS attribute (TURN).
pub const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
/// XOR-RELAYED-ADDRESS attribute (TURN).
pub const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// XOR-MAPPED-ADDRESS attribute.
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;

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
    let attrs = b.get(20..20 + len)?;
    let cookie = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let classic = cookie != MAGIC_COOKIE;
    // RFC 8489 §6 pads every attribute, so the length is a multiple of 4. WhatsApp's own
    // messages (types 0x0800-0x0805) leave their last attribute unpadded: with the cookie, a
    // length that fills the datagram exactly is still a message (its last attribute is read as
    // far as it goes); without it, or short of the end, it is not.
    if len % 4 != 0 && (classic || b.len() != 20 + len) {
        return None;
    }
    if classic && (!CLASSIC_TYPES.contains(&msg_type) || b.len() != 20 + len) {
        return None;
    }
    Some(Message {
        msg_type,
        classic,
        txid: &hdr[8..20],
        attrs,
    })
}

/// Whether a datagram carries the RFC 5389 magic cookie where a STUN header has it, with the
/// top bits clear: a message that claims to be STUN (whether or not its lengths hold).
pub fn has_cookie(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] & 0xC0 == 0 && b[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// A cheap first look for the reader thread: whether a datagram could be a STUN message (top
/// bits clear, a length that fills the datagram). [`parse`] decides.
pub fn looks_like_stun(b: &[u8]) -> bool {
    b.len() >= 20
        && b[0] & 0xC0 == 0
        && usize::from(u16::from_be_bytes([b[2], b[3]])) + 20 == b.len()
}

/// Reads a STUN message at the start of a TCP stream: directly (RFC 8489 §6.2.2: messages follow
/// each other on the stream, the magic cookie required) or framed by a 2-byte length as ICE-TCP
/// does (RFC 6544, RFC 4571). Returns the message and the stream bytes it takes.
pub fn parse_stream(b: &[u8]) -> Option<(Message<'_>, usize)> {
    if let Some(m) = parse(b).filter(|m| !m.classic) {
        return Some((m, 20 + m.attrs.len()));
    }
    let frame = usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]));
    let body = b.get(2..2 + frame)?;
    parse(body)
        .filter(|m| !m.classic && 20 + m.attrs.len() == frame)
        .map(|m| (m, 2 + frame))
}

/// The STUN messages at the start of a TCP stream, in order, as far as they are whole; at most
/// `max`.
pub fn stream_messages(mut b: &[u8], max: usize) -> impl Iterator<Item = Message<'_>> {
    std::iter::from_fn(move || {
        let (m, used) = parse_stream(b)?;
        b = b.get(used..).unwrap_or(&[]);
        Some(m)
    })
    .take(max)
}

/// A TURN ChannelData message (RFC 8656 §12.4): a channel number 0x4000-0x4FFF, a length, the
/// data, padded to 4 bytes (over UDP the padding may be left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// The channel number.
    pub channel: u16,
    /// The application data relayed.
    pub data: &'a [u8],
}

/// Reads a ChannelData message filling the datagram `b`.
pub fn channel_data(b: &[u8]) -> Option<ChannelData<'_>> {
    let hdr = b.get(..4)?;
    let channel = u16::from_be_bytes([hdr[0], hdr[1]]);
    if !(0x4000..=0x4FFF).contains(&channel) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    let padded = (len + 3) & !3;
    if b.len() != 4 + len && b.len() != 4 + padded {
        return None;
    }
    Some(ChannelData {
        channel,
        data: &b[4..4 + len],
    })
}

impl<'a> Message<'a> {
    /// The transaction id (12 bytes).
    pub fn txid(&self) -> &'a [u8] {
        self.txid
    }

    /// The message is a request or an indication (sent by the side that asks), not a response:
    /// the class bits C1 C0 (0x0110 of the type) are 00 or 01.
    pub fn is_request_or_indication(&self) -> bool {
        self.msg_type & 0x0100 == 0
    }

    /// The transport addresses the message reveals: MAPPED-ADDRESS, and the XOR-coded
    /// XOR-MAPPED-, XOR-PEER- and XOR-RELAYED-ADDRESS (RFC 8489 §14.1-14.2, RFC 8656 §18).
    pub fn addresses(&self) -> impl Iterator<Item = std::net::SocketAddr> + 'a {
        let txid = self.txid;
        let classic = self.classic;
        self.attributes().filter_map(move |(ty, v)| {
            let xor = match ty {
                ATTR_MAPPED_ADDRESS => false,
                ATTR_XOR_MAPPED_ADDRESS | ATTR_XOR_PEER_ADDRESS | ATTR_XOR_RELAYED_ADDRESS
                    if !classic =>
                {
                    true
                }
                _ => return None,
            };
            let mut key = [0u8; 16];
            if xor {
                key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                key[4..].copy_from_slice(txid);
            }
            let port =
                u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ u16::from_be_bytes([key[0], key[1]]);
            let ip = match (v.get(1)?, v.len()) {
                (1, 8) => {
                    let mut a = [0u8; 4];
                    for (i, b) in a.iter_mut().enumerate() {
                        *b = v[4 + i] ^ key[i];
                    }
                    std::net::IpAddr::from(a)
                }
                (2, 20) => {
                    let mut a = [0u8; 16];
                    for (i, b) in a.iter_mut().enumerate() {
                        *b = v[4 + i] ^ key[i];
                    }
                    std::net::IpAddr::from(a)
                }
                _ => return None,
            };
            Some(std::net::SocketAddr::new(ip, port))
        })
    }

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
        m[3] = 7; // length not a multiple of 4, short of the datagram's end
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

    #[test]
    fn parse_unpadded_last_attribute_only_with_cookie_filling_the_datagram() {
        // A WhatsApp-typed request whose last attribute (3 bytes) is not padded: length 7.
        let mut m = message(0x0801, &[(0x4003, b"abc")], true);
        m.truncate(m.len() - 1);
        m[3] = 7;
        let s = parse(&m).unwrap();
        assert_eq!(s.attributes().collect::<Vec<_>>(), [(0x4003, &b"abc"[..])]);
        assert!(looks_like_stun(&m));
        // The same without the cookie is not STUN; nor with bytes after it.
        let mut classic = m.clone();
        classic[4..8].copy_from_slice(&[9, 9, 9, 9]);
        assert!(parse(&classic).is_none());
        let mut longer = m.clone();
        longer.push(0);
        assert!(parse(&longer).is_none());
    }

    #[test]
    fn addresses_plain_and_xor_coded() {
        // XOR-MAPPED-ADDRESS of 192.0.2.1:32853 (RFC 5769 §2.2's sample response).
        let xor_v4 = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        // MAPPED-ADDRESS 10.0.0.7:5000, and an IPv6 XOR-PEER-ADDRESS.
        let plain = [0x00, 0x01, 0x13, 0x88, 10, 0, 0, 7];
        let mut m = message(
            0x0101,
            &[
                (ATTR_XOR_MAPPED_ADDRESS, &xor_v4),
                (ATTR_MAPPED_ADDRESS, &plain),
                (ATTR_SOFTWARE, b"x"),
            ],
            true,
        );
        // RFC 5769's transaction id, so the IPv6 case can use its value too.
        let txid = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        m[8..20].copy_from_slice(&txid);
        let s = parse(&m).unwrap();
        assert!(!s.is_request_or_indication());
        let a: Vec<std::net::SocketAddr> = s.addresses().collect();
        assert_eq!(
            a,
            [
                "192.0.2.1:32853".parse().unwrap(),
                "10.0.0.7:5000".parse().unwrap()
            ]
        );
        // RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let xor_v6 = [
            0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
            0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        ];
        let mut m = message(0x0001, &[(ATTR_XOR_PEER_ADDRESS, &xor_v6)], true);
        m[8..20].copy_from_slice(&txid);
        let s = parse(&m).unwrap();
        assert!(s.is_request_or_indication());
        let a: Vec<std::net::SocketAddr> = s.addresses().collect();
        assert_eq!(
            a,
            ["[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap()]
        );
        // A wrong family or length is skipped.
        let m = message(0x0101, &[(ATTR_XOR_MAPPED_ADDRESS, &[0, 3, 0, 0])], true);
        assert_eq!(parse(&m).unwrap().addresses().count(), 0);
    }

    #[test]
    fn stream_direct_and_framed() {
        let m = message(0x0003, &[(ATTR_REALM, b"example.org")], true);
        assert_eq!(parse_stream(&m).unwrap().0.msg_type, 0x0003);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend(&m);
        framed.extend([0x16, 0x03]); // the next bytes on the stream
        assert_eq!(
            parse_stream(&framed).unwrap(),
            (parse(&m).unwrap(), m.len() + 2)
        );
        // Two messages back to back, then a partial one.
        let mut two = m.clone();
        two.extend(message(0x0101, &[], true));
        two.extend(&m[..10]);
        let types: Vec<u16> = stream_messages(&two, 8).map(|x| x.msg_type).collect();
        assert_eq!(types, [0x0003, 0x0101]);
        framed[1] ^= 4; // a frame length that does not fit the message
        assert!(parse_stream(&framed).is_none());
        // Classic messages have no cookie to tell them from other bytes on a stream.
        assert!(parse_stream(&message(0x0001, &[], false)).is_none());
        assert!(parse_stream(b"GET / HTTP/1.1").is_none());
    }

    #[test]
    fn channel_data_bounds() {
        let mut d = vec![0x40, 0x01, 0x00, 0x05, 0x80, 1, 2, 3, 4];
        assert_eq!(
            channel_data(&d),
            Some(ChannelData {
                channel: 0x4001,
                data: &[0x80, 1, 2, 3, 4]
            })
        );
        d.extend([0, 0, 0]); // padded
        assert_eq!(channel_data(&d).unwrap().data.len(), 5);
        d.push(0);
        assert!(channel_data(&d).is_none(), "longer than its padding");
        assert!(
            channel_data(&[0x50, 0, 0, 0]).is_none(),
            "channel out of range"
        );
        assert!(
            channel_data(&[0x40, 0, 0, 9, 1]).is_none(),
            "length past the end"
        );
        assert!(channel_data(&[0x40]).is_none());
    }
}
