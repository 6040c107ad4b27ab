//! IPv4 and IPv6 fragment reassembly, in the reader before any flow key exists (only the first
//! fragment has ports). Owns its buffers; never reads the clock (timeouts are in packet time);
//! every cap below is hard.
//!
//! # Policy
//!
//! - A datagram is identified by source, destination, identification and protocol (RFC 791,
//!   RFC 8200 §4.5), plus the VLAN ids and [`Segment`] it came in, so tunnels from several sites
//!   with overlapping addresses do not mix.
//! - **Overlaps abandon the datagram**, as RFC 5722 requires for IPv6 and modern stacks do for
//!   IPv4 too (overlaps are how IDS evasion and "teardrop" attacks work). An exact duplicate of a
//!   fragment held (same offset, length and bytes; mirrors often duplicate packets) is dropped
//!   and counted, and the datagram goes on. A second, different last fragment is an overlap.
//! - A fragment that is not the last and whose length is not a multiple of 8 is invalid
//!   (RFC 8200 §4.5), and so is its datagram.
//! - At most [`MAX_DATAGRAMS`] datagrams at once: a new one evicts the oldest. At most
//!   [`MAX_HELD_BYTES`] of fragment bytes held: growing past it releases idle buffers, then evicts
//!   the oldest datagrams. A datagram longer than [`MAX_DATAGRAM_BYTES`] or in more than
//!   [`MAX_FRAGMENTS`] pieces is oversize. A datagram not complete [`TIMEOUT_NS`] after its first
//!   fragment arrived is dropped.
//! - A completed datagram's payload is assembled in one scratch buffer (64 KiB at most), which the
//!   reader copies into the batch bound for the flow's worker (see [`crate::pipeline::dispatch`]).
//!
//! Memory is bounded by `MAX_HELD_BYTES`, the scratch buffer and per-datagram bookkeeping (about
//! 1 KiB each, so `MAX_DATAGRAMS` KiB): about 5 MiB. Nothing is allocated until the first
//! fragment; after warm-up, reassembly reuses its buffers.

use super::ip::Upper;
use super::{Addr, Ctx, Segment, MAX_VLANS};
use crate::capture::Timestamp;
use crate::macros::counter_enum;
use etherparse::IpNumber;

/// Most datagrams being reassembled at once.
pub const MAX_DATAGRAMS: usize = 1024;
/// Largest reassembled IP payload (the 16-bit length fields' limit; jumbograms are not
/// fragmented).
pub const MAX_DATAGRAM_BYTES: usize = 65_535;
/// Most fragments in one datagram (a datagram cut into more pieces is an attack, not an MTU).
pub const MAX_FRAGMENTS: usize = 64;
/// Most fragment bytes held, over all datagrams, idle buffers included.
pub const MAX_HELD_BYTES: usize = 4 << 20;
/// How long a datagram may wait for its missing fragments, in packet time (Linux's
/// `ipfrag_time`).
pub const TIMEOUT_NS: u64 = 30_000_000_000;
/// Idle buffers are kept for reuse while the bytes held stay under this.
const KEEP_IDLE_BELOW: usize = MAX_HELD_BYTES / 2;
/// End of a list.
const NIL: u32 = u32::MAX;

counter_enum! {
    /// How the reassembly of a datagram ended, as counted in `picket_ip_reassembly_total{result}`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ReasmEnd {
        /// Complete, handed on as one packet.
        Reassembled => "reassembled",
        /// Not complete within [`TIMEOUT_NS`].
        Timeout => "timeout",
        /// Fragments overlapped, or disagreed on where the datagram ends.
        Overlap => "overlap",
        /// Made room for a newer datagram ([`MAX_DATAGRAMS`] or [`MAX_HELD_BYTES`] reached).
        Evicted => "evicted",
        /// Longer than [`MAX_DATAGRAM_BYTES`], or in more than [`MAX_FRAGMENTS`] pieces.
        Oversize => "oversize",
        /// A fragment other than the last whose length is not a multiple of 8, or empty.
        Invalid => "invalid",
    }
}

