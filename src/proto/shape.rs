//! The shapes of tunnels and of QUIC versions that hide what they carry, told from a flow's
//! first client payload: WireGuard, OpenVPN (UDP and TCP), IKE (IPsec's key exchange) and long
//! QUIC headers of versions whose Initials cannot be opened. Pure functions of bytes; never
//! panic.
//!
//! Each check is of fixed fields and lengths only, so random bytes rarely pass:
//!
//! - WireGuard (the protocol paper, "WireGuard: Next Generation Kernel Network Tunnel", §5.4):
//!   a message type 1–4 then three zero reserved bytes; a handshake initiation is 148 bytes, a
//!   response 92, a cookie reply 64, transport data 32 or more with a 16-byte-aligned body.
//! - OpenVPN (its protocol description, `ssl.h`/`ssl_pkt.h` of the OpenVPN sources): the first
//!   packet is `P_CONTROL_HARD_RESET_CLIENT_V2` or `_V3` (opcode 7 or 10 in the top five bits,
//!   key id 0), a non-zero 8-byte session id, then either no HMAC (an empty ACK array and
//!   message packet id 0) or a 20- or 32-byte `tls-auth` HMAC, packet id 1 and a time, then the
//!   same. Over TCP each packet has a 2-byte length first.
//! - IKE (RFC 7296 §3.1, RFC 2408 §3.1): a 28-byte header with a non-zero initiator SPI, a zero
//!   responder SPI, version 2.0 or 1.0, an exchange type of IKE_SA_INIT (34) or IKEv1 Main or
//!   Aggressive mode (2, 4), message id 0 and a length equal to the datagram's; on port 4500
//!   after the 4-byte non-ESP marker (RFC 3948 §2.2).
//! - QUIC: a long header (the two top bits set) with a version that is not 0 (version
//!   negotiation) and not one whose Initial keys are known.

use super::quic::initial_salt;

/// What a flow's first client payload is shaped like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Nothing told.
    #[default]
    None,
    /// A WireGuard message.
    WireGuard,
    /// An OpenVPN client's hard reset.
    OpenVpn,
    /// An IKE (IPsec) initiator's first message.
    Ike,
    /// A QUIC long header of a version whose Initials cannot be opened (or, as the flow
    /// tracker marks it, Initials that did not open).
    QuicUnknown,
}

