//! The reader thread's [`Decoder`]: the stateless walk plus IP fragment reassembly and per-kind
//! tunnel counters. Owned by the one reading thread; plain counters, never a lock.

use super::frag::{self, FragKey, Reassembler, ReassemblyStats};
use super::{first_layer, walk, Ctx, DecodeLayer, Next, PacketMeta, Skip, TunnelKind, Walked};
use crate::capture::{LinkType, Timestamp};

/// What the reader's [`Decoder`] made of a frame.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A flow packet whose payload lies in the frame it was decoded from.
    Frame(PacketMeta),
    /// A datagram reassembled from fragments (this frame held the last missing one). Its payload
    /// lies in `frame`, the decoder's scratch buffer, valid until the next call: the caller
    /// copies it on (the dispatcher into the batch bound for the flow's worker).
    Reassembled {
        /// The datagram's summary; its payload offset is into `frame`.
        meta: PacketMeta,
        /// The reassembled IP payload.
        frame: &'a [u8],
    },
}

/// What a reader's [`Decoder`] counted: tunnels per kind and the reassembly's outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets that went through at least one tunnel of a kind, by [`TunnelKind::index`]
    /// (frames, and datagrams for tunnels found inside a reassembled one).
    pub tunnels: [u64; TunnelKind::ALL.len()],
    /// Fragment reassembly.
    pub reassembly: ReassemblyStats,
}

/// The reader thread's decoder: [`decode`](super::decode()), plus reassembly of IP fragments and counters of the
/// tunnels seen. Owned by the one thread that reads packets; plain counters, no locks.
///
/// Ordinary frames cost what [`decode`](super::decode()) costs and allocate nothing; the reassembly's memory is
/// taken on the first fragment and bounded by the caps in [`frag`].
#[derive(Debug, Default)]
pub struct Decoder {
    table: Reassembler,
    /// Where a completed datagram is assembled.
    scratch: Vec<u8>,
    tunnels: [u64; TunnelKind::ALL.len()],
}

impl Decoder {
    /// A decoder with nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one frame; a fragment goes into reassembly and, when it completes a datagram, the
    /// datagram comes out as [`Decoded::Reassembled`].
    #[inline]
    pub fn decode<'s>(
        &'s mut self,
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        data: &[u8],
    ) -> Result<Decoded<'s>, Skip> {
        let wire_len = wire_len.max(data.len() as u32);
        let mut cx = Ctx::default();
        let walked = first_layer(link, data).and_then(|n| walk(n, data, ts, wire_len, &mut cx));
        count_tunnels(&mut self.tunnels, cx.tunnels);
        match walked? {
            Walked::Packet(m) => Ok(Decoded::Frame(m)),
            Walked::Fragment(f) => self.reassemble(&f, cx, ts, wire_len),
        }
    }

    /// Adds a fragment; decodes the datagram it completes. One level of fragments found inside a
    /// reassembled datagram (a fragmented packet in a fragmented tunnel) is reassembled too.
    fn reassemble(
        &mut self,
        f: &frag::Frag<'_>,
        cx: Ctx,
        ts: Timestamp,
        wire_len: u32,
    ) -> Result<Decoded<'_>, Skip> {
        let slot = self
            .table
            .add(FragKey::new(f, &cx), f, ts, wire_len)
            .ok_or(Skip::Fragment)?;
        let mut done = self.table.emit(slot, &mut self.scratch);
        let mut inner_round = false;
        let mut base = cx;
        let meta = loop {
            let frame = self.scratch.as_slice();
            let mut icx = Ctx { tunnels: 0, ..base };
            let walked = walk(
                Next::Upper(done.upper(frame)),
                frame,
                ts,
                done.wire,
                &mut icx,
            );
            count_tunnels(&mut self.tunnels, icx.tunnels);
            match walked? {
                Walked::Packet(m) => break m,
                Walked::Fragment(_) if inner_round => return Err(Skip::Malformed(DecodeLayer::Ip)),
                Walked::Fragment(inner) => {
                    let slot = self
                        .table
                        .add(FragKey::new(&inner, &icx), &inner, ts, done.wire)
                        .ok_or(Skip::Fragment)?;
                    done = self.table.emit(slot, &mut self.scratch);
                    inner_round = true;
                    base = icx;
                }
            }
        };
        Ok(Decoded::Reassembled {
            meta,
            frame: &self.scratch,
        })
    }

    /// Ends reassemblies that timed out by `now` (packet time). Fragments do this as they come;
    /// the reader calls it now and then so a quiet spell frees memory too.
    pub fn expire(&mut self, now: Timestamp) {
        self.table.expire(now);
    }

    #[cfg(any(test, feature = "_fuzz"))]
    /// Checks the reassembly's bookkeeping and caps, panicking on a mismatch (see
    /// [`frag::MAX_DATAGRAMS`] and the other caps); `expired`: the time of the last
    /// [`Decoder::expire`] just before. For the fuzz target.
    pub(crate) fn assert_consistent(&self, expired: Option<Timestamp>) {
        self.table.assert_consistent(expired);
        assert!(
            self.scratch.capacity() <= frag::MAX_DATAGRAM_BYTES,
            "scratch grew to {}",
            self.scratch.capacity()
        );
    }

    /// The counters so far.
    pub fn stats(&self) -> DecodeStats {
        let mut reassembly = self.table.stats();
        reassembly.held_bytes += self.scratch.capacity() as u64;
        DecodeStats {
            tunnels: self.tunnels,
            reassembly,
        }
    }
}

