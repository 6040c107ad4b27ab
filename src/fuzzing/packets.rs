//! Fuzz entry points of whole frames: the decoder, tunnel decapsulation, IP fragment reassembly.

use super::Bytes;
use crate::capture::{LinkType, Timestamp};
use crate::decode::frag::{self, ReasmEnd};
use crate::decode::tunnel;
use crate::decode::{
    self, Addr, DecodeLayer, Decoded, Decoder, Next, PacketMeta, Segment, Skip, Transport,
    TunnelKind, MAX_MPLS_LABELS, MAX_TUNNEL_DEPTH, MAX_VLANS,
};
use crate::flow::{FlowHasher, FlowKey};
use std::net::Ipv4Addr;

/// The link types a frame can be read as, chosen by the first input byte.
const LINKS: [u32; 9] = [0, 1, 101, 228, 229, 113, 276, 108, 147];

/// One frame through the decoder (every link type, VLANs, IP options and extension headers,
/// tunnels): the first byte picks the link type, the rest is the frame.
///
/// Checks: the payload range lies inside the frame, VLAN fields are consistent, every skip
/// kind is listed in [`Skip::ALL`] at its index, and the flow key is the same from both sides.
pub fn decode_frame(data: &[u8]) {
    let mut b = Bytes::new(data);
    let link = LinkType::from_u32(LINKS[usize::from(b.u8()) % LINKS.len()]);
    let frame = b.rest();
    match decode::decode(link, Timestamp(1), 0, frame) {
        Ok(m) => {
            let end = m.payload_off as usize + m.payload_len as usize;
            assert!(
                end <= frame.len(),
                "payload {end} beyond frame {}",
                frame.len()
            );
            assert_eq!(m.payload(frame).len(), m.payload_len as usize);
            assert!(m.wire_len as usize >= frame.len());
            assert!(usize::from(m.nvlan) <= MAX_VLANS);
            for (i, &v) in m.vlans.iter().enumerate() {
                assert!(v < 4096);
                assert!(i < usize::from(m.nvlan) || v == 0);
            }
            if m.transport == Transport::Udp {
                assert_eq!((m.flags, m.seq, m.ack), (0, 0, 0));
            }
            let mut back = m;
            back.src = m.dst;
            back.dst = m.src;
            back.sport = m.dport;
            back.dport = m.sport;
            let ((k1, lo1), (k2, lo2)) = (FlowKey::of(&m), FlowKey::of(&back));
            assert_eq!(k1, k2);
            assert!(lo1 != lo2 || (m.src, m.sport) == (m.dst, m.dport));
            let h = FlowHasher::default();
            assert_eq!(k1.hash_with(&h), k2.hash_with(&h));
        }
        Err(skip) => {
            assert_eq!(Skip::ALL.get(skip.index()), Some(&skip), "{skip:?}");
            assert!(!skip.as_str().is_empty());
        }
    }
}

/// Where `inner` lies in `outer`: its start and end offsets, None when it is not a sub-slice.
fn span_in(outer: &[u8], inner: &[u8]) -> Option<(usize, usize)> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some((start, end))
}

/// Whether `needle` occurs in `hay`.
fn occurs(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// How `tunnel_decap` wraps the fuzzer's bytes, chosen by the first input byte: a valid outer
/// frame whose lengths match, so every tunnel kind is one byte away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Envelope {
    /// GRE (IP protocol 47) over IPv4 or IPv6 (`true`).
    Gre(bool),
    /// VXLAN: UDP to port 4789 over IPv4, or to 8472 over IPv6 (`true`).
    Vxlan(bool),
    /// GTP-U: UDP 2152 → 2152 over IPv4 or IPv6 (`true`).
    GtpU(bool),
    /// An MPLS label stack after an Ethernet header (ether type 0x8847).
    Mpls,
    /// A PPPoE session header after an Ethernet header (ether type 0x8864).
    Pppoe,
    /// An IP packet in IPv4 or IPv6 (`.0`), as IP protocol 4 or 41 (`.1`).
    IpIp(bool, u8),
    /// The bytes are the whole Ethernet frame.
    Ethernet,
    /// The bytes are the whole IP packet (raw link).
    Raw,
}

