//! The long header of a QUIC packet (RFC 9000 §17.2): form, version, connection IDs, the
//! packet kind and where its packet number and end lie. Never removes protection or decrypts.

use super::crypto::SAMPLE_LEN;
use super::reader::Reader;
use super::version::{initial_salt, is_google_quic, QUIC_V2};
use super::QuicError;

/// Longest connection ID allowed in a QUIC v1/v2 long header (RFC 9000 §17.2).
const MAX_CID_LEN: usize = 20;

/// A QUIC connection ID of 0 to 20 bytes, stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnId {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl ConnId {
    /// Copies `id` into a connection ID, or returns `None` if it is longer than 20 bytes.
    pub fn new(id: &[u8]) -> Option<Self> {
        let len = u8::try_from(id.len()).ok()?;
        let mut bytes = [0u8; MAX_CID_LEN];
        bytes.get_mut(..id.len())?.copy_from_slice(id);
        Some(Self { len, bytes })
    }

    /// Returns the connection ID's bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// The kinds of long-header packet, whose type bits differ between versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

/// Maps the two Long Packet Type bits to a packet kind (RFC 9000 §17.2, RFC 9369 §3.2).
pub(super) fn kind(version: u32, type_bits: u8) -> Kind {
    let bits = if version == QUIC_V2 {
        // v2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
        type_bits.wrapping_sub(1) & 0b11
    } else {
        type_bits & 0b11
    };
    match bits {
        0 => Kind::Initial,
        1 => Kind::ZeroRtt,
        2 => Kind::Handshake,
        _ => Kind::Retry,
    }
}

/// A parsed (still protected) long header.
#[derive(Clone, Copy, Debug)]
pub(super) struct LongHeader {
    /// QUIC version.
    pub(super) version: u32,
    /// Packet kind, from the type bits as the version numbers them.
    pub(super) kind: Kind,
    /// Destination connection ID.
    pub(super) dcid: ConnId,
    /// Source connection ID.
    pub(super) scid: ConnId,
    /// Offset of the packet number from the start of the packet.
    pub(super) pn_offset: usize,
    /// Offset just past the packet (pn_offset + Length).
    pub(super) end: usize,
}

// Long Header Packet {
//   Header Form (1) = 1,
//   Fixed Bit (1) = 1,
//   Long Packet Type (2),
//   Type-Specific Bits (4),
//   Version (32),
//   Destination Connection ID Length (8),
//   Destination Connection ID (0..160),
//   Source Connection ID Length (8),
//   Source Connection ID (0..160),
//   Type-Specific Payload (..),
// }
//
// Initial Packet {
//   ... long header with Long Packet Type = Initial (0 in v1, 1 in v2) ...
//   Token Length (i),
//   Token (..),
//   Length (i),
//   Packet Number (8..32),
//   Packet Payload (8..),
// }
//
// 0-RTT / Handshake Packet {
//   ... long header ...
//   Length (i),
//   Packet Number (8..32),
//   Packet Payload (8..),
// }
/// Parses the long header at the start of `buf` (only an Initial when `initial_only`); `Retry` packets are returned with `end` = `buf.len()`.
pub(super) fn parse_long_header(buf: &[u8], initial_only: bool) -> Result<LongHeader, QuicError> {
    let mut r = Reader::new(buf);
    let first = r.u8().ok_or(QuicError::Truncated)?;
    if first & 0x80 == 0 {
        return Err(QuicError::NotInitial);
    }
    let version = r.u32().ok_or(QuicError::Truncated)?;
    if version == 0 {
        // Version Negotiation (RFC 9000 §17.2.1).
        return Err(QuicError::NotInitial);
    }
    if initial_salt(version).is_none() && is_google_quic(version) {
        // Google QUIC (Q0xx, T0xx): its own framing and keys.
        return Err(QuicError::UnknownVersion(version));
    }
    if first & 0x40 == 0 {
        return Err(QuicError::NotInitial);
    }
    let kind = kind(version, (first >> 4) & 0b11);
    if initial_only && kind != Kind::Initial {
        return Err(QuicError::NotInitial);
    }
    let dcid = read_cid(&mut r)?;
    let scid = read_cid(&mut r)?;
    match kind {
        Kind::Retry => {
            return Ok(LongHeader {
                version,
                kind,
                dcid,
                scid,
                pn_offset: buf.len(),
                end: buf.len(),
            });
        }
        Kind::Initial => {
            r.varint_bytes().ok_or(QuicError::Truncated)?;
        }
        Kind::ZeroRtt | Kind::Handshake => {}
    }
    let length = r.varint().ok_or(QuicError::Truncated)?;
    let pn_offset = r.pos;
    // The packet number (1..4 bytes) plus the payload must hold the 16-byte
    // sample taken 4 bytes after the start of the packet number.
    if length < (4 + SAMPLE_LEN) as u64 {
        return Err(QuicError::BadLength);
    }
    let length = usize::try_from(length).map_err(|_| QuicError::Truncated)?;
    if length > r.remaining() {
        return Err(QuicError::Truncated);
    }
    Ok(LongHeader {
        version,
        kind,
        dcid,
        scid,
        pn_offset,
        end: pn_offset + length,
    })
}

