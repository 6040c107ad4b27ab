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
use crate::decode::frag::{self, ReasmEnd};
use crate::decode::tunnel;
use crate::decode::{
    self, Addr, DecodeLayer, Decoded, Decoder, Next, PacketMeta, Segment, Skip, Transport,
    TunnelKind, MAX_MPLS_LABELS, MAX_TUNNEL_DEPTH, MAX_VLANS,
};
use crate::export::events::EventWriter;
use crate::export::record::Record as Event;
use crate::export::webconfig::{basic_credentials, Draft, WebConfigError};
use crate::flow::reasm::{ClientPrefix, HelloScan, MAX_PREFIX, MAX_RANGES};
use crate::flow::{FlowConfig, FlowHasher, FlowKey, FlowTracker};
use crate::proto::tls::TlsSummary as TlsInfo;
use crate::proto::{dns, quic, stun, tls};
use crate::rules::{self, CompiledRules, RuleSet, Source};
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
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
    ("tunnel_decap", tunnel_decap),
    ("ip_fragments", ip_fragments),
    ("web_config", web_config),
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
    let Ok(packet) =
        picket_synth::quic::seal_client_initial(version, dcid, scid, 0, pn_len, frames, min_len)
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
        picket_synth::quic::crypto_frame(off as u64, piece, &mut frames);
        let Ok(p) = picket_synth::quic::seal_client_initial(
            version, dcid, scid, pn as u32, pn_len, &frames, min_len,
        ) else {
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

/// bcrypt costs above this are not checked by `web_config`. Cost `c` runs `2^c` rounds of key
/// setup: at 4 (the least bcrypt allows) a check takes about a millisecond, at 10 (htpasswd's
/// default) about 60 ms, and a hash the fuzzer writes at 31 would take days. The code paths are
/// the same at every cost, so the target parses such files and stops before bcrypt.
const WEB_MAX_COST: u32 = 4;
/// Users above this are not checked by `web_config` (one bcrypt each at load).
const WEB_MAX_USERS: usize = 4;

/// A self-signed P-256 certificate and its PKCS#8 key (`tests/fixtures/web_ec.*`), served as
/// the files `web_config` inputs name.
const WEB_CERT: &[u8] = include_bytes!("../tests/fixtures/web_ec.crt");
const WEB_KEY: &[u8] = include_bytes!("../tests/fixtures/web_ec.key");

/// The files a fuzzed web config may name, from memory: `tls.crt` and `ca.crt` (the
/// certificate), `tls.key`, `empty.pem`, `key_as.crt` (a key where a certificate belongs), in
/// any folder; anything else is missing. Nothing is read from disk.
fn web_files(p: &Path) -> io::Result<Vec<u8>> {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name {
        "tls.crt" | "ca.crt" => Ok(WEB_CERT.to_vec()),
        "tls.key" | "key_as.crt" => Ok(WEB_KEY.to_vec()),
        "empty.pem" => Ok(Vec::new()),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not in the fuzz files",
        )),
    }
}

/// A web config file (the exporter toolkit's YAML), parsed from memory; after the first NUL, an
/// `Authorization` header checked against it.
///
/// Files with more than 4 users or a bcrypt cost above 4 are parsed but not built (bcrypt at a
/// high cost would take all the fuzzer's time; see `WEB_MAX_COST`).
///
/// Checks: errors name the config or a file it names, and say something; a built config
/// authorises exactly what bcrypt says about the header's user and password (no header: only
/// when no users are configured), the same again from the cache of passed credentials; the
/// hash unknown users are checked against costs what the first user's costs.
pub fn web_config(data: &[u8]) {
    let (text, header) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(text);
    let path = Path::new("/fuzz/web.yml");
    let refused = |e: WebConfigError| {
        assert!(e.path.is_absolute(), "{e}");
        assert!(!e.message.is_empty());
        assert!(e.to_string().starts_with(&*e.path.to_string_lossy()));
    };
    let draft = match Draft::parse(&text, path) {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(e.path, path);
            return refused(e);
        }
    };
    if draft.max_cost() > WEB_MAX_COST || draft.users() > WEB_MAX_USERS {
        return;
    }
    let first_cost = (draft.users() > 0).then(|| draft.max_cost());
    let cfg = match draft.finish(&web_files) {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    if cfg.needs_auth() {
        // Every cost is 4 (the least), so the first user's is the highest.
        assert_eq!(cfg.dummy_cost(), first_cost);
    } else {
        assert_eq!(cfg.dummy_cost(), None);
    }
    assert_eq!(cfg.authorized(None), !cfg.needs_auth());
    let Some(header) = header else {
        return;
    };
    let want = !cfg.needs_auth()
        || basic_credentials(header).is_some_and(|(user, password)| {
            cfg.hash_of(&user)
                .is_some_and(|h| bcrypt::verify(&password, h).unwrap_or(false))
        });
    assert_eq!(cfg.authorized(Some(header)), want);
    assert_eq!(
        cfg.authorized(Some(header)),
        want,
        "a second time, through the cache"
    );
}
