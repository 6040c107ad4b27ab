//! A bounds-checked forward cursor over a byte slice and QUIC's variable-length integers
//! (RFC 9000 §16). Knows no packet or frame layout; never panics.

/// Largest value a QUIC variable-length integer can hold (2^62 - 1).
pub(super) const VARINT_MAX: u64 = (1 << 62) - 1;

/// A forward-only cursor over a byte slice; every read is bounds-checked.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let s: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(s))
    }

    /// Reads a variable-length integer (RFC 9000 §16): the two high bits of the
    /// first byte give its length, 1, 2, 4 or 8 bytes, big-endian.
    pub(super) fn varint(&mut self) -> Option<u64> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut v = u64::from(first & 0x3f);
        for _ in 1..len {
            v = (v << 8) | u64::from(self.u8()?);
        }
        Some(v)
    }

    /// Reads a varint length and then that many bytes.
    pub(super) fn varint_bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    /// Skips a run of zero bytes (PADDING frames).
    pub(super) fn skip_zeros(&mut self) {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos += rest.iter().take_while(|&&b| b == 0).count();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::hex;
    use super::*;
    use picket_synth::quic::crypto_frame;

    #[test]
    fn reader_varint_rfc9000_a1_and_the_generator_s_frames() {
        for off in [0, 63u64, 64, 16383, 16384, 1 << 30, VARINT_MAX, u64::MAX] {
            let mut out = Vec::new();
            crypto_frame(off, b"x", &mut out);
            let mut r = Reader::new(&out[1..]);
            assert_eq!(r.varint(), Some(off.min(VARINT_MAX)), "{off}");
            assert_eq!(r.varint_bytes(), Some(&b"x"[..]));
        }
        // RFC 9000 §A.1 examples.
        for (enc, v) in [
            ("c2197c5eff14e88c", 151_288_809_941_952_652u64),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
            ("4025", 37),
        ] {
            assert_eq!(Reader::new(&hex(enc)).varint(), Some(v));
        }
    }
}
