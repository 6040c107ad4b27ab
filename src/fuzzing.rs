//! Entry points of the fuzz targets (`fuzz/`) and of their corpus replay (`tests/fuzz_corpus.rs`):
//! one function per untrusted input, each taking arbitrary bytes. Not an API: hidden from the
//! docs, free to change.
//!
//! Every function returns normally on any input. A panic is a bug, and so is a failed `assert!`:
//! each target also checks cheap facts the code promises (ranges inside the input, round trips,
//! first-arrival-wins reassembly against a byte model, events that serialise to one line each),
//! so a wrong answer is caught as well as a bad index.

use crate::capture::file::{FileSource, MAX_FRAME};
use crate::capture::{LinkType, PacketSource, Timestamp};
use crate::classify::{self, AppSource};
use crate::decode::{self, Addr, PacketMeta, Skip, Transport, MAX_VLANS};
use crate::export::events::EventWriter;
use crate::flow::reasm::{ClientPrefix, HelloScan, MAX_PREFIX, MAX_RANGES};
use crate::flow::{Event, FlowConfig, FlowHasher, FlowKey, FlowTracker, TlsInfo};
use crate::proto::{dns, quic, stun, tls};
use crate::rules::{self, CompiledRules, RuleSet, Source};
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A fuzz entry point: takes any bytes, returns normally or panics on a bug.
pub type Entry = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call it.
pub const TARGETS: &[(&str, Entry)] = &[
    ("decode_frame", decode_frame),
    ("tcp_reassembly", tcp_reassembly),
    ("tls_client_hello", tls_client_hello),
    ("quic_initial", quic_initial),
    ("dns", dns),
    ("stun", stun),
    ("capture_file", capture_file),
    ("rule_file", rule_file),
];

/// Reads fuzzer bytes as fields; past the end every field is zero and every slice empty.
struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.rest.len())
    }
}

/// The embedded rules, compiled once per process.
fn default_rules() -> Arc<CompiledRules> {
    static RULES: OnceLock<Arc<CompiledRules>> = OnceLock::new();
    Arc::clone(RULES.get_or_init(|| {
        Arc::new(rules::defaults().unwrap_or_else(|e| panic!("embedded rules: {e}")))
    }))
}

/// An event sink that checks the JSON-lines framing: each write is one UTF-8 line, whatever
/// bytes the server names and ALPN values held.
struct OneLine;

impl io::Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(buf.ends_with(b"\n"), "an event write is not one whole line");
        assert_eq!(
            buf.iter().filter(|&&b| b == b'\n').count(),
            1,
            "raw newline in an event"
        );
        assert!(std::str::from_utf8(buf).is_ok(), "an event is not UTF-8");
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One worker's path from decoded packets to JSON events: a small flow table (so eviction
/// happens), the embedded rules, and an event writer that checks every line.
struct Pipeline {
    tracker: FlowTracker,
    hasher: FlowHasher,
    events: Vec<Event>,
    json: EventWriter<OneLine>,
    last: Timestamp,
}

impl Pipeline {
    fn new() -> Self {
        let cfg = FlowConfig {
            max_flows: 8,
            update_ns: 30_000_000_000,
            ..FlowConfig::default()
        };
        Pipeline {
            tracker: FlowTracker::new(cfg, default_rules()),
            hasher: FlowHasher::default(),
            events: Vec::new(),
            json: EventWriter::new(OneLine, Some("fuzz".into())),
            last: Timestamp(0),
        }
    }

    fn packet(&mut self, m: &PacketMeta, payload: &[u8]) {
        let (key, _) = FlowKey::of(m);
        let hash = key.hash_with(&self.hasher);
        self.last = self.last.max(m.ts);
        self.tracker
            .packet(m, hash, payload, m.ts, &mut self.events);
        let events = std::mem::take(&mut self.events);
        self.write(events);
    }

