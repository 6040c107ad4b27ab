//! Named captures: the shipped demo with its manifest of expected names, a lazily generated
//! bulk capture of long flows, and a lazy capture of many short flows.

use super::conv::{segments, Path, TcpConv, UdpConv};
use super::rng::{mix, Rng};
use super::tls::{app_data, client_hello, server_hello_and_more, ClientHelloSpec};
use super::Packet;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::iter::Peekable;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Start of every scenario: 2024-05-01 12:00:00 UTC, in ns since the Unix epoch.
pub(super) const EPOCH_NS: u64 = 1_714_564_800_000_000_000;
/// Seed of the demo capture.
const DEMO_SEED: u64 = 0x5049_434b_4554;
/// Server names used by the bulk and many-flows captures.
const NAMES: [&str; 13] = [
    "g.whatsapp.net",
    "mmg.whatsapp.net",
    "web.whatsapp.com",
    "zoom.us",
    "us05web.zoom.us",
    "chat.signal.org",
    "cdn.signal.org",
    "web.telegram.org",
    "teams.microsoft.com",
    "discord.com",
    "www.example.com",
    "github.com",
    "www.debian.org",
];

/// Transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What a sensor should find in one flow of the demo capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowExpect {
    /// Client address and port.
    pub client: SocketAddr,
    /// Server address and port.
    pub server: SocketAddr,
    /// Transport protocol.
    pub transport: Transport,
    /// The server name visible in the flow's ClientHello, if any.
    pub sni: Option<&'static str>,
    /// One-line description of the flow and what makes it special.
    pub description: &'static str,
}

/// The special case a demo flow exercises.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Ordinary Chrome-like TLS 1.3 session.
    Plain,
    /// Post-quantum hello with Chrome's GREASE ECH (~1.8 KB, real SNI) spanning two segments.
    PostQuantum,
    /// Hello in three segments sent 2nd, 1st, 3rd, with the 3rd retransmitted.
    OutOfOrder,
    /// Hello sent in overlapping segments carrying the same bytes.
    Overlap,
    /// Hello split over two TLS records.
    TwoRecords,
    /// Post-quantum hello with an ECH extension; the SNI is the outer name.
    Ech,
    /// Frames carry these VLAN tags, outermost first.
    Vlan(&'static [u16]),
    /// IPv4 options or an IPv6 hop-by-hop header on every packet.
    IpOptions,
    /// Capture starts mid-flow: no handshake, no hello.
    MidFlow,
    /// Only client-to-server packets are captured.
    OneWay,
    /// Session ends with a client RST instead of FINs.
    Reset,
    /// TLS 1.2-only client without GREASE or key shares.
    Tls12,
    /// UDP DNS lookup of this name, answered with this address.
    Dns(&'static str, [u8; 4]),
    /// A WhatsApp call's set-up with its relay: STUN requests with WhatsApp's own message type
    /// and their responses, then `size` media datagrams.
    StunCall,
    /// UDP media-like stream of `size` datagrams.
    Media,
}

/// One flow of the demo capture.
struct DemoFlow {
    /// Start, in ms after the capture start.
    at_ms: u64,
    /// Client endpoint.
    client: SocketAddr,
    /// Server endpoint.
    server: SocketAddr,
    /// Server name in the hello.
    sni: Option<&'static str>,
    /// Special case exercised.
    shape: Shape,
    /// Bytes of the server's response (datagrams for media).
    size: usize,
    /// One-line description.
    desc: &'static str,
}

/// Demo client `10.1.0.n` or `fd00::n` with a port derived from `n`.
fn client(n: u8, v6: bool) -> SocketAddr {
    let ip = if v6 {
        IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)])
    } else {
        IpAddr::from([10, 1, 0, n])
    };
    SocketAddr::new(ip, 49_152 + 131 * u16::from(n))
}

