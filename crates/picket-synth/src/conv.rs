//! TCP and UDP conversation builders: turn application bytes into timestamped frames with
//! correct sequence numbers and plausible timing, as seen by a sensor next to the client.

use super::packet::{tcp_frame, udp_frame, IpHdr, Link, TcpHdr, ACK, FIN, PSH, RST, SYN};
use super::rng::Rng;
use super::Packet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;

/// MAC address of the gateway through which all server traffic passes.
const GATEWAY_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];

/// Endpoints and framing options shared by every frame of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// Client (initiator) address and port.
    pub client: SocketAddr,
    /// Server (responder) address and port.
    pub server: SocketAddr,
    /// VLAN IDs, outermost first.
    pub vlans: Vec<u16>,
    /// Adds an IPv4 option or an IPv6 hop-by-hop header to every packet.
    pub ip_options: bool,
    /// Captures only client-to-server packets, as under asymmetric routing.
    pub one_way: bool,
}

impl Path {
    /// Plain path between `client` and `server`, without VLANs or options.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        Self {
            client,
            server,
            vlans: Vec::new(),
            ip_options: false,
            one_way: false,
        }
    }
}

/// Cuts `0..len` into consecutive ranges of the given sizes; any rest forms one last range.
pub fn segments(len: usize, sizes: &[usize]) -> Vec<Range<usize>> {
    let (mut out, mut start) = (Vec::with_capacity(sizes.len() + 1), 0);
    for &size in sizes.iter().filter(|&&s| s > 0) {
        if start >= len {
            break;
        }
        let end = (start + size).min(len);
        out.push(start..end);
        start = end;
    }
    if start < len {
        out.push(start..len);
    }
    out
}

/// Clock, IP identification counters and output shared by TCP and UDP conversations.
#[derive(Clone, Debug)]
struct Emitter {
    /// Endpoints and framing.
    path: Path,
    /// Current time in ns since the Unix epoch.
    now: u64,
    /// Last IPv4 identification used by the client and by the server.
    ip_ids: [u16; 2],
    /// Frames emitted and not yet taken.
    out: Vec<Packet>,
    /// Random source of timing jitter and initial values.
    rng: Rng,
}

impl Emitter {
    /// Starts a conversation clock at `start_ns`.
    fn new(path: Path, start_ns: u64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let ip_ids = [rng.next_u64() as u16, rng.next_u64() as u16];
        Self {
            path,
            now: start_ns,
            ip_ids,
            out: Vec::new(),
            rng,
        }
    }

    /// Records the frame made by `build(link, ip, src_port, dst_port)` unless the path drops it.
    fn emit(&mut self, from_client: bool, build: impl FnOnce(&Link, &IpHdr, u16, u16) -> Vec<u8>) {
        if !from_client && self.path.one_way {
            return;
        }
        let side = usize::from(!from_client);
        self.ip_ids[side] = self.ip_ids[side].wrapping_add(1);
        let client_mac = host_mac(self.path.client.ip());
        let (src, dst, src_mac, dst_mac) = if from_client {
            (self.path.client, self.path.server, client_mac, GATEWAY_MAC)
        } else {
            (self.path.server, self.path.client, GATEWAY_MAC, client_mac)
        };
        let link = Link {
            src_mac,
            dst_mac,
            vlans: self.path.vlans.clone(),
        };
        let ttl = if from_client { 64 } else { 52 };
        let ip = IpHdr {
            src: src.ip(),
            dst: dst.ip(),
            ttl,
            id: self.ip_ids[side],
            options: self.path.ip_options,
        };
        let frame = build(&link, &ip, src.port(), dst.port());
        self.out.push(Packet {
            ts_ns: self.now,
            frame,
        });
    }

    /// Advances the clock by a short random gap between back-to-back packets (20-150 µs).
    fn gap(&mut self) {
        self.now += self.rng.range(20_000, 150_000);
    }
}

/// Locally administered MAC address derived from a host's IP address.
fn host_mac(ip: IpAddr) -> [u8; 6] {
    let o = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let b = a.octets();
            [b[12], b[13], b[14], b[15]]
        }
    };
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Builder of one TCP connection; packets come out in time order via [`TcpConv::take_packets`].
///
/// Without [`TcpConv::handshake`] the capture starts mid-flow at the random initial sequence numbers.
#[derive(Clone, Debug)]
pub struct TcpConv {
    /// Clock, framing and output.
    em: Emitter,
    /// Round-trip time between client and server in nanoseconds.
    pub rtt_ns: u64,
    /// Maximum segment size: announced on SYN and used to cut data.
    pub mss: u16,
    /// Next sequence number of the client and of the server.
    seq: [u32; 2],
}