/// Reads a length-prefixed connection ID of at most 20 bytes.
fn read_cid(r: &mut Reader<'_>) -> Result<ConnId, QuicError> {
    let len = usize::from(r.u8().ok_or(QuicError::Truncated)?);
    if len > MAX_CID_LEN {
        return Err(QuicError::Malformed("connection ID longer than 20 bytes"));
    }
    let bytes = r.take(len).ok_or(QuicError::Truncated)?;
    ConnId::new(bytes).ok_or(QuicError::Malformed("connection ID longer than 20 bytes"))
}

/// The connection IDs of a long-header packet of either side (Initial, 0-RTT, Handshake or
/// Retry; not Version Negotiation) and whether it is an Initial, read without removing any
/// protection: (destination, source, initial). None for a short header or a packet too short
/// to hold them.
pub fn long_header_ids(datagram: &[u8]) -> Option<(ConnId, ConnId, bool)> {
    let mut r = Reader::new(datagram);
    let first = r.u8()?;
    if first & 0xc0 != 0xc0 {
        return None;
    }
    let version = r.u32()?;
    if version == 0 || (initial_salt(version).is_none() && is_google_quic(version)) {
        return None;
    }
    let dcid = read_cid(&mut r).ok()?;
    let scid = read_cid(&mut r).ok()?;
    let initial = kind(version, (first >> 4) & 0b11) == Kind::Initial;
    Some((dcid, scid, initial))
}

/// Whether the datagram starts with a short header (RFC 9000 §17.3: form bit clear, fixed bit
/// set): a 1-RTT packet, sent only once the handshake gave its keys.
pub fn is_short_header(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|&b| b & 0xc0 == 0x40) && datagram.len() >= 21
}

/// Returns true if the datagram starts with what looks like a client Initial of a known version.
pub fn looks_like_client_initial(datagram: &[u8]) -> bool {
    let Some(&first) = datagram.first() else {
        return false;
    };
    if first & 0xc0 != 0xc0 {
        return false;
    }
    parse_long_header(datagram, true).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hex, A2_PROTECTED, RFC_DCID};
    use super::super::QUIC_V1;
    use super::*;

    #[test]
    fn parse_long_header_rfc9001_a2() {
        let p = hex(A2_PROTECTED);
        let h = parse_long_header(&p, true).unwrap();
        assert_eq!((h.version, h.kind), (1, Kind::Initial));
        assert_eq!(h.dcid.as_slice(), hex(RFC_DCID).as_slice());
        assert_eq!(h.scid.as_slice(), b"");
        // 1 + 4 + 1 + 8 + 1 + 1 (token length) + 2 (Length 0x449e: 1182 bytes follow).
        assert_eq!((h.pn_offset, h.end), (18, 1200));
    }

    #[test]
    fn long_header_ids_reads_both_ids_of_any_long_header() {
        let p = hex(A2_PROTECTED);
        let (d, s, initial) = long_header_ids(&p).unwrap();
        assert_eq!(d.as_slice(), hex(RFC_DCID).as_slice());
        assert_eq!(s.as_slice(), b"");
        assert!(initial);
        // A v1 Handshake packet (type bits 0b10) of a server: no Length needed for the ids.
        let mut h = vec![0xe0];
        h.extend_from_slice(&1u32.to_be_bytes());
        h.extend_from_slice(&[2, 7, 7, 3, 9, 9, 9]);
        let (d, s, initial) = long_header_ids(&h).unwrap();
        assert_eq!(
            (d.as_slice(), s.as_slice(), initial),
            (&[7, 7][..], &[9, 9, 9][..], false)
        );
        assert_eq!(long_header_ids(&h[..6]), None);
        // Short headers and Version Negotiation have none.
        assert_eq!(long_header_ids(&[0x40; 30]), None);
        assert_eq!(long_header_ids(&[0xc0, 0, 0, 0, 0, 0, 0]), None);
        assert!(is_short_header(&[0x41; 30]));
        assert!(!is_short_header(&p));
        assert!(!is_short_header(&[0x41; 5]));
    }

    #[test]
    fn kind_follows_the_version_s_numbering() {
        use Kind::*;
        for (bits, v1, v2) in [
            (0, Initial, Retry),
            (1, ZeroRtt, Initial),
            (2, Handshake, ZeroRtt),
            (3, Retry, Handshake),
        ] {
            assert_eq!(kind(QUIC_V1, bits), v1, "{bits}");
            assert_eq!(kind(QUIC_V2, bits), v2, "{bits}");
        }
    }

    #[test]
    fn parse_long_header_retry_runs_to_the_datagram_s_end() {
        // A v1 Retry (type bits 0b11) has no Length field.
        let mut p = vec![0xf0];
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[4, 1, 2, 3, 4, 0]);
        p.extend_from_slice(&[0xaa; 30]);
        let h = parse_long_header(&p, false).unwrap();
        assert_eq!((h.kind, h.end), (Kind::Retry, p.len()));
        assert_eq!(
            parse_long_header(&p, true).unwrap_err(),
            QuicError::NotInitial
        );
        assert!(!looks_like_client_initial(&p));
    }
}