    fn write(&mut self, events: Vec<Event>) {
        for e in events {
            let r = match &e {
                Event::Alert { ts, flow, .. } => self.json.alert(*ts, flow),
                Event::Update { ts, flow, .. } => self.json.update(*ts, flow),
                Event::Flow(rec) => self.json.flow(rec),
                Event::Counts(_) => Ok(()),
            };
            assert!(r.is_ok(), "an event did not serialise: {r:?}");
        }
    }

    /// Ends every flow and writes what is left.
    fn finish(mut self) {
        let mut rest = Vec::new();
        self.tracker.finish(self.last, 4, |v| rest.extend(v));
        self.write(rest);
        assert_eq!(self.tracker.active(), 0);
    }
}

/// A TCP or UDP packet of the test conversation 10.1.0.5:50000 ↔ 192.0.2.10:`port`.
fn meta(
    ts: Timestamp,
    from_client: bool,
    port: u16,
    transport: Transport,
    len: usize,
) -> PacketMeta {
    let c = (Addr::from(Ipv4Addr::new(10, 1, 0, 5)), 50_000);
    let s = (Addr::from(Ipv4Addr::new(192, 0, 2, 10)), port);
    let (src, dst) = if from_client { (c, s) } else { (s, c) };
    PacketMeta {
        ts,
        wire_len: 54 + len as u32,
        src: src.0,
        dst: dst.0,
        sport: src.1,
        dport: dst.1,
        transport,
        vlans: [0; MAX_VLANS],
        nvlan: 0,
        segment: crate::decode::Segment::default(),
        flags: 0,
        seq: 0,
        ack: 0,
        payload_off: 0,
        payload_len: len as u32,
    }
}

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

/// A reference model of [`ClientPrefix`]: one optional byte per stream offset.
struct PrefixModel {
    base: u32,
    bytes: Vec<Option<u8>>,
}

/// What the model expects one insert to report.
#[derive(Debug, PartialEq, Eq)]
struct Expect {
    conflict: bool,
    beyond_cap: bool,
    too_many_holes: bool,
    grew: bool,
}

impl PrefixModel {
    fn contiguous(&self) -> usize {
        self.bytes.iter().take_while(|b| b.is_some()).count()
    }

    /// Maximal runs of held bytes.
    fn runs(bytes: &[Option<u8>]) -> usize {
        let mut n = 0;
        let mut prev = false;
        for b in bytes {
            if b.is_some() && !prev {
                n += 1;
            }
            prev = b.is_some();
        }
        n
    }

    /// What inserting `data` at `seq` must do: first arrival wins, bytes before the base and past
    /// [`MAX_PREFIX`] are dropped, and a segment that would leave more than [`MAX_RANGES`]
    /// pieces is refused whole.
    fn insert(&mut self, seq: u32, data: &[u8]) -> Expect {
        let mut e = Expect {
            conflict: false,
            beyond_cap: false,
            too_many_holes: false,
            grew: false,
        };
        let rel = i64::from(seq.wrapping_sub(self.base) as i32);
        let (start, data) = if rel < 0 {
            match data.get(rel.unsigned_abs() as usize..) {
                Some(rest) if !rest.is_empty() => (0usize, rest),
                _ => return e,
            }
        } else {
            (rel as usize, data)
        };
        let cap = MAX_PREFIX as usize;
        if start >= cap {
            e.beyond_cap = !data.is_empty();
            return e;
        }
        let data = if data.len() > cap - start {
            e.beyond_cap = true;
            &data[..cap - start]
        } else {
            data
        };
        if data.is_empty() {
            return e;
        }
        let before = self.contiguous();
        let old_len = self.bytes.len();
        if old_len < start + data.len() {
            self.bytes.resize(start + data.len(), None);
        }
        let mut filled = Vec::new();
        for (i, (slot, &b)) in self.bytes[start..].iter_mut().zip(data).enumerate() {
            match *slot {
                Some(held) => e.conflict |= held != b,
                None => {
                    *slot = Some(b);
                    filled.push(start + i);
                }
            }
        }
        if Self::runs(&self.bytes) > MAX_RANGES {
            // Refused whole: undo.
            for i in filled {
                self.bytes[i] = None;
            }
            self.bytes.truncate(old_len);
            e.too_many_holes = true;
            e.conflict = false;
            return e;
        }
        e.grew = self.contiguous() > before;
        e
    }
}

