//! Protocol parsers: pure functions from bytes to typed summaries, one file per protocol.
//! No state, no allocation beyond the summary, no panics on any input.

pub mod cert;
pub mod dns;
pub mod ja4;
pub mod quic;
pub mod shape;
pub mod stun;
pub mod tls;
