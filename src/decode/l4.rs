//! The transport layer: TCP and UDP headers, read through etherparse's checked slices, and the
//! [`PacketMeta`] a packet ends as. Never looks into the payload.

use super::ip::Upper;
use super::{tcp_flags, Ctx, DecodeLayer, PacketMeta, Skip, Transport};
use crate::capture::Timestamp;
use etherparse::{TcpHeaderSlice, UdpHeaderSlice};

/// A transport header's fields.
pub(super) struct L4 {
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) transport: Transport,
    pub(super) flags: u8,
    pub(super) seq: u32,
    pub(super) ack: u32,
}

#[inline]
pub(super) fn tcp(
    u: &Upper<'_>,
    frame: &[u8],
    ts: Timestamp,
    wire_len: u32,
    cx: &Ctx,
) -> Result<PacketMeta, Skip> {
    let t = TcpHeaderSlice::from_slice(u.body).map_err(|e| match e {
        etherparse::err::tcp::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Tcp),
        etherparse::err::tcp::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Tcp),
    })?;
    let l4 = L4 {
        sport: t.source_port(),
        dport: t.destination_port(),
        transport: Transport::Tcp,
        flags: tcp_flag_byte(&t),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
    };
    Ok(meta(
        u,
        l4,
        &u.body[t.slice().len()..],
        frame,
        ts,
        wire_len,
        cx,
    ))
}

/// A UDP header's ports and the datagram's payload.
#[inline]
pub(super) fn udp(payload: &[u8]) -> Result<(u16, u16, &[u8]), Skip> {
    let u = UdpHeaderSlice::from_slice(payload).map_err(|_| Skip::Truncated(DecodeLayer::Udp))?;
    let len = usize::from(u.length());
    if len != 0 && len < 8 {
        return Err(Skip::Malformed(DecodeLayer::Udp));
    }
    // Length 0 happens with IPv6 jumbograms and some offloads: take what is there.
    let end = if len == 0 {
        payload.len()
    } else {
        len.min(payload.len())
    };
    Ok((u.source_port(), u.destination_port(), &payload[8..end]))
}

#[inline]
pub(super) fn meta(
    u: &Upper<'_>,
    l4: L4,
    body: &[u8],
    frame: &[u8],
    ts: Timestamp,
    wire_len: u32,
    cx: &Ctx,
) -> PacketMeta {
    // The payload is a sub-slice of the frame; its offset is a plain address difference.
    let off = (body.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
    let (payload_off, payload_len) = if off
        .checked_add(body.len())
        .is_some_and(|e| e <= frame.len())
    {
        (off as u32, body.len() as u32)
    } else {
        (0, 0)
    };
    PacketMeta {
        ts,
        wire_len,
        src: u.src,
        dst: u.dst,
        sport: l4.sport,
        dport: l4.dport,
        transport: l4.transport,
        vlans: cx.vlans,
        nvlan: cx.nvlan,
        segment: cx.segment,
        flags: l4.flags,
        seq: l4.seq,
        ack: l4.ack,
        payload_off,
        payload_len,
    }
}

fn tcp_flag_byte(t: &TcpHeaderSlice<'_>) -> u8 {
    use tcp_flags::*;
    let mut f = 0;
    for (set, bit) in [
        (t.fin(), FIN),
        (t.syn(), SYN),
        (t.rst(), RST),
        (t.psh(), PSH),
        (t.ack(), ACK),
        (t.urg(), URG),
    ] {
        if set {
            f |= bit;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use std::net::IpAddr;

    #[test]
    fn decode_ethernet_ipv4_tcp() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        let m = decode(LinkType::Ethernet, Timestamp(5), 0, &f).unwrap();
        assert_eq!(m.src.ip(), "10.1.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(m.dst.ip(), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            (m.sport, m.dport, m.transport),
            (50000, 443, Transport::Tcp)
        );
        assert_eq!((m.seq, m.ack), (1000, 2000));
        assert_eq!(m.flags, tcp_flags::PSH | tcp_flags::ACK);
        assert_eq!(m.payload(&f), b"abcd");
        assert_eq!(m.wire_len, f.len() as u32);
        assert_eq!(m.nvlan, 0);
    }

    #[test]
    fn decode_snaplen_truncated_payload_is_used_as_far_as_it_goes() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f.truncate(f.len() - 2);
        let m = decode(LinkType::Ethernet, Timestamp(0), 58, &f).unwrap();
        assert_eq!(m.payload(&f), b"ab");
        assert_eq!(m.wire_len, 58);
    }
}