impl Shape {
    /// Whether the shape is a VPN tunnel's.
    pub fn is_vpn(self) -> bool {
        matches!(self, Shape::WireGuard | Shape::OpenVpn | Shape::Ike)
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A WireGuard message (see the module documentation).
pub fn is_wireguard(p: &[u8]) -> bool {
    if p.len() < 4 || p[1..4] != [0, 0, 0] {
        return false;
    }
    match p[0] {
        1 => p.len() == 148,
        2 => p.len() == 92,
        3 => p.len() == 64,
        4 => p.len() >= 32 && (p.len() - 16) % 16 == 0,
        _ => false,
    }
}

/// An OpenVPN client's first packet, without the TCP length (see the module documentation).
pub fn is_openvpn_reset(p: &[u8]) -> bool {
    let Some(&op) = p.first() else {
        return false;
    };
    if op != 7 << 3 && op != 10 << 3 {
        return false;
    }
    let Some(session) = p.get(1..9) else {
        return false;
    };
    if session.iter().all(|&b| b == 0) {
        return false;
    }
    // No HMAC: ACK array length 0, message packet id 0.
    let plain = p.get(9) == Some(&0) && be32(p, 10) == Some(0);
    // tls-auth with a SHA-1 or SHA-256 HMAC: packet id 1, a time, ACK length 0, message id 0.
    let auth = |hmac: usize| {
        let at = 9 + hmac;
        be32(p, at) == Some(1) && p.get(at + 8) == Some(&0) && be32(p, at + 9) == Some(0)
    };
    plain || auth(20) || auth(32)
}

/// An OpenVPN client's first packet over TCP: a 2-byte length, then the packet.
pub fn is_openvpn_tcp(p: &[u8]) -> bool {
    let Some(len) = p
        .get(..2)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    else {
        return false;
    };
    p.len() >= 2 + len && is_openvpn_reset(&p[2..2 + len])
}

/// An IKE initiator's first message, after the non-ESP marker on port 4500 (see the module
/// documentation).
pub fn is_ike(p: &[u8]) -> bool {
    let p = match p.get(..4) {
        Some([0, 0, 0, 0]) => &p[4..],
        _ => p,
    };
    if p.len() < 28 {
        return false;
    }
    let init_spi = &p[0..8];
    let resp_spi = &p[8..16];
    let (version, exchange) = (p[17], p[18]);
    let v2 = version == 0x20 && exchange == 34;
    let v1 = version == 0x10 && matches!(exchange, 2 | 4);
    init_spi.iter().any(|&b| b != 0)
        && resp_spi.iter().all(|&b| b == 0)
        && (v1 || v2)
        && be32(p, 20) == Some(0)
        && be32(p, 24).is_some_and(|l| l as usize == p.len())
}

/// A QUIC long header of a version whose Initials cannot be opened.
pub fn is_quic_unknown(p: &[u8]) -> bool {
    match (p.first(), be32(p, 1)) {
        (Some(&b), Some(v)) => b & 0xc0 == 0xc0 && v != 0 && initial_salt(v).is_none(),
        _ => false,
    }
}

/// The shape of a UDP flow's client datagram.
pub fn udp(p: &[u8]) -> Shape {
    if is_wireguard(p) {
        Shape::WireGuard
    } else if is_openvpn_reset(p) {
        Shape::OpenVpn
    } else if is_ike(p) {
        Shape::Ike
    } else if is_quic_unknown(p) {
        Shape::QuicUnknown
    } else {
        Shape::None
    }
}

/// The shape of a TCP flow's first client bytes.
pub fn tcp(p: &[u8]) -> Shape {
    if is_openvpn_tcp(p) {
        Shape::OpenVpn
    } else {
        Shape::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wg_init() -> Vec<u8> {
        let mut p = vec![0u8; 148];
        p[0] = 1;
        p[4..8].copy_from_slice(&[9, 8, 7, 6]);
        p
    }

    fn ovpn_plain() -> Vec<u8> {
        let mut p = vec![7 << 3];
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // session id
        p.push(0); // ACK array length
        p.extend_from_slice(&[0, 0, 0, 0]); // message packet id
        p
    }

    fn ike_sa_init() -> Vec<u8> {
        let mut p = vec![0u8; 28 + 40];
        p[0..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        p[16] = 33; // next payload: SA
        p[17] = 0x20;
        p[18] = 34;
        p[19] = 0x08; // initiator
        let len = p.len() as u32;
        p[24..28].copy_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn udp_shapes_are_told() {
        assert_eq!(udp(&wg_init()), Shape::WireGuard);
        assert_eq!(udp(&ovpn_plain()), Shape::OpenVpn);
        assert_eq!(udp(&ike_sa_init()), Shape::Ike);
        let mut natt = vec![0, 0, 0, 0];
        natt.extend(ike_sa_init());
        assert_eq!(udp(&natt), Shape::Ike, "after the non-ESP marker");
        let mut q = vec![0xc3, 0x0a, 0x0a, 0x0a, 0x0a];
        q.extend_from_slice(&[0u8; 40]);
        assert_eq!(udp(&q), Shape::QuicUnknown, "a GREASE-like version");
        q[1..5].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(udp(&q), Shape::None, "QUIC v1 is opened, not unknown");
        let mut tls_auth = vec![10 << 3];
        tls_auth.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        tls_auth.extend_from_slice(&[0xaa; 20]); // HMAC-SHA1
        tls_auth.extend_from_slice(&[0, 0, 0, 1, 0x65, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(udp(&tls_auth), Shape::OpenVpn, "with tls-auth");
    }

    #[test]
    fn near_misses_are_nothing() {
        let mut wg = wg_init();
        wg.push(0);
        assert_eq!(udp(&wg), Shape::None, "wrong length");
        let mut wg = wg_init();
        wg[2] = 1;
        assert_eq!(udp(&wg), Shape::None, "reserved bytes set");
        let mut o = ovpn_plain();
        o[1..9].fill(0);
        assert_eq!(udp(&o), Shape::None, "zero session id");
        let mut ike = ike_sa_init();
        ike[27] ^= 1;
        assert_eq!(udp(&ike), Shape::None, "length differs");
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(udp(&junk), Shape::None, "{junk:?}");
            let _ = tcp(&junk);
        }
    }

    #[test]
    fn openvpn_over_tcp_has_a_length_first() {
        let p = ovpn_plain();
        let mut t = (p.len() as u16).to_be_bytes().to_vec();
        t.extend(&p);
        assert_eq!(tcp(&t), Shape::OpenVpn);
        assert_eq!(tcp(&t[..t.len() - 1]), Shape::None, "cut short");
        assert_eq!(tcp(&p), Shape::None, "no length");
    }
}
