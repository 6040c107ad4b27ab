//! Per-worker flow state: the table, TCP tracking, timeouts in packet time, and the client's first
//! bytes reassembled until a handshake is read. Gathers facts; decides nothing (that is
//! [`crate::classify::decide`]). Never locks; never reads the clock.
//!
//! A worker's [`FlowTracker`] owns everything here. Packets come in with their precomputed key
//! hash and the sensor's time; what happens goes out as owned [`Record`]s (alerts, updates, ended
//! flows, per-app counts) into a caller-owned `Vec`.
//!
//! - [`state`]: one flow's state and the facts it has gathered.
//! - [`tracker`]: the table's life cycle: packets in, timeouts, eviction, records out.
//! - `tcp`, `udp`: what each transport's first bytes reveal (ClientHellos, STUN, QUIC
//!   Initials, DNS questions, signatures).
//! - [`reasm`]: the bounded reassembly of a handshake's bytes.
//! - [`hints`]: the worker's copy of what other flows revealed of endpoints.

pub mod hints;
pub mod key;
pub mod reasm;
pub mod state;
pub mod table;
mod tcp;
pub mod tracker;
mod udp;

pub use key::{FlowHasher, FlowKey};
pub use state::{Flow, Hello, TcpTrack};
pub use tracker::FlowTracker;

use crate::export::record::Record;
use table::TimeoutClass;

const SEC: u64 = 1_000_000_000;

/// Flow timeouts and limits; all times are packet time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// An open TCP connection ends after this long without a packet (default 300 s).
    pub tcp_idle_ns: u64,
    /// A UDP conversation ends after this long without a packet (default 60 s).
    pub udp_idle_ns: u64,
    /// After FIN both ways or a RST, a TCP connection ends after this long (default 5 s).
    pub closing_grace_ns: u64,
    /// Most flows this tracker holds; the least recently seen is evicted past it.
    pub max_flows: usize,
    /// A flow that lives longer emits a `flow_update` every this long (0: never; default 300 s).
    pub update_ns: u64,
    /// Most bytes of reassembly buffers (TCP streams and QUIC CRYPTO data) this tracker holds;
    /// past it the oldest pending buffers are dropped and counted (default 32 MiB).
    pub reassembly_memcap: usize,
}

/// Default of [`FlowConfig::reassembly_memcap`] (for the whole sensor; workers share it out).
pub const DEFAULT_REASSEMBLY_MEMCAP: usize = 32 << 20;

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle_ns: 300 * SEC,
            udp_idle_ns: 60 * SEC,
            closing_grace_ns: 5 * SEC,
            max_flows: 1_000_000,
            update_ns: 300 * SEC,
            reassembly_memcap: DEFAULT_REASSEMBLY_MEMCAP,
        }
    }
}

impl FlowConfig {
    fn timeout(&self, class: TimeoutClass) -> u64 {
        match class {
            TimeoutClass::Tcp => self.tcp_idle_ns,
            TimeoutClass::Udp => self.udp_idle_ns,
            TimeoutClass::Closing => self.closing_grace_ns,
        }
    }
}

/// Where a tracker's records go.
pub type Out = Vec<Record>;

#[cfg(test)]
mod tests;
