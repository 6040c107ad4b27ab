//! The owned summary a frame decodes to ([`PacketMeta`]) and the small `Copy` types of its flow
//! key: addresses, transport, VLAN tags and tunnel segments. Plain data: no parsing here.

use crate::capture::Timestamp;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address stored as 16 bytes (IPv4 mapped into `::ffff:0:0/96`), cheap to hash and compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// The address in std form (IPv4-mapped addresses become IPv4 again).
    pub fn ip(self) -> IpAddr {
        Ipv6Addr::from(self.0).to_canonical()
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => Addr(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Self {
        Addr::v4(ip.octets())
    }
}

impl Addr {
    /// An IPv4 address in its mapped form, built as one 128-bit value: the per-packet path then
    /// stores it whole, and a later copy reads what one store wrote.
    #[inline]
    pub(super) fn v4(octets: [u8; 4]) -> Self {
        let mapped = 0xffff_0000_0000u128 | u128::from(u32::from_be_bytes(octets));
        Addr(mapped.to_be_bytes())
    }
}

/// Transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// Lower-case name as used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// TCP flag bits as in the header's low byte.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// Most VLAN tags kept per packet.
pub const MAX_VLANS: usize = 3;

/// A virtual network named by a tunnel header: a VXLAN VNI, an NVGRE VSID or an ERSPAN session
/// id, tagged with its kind so equal numbers of different kinds stay apart. Part of the flow key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment(u32);

impl Segment {
    /// No segment (the packet went through no tunnel that names one).
    pub const NONE: Segment = Segment(0);
    const VXLAN: u32 = 1;
    const NVGRE: u32 = 2;
    const ERSPAN: u32 = 3;

    /// A VXLAN network identifier (24 bits).
    pub fn vxlan(vni: u32) -> Self {
        Segment(Self::VXLAN << 24 | vni & 0x00FF_FFFF)
    }

    /// An NVGRE virtual subnet id (the upper 24 bits of the GRE key).
    pub fn nvgre(vsid: u32) -> Self {
        Segment(Self::NVGRE << 24 | vsid & 0x00FF_FFFF)
    }

    /// An ERSPAN session id (10 bits).
    pub fn erspan(session: u16) -> Self {
        Segment(Self::ERSPAN << 24 | u32::from(session & 0x03FF))
    }

    /// Whether this is [`Segment::NONE`].
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The kind as a lower-case name (`"vxlan"`, `"nvgre"`, `"erspan"`), None for no segment.
    pub fn kind(self) -> Option<&'static str> {
        match self.0 >> 24 {
            Self::VXLAN => Some("vxlan"),
            Self::NVGRE => Some("nvgre"),
            Self::ERSPAN => Some("erspan"),
            _ => None,
        }
    }

    /// The number within its kind.
    pub fn id(self) -> u32 {
        self.0 & 0x00FF_FFFF
    }

    /// Kind and number in one word, for hashing.
    pub fn to_bits(self) -> u32 {
        self.0
    }
}

/// What one frame says about its flow: a `Copy` summary with the payload as a range into the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Frame length on the wire (for a reassembled datagram, its fragments' lengths summed).
    pub wire_len: u32,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP or UDP.
    pub transport: Transport,
    /// VLAN ids of the innermost Ethernet header, outermost first; `nvlan` of them are valid.
    pub vlans: [u16; MAX_VLANS],
    /// Number of VLAN tags.
    pub nvlan: u8,
    /// The virtual network of the innermost tunnel that names one.
    pub segment: Segment,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// TCP sequence number (0 for UDP).
    pub seq: u32,
    /// TCP acknowledgement number (0 for UDP).
    pub ack: u32,
    /// Offset of the transport payload in the frame.
    pub payload_off: u32,
    /// Length of the captured transport payload.
    pub payload_len: u32,
    /// What tells whether the receiver would take the packet (TTL, checksum, TCP options).
    pub wire: WireMarks,
}

/// TCP options a packet carried, as bits of [`WireMarks::opts`].
pub mod tcp_opts {
    /// The TCP MD5 signature option (kind 19, RFC 2385).
    pub const MD5: u8 = 0x01;
    /// The timestamps option (kind 8, RFC 7323); its value is [`super::WireMarks::tsval`].
    pub const TS: u8 = 0x02;
}

/// What a frame says, beyond its flow, about whether its receiver would take it: decoys that
/// evasion tools send are made to be dropped on the way or by the server's stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireMarks {
    /// IPv4 TTL or IPv6 hop limit as captured (0: unknown, as for a reassembled datagram).
    pub ttl: u8,
    /// TCP options seen ([`tcp_opts`] bits).
    pub opts: u8,
    /// The transport checksum can be verified: the whole datagram was captured and (UDP over
    /// IPv4) a checksum was sent.
    pub sum_known: bool,
    /// TCP urgent pointer (0 without URG).
    pub urgent: u16,
    /// TCP timestamp value (with [`tcp_opts::TS`]).
    pub tsval: u32,
    /// Ones'-complement sum of the pseudo-header and the transport header (checksum included),
    /// the payload's still to be added ([`WireMarks::checksum_ok`]).
    pub sum: u32,
}

/// Adds `b` as big-endian 16-bit words (an odd last byte padded with zero) to `sum`.
pub fn ones_sum(mut sum: u32, b: &[u8]) -> u32 {
    let mut words = b.chunks_exact(2);
    for w in &mut words {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
        // Fold early enough that the u32 never wraps.
        if sum >= 0x8000_0000 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = words.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

impl WireMarks {
    /// Whether the transport checksum holds over the header and `payload` (None: cannot be
    /// told). Cost: one pass over the payload; called only for packets that matter.
    pub fn checksum_ok(&self, payload: &[u8]) -> Option<bool> {
        self.sum_known
            .then(|| fold(ones_sum(self.sum, payload)) == 0xffff)
    }
}

impl PacketMeta {
    /// The transport payload within `frame` (the bytes this meta was decoded from).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let start = self.payload_off as usize;
        frame
            .get(start..start + self.payload_len as usize)
            .unwrap_or(&[])
    }
}
