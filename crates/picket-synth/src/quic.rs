//! QUIC client Initials sealed as a client seals them (RFC 9000 §17.2.2, RFC 9001 §5, RFC 9369):
//! CRYPTO frames, the Initial keys of a Destination Connection ID, AEAD and header protection.
//! Written apart from Picket's opener so that each checks the other; it never opens a packet.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Aes128Gcm;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;

/// The version number of QUIC version 1 (RFC 9000).
pub const QUIC_V1: u32 = 0x0000_0001;

/// The version number of QUIC version 2 (RFC 9369).
pub const QUIC_V2: u32 = 0x6b33_43cf;

/// Google QUIC T050: TLS 1.3 in IETF-format Initials, with its own salt.
pub const GOOGLE_T050: u32 = 0x5430_3530;

/// Google QUIC T051: as T050, with another salt.
pub const GOOGLE_T051: u32 = 0x5430_3531;

/// Google QUIC Q050: QUIC crypto's CHLO in IETF-format Initials, with its own salt.
pub const GOOGLE_Q050: u32 = 0x5130_3530;

/// Why an Initial could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// No Initial salt is known for this version.
    UnknownVersion(u32),
    /// A connection ID longer than the 20 bytes a long header allows.
    ConnIdTooLong(usize),
    /// A packet number length outside 1..=4 bytes.
    PacketNumberLength(usize),
    /// A packet number that does not fit its length.
    PacketNumberTooLarge {
        /// The packet number.
        pn: u32,
        /// Its length in bytes.
        pn_len: usize,
    },
    /// A Length field (packet number, payload and tag) of 16384 or more: more than the 2-byte
    /// varint this sealer writes.
    TooLong(usize),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVersion(v) => write!(f, "no Initial salt for QUIC version {v:#010x}"),
            Self::ConnIdTooLong(n) => write!(f, "connection ID of {n} bytes (at most 20)"),
            Self::PacketNumberLength(n) => write!(f, "packet number length {n} (1 to 4)"),
            Self::PacketNumberTooLarge { pn, pn_len } => {
                write!(f, "packet number {pn} does not fit {pn_len} bytes")
            }
            Self::TooLong(n) => write!(f, "Length {n} does not fit a 2-byte varint"),
        }
    }
}

impl std::error::Error for SealError {}

/// Decodes a hex salt as the RFCs print it.
fn salt(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The Initial salt and the HKDF label prefix ("quic" or "quicv2") of a version.
fn version_keys(version: u32) -> Option<(Vec<u8>, &'static str)> {
    // RFC 9001 §5.2; draft-33 and -34 kept it.
    const V1: &str = "38762cf7f55934b34d179ae6a4c80cadccbb7f0a";
    // RFC 9369 §3.3.1.
    const V2: &str = "0dede3def700a6db819381be6e269dcbf9bd2ed9";
    // draft-ietf-quic-tls-29 §5.2, used up to -32.
    const DRAFT_29: &str = "afbfec289993d24c9e9786f19c6111e04390a899";
    // draft-ietf-quic-tls-23 §5.2, used up to -28.
    const DRAFT_23: &str = "c3eef712c72ebb5a11a7d2432bb46365bef9f502";
    // draft-ietf-quic-tls-22 §5.2.
    const DRAFT_22: &str = "7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a";
    // Chromium quiche, quic_crypto_utils.cc kT050Salt.
    const T050: &str = "7ff579e5acd072915580304c43a2367c60488310";
    // The same file's kT051Salt and kQ050Salt.
    const T051: &str = "7a4edef4e7ccee5fa4506c19124fc8ccda6e033d";
    const Q050: &str = "504574efd066fe2f9d945cfcdbd3a7f0d3b56b45";
    let (hex, prefix) = match version {
        QUIC_V1 | 0xff00_0021 | 0xff00_0022 => (V1, "quic"),
        QUIC_V2 => (V2, "quicv2"),
        0xff00_001d..=0xff00_0020 => (DRAFT_29, "quic"),
        0xff00_0017..=0xff00_001c => (DRAFT_23, "quic"),
        // Facebook mvfst: 0xfaceb001 speaks draft-22, 0xfaceb002 and 0xfaceb00e draft-27.
        0xff00_0016 | 0xface_b001 => (DRAFT_22, "quic"),
        0xface_b002 | 0xface_b00e => (DRAFT_23, "quic"),
        GOOGLE_T050 => (T050, "quic"),
        GOOGLE_T051 => (T051, "quic"),
        GOOGLE_Q050 => (Q050, "quic"),
        _ => return None,
    };
    Some((salt(hex), prefix))
}

/// HKDF-Expand-Label(secret, label, "", len) of TLS 1.3 (RFC 8446 §7.1): the HkdfLabel
/// structure built as bytes, then expanded.
fn expand_label(prk: &[u8], label: &str, len: usize) -> Vec<u8> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0); // empty context
    let mut out = vec![0; len];
    Hkdf::<Sha256>::from_prk(prk)
        .expect("a SHA-256 PRK is 32 bytes")
        .expand(&info, &mut out)
        .expect("at most 32 bytes are expanded");
    out
}