/// Most segments of one `tcp_reassembly` script (more only slows the fuzzer down).
const MAX_SEGMENTS: usize = 64;

/// A script of TCP segments through the reassembler and through a flow tracker.
///
/// Input: client ISN (4 bytes), server port (2), then records of `ctl(1) flags(1) off(2) len(2)`
/// and, when `ctl & 2`, `len` literal bytes (else `len` copies of `ctl`); at most 64 records.
/// `ctl & 1`: sent by the server; `ctl >> 2 & 3`: time step (0, 1 ms, 10 s, 400 s); `ctl & 16`:
/// scan for a hello. The sequence number is the ISN + 1 + `off` - 256, so segments can start
/// before the stream.
///
/// Checks: every insert of a client segment into a [`ClientPrefix`] reports and holds exactly
/// what a byte-by-byte model of first-arrival-wins says, and the tracker and its events survive.
pub fn tcp_reassembly(data: &[u8]) {
    let mut b = Bytes::new(data);
    let isn = b.u32();
    let port = b.u16();
    let base = isn.wrapping_add(1);
    let mut prefix = ClientPrefix::new(base);
    let mut model = PrefixModel {
        base,
        bytes: Vec::new(),
    };
    let mut scratch = Vec::new();
    let mut pipe = Pipeline::new();
    let mut ts = Timestamp(1_700_000_000_000_000_000);
    let mut fill = Vec::new();
    let mut segments = 0;
    while !b.is_empty() && segments < MAX_SEGMENTS {
        segments += 1;
        let ctl = b.u8();
        let flags = b.u8() & 0x3f;
        let off = b.u16();
        let len = usize::from(b.u16() & 0x7fff);
        let payload: &[u8] = if ctl & 2 != 0 {
            b.take(len)
        } else {
            fill.clear();
            fill.resize(len, ctl);
            &fill
        };
        ts = ts
            .plus_nanos([0, 1_000_000, 10_000_000_000, 400_000_000_000][usize::from(ctl >> 2 & 3)]);
        let from_client = ctl & 1 == 0;
        let seq = base.wrapping_add(u32::from(off)).wrapping_sub(256);
        if from_client {
            let want = model.insert(seq, payload);
            let got = prefix.insert(seq, payload);
            let got = Expect {
                conflict: got.conflict,
                beyond_cap: got.beyond_cap,
                too_many_holes: got.too_many_holes,
                grew: got.grew,
            };
            assert_eq!(got, want, "insert at {seq} of {} bytes", payload.len());
            let held: Vec<u8> = model.bytes[..model.contiguous()]
                .iter()
                .map(|b| b.unwrap_or(0))
                .collect();
            assert_eq!(prefix.contiguous(), &held[..]);
            assert!(prefix.buffered() <= MAX_PREFIX as usize);
            if ctl & 16 != 0 {
                if let HelloScan::Found(ch) = prefix.scan_hello(&mut scratch) {
                    assert!(ch.consumed <= held.len());
                }
            }
        }
        let mut m = meta(ts, from_client, port, Transport::Tcp, payload.len());
        m.flags = flags;
        m.seq = if from_client {
            seq
        } else {
            0x5000_0000u32.wrapping_add(u32::from(off))
        };
        m.ack = if from_client { 0x5000_0001 } else { base };
        pipe.packet(&m, payload);
    }
    pipe.finish();
}

