//! Reassembly of a client's first stream bytes, only as far as a handshake needs: bounded to
//! [`MAX_PREFIX`] bytes and [`MAX_RANGES`] disjoint pieces, freed by the owner once done.
//!
//! Overlap policy: **first arrival wins.** Bytes already held are never overwritten; a later
//! segment that disagrees with them is reported as a conflict (an evasion attempt or a broken
//! stack) and its conflicting bytes are dropped. Retransmissions that agree are harmless.
//! Segments before the stream start are trimmed; bytes past the cap are dropped and reported.

use crate::proto::tls::{self, ClientHello, TlsError};

/// Most client stream bytes kept for finding a handshake.
pub const MAX_PREFIX: u32 = 16 * 1024;
/// Most disjoint pieces held at once (holes are bounded, so is the work per segment).
pub const MAX_RANGES: usize = 8;

/// What one inserted segment did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// The contiguous prefix got longer.
    pub grew: bool,
    /// Some bytes disagreed with bytes already held (first arrival kept).
    pub conflict: bool,
    /// Some bytes lay beyond the cap and were dropped.
    pub beyond_cap: bool,
    /// The segment would have made too many holes and was dropped whole.
    pub too_many_holes: bool,
}

/// The client's first bytes, in sequence order, with holes tracked.
#[derive(Clone, Debug)]
pub struct ClientPrefix {
    /// Sequence number of stream offset 0.
    base: u32,
    /// Stream bytes from offset 0; holes hold zeros.
    buf: Vec<u8>,
    /// Filled ranges, sorted, disjoint and not touching.
    ranges: [(u32, u32); MAX_RANGES],
    nranges: usize,
    /// Next offset to scan for a ClientHello start.
    scan: u32,
    /// Offset of the candidate ClientHello being completed.
    hello_at: Option<u32>,
    /// Candidates that looked like a ClientHello record but did not parse, not yet counted.
    malformed: u16,
}

/// Outcome of looking for a ClientHello in the contiguous prefix.
#[derive(Debug)]
pub enum HelloScan<'a> {
    /// A complete ClientHello.
    Found(ClientHello<'a>),
    /// Nothing yet; more bytes may bring it.
    Pending,
    /// There will be none within the cap: stop trying and free the buffer.
    GiveUp,
}

impl ClientPrefix {
    /// An empty prefix whose offset 0 is sequence number `base`.
    pub fn new(base: u32) -> Self {
        ClientPrefix {
            base,
            buf: Vec::new(),
            ranges: [(0, 0); MAX_RANGES],
            nranges: 0,
            scan: 0,
            hello_at: None,
            malformed: 0,
        }
    }

    /// Length of the contiguous prefix from offset 0.
    pub fn contiguous_len(&self) -> u32 {
        match self.ranges[..self.nranges].first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// The contiguous prefix from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        &self.buf[..self.contiguous_len() as usize]
    }

    /// Bytes held, holes included (the buffer's size).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Inserts a segment's payload that starts at sequence number `seq`.
    pub fn insert(&mut self, seq: u32, data: &[u8]) -> Inserted {
        let mut r = Inserted::default();
        // Offsets are taken modulo 2^32 around the base (RFC 9293 sequence arithmetic).
        let rel = seq.wrapping_sub(self.base) as i32;
        let (start, data) = if rel < 0 {
            let skip = rel.unsigned_abs() as usize;
            match data.get(skip..) {
                Some(rest) if !rest.is_empty() => (0u32, rest),
                _ => return r,
            }
        } else {
            (rel as u32, data)
        };
        if start >= MAX_PREFIX {
            r.beyond_cap = !data.is_empty();
            return r;
        }
        let room = (MAX_PREFIX - start) as usize;
        let data = if data.len() > room {
            r.beyond_cap = true;
            &data[..room]
        } else {
            data
        };
        if data.is_empty() {
            return r;
        }
        let end = start + data.len() as u32;
        // Merge [start, end) into the range list first, so a segment that would need too many
        // holes is refused before any byte is written.
        let mut merged = [(0u32, 0u32); MAX_RANGES + 1];
        let mut n = 0;
        let mut new = Some((start, end));
        for &(s, e) in &self.ranges[..self.nranges] {
            match new {
                Some((ns, _)) if e < ns => {
                    merged[n] = (s, e);
                    n += 1;
                }
                Some((ns, ne)) if s > ne => {
                    merged[n] = (ns, ne);
                    merged[n + 1] = (s, e);
                    n += 2;
                    new = None;
                }
                Some((ns, ne)) => new = Some((ns.min(s), ne.max(e))),
                None => {
                    merged[n] = (s, e);
                    n += 1;
                }
            }
            if n > MAX_RANGES {
                r.too_many_holes = true;
                return r;
            }
        }
        if let Some(x) = new {
            if n == MAX_RANGES + 1 {
                r.too_many_holes = true;
                return r;
            }
            merged[n] = x;
            n += 1;
        }
        if n > MAX_RANGES {
            r.too_many_holes = true;
            return r;
        }
        // Copy into holes; compare where bytes are already held.
        if self.buf.len() < end as usize {
            self.buf.resize(end as usize, 0);
        }
        let mut pos = start;
        let held_ranges = self.ranges;
        for &(s, e) in &held_ranges[..self.nranges] {
            if e <= pos || s >= end {
                continue;
            }
            if s > pos {
                self.copy(pos, s, start, data);
            }
            let (cs, ce) = (s.max(pos), e.min(end));
            let held = &self.buf[cs as usize..ce as usize];
            let got = &data[(cs - start) as usize..(ce - start) as usize];
            r.conflict |= held != got;
            pos = ce;
        }
        if pos < end {
            self.copy(pos, end, start, data);
        }
        let before = self.contiguous_len();
        self.ranges[..n].copy_from_slice(&merged[..n]);
        self.nranges = n;
        r.grew = self.contiguous_len() > before;
        r
    }