/// The reassembly's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Datagrams by how their reassembly ended, by [`ReasmEnd::index`].
    pub ended: [u64; ReasmEnd::ALL.len()],
    /// Exact duplicates of fragments already held, dropped.
    pub duplicates: u64,
    /// Datagrams being reassembled now.
    pub pending: u64,
    /// Bytes of buffers held now (fragments waiting, the scratch buffer).
    pub held_bytes: u64,
}

impl ReassemblyStats {
    /// Datagrams that ended with this outcome.
    pub fn count(&self, e: ReasmEnd) -> u64 {
        self.ended[e.index()]
    }
}

/// One IP fragment as the decoder found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frag<'a> {
    /// IPv6 (a Fragment extension header) rather than IPv4.
    pub v6: bool,
    pub src: Addr,
    pub dst: Addr,
    /// Identification (16 bits for IPv4).
    pub id: u32,
    /// The protocol of the datagram's payload.
    pub proto: IpNumber,
    /// Where `data` starts in the datagram's payload, in bytes.
    pub offset: u32,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    /// The fragment's bytes.
    pub data: &'a [u8],
}

/// What identifies a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    src: Addr,
    dst: Addr,
    id: u32,
    proto: u8,
    v6: bool,
    nvlan: u8,
    vlans: [u16; MAX_VLANS],
    segment: Segment,
}

impl FragKey {
    /// The key of a fragment found in this context.
    pub fn new(f: &Frag<'_>, cx: &Ctx) -> Self {
        FragKey {
            src: f.src,
            dst: f.dst,
            id: f.id,
            proto: f.proto.0,
            v6: f.v6,
            nvlan: cx.nvlan,
            vlans: cx.vlans,
            segment: cx.segment,
        }
    }
}

/// A completed datagram, assembled in the caller's scratch buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Done {
    key: FragKey,
    /// The fragments' wire lengths summed.
    pub wire: u32,
}

impl Done {
    /// The datagram as an IP payload lying in `body`.
    pub fn upper<'a>(&self, body: &'a [u8]) -> Upper<'a> {
        Upper {
            v6: self.key.v6,
            src: self.key.src,
            dst: self.key.dst,
            proto: IpNumber(self.key.proto),
            body,
            ttl: 0,
            whole: true,
        }
    }
}

/// Where a fragment's bytes lie: `len` bytes at `off` in the datagram, at `at` in the buffer.
#[derive(Clone, Copy, Debug)]
struct Piece {
    off: u32,
    len: u32,
    at: u32,
}

/// One datagram being reassembled (or a free slot).
#[derive(Debug)]
struct Slot {
    key: FragKey,
    /// Arrival of its first fragment.
    first: Timestamp,
    /// Fragment bytes in arrival order (never more than was received: no holes are allocated).
    buf: Vec<u8>,
    /// Pieces, sorted by offset, not overlapping.
    pieces: Vec<Piece>,
    /// Payload bytes held (the pieces' lengths summed).
    got: u32,
    /// The payload's length, once the last fragment is in.
    end: Option<u32>,
    /// Wire bytes of the fragments.
    wire: u64,
    /// Neighbours in arrival order of first fragments (live slots) or the free list (free slots).
    prev: u32,
    next: u32,
    live: bool,
}

/// Datagrams being reassembled: a slab with an index by key and a list oldest-first.
#[derive(Debug)]
pub(crate) struct Reassembler {
    slots: Vec<Slot>,
    /// Free slots.
    free: Vec<u32>,
    index: hashbrown::HashMap<FragKey, u32>,
    /// Oldest and newest live slot.
    head: u32,
    tail: u32,
    live: usize,
    /// Buffer capacity held by all slots.
    held: usize,
    /// Of which held by free slots.
    idle: usize,
    stats: ReassemblyStats,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler {
            slots: Vec::new(),
            free: Vec::new(),
            index: hashbrown::HashMap::new(),
            head: NIL,
            tail: NIL,
            live: 0,
            held: 0,
            idle: 0,
            stats: ReassemblyStats::default(),
        }
    }
}

