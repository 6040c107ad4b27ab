//! DPI evasion as the tools users install shape it: one TCP or QUIC conversation per technique,
//! each to WhatsApp Web (`web.whatsapp.com`, a flagged app) with, where the technique sends one,
//! a decoy hello for `www.example1.org` (as long as the real name, so decoy and real bytes line
//! up, as the tools' fakes do). Every packet the server would read gives it exactly the real
//! hello; the decoys are made so a Linux server drops them.
//!
//! The techniques, by the tool options that send them (from their documentation):
//!
//! | client | technique | tools |
//! |---|---|---|
//! | 10.77.0.1 | hello cut in two segments inside the name | ByeDPI `--split`, zapret `split`, GoodbyeDPI `-f`/`-e`, SpoofDPI |
//! | 10.77.0.2 | cut at several places | zapret `multisplit` |
//! | 10.77.0.3 | second part first | ByeDPI `--disorder`, zapret `disorder` |
//! | 10.77.0.4 | every part in reverse order | zapret `multidisorder` |
//! | 10.77.0.5 | 3-byte segments overlapping by one, shuffled | Geneva-style segmentation |
//! | 10.77.0.6 | two TLS records cut inside the name | ByeDPI `--tlsrec` |
//! | 10.77.0.7 | decoy hello first, bad TCP checksum | zapret `fake` + `badsum`, GoodbyeDPI `--wrong-chksum` |
//! | 10.77.0.8 | decoy hello first, TTL that expires on the way | zapret `--dpi-desync-ttl`, GoodbyeDPI `--set-ttl`, ByeDPI `--fake` + `--ttl` |
//! | 10.77.0.9 | decoy hello first, TCP MD5 option | zapret `md5sig` |
//! | 10.77.0.10 | decoy hello first, no ACK flag | zapret `datanoack` |
//! | 10.77.0.11 | decoy hello first, timestamp 600,000 older | zapret `ts` |
//! | 10.77.0.12 | decoy hello first, sequence number 10,000 back | zapret `badseq`, GoodbyeDPI `--wrong-seq` |
//! | 10.77.0.13 | decoy parts with bad checksums around each real part | zapret `fakedsplit` |
//! | 10.77.0.14 | the same, parts in reverse order | zapret `fakeddisorder` |
//! | 10.77.0.15 | decoy hello on the SYN, the SYN-ACK acknowledges only the SYN | zapret `syndata` |
//! | 10.77.0.16 | first part plus one urgent (out-of-band) byte | ByeDPI `--oob` |
//! | 10.77.0.17 | first segment starts before the stream with junk | zapret `split-seqovl` |
//! | 10.77.0.18 | second part first, led by zeros over the first part's end; first part after | zapret `multidisorder` + `seqovl` |
//! | 10.77.0.19 | forged RST with a bad checksum before the hello, hello 6 s later | zapret `rst` + `badsum` |
//! | 10.77.0.20 | forged RST with a short TTL before the hello, hello 6 s later | zapret `rst` + `ttl` |
//! | 10.77.0.21 | a hello with two `server_name` extensions (decoy second) | probes of DPI parsers |
//! | 10.77.0.22 | QUIC: eight 1-byte datagrams, then the Initial | zapret `fake` for QUIC with junk |
//! | 10.77.0.23 | QUIC: six fake Initials (another name, their own connection ids) with bad UDP checksums, then the real one, answered | zapret `fake` + `--dpi-desync-fake-quic` + `--dpi-desync-repeats=6` + `badsum` |
//! | 10.77.0.24 | QUIC: the same with a TTL of 4, the client's side only | zapret `fake` + `--dpi-desync-ttl` (or `autottl`) |
//!
//! zapret's TCP-only foolings (`md5sig`, `badseq`, `datanoack`, `ts`) do not apply to UDP;
//! GoodbyeDPI's QUIC option (`-q`) blocks QUIC to force TCP rather than fake it; Geneva's
//! published strategies shape TCP (and DNS over UDP), none a QUIC Initial.
//!
//! Expected of each: the real name, or (10.77.0.21, where no server would take the hello) every
//! name among `sni_candidates` and an `evasion` anomaly on the flow's own event.