    fn copy(&mut self, from: u32, to: u32, start: u32, data: &[u8]) {
        self.buf[from as usize..to as usize]
            .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
    }

    /// Looks for a complete ClientHello in the contiguous prefix.
    ///
    /// The hello need not open the stream: a SOCKS or HTTP CONNECT exchange or a STARTTLS
    /// command may come first, so the prefix is scanned for a handshake record header.
    pub fn scan_hello<'a>(&'a mut self, scratch: &'a mut Vec<u8>) -> HelloScan<'a> {
        let contig = self.contiguous_len() as usize;
        loop {
            let at = match self.hello_at {
                Some(at) => at as usize,
                None => {
                    let from = self.scan as usize;
                    let hay = &self.buf[from.min(contig)..contig];
                    match (0..hay.len().saturating_sub(5))
                        .find(|&i| tls::looks_like_client_hello(&hay[i..]))
                    {
                        Some(i) => {
                            self.hello_at = Some((from + i) as u32);
                            from + i
                        }
                        None => {
                            // Keep the last 5 bytes: a header may straddle the frontier.
                            self.scan = contig.saturating_sub(5).max(from) as u32;
                            return if contig >= MAX_PREFIX as usize {
                                HelloScan::GiveUp
                            } else {
                                HelloScan::Pending
                            };
                        }
                    }
                }
            };
            match tls::parse_client_hello(&self.buf[at..contig], scratch) {
                Ok(_) => break,
                Err(TlsError::Incomplete { needed }) => {
                    return if at + needed > MAX_PREFIX as usize {
                        HelloScan::GiveUp
                    } else {
                        HelloScan::Pending
                    };
                }
                Err(_) => {
                    self.malformed = self.malformed.saturating_add(1);
                    self.hello_at = None;
                    self.scan = (at + 1) as u32;
                }
            }
        }
        // Parsed once more to hand out the borrow (the loop above cannot return it); this
        // happens once per flow, never per packet.
        let at = self.hello_at.unwrap_or(0) as usize;
        match tls::parse_client_hello(&self.buf[at..contig], scratch) {
            Ok(ch) => HelloScan::Found(ch),
            Err(_) => HelloScan::GiveUp,
        }
    }
}

impl ClientPrefix {
    /// A ClientHello record has started and is not complete yet.
    pub fn hello_started(&self) -> bool {
        self.hello_at.is_some()
    }

    /// Candidates that looked like a ClientHello but did not parse, since the last call.
    pub fn take_malformed(&mut self) -> u16 {
        std::mem::take(&mut self.malformed)
    }