impl TcpConv {
    /// New connection on `path` starting at `start_ns`; ISNs and jitter come from `seed`.
    pub fn new(path: Path, start_ns: u64, seed: u64) -> Self {
        let mss = if path.client.is_ipv4() { 1460 } else { 1440 };
        let mut em = Emitter::new(path, start_ns, seed);
        let seq = [em.rng.next_u64() as u32, em.rng.next_u64() as u32];
        Self {
            em,
            rtt_ns: 30_000_000,
            mss,
            seq,
        }
    }

    /// The conversation's path.
    pub fn path(&self) -> &Path {
        &self.em.path
    }

    /// Current time of the conversation clock in ns.
    pub fn now(&self) -> u64 {
        self.em.now
    }

    /// Lets `ns` nanoseconds pass without traffic.
    pub fn wait(&mut self, ns: u64) {
        self.em.now += ns;
    }

    /// Removes and returns the packets emitted so far.
    pub fn take_packets(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.em.out)
    }

    /// Emits SYN, SYN-ACK one RTT later, and the client's ACK.
    pub fn handshake(&mut self) {
        self.control(true, SYN);
        self.wait(self.rtt_ns);
        self.control(false, SYN | ACK);
        self.em.gap();
        self.control(true, ACK);
    }

    /// Sends `data` from the client in MSS-sized segments, then the server ACKs it.
    pub fn client_send(&mut self, data: &[u8]) {
        let mss = usize::from(self.mss.max(1));
        self.client_segments(data, &segments(data.len(), &vec![mss; data.len() / mss]));
    }

    /// Sends the byte ranges of `data` from the client in the given order, then the server ACKs
    /// all of `data` one RTT later; ranges may be reordered, repeated (retransmissions) or overlap.
    pub fn client_segments(&mut self, data: &[u8], ranges: &[Range<usize>]) {
        let base = self.seq[0];
        for r in ranges {
            let end = r.end.min(data.len());
            let start = r.start.min(end);
            self.segment(
                true,
                ACK | PSH,
                base.wrapping_add(start as u32),
                &data[start..end],
            );
            self.em.gap();
        }
        self.seq[0] = base.wrapping_add(data.len() as u32);
        self.wait(self.rtt_ns);
        self.control(false, ACK);
    }

    /// Like [`TcpConv::client_segments`], but each range comes from its own copy of the data:
    /// a retransmission that carries other bytes than the first copy (an evasion). The copies
    /// have one length, by which the stream advances.
    pub fn client_segments_from(&mut self, parts: &[(&[u8], Range<usize>)]) {
        let base = self.seq[0];
        let len = parts.iter().map(|(d, _)| d.len()).max().unwrap_or(0);
        for (data, r) in parts {
            let end = r.end.min(data.len());
            let start = r.start.min(end);
            self.segment(
                true,
                ACK | PSH,
                base.wrapping_add(start as u32),
                &data[start..end],
            );
            self.em.gap();
        }
        self.seq[0] = base.wrapping_add(len as u32);
        self.wait(self.rtt_ns);
        self.control(false, ACK);
    }

    /// Sends `data` from the server in MSS-sized segments; the client ACKs every second one and the last.
    pub fn server_send(&mut self, data: &[u8]) {
        let mss = usize::from(self.mss.max(1));
        let count = data.len().div_ceil(mss);
        for (i, chunk) in data.chunks(mss).enumerate() {
            let last = i + 1 == count;
            self.em.gap();
            self.segment(
                false,
                if last { ACK | PSH } else { ACK },
                self.seq[1],
                chunk,
            );
            self.seq[1] = self.seq[1].wrapping_add(chunk.len() as u32);
            if last || i % 2 == 1 {
                self.em.gap();
                self.control(true, ACK);
            }
        }
    }

    /// Closes the connection: client FIN, server FIN one RTT later, final client ACK.
    pub fn close(&mut self) {
        self.em.gap();
        self.control(true, FIN | ACK);
        self.wait(self.rtt_ns);
        self.control(false, FIN | ACK);
        self.em.gap();
        self.control(true, ACK);
    }

    /// Aborts the connection with a client RST.
    pub fn reset(&mut self) {
        self.em.gap();
        self.control(true, RST | ACK);
    }

    /// Emits an empty segment at the side's next sequence number; SYN and FIN consume one.
    fn control(&mut self, from_client: bool, flags: u8) {
        let side = usize::from(!from_client);
        self.segment(from_client, flags, self.seq[side], &[]);
        if flags & (SYN | FIN) != 0 {
            self.seq[side] = self.seq[side].wrapping_add(1);
        }
    }

    /// Emits one segment; the ACK number is the other side's next sequence number.
    fn segment(&mut self, from_client: bool, flags: u8, seq: u32, payload: &[u8]) {
        let other = usize::from(from_client);
        let hdr = TcpHdr {
            seq,
            ack: if flags & ACK != 0 { self.seq[other] } else { 0 },
            flags,
            window: match (flags & SYN != 0, from_client) {
                (true, _) => 64_240,
                (false, true) => 502,
                (false, false) => 1_024,
            },
            mss: (flags & SYN != 0).then_some(self.mss),
            ..TcpHdr::default()
        };
        self.em.emit(from_client, |link, ip, src_port, dst_port| {
            tcp_frame(
                link,
                ip,
                &TcpHdr {
                    src_port,
                    dst_port,
                    ..hdr
                },
                payload,
            )
        });
    }
}