use super::packet::{checksum, ethernet, l4_checksum, Link, PROTO_TCP, PROTO_UDP};
use super::quic::{crypto_frame, seal_client_initial};
use super::rng::Rng;
use super::scenario::EPOCH_NS;
use super::tls::{client_hello, ClientHelloSpec};
use super::Packet;
use std::net::{IpAddr, Ipv4Addr};

const MS: u64 = 1_000_000;
/// The name every conversation wants.
pub const REAL: &str = "web.whatsapp.com";
/// The decoys' name.
pub const DECOY: &str = "www.example1.org";
/// The server every conversation talks to.
const SERVER: [u8; 4] = [192, 0, 2, 77];

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

/// One technique: its client address's last byte, its name, and whether the real name is
/// expected as `sni` (else every candidate and an `evasion` anomaly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Technique {
    /// The client is 10.77.0.`n`.
    pub n: u8,
    /// Short name.
    pub name: &'static str,
    /// The real name is the flow's `sni`.
    pub real_sni: bool,
}

/// The techniques [`evasion`] writes, in order.
pub const TECHNIQUES: &[Technique] = &[
    t(1, "split"),
    t(2, "multisplit"),
    t(3, "disorder"),
    t(4, "multidisorder"),
    t(5, "overlap3_shuffled"),
    t(6, "tlsrec"),
    t(7, "fake_badsum"),
    t(8, "fake_ttl"),
    t(9, "fake_md5sig"),
    t(10, "fake_datanoack"),
    t(11, "fake_ts"),
    t(12, "fake_badseq"),
    t(13, "fakedsplit"),
    t(14, "fakeddisorder"),
    t(15, "syndata"),
    t(16, "oob"),
    t(17, "seqovl"),
    t(18, "disorder_seqovl_zeros"),
    t(19, "rst_badsum"),
    t(20, "rst_ttl"),
    Technique {
        n: 21,
        name: "duplicate_sni",
        real_sni: false,
    },
    t(22, "quic_junk_first"),
    t(23, "quic_fake_badsum"),
    t(24, "quic_fake_ttl"),
];

const fn t(n: u8, name: &'static str) -> Technique {
    Technique {
        n,
        name,
        real_sni: true,
    }
}

/// How one segment is made.
#[derive(Clone, Copy, Debug)]
struct Seg<'a> {
    from_client: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &'a [u8],
    ttl: u8,
    bad_sum: bool,
    md5: bool,
    ts: Option<u32>,
    urgent: u16,
}

/// One TCP connection written segment by segment.
struct Conn {
    client: Ipv4Addr,
    sport: u16,
    now: u64,
    /// Client and server ISNs.
    isn: [u32; 2],
    /// Timestamps on every client segment (the clock's value now).
    ts: Option<u32>,
    ip_id: u16,
    out: Vec<Packet>,
}

impl Conn {
    fn new(n: u8, at: u64, rng: &mut Rng) -> Self {
        Conn {
            client: Ipv4Addr::new(10, 77, 0, n),
            sport: 40_000 + u16::from(n),
            now: at,
            isn: [rng.next_u64() as u32, rng.next_u64() as u32],
            ts: None,
            ip_id: u16::from(n) << 8,
            out: Vec::new(),
        }
    }

    fn base(&self) -> u32 {
        self.isn[0].wrapping_add(1)
    }

    fn server_next(&self) -> u32 {
        self.isn[1].wrapping_add(1)
    }

