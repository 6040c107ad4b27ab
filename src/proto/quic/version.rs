//! The QUIC versions whose client Initials can be opened: their numbers, Initial salts and key
//! labels (RFC 9001 §5.2, RFC 9369 §3.3, the drafts, mvfst, Google Q050, T050 and T051). Data only; never
//! parses a packet.

/// The version number of QUIC version 1 (RFC 9000).
pub const QUIC_V1: u32 = 0x0000_0001;

/// The version number of QUIC version 2 (RFC 9369).
pub const QUIC_V2: u32 = 0x6b33_43cf;

/// RFC 9001 §5.2 initial salt for QUIC v1.
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// RFC 9369 §3.3.1 initial salt for QUIC v2.
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// Initial salt of draft-ietf-quic-tls-29 to -32.
const SALT_DRAFT_29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];

/// Initial salt of draft-ietf-quic-tls-23 to -28.
const SALT_DRAFT_23: [u8; 20] = [
    0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65,
    0xbe, 0xf9, 0xf5, 0x02,
];

/// Initial salt of draft-ietf-quic-tls-22 (also Facebook mvfst's 0xfaceb001).
const SALT_DRAFT_22: [u8; 20] = [
    0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51, 0x9e, 0xbd,
    0x7a, 0x02, 0x64, 0x4a,
];

/// Initial salt of Google QUIC T050 (QUIC crypto replaced by TLS 1.3 in the IETF packet
/// format), from Chromium's net/third_party/quiche quic_crypto_utils (kT050Salt).
const SALT_T050: [u8; 20] = [
    0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c,
    0x60, 0x48, 0x83, 0x10,
];

/// Initial salt of Google QUIC T051, from the same file (kT051Salt).
const SALT_T051: [u8; 20] = [
    0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc,
    0xda, 0x6e, 0x03, 0x3d,
];

/// Initial salt of Google QUIC Q050 (QUIC crypto's CHLO in IETF-format Initials), from the
/// same file (kQ050Salt).
const SALT_Q050: [u8; 20] = [
    0x50, 0x45, 0x74, 0xef, 0xd0, 0x66, 0xfe, 0x2f, 0x9d, 0x94, 0x5c, 0xfc, 0xdb, 0xd3, 0xa7, 0xf0,
    0xd3, 0xb5, 0x6b, 0x45,
];

/// Google QUIC T050.
pub(super) const T050: u32 = 0x5430_3530;
/// Google QUIC T051.
pub(super) const T051: u32 = 0x5430_3531;

/// Salts tried, in this order, for a version this module does not know (a GREASE version, a
/// vendor's experiment): the AEAD tag tells which one the client used, so a wrong guess can
/// never decrypt.
pub(super) const TRIAL_SALTS: [&[u8; 20]; 4] =
    [&SALT_V1, &SALT_DRAFT_29, &SALT_DRAFT_23, &SALT_DRAFT_22];

/// HKDF labels of QUIC v1 and the drafts.
pub(super) const LABELS_V1: Labels = Labels {
    key: "quic key",
    iv: "quic iv",
    hp: "quic hp",
};

/// HKDF labels of QUIC v2 (RFC 9369 §3.3.2).
const LABELS_V2: Labels = Labels {
    key: "quicv2 key",
    iv: "quicv2 iv",
    hp: "quicv2 hp",
};

/// The HKDF-Expand-Label labels (without the "tls13 " prefix) used to derive packet protection keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    /// Label of the AEAD key, e.g. "quic key".
    pub key: &'static str,
    /// Label of the AEAD IV, e.g. "quic iv".
    pub iv: &'static str,
    /// Label of the header-protection key, e.g. "quic hp".
    pub hp: &'static str,
}

/// QUIC versions whose Initial protection is known: returns the initial salt and key labels, or `None`.
pub fn initial_salt(version: u32) -> Option<(&'static [u8], Labels)> {
    match version {
        QUIC_V1 => Some((&SALT_V1, LABELS_V1)),
        QUIC_V2 => Some((&SALT_V2, LABELS_V2)),
        // draft-33 and -34 kept the v1 salt.
        0xff00_0021..=0xff00_0022 => Some((&SALT_V1, LABELS_V1)),
        0xff00_001d..=0xff00_0020 => Some((&SALT_DRAFT_29, LABELS_V1)),
        0xff00_0017..=0xff00_001c => Some((&SALT_DRAFT_23, LABELS_V1)),
        // Facebook mvfst: 0xfaceb001 is draft-22, 0xfaceb002 and 0xfaceb00e draft-27 framing.
        0xff00_0016 | 0xface_b001 => Some((&SALT_DRAFT_22, LABELS_V1)),
        0xface_b002 | 0xface_b00e => Some((&SALT_DRAFT_23, LABELS_V1)),
        // Google QUIC T050 and T051: TLS 1.3 in IETF-format Initials, each its own salt;
        // Q050: the same Initials around QUIC crypto's CHLO.
        T050 => Some((&SALT_T050, LABELS_V1)),
        T051 => Some((&SALT_T051, LABELS_V1)),
        super::gquic::Q050 => Some((&SALT_Q050, LABELS_V1)),
        _ => None,
    }
}

/// Google QUIC versions are ASCII: 'Q' or 'T' and three digits.
pub(super) fn is_google_quic(version: u32) -> bool {
    let b = version.to_be_bytes();
    matches!(b[0], b'Q' | b'T') && b[1..].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_salt_versions() {
        assert_eq!(initial_salt(QUIC_V1).unwrap().0, &SALT_V1);
        assert_eq!(initial_salt(QUIC_V2).unwrap().1, LABELS_V2);
        for v in 0xff00_001du32..=0xff00_0020 {
            assert_eq!(initial_salt(v).unwrap().0, &SALT_DRAFT_29);
        }
        for v in 0xff00_0017u32..=0xff00_001c {
            assert_eq!(initial_salt(v).unwrap().0, &SALT_DRAFT_23);
        }
        assert_eq!(initial_salt(0xff00_0021).unwrap().0, &SALT_V1);
        assert_eq!(initial_salt(0xface_b001).unwrap().0, &SALT_DRAFT_22);
        assert_eq!(initial_salt(0xface_b002).unwrap().0, &SALT_DRAFT_23);
        // Google QUIC Q049 (never deployed), grease: unknown (an unknown IETF-style version is opened by trying
        // the known salts; see client_initials_unknown_version).
        assert_eq!(initial_salt(0x5430_3530).unwrap().0, &SALT_T050);
        assert_eq!(initial_salt(0x5430_3531).unwrap().0, &SALT_T051);
        assert_eq!(initial_salt(0x5130_3530).unwrap().0, &SALT_Q050);
        for v in [0x5130_3439u32, 0x0a0a_0a0a, 0] {
            assert!(initial_salt(v).is_none(), "{v:#x}");
        }
    }
}