/// The client's first bytes as TLS records ([`tls::parse_client_hello`]) and as a bare handshake
/// message ([`tls::parse_client_hello_message`], as QUIC carries it).
///
/// Checks: `consumed` within the input, the JA4 shape, the flow's summary giving back the same
/// server name and ALPN list, and the reassembler finding the same hello in the same bytes.
pub fn tls_client_hello(data: &[u8]) {
    let mut scratch = Vec::new();
    let parsed = tls::parse_client_hello(data, &mut scratch);
    if let Ok(ch) = &parsed {
        assert!(ch.consumed <= data.len());
        check_hello(ch, false);
    }
    if let Err(tls::TlsError::Incomplete { needed }) = parsed {
        assert!(
            needed > data.len(),
            "Incomplete asks for {needed} of {}",
            data.len()
        );
    }
    if let Ok(ch) = tls::parse_client_hello_message(data) {
        assert!(ch.consumed <= data.len());
        check_hello(&ch, true);
    }
    if data.len() <= MAX_PREFIX as usize {
        let mut p = ClientPrefix::new(0);
        p.insert(0, data);
        let mut s = Vec::new();
        let expected = tls::parse_client_hello(data, &mut Vec::new())
            .ok()
            .map(|ch| (ch.sni.map(<[u8]>::to_vec), ch.consumed));
        match (p.scan_hello(&mut s), expected) {
            (HelloScan::Found(ch), Some((sni, consumed))) => {
                assert_eq!(ch.sni.map(<[u8]>::to_vec), sni);
                assert_eq!(ch.consumed, consumed);
            }
            (HelloScan::Found(ch), None) => assert!(ch.consumed <= data.len()),
            (other, Some(_)) => panic!("the reassembler missed a hello at offset 0: {other:?}"),
            (_, None) => {}
        }
    }
}

/// What every parsed hello must satisfy.
fn check_hello(ch: &tls::ClientHello<'_>, quic: bool) {
    let ja4 = ch.ja4(quic);
    assert_eq!(ja4.len(), 36, "{ja4}");
    assert!(ja4.is_ascii(), "{ja4}");
    let info = TlsInfo::from_hello(ch, quic);
    assert_eq!(info.ja4(), ja4);
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).replace('\0', "\u{fffd}");
    assert_eq!(info.sni().map(str::to_string), ch.sni.map(lossy));
    let alpn: Vec<String> = info.alpn().map(str::to_string).collect();
    let want: Vec<String> = ch.alpn.iter().map(|a| lossy(a)).collect();
    assert_eq!(alpn, want);
    if let Some(v) = tls::version_name(ch.max_version()) {
        assert!(!v.is_empty());
    }
    let rules = default_rules();
    if let Some(sni) = ch.sni {
        let _ = classify::by_server_name(&rules, sni, AppSource::Sni);
    }
}

/// QUIC versions a sealed Initial is built with (v1, v2, draft-29, draft-23, mvfst).
const QUIC_VERSIONS: [u32; 5] = [
    quic::QUIC_V1,
    quic::QUIC_V2,
    0xff00_001d,
    0xff00_0017,
    0xface_b001,
];

/// QUIC client Initials, three ways by the first byte:
///
/// - 0: the rest is a UDP datagram (bytes after a connection-id length and id: the original
///   DCID, when the length's top bit is set), read by [`quic::client_initials`];
/// - 1: the rest are frames, sealed into a valid protected Initial, so the fuzzer reaches the
///   frame parser behind the decryption;
/// - 2: the rest is a CRYPTO stream, split into up to four CRYPTO frames sent in an order the
///   input picks, each in its own sealed Initial; the packets go coalesced to the parser and one
///   datagram each through a flow tracker.
///
/// Checks: CRYPTO ranges stay below 2^62; a sealed packet always opens (only its frames can be
/// refused); the delivered CRYPTO data puts the stream back together; a hello the TLS parser
/// reads from the stream is found by the reassembler too.
pub fn quic_initial(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut scratch = Vec::new();
    match b.u8() % 3 {
        0 => {
            let n = b.u8();
            let known = if n & 0x80 != 0 {
                quic::ConnId::new(b.take(usize::from(n & 0x1f)))
            } else {
                None
            };
            let datagram = b.rest();
            let got = quic::client_initials(datagram, known.as_ref(), &mut scratch, |off, d| {
                assert!(off.checked_add(d.len() as u64).is_some_and(|e| e < 1 << 62));
            });
            if let Ok(info) = got {
                assert!(info.packets >= 1);
                assert!(quic::looks_like_client_initial(datagram));
            }
            let _ = got.map_err(|e| e.to_string());
        }
        mode => {
            let version = QUIC_VERSIONS[usize::from(b.u8()) % QUIC_VERSIONS.len()];
            let n = usize::from(b.u8()) % 21;
            let dcid = b.take(n).to_vec();
            let n = usize::from(b.u8()) % 21;
            let scid = b.take(n).to_vec();
            let pn_len = 1 + usize::from(b.u8() % 4);
            let min_len = if b.u8() & 1 == 0 { 1200 } else { 0 };
            if mode == 1 {
                sealed_frames(
                    version,
                    &dcid,
                    &scid,
                    pn_len,
                    min_len,
                    b.rest(),
                    &mut scratch,
                );
            } else {
                let order = b.u8();
                let cuts = [b.u16(), b.u16(), b.u16()];
                sealed_stream(
                    version,
                    &dcid,
                    &scid,
                    pn_len,
                    min_len,
                    order,
                    cuts,
                    b.rest(),
                );
            }
        }
    }
}