/// Builder of a UDP exchange: single datagrams, DNS-like lookups or media-like streams.
#[derive(Clone, Debug)]
pub struct UdpConv {
    /// Clock, framing and output.
    em: Emitter,
    /// Round-trip time between client and server in nanoseconds.
    pub rtt_ns: u64,
    /// RTP-like (sequence, timestamp, SSRC) state of each direction for media streams.
    rtp: [(u16, u32, u32); 2],
}

impl UdpConv {
    /// New exchange on `path` starting at `start_ns`, randomised by `seed`.
    pub fn new(path: Path, start_ns: u64, seed: u64) -> Self {
        let mut em = Emitter::new(path, start_ns, seed);
        let mut rtp = || {
            let r = em.rng.next_u64();
            (r as u16, (r >> 16) as u32, em.rng.next_u64() as u32)
        };
        let rtp = [rtp(), rtp()];
        Self {
            em,
            rtt_ns: 30_000_000,
            rtp,
        }
    }

    /// The conversation's path.
    pub fn path(&self) -> &Path {
        &self.em.path
    }

    /// Current time of the conversation clock in ns.
    pub fn now(&self) -> u64 {
        self.em.now
    }

    /// Lets `ns` nanoseconds pass without traffic.
    pub fn wait(&mut self, ns: u64) {
        self.em.now += ns;
    }