    fn seg<'p>(&self, flags: u8, off: i64, payload: &'p [u8]) -> Seg<'p> {
        Seg {
            from_client: true,
            flags,
            seq: self.base().wrapping_add(off as u32),
            ack: self.server_next(),
            payload: &[],
            ttl: 64,
            bad_sum: false,
            md5: false,
            ts: self.ts,
            urgent: 0,
        }
        .with(payload)
    }

    fn emit(&mut self, s: Seg<'_>) {
        let (src, dst, sport, dport) = if s.from_client {
            (self.client, Ipv4Addr::from(SERVER), self.sport, 443)
        } else {
            (Ipv4Addr::from(SERVER), self.client, 443, self.sport)
        };
        let mut opts = Vec::new();
        if s.flags & SYN != 0 {
            opts.extend([2, 4, 0x05, 0xb4, 1, 3, 3, 7]);
        }
        if let Some(v) = s.ts {
            opts.extend([1, 1, 8, 10]);
            opts.extend(v.to_be_bytes());
            opts.extend([0; 4]);
        }
        if s.md5 {
            opts.extend([1, 1, 19, 18]);
            opts.extend([0x5a; 16]);
        }
        let mut l4 = Vec::with_capacity(20 + opts.len() + s.payload.len());
        l4.extend(sport.to_be_bytes());
        l4.extend(dport.to_be_bytes());
        l4.extend(s.seq.to_be_bytes());
        l4.extend(s.ack.to_be_bytes());
        l4.extend([((20 + opts.len()) / 4 * 16) as u8, s.flags]);
        l4.extend(64_240u16.to_be_bytes());
        l4.extend([0, 0]);
        l4.extend(s.urgent.to_be_bytes());
        l4.extend(opts);
        l4.extend_from_slice(s.payload);
        let mut sum = l4_checksum(IpAddr::V4(src), IpAddr::V4(dst), PROTO_TCP, &l4);
        if s.bad_sum {
            sum ^= 0x1234;
        }
        l4[16..18].copy_from_slice(&sum.to_be_bytes());
        self.out.push(Packet {
            ts_ns: self.now,
            frame: ipv4_frame(src, dst, s.ttl, self.ip_id, PROTO_TCP, &l4),
        });
        self.ip_id = self.ip_id.wrapping_add(1);
        self.now += 80_000;
        if let Some(v) = self.ts.as_mut() {
            *v = v.wrapping_add(1);
        }
    }

    fn handshake(&mut self) {
        let syn = Seg {
            from_client: true,
            flags: SYN,
            seq: self.isn[0],
            ack: 0,
            payload: &[],
            ttl: 64,
            bad_sum: false,
            md5: false,
            ts: self.ts,
            urgent: 0,
        };
        self.emit(syn);
        self.syn_ack(self.base());
        self.emit(self.seg(ACK, 0, &[]));
    }

    fn syn_ack(&mut self, ack: u32) {
        self.now += 20 * MS;
        self.emit(Seg {
            from_client: false,
            flags: SYN | ACK,
            seq: self.isn[1],
            ack,
            payload: &[],
            ttl: 52,
            bad_sum: false,
            md5: false,
            ts: None,
            urgent: 0,
        });
    }

    /// The server's reply to a hello of `len` bytes, then FINs.
    fn finish(&mut self, len: usize) {
        self.now += 20 * MS;
        let end = self.base().wrapping_add(len as u32);
        let reply = [0x16; 1200];
        let s = self.server_next();
        for (flags, seq, payload) in [(PSH | ACK, s, &reply[..]), (FIN | ACK, s + 1200, &[][..])] {
            self.emit(Seg {
                from_client: false,
                flags,
                seq,
                ack: end,
                payload,
                ttl: 52,
                bad_sum: false,
                md5: false,
                ts: None,
                urgent: 0,
            });
        }
        let fin = Seg {
            ack: s.wrapping_add(1201),
            ..self.seg(FIN | ACK, len as i64, &[])
        };
        self.emit(fin);
    }
}

impl<'a> Seg<'a> {
    fn with<'b>(self, payload: &'b [u8]) -> Seg<'b> {
        Seg {
            from_client: self.from_client,
            flags: self.flags,
            seq: self.seq,
            ack: self.ack,
            payload,
            ttl: self.ttl,
            bad_sum: self.bad_sum,
            md5: self.md5,
            ts: self.ts,
            urgent: self.urgent,
        }
    }
}

