//! The IP layer: IPv4 headers with options, IPv6 headers and their extension headers, read
//! through etherparse's checked header slices. Finds the upper-layer protocol or a fragment;
//! never reassembles (that is [`super::frag`]) and never reads the transport header.

use super::frag;
use super::{be16, Addr, DecodeLayer, Skip};
use etherparse::{
    IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice,
};

/// An IP packet's addresses, protocol and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Upper<'a> {
    /// IPv6 (extension headers may follow).
    pub(super) v6: bool,
    pub(super) src: Addr,
    pub(super) dst: Addr,
    pub(super) proto: IpNumber,
    pub(super) body: &'a [u8],
    /// TTL or hop limit (0: unknown).
    pub(super) ttl: u8,
    /// The whole datagram lies in `body` (not cut by the snap length).
    pub(super) whole: bool,
}

/// Whether an IP header's length field (IPv4 total length, IPv6 payload length) claims more bytes
/// than `ip` holds. Zero lengths (segmentation offload, jumbograms) claim nothing.
pub(super) fn ip_length_overruns(ip: &[u8]) -> bool {
    match ip.first().map(|b| b >> 4) {
        // Only past a whole fixed header: a frame cut inside it is truncated, as before.
        Some(4) if ip.len() >= 20 => be16(ip, 2).is_some_and(|t| usize::from(t) > ip.len()),
        Some(6) if ip.len() >= 40 => be16(ip, 4).is_some_and(|p| 40 + usize::from(p) > ip.len()),
        _ => false,
    }
}

/// An IP header read: the whole packet's payload, or a fragment of it.
pub(super) enum IpHeader<'a> {
    Whole(Upper<'a>),
    Fragment(frag::Frag<'a>),
}

/// Reads an IPv4 or IPv6 header (not the IPv6 extension headers). Inlined: returned through
/// memory, its addresses would be read back in pieces other than they were written, and the
/// store-forwarding stalls cost more than the rest of decoding.
#[inline(always)]
pub(super) fn ip_header(ip: &[u8]) -> Result<IpHeader<'_>, Skip> {
    use etherparse::err::{ipv4, ipv6};
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let h = Ipv4HeaderSlice::from_slice(ip).map_err(|e| match e {
                ipv4::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Ip),
                ipv4::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
            })?;
            let hlen = h.slice().len();
            // A total length of 0 comes from segmentation offload (TSO/LRO) on the capturing
            // host: the frame's own length is the truth then.
            let total = match usize::from(h.total_len()) {
                0 => ip.len(),
                t => t,
            };
            if total < hlen {
                return Err(Skip::Malformed(DecodeLayer::Ip));
            }
            let src = Addr::v4(h.source());
            let dst = Addr::v4(h.destination());
            if h.is_fragmenting_payload() {
                // A fragment cut by the snaplen cannot be reassembled.
                let data = ip
                    .get(hlen..total)
                    .ok_or(Skip::Truncated(DecodeLayer::Ip))?;
                return Ok(IpHeader::Fragment(frag::Frag {
                    v6: false,
                    src,
                    dst,
                    id: u32::from(h.identification()),
                    proto: h.protocol(),
                    offset: u32::from(h.fragments_offset().value()) * 8,
                    more: h.more_fragments(),
                    data,
                }));
            }
            // Lax: a total length beyond the captured bytes (snaplen) keeps what was captured;
            // Ethernet padding after the total length is not payload.
            let end = total.min(ip.len());
            Ok(IpHeader::Whole(Upper {
                v6: false,
                src,
                dst,
                proto: h.protocol(),
                body: &ip[hlen..end],
                ttl: h.ttl(),
                whole: total <= ip.len(),
            }))
        }
        Some(6) => {
            let h = Ipv6HeaderSlice::from_slice(ip).map_err(|e| match e {
                ipv6::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Ip),
                ipv6::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
            })?;
            let plen = usize::from(h.payload_length());
            let body = &ip[40..];
            let whole = plen != 0 && plen <= body.len();
            let body = if plen == 0 {
                body
            } else {
                &body[..plen.min(body.len())]
            };
            Ok(IpHeader::Whole(Upper {
                v6: true,
                src: Addr(h.source()),
                dst: Addr(h.destination()),
                proto: h.next_header(),
                body,
                ttl: h.hop_limit(),
                whole,
            }))
        }
        Some(_) => Err(Skip::Malformed(DecodeLayer::Ip)),
        None => Err(Skip::Truncated(DecodeLayer::Ip)),
    }
}