/// Server endpoint from an address literal and port.
fn server(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// The demo flows in start order.
#[rustfmt::skip]
fn demo_flows() -> Vec<DemoFlow> {
    use Shape::*;
    let doc6 = |n: u16| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, n]);
    let flow = |at_ms, client, server, sni, shape, size, desc| DemoFlow { at_ms, client, server, sni, shape, size, desc };
    let github = (client(24, false), server([192, 0, 2, 24], 443));
    vec![
        flow(0, client(10, false), server([192, 0, 2, 10], 443), Some("g.whatsapp.net"), Plain, 6_000, "WhatsApp chat server, ordinary TLS 1.3 session"),
        flow(2_500, client(11, false), server([192, 0, 2, 11], 443), Some("mmg.whatsapp.net"), PostQuantum, 48_000, "WhatsApp media download; post-quantum hello (~1.8 KB) over 2 TCP segments"),
        flow(5_000, client(12, true), server(doc6(0x12), 443), Some("web.whatsapp.com"), Plain, 24_000, "WhatsApp Web over IPv6"),
        flow(9_000, client(13, false), server([198, 51, 100, 13], 443), Some("www.whatsapp.com"), Vlan(&[100]), 30_000, "WhatsApp web-site visit (not the app) on VLAN 100"),
        flow(14_000, client(14, false), server([198, 51, 100, 14], 443), Some("zoom.us"), OutOfOrder, 12_000, "Zoom; hello in 3 segments sent 2nd, 1st, 3rd, then the 3rd retransmitted"),
        flow(18_000, client(15, false), server([198, 51, 100, 15], 443), Some("us05web.zoom.us"), Vlan(&[200, 20]), 9_000, "Zoom web client over QinQ (outer 0x88a8 VLAN 200, inner VLAN 20)"),
        flow(20_500, client(35, false), server([192, 0, 2, 53], 53), None, Dns("zoom.us", [198, 51, 100, 16]), 0, "DNS lookup of zoom.us, answered with the media server's address"),
        flow(21_000, client(16, false), server([198, 51, 100, 16], 8801), None, Media, 600, "Zoom UDP media stream, no TLS: named by the DNS answer before it (dns_answer)"),
        flow(26_000, client(17, false), server([203, 0, 113, 17], 443), Some("chat.signal.org"), TwoRecords, 4_000, "Signal chat; hello split over two TLS records"),
        flow(30_000, client(18, false), server([203, 0, 113, 18], 443), Some("cdn.signal.org"), IpOptions, 35_000, "Signal CDN; IPv4 headers carry a Router Alert option"),
        flow(34_000, client(19, false), server([203, 0, 113, 19], 443), Some("web.telegram.org"), OneWay, 20_000, "Telegram Web; only client-to-server packets captured"),
        flow(38_000, client(20, false), server([203, 0, 113, 20], 443), Some("teams.microsoft.com"), Reset, 15_000, "Microsoft Teams; session ends with a client RST"),
        flow(41_000, client(36, false), server([192, 0, 2, 53], 53), None, Dns("discord.com", [203, 0, 113, 21]), 0, "DNS lookup of discord.com"),
        flow(42_000, client(21, false), server([203, 0, 113, 21], 443), Some("cloudflare-ech.com"), Ech, 18_000, "Discord behind real ECH: only the outer name is visible; the DNS answer names it (dns_answer)"),
        flow(46_000, client(22, true), server(doc6(0x22), 443), Some("discord.com"), IpOptions, 25_000, "Discord over IPv6 with a hop-by-hop extension header"),
        flow(50_000, client(23, false), server([192, 0, 2, 23], 443), Some("www.example.com"), Plain, 3_000, "unrelated web site"),
        flow(54_000, github.0, github.1, Some("github.com"), Plain, 40_000, "unrelated; closed with FINs, its 5-tuple is reused by the next flow"),
        flow(60_000, github.0, github.1, Some("www.debian.org"), Plain, 20_000, "new connection reusing the finished github.com 5-tuple"),
        flow(64_000, client(25, false), server([203, 0, 113, 25], 443), None, MidFlow, 30_000, "capture starts mid-flow: no SYN, no hello"),
        flow(68_000, client(26, false), server([192, 0, 2, 53], 53), None, Dns("web.telegram.org", [192, 0, 2, 80]), 0, "DNS lookup over UDP port 53"),
        flow(72_000, client(27, false), server([192, 0, 2, 27], 443), None, Plain, 5_000, "TLS hello without server_name (connection by IP address)"),
        flow(76_000, client(28, false), server([198, 51, 100, 28], 443), Some("g.whatsapp.net"), Tls12, 6_000, "old WhatsApp client: TLS 1.2-only hello, no GREASE"),
        flow(80_000, client(29, false), server([203, 0, 113, 29], 443), Some("teams.microsoft.com"), Overlap, 10_000, "Microsoft Teams; hello sent in overlapping segments"),
        flow(86_000, client(30, true), server(doc6(0x30), 443), Some("chat.signal.org"), PostQuantum, 8_000, "Signal over IPv6 with a post-quantum hello"),
        flow(92_000, client(31, false), server([192, 0, 2, 31], 443), Some("discord.com"), Plain, 60_000, "Discord app"),
        flow(98_000, client(32, false), server([198, 51, 100, 32], 443), Some("web.telegram.org"), Vlan(&[300, 30, 3]), 7_000, "Telegram Web with three VLAN tags"),
        flow(104_000, client(33, false), server([198, 51, 100, 53], 53), None, Dns("zoom.us", [192, 0, 2, 80]), 0, "DNS lookup of zoom.us"),
        flow(110_000, client(34, false), server([192, 0, 2, 34], 443), Some("mmg.whatsapp.net"), Plain, 80_000, "WhatsApp media download, 80 KB"),
        flow(112_000, client(37, false), server([192, 0, 2, 37], 3478), None, StunCall, 20, "WhatsApp call set-up with its relay: STUN with WhatsApp's message types (stun)"),
        flow(113_000, client(37, false), server([198, 51, 100, 37], 40_000), None, Media, 300, "WhatsApp call media straight to the other party, from the call's socket (peer_cache)"),
    ]
}

