//! Why a frame gave no flow packet ([`Skip`]) and the layer a decode error happened in: the
//! counted outcomes of decoding, never logged per packet.

use crate::macros::counter_enum;

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

counter_enum! {
    impl Skip {
        UnsupportedLink => "unsupported_link",
        NotIp => "not_ip",
        OtherTransport => "other_transport",
        Fragment => "ip_fragment",
        Truncated(DecodeLayer::Link) => "truncated_link",
        Truncated(DecodeLayer::Ip) => "truncated_ip",
        Truncated(DecodeLayer::Tcp) => "truncated_tcp",
        Truncated(DecodeLayer::Udp) => "truncated_udp",
        Malformed(DecodeLayer::Link) => "malformed_link",
        Malformed(DecodeLayer::Ip) => "malformed_ip",
        Malformed(DecodeLayer::Tcp) => "malformed_tcp",
        Malformed(DecodeLayer::Udp) => "malformed_udp",
        Truncated(DecodeLayer::Tunnel) => "truncated_tunnel",
        Malformed(DecodeLayer::Tunnel) => "malformed_tunnel",
        TunnelDepth => "tunnel_too_deep",
    }
}

impl Skip {
    /// Whether this kind is damage (truncated, malformed, nested too deep) rather than traffic we
    /// do not track.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Skip::Truncated(_) | Skip::Malformed(_) | Skip::TunnelDepth
        )
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