    /// Removes and returns the packets emitted so far.
    pub fn take_packets(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.em.out)
    }

    /// Sends one datagram now.
    pub fn send(&mut self, from_client: bool, payload: &[u8]) {
        self.em.emit(from_client, |link, ip, sp, dp| {
            udp_frame(link, ip, sp, dp, payload)
        });
    }

    /// Sends `request` from the client and `response` from the server one RTT later.
    pub fn exchange(&mut self, request: &[u8], response: &[u8]) {
        self.send(true, request);
        self.wait(self.rtt_ns);
        self.send(false, response);
    }

    /// DNS-like A lookup of `name` answered with `answer`.
    pub fn dns(&mut self, name: &str, answer: Ipv4Addr) {
        let mut query = (self.em.rng.next_u64() as u16).to_be_bytes().to_vec();
        query.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            let label = &label.as_bytes()[..label.len().min(63)];
            query.push(label.len() as u8);
            query.extend_from_slice(label);
        }
        query.extend([0, 0, 1, 0, 1]);
        let mut response = query.clone();
        response[2..8].copy_from_slice(&[0x81, 0x80, 0, 1, 0, 1]);
        response.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4]);
        response.extend(answer.octets());
        self.exchange(&query, &response);
    }

    /// Media-like stream: `count` RTP-like datagrams of 200..=1200 bytes, alternating client and
    /// server, one every `interval_ns / 2` with jitter.
    pub fn media(&mut self, count: usize, interval_ns: u64) {
        for i in 0..count {
            let side = i % 2;
            let (seq, ts, ssrc) = self.rtp[side];
            self.rtp[side] = (seq.wrapping_add(1), ts.wrapping_add(960), ssrc);
            let mut p = vec![0x80, 0x60];
            p.extend(seq.to_be_bytes());
            p.extend(ts.to_be_bytes());
            p.extend(ssrc.to_be_bytes());
            let len = self.em.rng.range(200, 1201) as usize;
            p.extend(self.em.rng.bytes(len - p.len()));
            self.send(side == 0, &p);
            let jitter = self.em.rng.range(0, interval_ns / 10 + 1);
            self.wait(interval_ns / 2 + jitter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::parse;

    fn path() -> Path {
        Path::new(
            "10.1.0.1:40000".parse().unwrap(),
            "192.0.2.1:443".parse().unwrap(),
        )
    }

    /// Checks that every segment continues its direction's sequence space and ACKs the other's.
    fn check_sequences(packets: &[Packet]) {
        let mut next: [Option<u32>; 2] = [None, None];
        for p in packets {
            let s = parse(&p.frame);
            let side = usize::from(s.src.port() == 443);
            let expect = next[side].unwrap_or(s.seq);
            assert_eq!(s.seq, expect, "sequence gap");
            if s.flags & ACK != 0 {
                assert_eq!(Some(s.ack), next[1 - side], "ack number");
            }
            let used = s.payload.len() as u32 + u32::from(s.flags & (SYN | FIN) != 0);
            next[side] = Some(expect.wrapping_add(used));
        }
    }

    #[test]
    fn segments_cover_rest() {
        assert_eq!(segments(10, &[3, 0, 3]), [0..3, 3..6, 6..10]);
        assert_eq!(segments(4, &[3, 3, 3]), [0..3, 3..4]);
        assert!(segments(0, &[3]).is_empty());
    }

    #[test]
    fn tcp_conv_sequences_continuous() {
        let mut c = TcpConv::new(path(), 1_000, 42);
        c.handshake();
        c.client_send(&[1; 3000]);
        c.server_send(&[2; 10_000]);
        c.close();
        let packets = c.take_packets();
        check_sequences(&packets);
        assert!(packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        assert_eq!(parse(&packets[0].frame).flags, SYN);
        assert_eq!(
            packets
                .iter()
                .filter(|p| parse(&p.frame).payload.len() == 1460)
                .count(),
            8
        );
    }

    #[test]
    fn client_segments_reorder_retransmit_overlap() {
        let data: Vec<u8> = (0..=255).collect();
        let mut c = TcpConv::new(path(), 0, 1);
        c.handshake();
        let isn = parse(&c.take_packets()[0].frame).seq;
        let r = segments(256, &[100, 100]);
        c.client_segments(
            &data,
            &[
                r[1].clone(),
                r[0].clone(),
                r[2].clone(),
                r[2].clone(),
                50..150,
            ],
        );
        let mut rebuilt = vec![0u8; 256];
        let segs: Vec<_> = c.take_packets().iter().map(|p| parse(&p.frame)).collect();
        assert_eq!(segs.len(), 6, "five data segments and the server ACK");
        for s in segs.iter().filter(|s| !s.payload.is_empty()) {
            let at = s.seq.wrapping_sub(isn.wrapping_add(1)) as usize;
            rebuilt[at..at + s.payload.len()].copy_from_slice(&s.payload);
        }
        assert_eq!(rebuilt, data);
    }

    #[test]
    fn tcp_conv_one_way_only_client() {
        let mut c = TcpConv::new(
            Path {
                one_way: true,
                ..path()
            },
            0,
            3,
        );
        c.handshake();
        c.client_send(b"hello");
        c.server_send(&[0; 5000]);
        c.reset();
        let packets = c.take_packets();
        assert!(packets.iter().all(|p| parse(&p.frame).dst.port() == 443));
        assert_eq!(parse(&packets.last().unwrap().frame).flags, RST | ACK);
    }

    #[test]
    fn udp_conv_dns_and_media() {
        let mut u = UdpConv::new(
            Path::new(
                "10.1.0.2:5353".parse().unwrap(),
                "192.0.2.53:53".parse().unwrap(),
            ),
            0,
            4,
        );
        u.dns("web.telegram.org", Ipv4Addr::new(192, 0, 2, 80));
        u.media(10, 20_000_000);
        let p: Vec<_> = u.take_packets().iter().map(|p| parse(&p.frame)).collect();
        assert_eq!(p.len(), 12);
        assert_eq!(&p[0].payload[13..16], b"web");
        assert_eq!(&p[1].payload[p[1].payload.len() - 4..], &[192, 0, 2, 80]);
        assert!(p[2..]
            .iter()
            .all(|d| (200..=1200).contains(&d.payload.len()) && d.payload[0] == 0x80));
    }
}
