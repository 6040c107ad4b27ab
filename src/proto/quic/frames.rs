//! The frames of a decrypted client Initial (RFC 9000 §12.4, §19): PADDING, PING, ACK, CRYPTO
//! and CONNECTION_CLOSE, walked to hand CRYPTO data on. Never reorders or keeps CRYPTO data.

use super::reader::{Reader, VARINT_MAX};
use super::QuicError;

// Frames allowed in a client Initial (RFC 9000 §12.4, §19):
//
// PADDING Frame { Type (i) = 0x00 }
// PING Frame { Type (i) = 0x01 }
// ACK Frame {
//   Type (i) = 0x02..0x03,
//   Largest Acknowledged (i),
//   ACK Delay (i),
//   ACK Range Count (i),
//   First ACK Range (i),
//   ACK Range (..) ...,          // ACK Range { Gap (i), ACK Range Length (i) }
//   [ECN Counts (..)],           // type 0x03: ECT0 Count (i), ECT1 Count (i), ECN-CE Count (i)
// }
// CRYPTO Frame {
//   Type (i) = 0x06,
//   Offset (i),
//   Length (i),
//   Crypto Data (..),
// }
// CONNECTION_CLOSE Frame {
//   Type (i) = 0x1c,
//   Error Code (i),
//   Frame Type (i),
//   Reason Phrase Length (i),
//   Reason Phrase (..),
// }
/// CRYPTO frame type: 0x06 in QUIC v1, v2 and the late drafts; Google's Q050, T050 and T051,
/// which keep gQUIC's frame numbers, have it as 0x08.
pub(super) fn crypto_frame_type(version: u32) -> u8 {
    use super::version::{T050, T051};
    if matches!(version, T050 | T051 | super::gquic::Q050) {
        0x08
    } else {
        0x06
    }
}

/// Walks the frames of a decrypted payload, handing CRYPTO data (frames of type `crypto`, see
/// [`crypto_frame_type`]) to `on_crypto`; stops quietly at an unexpected frame type.
pub(super) fn walk_frames(
    payload: &[u8],
    crypto: u8,
    on_crypto: &mut impl FnMut(u64, &[u8]),
) -> Result<(), QuicError> {
    const TRUNC: QuicError = QuicError::Malformed("truncated frame");
    let mut r = Reader::new(payload);
    while let Some(ty) = r.u8() {
        match ty {
            0x00 => r.skip_zeros(),
            0x01 => {}
            0x02 | 0x03 => {
                r.varint().ok_or(TRUNC)?; // Largest Acknowledged
                r.varint().ok_or(TRUNC)?; // ACK Delay
                let ranges = r.varint().ok_or(TRUNC)?;
                r.varint().ok_or(TRUNC)?; // First ACK Range
                                          // Each range takes at least two bytes, so this loop ends after
                                          // at most payload.len() / 2 iterations.
                for _ in 0..ranges {
                    r.varint().ok_or(TRUNC)?; // Gap
                    r.varint().ok_or(TRUNC)?; // ACK Range Length
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        r.varint().ok_or(TRUNC)?;
                    }
                }
            }
            t if t == crypto => {
                let offset = r.varint().ok_or(TRUNC)?;
                let data = r.varint_bytes().ok_or(TRUNC)?;
                let end = offset.checked_add(data.len() as u64);
                if end.is_none_or(|e| e > VARINT_MAX) {
                    return Err(QuicError::Malformed("CRYPTO frame beyond 2^62"));
                }
                on_crypto(offset, data);
            }
            0x1c => {
                r.varint().ok_or(TRUNC)?; // Error Code
                r.varint().ok_or(TRUNC)?; // Frame Type
                r.varint_bytes().ok_or(TRUNC)?; // Reason Phrase
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fuzz_iters, hex, Rng};
    use super::super::{client_initials, QuicError, QUIC_V1};
    use super::*;
    use picket_synth::quic::seal_client_initial;

    #[test]
    fn walk_frames_cases() {
        let mut got = Vec::new();
        let mut cb = |o: u64, d: &[u8]| got.push((o, d.to_vec()));
        // ACK with two extra ranges, then CRYPTO with a 2-byte offset, then an unknown frame.
        let payload = hex("0002 0a 00 02 01 0101 0101 06 4102 03 616263 08 06 00 01 ff");
        walk_frames(&payload, 0x06, &mut cb).unwrap();
        assert_eq!(got, vec![(0x102, b"abc".to_vec())]);
        // Truncated frames are malformed.
        for bad in [
            "06 00 05 6162",
            "02 00",
            "03 00 00 00 00 00 00",
            "1c 00 00 05 61",
            "06 40",
        ] {
            assert_eq!(
                walk_frames(&hex(bad), 0x06, &mut |_, _| {}),
                Err(QuicError::Malformed("truncated frame")),
                "{bad}"
            );
        }
        // A CRYPTO frame running past 2^62 is malformed.
        assert!(walk_frames(&hex("06 ffffffffffffffff 01 00"), 0x06, &mut |_, _| {}).is_err());
    }

    #[test]
    fn walk_frames_fuzz() {
        // AEAD stops mutated payloads, so fuzz the frame walker directly and
        // through sealed packets whose plaintext is random.
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut scratch = Vec::new();
        for i in 0..fuzz_iters() {
            let n = rng.below(200);
            let mut payload = rng.bytes(n);
            // Bias towards known frame types.
            for b in payload.iter_mut() {
                if rng.below(3) == 0 {
                    *b = [0x00, 0x01, 0x02, 0x03, 0x06, 0x1c][rng.below(6)];
                }
            }
            let mut total = 0usize;
            let _ = walk_frames(&payload, 0x06, &mut |_, d| total += d.len());
            assert!(total <= payload.len());
            if i % 10 == 0 {
                let p = seal_client_initial(QUIC_V1, &[1, 2, 3], &[], 0, 1, &payload, 0).unwrap();
                let r = client_initials(&p, None, &mut scratch, |_, _| {});
                assert!(matches!(r, Ok(_) | Err(QuicError::Malformed(_))), "{r:?}");
            }
        }
    }
}
