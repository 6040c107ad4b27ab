//! Direction-normalised flow keys: both directions of a conversation give the same key, so the
//! same hash, the same worker and the same table slot.

use crate::decode::{Addr, PacketMeta, Segment, Transport, MAX_VLANS};
use std::hash::BuildHasher;

/// A flow's identity: transport, both endpoints (lower one first), the VLAN ids and the tunnel
/// segment (VXLAN VNI, NVGRE VSID, ERSPAN session) the packets came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The endpoint that sorts first (address, then port).
    pub lo: (Addr, u16),
    /// The other endpoint.
    pub hi: (Addr, u16),
    /// TCP or UDP.
    pub transport: Transport,
    /// VLAN ids, outermost first (unused slots are 0).
    pub vlans: [u16; MAX_VLANS],
    /// Number of VLAN tags.
    pub nvlan: u8,
    /// The tunnel segment ([`Segment::NONE`] outside such tunnels).
    pub segment: Segment,
}

impl FlowKey {
    /// The key of a packet, and whether the packet's source is the key's `lo` endpoint.
    pub fn of(m: &PacketMeta) -> (FlowKey, bool) {
        let s = (m.src, m.sport);
        let d = (m.dst, m.dport);
        let src_is_lo = s <= d;
        let (lo, hi) = if src_is_lo { (s, d) } else { (d, s) };
        (
            FlowKey {
                lo,
                hi,
                transport: m.transport,
                vlans: m.vlans,
                nvlan: m.nvlan,
                segment: m.segment,
            },
            src_is_lo,
        )
    }

    /// The key's hash under the process's hasher; the same for both directions. The key is
    /// fed as six words rather than field by field (this runs once per packet), a seventh for
    /// a tunnel segment.
    pub fn hash_with(&self, state: &FlowHasher) -> u64 {
        use std::hash::Hasher;
        let word = |b: &[u8; 16], half: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[half * 8..half * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        let mut h = state.build_hasher();
        h.write_u64(word(&self.lo.0 .0, 0));
        h.write_u64(word(&self.lo.0 .0, 1));
        h.write_u64(word(&self.hi.0 .0, 0));
        h.write_u64(word(&self.hi.0 .0, 1));
        h.write_u64(
            u64::from(self.lo.1)
                | u64::from(self.hi.1) << 16
                | u64::from(self.transport as u8) << 32
                | u64::from(self.nvlan) << 40,
        );
        h.write_u64(
            u64::from(self.vlans[0])
                | u64::from(self.vlans[1]) << 16
                | u64::from(self.vlans[2]) << 32,
        );
        if !self.segment.is_none() {
            h.write_u32(self.segment.to_bits());
        }
        h.finish()
    }

    /// VLAN ids as a slice.
    pub fn vlan_ids(&self) -> &[u16] {
        &self.vlans[..usize::from(self.nvlan).min(MAX_VLANS)]
    }
}

/// The hasher of flow keys: seeded at random per process, so crafted traffic cannot aim at
/// collisions, and shared by the dispatcher and the workers so each key is hashed once.
pub type FlowHasher = foldhash::fast::RandomState;

/// The worker that owns a flow of this hash, out of `n`.
pub fn worker_of(hash: u64, n: usize) -> usize {
    // Middle bits: the table uses the low bits for buckets and the top 7 for tags.
    ((hash >> 24) % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use std::net::Ipv4Addr;

    fn meta(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> PacketMeta {
        PacketMeta {
            ts: Timestamp(0),
            wire_len: 60,
            src: Addr::from(Ipv4Addr::from(src)),
            dst: Addr::from(Ipv4Addr::from(dst)),
            sport,
            dport,
            transport: Transport::Tcp,
            vlans: [7, 0, 0],
            nvlan: 1,
            segment: Segment::NONE,
            flags: 0,
            seq: 0,
            ack: 0,
            payload_off: 0,
            payload_len: 0,
            wire: crate::decode::WireMarks::default(),
        }
    }

    #[test]
    fn of_is_symmetric_and_hash_is_direction_free() {
        let h = FlowHasher::default();
        let a = meta([10, 0, 0, 1], 40000, [192, 0, 2, 1], 443);
        let b = meta([192, 0, 2, 1], 443, [10, 0, 0, 1], 40000);
        let (ka, lo_a) = FlowKey::of(&a);
        let (kb, lo_b) = FlowKey::of(&b);
        assert_eq!(ka, kb);
        assert_ne!(lo_a, lo_b);
        assert_eq!(ka.hash_with(&h), kb.hash_with(&h));
        assert_eq!(
            worker_of(ka.hash_with(&h), 4),
            worker_of(kb.hash_with(&h), 4)
        );
    }

    #[test]
    fn of_distinguishes_vlan_and_transport() {
        let a = meta([10, 0, 0, 1], 40000, [192, 0, 2, 1], 443);
        let mut b = a;
        b.vlans = [8, 0, 0];
        assert_ne!(FlowKey::of(&a).0, FlowKey::of(&b).0);
        let mut c = a;
        c.transport = Transport::Udp;
        assert_ne!(FlowKey::of(&a).0, FlowKey::of(&c).0);
    }

    #[test]
    fn of_distinguishes_tunnel_segments() {
        let h = FlowHasher::default();
        let a = meta([10, 0, 0, 1], 40000, [192, 0, 2, 1], 443);
        let mut b = a;
        b.segment = Segment::vxlan(5001);
        let mut c = a;
        c.segment = Segment::erspan(5001);
        let keys = [FlowKey::of(&a).0, FlowKey::of(&b).0, FlowKey::of(&c).0];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2], "same number, different kinds");
        assert_ne!(keys[0].hash_with(&h), keys[1].hash_with(&h));
        // Both directions of a segment's flow still meet.
        let mut back = meta([192, 0, 2, 1], 443, [10, 0, 0, 1], 40000);
        back.segment = b.segment;
        assert_eq!(FlowKey::of(&back).0.hash_with(&h), keys[1].hash_with(&h));
    }
}
