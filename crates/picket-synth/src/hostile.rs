//! Hostile traffic: floods and evasions mixed with ordinary app flows, for the tests that check
//! that Picket neither crashes nor grows without bound nor misses the ordinary flows, and counts
//! each anomaly. Deterministic like every generator here.
//!
//! What [`hostile`] writes, in time order (clients in 10.66.0.0/16 unless said otherwise):
//!
//! | when | what | expected |
//! |---|---|---|
//! | 0 s | WhatsApp TLS from 10.66.0.1 | `whatsapp` |
//! | 0.1 s on | `syns` SYNs from random addresses and ports (2 µs apart), never answered | flows bounded by `--max-flows`, evictions counted |
//! | 1 s | 20 connections that send 60% of a post-quantum ClientHello and close | `hello_incomplete` |
//! | 1.5 s | a Zoom hello whose middle segment is sent again with other bytes | `reassembly_conflict`; first arrival kept, `zoom` |
//! | 2 s | a hello sent as 2,000 one-byte segments in a scattered order (a hole each) | read whole: `chat.signal.org` |
//! | 2.5 s | a hello with a 10,000-byte server name ending in `.whatsapp.net` | `sni_oversized`; no app |
//! | 3 s | a hello whose first extension claims 65,535 bytes | `tls_malformed` |
//! | 3.2 s | IPv4 with a 12-byte header, a total length past the frame, TCP with a header offset past the segment, UDP whose length lies | four decode errors |
//! | 3.5 s | a DNS query whose name is a compression loop | `dns_malformed` |
//! | 3.7 s | a datagram with the STUN cookie and a length past its end | `stun_malformed` |
//! | 3.9 s | a QUIC v1 long header with random bytes for a payload | `quic_undecryptable` |
//! | after the flood | Zoom TLS from 10.66.0.2, Signal TLS from 10.66.0.3 | `zoom`, `signal` |

use super::conv::{segments, Path, TcpConv, UdpConv};
use super::packet::{tcp_frame, udp_frame, IpHdr, Link, TcpHdr};
use super::rng::{mix, Rng};
use super::scenario::{Mixer, Source, EPOCH_NS};
use super::tls::{client_hello, ClientHelloSpec};
use super::Packet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const MS: u64 = 1_000_000;

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(ip), port)
}

/// A whole TLS conversation with `spec`'s hello, sent as `send` says.
fn tls(
    client: SocketAddr,
    server: SocketAddr,
    at: u64,
    seed: u64,
    send: impl FnOnce(&mut TcpConv, &[u8]),
    spec: ClientHelloSpec,
) -> Vec<Packet> {
    let mut c = TcpConv::new(Path::new(client, server), at, seed);
    c.handshake();
    let hello = client_hello(&spec);
    send(&mut c, &hello);
    c.server_send(&[0x16; 1200]);
    c.close();
    c.take_packets()
}

fn once(packets: Vec<Packet>) -> Source {
    let mut p = Some(packets);
    Box::new(move || p.take())
}

/// The offset of the extensions length in a one-record ClientHello.
fn extensions_at(h: &[u8]) -> Option<usize> {
    let mut pos = 5 + 4 + 2 + 32;
    pos += 1 + usize::from(*h.get(pos)?);
    pos += 2 + usize::from(u16::from_be_bytes([*h.get(pos)?, *h.get(pos + 1)?]));
    pos += 1 + usize::from(*h.get(pos)?);
    Some(pos)
}

/// One frame from 10.66.9.1 to 192.0.2.99, built by `f` and then damaged by `damage`.
fn damaged(at: u64, tcp: bool, damage: impl FnOnce(&mut Vec<u8>)) -> Packet {
    let ip = IpHdr {
        src: IpAddr::from([10, 66, 9, 1]),
        dst: IpAddr::from([192, 0, 2, 99]),
        ttl: 64,
        id: 7,
        options: false,
    };
    let mut frame = if tcp {
        let h = TcpHdr {
            src_port: 40_000,
            dst_port: 443,
            seq: 1,
            ack: 1,
            flags: 0x18,
            window: 1000,
            mss: None,
        };
        tcp_frame(&Link::default(), &ip, &h, &[0x16; 8])
    } else {
        udp_frame(&Link::default(), &ip, 40_001, 53, &[0; 40])
    };
    damage(&mut frame);
    Packet { ts_ns: at, frame }
}