    /// Looks for a complete ClientHello handshake message at the very start of the stream, as a
    /// QUIC CRYPTO stream carries it (no records, no preamble).
    pub fn scan_handshake_message(&self) -> HelloScan<'_> {
        let contig = self.contiguous_len() as usize;
        match tls::parse_client_hello_message(&self.buf[..contig]) {
            Ok(ch) => HelloScan::Found(ch),
            Err(TlsError::Incomplete { needed }) if needed <= MAX_PREFIX as usize => {
                HelloScan::Pending
            }
            Err(_) => HelloScan::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tls::tests::{big_hello, records};

    fn found_sni(p: &mut ClientPrefix) -> Option<String> {
        let mut scratch = Vec::new();
        match p.scan_hello(&mut scratch) {
            HelloScan::Found(ch) => ch.sni.map(|s| String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    #[test]
    fn insert_in_order_out_of_order_and_retransmitted() {
        let mut p = ClientPrefix::new(1000);
        assert!(p.insert(1000, b"abc").grew);
        let r = p.insert(1006, b"ghi");
        assert!(!r.grew && !r.conflict);
        assert_eq!(p.contiguous_len(), 3);
        let r = p.insert(1003, b"def");
        assert!(r.grew);
        assert_eq!(p.contiguous_len(), 9);
        assert_eq!(&p.buf[..9], b"abcdefghi");
        // Agreeing retransmission.
        let r = p.insert(1002, b"cde");
        assert_eq!(r, Inserted::default());
    }

    #[test]
    fn insert_overlap_first_arrival_wins_and_reports_conflict() {
        let mut p = ClientPrefix::new(0);
        p.insert(0, b"hello");
        let r = p.insert(3, b"XXworld");
        assert!(r.conflict && r.grew);
        assert_eq!(&p.buf[..10], b"helloworld");
    }

    #[test]
    fn insert_trims_before_base_and_caps_at_limit() {
        let mut p = ClientPrefix::new(100);
        assert!(p.insert(95, b"0123456789").grew);
        assert_eq!(&p.buf[..5], b"56789");
        let r = p.insert(100 + MAX_PREFIX - 2, b"abcd");
        assert!(r.beyond_cap);
        let r = p.insert(100 + MAX_PREFIX, b"x");
        assert!(r.beyond_cap);
        assert_eq!(p.buffered(), MAX_PREFIX as usize);
    }

    #[test]
    fn insert_sequence_wraparound() {
        let mut p = ClientPrefix::new(u32::MAX - 1);
        p.insert(u32::MAX - 1, b"ab");
        p.insert(0, b"cd");
        assert_eq!(p.contiguous_len(), 4);
        assert_eq!(&p.buf[..4], b"abcd");
    }

    #[test]
    fn insert_too_many_holes_is_refused_whole() {
        let mut p = ClientPrefix::new(0);
        for i in 0..MAX_RANGES as u32 {
            assert!(!p.insert(10 + i * 10, b"x").too_many_holes);
        }
        let r = p.insert(5, b"y");
        assert!(r.too_many_holes);
        assert_eq!(p.buf[5], 0);
        // Filling a hole that joins two pieces is still fine.
        assert!(!p.insert(11, b"abcdefghi").too_many_holes);
    }

    #[test]
    fn scan_hello_split_over_three_segments_out_of_order() {
        let stream = records(&big_hello("mmg.whatsapp.net"), 16_384);
        let third = stream.len() / 3;
        let mut p = ClientPrefix::new(7);
        p.insert(7 + 2 * third as u32, &stream[2 * third..]);
        assert!(found_sni(&mut p).is_none());
        p.insert(7, &stream[..third]);
        assert!(found_sni(&mut p).is_none());
        p.insert(7 + third as u32, &stream[third..2 * third]);
        assert_eq!(found_sni(&mut p).as_deref(), Some("mmg.whatsapp.net"));
    }

    #[test]
    fn scan_hello_after_http_connect_preamble() {
        let mut stream = b"CONNECT zoom.us:443 HTTP/1.1\r\nHost: zoom.us\r\n\r\n".to_vec();
        stream.extend(records(&big_hello("zoom.us"), 500));
        let mut p = ClientPrefix::new(0);
        // Byte by byte, the hardest segmentation.
        for (i, b) in stream.iter().enumerate() {
            p.insert(i as u32, std::slice::from_ref(b));
            if i + 1 < stream.len() {
                let mut s = Vec::new();
                assert!(matches!(p.scan_hello(&mut s), HelloScan::Pending), "at {i}");
            }
        }
        assert_eq!(found_sni(&mut p).as_deref(), Some("zoom.us"));
    }

    #[test]
    fn scan_hello_gives_up_when_cap_is_reached() {
        let mut p = ClientPrefix::new(0);
        let junk = vec![b'A'; MAX_PREFIX as usize];
        p.insert(0, &junk);
        let mut s = Vec::new();
        assert!(matches!(p.scan_hello(&mut s), HelloScan::GiveUp));
    }
}