/// The client's Initial protection keys: AEAD key, IV and header-protection key.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientKeys {
    /// AES-128-GCM key.
    pub key: [u8; 16],
    /// AEAD IV, XORed with the packet number into the nonce.
    pub iv: [u8; 12],
    /// AES-128 header-protection key.
    pub hp: [u8; 16],
}

impl ClientKeys {
    /// Derives the client Initial keys of `dcid` under `version` (RFC 9001 §5.2, RFC 9369 §3.3).
    pub fn derive(version: u32, dcid: &[u8]) -> Result<Self, SealError> {
        let (salt, prefix) = version_keys(version).ok_or(SealError::UnknownVersion(version))?;
        let (initial_secret, _) = Hkdf::<Sha256>::extract(Some(&salt), dcid);
        let client = expand_label(&initial_secret, "client in", 32);
        let take = |label: &str, out: &mut [u8]| {
            out.copy_from_slice(&expand_label(
                &client,
                &format!("{prefix} {label}"),
                out.len(),
            ))
        };
        let mut keys = Self {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        };
        take("key", &mut keys.key);
        take("iv", &mut keys.iv);
        take("hp", &mut keys.hp);
        Ok(keys)
    }

    /// The header-protection mask of a 16-byte sample: AES-128-ECB(hp, sample) (RFC 9001 §5.4.3).
    pub fn mask(&self, sample: &[u8; 16]) -> [u8; 16] {
        let mut block = (*sample).into();
        Aes128::new(&self.hp.into()).encrypt_block(&mut block);
        block.into()
    }
}

/// Appends a QUIC variable-length integer (RFC 9000 §16) in its shortest form; values above
/// 2^62 - 1 are written as 2^62 - 1.
pub fn put_varint(v: u64, out: &mut Vec<u8>) {
    let v = v.min((1 << 62) - 1);
    let (len, tag) = match v {
        0..=0x3f => (1, 0x00),
        0x40..=0x3fff => (2, 0x40),
        0x4000..=0x3fff_ffff => (4, 0x80),
        _ => (8, 0xc0),
    };
    let bytes = v.to_be_bytes();
    let start = out.len();
    out.extend_from_slice(&bytes[8 - len..]);
    out[start] |= tag;
}

/// Appends a CRYPTO frame (RFC 9000 §19.6): type 0x06, offset, length, data.
pub fn crypto_frame(offset: u64, data: &[u8], out: &mut Vec<u8>) {
    out.push(0x06);
    put_varint(offset, out);
    put_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// A client Initial to seal: the header fields a client picks.
#[derive(Clone, Copy, Debug)]
pub struct Initial<'a> {
    /// QUIC version of the long header.
    pub version: u32,
    /// Destination connection ID in the header.
    pub dcid: &'a [u8],
    /// The DCID the keys come from, when not `dcid`: the client's first DCID, which keeps the
    /// keys after a server picked another ID.
    pub key_dcid: Option<&'a [u8]>,
    /// Source connection ID.
    pub scid: &'a [u8],
    /// Retry or NEW_TOKEN token.
    pub token: &'a [u8],
    /// Packet number, sent truncated to `pn_len` bytes.
    pub pn: u32,
    /// Packet number length, 1 to 4 bytes.
    pub pn_len: usize,
    /// Smallest size of the whole packet, reached with PADDING (1200 for a real client's
    /// datagram).
    pub min_len: usize,
}