impl Reassembler {
    /// Counters, with the datagrams and bytes held now.
    pub fn stats(&self) -> ReassemblyStats {
        ReassemblyStats {
            pending: self.live as u64,
            held_bytes: self.held as u64,
            ..self.stats
        }
    }

    /// Adds a fragment; returns its datagram's slot when the datagram is now complete.
    pub fn add(&mut self, key: FragKey, f: &Frag<'_>, ts: Timestamp, wire_len: u32) -> Option<u32> {
        self.expire(ts);
        let len = f.data.len();
        let end = f.offset as usize + len;
        let existing = self.index.get(&key).copied();
        let fail = if f.more && (len == 0 || len % 8 != 0) {
            Some(ReasmEnd::Invalid)
        } else if end > MAX_DATAGRAM_BYTES {
            Some(ReasmEnd::Oversize)
        } else {
            None
        };
        if let Some(why) = fail {
            match existing {
                Some(s) => self.drop_slot(s, why),
                None => self.stats.ended[why.index()] += 1,
            }
            return None;
        }
        let (off, len, end) = (f.offset, len as u32, end as u32);
        let slot = match existing {
            Some(s) => s,
            None => self.open(key, ts),
        };
        let s = &self.slots[slot as usize];
        // Where the last fragment says the datagram ends, and every piece must agree.
        let conflict = if f.more {
            s.end.is_some_and(|e| end > e)
        } else {
            s.end.is_some_and(|e| e != end) || s.pieces.last().is_some_and(|p| p.off + p.len > end)
        };
        let i = s.pieces.partition_point(|p| p.off < off);
        let same = s.pieces.get(i).filter(|p| p.off == off && p.len == len);
        if let Some(p) = same {
            if !conflict && s.buf[p.at as usize..(p.at + p.len) as usize] == *f.data {
                self.stats.duplicates += 1;
                return None;
            }
        }
        let overlaps = conflict
            || same.is_some()
            || (i > 0 && s.pieces[i - 1].off + s.pieces[i - 1].len > off)
            || s.pieces.get(i).is_some_and(|p| end > p.off);
        if overlaps {
            self.drop_slot(slot, ReasmEnd::Overlap);
            return None;
        }
        if s.pieces.len() >= MAX_FRAGMENTS {
            self.drop_slot(slot, ReasmEnd::Oversize);
            return None;
        }
        // Room for the bytes, within the cap on bytes held.
        let (have, cap) = (s.buf.len(), s.buf.capacity());
        let need = have + len as usize;
        if need > cap {
            let want = need.max(cap * 2).min(MAX_DATAGRAM_BYTES).max(need);
            if !self.make_room(want - cap, slot) {
                self.drop_slot(slot, ReasmEnd::Evicted);
                return None;
            }
            let s = &mut self.slots[slot as usize];
            s.buf.reserve_exact(want - have);
            self.held += s.buf.capacity() - cap;
        }
        let s = &mut self.slots[slot as usize];
        s.buf.extend_from_slice(f.data);
        s.pieces.insert(
            i,
            Piece {
                off,
                len,
                at: have as u32,
            },
        );
        s.got += len;
        s.wire += u64::from(wire_len);
        if !f.more {
            s.end = Some(end);
        }
        (s.end == Some(s.got)).then_some(slot)
    }

    /// Assembles a complete datagram's payload in `out` and frees its slot.
    pub fn emit(&mut self, slot: u32, out: &mut Vec<u8>) -> Done {
        let s = &self.slots[slot as usize];
        out.clear();
        out.reserve_exact(s.got as usize);
        for p in &s.pieces {
            out.extend_from_slice(&s.buf[p.at as usize..(p.at + p.len) as usize]);
        }
        let done = Done {
            key: s.key,
            wire: u32::try_from(s.wire).unwrap_or(u32::MAX),
        };
        self.drop_slot(slot, ReasmEnd::Reassembled);
        done
    }