/// Whether an IPv6 next-header value is an extension header walked here.
pub(super) fn is_ipv6_ext(n: IpNumber) -> bool {
    matches!(
        n,
        IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_FRAGMENTATION_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS
            | IpNumber::AUTHENTICATION_HEADER
    )
}

/// Walks IPv6 extension headers (RFC 8200 §4), leaving `u` at the upper-layer protocol; a
/// Fragment header that fragments ends the walk with the fragment (atomic fragments, RFC 6946,
/// are walked through). Hop-by-hop options are only allowed first.
pub(super) fn ipv6_exts<'a>(u: &mut Upper<'a>) -> Result<Option<frag::Frag<'a>>, Skip> {
    let trunc = Skip::Truncated(DecodeLayer::Ip);
    let mut first = true;
    loop {
        let len = match u.proto {
            IpNumber::IPV6_HEADER_HOP_BY_HOP if !first => {
                return Err(Skip::Malformed(DecodeLayer::Ip))
            }
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS => {
                let h = Ipv6RawExtHeaderSlice::from_slice(u.body).map_err(|_| trunc)?;
                u.proto = h.next_header();
                h.slice().len()
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let h = Ipv6FragmentHeaderSlice::from_slice(u.body).map_err(|_| trunc)?;
                if h.is_fragmenting_payload() {
                    return Ok(Some(frag::Frag {
                        v6: true,
                        src: u.src,
                        dst: u.dst,
                        id: h.identification(),
                        proto: h.next_header(),
                        offset: u32::from(h.fragment_offset().value()) * 8,
                        more: h.more_fragments(),
                        data: &u.body[8..],
                    }));
                }
                u.proto = h.next_header();
                8
            }
            IpNumber::AUTHENTICATION_HEADER => {
                use etherparse::err::ip_auth::HeaderSliceError;
                let h = IpAuthHeaderSlice::from_slice(u.body).map_err(|e| match e {
                    HeaderSliceError::Len(_) => trunc,
                    HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
                })?;
                u.proto = h.next_header();
                h.slice().len()
            }
            _ => return Ok(None),
        };
        u.body = &u.body[len..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use std::net::IpAddr;

    #[test]
    fn decode_ipv6_extension_header_udp_raw_and_sll() {
        let m = decode(LinkType::Raw, Timestamp(0), 0, IPV6_HOPBYHOP_UDP).unwrap();
        assert_eq!(m.transport, Transport::Udp);
        assert_eq!((m.sport, m.dport), (5000, 53));
        assert_eq!(m.dst.ip(), "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(m.payload(IPV6_HOPBYHOP_UDP), [1, 2]);

        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        sll.extend(ETH_IPV6.to_be_bytes());
        sll.extend(IPV6_HOPBYHOP_UDP);
        let m = decode(LinkType::LinuxSll, Timestamp(0), 0, &sll).unwrap();
        assert_eq!(m.dport, 53);

        let mut sll2 = ETH_IPV6.to_be_bytes().to_vec();
        sll2.extend([0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        sll2.extend(IPV6_HOPBYHOP_UDP);
        let m = decode(LinkType::LinuxSll2, Timestamp(0), 0, &sll2).unwrap();
        assert_eq!(m.sport, 5000);
    }

    #[test]
    fn decode_ipv4_total_length_zero_from_offload_uses_captured_length() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 2] = 0;
        f[14 + 3] = 0;
        let m = decode(LinkType::Ethernet, Timestamp(0), 0, &f).unwrap();
        assert_eq!(m.payload(&f), b"abcd");
    }

    #[test]
    fn length_fields_past_a_whole_frame_are_damage_not_snaplen() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 2..14 + 4].copy_from_slice(&200u16.to_be_bytes());
        // The capture says the frame was longer (snaplen): lax, what was captured is used.
        let wire = (f.len() + 200) as u32;
        assert!(decode(LinkType::Ethernet, Timestamp(0), wire, &f).is_ok());
        // The whole frame was captured: the length lies.
        assert_eq!(err(&f), Skip::Malformed(DecodeLayer::Ip));
        // UDP likewise: its length field is 4 bytes into the UDP header.
        let mut u = eth_with(ETH_IPV4, &ipv4(17, &udp(5000, 53, b"abcd")));
        let at = 14 + 20 + 4;
        u[at..at + 2].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(err(&u), Skip::Malformed(DecodeLayer::Udp));
        let wire = (u.len() + 100) as u32;
        assert!(decode(LinkType::Ethernet, Timestamp(0), wire, &u).is_ok());
    }
}