impl<'a> Initial<'a> {
    /// An Initial of `version` to `dcid`: no SCID or token, packet number 0 in 2 bytes, padded
    /// to 1200 bytes.
    pub fn new(version: u32, dcid: &'a [u8]) -> Self {
        Self {
            version,
            dcid,
            key_dcid: None,
            scid: &[],
            token: &[],
            pn: 0,
            pn_len: 2,
            min_len: 1200,
        }
    }

    /// Seals `frames` into a protected packet: the long header with a 2-byte Length, the packet
    /// number, the frames padded with PADDING (at least to `min_len`, and enough for the
    /// header-protection sample), the AEAD tag, then header protection.
    pub fn seal(&self, frames: &[u8]) -> Result<Vec<u8>, SealError> {
        let keys = ClientKeys::derive(self.version, self.key_dcid.unwrap_or(self.dcid))?;
        if !(1..=4).contains(&self.pn_len) {
            return Err(SealError::PacketNumberLength(self.pn_len));
        }
        if self.pn_len < 4 && self.pn >> (8 * self.pn_len) != 0 {
            return Err(SealError::PacketNumberTooLarge {
                pn: self.pn,
                pn_len: self.pn_len,
            });
        }
        for id in [self.dcid, self.scid] {
            if id.len() > 20 {
                return Err(SealError::ConnIdTooLong(id.len()));
            }
        }
        // Long Header: form and fixed bits, Initial type (0b01 in v2, 0b00 elsewhere), the
        // packet number length in the low bits.
        let initial_type: u8 = if self.version == QUIC_V2 { 0b01 } else { 0b00 };
        let mut p = vec![0xc0 | (initial_type << 4) | (self.pn_len as u8 - 1)];
        p.extend_from_slice(&self.version.to_be_bytes());
        for id in [self.dcid, self.scid] {
            p.push(id.len() as u8);
            p.extend_from_slice(id);
        }
        put_varint(self.token.len() as u64, &mut p);
        p.extend_from_slice(self.token);
        let pn_offset = p.len() + 2;
        let header_len = pn_offset + self.pn_len;
        // The sample starts 4 bytes after the packet number's start and is 16 bytes long.
        let payload_len = frames
            .len()
            .max(4 - self.pn_len)
            .max(self.min_len.saturating_sub(header_len + 16));
        let length = self.pn_len + payload_len + 16;
        if length >= 1 << 14 {
            return Err(SealError::TooLong(length));
        }
        p.extend_from_slice(&(0x4000 | length as u16).to_be_bytes());
        p.extend_from_slice(&self.pn.to_be_bytes()[4 - self.pn_len..]);
        let mut plaintext = frames.to_vec();
        plaintext.resize(payload_len, 0x00);
        let mut nonce = keys.iv;
        for (n, b) in nonce[4..].iter_mut().zip(u64::from(self.pn).to_be_bytes()) {
            *n ^= b;
        }
        let sealed = Aes128Gcm::new(&keys.key.into())
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &plaintext,
                    aad: &p,
                },
            )
            .expect("AES-GCM seals any payload below 64 GiB");
        p.extend_from_slice(&sealed);
        let mut sample = [0; 16];
        sample.copy_from_slice(&p[pn_offset + 4..pn_offset + 20]);
        let mask = keys.mask(&sample);
        p[0] ^= mask[0] & 0x0f;
        for (b, m) in p[pn_offset..header_len].iter_mut().zip(&mask[1..]) {
            *b ^= m;
        }
        Ok(p)
    }
}

/// Seals a client Initial of `version` to `dcid` from `scid`, no token: packet number `pn` in
/// `pn_len` bytes, `frames` padded to at least `min_len` bytes (see [`Initial::seal`]).
pub fn seal_client_initial(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    pn_len: usize,
    frames: &[u8],
    min_len: usize,
) -> Result<Vec<u8>, SealError> {
    Initial {
        version,
        dcid,
        key_dcid: None,
        scid,
        token: &[],
        pn,
        pn_len,
        min_len,
    }
    .seal(frames)
}