    /// Drops datagrams whose first fragment came [`TIMEOUT_NS`] or more before `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while self.head != NIL && self.slots[self.head as usize].first.plus_nanos(TIMEOUT_NS) <= now
        {
            self.drop_slot(self.head, ReasmEnd::Timeout);
        }
    }

    #[cfg(any(test, feature = "_fuzz"))]
    /// Checks the bookkeeping against the slots themselves and the caps against the constants,
    /// panicking on any mismatch: bytes held and idle, the oldest-first list, the index, and
    /// each datagram's pieces. With `expired`, also that nothing older than the timeout is left
    /// after [`Reassembler::expire`] at that time. For the fuzz target: costs O(slots).
    pub fn assert_consistent(&self, expired: Option<Timestamp>) {
        let (mut held, mut idle, mut live) = (0usize, 0usize, 0usize);
        for (i, s) in self.slots.iter().enumerate() {
            held += s.buf.capacity();
            if !s.live {
                idle += s.buf.capacity();
                assert!(s.pieces.is_empty() && s.buf.is_empty() && s.got == 0);
                continue;
            }
            live += 1;
            assert_eq!(
                self.index.get(&s.key),
                Some(&(i as u32)),
                "slot {i} not indexed"
            );
            assert!(s.pieces.len() <= MAX_FRAGMENTS, "{} pieces", s.pieces.len());
            let mut end = 0u32;
            let mut sum = 0u32;
            for p in &s.pieces {
                assert!(p.off >= end, "pieces out of order or overlapping");
                assert!((p.at + p.len) as usize <= s.buf.len());
                end = p.off + p.len;
                sum += p.len;
            }
            assert!(end as usize <= MAX_DATAGRAM_BYTES);
            assert_eq!((sum, s.buf.len()), (s.got, s.got as usize));
            if let Some(e) = s.end {
                assert!(
                    end <= e && s.got < e,
                    "a complete datagram left in the table"
                );
            }
            if let Some(now) = expired {
                assert!(
                    s.first.plus_nanos(TIMEOUT_NS) > now,
                    "a timed-out datagram kept"
                );
            }
        }
        assert_eq!((held, idle, live), (self.held, self.idle, self.live));
        assert!(self.held <= MAX_HELD_BYTES, "{} bytes held", self.held);
        assert!(self.live <= MAX_DATAGRAMS && self.index.len() == self.live);
        assert_eq!(self.free.len() + self.live, self.slots.len());
        // The list, oldest first, holds every live slot once.
        let (mut at, mut prev, mut n) = (self.head, NIL, 0usize);
        while at != NIL {
            let s = &self.slots[at as usize];
            assert!(s.live && s.prev == prev, "list broken at slot {at}");
            n += 1;
            assert!(n <= self.live, "list longer than the live slots");
            (prev, at) = (at, s.next);
        }
        assert_eq!((n, prev), (self.live, self.tail));
    }

    /// A slot for a new datagram, evicting the oldest when all are in use.
    fn open(&mut self, key: FragKey, ts: Timestamp) -> u32 {
        if self.live >= MAX_DATAGRAMS {
            self.drop_slot(self.head, ReasmEnd::Evicted);
        }
        if self.index.capacity() == 0 {
            self.index.reserve(MAX_DATAGRAMS);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    key,
                    first: ts,
                    buf: Vec::new(),
                    pieces: Vec::with_capacity(4),
                    got: 0,
                    end: None,
                    wire: 0,
                    prev: NIL,
                    next: NIL,
                    live: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let tail = self.tail;
        let s = &mut self.slots[slot as usize];
        self.idle -= s.buf.capacity();
        s.key = key;
        s.first = ts;
        s.live = true;
        s.prev = tail;
        s.next = NIL;
        match tail {
            NIL => self.head = slot,
            t => self.slots[t as usize].next = slot,
        }
        self.tail = slot;
        self.live += 1;
        self.index.insert(key, slot);
        slot
    }

    /// Ends a datagram: counts why, unlinks it, and frees its slot (keeping its buffer for reuse
    /// while little is held).
    fn drop_slot(&mut self, slot: u32, why: ReasmEnd) {
        let Some(s) = self.slots.get_mut(slot as usize).filter(|s| s.live) else {
            return;
        };
        self.stats.ended[why.index()] += 1;
        s.live = false;
        let (prev, next, key) = (s.prev, s.next, s.key);
        s.pieces.clear();
        s.buf.clear();
        s.got = 0;
        s.end = None;
        s.wire = 0;
        if self.held > KEEP_IDLE_BELOW {
            self.held -= s.buf.capacity();
            s.buf = Vec::new();
        } else {
            self.idle += s.buf.capacity();
        }
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        self.index.remove(&key);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Makes `extra` more bytes fit under [`MAX_HELD_BYTES`]: releases idle buffers, then evicts
    /// the oldest datagrams other than `keep`. False when even that is not enough.
    fn make_room(&mut self, extra: usize, keep: u32) -> bool {
        while self.held + extra > MAX_HELD_BYTES {
            if self.idle > 0 {
                for &f in &self.free {
                    let s = &mut self.slots[f as usize];
                    self.held -= s.buf.capacity();
                    s.buf = Vec::new();
                }
                self.idle = 0;
                continue;
            }
            let victim = match self.head {
                h if h == keep => self.slots[h as usize].next,
                h => h,
            };
            if victim == NIL {
                return false;
            }
            self.drop_slot(victim, ReasmEnd::Evicted);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frag(id: u32, offset: u32, more: bool, data: &[u8]) -> Frag<'_> {
        Frag {
            v6: false,
            src: Addr::from(Ipv4Addr::new(10, 0, 0, 1)),
            dst: Addr::from(Ipv4Addr::new(192, 0, 2, 1)),
            id,
            proto: IpNumber::UDP,
            offset,
            more,
            data,
        }
    }

    struct R {
        table: Reassembler,
        out: Vec<u8>,
    }

    impl R {
        fn new() -> Self {
            R {
                table: Reassembler::default(),
                out: Vec::new(),
            }
        }

        /// Adds a fragment at `ts_s` seconds; the reassembled payload when complete.
        fn add(&mut self, f: Frag<'_>, ts_s: u64) -> Option<Vec<u8>> {
            let key = FragKey::new(&f, &Ctx::default());
            let slot = self
                .table
                .add(key, &f, Timestamp(ts_s * 1_000_000_000), 100)?;
            self.table.emit(slot, &mut self.out);
            Some(self.out.clone())
        }

        fn ended(&self, e: ReasmEnd) -> u64 {
            self.table.stats().count(e)
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
    }

    #[test]
    fn add_in_order_and_reversed() {
        let data = bytes(40, 1);
        let mut r = R::new();
        assert_eq!(r.add(frag(1, 0, true, &data[..16]), 0), None);
        assert_eq!(r.add(frag(1, 16, true, &data[16..32]), 0), None);
        assert_eq!(
            r.add(frag(1, 32, false, &data[32..]), 0),
            Some(data.clone())
        );
        for (off, more) in [(32, false), (16, true), (0, true)] {
            let end = if more { off + 16 } else { 40 };
            let got = r.add(frag(2, off as u32, more, &data[off..end]), 1);
            assert_eq!(got.is_some(), off == 0);
        }
        assert_eq!(r.ended(ReasmEnd::Reassembled), 2);
        assert_eq!(r.table.stats().pending, 0);
    }

    #[test]
    fn add_exact_duplicate_is_dropped_and_datagram_goes_on() {
        let data = bytes(24, 2);
        let mut r = R::new();
        r.add(frag(1, 0, true, &data[..16]), 0);
        r.add(frag(1, 0, true, &data[..16]), 0);
        assert_eq!(r.table.stats().duplicates, 1);
        assert_eq!(r.add(frag(1, 16, false, &data[16..]), 0), Some(data));
    }

    #[test]
    fn add_overlap_abandons_datagram() {
        let data = bytes(48, 3);
        let mut r = R::new();
        r.add(frag(1, 0, true, &data[..24]), 0);
        // Overlaps the first piece by 8 bytes.
        assert_eq!(r.add(frag(1, 16, true, &data[16..40]), 0), None);
        assert_eq!(r.ended(ReasmEnd::Overlap), 1);
        // Same offset and length, different bytes: an overlap too.
        r.add(frag(2, 0, true, &data[..16]), 0);
        r.add(frag(2, 0, true, &data[16..32]), 0);
        assert_eq!(r.ended(ReasmEnd::Overlap), 2);
        // Two last fragments that disagree on the end.
        r.add(frag(3, 16, false, &data[16..24]), 0);
        r.add(frag(3, 16, false, &data[16..32]), 0);
        assert_eq!(r.ended(ReasmEnd::Overlap), 3);
        // A piece beyond the end the last fragment set.
        r.add(frag(4, 16, false, &data[16..24]), 0);
        r.add(frag(4, 24, true, &data[24..40]), 0);
        assert_eq!(r.ended(ReasmEnd::Overlap), 4);
        assert_eq!(r.table.stats().pending, 0);
    }

    #[test]
    fn add_invalid_and_oversize() {
        let data = bytes(20, 4);
        let mut r = R::new();
        r.add(frag(1, 0, true, &data[..8]), 0);
        // Not last, not a multiple of 8: the fragment and its datagram are invalid.
        r.add(frag(1, 8, true, &data[8..20]), 0);
        assert_eq!(r.ended(ReasmEnd::Invalid), 1);
        assert_eq!(r.table.stats().pending, 0);
        r.add(frag(2, 0, true, &[]), 0);
        assert_eq!(r.ended(ReasmEnd::Invalid), 2);
        // Ends past 65,535 bytes.
        r.add(frag(3, 65_528, false, &data[..8]), 0);
        assert_eq!(r.ended(ReasmEnd::Oversize), 1);
        // More than MAX_FRAGMENTS pieces.
        let big = bytes(8 * (MAX_FRAGMENTS + 1), 5);
        for i in 0..=MAX_FRAGMENTS {
            r.add(frag(4, (i * 8) as u32, true, &big[i * 8..i * 8 + 8]), 0);
        }
        assert_eq!(r.ended(ReasmEnd::Oversize), 2);
    }

    #[test]
    fn expire_after_timeout_in_packet_time() {
        let data = bytes(16, 6);
        let mut r = R::new();
        r.add(frag(1, 0, true, &data[..8]), 100);
        r.table.expire(Timestamp((100 + 29) * 1_000_000_000));
        assert_eq!(r.table.stats().pending, 1);
        r.table.expire(Timestamp((100 + 30) * 1_000_000_000));
        assert_eq!(r.table.stats().pending, 0);
        assert_eq!(r.ended(ReasmEnd::Timeout), 1);
        r.table
            .assert_consistent(Some(Timestamp((100 + 30) * 1_000_000_000)));
        // The late last fragment starts a new datagram that never completes.
        assert_eq!(r.add(frag(1, 8, false, &data[8..]), 131), None);
        assert_eq!(r.table.stats().pending, 1);
    }

    #[test]
    fn add_flood_keeps_caps_and_completes_a_late_datagram() {
        let chunk = bytes(1024, 7);
        let mut r = R::new();
        // Twice as many datagrams as the cap, each one fragment of 1 KiB that never completes.
        for id in 0..(2 * MAX_DATAGRAMS) as u32 {
            r.add(frag(id, 0, true, &chunk), 0);
            assert!(r.table.stats().pending <= MAX_DATAGRAMS as u64);
            assert!(r.table.stats().held_bytes <= MAX_HELD_BYTES as u64);
            if id % 64 == 0 {
                r.table.assert_consistent(None);
            }
        }
        assert_eq!(r.ended(ReasmEnd::Evicted), MAX_DATAGRAMS as u64);
        // Big pieces: 64 KiB datagrams press on the byte cap.
        let big = bytes(60_000, 8);
        for id in 0..200u32 {
            r.add(frag(100_000 + id, 0, true, &big[..59_992]), 0);
            assert!(r.table.stats().held_bytes <= MAX_HELD_BYTES as u64);
        }
        r.table.assert_consistent(None);
        assert!(r.ended(ReasmEnd::Evicted) > MAX_DATAGRAMS as u64 + 100);
        // A datagram in two fragments amid the flood still completes.
        let data = bytes(32, 9);
        r.add(frag(7_777_777, 0, true, &data[..16]), 1);
        assert_eq!(
            r.add(frag(7_777_777, 16, false, &data[16..]), 1),
            Some(data)
        );
    }

    #[test]
    #[should_panic(expected = "assertion `left == right` failed")]
    fn assert_consistent_catches_a_byte_count_off_by_one() {
        let data = bytes(16, 10);
        let mut r = R::new();
        r.add(frag(1, 0, true, &data[..8]), 0);
        r.table.assert_consistent(None);
        r.table.held += 1;
        r.table.assert_consistent(None);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Any cutting of a datagram into pieces (multiples of 8, within the caps) and any
            /// delivery order, with duplicates, reassembles the same bytes, once.
            #[test]
            fn any_cutting_and_order_reassembles_the_same_bytes(
                len in 1usize..4000,
                cuts in proptest::collection::btree_set(1usize..500, 1..20),
                order_seed in any::<u64>(),
                dup in proptest::option::of(0usize..20),
            ) {
                let data = bytes(len, order_seed as u8);
                let mut at: Vec<usize> = cuts.into_iter().map(|c| c * 8).filter(|&c| c < len).collect();
                at.insert(0, 0);
                let pieces: Vec<(usize, usize)> = at
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| (s, at.get(i + 1).copied().unwrap_or(len)))
                    .collect();
                let n = pieces.len();
                prop_assume!(n >= 2, "one piece at offset 0 and last is no fragment");
                let mut order: Vec<usize> = (0..n).collect();
                let mut x = order_seed | 1;
                for i in (1..n).rev() {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    order.swap(i, (x % (i as u64 + 1)) as usize);
                }
                if let Some(d) = dup.filter(|&d| d < n) {
                    order.insert(d, order[d]);
                }
                let mut r = R::new();
                let mut got = Vec::new();
                for &i in &order {
                    let (s, e) = pieces[i];
                    if let Some(p) = r.add(frag(1, s as u32, e < len, &data[s..e]), 0) {
                        got.push(p);
                    }
                }
                prop_assert_eq!(got.len(), 1);
                prop_assert_eq!(&got[0], &data);
                // A copy arriving after the datagram completed starts another, which waits.
                prop_assert!(r.table.stats().pending <= u64::from(dup.is_some()));
            }

            /// Arbitrary fragments never panic, and the caps always hold.
            #[test]
            fn arbitrary_fragments_keep_the_caps(
                frags in proptest::collection::vec(
                    (0u32..8, 0u32..70_000, any::<bool>(), 0usize..3000, 0u64..100),
                    1..300,
                ),
            ) {
                let data = bytes(3000, 1);
                let mut r = R::new();
                for (id, off, more, len, ts) in frags {
                    let _ = r.add(frag(id, off & !7, more, &data[..len]), ts);
                    r.table.assert_consistent(None);
                    let s = r.table.stats();
                    prop_assert!(s.pending <= MAX_DATAGRAMS as u64);
                    prop_assert!(s.held_bytes <= MAX_HELD_BYTES as u64);
                }
            }
        }
    }
}
