//! Classic pcap: the file header (both byte orders, µs and ns resolution) and its 16-byte
//! record headers. Reads record headers only; never looks into a frame.

use super::pcapng::PCAPNG_SHB;
use super::{u32_at, CaptureError, CaptureErrorKind, FileSource, Format, TsUnit, MAX_FRAME};
use crate::capture::{LinkType, RawPacket, Timestamp};

/// Magic of a pcap file with microsecond timestamps, as a little-endian writer puts it.
pub(super) const PCAP_US_LE: u32 = 0xA1B2_C3D4;
/// Magic of a pcap file with nanosecond timestamps, likewise.
pub(super) const PCAP_NS_LE: u32 = 0xA1B2_3C4D;

impl FileSource {
    /// Reads the file header: a classic pcap header sets the format; a pcapng file starts with a
    /// section header block, which [`FileSource::next_packet`] reads.
    pub(super) fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(24)? && !self.fill(12)? {
            let have = (self.end - self.start) as u64;
            return Err(self.error(CaptureErrorKind::TooShort { len: have }));
        }
        let b = &self.buf[self.start..self.end];
        let magic = [b[0], b[1], b[2], b[3]];
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let (big_endian, unit) = match (le, be) {
            (PCAP_US_LE, _) => (false, TsUnit::Dec(6)),
            (PCAP_NS_LE, _) => (false, TsUnit::Dec(9)),
            (_, PCAP_US_LE) => (true, TsUnit::Dec(6)),
            (_, PCAP_NS_LE) => (true, TsUnit::Dec(9)),
            (PCAPNG_SHB, _) => return Ok(()), // blocks are read by next_packet
            _ => return Err(self.error(CaptureErrorKind::NotACapture { magic })),
        };
        if b.len() < 24 {
            let have = b.len() as u64;
            return Err(self.error(CaptureErrorKind::TooShort { len: have }));
        }
        let snaplen = u32_at(&b[16..], big_endian);
        let link = LinkType::from_u32(u32_at(&b[20..], big_endian) & 0x0FFF_FFFF);
        self.format = Format::Pcap {
            big_endian,
            unit,
            link,
            max_len: snaplen.clamp(MAX_FRAME, 16 * MAX_FRAME),
        };
        self.consume(24);
        Ok(())
    }

    /// The next record: its 16-byte header, then the frame.
    pub(super) fn next_pcap(
        &mut self,
        big: bool,
        unit: TsUnit,
        link: LinkType,
        max_len: u32,
    ) -> Result<Option<RawPacket<'_>>, CaptureError> {
        self.discard()?;
        if !self.fill(16)? {
            if self.end == self.start {
                return Ok(None);
            }
            return Err(self.truncated(16));
        }
        let h = &self.buf[self.start..self.start + 16];
        let secs = u64::from(u32_at(h, big));
        let frac = u64::from(u32_at(&h[4..], big));
        let caplen = u32_at(&h[8..], big);
        let orig_len = u32_at(&h[12..], big);
        if caplen > max_len {
            return Err(self.error(CaptureErrorKind::ImpossibleLength {
                len: caplen,
                max: max_len,
            }));
        }
        // A record larger than any frame the sensor reads (a pcap header may allow 4 MiB) is
        // read in place: its first MAX_FRAME bytes as the frame, as a snaplen would cut it, the
        // rest passed over chunk by chunk, so memory stays that of one chunk.
        let keep = caplen.min(MAX_FRAME);
        let total = 16 + keep as usize;
        if !self.fill(total)? {
            return Err(self.truncated(16 + caplen as usize));
        }
        let data_at = self.start + 16;
        self.consume(total);
        self.skip = u64::from(caplen - keep);
        self.packets += 1;
        Ok(Some(RawPacket {
            ts: Timestamp(
                secs.saturating_mul(1_000_000_000)
                    .saturating_add(unit.to_nanos(frac)),
            ),
            orig_len: orig_len.max(caplen),
            link,
            data: &self.buf[data_at..data_at + keep as usize],
            chunk: &self.buf,
        }))
    }
}