const ENVELOPES: [Envelope; 14] = [
    Envelope::Gre(false),
    Envelope::Gre(true),
    Envelope::Vxlan(false),
    Envelope::Vxlan(true),
    Envelope::GtpU(false),
    Envelope::GtpU(true),
    Envelope::Mpls,
    Envelope::Pppoe,
    Envelope::IpIp(false, 4),
    Envelope::IpIp(false, 41),
    Envelope::IpIp(true, 4),
    Envelope::IpIp(true, 41),
    Envelope::Ethernet,
    Envelope::Raw,
];

/// Outer addresses and UDP source port of the envelopes, to tell the outer flow from an inner one.
const OUTER_V4: [[u8; 4]; 2] = [[198, 18, 0, 1], [198, 18, 0, 2]];
const OUTER_V6: [[u8; 16]; 2] = [
    [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ],
    [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ],
];
const OUTER_SPORT: u16 = 49_152;

impl Envelope {
    /// The Ethernet frame around `payload`, the offset of `payload` in it, and its link type.
    fn wrap(self, payload: &[u8]) -> (Vec<u8>, usize, LinkType) {
        let mut f = Vec::with_capacity(payload.len() + 70);
        let eth = |f: &mut Vec<u8>, ether_type: u16| {
            f.extend([2, 0, 0x5e, 0, 0, 1, 2, 0, 0x5e, 0, 0, 2]);
            f.extend(ether_type.to_be_bytes());
        };
        // An IP header for `len` bytes of `proto`.
        let ip = |f: &mut Vec<u8>, v6: bool, proto: u8, len: usize| {
            if v6 {
                eth(f, 0x86dd);
                f.extend([0x60, 0, 0, 0]);
                f.extend((len as u16).to_be_bytes());
                f.extend([proto, 64]);
                f.extend(OUTER_V6[0]);
                f.extend(OUTER_V6[1]);
            } else {
                eth(f, 0x0800);
                f.extend([0x45, 0]);
                f.extend(((20 + len) as u16).to_be_bytes());
                f.extend([0, 1, 0x40, 0, 64, proto, 0, 0]);
                f.extend(OUTER_V4[0]);
                f.extend(OUTER_V4[1]);
            }
        };
        let udp = |f: &mut Vec<u8>, v6: bool, sport: u16, dport: u16| {
            ip(f, v6, 17, 8 + payload.len());
            f.extend(sport.to_be_bytes());
            f.extend(dport.to_be_bytes());
            f.extend(((8 + payload.len()) as u16).to_be_bytes());
            f.extend([0, 0]);
        };
        let link = match self {
            Envelope::Gre(v6) => {
                ip(&mut f, v6, 47, payload.len());
                LinkType::Ethernet
            }
            Envelope::Vxlan(v6) => {
                let port = if v6 { 8472 } else { 4789 };
                udp(&mut f, v6, OUTER_SPORT, port);
                LinkType::Ethernet
            }
            Envelope::GtpU(v6) => {
                udp(&mut f, v6, 2152, 2152);
                LinkType::Ethernet
            }
            Envelope::Mpls => {
                eth(&mut f, 0x8847);
                LinkType::Ethernet
            }
            Envelope::Pppoe => {
                eth(&mut f, 0x8864);
                LinkType::Ethernet
            }
            Envelope::IpIp(v6, proto) => {
                ip(&mut f, v6, proto, payload.len());
                LinkType::Ethernet
            }
            Envelope::Ethernet => LinkType::Ethernet,
            Envelope::Raw => LinkType::Raw,
        };
        let at = f.len();
        f.extend(payload);
        (f, at, link)
    }
}

/// The header length a GRE packet's flags announce (RFC 2784, RFC 2890): 4, plus 4 for each of
/// the checksum, key and sequence number present.
fn gre_header_len(flags: u16) -> usize {
    4 + 4 * (flags & 0xB000).count_ones() as usize
}