/// Transport of a demo shape.
fn transport(shape: Shape) -> Transport {
    match shape {
        Shape::Dns(..) | Shape::Media | Shape::StunCall => Transport::Udp,
        _ => Transport::Tcp,
    }
}

/// The shipped demo capture: 30 flows over about two minutes, time-ordered and deterministic.
pub fn demo() -> Vec<Packet> {
    let mut packets: Vec<Packet> = demo_flows()
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            let seed = mix(DEMO_SEED, i as u64);
            match transport(f.shape) {
                Transport::Tcp => demo_tcp(f, seed),
                Transport::Udp => demo_udp(f, seed),
            }
        })
        .collect();
    packets.sort_by_key(|p| p.ts_ns);
    packets
}

/// What a sensor should find in each flow of [`demo`], in start order.
pub fn demo_manifest() -> Vec<FlowExpect> {
    demo_flows()
        .into_iter()
        .map(|f| FlowExpect {
            client: f.client,
            server: f.server,
            transport: transport(f.shape),
            sni: f.sni,
            description: f.desc,
        })
        .collect()
}

/// Builds one TCP demo flow.
fn demo_tcp(f: &DemoFlow, seed: u64) -> Vec<Packet> {
    let mut path = Path::new(f.client, f.server);
    let mut spec = ClientHelloSpec {
        sni: f.sni.map(String::from),
        seed,
        ..ClientHelloSpec::default()
    };
    match f.shape {
        Shape::Vlan(tags) => path.vlans = tags.to_vec(),
        Shape::IpOptions => path.ip_options = true,
        Shape::OneWay => path.one_way = true,
        Shape::PostQuantum => (spec.post_quantum, spec.ech) = (true, true),
        Shape::TwoRecords => spec.record_split = Some(256),
        Shape::Ech => (spec.ech, spec.post_quantum) = (true, true),
        Shape::Tls12 => {
            (spec.grease, spec.supported_versions, spec.alpn) =
                (false, Vec::new(), vec!["http/1.1".into()])
        }
        _ => {}
    }
    let mut c = TcpConv::new(path, EPOCH_NS + f.at_ms * 1_000_000, seed);
    c.rtt_ns = Rng::new(seed).range(12, 90) * 1_000_000;
    if let Shape::MidFlow = f.shape {
        c.server_send(&app_data(mix(seed, 1), f.size));
        c.client_send(&app_data(mix(seed, 2), 420));
        c.server_send(&app_data(mix(seed, 3), f.size / 2));
        c.close();
        return c.take_packets();
    }
    c.handshake();
    let hello = client_hello(&spec);
    match f.shape {
        Shape::OutOfOrder => {
            let r = segments(hello.len(), &[160, 160]);
            let order: Vec<_> = [1, 0, 2, 2]
                .iter()
                .filter_map(|&i| r.get(i).cloned())
                .collect();
            c.client_segments(&hello, &order);
        }
        Shape::Overlap => c.client_segments(&hello, &[0..300, 200..hello.len()]),
        _ => c.client_send(&hello),
    }
    c.server_send(&server_hello_and_more(mix(seed, 1), 4_200));
    c.client_send(&app_data(mix(seed, 2), 480));
    c.server_send(&app_data(mix(seed, 3), f.size));
    if let Shape::Reset = f.shape {
        c.reset();
    } else {
        c.close();
    }
    c.take_packets()
}