/// One sealed Initial around fuzzer frames: it must open, and only the frames may be refused.
fn sealed_frames(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn_len: usize,
    min_len: usize,
    frames: &[u8],
    scratch: &mut Vec<u8>,
) {
    let Ok(packet) = quic::seal_client_initial(version, dcid, scid, 0, pn_len, frames, min_len)
    else {
        return; // too long for the sealing helper
    };
    let got = quic::client_initials(&packet, None, scratch, |off, d| {
        assert!(off.checked_add(d.len() as u64).is_some_and(|e| e < 1 << 62));
    });
    match got {
        Ok(info) => {
            assert_eq!(info.version, version);
            assert_eq!(info.dcid.as_slice(), dcid);
            assert_eq!(info.scid.as_slice(), scid);
        }
        Err(quic::QuicError::Malformed(_)) => {}
        Err(e) => panic!("a sealed Initial did not open: {e}"),
    }
    let mut pipe = Pipeline::new();
    let m = meta(Timestamp(1), true, 443, Transport::Udp, packet.len());
    pipe.packet(&m, &packet);
    pipe.finish();
}

/// A CRYPTO stream cut into up to four frames, each sealed in its own Initial.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the fields
fn sealed_stream(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn_len: usize,
    min_len: usize,
    order: u8,
    cuts: [u16; 3],
    stream: &[u8],
) {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    at.dedup();
    let mut pieces: Vec<(usize, &[u8])> =
        at.windows(2).map(|w| (w[0], &stream[w[0]..w[1]])).collect();
    if pieces.is_empty() {
        pieces.push((0, &[]));
    }
    let n = pieces.len();
    pieces.rotate_left(usize::from(order) % n);
    if order & 0x80 != 0 {
        pieces.reverse();
    }
    let mut packets = Vec::with_capacity(n);
    for (pn, &(off, piece)) in pieces.iter().enumerate() {
        let mut frames = Vec::with_capacity(piece.len() + 16);
        if order & 0x40 != 0 {
            frames.push(0x01); // PING first
        }
        quic::crypto_frame(off as u64, piece, &mut frames);
        let Ok(p) =
            quic::seal_client_initial(version, dcid, scid, pn as u32, pn_len, &frames, min_len)
        else {
            return;
        };
        packets.push(p);
    }
    // All packets coalesced into one datagram: every piece comes back.
    let datagram = packets.concat();
    let mut back = ClientPrefix::new(0);
    let mut scratch = Vec::new();
    let got = quic::client_initials(&datagram, None, &mut scratch, |off, d| {
        if let Ok(off) = u32::try_from(off) {
            back.insert(off, d);
        }
    });
    match got {
        Ok(info) => assert_eq!(info.packets as usize, n),
        Err(e) => panic!("sealed Initials did not open: {e}"),
    }
    let whole = stream.len().min(MAX_PREFIX as usize);
    assert_eq!(back.contiguous(), &stream[..whole]);
    let found = matches!(back.scan_handshake_message(), HelloScan::Found(_));
    if whole == stream.len() && tls::parse_client_hello_message(stream).is_ok() {
        assert!(
            found,
            "the CRYPTO stream holds a hello the reassembler did not find"
        );
    }
    // One datagram per packet through a tracker, as a client sends a large hello.
    let mut pipe = Pipeline::new();
    for (i, p) in packets.iter().enumerate() {
        let m = meta(Timestamp(1 + i as u64), true, 443, Transport::Udp, p.len());
        pipe.packet(&m, p);
    }
    pipe.finish();
}

