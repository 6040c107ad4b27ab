//! The server's certificate in a TLS 1.2 (or older) handshake, which travels in the clear: the
//! names it is for (subject common name, then the subject alternative names' DNS names), for a
//! capture that sees only the server's side. TLS 1.3 encrypts the certificate; then nothing is
//! read. Pure functions of bytes; no allocation beyond the caller's scratch buffer.
//!
//! Facts from RFC 5246 §7.4.2 (the Certificate message: a 3-byte list length, then each
//! certificate with a 3-byte length, the server's own first) and RFC 5280 §4.1 / §4.2.1.6
//! (`Certificate ::= SEQUENCE { tbsCertificate, ... }`, `TBSCertificate ::= SEQUENCE { [0]
//! version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, [1], [2],
//! [3] extensions }`, `subjectAltName` is extension 2.5.29.17, a `dNSName` is `[2] IA5String`),
//! the common name attribute being 2.5.4.3 (X.520).

/// Most server stream bytes read for the certificate (ServerHello and the first certificate
/// come well within it).
pub const MAX_SERVER_PREFIX: usize = 8 * 1024;

/// Most names taken from one certificate.
pub const MAX_NAMES: usize = 32;

/// How far the server's first bytes can be read for its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertScan<'a> {
    /// The server's own certificate (DER), whole.
    Found(&'a [u8]),
    /// A TLS handshake so far; more bytes are needed.
    Pending,
    /// Not a TLS handshake, one whose certificate is encrypted (TLS 1.3), or one past the bound.
    GiveUp,
}

/// Reads the server's first bytes (`stream`, TLS records from its start) for its certificate;
/// `scratch` holds the handshake messages taken out of their records.
pub fn server_certificate<'a>(stream: &[u8], scratch: &'a mut Vec<u8>) -> CertScan<'a> {
    scratch.clear();
    let mut at = 0;
    let mut more = true;
    while more {
        let Some(&[kind, major, _, l0, l1]) = stream.get(at..at + 5) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if major != 3 || len > 16 * 1024 + 2048 {
            return CertScan::GiveUp;
        }
        match kind {
            22 => {}
            // ChangeCipherSpec or encrypted data before a certificate: TLS 1.3, or resumption.
            _ => return CertScan::GiveUp,
        }
        let Some(body) = stream.get(at + 5..at + 5 + len) else {
            // A record cut by the end of what came so far: take what there is.
            scratch.extend_from_slice(stream.get(at + 5..).unwrap_or_default());
            more = false;
            continue;
        };
        scratch.extend_from_slice(body);
        at += 5 + len;
    }
    // Handshake messages: type (1), length (3), body.
    let mut h = 0;
    loop {
        let Some(&[kind, a, b, c]) = scratch.get(h..h + 4) else {
            return pending(stream);
        };
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let Some(body) = scratch.get(h + 4..h + 4 + len) else {
            // Only the first certificate is needed: it may be whole before its message is.
            if kind == 11 {
                if let Some(c) = first_certificate(scratch.get(h + 4..).unwrap_or_default()) {
                    return CertScan::Found(c);
                }
            }
            return pending(stream);
        };
        match kind {
            // ServerHello: a TLS 1.3 one (supported_versions says 0x0304) encrypts what follows.
            2 if says_tls13(body) => return CertScan::GiveUp,
            2 => {}
            11 => return first_certificate(body).map_or(CertScan::GiveUp, CertScan::Found),
            // Anything else before the certificate (ServerKeyExchange, ServerHelloDone): none
            // is coming (an anonymous or PSK handshake).
            _ => return CertScan::GiveUp,
        }
        h += 4 + len;
    }
}

fn pending(stream: &[u8]) -> CertScan<'static> {
    if stream.len() >= MAX_SERVER_PREFIX {
        CertScan::GiveUp
    } else {
        CertScan::Pending
    }
}

/// The first certificate of a Certificate message's body, when it is whole.
fn first_certificate(body: &[u8]) -> Option<&[u8]> {
    let &[a, b, c] = body.get(3..6)? else {
        return None;
    };
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    body.get(6..6 + len)
}

/// A ServerHello whose supported_versions extension (43) selects TLS 1.3.
fn says_tls13(body: &[u8]) -> bool {
    // version (2), random (32), session id (1 + n), cipher suite (2), compression (1),
    // extensions (2 + n).
    let Some(&sid) = body.get(34) else {
        return false;
    };
    let mut at = 35 + usize::from(sid) + 3;
    let Some(&[e0, e1]) = body.get(at..at + 2) else {
        return false;
    };
    let end = at + 2 + usize::from(u16::from_be_bytes([e0, e1]));
    at += 2;
    while let Some(&[k0, k1, n0, n1]) = body.get(at..at + 4).filter(|_| at < end) {
        let (kind, len) = (
            u16::from_be_bytes([k0, k1]),
            usize::from(u16::from_be_bytes([n0, n1])),
        );
        if kind == 43 {
            return body.get(at + 4..at + 6) == Some(&[3, 4]);
        }
        at += 4 + len;
    }
    false
}

/// One DER element: its tag, its contents, and what follows it.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for &x in b.get(2..2 + n)? {
            len = len << 8 | usize::from(x);
        }
        (len, 2 + n)
    };
    let body = b.get(head..head + len)?;
    Some((tag, body, b.get(head + len..)?))
}

