//! Reassembly of a client's first stream bytes, only as far as a handshake needs: bounded to
//! [`MAX_PREFIX`] bytes, any number of holes within them, and the memory of a worker's buffers
//! charged to its [`Pool`]; freed by the owner once done.
//!
//! Overlap policy: **what a Linux receiver reads.** Bytes the application has read (the
//! contiguous prefix) are never changed; of bytes queued out of order the first copy is kept;
//! a segment that starts at or before the contiguous end (in order) is what the application
//! reads, so its bytes replace bytes queued out of order. Bytes that disagree with bytes held are
//! reported as a conflict (an evasion attempt or a broken stack). Retransmissions that agree are
//! harmless. Segments before the stream start are trimmed; bytes past the cap are dropped and
//! reported.
//!
//! Memory: the buffer grows to the highest offset held (in powers of two from 256 bytes) and, once
//! a segment arrives out of order, a bitmap of the bytes held (one bit a byte, 2 KiB at most).
//! Both are charged to the pool the prefix was made with, and given back when it is dropped.

use crate::proto::tls::{self, ClientHello, TlsError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Most client stream bytes kept for finding a handshake.
pub const MAX_PREFIX: u32 = 16 * 1024;

/// Smallest buffer allocated.
const MIN_BUF: usize = 256;

/// Bytes of the bitmap of held bytes (one bit for each offset below [`MAX_PREFIX`]).
const BITMAP_BYTES: usize = MAX_PREFIX as usize / 8;

/// The reassembly memory of one worker's buffers, in bytes (shared by its prefixes, so a
/// buffer gives back its charge wherever it is dropped).
#[derive(Clone, Debug, Default)]
pub struct Pool(Arc<AtomicUsize>);

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        Pool::default()
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one inserted segment did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// The contiguous prefix got longer.
    pub grew: bool,
    /// Some bytes disagreed with bytes already held (the ones a receiver reads were kept).
    pub conflict: bool,
    /// Some bytes lay beyond the cap and were dropped.
    pub beyond_cap: bool,
}

/// The client's first bytes, in sequence order, with holes tracked.
#[derive(Debug)]
pub struct ClientPrefix {
    /// Sequence number of stream offset 0.
    base: u32,
    /// Stream bytes from offset 0; holes hold zeros.
    buf: Vec<u8>,
    /// Bytes held past the contiguous prefix, one bit per offset (empty until a segment came out
    /// of order; then [`BITMAP_BYTES`] long).
    held: Vec<u64>,
    /// Length of the contiguous prefix: the bytes a receiver has read.
    contig: u32,
    /// Next offset to scan for a ClientHello start.
    scan: u32,
    /// Offset of the candidate ClientHello being completed.
    hello_at: Option<u32>,
    /// Candidates that looked like a ClientHello record but did not parse, not yet counted.
    malformed: u16,
    /// Where the buffers' memory is charged, and how much is.
    pool: Option<Pool>,
    charged: usize,
    /// The stream offset of an urgent byte: not stream data (the receiver reads it out of
    /// band), so every later byte sits one offset lower.
    urgent: Option<u32>,
}

impl Drop for ClientPrefix {
    fn drop(&mut self) {
        if let Some(p) = &self.pool {
            p.0.fetch_sub(self.charged, Ordering::Relaxed);
        }
    }
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

/// Buffer size that holds `end` bytes.
fn buf_size(end: usize) -> usize {
    end.next_power_of_two().clamp(MIN_BUF, MAX_PREFIX as usize)
}

impl ClientPrefix {
    /// An empty prefix whose offset 0 is sequence number `base`, its memory charged nowhere.
    pub fn new(base: u32) -> Self {
        ClientPrefix {
            base,
            buf: Vec::new(),
            held: Vec::new(),
            contig: 0,
            scan: 0,
            hello_at: None,
            malformed: 0,
            pool: None,
            charged: 0,
            urgent: None,
        }
    }