/// A DNS message's first question ([`dns::first_question`]), then classified by its name.
///
/// Checks: the name fits its buffer and is lower case.
pub fn dns(data: &[u8]) {
    let mut name = [0u8; dns::MAX_NAME];
    if let Ok(q) = dns::first_question(data, &mut name) {
        assert!(q.name_len <= dns::MAX_NAME);
        let name = &name[..q.name_len];
        assert!(!name.iter().any(u8::is_ascii_uppercase));
        let _ = classify::by_server_name(&default_rules(), name, AppSource::DnsQuery);
    }
}

/// A STUN/TURN message ([`stun::parse`]) and its attributes, then classified.
///
/// Checks: the attributes lie inside the message, at most 64 are read, a classic message fills
/// the datagram exactly.
pub fn stun(data: &[u8]) {
    let Some(msg) = stun::parse(data) else {
        return;
    };
    let mut seen = 0usize;
    let mut count = 0usize;
    for (_, v) in msg.attributes() {
        seen += 4 + v.len();
        count += 1;
    }
    assert!(seen <= data.len().saturating_sub(20));
    assert!(count <= 64);
    if msg.classic {
        assert_eq!((data.len() - 20) % 4, 0);
    }
    let _ = classify::by_stun(&default_rules(), &msg);
}

/// A reader that hands out at most `step` bytes per call, as pipes and sockets do.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A frame a worker still holds: its chunk, where the frame lies in it, and a copy of its bytes.
struct Held {
    chunk: crate::capture::Chunk,
    at: usize,
    bytes: Vec<u8>,
}

/// A capture file (pcap or pcapng) through the reader, the decoder and a flow tracker.
///
/// Input: one control byte, then the file. The control byte picks the read chunk size (64 B to
/// 8 KiB, so chunks turn over within small inputs), the bytes per `read` call (all, or 1 to 7),
/// and how many recent frames stay held, as workers hold them while later frames are read.
///
/// Checks: frames within [`MAX_FRAME`] and their chunk; `orig_len` at least the captured length;
/// a frame still held keeps its bytes while later ones are read (chunks in use are never
/// reused); the read position never passes the input; the events are JSON.
pub fn capture_file(data: &[u8]) {
    let mut b = Bytes::new(data);
    let ctl = b.u8();
    let chunk = 64usize << (ctl & 7);
    let step = match ctl >> 3 & 7 {
        0 => usize::MAX,
        s => usize::from(s),
    };
    let hold = usize::from(ctl >> 6);
    let file = b.rest();
    let input = Trickle {
        data: file.to_vec(),
        at: 0,
        step,
    };
    let opened = FileSource::with_chunk_size(
        PathBuf::from("fuzz.pcap"),
        Box::new(input),
        Some(file.len() as u64),
        chunk,
    );
    let mut src = match opened {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut held: Vec<Held> = Vec::new();
    let mut pipe = Pipeline::new();
    loop {
        let p = match src.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                break;
            }
        };
        assert!(p.data.len() <= MAX_FRAME as usize);
        assert!(p.orig_len as usize >= p.data.len());
        let at = (p.data.as_ptr() as usize).wrapping_sub(p.chunk.as_ptr() as usize);
        assert!(at <= p.chunk.len() && p.data.len() <= p.chunk.len() - at);
        for h in &held {
            assert_eq!(
                &h.chunk[h.at..h.at + h.bytes.len()],
                &h.bytes[..],
                "a held frame changed under its worker"
            );
        }
        if hold > 0 {
            if held.len() == hold {
                held.remove(0);
            }
            held.push(Held {
                chunk: Arc::clone(p.chunk),
                at,
                bytes: p.data.to_vec(),
            });
        }
        if let Ok(m) = decode::decode(p.link, p.ts, p.orig_len, p.data) {
            pipe.packet(&m, m.payload(p.data));
        }
    }
    assert!(src.position() <= file.len() as u64);
    pipe.finish();
}