/// The DER encoding of the common name attribute's OID (2.5.4.3).
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// The DER encoding of the subject alternative name extension's OID (2.5.29.17).
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Hands each name the certificate is for to `f`: the subject's common names, then the DNS
/// names of its subject alternative names, at most [`MAX_NAMES`]; nothing when it is not a
/// certificate.
pub fn names<'a>(cert: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut left = MAX_NAMES;
    let mut give = |n: &'a [u8]| {
        if left > 0 && !n.is_empty() {
            left -= 1;
            f(n);
        }
    };
    let Some((0x30, c, _)) = tlv(cert) else {
        return;
    };
    let Some((0x30, tbs, _)) = tlv(c) else {
        return;
    };
    let mut rest = tbs;
    // [0] version (optional), serial, signature, issuer, validity, subject.
    let mut index = 0;
    while let Some((tag, body, next)) = tlv(rest) {
        rest = next;
        if index == 0 && tag == 0xa0 {
            continue;
        }
        index += 1;
        match (index, tag) {
            // subject: a SEQUENCE of SETs of (OID, value).
            (5, 0x30) => {
                let mut rdns = body;
                while let Some((_, set, next)) = tlv(rdns) {
                    rdns = next;
                    let mut atvs = set;
                    while let Some((_, atv, next)) = tlv(atvs) {
                        atvs = next;
                        if let Some((0x06, oid, value)) = tlv(atv) {
                            if oid == OID_CN {
                                if let Some((_, name, _)) = tlv(value) {
                                    give(name);
                                }
                            }
                        }
                    }
                }
            }
            // [3] extensions: a SEQUENCE of (OID, critical?, OCTET STRING).
            (_, 0xa3) => {
                let Some((0x30, mut exts, _)) = tlv(body) else {
                    return;
                };
                while let Some((_, ext, next)) = tlv(exts) {
                    exts = next;
                    let Some((0x06, oid, mut more)) = tlv(ext) else {
                        continue;
                    };
                    if oid != OID_SAN {
                        continue;
                    }
                    if let Some((0x01, _, after)) = tlv(more) {
                        more = after;
                    }
                    let Some((0x04, value, _)) = tlv(more) else {
                        continue;
                    };
                    let Some((0x30, mut general, _)) = tlv(value) else {
                        continue;
                    };
                    while let Some((tag, name, next)) = tlv(general) {
                        general = next;
                        if tag == 0x82 {
                            give(name);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_synth::{certificate, server_flight_tls12, server_hello_and_more};

    fn all_names(cert: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        names(cert, |n| v.push(String::from_utf8_lossy(n).into_owned()));
        v
    }

    #[test]
    fn names_are_the_common_name_then_the_dns_alternatives() {
        let c = certificate(
            1,
            "*.wechat.com",
            &["*.wechat.com", "wechat.com", "*.weixin.qq.com"],
        );
        assert_eq!(
            all_names(&c),
            [
                "*.wechat.com",
                "*.wechat.com",
                "wechat.com",
                "*.weixin.qq.com"
            ]
        );
        let many: Vec<String> = (0..50).map(|i| format!("h{i}.example")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            all_names(&certificate(2, "a.example", &refs)).len(),
            MAX_NAMES
        );
        // Not a certificate, or cut anywhere: no panic, and never a name from past the cut.
        assert!(all_names(b"\x16\x03\x03").is_empty());
        for cut in 0..c.len() {
            let _ = all_names(&c[..cut]);
        }
    }

    #[test]
    fn tls12_certificate_found_in_any_record_size_and_every_prefix_pending() {
        let mut scratch = Vec::new();
        for max in [16384, 1000, 100, 7] {
            let flight = server_flight_tls12(3, "*.signal.org", &["*.signal.org"], max);
            let CertScan::Found(c) = server_certificate(&flight, &mut scratch) else {
                panic!("not found with records of {max}")
            };
            assert_eq!(all_names(c), ["*.signal.org", "*.signal.org"]);
            let whole = certificate(3, "*.signal.org", &["*.signal.org"]);
            for cut in 0..flight.len() {
                match server_certificate(&flight[..cut], &mut scratch) {
                    CertScan::Pending => {}
                    CertScan::Found(c) => assert_eq!(c, &whole[..], "{max} {cut}"),
                    CertScan::GiveUp => panic!("gave up at {cut} of {max}"),
                }
            }
        }
    }

    #[test]
    fn tls13_and_what_is_not_a_handshake_give_up() {
        let mut scratch = Vec::new();
        let tls13 = server_hello_and_more(4, 3000);
        assert_eq!(server_certificate(&tls13, &mut scratch), CertScan::GiveUp);
        assert_eq!(
            server_certificate(b"HTTP/1.1 200 OK\r\n", &mut scratch),
            CertScan::GiveUp
        );
        assert_eq!(server_certificate(b"", &mut scratch), CertScan::Pending);
        // A handshake that never reaches a certificate within the bound.
        let mut endless = Vec::new();
        while endless.len() < MAX_SERVER_PREFIX + 10 {
            endless.extend([0x16, 0x03, 0x03, 0x00, 0x04, 0x0b, 0xff, 0xff, 0xff]);
        }
        assert_eq!(server_certificate(&endless, &mut scratch), CertScan::GiveUp);
    }
}
