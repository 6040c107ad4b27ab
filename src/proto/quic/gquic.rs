//! Google QUIC's own handshake: the client hello (CHLO) of QUIC crypto, in the plaintext
//! packets of Q0xx up to Q046 and in the CRYPTO stream of Q050's Initials. Pure functions of
//! bytes; never decrypts (Q050's Initials are opened by [`super::client_initials`] with its salt).
//!
//! Facts from the QUIC crypto design document (the CHLO's tag/value layout) and the public
//! header of gQUIC as Chromium's quiche and Wireshark's dissector read it:
//!
//! ```text
//! Q0xx ≤ Q043 (public header)        Q046 (long header)
//!   flags (1)  0x01 version,           first (1)  0xc0 | pn length − 1
//!              0x08 8-byte CID,        version (4)
//!              0x30 pn length          CID lengths (1): DCIL << 4 | SCIL, each 0 or len − 3
//!   CID (8)                            DCID, SCID
//!   version (4) "Q0xx"                 packet number (1..4)
//!   packet number (1, 2, 4 or 6)
//!   ─ both: message hash (12), [before Q034: private flags (1)], frames ─
//! STREAM frame: type 1fdooo ss (f fin, d data length present, ooo offset length: 0 or n + 1
//!   bytes, ss stream ID length − 1), stream ID, offset, data length (2), data. The handshake
//!   is stream 1. Numbers are little-endian before Q039 and big-endian from it.
//! CHLO: "CHLO", tag count (2, LE), padding (2), count × (tag (4), end offset (4, LE)),
//!   then the values one after another; value i spans [end(i−1), end(i)).
//! ```

use super::QuicError;

/// Google QUIC Q050: QUIC crypto in Initials protected like IETF QUIC's, with its own salt.
pub const Q050: u32 = 0x5130_3530;

/// Most tags a CHLO may have (Chromium's kMaxEntries is 128).
const MAX_TAGS: usize = 128;

/// Longest CHLO read (Chromium refuses handshake messages over 16 KiB as well).
const MAX_CHLO_LEN: usize = 16 * 1024;

/// What a CHLO says about the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chlo<'a> {
    /// The `SNI` tag: the server's name.
    pub sni: Option<&'a [u8]>,
    /// The `UAID` tag: the client's user agent (e.g. "Chrome/79.0.3945.117 Windows NT 10.0").
    pub uaid: Option<&'a [u8]>,
    /// The `VER` tag: the version the client asks for.
    pub ver: Option<&'a [u8]>,
    /// The message's length in bytes.
    pub len: usize,
}

/// How far a CHLO at the start of a stream can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChloScan<'a> {
    /// The whole message is there.
    Found(Chlo<'a>),
    /// A CHLO so far; more bytes are needed.
    Pending,
    /// Not a CHLO, or one that breaks its own layout.
    Invalid,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the CHLO at the start of `msg`.
pub fn scan_chlo(msg: &[u8]) -> ChloScan<'_> {
    let head = msg.get(..4).unwrap_or(msg);
    if !b"CHLO".starts_with(head) {
        return ChloScan::Invalid;
    }
    let Some(count) = le16(msg, 4) else {
        return ChloScan::Pending;
    };
    let count = usize::from(count);
    if count > MAX_TAGS {
        return ChloScan::Invalid;
    }
    let values = 8 + 8 * count;
    let Some(index) = msg.get(8..values) else {
        return ChloScan::Pending;
    };
    let mut start = 0usize;
    let (mut sni, mut uaid, mut ver) = (None, None, None);
    for entry in index.chunks_exact(8) {
        let tag = entry.get(..4).unwrap_or_default();
        let Some(end) = le32(entry, 4).and_then(|e| usize::try_from(e).ok()) else {
            return ChloScan::Invalid;
        };
        if end < start || values + end > MAX_CHLO_LEN {
            return ChloScan::Invalid;
        }
        let span = Some((values + start, values + end));
        match tag {
            b"SNI\0" => sni = span,
            b"UAID" => uaid = span,
            b"VER\0" => ver = span,
            _ => {}
        }
        start = end;
    }
    let len = values + start;
    if msg.len() < len {
        return ChloScan::Pending;
    }
    let value = |span: Option<(usize, usize)>| span.and_then(|(a, b)| msg.get(a..b));
    ChloScan::Found(Chlo {
        sni: value(sni),
        uaid: value(uaid),
        ver: value(ver),
        len,
    })
}