/// [`tunnel::gre`] on the bytes after an outer IP header, checked against the RFC layout: the
/// layer inside starts where the flags (and an ERSPAN header) say and runs to the end; NVGRE
/// and ERSPAN II/III name their segment; refusals are tunnel damage or "not IP".
fn check_gre(p: &[u8]) {
    let flags = u16::from_be_bytes([
        p.first().copied().unwrap_or(0),
        p.get(1).copied().unwrap_or(0),
    ]);
    let proto = u16::from_be_bytes([
        p.get(2).copied().unwrap_or(0),
        p.get(3).copied().unwrap_or(0),
    ]);
    match tunnel::gre(p) {
        Ok(d) => {
            assert!(p.len() >= 4 && flags & 0x4C07 == 0, "{flags:#06x} accepted");
            let (inner, ip) = match d.next {
                Next::Ip(b) => (b, true),
                Next::Ether(b) | Next::Mpls(b) => (b, false),
                other => panic!("GRE gave {other:?}"),
            };
            let (start, end) = span_in(p, inner).expect("GRE inner within the packet");
            assert_eq!(end, p.len(), "GRE inner does not run to the end");
            let base = gre_header_len(flags);
            let key = (flags & 0x2000 != 0).then(|| {
                let at = if flags & 0x8000 != 0 { 8 } else { 4 };
                u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
            });
            let (want_start, want_seg, want_kind) = match proto {
                0x0800 | 0x86dd | 0x8847 | 0x8848 => (base, None, TunnelKind::Gre),
                0x6558 => (base, key.map(|k| Segment::nvgre(k >> 8)), TunnelKind::Gre),
                0x88be if flags & 0x1000 == 0 => (base, None, TunnelKind::Erspan),
                0x88be => {
                    let s = u16::from_be_bytes([p[base + 2], p[base + 3]]);
                    (base + 8, Some(Segment::erspan(s)), TunnelKind::Erspan)
                }
                0x22eb => {
                    let s = u16::from_be_bytes([p[base + 2], p[base + 3]]);
                    let sub = if p[base + 11] & 1 != 0 { 8 } else { 0 };
                    (
                        base + 12 + sub,
                        Some(Segment::erspan(s)),
                        TunnelKind::Erspan,
                    )
                }
                other => panic!("GRE protocol {other:#06x} accepted"),
            };
            assert_eq!(
                (start, d.segment, d.kind),
                (want_start, want_seg, want_kind),
                "GRE {flags:#06x} {proto:#06x}"
            );
            assert_eq!(
                ip,
                matches!(proto, 0x0800 | 0x86dd)
                    || (proto == 0x22eb && p[base + 10] >> 2 & 0x1f == 2)
            );
        }
        Err(Skip::Truncated(DecodeLayer::Tunnel)) => {
            assert!(
                p.len() < gre_header_len(flags) + 20,
                "truncated at {} bytes",
                p.len()
            );
        }
        Err(Skip::Malformed(DecodeLayer::Tunnel) | Skip::NotIp) => {}
        Err(other) => panic!("GRE refused as {other:?}"),
    }
}

/// [`tunnel::vxlan`]: VXLAN exactly when the I flag is set and 8 bytes are there; the frame
/// inside starts after them; the VNI is bytes 4 to 6.
fn check_vxlan(p: &[u8]) {
    let d = tunnel::vxlan(p);
    assert_eq!(d.is_some(), p.len() >= 8 && p[0] & 0x08 != 0);
    if let Some(d) = d {
        assert_eq!(d.next, Next::Ether(&p[8..]));
        let vni = u32::from_be_bytes([0, p[4], p[5], p[6]]);
        assert_eq!(
            (d.kind, d.segment),
            (TunnelKind::Vxlan, Some(Segment::vxlan(vni)))
        );
    }
}

/// [`tunnel::gtp_u`]: a G-PDU of version 1 whose IP packet lies after the 8-byte header (and
/// whole extension headers, 4-byte units) and within the header's length.
fn check_gtp_u(p: &[u8]) {
    let Some(d) = tunnel::gtp_u(p) else {
        return;
    };
    assert_eq!((p[0] >> 5, p[0] & 0x10, p[1]), (1, 0x10, 0xff));
    let Next::Ip(inner) = d.next else {
        panic!("GTP-U gave {:?}", d.next)
    };
    let (start, end) = span_in(p, inner).expect("GTP-U inner within the packet");
    let len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    assert!(
        start >= 8 && start % 4 == 0 && end <= 8 + len,
        "{start}..{end} of {len}"
    );
    assert!(start == 8 || p[0] & 0x07 != 0);
    assert!(matches!(inner.first().map(|v| v >> 4), Some(4 | 6)));
    assert_eq!((d.kind, d.segment), (TunnelKind::GtpU, None));
}