/// Builds one UDP demo flow.
fn demo_udp(f: &DemoFlow, seed: u64) -> Vec<Packet> {
    let mut u = UdpConv::new(
        Path::new(f.client, f.server),
        EPOCH_NS + f.at_ms * 1_000_000,
        seed,
    );
    match f.shape {
        Shape::Dns(name, answer) => u.dns(name, Ipv4Addr::from(answer)),
        Shape::StunCall => {
            for i in 0..3u8 {
                // WhatsApp's own message type 0x0801 (a request) and its success response.
                let request = stun_message(0x0801, [0x57, 0x41, i]);
                let response = stun_message(0x0901, [0x57, 0x41, i]);
                u.exchange(&request, &response);
            }
            u.media(f.size, 20_000_000);
        }
        _ => u.media(f.size, 20_000_000),
    }
    u.take_packets()
}

/// A STUN message of type `ty` with the magic cookie, no attributes, and a transaction id that
/// starts with `id`.
fn stun_message(ty: u16, id: [u8; 3]) -> Vec<u8> {
    let mut m = ty.to_be_bytes().to_vec();
    m.extend([0, 0, 0x21, 0x12, 0xa4, 0x42]);
    m.extend(id);
    m.extend([0; 9]);
    m
}

/// Server address `i` spread over the three IPv4 documentation ranges.
fn doc_server(i: u64, port: u16) -> SocketAddr {
    let nets = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
    let n = nets[(i % 3) as usize];
    SocketAddr::new(
        IpAddr::from([n[0], n[1], n[2], 1 + (i / 3 % 254) as u8]),
        port,
    )
}

/// A large capture generated lazily: `flows` long flows (three TCP for each UDP) of about
/// `packets_per_flow` packets each, starting 200 ms apart and interleaved in time.
pub fn bulk(flows: usize, packets_per_flow: usize, seed: u64) -> impl Iterator<Item = Packet> {
    Mixer::new((0..flows as u64).map(move |i| {
        let start = EPOCH_NS + i * 200_000_000;
        let client = SocketAddr::new(
            IpAddr::from(Ipv4Addr::from(0x0a02_0000 + i as u32)),
            40_000 + (i % 20_000) as u16,
        );
        let s = mix(seed, i);
        let source = if i % 4 == 3 {
            bulk_udp(
                UdpConv::new(Path::new(client, doc_server(i, 8801)), start, s),
                packets_per_flow,
            )
        } else {
            bulk_tcp(
                TcpConv::new(Path::new(client, doc_server(i, 443)), start, s),
                NAMES[i as usize % NAMES.len()],
                packets_per_flow,
                s,
            )
        };
        (start, source)
    }))
}

/// Long TCP flow: handshake and hello, then 32-segment server bursts until `packets`, then FINs.
fn bulk_tcp(mut c: TcpConv, name: &'static str, packets: usize, seed: u64) -> Source {
    let mut rng = Rng::new(mix(seed, 7));
    let (mut emitted, mut step, mut done) = (0, 0u64, false);
    c.mss = 1448;
    Box::new(move || {
        if done {
            return None;
        }
        if step == 0 {
            c.handshake();
            let spec = ClientHelloSpec {
                post_quantum: seed % 2 == 0,
                ..ClientHelloSpec::new(name, seed)
            };
            c.client_send(&client_hello(&spec));
            c.server_send(&server_hello_and_more(mix(seed, 1), 5_000));
            c.client_send(&app_data(mix(seed, 2), 500));
        } else if emitted < packets {
            c.wait(rng.range(1, 40) * 1_000_000);
            c.server_send(&app_data(mix(seed, step + 2), 32 * 1448));
        } else {
            c.close();
            done = true;
        }
        step += 1;
        let chunk = c.take_packets();
        emitted += chunk.len();
        Some(chunk)
    })
}