/// The hostile capture: `syns` flood SYNs among the attacks listed in the module documentation.
pub fn hostile(syns: usize, seed: u64) -> impl Iterator<Item = Packet> {
    let t0 = EPOCH_NS;
    let whatsapp = ClientHelloSpec::new("g.whatsapp.net", seed);
    let mut head: Vec<(u64, Source)> = vec![(
        t0,
        once(tls(
            sa([10, 66, 0, 1], 50_001),
            sa([192, 0, 2, 61], 443),
            t0,
            seed,
            |c, h| c.client_send(h),
            whatsapp,
        )),
    )];
    // Incomplete hellos.
    for i in 0..20u16 {
        let at = t0 + 1000 * MS + u64::from(i) * MS;
        let mut spec = ClientHelloSpec::new("web.whatsapp.com", mix(seed, u64::from(i)));
        spec.post_quantum = true;
        let mut c = TcpConv::new(
            Path::new(sa([10, 66, 1, 1], 51_000 + i), sa([192, 0, 2, 62], 443)),
            at,
            mix(seed, 100 + u64::from(i)),
        );
        c.handshake();
        let h = client_hello(&spec);
        c.client_send(&h[..h.len() * 6 / 10]);
        c.close();
        head.push((at, once(c.take_packets())));
    }
    let mut tail: Vec<(u64, Source)> = Vec::new();
    // Conflicting overlap: the middle third again, with other bytes.
    let at = t0 + 1500 * MS;
    tail.push((
        at,
        once(tls(
            sa([10, 66, 2, 1], 52_000),
            sa([192, 0, 2, 63], 443),
            at,
            seed ^ 2,
            |c, h| {
                let third = h.len() / 3;
                let mut forged = h.to_vec();
                for b in &mut forged[third..2 * third] {
                    *b ^= 0x5a;
                }
                // The first two thirds, the middle again with forged bytes, then the rest.
                let r = segments(h.len(), &[third, third]);
                let parts: Vec<(&[u8], std::ops::Range<usize>)> = vec![
                    (h, r[0].clone()),
                    (h, r[1].clone()),
                    (&forged, r[1].clone()),
                    (h, r[2].clone()),
                ];
                c.client_segments_from(&parts);
            },
            ClientHelloSpec::new("zoom.us", seed ^ 2),
        )),
    ));
    // Tiny segments, last first.
    let at = t0 + 2000 * MS;
    tail.push((
        at,
        once(tls(
            sa([10, 66, 3, 1], 53_000),
            sa([192, 0, 2, 64], 443),
            at,
            seed ^ 3,
            |c, h| {
                // Offsets 7 apart, wrapping: every segment opens a new hole.
                let n = h.len().min(2000);
                let ranges: Vec<_> = (0..n).map(|k| (k * 7) % n).map(|i| i..i + 1).collect();
                c.client_segments(&h[..n], &ranges);
            },
            ClientHelloSpec::new("chat.signal.org", seed ^ 3),
        )),
    ));
    // A huge server name.
    let at = t0 + 2500 * MS;
    let huge = format!("{}.whatsapp.net", "a".repeat(10_000));
    tail.push((
        at,
        once(tls(
            sa([10, 66, 4, 1], 54_000),
            sa([192, 0, 2, 65], 443),
            at,
            seed ^ 4,
            |c, h| c.client_send(h),
            ClientHelloSpec::new(&huge, seed ^ 4),
        )),
    ));
    // A lying extension length.
    let at = t0 + 3000 * MS;
    tail.push((
        at,
        once(tls(
            sa([10, 66, 5, 1], 55_000),
            sa([192, 0, 2, 66], 443),
            at,
            seed ^ 5,
            |c, h| {
                let mut h = h.to_vec();
                if let Some(pos) = extensions_at(&h) {
                    // The first extension's length field.
                    if let Some(l) = h.get_mut(pos + 4..pos + 6) {
                        l.copy_from_slice(&[0xff, 0xff]);
                    }
                }
                c.client_send(&h);
            },
            ClientHelloSpec::new("zoom.us", seed ^ 5),
        )),
    ));
    // Damaged lower layers: IPv4 IHL 3; total length past the frame; TCP data offset past the
    // segment; UDP length longer than the datagram.
    let at = t0 + 3200 * MS;
    tail.push((
        at,
        once(vec![
            damaged(at, true, |f| f[14] = 0x43),
            damaged(at + MS, true, |f| f[16..18].copy_from_slice(&[0x05, 0xdc])),
            damaged(at + 2 * MS, true, |f| f[14 + 20 + 12] = 0xf0),
            damaged(at + 3 * MS, false, |f| {
                f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&[0x04, 0x00])
            }),
        ]),
    ));
    // A DNS compression loop, a lying STUN length, an undecryptable QUIC Initial.
    let at = t0 + 3500 * MS;
    let mut dns = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    dns.extend([0xc0, 12, 0, 1, 0, 1]);
    let mut stun = vec![0x00, 0x01, 0x04, 0x00];
    stun.extend(0x2112_A442u32.to_be_bytes());
    stun.extend([9; 32]);
    let mut rng = Rng::new(seed ^ 6);
    let mut quic = vec![0xc3, 0, 0, 0, 1, 8];
    quic.extend(rng.bytes(8));
    // SCID length 0, token length 0, Length (2-byte varint) = the bytes that follow.
    quic.extend([0, 0, 0x44, 0x9e]);
    quic.extend(rng.bytes(1200 - quic.len()));
    for (i, (port, payload)) in [(53, dns), (3478, stun), (443, quic)]
        .into_iter()
        .enumerate()
    {
        let at = at + i as u64 * 200 * MS;
        let mut u = UdpConv::new(
            Path::new(
                sa([10, 66, 6, 1 + i as u8], 56_000),
                sa([192, 0, 2, 67], port),
            ),
            at,
            seed ^ 7,
        );
        u.send(true, &payload);
        tail.push((at, once(u.take_packets())));
    }
    // After the flood: ordinary flows again.
    let after = t0 + 100 * MS + syns as u64 * 2_000 + 1000 * MS;
    for (k, (sni, client)) in [("zoom.us", 2u8), ("chat.signal.org", 3)]
        .into_iter()
        .enumerate()
    {
        let at = after + k as u64 * 100 * MS;
        tail.push((
            at,
            once(tls(
                sa([10, 66, 0, client], 50_000 + u16::from(client)),
                sa([192, 0, 2, 70 + client], 443),
                at,
                seed ^ (10 + k as u64),
                |c, h| c.client_send(h),
                ClientHelloSpec::new(sni, seed ^ (10 + k as u64)),
            )),
        ));
    }
    // The flood, lazily: one source per SYN, merged in start order with the attacks.
    let flood = (0..syns as u64).map(move |i| {
        let at = t0 + 100 * MS + i * 2_000;
        let r = mix(seed ^ 0xf100d, i);
        let src = Ipv4Addr::from((r as u32) | 0x0100_0000);
        let port = 1024 + (r >> 32) as u16 % 60_000;
        let dst = IpAddr::from([198, 51, 100, (r >> 48) as u8]);
        let packet = Packet {
            ts_ns: at,
            frame: tcp_frame(
                &Link::default(),
                &IpHdr {
                    src: IpAddr::V4(src),
                    dst,
                    ttl: 64,
                    id: r as u16,
                    options: false,
                },
                &TcpHdr {
                    src_port: port,
                    dst_port: 443,
                    seq: (r >> 16) as u32,
                    ack: 0,
                    flags: 0x02,
                    window: 64_240,
                    mss: Some(1460),
                },
                &[],
            ),
        };
        (at, once(vec![packet]))
    });
    let mut rest: Vec<(u64, Source)> = head;
    rest.extend(tail);
    rest.sort_by_key(|(at, _)| *at);
    Mixer::new(MergeByStart::new(rest.into_iter(), flood))
}

/// Merges two start-ordered source lists into one.
struct MergeByStart<A: Iterator<Item = (u64, Source)>, B: Iterator<Item = (u64, Source)>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = (u64, Source)>, B: Iterator<Item = (u64, Source)>> MergeByStart<A, B> {
    fn new(a: A, b: B) -> Self {
        MergeByStart {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = (u64, Source)>, B: Iterator<Item = (u64, Source)>> Iterator
    for MergeByStart<A, B>
{
    type Item = (u64, Source);

    fn next(&mut self) -> Option<(u64, Source)> {
        match (self.a.peek().map(|x| x.0), self.b.peek().map(|x| x.0)) {
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_is_time_ordered_and_deterministic() {
        let a: Vec<Packet> = hostile(1000, 1).collect();
        assert!(a.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        assert_eq!(a, hostile(1000, 1).collect::<Vec<_>>());
        let syns = a
            .iter()
            .filter(|p| p.frame.len() > 47 && p.frame[47] == 0x02)
            .count();
        assert!(syns >= 1000, "{syns}");
    }
}