/// Google QUIC crypto's client hello (CHLO) with the given (tag, value) pairs in order: "CHLO",
/// the tag count and two bytes of padding (little-endian), each tag with its value's end offset,
/// then the values.
pub fn gquic_chlo(tags: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
    let mut m = b"CHLO".to_vec();
    m.extend((tags.len() as u16).to_le_bytes());
    m.extend([0, 0]);
    let mut end = 0u32;
    for (t, v) in tags {
        end += v.len() as u32;
        m.extend(*t);
        m.extend(end.to_le_bytes());
    }
    for (_, v) in tags {
        m.extend(*v);
    }
    m
}

/// A client's plaintext Google QUIC packet of `version` ("Q024" … "Q046") carrying `data` on the
/// handshake stream (1) at `offset`, padded to 1350 bytes: the public header with an 8-byte
/// connection ID up to Q043, the long header of Q046 from Q044; a zero message hash; numbers
/// little-endian before Q039, big-endian from it.
pub fn gquic_plain_packet(version: &[u8; 4], offset: u16, data: &[u8]) -> Vec<u8> {
    let n: u32 = std::str::from_utf8(&version[1..])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let mut p = Vec::new();
    if n <= 43 {
        p.push(0x09); // version present, 8-byte CID, 1-byte packet number
        p.extend([0xb2, 0xde, 0x5d, 0xf1, 0x4f, 0x55, 0x45, 0xeb]);
        p.extend(version);
        p.push(1);
    } else {
        p.push(0xc3); // long header, Initial, 4-byte packet number
        p.extend(version);
        p.push(0x50); // an 8-byte DCID, no SCID
        p.extend([0xb4, 0xa4, 0xf9, 0xf5, 0xf4, 0x2e, 0xdd, 0x39]);
        p.extend([0, 0, 0, 1]);
    }
    p.extend([0; 12]); // message hash
    if n < 34 {
        p.push(0x01); // private flags
    }
    let num = |v: u16| {
        if n >= 39 {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    if offset == 0 {
        p.extend([0xa0, 0x01]);
    } else {
        p.extend([0xa4, 0x01]);
        p.extend(num(offset));
    }
    p.extend(num(data.len() as u16));
    p.extend(data);
    p.resize(p.len().max(1350), 0);
    p
}

/// A CRYPTO frame as Google QUIC's Q050, T050 and T051 number it (0x08; IETF varints after).
pub fn gquic_crypto_frame(offset: u64, data: &[u8], out: &mut Vec<u8>) {
    out.push(0x08);
    put_varint(offset, out);
    put_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        salt(&s)
    }

    const RFC_DCID: &str = "8394c8f03e515708";

    #[test]
    fn client_keys_rfc9001_a1() {
        let k = ClientKeys::derive(QUIC_V1, &hex(RFC_DCID)).unwrap();
        assert_eq!(k.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(k.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(k.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn client_keys_rfc9369_a1() {
        let k = ClientKeys::derive(QUIC_V2, &hex(RFC_DCID)).unwrap();
        assert_eq!(k.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(k.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(k.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn mask_rfc9001_a2() {
        // A.2: sample d1b1c98dd7689fb8ec11d242b123dc9b gives mask 437b9aec36.
        let k = ClientKeys::derive(QUIC_V1, &hex(RFC_DCID)).unwrap();
        let sample: [u8; 16] = hex("d1b1c98dd7689fb8ec11d242b123dc9b").try_into().unwrap();
        assert_eq!(k.mask(&sample)[..5].to_vec(), hex("437b9aec36"));
    }

    // RFC 9001 Appendix A.2: the CRYPTO frame of the client Initial (before PADDING).
    const A2_CRYPTO_FRAME: &str = "
        060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
        04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
        616d706c652e636f6dff01000100000a00080006001d00170018001000070005
        04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
        baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
        0d0010000e0403050306030203080408050806002d00020101001c0002400100
        3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
        75300901100f088394c8f03e51570806048000ffff";

    #[test]
    fn seal_rfc9001_a2() {
        // A.2: the protected header, the sample that follows it and the tag at the end (the
        // whole packet, and its v2 twin, are Picket's opener tests).
        let frame = hex(A2_CRYPTO_FRAME);
        let p = seal_client_initial(QUIC_V1, &hex(RFC_DCID), &[], 2, 4, &frame, 1200).unwrap();
        assert_eq!(p.len(), 1200);
        assert_eq!(
            p[..22],
            hex("c000000001088394c8f03e5157080000449e7b9aec34")[..]
        );
        assert_eq!(p[22..38], hex("d1b1c98dd7689fb8ec11d242b123dc9b")[..]);
        assert_eq!(p[1184..], hex("e221af44860018ab0856972e194cd934")[..]);
    }

    #[test]
    fn seal_pads_and_fits_the_sample() {
        for pn_len in 1..=4 {
            let p = seal_client_initial(QUIC_V1, &[], &[], 0, pn_len, &[], 0).unwrap();
            // 8-byte header, 2-byte Length, the packet number and 4 - pn_len bytes, the tag.
            assert_eq!(p.len(), 8 + 2 + 4 + 16);
            assert_eq!(u16::from_be_bytes([p[8], p[9]]), 0x4000 | (4 + 16));
        }
        let p = seal_client_initial(QUIC_V2, &[9; 20], &[8; 20], 0, 1, &[], 1200).unwrap();
        assert_eq!((p.len(), p[0] & 0xf0), (1200, 0xd0));
        let token = Initial {
            token: &[0x5a; 100],
            ..Initial::new(QUIC_V1, b"abcd")
        };
        let p = token.seal(b"x").unwrap();
        assert_eq!((p.len(), p[11..13].to_vec()), (1200, vec![0x40, 100]));
    }

    #[test]
    fn seal_key_dcid_changes_only_the_keys() {
        let plain = Initial::new(QUIC_V1, &[1; 8]).seal(b"x").unwrap();
        let other = Initial {
            key_dcid: Some(&[2; 8]),
            ..Initial::new(QUIC_V1, &[1; 8])
        };
        let p = other.seal(b"x").unwrap();
        assert_eq!(p.len(), plain.len());
        assert_eq!(p[1..18], plain[1..18]);
        assert_ne!(p[20..], plain[20..]);
        assert_eq!(
            Initial {
                key_dcid: Some(&[1; 8]),
                ..other
            }
            .seal(b"x"),
            Ok(plain)
        );
    }

    #[test]
    fn seal_refuses_what_a_header_cannot_say() {
        assert_eq!(
            seal_client_initial(0x0a0a_0a0a, &[1], &[], 0, 1, &[], 1200),
            Err(SealError::UnknownVersion(0x0a0a_0a0a))
        );
        assert_eq!(
            seal_client_initial(QUIC_V1, &[0; 21], &[], 0, 1, &[], 0),
            Err(SealError::ConnIdTooLong(21))
        );
        assert_eq!(
            seal_client_initial(QUIC_V1, &[0; 8], &[], 256, 1, &[], 0),
            Err(SealError::PacketNumberTooLarge { pn: 256, pn_len: 1 })
        );
        assert_eq!(
            seal_client_initial(QUIC_V1, &[0; 8], &[], 0, 5, &[], 0),
            Err(SealError::PacketNumberLength(5))
        );
        assert!(matches!(
            seal_client_initial(QUIC_V1, &[0; 8], &[], 0, 1, &[], 20_000),
            Err(SealError::TooLong(_))
        ));
        assert!(seal_client_initial(QUIC_V1, &[0; 8], &[], u32::MAX, 4, &[], 0).is_ok());
    }

    #[test]
    fn crypto_frame_varints() {
        let mut out = Vec::new();
        crypto_frame(0, b"", &mut out);
        assert_eq!(out, hex("060000"));
        for (off, enc) in [
            (63u64, "3f"),
            (64, "4040"),
            (16383, "7fff"),
            (16384, "80004000"),
            (1 << 30, "c000000040000000"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            let mut out = Vec::new();
            crypto_frame(off, b"x", &mut out);
            let mut want = vec![6];
            want.extend(hex(enc));
            want.extend_from_slice(&[1, b'x']);
            assert_eq!(out, want, "{off}");
        }
        // RFC 9000 §A.1 examples, in their shortest forms.
        for (v, enc) in [
            (151_288_809_941_952_652u64, "c2197c5eff14e88c"),
            (494_878_333, "9d7f3e7d"),
            (15_293, "7bbd"),
            (37, "25"),
        ] {
            let mut out = Vec::new();
            put_varint(v, &mut out);
            assert_eq!(out, hex(enc), "{v}");
        }
    }
}
