//! Calls as an app's client makes them: a binding request to a public STUN server from the call's
//! socket, then the app's own STUN/TURN exchange with its relay from the same socket, then the
//! media, either straight to the peer (direct) or through the relay as TURN ChannelData on
//! another port of the same relay address (relayed). Every message is built from the protocol
//! specs (RFC 8489 STUN, RFC 8656 TURN, RFC 3550 RTP); what marks it as the app's is given.

use crate::conv::{Path, UdpConv};
use crate::Packet;
use std::net::SocketAddr;

/// The RFC 5389 magic cookie.
const COOKIE: u32 = 0x2112_A442;

/// How an app's call set-up marks its STUN/TURN messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Its own message type (the request; the response is the success class of it).
    MessageType(u16),
    /// An attribute of its own (type, value) in a binding request.
    Attribute(u16, &'static [u8]),
    /// A TURN Allocate whose REALM names the app's relays.
    Realm(&'static str),
    /// No STUN of its own: the media flow to the app's server opens with this datagram (Zoom's
    /// connect request, Discord's IP discovery, Telegram's reflector header).
    FirstDatagram(&'static [u8]),
}

/// One generated call.
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// The client's call socket (ICE sends every check and the media from it).
    pub client: SocketAddr,
    /// The public STUN server asked first (a binding before the app's exchange).
    pub public_stun: SocketAddr,
    /// The app's relay (its STUN/TURN port).
    pub relay: SocketAddr,
    /// Where relayed media goes: another port of the relay's address.
    pub relay_media_port: u16,
    /// The other party, for direct media.
    pub peer: SocketAddr,
    /// The app's mark.
    pub mark: Mark,
    /// Media through the relay (true) or straight to the peer.
    pub relayed: bool,
    /// Start time, ns since the epoch.
    pub start_ns: u64,
    /// Media datagrams (both ways), one every 20 ms.
    pub media: usize,
    /// Seed of the random parts.
    pub seed: u64,
}

/// A STUN message: type, cookie, a transaction id from `id`, the attributes padded to 4 bytes.
pub fn stun_message(ty: u16, id: u64, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut a = Vec::new();
    for (t, v) in attrs {
        a.extend(t.to_be_bytes());
        a.extend((v.len() as u16).to_be_bytes());
        a.extend(*v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
    }
    let mut m = ty.to_be_bytes().to_vec();
    m.extend((a.len() as u16).to_be_bytes());
    m.extend(COOKIE.to_be_bytes());
    m.extend(id.to_be_bytes());
    m.extend([0x63, 0x61, 0x6c, 0x6c]); // "call"
    m.extend(a);
    m
}

/// An XOR-MAPPED-ADDRESS value (IPv4) for `addr` (RFC 8489 §14.2).
fn xor_mapped(addr: SocketAddr) -> Vec<u8> {
    let mut v = vec![0, 1];
    v.extend((addr.port() ^ (COOKIE >> 16) as u16).to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => v.extend((u32::from(a) ^ COOKIE).to_be_bytes()),
        std::net::IpAddr::V6(_) => v.extend([0; 4]),
    }
    v
}

/// The app's marked request and its (unmarked) success response.
fn marked_exchange(mark: Mark, id: u64, client: SocketAddr) -> (Vec<u8>, Vec<u8>) {
    let mapped = xor_mapped(client);
    match mark {
        Mark::MessageType(ty) => (
            stun_message(ty, id, &[]),
            stun_message(ty | 0x0100, id, &[(0x0020, &mapped)]),
        ),
        Mark::Attribute(attr, value) => (
            stun_message(0x0001, id, &[(attr, value)]),
            stun_message(0x0101, id, &[(0x0020, &mapped)]),
        ),
        // A TURN Allocate naming the realm, and its success response.
        Mark::Realm(realm) => (
            stun_message(0x0003, id, &[(0x0014, realm.as_bytes())]),
            stun_message(0x0103, id, &[(0x0020, &mapped)]),
        ),
        Mark::FirstDatagram(_) => (Vec::new(), Vec::new()),
    }
}

/// An RTP packet (RFC 3550: version 2, payload type 111) of `len` bytes.
fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 960).to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.resize(len.max(12), 0xd5);
    p
}

/// TURN ChannelData (RFC 8656 §12.4) on channel 0x4000 carrying `data`, padded to 4 bytes.
fn channel_data(data: &[u8]) -> Vec<u8> {
    let mut m = vec![0x40, 0x00];
    m.extend((data.len() as u16).to_be_bytes());
    m.extend(data);
    while m.len() % 4 != 0 {
        m.push(0);
    }
    m
}

/// The packets of one call, in time order.
pub fn call(spec: &CallSpec) -> Vec<Packet> {
    let mut out = Vec::new();
    // 1. A binding to the public STUN server, 100 ms before the app's own exchange.
    let mut b = UdpConv::new(
        Path::new(spec.client, spec.public_stun),
        spec.start_ns,
        spec.seed,
    );
    let id = spec.seed.wrapping_mul(0x9e37_79b9);
    b.exchange(
        &stun_message(0x0001, id, &[]),
        &stun_message(0x0101, id, &[(0x0020, &xor_mapped(spec.client))]),
    );
    out.extend(b.take_packets());
    // 2. The app's exchange with its relay, twice (a retry after the challenge).
    let set_up = spec.start_ns + 100_000_000;
    let mut r = UdpConv::new(Path::new(spec.client, spec.relay), set_up, spec.seed + 1);
    if !matches!(spec.mark, Mark::FirstDatagram(_)) {
        for k in 0..2 {
            let (req, resp) = marked_exchange(spec.mark, id + 1 + k, spec.client);
            r.exchange(&req, &resp);
        }
    }
    out.extend(r.take_packets());
    // 3. The media, from the same socket.
    let media_at = set_up + 300_000_000;
    let to = if spec.relayed {
        SocketAddr::new(spec.relay.ip(), spec.relay_media_port)
    } else {
        spec.peer
    };
    let mut m = UdpConv::new(Path::new(spec.client, to), media_at, spec.seed + 2);
    if let Mark::FirstDatagram(first) = spec.mark {
        m.send(true, first);
        m.wait(10_000_000);
    }
    for i in 0..spec.media {
        let from_client = i % 2 == 0;
        let p = rtp(
            i as u16,
            0x5eed_0000 + u32::from(from_client),
            160 + (i % 7) * 20,
        );
        if spec.relayed {
            m.send(from_client, &channel_data(&p));
        } else {
            m.send(from_client, &p);
        }
        m.wait(10_000_000);
    }
    out.extend(m.take_packets());
    out.sort_by_key(|p| p.ts_ns);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_message_lengths_and_padding() {
        let m = stun_message(0x0001, 7, &[(0x0014, b"abc")]);
        assert_eq!(m.len(), 20 + 8);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]), 8);
        assert_eq!(&m[4..8], &COOKIE.to_be_bytes());
    }

    #[test]
    fn call_shape() {
        let spec = CallSpec {
            client: "10.20.0.5:50000".parse().unwrap(),
            public_stun: "74.125.250.129:19302".parse().unwrap(),
            relay: "192.0.2.80:3478".parse().unwrap(),
            relay_media_port: 443,
            peer: "198.51.100.9:40000".parse().unwrap(),
            mark: Mark::MessageType(0x0801),
            relayed: true,
            start_ns: 1_000_000_000,
            media: 10,
            seed: 3,
        };
        let p = call(&spec);
        assert_eq!(p.len(), 2 + 4 + 10);
        assert!(p.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
}