/// Long media-like UDP flow emitted in chunks of 100 datagrams.
fn bulk_udp(mut u: UdpConv, packets: usize) -> Source {
    let mut emitted = 0;
    Box::new(move || {
        let n = packets.saturating_sub(emitted).min(100);
        u.media(n, 20_000_000);
        emitted += n;
        Some(u.take_packets()).filter(|c| !c.is_empty())
    })
}

/// `n` distinct short TCP flows (handshake, small hello, FIN exchange) starting 20 µs apart,
/// generated lazily so that millions of flows need little memory.
pub fn many_flows(n: usize, seed: u64) -> impl Iterator<Item = Packet> {
    Mixer::new((0..n as u64).map(move |i| {
        let start = EPOCH_NS + i * 20_000;
        let s = mix(seed, i);
        let client = SocketAddr::new(
            IpAddr::from(Ipv4Addr::from(0x0a00_0001 + (i / 40_000) as u32)),
            20_000 + (i % 40_000) as u16,
        );
        let mut c = Some(TcpConv::new(
            Path::new(client, doc_server(i, 443)),
            start,
            s,
        ));
        let source: Source = Box::new(move || {
            let mut c = c.take()?;
            c.rtt_ns = 1_000_000 + s % 9_000_000;
            c.handshake();
            c.client_send(&client_hello(&ClientHelloSpec::new(
                NAMES[i as usize % NAMES.len()],
                s,
            )));
            c.close();
            Some(c.take_packets())
        });
        (start, source)
    }))
}

/// A resumable flow generator: each call yields its next packets in time order, `None` when done.
pub(super) type Source = Box<dyn FnMut() -> Option<Vec<Packet>>>;

/// Heap entry popped smallest `(key, tie)` first.
struct Entry<T> {
    /// Time key in ns.
    key: u64,
    /// Insertion counter that keeps equal keys in insertion order.
    tie: u64,
    /// Payload.
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.tie) == (other.key, other.tie)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.key, other.tie).cmp(&(self.key, self.tie))
    }
}

/// Lazily merges sources, given in start order, into one time-ordered packet stream.
pub(super) struct Mixer<I: Iterator<Item = (u64, Source)>> {
    /// Sources not started yet, with their start times.
    pending: Peekable<I>,
    /// Started sources keyed by the time of the last packet they produced.
    live: BinaryHeap<Entry<Source>>,
    /// Produced packets not yet returned.
    ready: BinaryHeap<Entry<Packet>>,
    /// Insertion counter.
    tie: u64,
}

impl<I: Iterator<Item = (u64, Source)>> Mixer<I> {
    /// Wraps sources that come in non-decreasing start order.
    pub(super) fn new(sources: I) -> Self {
        Self {
            pending: sources.peekable(),
            live: BinaryHeap::new(),
            ready: BinaryHeap::new(),
            tie: 0,
        }
    }
}

impl<I: Iterator<Item = (u64, Source)>> Iterator for Mixer<I> {
    type Item = Packet;