impl FileSource {
    /// Passes over the rest of a record cut at [`MAX_FRAME`], reading it through the chunk in
    /// place (never a larger buffer).
    fn discard(&mut self) -> Result<(), CaptureError> {
        while self.skip > 0 {
            let have = (self.end - self.start) as u64;
            let n = have.min(self.skip);
            self.consume(n as usize);
            self.skip -= n;
            if self.skip > 0 && !self.fill(1)? {
                return Err(self.error(CaptureErrorKind::Truncated {
                    need: self.skip,
                    have: 0,
                }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    /// Records of 4 MiB (a pcap header may allow them) are cut at MAX_FRAME and read in
    /// place: every chunk the frames lie in is a read chunk, not a record-sized buffer, and the
    /// records after them are read whole.
    #[test]
    fn next_packet_huge_records_are_cut_in_constant_memory() {
        let big = 4usize << 20;
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        f[16..20].copy_from_slice(&(big as u32).to_le_bytes());
        for i in 0..6u8 {
            pcap_record(&mut f, false, u32::from(i), 0, &vec![i; big]);
            pcap_record(&mut f, false, u32::from(i), 1, &[0xEE; 100]);
        }
        let len = f.len() as u64;
        for ahead in [false, true] {
            let input = Box::new(std::io::Cursor::new(f.clone()));
            let path = std::path::PathBuf::from("big.pcap");
            let mut src = if ahead {
                FileSource::read_ahead(path, input, Some(len), super::super::BUF_SIZE)
            } else {
                FileSource::with_chunk_size(path, input, Some(len), super::super::BUF_SIZE)
            }
            .unwrap();
            let mut n = 0;
            while let Some(p) = src.next_packet().unwrap() {
                assert!(
                    p.chunk.len() <= 2 * super::super::BUF_SIZE,
                    "{}",
                    p.chunk.len()
                );
                if n % 2 == 0 {
                    assert_eq!(p.data.len(), MAX_FRAME as usize);
                    assert!(p.data.iter().all(|&b| b == (n / 2) as u8));
                    assert_eq!(p.orig_len as usize, big);
                } else {
                    assert_eq!(p.data, [0xEE; 100]);
                }
                n += 1;
            }
            assert_eq!(n, 12, "read ahead: {ahead}");
            assert_eq!(crate::capture::PacketSource::position(&src), len);
        }
        // Cut inside the part passed over: truncated, not a panic or a hang.
        let mut src = source(f[..24 + 16 + MAX_FRAME as usize + 1000].to_vec()).unwrap();
        assert!(src.next_packet().unwrap().is_some());
        let e = src.next_packet().unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn next_packet_pcap_both_byte_orders_and_resolutions() {
        for (magic, big, frac, want_ns) in [
            (PCAP_US_LE, false, 250_000, 250_000_000),
            (PCAP_US_LE, true, 250_000, 250_000_000),
            (PCAP_NS_LE, false, 7, 7),
            (PCAP_NS_LE, true, 7, 7),
        ] {
            let mut f = pcap_header(magic, big, 1);
            pcap_record(&mut f, big, 10, frac, b"abcd");
            pcap_record(&mut f, big, 11, 0, b"ef");
            let mut src = source(f).unwrap();
            let got = collect(&mut src);
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0, 10_000_000_000 + want_ns);
            assert_eq!(got[0].1, LinkType::Ethernet);
            assert_eq!(got[0].2, b"abcd");
            assert_eq!(got[1].2, b"ef");
        }
    }

    #[test]
    fn next_packet_pcap_truncated_record_names_offset_and_packet() {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        pcap_record(&mut f, false, 1, 0, b"0123456789");
        let keep = f.len();
        pcap_record(&mut f, false, 2, 0, b"0123456789");
        f.truncate(keep + 20);
        let mut src = source(f).unwrap();
        assert!(src.next_packet().unwrap().is_some());
        let e = src.next_packet().unwrap_err();
        assert!(matches!(
            e.kind,
            CaptureErrorKind::Truncated { need: 26, have: 20 }
        ));
        assert_eq!(e.offset, keep as u64);
        assert_eq!(
            e.to_string(),
            format!("t.pcap: packet 2 at byte offset {keep}: truncated: the record needs 26 bytes, only 20 remain")
        );
    }

    #[test]
    fn next_packet_pcap_impossible_length() {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        f.extend(1u32.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(0xFFFF_FFF0u32.to_le_bytes());
        f.extend(60u32.to_le_bytes());
        let mut src = source(f).unwrap();
        let e = src.next_packet().unwrap_err();
        assert!(
            matches!(e.kind, CaptureErrorKind::ImpossibleLength { .. }),
            "{e}"
        );
    }

    #[test]
    fn open_rejects_non_capture_and_short_files() {
        let e = source(b"GET / HTTP/1.1\r\n\r\n garbage garbage".to_vec()).unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::NotACapture { .. }));
        assert!(e.to_string().contains("not a pcap or pcapng file"));
        let e = source(vec![0xd4, 0xc3]).unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::TooShort { len: 2 }));
    }
}
