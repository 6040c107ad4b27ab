//! Why a frame gave no flow packet ([`Skip`]) and the layer a decode error happened in: the
//! counted outcomes of decoding, never logged per packet.

use std::fmt;

/// Why a frame gave no flow packet: skipped kinds and decode errors, each counted by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Skip {
    /// A link type this sensor does not decode.
    UnsupportedLink,
    /// An ether type other than IP (ARP, LLDP, ...), also inside a tunnel.
    NotIp,
    /// An IP protocol other than TCP, UDP and the tunnels (ICMP, ESP, ...).
    OtherTransport,
    /// An IP fragment: held for reassembly, or dropped by it (the fragment that completes a
    /// datagram is counted as the datagram instead).
    Fragment,
    /// The frame ended inside a header of this layer.
    Truncated(DecodeLayer),
    /// A header of this layer had an invalid field.
    Malformed(DecodeLayer),
    /// More tunnels nested than [`MAX_TUNNEL_DEPTH`](super::MAX_TUNNEL_DEPTH).
    TunnelDepth,
}

/// The layer a decode error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeLayer {
    /// Ethernet, VLAN, SLL or loopback header.
    Link,
    /// IPv4 or IPv6 header, options or extension headers.
    Ip,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// A tunnel header (GRE, ERSPAN, MPLS, IP-in-IP).
    Tunnel,
}

impl Skip {
    /// All kinds, in the order summaries list them.
    pub const ALL: [Skip; 15] = [
        Skip::UnsupportedLink,
        Skip::NotIp,
        Skip::OtherTransport,
        Skip::Fragment,
        Skip::Truncated(DecodeLayer::Link),
        Skip::Truncated(DecodeLayer::Ip),
        Skip::Truncated(DecodeLayer::Tcp),
        Skip::Truncated(DecodeLayer::Udp),
        Skip::Malformed(DecodeLayer::Link),
        Skip::Malformed(DecodeLayer::Ip),
        Skip::Malformed(DecodeLayer::Tcp),
        Skip::Malformed(DecodeLayer::Udp),
        Skip::Truncated(DecodeLayer::Tunnel),
        Skip::Malformed(DecodeLayer::Tunnel),
        Skip::TunnelDepth,
    ];

    /// Dense index into [`Skip::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        use DecodeLayer::*;
        match self {
            Skip::UnsupportedLink => 0,
            Skip::NotIp => 1,
            Skip::OtherTransport => 2,
            Skip::Fragment => 3,
            Skip::Truncated(Link) => 4,
            Skip::Truncated(Ip) => 5,
            Skip::Truncated(Tcp) => 6,
            Skip::Truncated(Udp) => 7,
            Skip::Malformed(Link) => 8,
            Skip::Malformed(Ip) => 9,
            Skip::Malformed(Tcp) => 10,
            Skip::Malformed(Udp) => 11,
            Skip::Truncated(Tunnel) => 12,
            Skip::Malformed(Tunnel) => 13,
            Skip::TunnelDepth => 14,
        }
    }

    /// Whether this kind is damage (truncated, malformed, nested too deep) rather than traffic we
    /// do not track.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Skip::Truncated(_) | Skip::Malformed(_) | Skip::TunnelDepth
        )
    }

    /// A stable snake_case name, used as a metric label and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsupportedLink => "unsupported_link",
            Skip::NotIp => "not_ip",
            Skip::OtherTransport => "other_transport",
            Skip::Fragment => "ip_fragment",
            Skip::Truncated(DecodeLayer::Link) => "truncated_link",
            Skip::Truncated(DecodeLayer::Ip) => "truncated_ip",
            Skip::Truncated(DecodeLayer::Tcp) => "truncated_tcp",
            Skip::Truncated(DecodeLayer::Udp) => "truncated_udp",
            Skip::Truncated(DecodeLayer::Tunnel) => "truncated_tunnel",
            Skip::Malformed(DecodeLayer::Link) => "malformed_link",
            Skip::Malformed(DecodeLayer::Ip) => "malformed_ip",
            Skip::Malformed(DecodeLayer::Tcp) => "malformed_tcp",
            Skip::Malformed(DecodeLayer::Udp) => "malformed_udp",
            Skip::Malformed(DecodeLayer::Tunnel) => "malformed_tunnel",
            Skip::TunnelDepth => "tunnel_too_deep",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_index_matches_all_order() {
        for (i, k) in Skip::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k}");
        }
    }
}