    fn next(&mut self) -> Option<Packet> {
        loop {
            let pending_at = self.pending.peek().map(|s| s.0);
            let live_at = self.live.peek().map(|e| e.key);
            // No source can still produce a packet earlier than this.
            let horizon = pending_at
                .unwrap_or(u64::MAX)
                .min(live_at.unwrap_or(u64::MAX));
            if self.ready.peek().is_some_and(|p| p.key <= horizon) {
                return self.ready.pop().map(|e| e.item);
            }
            self.tie += 1;
            if pending_at.is_some_and(|s| live_at.is_none_or(|l| s <= l)) {
                let (key, item) = self.pending.next()?;
                self.live.push(Entry {
                    key,
                    tie: self.tie,
                    item,
                });
                continue;
            }
            let Entry { tie, mut item, .. } = self.live.pop()?;
            let chunk = item().unwrap_or_default();
            let Some(last) = chunk.last().map(|p| p.ts_ns) else {
                continue;
            };
            for p in chunk {
                self.tie += 1;
                self.ready.push(Entry {
                    key: p.ts_ns,
                    tie: self.tie,
                    item: p,
                });
            }
            self.live.push(Entry {
                key: last,
                tie,
                item,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{parse, Parsed};
    use std::collections::HashSet;

    fn ordered(packets: &[Packet]) -> bool {
        packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns)
    }

    fn belongs(p: &Parsed, f: &FlowExpect) -> bool {
        (p.src, p.dst) == (f.client, f.server) || (p.src, p.dst) == (f.server, f.client)
    }

    #[test]
    fn demo_deterministic_and_ordered() {
        let d = demo();
        assert_eq!(d, demo());
        assert!(ordered(&d));
        let span = d.last().unwrap().ts_ns - d[0].ts_ns;
        assert!((100..150).contains(&(span / 1_000_000_000)), "{span}");
    }

    #[test]
    fn demo_manifest_matches_packets() {
        let parsed: Vec<Parsed> = demo().iter().map(|p| parse(&p.frame)).collect();
        let manifest = demo_manifest();
        assert!((20..=30).contains(&manifest.len()));
        let clients: HashSet<_> = manifest.iter().map(|f| f.client).collect();
        assert_eq!(
            clients.len(),
            manifest.len() - 2,
            "only the reused 5-tuple and the call's media (from its STUN socket) share a client"
        );
        for f in &manifest {
            let flow: Vec<&Parsed> = parsed.iter().filter(|p| belongs(p, f)).collect();
            assert!(!flow.is_empty(), "{}", f.description);
            let proto = if f.transport == Transport::Tcp { 6 } else { 17 };
            assert!(flow.iter().all(|p| p.proto == proto));
            if let Some(sni) = f.sni {
                let sent: Vec<u8> = flow
                    .iter()
                    .filter(|p| p.src == f.client)
                    .flat_map(|p| p.payload.clone())
                    .collect();
                assert!(
                    sent.windows(sni.len()).any(|w| w == sni.as_bytes()),
                    "{sni}"
                );
            }
        }
    }

    #[test]
    fn demo_covers_link_cases() {
        let parsed: Vec<Parsed> = demo().iter().map(|p| parse(&p.frame)).collect();
        for tags in 0..=3 {
            assert!(parsed.iter().any(|p| p.vlans.len() == tags));
        }
        assert!(parsed.iter().any(|p| p.src.is_ipv6()));
    }

    #[test]
    fn bulk_interleaved_and_complete() {
        let packets: Vec<Packet> = bulk(4, 300, 7).collect();
        assert!(ordered(&packets));
        let parsed: Vec<Parsed> = packets.iter().map(|p| parse(&p.frame)).collect();
        assert!(
            parsed.iter().any(|p| p.proto == 17) && parsed.iter().any(|p| p.payload.len() == 1448)
        );
        let flows: HashSet<_> = parsed.iter().map(|p| p.src.min(p.dst)).collect();
        assert_eq!(flows.len(), 4);
        assert!(packets.len() >= 4 * 300, "{}", packets.len());
        let first_udp = parsed.iter().position(|p| p.proto == 17).unwrap();
        assert!(
            parsed[first_udp..].iter().any(|p| p.proto == 6),
            "flows interleave"
        );
    }

    #[test]
    fn many_flows_distinct_and_ordered() {
        let packets: Vec<Packet> = many_flows(3000, 1).collect();
        assert!(ordered(&packets));
        let syns: HashSet<_> = packets
            .iter()
            .map(|p| parse(&p.frame))
            .filter(|p| p.flags == 2)
            .map(|p| p.src)
            .collect();
        assert_eq!(syns.len(), 3000);
        assert_eq!(many_flows(50, 2).count(), many_flows(50, 2).count());
    }
}
