//! Picket's traffic generator: deterministic TLS hellos, sealed QUIC Initials, Ethernet frames,
//! TCP/UDP conversations, tunnels and fragments, capture-file writers and named scenarios. It only
//! writes bytes: it never parses them with Picket, so Picket's tests check one against the other.
//!
//! The `picket-synth` binary writes the named captures (`picket-synth demo pcaps/demo.pcap`);
//! Picket's tests, benchmarks and fuzz seeds use the library.

pub mod calls;
pub mod conv;
pub mod evasion;
pub mod hostile;
pub mod packet;
pub mod pcap;
pub mod quic;
pub mod rng;
pub mod scenario;
#[cfg(test)]
mod testutil;
pub mod tls;
pub mod tunnel;

pub use conv::{segments, Path, TcpConv, UdpConv};
pub use hostile::hostile;
pub use pcap::{
    to_linktype, write_pcap, Interface, LinkType, PcapFormat, PcapWriter, PcapngWriter,
};
pub use rng::Rng;
pub use scenario::{bulk, demo, demo_manifest, many_flows, FlowExpect, Transport};
pub use tls::{
    app_data, certificate, client_hello, server_flight_tls12, server_hello_and_more,
    ClientHelloSpec,
};
pub use tunnel::{fragment_flood, fragments, tunnels, TunnelFlow};

/// One captured Ethernet frame with its capture time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The complete Ethernet II frame, without FCS.
    pub frame: Vec<u8>,
}