fn count_tunnels(counts: &mut [u64; TunnelKind::ALL.len()], mask: u8) {
    if mask != 0 {
        for (i, c) in counts.iter_mut().enumerate() {
            *c += u64::from(mask >> i & 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use super::*;
    use std::net::IpAddr;

    /// Cuts the fixture's TCP segment into IPv4 fragments of `sizes` bytes (the rest last).
    fn v4_fragments(id: u16, sizes: &[usize], seg: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0usize;
        for (i, &n) in sizes.iter().chain([&usize::MAX]).enumerate() {
            let end = at.saturating_add(n).min(seg.len());
            let last = end == seg.len();
            out.push(eth_with(
                ETH_IPV4,
                &ipv4_frag(6, [10, 1, 0, 1], id, at, !last, &seg[at..end]),
            ));
            at = end;
            if last || i > 64 {
                break;
            }
        }
        out
    }

    /// Feeds frames in order; the reassembled datagram's summary, payload and wire length.
    fn feed(d: &mut Decoder, frames: &[Vec<u8>]) -> Option<(PacketMeta, Vec<u8>)> {
        let mut got = None;
        for (i, f) in frames.iter().enumerate() {
            match d.decode(LinkType::Ethernet, Timestamp(i as u64), 0, f) {
                Ok(Decoded::Reassembled { meta, frame }) => {
                    got = Some((meta, meta.payload(frame).to_vec()));
                }
                Ok(Decoded::Frame(_)) => panic!("a fragment decoded as a frame"),
                Err(s) => assert_eq!(s, Skip::Fragment),
            }
        }
        got
    }

    #[test]
    fn decoder_reassembles_ipv4_fragments_in_any_order() {
        let mut seg = tcp_segment()[..20].to_vec();
        seg.extend((0..100u8).collect::<Vec<_>>());
        let frames = v4_fragments(7, &[32, 40], &seg);
        assert_eq!(frames.len(), 3);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let fs: Vec<Vec<u8>> = order.iter().map(|&i| frames[i].clone()).collect();
            let mut d = Decoder::new();
            let (m, payload) = feed(&mut d, &fs).expect("reassembled");
            assert_eq!(
                (m.sport, m.dport, m.transport),
                (50000, 443, Transport::Tcp)
            );
            assert_eq!(payload, (0..100u8).collect::<Vec<_>>());
            assert_eq!(
                m.wire_len,
                frames.iter().map(|f| f.len() as u32).sum::<u32>()
            );
            assert_eq!(m.ts, Timestamp(2), "the completing fragment's time");
            let s = d.stats().reassembly;
            assert_eq!((s.count(frag::ReasmEnd::Reassembled), s.pending), (1, 0));
        }
        // Stateless decode says "fragment" for each.
        assert!(frames
            .iter()
            .all(|f| decode(LinkType::Ethernet, Timestamp(0), 0, f) == Err(Skip::Fragment)));
    }

    #[test]
    fn decoder_reassembles_ipv6_fragment_headers_and_passes_atomic_fragments() {
        let seg = tcp_segment();
        // First fragment: 16 bytes of the segment; second: the rest. Fragment header: next TCP.
        let fh = |off: usize, more: bool| {
            let mut h = vec![6, 0];
            h.extend(((off as u16) | u16::from(more)).to_be_bytes());
            h.extend(0x0102_0304u32.to_be_bytes());
            h
        };
        let part = |off: usize, end: usize, more: bool| {
            let mut p = fh(off, more);
            p.extend(&seg[off..end]);
            eth_with(ETH_IPV6, &ipv6(44, &p))
        };
        let frames = [part(16, seg.len(), false), part(0, 16, true)];
        let mut d = Decoder::new();
        let (m, payload) = feed(&mut d, &frames).expect("reassembled");
        assert_eq!((m.dport, payload.as_slice()), (443, &b"abcd"[..]));
        assert_eq!(m.dst.ip(), "2001:db8::2".parse::<IpAddr>().unwrap());
        // An atomic fragment (offset 0, M clear) is an ordinary packet.
        let mut atomic = fh(0, false);
        atomic.extend(seg);
        let f = eth_with(ETH_IPV6, &ipv6(44, &atomic));
        assert_eq!(ok(&f).dport, 443);
        // A Fragment header cut short; hop-by-hop options after another header.
        assert_eq!(
            err(&eth_with(ETH_IPV6, &ipv6(44, &[6, 0, 0]))),
            Skip::Truncated(DecodeLayer::Ip)
        );
        let mut late_hbh = vec![0, 0, 0, 0, 0, 0, 0, 0]; // dest opts, next = hop-by-hop
        late_hbh.extend([6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            err(&eth_with(ETH_IPV6, &ipv6(60, &late_hbh))),
            Skip::Malformed(DecodeLayer::Ip)
        );
    }

    /// A GRE packet carrying a TCP segment, its outer IPv4 packet in two fragments.
    fn fragmented_gre() -> [Vec<u8>; 2] {
        let g = gre(0x0800, IPV4_TCP_SYN_ACK_PAYLOAD);
        [
            eth_with(
                ETH_IPV4,
                &ipv4_frag(47, [10, 0, 0, 1], 9, 0, true, &g[..24]),
            ),
            eth_with(
                ETH_IPV4,
                &ipv4_frag(47, [10, 0, 0, 1], 9, 24, false, &g[24..]),
            ),
        ]
    }

    #[test]
    fn decoder_reassembles_a_fragmented_outer_gre_packet() {
        let frames = fragmented_gre();
        let mut d = Decoder::new();
        let (m, payload) = feed(&mut d, &frames).expect("reassembled");
        assert_eq!((m.dport, payload.as_slice()), (443, &b"abcd"[..]));
        assert_eq!(
            d.stats().tunnels[TunnelKind::Gre.index()],
            1,
            "counted once, after reassembly"
        );
    }

    #[test]
    fn decoder_keeps_fragments_of_different_segments_apart() {
        let seg = tcp_segment();
        // The same inner fragments (same addresses and id) in VNI 1 and VNI 2; VNI 2's bytes
        // differ. Interleaved, each datagram is reassembled from its own pieces.
        let mut other = seg.to_vec();
        other[20..].copy_from_slice(b"wxyz");
        let wrap = |vni: u32, ip: Vec<u8>| {
            let mut inner = eth(ETH_IPV4);
            inner.extend(ip);
            eth_with(
                ETH_IPV4,
                &ipv4(17, &udp(1, VXLAN_PORT, &vxlan(vni, &inner))),
            )
        };
        let frag = |vni: u32, s: &[u8], off: usize, end: usize| {
            wrap(
                vni,
                ipv4_frag(6, [10, 1, 0, 1], 5, off, end < s.len(), &s[off..end]),
            )
        };
        let frames = [
            frag(1, seg, 0, 16),
            frag(2, &other, 0, 16),
            frag(2, &other, 16, other.len()),
            frag(1, seg, 16, seg.len()),
        ];
        let mut d = Decoder::new();
        let mut seen = Vec::new();
        for f in &frames {
            if let Ok(Decoded::Reassembled { meta, frame, .. }) =
                d.decode(LinkType::Ethernet, Timestamp(0), 0, f)
            {
                seen.push((meta.segment, meta.payload(frame).to_vec()));
            }
        }
        assert_eq!(
            seen,
            [
                (Segment::vxlan(2), b"wxyz".to_vec()),
                (Segment::vxlan(1), b"abcd".to_vec())
            ]
        );
        assert_eq!(d.stats().tunnels[TunnelKind::Vxlan.index()], 4);
    }

    #[test]
    fn decoder_fragment_cut_by_snaplen_is_truncated() {
        let f = eth_with(ETH_IPV4, &ipv4_frag(6, [10, 1, 0, 1], 3, 0, true, &[0; 32]));
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(
                LinkType::Ethernet,
                Timestamp(0),
                f.len() as u32,
                &f[..f.len() - 4]
            )
            .err(),
            Some(Skip::Truncated(DecodeLayer::Ip))
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Tunnelled and fragmented frames to mutate.
        fn seeds() -> Vec<Vec<u8>> {
            let v = ipv4(17, &udp(1, VXLAN_PORT, &vxlan(77, &inner_tagged_frame(1))));
            let [frag0, frag1] = fragmented_gre();
            vec![
                eth_with(ETH_IPV4, &ipv4(47, &gre(0x0800, &v))),
                eth_with(ETH_IPV6, &ipv6(41, &ipv6(4, IPV4_TCP_SYN_ACK_PAYLOAD))),
                frag0,
                frag1,
                eth_with(
                    0x8847,
                    &[&[0, 1, 1, 0x40][..], IPV4_TCP_SYN_ACK_PAYLOAD].concat(),
                ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            /// Any bytes changed in tunnelled frames and fragments, fed to one decoder in any
            /// order: a packet or a skip, never a panic; a payload always lies in its frame.
            #[test]
            fn mutated_tunnels_and_fragments_never_panic(
                edits in proptest::collection::vec((0usize..5, 0usize..200, any::<u8>()), 0..40),
                cut in proptest::collection::vec(0usize..200, 5),
            ) {
                let mut frames = seeds();
                for (f, at, v) in edits {
                    let fr = &mut frames[f];
                    let i = at % fr.len();
                    fr[i] = v;
                }
                let mut d = Decoder::new();
                for (f, c) in frames.iter().zip(cut) {
                    let f = &f[..f.len() - c.min(f.len()) / 4];
                    if let Ok(m) = decode(LinkType::Ethernet, Timestamp(0), 0, f) {
                        prop_assert!((m.payload_off + m.payload_len) as usize <= f.len());
                    }
                    match d.decode(LinkType::Ethernet, Timestamp(0), 0, f) {
                        Ok(Decoded::Frame(m)) => {
                            prop_assert!((m.payload_off + m.payload_len) as usize <= f.len());
                        }
                        Ok(Decoded::Reassembled { meta, frame, .. }) => {
                            prop_assert!((meta.payload_off + meta.payload_len) as usize <= frame.len());
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}