/// An Ethernet frame of one IPv4 packet (no options) around `l4`.
fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, id: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.extend([0x45, 0]);
    h.extend(((20 + l4.len()) as u16).to_be_bytes());
    h.extend(id.to_be_bytes());
    h.extend([0x40, 0, ttl, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let link = Link {
        src_mac: [0x02, 0, 10, 77, 0, src.octets()[3]],
        dst_mac: [0x02, 0, 192, 0, 2, 77],
        vlans: Vec::new(),
    };
    ethernet(&link, 0x0800, &[&h, l4])
}

/// Where the server name starts in a hello's record bytes.
fn name_at(hello: &[u8], name: &str) -> usize {
    hello
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .unwrap_or(hello.len() / 2)
}

/// The hello with a second server_name extension (for `other`) at the end of its extension
/// list; lengths fixed up (one-record hellos only).
pub fn with_second_server_name(hello: &[u8], other: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let n = other.len() as u16;
    ext.extend([0, 0]);
    ext.extend((n + 5).to_be_bytes());
    ext.extend((n + 3).to_be_bytes());
    ext.push(0);
    ext.extend(n.to_be_bytes());
    ext.extend(other.as_bytes());
    let grow = ext.len();
    let mut h = hello.to_vec();
    // Record header (5), handshake header (4), version (2), random (32), session id.
    let sid = 5 + 4 + 34;
    let cs = sid + 1 + usize::from(h[sid]);
    let comp = cs + 2 + usize::from(u16::from_be_bytes([h[cs], h[cs + 1]]));
    let exts = comp + 1 + usize::from(h[comp]);
    let add = |h: &mut Vec<u8>, at: usize, bytes: usize| {
        let v = usize::from(u16::from_be_bytes([h[at], h[at + 1]])) + bytes;
        h[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
    };
    add(&mut h, 3, grow);
    let hs = (usize::from(h[6]) << 16 | usize::from(h[7]) << 8 | usize::from(h[8])) + grow;
    h[6..9].copy_from_slice(&[(hs >> 16) as u8, (hs >> 8) as u8, hs as u8]);
    add(&mut h, exts, grow);
    h.extend(ext);
    h
}

/// Ranges of `len` bytes cut at `cuts`.
fn parts(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut at = vec![0];
    at.extend(cuts.iter().copied().filter(|&c| c > 0 && c < len));
    at.push(len);
    at.windows(2).map(|w| (w[0], w[1])).collect()
}

/// One conversation of technique `n`.
fn conversation(n: u8, at: u64, rng: &mut Rng) -> Vec<Packet> {
    let real = client_hello(&ClientHelloSpec::new(REAL, u64::from(n)));
    let decoy = client_hello(&ClientHelloSpec::new(DECOY, u64::from(n)));
    let sni = name_at(&real, REAL);
    let mut c = Conn::new(n, at, rng);
    if n == 11 {
        c.ts = Some(7_000_000);
    }
    match n {
        22 => return quic_junk_first(&c),
        23 => return quic_fake(&c, true, 64, true),
        24 => return quic_fake(&c, false, 4, false),
        _ => {}
    }
    if n != 15 {
        c.handshake();
    }
    let send = |c: &mut Conn, order: &[(usize, usize)]| {
        for &(s, e) in order {
            c.emit(c.seg(PSH | ACK, s as i64, &real[s..e]));
        }
    };
    // The decoy at the real hello's sequence number, then the real hello.
    let fake_first = |c: &mut Conn, tweak: &dyn Fn(Seg<'_>) -> Seg<'_>| {
        let s = tweak(c.seg(PSH | ACK, 0, &decoy));
        c.emit(s);
        c.emit(c.seg(PSH | ACK, 0, &real));
    };
    let mut len = real.len();
    match n {
        1 => send(&mut c, &parts(real.len(), &[sni + 4])),
        2 => send(&mut c, &parts(real.len(), &[1, sni, sni + 5, sni + 11])),
        3 => {
            let p = parts(real.len(), &[sni + 4]);
            send(&mut c, &[p[1], p[0]]);
        }
        4 => {
            let mut p = parts(real.len(), &[1, sni, sni + 5, sni + 11]);
            p.reverse();
            send(&mut c, &p);
        }
        5 => {
            let mut p: Vec<(usize, usize)> = (0..real.len())
                .step_by(2)
                .map(|s| (s, (s + 3).min(real.len())))
                .collect();
            for i in (1..p.len()).rev() {
                p.swap(i, rng.range(0, i as u64 + 1) as usize);
            }
            send(&mut c, &p);
        }
        6 => {
            let mut spec = ClientHelloSpec::new(REAL, u64::from(n));
            spec.record_split = Some(sni - 5 - 4 + 4);
            let rec = client_hello(&spec);
            len = rec.len();
            c.emit(c.seg(PSH | ACK, 0, &rec));
        }
        7 => fake_first(&mut c, &|s| Seg { bad_sum: true, ..s }),
        8 => fake_first(&mut c, &|s| Seg { ttl: 3, ..s }),
        9 => fake_first(&mut c, &|s| Seg { md5: true, ..s }),
        10 => fake_first(&mut c, &|s| Seg { flags: PSH, ..s }),
        11 => fake_first(&mut c, &|s| Seg {
            ts: s.ts.map(|v| v.wrapping_sub(600_000)),
            ..s
        }),
        12 => fake_first(&mut c, &|s| Seg {
            seq: s.seq.wrapping_sub(10_000),
            ..s
        }),
        13 | 14 => {
            let mut p = parts(real.len(), &[sni + 4]);
            if n == 14 {
                p.reverse();
            }
            for (s, e) in p {
                let fake = Seg {
                    bad_sum: true,
                    ..c.seg(PSH | ACK, s as i64, &decoy[s..e.min(decoy.len())])
                };
                c.emit(fake);
                c.emit(c.seg(PSH | ACK, s as i64, &real[s..e]));
                c.emit(fake);
            }
        }
        15 => {
            let syn = Seg {
                flags: SYN,
                seq: c.isn[0],
                ack: 0,
                ..c.seg(SYN, -1, &decoy)
            };
            c.emit(syn);
            c.syn_ack(c.base());
            c.emit(c.seg(ACK, 0, &[]));
            send(&mut c, &[(0, real.len())]);
        }
        16 => {
            let cut = sni + 3;
            let mut first = real[..cut].to_vec();
            first.push(b'a');
            let s = Seg {
                urgent: first.len() as u16,
                ..c.seg(PSH | ACK | URG, 0, &first)
            };
            c.emit(s);
            c.emit(c.seg(PSH | ACK, cut as i64 + 1, &real[cut..]));
            len += 1;
        }
        17 => {
            let cut = sni + 4;
            let mut first = vec![0x17u8; 64];
            first.extend_from_slice(&real[..cut]);
            c.emit(c.seg(PSH | ACK, -64, &first));
            c.emit(c.seg(PSH | ACK, cut as i64, &real[cut..]));
        }
        18 => {
            let cut = sni + 4;
            let ovl = 8;
            let mut second = vec![0u8; ovl];
            second.extend_from_slice(&real[cut..]);
            c.emit(c.seg(PSH | ACK, (cut - ovl) as i64, &second));
            c.emit(c.seg(PSH | ACK, 0, &real[..cut]));
        }
        19 | 20 => {
            let rst = c.seg(RST | ACK, 0, &[]);
            let rst = if n == 19 {
                Seg {
                    bad_sum: true,
                    ..rst
                }
            } else {
                Seg { ttl: 2, ..rst }
            };
            c.emit(rst);
            c.now += 6_000 * MS;
            send(&mut c, &[(0, real.len())]);
        }
        21 => {
            let dup = with_second_server_name(&real, DECOY);
            len = dup.len();
            c.emit(c.seg(PSH | ACK, 0, &dup));
        }
        _ => {}
    }
    c.finish(len);
    c.out
}

/// One UDP datagram between the conversation's client and the server, port 443: its checksum
/// right (or, with `bad_sum`, wrong), sent with `ttl`.
fn udp_packet(
    c: &Conn,
    from_client: bool,
    payload: &[u8],
    ttl: u8,
    bad_sum: bool,
    now: u64,
    id: u16,
) -> Packet {
    let server = Ipv4Addr::from(SERVER);
    let (src, dst, sport, dport) = if from_client {
        (c.client, server, c.sport, 443)
    } else {
        (server, c.client, 443, c.sport)
    };
    let mut l4 = Vec::with_capacity(8 + payload.len());
    l4.extend(sport.to_be_bytes());
    l4.extend(dport.to_be_bytes());
    l4.extend(((8 + payload.len()) as u16).to_be_bytes());
    l4.extend([0, 0]);
    l4.extend_from_slice(payload);
    let mut sum = l4_checksum(IpAddr::V4(src), IpAddr::V4(dst), PROTO_UDP, &l4);
    if sum == 0 {
        sum = 0xffff;
    }
    if bad_sum {
        sum ^= 0x1234;
    }
    l4[6..8].copy_from_slice(&sum.to_be_bytes());
    Packet {
        ts_ns: now,
        frame: ipv4_frame(src, dst, ttl, id, PROTO_UDP, &l4),
    }
}

/// A client Initial of QUIC v1 for `name`, to `dcid` from `scid`, padded to 1,200 bytes.
fn quic_initial(name: &str, seed: u64, dcid: &[u8], scid: &[u8]) -> Vec<u8> {
    let hello = client_hello(&ClientHelloSpec::new(name, seed));
    let mut frames = Vec::new();
    // The handshake message without its record header.
    crypto_frame(0, &hello[5..], &mut frames);
    seal_client_initial(1, dcid, scid, 0, 2, &frames, 1200).unwrap_or_default()
}

/// What a server's first flight looks like on the wire to a sensor: a long-header Initial to
/// the client's `scid` from `server_cid`, padded to 1,200 bytes. (Its protected part is filler:
/// a sensor reads only the header of the server's packets.)
fn server_initial(scid: &[u8], server_cid: &[u8]) -> Vec<u8> {
    let mut p = vec![0xc1];
    p.extend(1u32.to_be_bytes());
    for id in [scid, server_cid] {
        p.push(id.len() as u8);
        p.extend_from_slice(id);
    }
    p.resize(1200, 0x5a);
    p
}

/// A short-header (1-RTT) packet to `dcid`, `len` bytes (filler past the header).
fn short_packet(dcid: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![0x41];
    p.extend_from_slice(dcid);
    p.resize(len, 0x3c);
    p
}

/// QUIC: eight 1-byte datagrams, then a valid client Initial.
fn quic_junk_first(c: &Conn) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut now = c.now;
    for k in 0..8u16 {
        out.push(udp_packet(c, true, &[k as u8], 64, false, now, k));
        now += 1_000_000;
    }
    let p = quic_initial(REAL, 22, &[0x22; 8], &[0x33; 8]);
    if !p.is_empty() {
        out.push(udp_packet(c, true, &p, 64, false, now, 9));
    }
    out
}

/// QUIC, zapret's `--dpi-desync=fake` with `--dpi-desync-repeats=6`: six fake Initials (the
/// decoy's name, their own connection ids) the server drops, for a bad UDP checksum
/// (`badsum`) or a TTL that expires on the way (`ttl`); then the real Initial. With `answer`,
/// the server's reply to the real one and a few 1-RTT packets each way follow (a capture of
/// both sides); without, the capture holds the client's side only.
fn quic_fake(c: &Conn, bad_sum: bool, ttl: u8, answer: bool) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut now = c.now;
    let mut id = 0u16;
    let mut send = |out: &mut Vec<Packet>, from_client, p: &[u8], ttl, bad, now| {
        out.push(udp_packet(c, from_client, p, ttl, bad, now, id));
        id = id.wrapping_add(1);
    };
    let n = c.client.octets()[3];
    let fake = quic_initial(
        DECOY,
        u64::from(n) + 100,
        &[0xfa, n, 1, 2, 3, 4, 5, 6],
        &[0xfb, n, 7, 8],
    );
    for _ in 0..6 {
        send(&mut out, true, &fake, ttl, bad_sum, now);
        now += 50_000;
    }
    let (dcid, scid, server_cid) = (
        [0x51, n, 9, 8, 7, 6, 5, 4],
        [0x52, n, 3, 2],
        [0x53, n, 1, 1, 2, 2, 3, 3],
    );
    send(
        &mut out,
        true,
        &quic_initial(REAL, u64::from(n), &dcid, &scid),
        64,
        false,
        now,
    );
    if answer {
        now += 20 * MS;
        send(
            &mut out,
            false,
            &server_initial(&scid, &server_cid),
            52,
            false,
            now,
        );
        for k in 0..3u64 {
            now += MS;
            send(
                &mut out,
                true,
                &short_packet(&server_cid, 60),
                64,
                false,
                now,
            );
            send(
                &mut out,
                false,
                &short_packet(&scid, 1200),
                52,
                false,
                now + 10_000 * (k + 1),
            );
        }
    }
    out
}

/// Two QUIC connections one after the other from one client socket (the 5-tuple reused): to
/// `first`, answered, 1-RTT packets each way; then, `gap_ms` later, a new connection (new
/// connection ids) to `second`. A sensor must report two flows, each with its own name.
pub fn quic_reconnect(first: &str, second: &str, gap_ms: u64) -> Vec<Packet> {
    let mut rng = Rng::new(0x0e7a_5117);
    let c = Conn::new(99, EPOCH_NS, &mut rng);
    let mut out = Vec::new();
    let mut now = c.now;
    let mut id = 0u16;
    for (k, name) in [first, second].into_iter().enumerate() {
        let k = k as u8;
        let (dcid, scid, server_cid) = (
            [0x61, k, 1, 2, 3, 4, 5, 6],
            [0x62, k, 7, 8],
            [0x63, k, 9, 9],
        );
        let flight: [(bool, Vec<u8>, u64); 4] = [
            (true, quic_initial(name, u64::from(k), &dcid, &scid), 0),
            (false, server_initial(&scid, &server_cid), 20 * MS),
            (true, short_packet(&server_cid, 80), MS),
            (false, short_packet(&scid, 1200), MS),
        ];
        for (from_client, p, wait) in flight {
            now += wait;
            let ttl = if from_client { 64 } else { 52 };
            out.push(udp_packet(&c, from_client, &p, ttl, false, now, id));
            id = id.wrapping_add(1);
        }
        now += gap_ms * MS;
    }
    out
}

/// The whole capture: every technique, 100 ms apart, in time order.
pub fn evasion() -> Vec<Packet> {
    let mut rng = Rng::new(0x0e7a_5104);
    let mut out = Vec::new();
    for (k, t) in TECHNIQUES.iter().enumerate() {
        out.extend(conversation(t.n, EPOCH_NS + k as u64 * 100 * MS, &mut rng));
    }
    out.sort_by_key(|p| p.ts_ns);
    out
}

/// `flows` connections from distinct ports of 10.78.x.y, each a SYN and then one byte at stream
/// offset 16,383 (the last a 16 KiB reassembly buffer holds, its hole never filled), 10 µs
/// apart: what a reassembly memcap must bound.
pub fn hole_hold(flows: usize, seed: u64) -> impl Iterator<Item = Packet> {
    let mut rng = Rng::new(seed);
    (0..flows).flat_map(move |k| {
        let n = k as u32;
        let client = Ipv4Addr::new(10, 78, (n >> 16) as u8, (n >> 8) as u8);
        let mut c = Conn {
            client,
            sport: 1024 + (n & 0xff) as u16 * 211,
            now: EPOCH_NS + u64::from(n) * 10_000,
            isn: [rng.next_u64() as u32, 0],
            ts: None,
            ip_id: n as u16,
            out: Vec::with_capacity(2),
        };
        let syn = Seg {
            flags: SYN,
            seq: c.isn[0],
            ack: 0,
            ..c.seg(SYN, -1, &[])
        };
        c.emit(syn);
        c.emit(c.seg(PSH | ACK, 16_383, b"x"));
        c.out
    })
}
