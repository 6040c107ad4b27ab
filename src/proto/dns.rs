//! DNS messages (RFC 1035 §4): the header and the first question's name, read with bounds on
//! every length and on compression pointers. Pure functions; no state.
//!
//! ```text
//! Header   { ID(16), QR(1) Opcode(4) AA TC RD RA Z(3) RCODE(4), QDCOUNT(16), ANCOUNT(16),
//!            NSCOUNT(16), ARCOUNT(16) }
//! Question { QNAME (labels, or a pointer 0b11 + 14-bit offset), QTYPE(16), QCLASS(16) }
//! ```

/// Longest name written out (RFC 1035 §2.3.4 allows 255 octets on the wire).
pub const MAX_NAME: usize = 255;
/// Most compression pointers followed in one name (a loop would otherwise never end).
const MAX_POINTERS: usize = 16;

/// Why a message was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than its header or a field says.
    Truncated,
    /// No question in the message.
    NoQuestion,
    /// A label or pointer is invalid (a loop, a reserved label type, a name too long).
    Malformed(&'static str),
}

/// The first question of a DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    /// The message is a response (QR bit).
    pub response: bool,
    /// Length of the name written into the caller's buffer (dotted, lower case, no final dot).
    pub name_len: usize,
    /// QTYPE.
    pub qtype: u16,
}

/// Reads the first question's name into `name` (dotted, lower case).
pub fn first_question(msg: &[u8], name: &mut [u8; MAX_NAME]) -> Result<Question, DnsError> {
    let hdr = msg.get(..12).ok_or(DnsError::Truncated)?;
    let response = hdr[2] & 0x80 != 0;
    let qdcount = u16::from_be_bytes([hdr[4], hdr[5]]);
    if qdcount == 0 {
        return Err(DnsError::NoQuestion);
    }
    let (name_len, end) = read_name(msg, 12, name)?;
    let qtype = msg
        .get(end..end + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated)?;
    Ok(Question {
        response,
        name_len,
        qtype,
    })
}

/// Reads a possibly compressed name at `at`; returns its written length and the offset after
/// the name in the message (after the first pointer, when there is one).
fn read_name(
    msg: &[u8],
    mut at: usize,
    out: &mut [u8; MAX_NAME],
) -> Result<(usize, usize), DnsError> {
    let mut len = 0;
    let mut end = None;
    let mut pointers = 0;
    loop {
        let b = *msg.get(at).ok_or(DnsError::Truncated)?;
        match b >> 6 {
            0 if b == 0 => {
                return Ok((len, end.unwrap_or(at + 1)));
            }
            0 => {
                let label = msg
                    .get(at + 1..at + 1 + usize::from(b))
                    .ok_or(DnsError::Truncated)?;
                let dot = usize::from(len > 0);
                if len + dot + label.len() > MAX_NAME {
                    return Err(DnsError::Malformed("name longer than 255 octets"));
                }
                if dot == 1 {
                    out[len] = b'.';
                }
                out[len + dot..len + dot + label.len()].copy_from_slice(label);
                out[len + dot..len + dot + label.len()].make_ascii_lowercase();
                len += dot + label.len();
                at += 1 + label.len();
            }
            3 => {
                let lo = *msg.get(at + 1).ok_or(DnsError::Truncated)?;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::Malformed("compression pointer loop"));
                }
                end.get_or_insert(at + 2);
                at = usize::from(u16::from_be_bytes([b & 0x3f, lo]));
            }
            _ => return Err(DnsError::Malformed("reserved label type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const QUERY_WHATSAPP: &[u8] = &[
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, // id, RD, 1 question
        0x00, 0x00, 0x00, 0x00, 0x01, b'g', 0x08, b'W', // "g" "WhatsApp"
        b'h', b'a', b't', b's', b'A', b'p', b'p', 0x03, //
        b'n', b'e', b't', 0x00, 0x00, 0x01, 0x00, 0x01, // "net" A IN
    ];

    fn name(msg: &[u8]) -> Result<(String, Question), DnsError> {
        let mut buf = [0u8; MAX_NAME];
        let q = first_question(msg, &mut buf)?;
        Ok((String::from_utf8_lossy(&buf[..q.name_len]).into_owned(), q))
    }

    #[test]
    fn first_question_name_lower_case() {
        let (n, q) = name(QUERY_WHATSAPP).unwrap();
        assert_eq!(n, "g.whatsapp.net");
        assert!(!q.response);
        assert_eq!(q.qtype, 1);
    }

    #[test]
    fn first_question_compression_and_loops() {
        // A response whose question name points back into itself: a loop.
        let mut m = QUERY_WHATSAPP[..12].to_vec();
        m[2] |= 0x80;
        m.extend([0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(
            name(&m).unwrap_err(),
            DnsError::Malformed("compression pointer loop")
        );
        // A pointer to a name elsewhere in the message.
        let mut m = QUERY_WHATSAPP[..12].to_vec();
        m.extend([0xc0, 18, 0, 1, 0, 1]);
        m.extend([
            3, b'w', b'e', b'b', 6, b'z', b'o', b'o', b'm', b'u', b's', 0,
        ]);
        // "zoomus" is one label: the name is web.zoomus
        assert_eq!(name(&m).unwrap().0, "web.zoomus");
    }

    #[test]
    fn first_question_errors_never_panic() {
        assert_eq!(name(&[0; 5]).unwrap_err(), DnsError::Truncated);
        let mut m = QUERY_WHATSAPP.to_vec();
        m[5] = 0;
        assert_eq!(name(&m).unwrap_err(), DnsError::NoQuestion);
        let mut x: u32 = 7;
        for cut in 0..QUERY_WHATSAPP.len() {
            let _ = name(&QUERY_WHATSAPP[..cut]);
        }
        for _ in 0..5000 {
            let mut m = QUERY_WHATSAPP.to_vec();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let i = (x as usize) % m.len();
            m[i] = (x >> 8) as u8;
            let _ = name(&m);
        }
        // 63 labels of 63 bytes: longer than 255 octets.
        let mut m = QUERY_WHATSAPP[..12].to_vec();
        for _ in 0..5 {
            m.push(63);
            m.extend([b'a'; 63]);
        }
        m.push(0);
        m.extend([0, 1, 0, 1]);
        assert_eq!(
            name(&m).unwrap_err(),
            DnsError::Malformed("name longer than 255 octets")
        );
    }
}