/// [`tunnel::mpls`]: the payload starts after the first entry with the bottom-of-stack bit
/// (and a control word before Ethernet), within [`MAX_MPLS_LABELS`] entries.
fn check_mpls(p: &[u8]) {
    let bottom = p
        .chunks_exact(4)
        .take(MAX_MPLS_LABELS)
        .position(|e| e[2] & 1 != 0);
    match tunnel::mpls(p) {
        Ok(next) => {
            let at = 4 * (bottom.expect("a stack without a bottom accepted") + 1);
            match next {
                Next::Ip(b) => assert_eq!(span_in(p, b), Some((at, p.len()))),
                Next::Ether(b) => {
                    assert_eq!(p[at] >> 4, 0, "no control word");
                    assert_eq!(span_in(p, b), Some((at + 4, p.len())));
                }
                other => panic!("MPLS gave {other:?}"),
            }
        }
        Err(Skip::Malformed(DecodeLayer::Tunnel)) => {
            assert!(bottom.is_none() && p.len() >= 4 * MAX_MPLS_LABELS);
        }
        Err(Skip::Truncated(DecodeLayer::Tunnel) | Skip::NotIp) => {}
        Err(other) => panic!("MPLS refused as {other:?}"),
    }
}

/// Tunnel decapsulation, directly and through the decoder: the first byte picks an outer
/// envelope (GRE or VXLAN or GTP-U over IPv4 or IPv6, MPLS, PPPoE, the four IP-in-IP kinds, or
/// none: an Ethernet frame or a raw IP packet), the rest is what it carries.
///
/// Checks: each tunnel header function (GRE with ERSPAN I–III and NVGRE, VXLAN, GTP-U, MPLS)
/// against the RFC layout: where the inner layer starts, that it lies in the packet, which
/// segment it names. Through [`decode`]: no more than [`MAX_TUNNEL_DEPTH`] tunnels, the kinds
/// counted agree with the depth and the envelope, the flow's ports are a real transport header
/// in the frame right before the payload and its addresses an IP header's pair before that;
/// the same frame said to be longer on the wire (snaplen) decodes the same; the reassembling
/// [`Decoder`] agrees with the stateless decode.
pub fn tunnel_decap(data: &[u8]) {
    let mut b = Bytes::new(data);
    let env = ENVELOPES[usize::from(b.u8()) % ENVELOPES.len()];
    let payload = b.take(60_000);
    match env {
        Envelope::Gre(_) => check_gre(payload),
        Envelope::Vxlan(_) => check_vxlan(payload),
        Envelope::GtpU(_) => check_gtp_u(payload),
        Envelope::Mpls => check_mpls(payload),
        _ => {}
    }
    let (frame, _, link) = env.wrap(payload);
    let frame = &frame[..];
    let (got, trace) = decode::decode_traced(link, Timestamp(1), 0, frame);
    assert!(trace.depth <= MAX_TUNNEL_DEPTH, "{trace:?}");
    assert!(
        trace.tunnels.count_ones() <= u32::from(trace.depth),
        "{trace:?}"
    );
    assert!(trace.depth > 0 || (trace.tunnels == 0 && trace.segment.is_none()));
    if got == Err(Skip::TunnelDepth) {
        assert_eq!(trace.depth, MAX_TUNNEL_DEPTH);
    }
    // The same result from the reader's decoder, and its tunnel counts are the kinds seen.
    let mut d = Decoder::new();
    let stateful = d.decode(link, Timestamp(1), 0, frame);
    match (&got, stateful) {
        (Ok(m), Ok(Decoded::Frame(m2))) => assert_eq!(*m, m2),
        (Err(e), Err(e2)) => assert_eq!(*e, e2),
        (a, b) => panic!("decode gave {a:?}, the decoder {b:?}"),
    }
    for k in TunnelKind::ALL {
        let seen = u64::from(trace.tunnels >> k.index() & 1);
        assert_eq!(d.stats().tunnels[k.index()], seen, "{k}");
    }
    let m = match got {
        Ok(m) => m,
        Err(skip) => {
            assert_eq!(Skip::ALL.get(skip.index()), Some(&skip), "{skip:?}");
            return;
        }
    };
    assert_eq!(m.segment, trace.segment);
    let bit = |k: TunnelKind| trace.tunnels >> k.index() & 1 != 0;
    let outer_udp = |m: &PacketMeta, v6: bool, sport: u16, dport: u16| {
        let (s, d) = if v6 {
            (Addr(OUTER_V6[0]), Addr(OUTER_V6[1]))
        } else {
            (
                Addr::from(Ipv4Addr::from(OUTER_V4[0])),
                Addr::from(Ipv4Addr::from(OUTER_V4[1])),
            )
        };
        trace.depth == 0 && (m.src, m.dst, m.sport, m.dport) == (s, d, sport, dport)
    };
    match env {
        Envelope::Gre(_) => assert!(bit(TunnelKind::Gre) || bit(TunnelKind::Erspan)),
        Envelope::Vxlan(v6) => {
            let port = if v6 { 8472 } else { 4789 };
            assert!(bit(TunnelKind::Vxlan) || outer_udp(&m, v6, OUTER_SPORT, port));
        }
        Envelope::GtpU(v6) => assert!(bit(TunnelKind::GtpU) || outer_udp(&m, v6, 2152, 2152)),
        Envelope::Mpls => assert!(bit(TunnelKind::Mpls)),
        Envelope::IpIp(..) => assert!(bit(TunnelKind::IpIp)),
        Envelope::Pppoe | Envelope::Ethernet | Envelope::Raw => {}
    }
    // The flow key's fields come from the frame: the ports from the transport header the
    // payload follows, the addresses from an IP header before it.
    let off = m.payload_off as usize;
    assert!(off + m.payload_len as usize <= frame.len());
    let ports = [m.sport.to_be_bytes(), m.dport.to_be_bytes()].concat();
    let l4 = match m.transport {
        Transport::Udp => {
            assert!(off >= 8, "UDP payload at {off}");
            assert_eq!(frame[off - 8..off - 4], ports[..], "UDP ports");
            off - 8
        }
        Transport::Tcp => (20..=60)
            .filter(|&n| n <= off)
            .map(|n| off - n)
            .find(|&h| {
                frame[h..h + 4] == ports[..] && usize::from(frame[h + 12] >> 4) * 4 == off - h
            })
            .expect("no TCP header before the payload"),
    };
    let before = &frame[..l4];
    let pair = |a: Addr, b: Addr| [a.0, b.0].concat();
    let found = occurs(before, &pair(m.src, m.dst))
        || match (m.src.ip(), m.dst.ip()) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
                occurs(before, &[s.octets(), d.octets()].concat())
            }
            _ => false,
        };
    assert!(
        found,
        "the flow's addresses are not in the frame before {l4}"
    );
    // Lax for a longer wire length: what decoded with the whole frame decodes the same.
    let wire = frame.len() as u32 + 64;
    let (lax, _) = decode::decode_traced(link, Timestamp(1), wire, frame);
    assert_eq!(
        lax,
        Ok(PacketMeta {
            wire_len: wire,
            ..m
        })
    );
}

