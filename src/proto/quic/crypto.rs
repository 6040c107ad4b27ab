//! Initial packet protection (RFC 9001 §5): the client keys derived from a Destination
//! Connection ID, header-protection removal and AEAD opening. Only the public Initial keys;
//! never seals, never touches Handshake or 1-RTT keys.

use super::header::LongHeader;
use super::version::{initial_salt, Labels};
use super::QuicError;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

/// Length of the AES-128-GCM authentication tag.
const TAG_LEN: usize = 16;

/// Length of the header-protection sample (RFC 9001 §5.4.2).
pub(super) const SAMPLE_LEN: usize = 16;

/// The client's Initial packet protection keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Keys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context:
///
/// struct {
///     uint16 length = Length;
///     opaque label<7..255> = "tls13 " + Label;
///     opaque context<0..255> = Context;
/// } HkdfLabel;
fn expand_label(hk: &Hkdf<Sha256>, label: &str, out: &mut [u8]) -> Result<(), QuicError> {
    const BAD: QuicError = QuicError::Malformed("key derivation");
    let len = u16::try_from(out.len()).map_err(|_| BAD)?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).map_err(|_| BAD)?];
    hk.expand_multi_info(
        &[&len, &label_len, b"tls13 ", label.as_bytes(), &[0u8]],
        out,
    )
    .map_err(|_| BAD)
}

/// client_initial_secret = HKDF-Expand-Label(HKDF-Extract(salt, dcid), "client in", "", 32).
fn client_initial_secret(salt: &[u8], dcid: &[u8]) -> Result<[u8; 32], QuicError> {
    let hk = Hkdf::<Sha256>::new(Some(salt), dcid);
    let mut secret = [0u8; 32];
    expand_label(&hk, "client in", &mut secret)?;
    Ok(secret)
}

/// Derives the client Initial key, IV and header-protection key (RFC 9001 §5.1-5.2).
pub(super) fn client_keys(version: u32, dcid: &[u8]) -> Result<Keys, QuicError> {
    let (salt, labels) = initial_salt(version).ok_or(QuicError::UnknownVersion(version))?;
    keys_from(salt, labels, dcid)
}

/// Derives client Initial keys from a salt and labels.
pub(super) fn keys_from(salt: &[u8], labels: Labels, dcid: &[u8]) -> Result<Keys, QuicError> {
    let secret = client_initial_secret(salt, dcid)?;
    let hk =
        Hkdf::<Sha256>::from_prk(&secret).map_err(|_| QuicError::Malformed("key derivation"))?;
    let mut keys = Keys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&hk, labels.key, &mut keys.key)?;
    expand_label(&hk, labels.iv, &mut keys.iv)?;
    expand_label(&hk, labels.hp, &mut keys.hp)?;
    Ok(keys)
}

/// Computes the header-protection mask AES-128-ECB(hp, sample) (RFC 9001 §5.4.3).
fn hp_mask(hp: &[u8; 16], sample: [u8; SAMPLE_LEN]) -> [u8; 16] {
    let cipher = Aes128::new(&(*hp).into());
    let mut block = sample.into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// nonce = iv XOR packet number, left-padded to the IV length (RFC 9001 §5.3).
fn nonce(iv: &[u8; 12], pn: u64) -> [u8; 12] {
    let mut n = *iv;
    for (b, p) in n.iter_mut().skip(4).zip(pn.to_be_bytes()) {
        *b ^= p;
    }
    n
}

/// Removes header protection and decrypts one Initial packet `packet` (exactly
/// `h.end` bytes), leaving `header || plaintext` in `scratch`; returns the header length.
pub(super) fn open(
    packet: &[u8],
    h: &LongHeader,
    keys: &Keys,
    scratch: &mut Vec<u8>,
) -> Result<usize, QuicError> {
    let sample_start = h.pn_offset + 4;
    let sample: [u8; SAMPLE_LEN] = packet
        .get(sample_start..sample_start + SAMPLE_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::BadLength)?;
    let mask = hp_mask(&keys.hp, sample);
    let first = packet.first().ok_or(QuicError::Truncated)? ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 0x03) + 1;
    let header_len = h.pn_offset + pn_len;
    let body_end = packet
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(QuicError::BadLength)?;
    let header = packet.get(..header_len).ok_or(QuicError::Truncated)?;
    let ciphertext = packet
        .get(header_len..body_end)
        .ok_or(QuicError::BadLength)?;
    let tag: [u8; TAG_LEN] = packet
        .get(body_end..)
        .and_then(|t| t.try_into().ok())
        .ok_or(QuicError::BadLength)?;

    scratch.clear();
    scratch.extend_from_slice(header);
    scratch.extend_from_slice(ciphertext);
    let (aad, body) = scratch.split_at_mut(header_len);
    let mut pn = 0u64;
    if let Some(b) = aad.first_mut() {
        *b = first;
    }
    for (b, m) in aad.iter_mut().skip(h.pn_offset).zip(mask.iter().skip(1)) {
        *b ^= m;
        pn = (pn << 8) | u64::from(*b);
    }
    let cipher = Aes128Gcm::new(&keys.key.into());
    cipher
        .decrypt_in_place_detached(
            &Nonce::from(nonce(&keys.iv, pn)),
            aad,
            body,
            &Tag::from(tag),
        )
        .map_err(|_| QuicError::Decrypt)?;
    Ok(header_len)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hex, RFC_DCID};
    use super::super::{QUIC_V1, QUIC_V2};
    use super::*;

    #[test]
    fn client_keys_rfc9001_a1() {
        let dcid = hex(RFC_DCID);
        let secret = client_initial_secret(initial_salt(QUIC_V1).unwrap().0, &dcid).unwrap();
        assert_eq!(
            secret.to_vec(),
            hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
        );
        let k = client_keys(QUIC_V1, &dcid).unwrap();
        assert_eq!(k.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(k.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(k.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn client_keys_rfc9369_a1() {
        let dcid = hex(RFC_DCID);
        let secret = client_initial_secret(initial_salt(QUIC_V2).unwrap().0, &dcid).unwrap();
        assert_eq!(
            secret.to_vec(),
            hex("14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b")
        );
        let k = client_keys(QUIC_V2, &dcid).unwrap();
        assert_eq!(k.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(k.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(k.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn hp_mask_rfc9001_a2() {
        // A.2: sample d1b1c98dd7689fb8ec11d242b123dc9b gives mask 437b9aec36.
        let k = client_keys(QUIC_V1, &hex(RFC_DCID)).unwrap();
        let sample: [u8; 16] = hex("d1b1c98dd7689fb8ec11d242b123dc9b").try_into().unwrap();
        assert_eq!(hp_mask(&k.hp, sample)[..5].to_vec(), hex("437b9aec36"));
    }
}
