//! Picket: a network sensor that flags messaging and conferencing apps.
//!
//! # Architecture
//!
//! ```text
//! capture ─▶ decode ─▶ dispatch ─▶ worker × N ─▶ classify ─▶ export
//! (frames)   (PacketMeta) (flow hash)  (FlowTracker:    (rules)     (JSON events,
//!                                       flow table,                  summary, report)
//!                                       reassembly, proto)
//! ```
//!
//! - [`capture`]: packet sources (capture files; live interfaces with the `live` feature). Hands
//!   out frames with timestamps; never parses.
//! - [`decode`]: link layer, tunnels (GRE, ERSPAN, VXLAN, IP-in-IP, MPLS, GTP-U), IPv4/IPv6,
//!   TCP/UDP headers into a `Copy` [`decode::PacketMeta`]; zero-copy, never panics. The reader's
//!   [`decode::Decoder`] also reassembles IP fragments, within hard caps, before flows are keyed.
//! - [`dispatch`]: a symmetric flow hash picks one worker per flow; batches travel over bounded
//!   crossbeam channels and are recycled. No lock on the per-packet path.
//! - [`flow`]: each worker's flow table, TCP tracking, timeouts in packet time, and the client's
//!   first bytes reassembled until the handshake is complete.
//! - [`proto`]: pure parsers from bytes to typed summaries (TLS ClientHello).
//! - [`classify`] and [`rules`]: apps are data (`rules/*.toml`), compiled into a matcher.
//! - [`export`]: JSON-lines flow events, the run summary and the analyst's HTML report.
//!
//! Time below `capture` is always the packets' own time, passed as an argument: replay and live
//! give the same answers for the same packets.
//!
//! # Feature flags
//!
//! - `live` (default): live capture through libpcap. Reading files never needs libpcap.

pub mod capture;
pub mod classify;
pub mod decode;
pub mod dispatch;
pub mod engine;
pub mod export;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
mod macros;
pub mod proto;
pub mod rules;
pub mod synth;