/// Most frames one `ip_fragments` input sends, repeats included.
const MAX_FRAG_FRAMES: usize = 4096;

/// A sequence of frames through the reader's reassembling [`Decoder`].
///
/// Input: records of `ctl(1) len(2) frame(len)`, at most 64. `ctl & 3`: time step before the
/// frame (0, 1 ms, 1 s, 31 s: past the reassembly timeout); `ctl & 4`: a raw IP packet rather
/// than an Ethernet frame; `ctl & 8`: expire reassemblies after it; `ctl & 0x40`: a flood, the
/// frame sent `2^(n & 11)` times with a counter XORed into the two bytes at `pos`, for the
/// next two bytes `n pos` (so each copy is a new datagram, past the caps).
///
/// Checks, after every frame: the caps of [`crate::decode::frag`] (datagrams, bytes held), and
/// after every record the table's bookkeeping and per-datagram caps; a reassembled datagram is at
/// most 64 KiB, its payload lies in it and its wire length covers it; a frame that is no
/// fragment decodes as the stateless [`decode`] decodes it; the counters never go back. At the
/// end, expiring everything leaves nothing held.
pub fn ip_fragments(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut d = Decoder::new();
    let mut ts = Timestamp(1_700_000_000_000_000_000);
    let mut before = d.stats();
    let mut sent = 0usize;
    let mut records = 0;
    let mut copy = Vec::new();
    while !b.is_empty() && records < 64 && sent < MAX_FRAG_FRAMES {
        records += 1;
        let ctl = b.u8();
        let len = usize::from(b.u16());
        let (repeats, pos) = if ctl & 0x40 != 0 {
            (1usize << (b.u8() & 11), Some(usize::from(b.u8())))
        } else {
            (1, None)
        };
        let frame = b.take(len);
        let link = if ctl & 4 != 0 {
            LinkType::Raw
        } else {
            LinkType::Ethernet
        };
        ts = ts.plus_nanos([0, 1_000_000, 1_000_000_000, 31_000_000_000][usize::from(ctl & 3)]);
        let copies = repeats.min(MAX_FRAG_FRAMES - sent);
        for n in 0..copies {
            sent += 1;
            copy.clear();
            copy.extend_from_slice(frame);
            if let Some(f) = pos.and_then(|p| copy.get_mut(p..p + 2)) {
                let x = (n as u16).to_be_bytes();
                f[0] ^= x[0];
                f[1] ^= x[1];
            }
            let stateless = decode::decode(link, ts, 0, &copy);
            match d.decode(link, ts, 0, &copy) {
                Ok(Decoded::Frame(m)) => assert_eq!(stateless, Ok(m)),
                Ok(Decoded::Reassembled { meta, frame }) => {
                    assert_eq!(stateless, Err(Skip::Fragment));
                    assert!(frame.len() <= frag::MAX_DATAGRAM_BYTES, "{}", frame.len());
                    let end = meta.payload_off as usize + meta.payload_len as usize;
                    assert!(end <= frame.len(), "payload {end} beyond {}", frame.len());
                    assert!(meta.wire_len as usize >= frame.len());
                    assert_eq!(meta.ts, ts);
                    let done = d.stats().reassembly.count(ReasmEnd::Reassembled);
                    assert!(done > before.reassembly.count(ReasmEnd::Reassembled));
                }
                Err(skip) => {
                    assert_eq!(Skip::ALL.get(skip.index()), Some(&skip), "{skip:?}");
                    // A frame the stateless decode reads whole goes the same way.
                    if stateless != Err(Skip::Fragment) {
                        assert_eq!(stateless, Err(skip));
                    }
                }
            }
            let expired = (ctl & 8 != 0).then(|| {
                d.expire(ts);
                ts
            });
            // The whole table after each record (every copy of a flood would cost O(slots)
            // per frame).
            if n + 1 == copies {
                d.assert_consistent(expired);
            }
            let now = d.stats();
            let r = &now.reassembly;
            assert!(r.pending <= frag::MAX_DATAGRAMS as u64);
            let cap = (frag::MAX_HELD_BYTES + frag::MAX_DATAGRAM_BYTES) as u64;
            assert!(r.held_bytes <= cap, "{} bytes held", r.held_bytes);
            assert!(
                r.pending <= before.reassembly.pending + 2,
                "two datagrams per frame at most"
            );
            assert!(r.duplicates >= before.reassembly.duplicates);
            for (a, b) in r.ended.iter().zip(before.reassembly.ended) {
                assert!(*a >= b, "an outcome counter went back");
            }
            for (a, b) in now.tunnels.iter().zip(before.tunnels) {
                assert!(*a >= b && *a - b <= 2, "tunnel counts");
            }
            before = now;
        }
    }
    let end = ts.plus_nanos(frag::TIMEOUT_NS);
    d.expire(end);
    d.assert_consistent(Some(end));
    assert_eq!(d.stats().reassembly.pending, 0);
}