/// The file stem an app file must have: its `id = "..."` value, found by a plain text search
/// (the parser insists the two agree).
fn stem_of(text: &str) -> &str {
    text.lines()
        .find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("id")?
                .trim_start()
                .strip_prefix('=')?;
            v.trim().strip_prefix('"')?.split('"').next()
        })
        .unwrap_or("fuzz")
}

/// A rule file and, after the first NUL byte, a policy file, through the parser and compiler.
///
/// Checks: error messages render; with a valid set, every domain entry, prefix and signature
/// matches what it was compiled from.
pub fn rule_file(data: &[u8]) {
    let (app, policy) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(app).into_owned();
    let name = format!("{}.toml", stem_of(&text));
    let app = Source {
        path: PathBuf::from("rules").join(&name),
        name,
        text,
    };
    let policy = policy.map(|p| Source {
        path: PathBuf::from("policy.toml"),
        name: "policy.toml".into(),
        text: String::from_utf8_lossy(p).into_owned(),
    });
    let set = match RuleSet::parse(std::slice::from_ref(&app), policy.as_ref()) {
        Ok(set) => set,
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                assert!(!e.to_string().is_empty());
            }
            return;
        }
    };
    let compiled = CompiledRules::build(&set);
    for (i, def) in set.apps.iter().enumerate() {
        let ours = |m: Option<&crate::rules::DomainMatch>| {
            m.and_then(|m| compiled.apps().get(usize::from(m.app)))
                .is_some_and(|a| *a.id == *def.id)
        };
        assert_eq!(
            compiled.apps().get(i).map(|a| &*a.id),
            Some(def.id.as_str())
        );
        for d in &def.domains {
            assert!(ours(compiled.match_host(d.name.as_bytes())), "{}", d.name);
        }
        if let Some(list) = &def.prefixes {
            for &(ip, _, _) in &list.entries {
                assert!(compiled.match_addr(ip).is_some(), "{ip}");
            }
        }
        for sig in &def.signatures {
            let mut payload = vec![0u8; usize::from(sig.offset)];
            payload.extend(sig.pattern.iter().map(|p| match p {
                crate::rules::BytePattern::Any => 0,
                crate::rules::BytePattern::OneOf(v) => v.first().copied().unwrap_or(0),
            }));
            if let Some(l) = sig.length {
                // Make the length field and the payload's length agree: grow the payload to
                // what the pattern's bytes already say, or write the payload's length.
                let end = usize::from(l.offset) + usize::from(l.size);
                if payload.len() < end {
                    payload.resize(end, 0);
                }
                let said = l.read(&payload).unwrap_or(0);
                if said >= payload.len() as i64 {
                    payload.resize(usize::try_from(said).unwrap_or(0), 0);
                } else {
                    let v = (payload.len() as i64 - i64::from(l.adjust)).max(0) as u64;
                    let size = usize::from(l.size);
                    let bytes = v.to_be_bytes();
                    let field = &mut payload[usize::from(l.offset)..end];
                    for i in 0..size {
                        field[i] = if l.big_endian {
                            bytes[8 - size + i]
                        } else {
                            bytes[7 - i]
                        };
                    }
                }
            }
            let port = sig.ports.first().copied().unwrap_or(443);
            let len = payload.len();
            assert!(
                compiled
                    .match_payload(sig.transport, port, &payload, len)
                    .is_some(),
                "signature at line {}",
                sig.line
            );
        }
    }
    for s in compiled.stale_lists(rules::today()) {
        assert!(!s.to_string().is_empty());
    }
}
