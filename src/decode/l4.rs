//! The transport layer: TCP and UDP headers, read through etherparse's checked slices, and the
//! [`PacketMeta`] a packet ends as. Never looks into the payload.

use super::ip::Upper;
use super::meta::{ones_sum, tcp_opts, WireMarks};
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
    pub(super) wire: WireMarks,
}

/// The pseudo-header's sum (RFC 9293 §3.1, RFC 8200 §8.1) for `len` transport bytes.
fn pseudo_sum(u: &Upper<'_>, len: usize) -> u32 {
    let (src, dst) = if u.v6 {
        (&u.src.0[..], &u.dst.0[..])
    } else {
        (&u.src.0[12..], &u.dst.0[12..])
    };
    let mut s = ones_sum(ones_sum(0, src), dst);
    s += u32::from(u.proto.0);
    s += (len as u32 & 0xffff) + (len as u32 >> 16);
    s
}

/// The MD5 and timestamp options of a TCP header's option bytes.
fn tcp_options(opts: &[u8], w: &mut WireMarks) {
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 {
                    break;
                }
                match (kind, opts.get(i + 2..i + len)) {
                    (19, Some(_)) => w.opts |= tcp_opts::MD5,
                    (8, Some(v)) if v.len() == 8 => {
                        w.opts |= tcp_opts::TS;
                        w.tsval = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                    }
                    _ => {}
                }
                i += len;
            }
        }
    }
}

/// What a UDP datagram (`dgram`: header and payload as the IP layer holds them) says beyond its
/// ports.
#[inline]
pub(super) fn udp_marks(u: &Upper<'_>, dgram: &[u8]) -> WireMarks {
    let mut w = WireMarks {
        ttl: u.ttl,
        ..WireMarks::default()
    };
    if let (Some(hdr), Some(len), Some(sum)) =
        (dgram.get(..8), super::be16(dgram, 4), super::be16(dgram, 6))
    {
        let len = usize::from(len);
        w.sum_known = u.whole && len >= 8 && len == dgram.len() && (sum != 0 || u.v6);
        if w.sum_known {
            w.sum = ones_sum(pseudo_sum(u, len), hdr);
        }
    }
    w
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
    let mut wire = WireMarks {
        ttl: u.ttl,
        urgent: if t.urg() { t.urgent_pointer() } else { 0 },
        sum_known: u.whole,
        ..WireMarks::default()
    };
    if u.whole {
        wire.sum = ones_sum(pseudo_sum(u, u.body.len()), t.slice());
    }
    tcp_options(t.options(), &mut wire);
    let l4 = L4 {
        sport: t.source_port(),
        dport: t.destination_port(),
        transport: Transport::Tcp,
        flags: tcp_flag_byte(&t),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        wire,
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
        wire: l4.wire,
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