    /// An empty prefix whose memory is charged to `pool`.
    pub fn in_pool(base: u32, pool: &Pool) -> Self {
        let mut p = ClientPrefix::new(base);
        p.pool = Some(pool.clone());
        p
    }

    /// Length of the contiguous prefix from offset 0.
    pub fn contiguous_len(&self) -> u32 {
        self.contig
    }

    /// The contiguous prefix from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        &self.buf[..self.contig as usize]
    }

    /// Bytes held, holes included (up to the highest offset held).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Memory this prefix holds (buffer and bitmap), as charged to its pool.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// Where a segment at `seq` of `len` bytes lies: its first offset and its end, cut to the
    /// cap; `None` when none of it lies within the stream's first [`MAX_PREFIX`] bytes.
    fn span(&self, seq: u32, len: usize) -> Option<(usize, usize, usize)> {
        // Offsets are taken modulo 2^32 around the base (RFC 9293 sequence arithmetic).
        let rel = seq.wrapping_sub(self.base) as i32;
        let (start, skip) = if rel < 0 {
            (0usize, rel.unsigned_abs() as usize)
        } else {
            (rel as usize, 0)
        };
        let len = len.checked_sub(skip).filter(|&l| l > 0)?;
        let cap = MAX_PREFIX as usize;
        if start >= cap {
            return None;
        }
        Some((start, skip, (start + len).min(cap)))
    }

    /// Memory that inserting `len` bytes at `seq` would add to this prefix's charge.
    pub fn growth(&self, seq: u32, len: usize) -> usize {
        let Some((start, _, end)) = self.span(seq, len) else {
            return 0;
        };
        let mut extra = 0;
        if end > self.buf.capacity() {
            extra += buf_size(end) - self.buf.capacity();
        }
        if self.held.is_empty() && start > self.contig as usize {
            extra += BITMAP_BYTES;
        }
        extra
    }

    fn charge(&mut self) {
        let now = self.buf.capacity() + self.held.capacity() * 8;
        if let Some(p) = &self.pool {
            if now > self.charged {
                p.0.fetch_add(now - self.charged, Ordering::Relaxed);
            } else {
                p.0.fetch_sub(self.charged - now, Ordering::Relaxed);
            }
        }
        self.charged = now;
    }

    fn is_held(&self, off: usize) -> bool {
        off < self.contig as usize
            || self
                .held
                .get(off / 64)
                .is_some_and(|w| w >> (off % 64) & 1 == 1)
    }

    /// Takes the byte at sequence number `seq` out of the stream, as a receiver does with the
    /// byte the urgent pointer points at (Linux reads it out of band unless SO_OOBINLINE). Only
    /// the first such byte, and only one not read yet. True when it was taken out.
    pub fn set_urgent(&mut self, seq: u32) -> bool {
        let rel = seq.wrapping_sub(self.base) as i32;
        if self.urgent.is_some() || rel < 0 || (rel as u32) < self.contig {
            return false;
        }
        self.urgent = Some(rel as u32);
        true
    }

    /// Inserts a segment's payload that starts at sequence number `seq`.
    pub fn insert(&mut self, seq: u32, data: &[u8]) -> Inserted {
        let Some(u) = self.urgent else {
            return self.insert_at(seq, data);
        };
        let rel = i64::from(seq.wrapping_sub(self.base) as i32);
        let (u, end) = (i64::from(u), rel + data.len() as i64);
        if end <= u {
            self.insert_at(seq, data)
        } else if rel > u {
            self.insert_at(seq.wrapping_sub(1), data)
        } else {
            let cut = (u - rel) as usize;
            let a = self.insert_at(seq, &data[..cut]);
            let b = self.insert_at(seq.wrapping_add(cut as u32), &data[cut + 1..]);
            Inserted {
                grew: a.grew || b.grew,
                conflict: a.conflict || b.conflict,
                beyond_cap: a.beyond_cap || b.beyond_cap,
            }
        }
    }

