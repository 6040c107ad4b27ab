//! Picket: a network sensor that flags messaging and conferencing apps.
//!
//! # Architecture
//!
//! ```text
//! capture ─▶ decode ─▶ pipeline ───────────────▶ flow ──────────▶ classify ─▶ export
//! (frames)   (PacketMeta) (reader, dispatch,      (facts per flow: (the one     (records → sink:
//!                          workers, one clock,     table, TCP,      decision)    gate, events,
//!                          hint updates)           reassembly)                   summary, report,
//!                                                                                metrics)
//! ```
//!
//! - [`capture`]: packet sources (capture files; live interfaces with the `live` feature). Hands
//!   out frames with timestamps; never parses.
//! - [`decode`]: link layer, tunnels (GRE, ERSPAN, VXLAN, IP-in-IP, MPLS, GTP-U), IPv4/IPv6,
//!   TCP/UDP headers into a `Copy` [`decode::PacketMeta`]; zero-copy, never panics. The reader's
//!   [`decode::Decoder`] also reassembles IP fragments, within hard caps, before flows are keyed.
//! - [`pipeline`]: the reader loop, a symmetric flow hash that picks one worker per flow, batches
//!   over bounded crossbeam channels, the sensor's one clock, and the worker threads. No lock on
//!   the per-packet path.
//! - [`flow`]: each worker's flow table, TCP tracking, timeouts in packet time, the client's first
//!   bytes reassembled until the handshake is complete: the facts of each flow.
//! - [`proto`]: pure parsers from bytes to typed summaries (TLS, JA4, QUIC, DNS, STUN).
//! - [`classify`] and [`rules`]: apps are data (`rules/*.toml`), compiled into a matcher;
//!   [`classify::decide`] is the whole precedence, a pure function of a flow's facts.
//! - [`export`]: owned records in ([`export::record`]); the consumer ([`export::sink`]) orders
//!   them, gates alerts, writes JSON-lines events, the summary, the report and metrics.
//!
//! `ARCHITECTURE.md` at the repository's root is the map.
//!
//! Time below `capture` is always the packets' own time, passed as an argument: replay and live
//! give the same answers for the same packets.
//!
//! # Feature flags
//!
//! - `live` (default): live capture through libpcap. Reading files never needs libpcap.
//! - `_fuzz` (private): the fuzz targets' entry points, for `fuzz/` and `tests/fuzz_corpus.rs`;
//!   not an API, and never in a release build.

pub mod capture;
pub mod classify;
pub mod decode;
pub mod export;
pub mod flow;
#[cfg(feature = "_fuzz")]
#[doc(hidden)]
pub mod fuzzing;
mod macros;
pub mod pipeline;
pub mod proto;
pub mod rules;