/// The number of a Google QUIC version "Q0xx" (e.g. 43), or `None` for anything else.
fn q_number(version: u32) -> Option<u32> {
    let [q, a, b, c] = version.to_be_bytes();
    (q == b'Q' && [a, b, c].iter().all(u8::is_ascii_digit))
        .then(|| u32::from(a - b'0') * 100 + u32::from(b - b'0') * 10 + u32::from(c - b'0'))
}

/// A client's plaintext gQUIC packet (Q0xx up to Q046): its version and the data of its
/// handshake stream (stream 1) frame with the frame's stream offset. Errors name what is not
/// such a packet; [`QuicError::UnknownVersion`] is a gQUIC version this parser does not read.
pub fn plain_handshake(d: &[u8]) -> Result<(u32, u64, &[u8]), QuicError> {
    let first = *d.first().ok_or(QuicError::Truncated)?;
    let get = |a: usize, n: usize| d.get(a..a + n).ok_or(QuicError::Truncated);
    let (version, number, mut at) = if first & 0x80 == 0 {
        // Public header: a client's first packets carry the version and an 8-byte CID.
        if first & 0x01 == 0 || first & 0x08 == 0 || first & 0x40 != 0 {
            return Err(QuicError::NotInitial);
        }
        let version = u32::from_be_bytes(get(9, 4)?.try_into().unwrap_or_default());
        let n = q_number(version).ok_or(QuicError::NotInitial)?;
        if n > 43 {
            return Err(QuicError::UnknownVersion(version));
        }
        let pn = match (first >> 4) & 0b11 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => 6,
        };
        (version, n, 13 + pn)
    } else {
        let version = u32::from_be_bytes(get(1, 4)?.try_into().unwrap_or_default());
        let n = q_number(version).ok_or(QuicError::NotInitial)?;
        if !(44..=46).contains(&n) {
            return Err(QuicError::UnknownVersion(version));
        }
        if first & 0x40 == 0 || (first >> 4) & 0b11 != 0 {
            // Not an Initial (the type bits), or the fixed bit clear.
            return Err(QuicError::NotInitial);
        }
        let lens = *get(5, 1)?.first().unwrap_or(&0);
        let cid = |l: u8| if l == 0 { 0 } else { usize::from(l) + 3 };
        let pn = usize::from(first & 0b11) + 1;
        (version, n, 6 + cid(lens >> 4) + cid(lens & 0x0f) + pn)
    };
    // The 12-byte message hash of a packet without encryption, and before Q034 a private
    // flags byte.
    at += 12 + usize::from(number < 34);
    let big = number >= 39;
    let uint = |b: &[u8]| {
        let mut v = 0u64;
        for (i, &x) in b.iter().enumerate() {
            if big {
                v = v << 8 | u64::from(x);
            } else {
                v |= u64::from(x) << (8 * i);
            }
        }
        v
    };
    loop {
        let ty = *d.get(at).ok_or(QuicError::Malformed("no stream frame"))?;
        at += 1;
        match ty {
            0x00 => {
                // PADDING runs to the end of the packet.
                return Err(QuicError::Malformed("no stream frame"));
            }
            0x07 => {} // PING
            t if t & 0x80 != 0 => {
                let id_len = usize::from(t & 0b11) + 1;
                let off_bits = usize::from((t >> 2) & 0b111);
                let off_len = if off_bits == 0 { 0 } else { off_bits + 1 };
                let id = uint(get(at, id_len)?);
                let offset = uint(get(at + id_len, off_len)?);
                at += id_len + off_len;
                let data = if t & 0x20 != 0 {
                    let len = usize::try_from(uint(get(at, 2)?)).unwrap_or(usize::MAX);
                    get(at + 2, len)?
                } else {
                    d.get(at..).unwrap_or_default()
                };
                if id != 1 {
                    return Err(QuicError::Malformed("not the handshake stream"));
                }
                return Ok((version, offset, data));
            }
            _ => return Err(QuicError::Malformed("frame before the handshake stream")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_synth::quic::{gquic_chlo as chlo, gquic_plain_packet as plain_packet};

    #[test]
    fn chlo_tags_and_every_prefix_pending() {
        let m = chlo(&[
            (b"PAD\0", &[0x2d; 40]),
            (b"SNI\0", b"www.youtube.com"),
            (b"UAID", b"Chrome/79.0 Linux x86_64"),
            (b"VER\0", b"Q046"),
        ]);
        let ChloScan::Found(c) = scan_chlo(&m) else {
            panic!("not found")
        };
        assert_eq!(c.sni, Some(&b"www.youtube.com"[..]));
        assert_eq!(c.uaid, Some(&b"Chrome/79.0 Linux x86_64"[..]));
        assert_eq!(c.ver, Some(&b"Q046"[..]));
        assert_eq!(c.len, m.len());
        for cut in 0..m.len() {
            assert_eq!(scan_chlo(&m[..cut]), ChloScan::Pending, "{cut}");
        }
        // Bytes after the message are not part of it.
        let mut more = m.clone();
        more.extend(b"junk");
        assert!(matches!(scan_chlo(&more), ChloScan::Found(c) if c.len == m.len()));
    }

    #[test]
    fn chlo_that_breaks_its_layout_is_invalid() {
        assert_eq!(scan_chlo(b"\x16\x03\x01"), ChloScan::Invalid);
        assert_eq!(scan_chlo(b"SHLO\x00\x00\x00\x00"), ChloScan::Invalid);
        // End offsets going backwards.
        let mut m = chlo(&[(b"SNI\0", b"a.example"), (b"UAID", b"x")]);
        m[20..24].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(scan_chlo(&m), ChloScan::Invalid);
        // Too many tags, and a value past the bound, are refused before any wait.
        let mut m = b"CHLO".to_vec();
        m.extend(((MAX_TAGS + 1) as u16).to_le_bytes());
        assert_eq!(scan_chlo(&m), ChloScan::Invalid);
        let mut m = chlo(&[(b"SNI\0", b"a")]);
        m[12..16].copy_from_slice(&(MAX_CHLO_LEN as u32).to_le_bytes());
        assert_eq!(scan_chlo(&m), ChloScan::Invalid);
        // No SNI: found, with none.
        let m = chlo(&[(b"PAD\0", b"--")]);
        assert!(matches!(scan_chlo(&m), ChloScan::Found(c) if c.sni.is_none()));
    }

    #[test]
    fn plain_packets_of_each_header_format_and_byte_order() {
        let m = chlo(&[(b"SNI\0", b"play.google.com")]);
        for v in [b"Q024", b"Q035", b"Q039", b"Q043", b"Q046"] {
            for offset in [0u16, 1024] {
                let p = plain_packet(v, offset, &m);
                let (version, off, data) = plain_handshake(&p).unwrap();
                assert_eq!(version.to_be_bytes(), *v);
                assert_eq!((off, data), (u64::from(offset), &m[..]), "{v:?}");
            }
        }
    }

    #[test]
    fn plain_packets_that_are_not_a_client_handshake() {
        let m = chlo(&[(b"SNI\0", b"a.example")]);
        // IETF versions, Q050 (encrypted) and T-versions are not read here.
        for v in [b"Q050", b"T051", b"\0\0\0\x01"] {
            let mut p = plain_packet(b"Q046", 0, &m);
            p[1..5].copy_from_slice(v);
            assert!(plain_handshake(&p).is_err(), "{v:?}");
        }
        let mut p = plain_packet(b"Q043", 0, &m);
        p[0] = 0x08; // no version: not a client's first packet
        assert_eq!(plain_handshake(&p), Err(QuicError::NotInitial));
        let mut p = plain_packet(b"Q043", 0, &m);
        p[27] = 0x05; // another stream
        assert!(plain_handshake(&p).is_err());
        let p = plain_packet(b"Q046", 0, &m);
        for cut in 0..40 {
            assert!(plain_handshake(&p[..cut]).is_err(), "{cut}");
        }
        // A data length past the packet's end.
        let mut p = plain_packet(b"Q043", 0, &m);
        p.truncate(40);
        assert_eq!(plain_handshake(&p), Err(QuicError::Truncated));
    }

    proptest::proptest! {
        /// Any bytes, and any damage to a real packet, give an answer and never a panic; a CHLO
        /// found lies within the bytes given.
        #[test]
        fn hostile_bytes_never_panic(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400),
            flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..8),
        ) {
            let _ = plain_handshake(&junk);
            if let ChloScan::Found(c) = scan_chlo(&junk) {
                proptest::prop_assert!(c.len <= junk.len());
            }
            let m = chlo(&[(b"SNI\0", b"www.youtube.com"), (b"UAID", b"Chrome")]);
            let mut p = plain_packet(b"Q046", 0, &m);
            for (at, x) in flips {
                p[at] ^= x;
            }
            if let Ok((_, _, data)) = plain_handshake(&p) {
                let _ = scan_chlo(data);
            }
        }
    }
}