    fn insert_at(&mut self, seq: u32, data: &[u8]) -> Inserted {
        let mut r = Inserted::default();
        let Some((start, skip, end)) = self.span(seq, data.len()) else {
            let rel = seq.wrapping_sub(self.base) as i32;
            r.beyond_cap = rel >= 0 && !data.is_empty();
            return r;
        };
        let data = &data[skip..];
        r.beyond_cap = start + data.len() > end;
        let data = &data[..end - start];
        let contig = self.contig as usize;
        // What the application already read stays; a disagreeing copy is a conflict.
        let read_end = end.min(contig);
        if start < read_end {
            r.conflict |= self.buf[start..read_end] != data[..read_end - start];
        }
        if end <= contig {
            return r;
        }
        if end > self.buf.len() {
            if end > self.buf.capacity() {
                let want = buf_size(end);
                self.buf.reserve_exact(want - self.buf.len());
            }
            self.buf.resize(end, 0);
        }
        let from = start.max(contig);
        if start <= contig {
            // In order: these are the bytes the application reads, whatever was queued.
            if !self.held.is_empty() {
                for off in from..end {
                    if self.is_held(off) && self.buf[off] != data[off - start] {
                        r.conflict = true;
                        break;
                    }
                }
                self.clear_bits(from, end);
            }
            self.buf[from..end].copy_from_slice(&data[from - start..]);
            self.contig = end as u32;
            // Bytes queued out of order right after join the prefix.
            self.advance();
            r.grew = true;
        } else {
            // Out of order: the first copy of each byte is kept.
            if self.held.is_empty() {
                self.held = vec![0u64; BITMAP_BYTES / 8];
            }
            for off in from..end {
                let (w, b) = (off / 64, off % 64);
                let got = data[off - start];
                if self.held[w] >> b & 1 == 1 {
                    r.conflict |= self.buf[off] != got;
                } else {
                    self.buf[off] = got;
                    self.held[w] |= 1 << b;
                }
            }
        }
        self.charge();
        r
    }

    fn clear_bits(&mut self, from: usize, to: usize) {
        for off in from..to {
            if let Some(w) = self.held.get_mut(off / 64) {
                *w &= !(1u64 << (off % 64));
            }
        }
    }

