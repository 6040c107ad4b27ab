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

/// Most answer records read from one response.
const MAX_ANSWERS: usize = 64;
/// Most CNAME targets kept from one response (the names a client's question was aliased to).
pub const MAX_ALIASES: usize = 8;
/// Longest TTL taken from an answer (one day): a record cannot pin an address for longer.
pub const MAX_TTL: u32 = 86_400;

/// An address record of a response, with its TTL in seconds (capped at [`MAX_TTL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerAddr {
    /// The address (A or AAAA).
    pub ip: std::net::IpAddr,
    /// Seconds it may be cached.
    pub ttl: u32,
}

/// What a DNS response says: the name asked for, the names it was aliased to (CNAME targets,
/// in order), and the addresses. Names are dotted lower case, in fixed buffers.
#[derive(Clone, Debug)]
pub struct Answers {
    names: [[u8; MAX_NAME]; 1 + MAX_ALIASES],
    lens: [usize; 1 + MAX_ALIASES],
    count: usize,
    addrs: [AnswerAddr; MAX_ANSWERS],
    naddrs: usize,
}

impl Answers {
    /// The question's name, then each CNAME target.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.names
            .iter()
            .zip(self.lens)
            .take(self.count)
            .map(|(n, l)| &n[..l])
    }

    /// The A and AAAA records.
    pub fn addrs(&self) -> &[AnswerAddr] {
        &self.addrs[..self.naddrs]
    }
}

/// Reads the answers of a successful response (QR set, RCODE 0): the question's name, CNAME
/// targets and A/AAAA records. Other record types are skipped; reading stops at
/// 64 records. A query, an error response or a damaged message is an error.
pub fn answers(msg: &[u8]) -> Result<Box<Answers>, DnsError> {
    let hdr = msg.get(..12).ok_or(DnsError::Truncated)?;
    if hdr[2] & 0x80 == 0 {
        return Err(DnsError::Malformed("not a response"));
    }
    if hdr[3] & 0x0f != 0 {
        return Err(DnsError::Malformed("error response"));
    }
    let qdcount = u16::from_be_bytes([hdr[4], hdr[5]]);
    let ancount = usize::from(u16::from_be_bytes([hdr[6], hdr[7]]));
    if qdcount != 1 {
        return Err(DnsError::NoQuestion);
    }
    let mut out = Box::new(Answers {
        names: [[0; MAX_NAME]; 1 + MAX_ALIASES],
        lens: [0; 1 + MAX_ALIASES],
        count: 1,
        addrs: [AnswerAddr {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            ttl: 0,
        }; MAX_ANSWERS],
        naddrs: 0,
    });
    let (qlen, mut at) = read_name(msg, 12, &mut out.names[0])?;
    out.lens[0] = qlen;
    at += 4; // QTYPE, QCLASS
    let mut scratch = [0u8; MAX_NAME];
    for _ in 0..ancount.min(MAX_ANSWERS) {
        let (_, end) = read_name(msg, at, &mut scratch)?;
        let fixed = msg.get(end..end + 10).ok_or(DnsError::Truncated)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]).min(MAX_TTL);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata_at = end + 10;
        let rdata = msg
            .get(rdata_at..rdata_at + rdlen)
            .ok_or(DnsError::Truncated)?;
        at = rdata_at + rdlen;
        if class & 0x7fff != 1 {
            continue;
        }
        let ip = match (rtype, rdata.len()) {
            (1, 4) => Some(std::net::IpAddr::from([
                rdata[0], rdata[1], rdata[2], rdata[3],
            ])),
            (28, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                Some(std::net::IpAddr::from(b))
            }
            (5, _) => {
                if out.count <= MAX_ALIASES {
                    let i = out.count;
                    let (len, _) = read_name(msg, rdata_at, &mut out.names[i])?;
                    out.lens[i] = len;
                    out.count += 1;
                }
                None
            }
            _ => None,
        };
        if let Some(ip) = ip {
            let n = out.naddrs;
            out.addrs[n] = AnswerAddr { ip, ttl };
            out.naddrs += 1;
        }
    }
    Ok(out)
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

    /// A response for `chat.example.org`: a CNAME to `edge.cdn.net` (compressed against the
    /// question), then an A and an AAAA record of that name.
    #[rustfmt::skip]
    const RESPONSE: &[u8] = &[
        0xab, 0xcd, 0x81, 0x80, 0x00, 0x01, 0x00, 0x03, // id, QR RD RA, 1 question, 3 answers
        0x00, 0x00, 0x00, 0x00, 0x04, b'c', b'h', b'a', // "chat"
        b't', 0x07, b'e', b'x', b'a', b'm', b'p', b'l', // "example"
        b'e', 0x03, b'o', b'r', b'g', 0x00, 0x00, 0x01, // "org" A
        0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, // IN; answer 1: ptr to question, CNAME IN
        0x00, 0x00, 0x01, 0x2c, 0x00, 0x0e, 0x04, b'e', // TTL 300, rdlen 14: "edge"
        b'd', b'g', b'e', 0x03, b'c', b'd', b'n', 0x03, // "cdn"
        b'n', b'e', b't', 0x00, 0xc0, 0x2e, 0x00, 0x01, // "net"; answer 2: ptr to edge.cdn.net, A
        0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, // IN TTL 60 rdlen 4
        0x0a, 0x01, 0x02, 0x03, 0xc0, 0x2e, 0x00, 0x1c, // 10.1.2.3; answer 3: AAAA
        0x00, 0x01, 0x00, 0x02, 0xa3, 0x00, 0x00, 0x10, // IN TTL 172800 (capped), rdlen 16
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // 2001:db8::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    ];

    #[test]
    fn answers_names_aliases_and_addresses() {
        let a = answers(RESPONSE).unwrap();
        let names: Vec<&[u8]> = a.names().collect();
        assert_eq!(names, [&b"chat.example.org"[..], b"edge.cdn.net"]);
        let addrs = a.addrs();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[0].ip, "10.1.2.3".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(addrs[0].ttl, 60);
        assert_eq!(
            addrs[1].ip,
            "2001:db8::1".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(addrs[1].ttl, MAX_TTL);
    }

    #[test]
    fn answers_refuses_queries_errors_and_damage() {
        assert_eq!(
            answers(QUERY_WHATSAPP).unwrap_err(),
            DnsError::Malformed("not a response")
        );
        let mut nx = RESPONSE.to_vec();
        nx[3] = 0x83; // NXDOMAIN
        assert_eq!(
            answers(&nx).unwrap_err(),
            DnsError::Malformed("error response")
        );
        // Every truncation is an error or a shorter answer list, never a panic.
        for cut in 0..RESPONSE.len() {
            if let Ok(a) = answers(&RESPONSE[..cut]) {
                assert!(a.addrs().len() < 2, "cut {cut}");
            }
        }
        // An answer count that lies is bounded by the message.
        let mut lie = RESPONSE.to_vec();
        lie[6] = 0xff;
        assert_eq!(answers(&lie).unwrap_err(), DnsError::Truncated);
        // A CNAME that points at itself is a loop.
        let mut lp = RESPONSE[..46].to_vec();
        lp[7] = 1;
        lp.truncate(44);
        lp.extend([0x00, 0x02, 0xc0, 46]);
        assert_eq!(
            answers(&lp).unwrap_err(),
            DnsError::Malformed("compression pointer loop")
        );
    }
}
