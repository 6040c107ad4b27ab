//! Entry points of the fuzz targets (`fuzz/`) and of their corpus replay (`tests/fuzz_corpus.rs`):
//! one function per untrusted input, each taking arbitrary bytes. Not an API: hidden from the
//! docs, free to change.
//!
//! Every function returns normally on any input. A panic is a bug, and so is a failed `assert!`:
//! each target also checks cheap facts the code promises (ranges inside the input, round trips,
//! reassembly against a byte model of a Linux receiver, events that serialise to one line each),
//! so a wrong answer is caught as well as a bad index.

mod inputs;
mod packets;
mod streams;

pub use inputs::{capture_file, rule_file, web_config};
pub use packets::{decode_frame, ip_fragments, tunnel_decap};
pub use streams::{dns, quic_datagrams, quic_initial, stun, tcp_reassembly, tls_client_hello};

use crate::capture::Timestamp;
use crate::decode::{Addr, PacketMeta, Transport, MAX_VLANS};
use crate::export::events::EventWriter;
use crate::export::record::Record;
use crate::flow::{FlowConfig, FlowHasher, FlowKey, FlowTracker};
use crate::rules::{self, CompiledRules};
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

/// A fuzz entry point: takes any bytes, returns normally or panics on a bug.
pub type Entry = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call it.
pub const TARGETS: &[(&str, Entry)] = &[
    ("decode_frame", decode_frame),
    ("tcp_reassembly", tcp_reassembly),
    ("tls_client_hello", tls_client_hello),
    ("quic_initial", quic_initial),
    ("quic_datagrams", quic_datagrams),
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
    events: Vec<Record>,
    json: EventWriter<OneLine>,
    last: Timestamp,
    /// Every server name the ended flows showed (their `sni` and `sni_candidates`).
    names: Vec<String>,
}

/// The reassembly budget of the fuzzed tracker: a few buffers, so pressure is common.
const FUZZ_MEMCAP: usize = 40 * 1024;
/// The most one reassembly buffer holds (16 KiB of bytes, the 2 KiB bitmap).
const ONE_BUFFER: usize = 18 * 1024;

impl Pipeline {
    fn new() -> Self {
        let cfg = FlowConfig {
            max_flows: 8,
            update_ns: 30_000_000_000,
            reassembly_memcap: FUZZ_MEMCAP,
            ..FlowConfig::default()
        };
        Pipeline {
            tracker: FlowTracker::new(cfg, default_rules()),
            hasher: FlowHasher::default(),
            events: Vec::new(),
            json: EventWriter::new(OneLine, Some("fuzz".into())),
            last: Timestamp(0),
            names: Vec::new(),
        }
    }

    fn packet(&mut self, m: &PacketMeta, payload: &[u8]) {
        let (key, _) = FlowKey::of(m);
        let hash = key.hash_with(&self.hasher);
        self.last = self.last.max(m.ts);
        self.tracker
            .packet(m, hash, payload, m.ts, &mut self.events);
        // The budget holds after every packet (a QUIC datagram may pass it by one buffer, which
        // is dropped before the next).
        assert!(
            self.tracker.reassembly_bytes() <= FUZZ_MEMCAP + ONE_BUFFER,
            "reassembly holds {} bytes",
            self.tracker.reassembly_bytes()
        );
        let events = std::mem::take(&mut self.events);
        self.write(events);
    }

    fn write(&mut self, events: Vec<Record>) {
        for e in events {
            let r = match &e {
                Record::Alert { ts, flow, .. } => self.json.alert(*ts, flow),
                Record::Update { ts, flow, .. } => self.json.update(*ts, flow),
                Record::Flow(rec) => {
                    let f = &rec.flow;
                    let sni = f.tls.as_deref().and_then(|t| t.sni());
                    let seen = f.evasion.iter().flat_map(|e| e.candidates.iter());
                    self.names
                        .extend(sni.into_iter().chain(seen.map(|c| &**c)).map(String::from));
                    self.json.flow(rec)
                }
                Record::Counts(_) => Ok(()),
            };
            assert!(r.is_ok(), "an event did not serialise: {r:?}");
        }
    }

    /// Ends every flow and writes what is left; the server names the flows showed.
    fn finish(mut self) -> Vec<String> {
        let mut rest = Vec::new();
        self.tracker.finish(self.last, 4, |v, _| rest.extend(v));
        self.write(rest);
        assert_eq!(self.tracker.active(), 0);
        assert_eq!(
            self.tracker.reassembly_bytes(),
            0,
            "every buffer given back"
        );
        self.names
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
        wire: crate::decode::WireMarks::default(),
    }
}