    /// Moves the contiguous end over bytes held out of order, clearing their bits.
    fn advance(&mut self) {
        let mut off = self.contig as usize;
        while off < self.buf.len() {
            let (w, b) = (off / 64, off % 64);
            let Some(word) = self.held.get_mut(w) else {
                break;
            };
            let run = (*word >> b).trailing_ones() as usize;
            if run == 0 {
                break;
            }
            let run = run.min(64 - b);
            let mask = if run == 64 {
                u64::MAX
            } else {
                ((1u64 << run) - 1) << b
            };
            *word &= !mask;
            off += run;
        }
        self.contig = off.min(self.buf.len()) as u32;
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
        assert_eq!(p.contiguous(), b"abcdefghi");
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
    fn insert_holes_are_bounded_by_bytes_not_count() {
        let mut p = ClientPrefix::new(0);
        // Every other byte first: 4096 holes.
        for i in (1..8192u32).step_by(2) {
            assert!(!p.insert(i, b"x").grew);
        }
        assert_eq!(p.contiguous_len(), 0);
        for i in (0..8192u32).step_by(2) {
            p.insert(i, b"y");
        }
        assert_eq!(p.contiguous_len(), 8192);
        assert!(p.contiguous().chunks(2).all(|c| c == b"yx"));
    }

    #[test]
    fn insert_in_order_data_replaces_bytes_queued_out_of_order() {
        // See: #14 (zeros queued out of order, the real bytes sent in order after them).
        let mut p = ClientPrefix::new(0);
        p.insert(0, b"ab");
        let r = p.insert(4, b"\0\0gh");
        assert!(!r.grew && !r.conflict);
        let r = p.insert(2, b"cdef");
        assert!(r.grew && r.conflict);
        assert_eq!(p.contiguous(), b"abcdefgh");
    }

    #[test]
    fn insert_out_of_order_keeps_the_first_copy() {
        let mut p = ClientPrefix::new(0);
        p.insert(4, b"efgh");
        let r = p.insert(6, b"XYij");
        assert!(r.conflict && !r.grew);
        p.insert(0, b"abcd");
        assert_eq!(p.contiguous(), b"abcdefghij");
    }

    #[test]
    fn insert_bytes_read_are_never_changed() {
        let mut p = ClientPrefix::new(0);
        p.insert(0, b"abcd");
        let r = p.insert(0, b"ABCDef");
        assert!(r.conflict && r.grew);
        assert_eq!(p.contiguous(), b"abcdef");
    }

    #[test]
    fn insert_urgent_byte_is_not_stream_data() {
        // See: #14 (ByeDPI's --oob: the first part, then one urgent byte, then the rest).
        let mut p = ClientPrefix::new(100);
        assert!(p.set_urgent(104));
        p.insert(106, b"fg");
        p.insert(100, b"abcdXe");
        assert_eq!(p.contiguous(), b"abcdefg");
        assert!(!p.set_urgent(101));
    }

    #[test]
    fn insert_charges_and_gives_back_its_pool() {
        let pool = Pool::new();
        let mut p = ClientPrefix::in_pool(0, &pool);
        let need = p.growth(MAX_PREFIX - 1, 1);
        assert_eq!(need, MAX_PREFIX as usize + BITMAP_BYTES);
        p.insert(MAX_PREFIX - 1, b"x");
        assert_eq!(pool.used(), need);
        assert_eq!(p.charged(), need);
        let q = ClientPrefix::in_pool(0, &pool);
        assert_eq!(q.growth(0, 100), MIN_BUF);
        drop(p);
        assert_eq!(pool.used(), 0);
    }

    /// A segmentation of `len` bytes: cut points, then every piece widened by an overlap on
    /// either side, some sent twice, in the order given.
    fn pieces(
        len: usize,
        cuts: &[usize],
        grow: &[(u8, u8)],
        order: &[usize],
    ) -> Vec<(usize, usize)> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % len).collect();
        at.push(0);
        at.push(len);
        at.sort_unstable();
        at.dedup();
        let mut segs: Vec<(usize, usize)> = at
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let (l, r) = grow.get(i).copied().unwrap_or((0, 0));
                (
                    w[0].saturating_sub(usize::from(l)),
                    (w[1] + usize::from(r)).min(len),
                )
            })
            .collect();
        let n = segs.len();
        for (k, &o) in order.iter().enumerate() {
            segs.swap(k % n, o % n);
        }
        for &o in order.iter().take(3) {
            segs.push(segs[o % n]);
        }
        segs
    }

    proptest::proptest! {
        #[test]
        fn insert_any_segmentation_order_overlap_and_duplicate_gives_the_hello(
            cuts in proptest::collection::vec(0usize..4000, 0..400),
            grow in proptest::collection::vec((0u8..4, 0u8..4), 0..400),
            order in proptest::collection::vec(0usize..1000, 0..400),
            isn in proptest::prelude::any::<u32>(),
        ) {
            let stream = records(&big_hello("web.whatsapp.com"), 700);
            let base = isn.wrapping_add(1);
            let mut p = ClientPrefix::new(base);
            for (s, e) in pieces(stream.len(), &cuts, &grow, &order) {
                let r = p.insert(base.wrapping_add(s as u32), &stream[s..e]);
                proptest::prop_assert!(!r.conflict);
            }
            proptest::prop_assert_eq!(p.contiguous(), &stream[..]);
            let sni = found_sni(&mut p);
            proptest::prop_assert_eq!(sni.as_deref(), Some("web.whatsapp.com"));
        }
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
