//! Capture-file writers — classic pcap (either byte order, µs or ns) and pcapng (several
//! sections and interfaces) — and conversion of Ethernet frames to other link types.

use super::Packet;
use std::io::{self, Write};

/// Address family written for IPv4 in null/loopback headers.
const AF_INET: u32 = 2;
/// Address family written for IPv6 in null/loopback headers (readers also accept 24 and 28).
const AF_INET6: u32 = 30;
/// Linux packet type "to another host", as a promiscuous sensor sees traffic.
const PACKET_OTHERHOST: u8 = 3;
/// ARPHRD_ETHER hardware type of Linux cooked headers.
const ARPHRD_ETHER: u16 = 1;
/// Default snap length.
const SNAPLEN: u32 = 262_144;

/// Link-layer header type of a capture (values from the tcpdump LINKTYPE registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback/null (0): 4-byte address family, written little-endian.
    Null,
    /// Ethernet II (1).
    Ethernet,
    /// Raw IP, version from the first nibble (101).
    Raw,
    /// Linux cooked capture v1 (113), 16-byte header.
    LinuxSll,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Linux cooked capture v2 (276), 20-byte header.
    LinuxSll2,
}

impl LinkType {
    /// The LINKTYPE number written in file headers.
    pub fn code(self) -> u16 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }
}

fn be16_at(frame: &[u8], at: usize) -> u16 {
    frame
        .get(at..at + 2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

/// Offset of the network header in an Ethernet frame (after any VLAN tags) and its ether type.
pub(crate) fn l3_start(frame: &[u8]) -> (usize, u16) {
    let mut at = 12;
    while matches!(be16_at(frame, at), 0x8100 | 0x88a8 | 0x9100) {
        at += 4;
    }
    (at + 2, be16_at(frame, at))
}

/// Converts an Ethernet frame to the layout of `link`: IP-based layouts drop VLAN tags and
/// Ethernet padding; cooked (SLL) layouts keep the tags after their protocol field.
pub fn to_linktype(frame: &[u8], link: LinkType) -> Vec<u8> {
    let be16 = |at: usize| be16_at(frame, at);
    let (l3, ether_type) = l3_start(frame);
    let ip = frame.get(l3..).map_or(&[][..], |l3| &l3[..ip_len(l3)]);
    let after_macs = frame.get(14..).unwrap_or_default();
    let mut addr = [0u8; 8];
    if let Some(mac) = frame.get(6..12) {
        addr[..6].copy_from_slice(mac);
    }
    let mut out = Vec::with_capacity(frame.len() + 20);
    match link {
        LinkType::Ethernet => out.extend_from_slice(frame),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => out.extend_from_slice(ip),
        LinkType::Null => {
            out.extend(
                (if ether_type == 0x86dd {
                    AF_INET6
                } else {
                    AF_INET
                })
                .to_le_bytes(),
            );
            out.extend_from_slice(ip);
        }
        LinkType::LinuxSll => {
            out.extend([0, PACKET_OTHERHOST]);
            out.extend(ARPHRD_ETHER.to_be_bytes());
            out.extend(6u16.to_be_bytes());
            out.extend(addr);
            out.extend(be16(12).to_be_bytes());
            out.extend_from_slice(after_macs);
        }
        LinkType::LinuxSll2 => {
            out.extend(be16(12).to_be_bytes());
            out.extend([0, 0]);
            out.extend(1u32.to_be_bytes());
            out.extend(ARPHRD_ETHER.to_be_bytes());
            out.extend([PACKET_OTHERHOST, 6]);
            out.extend(addr);
            out.extend_from_slice(after_macs);
        }
    }
    out
}

/// Length of the IP packet at the start of `l3` according to its header (all of `l3` if unknown).
fn ip_len(l3: &[u8]) -> usize {
    let field = |at: usize| {
        l3.get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let len = match l3.first().map(|b| b >> 4) {
        Some(4) => field(2),
        Some(6) => field(4).map(|n| n + 40),
        _ => None,
    };
    len.map_or(l3.len(), |n| n.min(l3.len()))
}

/// Writes integers in the byte order of a file or section.
#[derive(Clone, Copy, Debug, Default)]
struct Order {
    /// Big-endian instead of little-endian.
    big: bool,
}

impl Order {
    /// Appends a u16.
    fn u16(self, out: &mut Vec<u8>, v: u16) {
        out.extend(if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    /// Appends a u32.
    fn u32(self, out: &mut Vec<u8>, v: u32) {
        out.extend(if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
}

/// Settings of a classic pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapFormat {
    /// Big-endian headers instead of little-endian.
    pub big_endian: bool,
    /// Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds.
    pub nanos: bool,
    /// Link type of the records; frames are converted with [`to_linktype`].
    pub link: LinkType,
    /// Bytes kept per packet; longer packets are truncated (caplen < origlen).
    pub snaplen: u32,
}

impl Default for PcapFormat {
    fn default() -> Self {
        Self {
            big_endian: false,
            nanos: false,
            link: LinkType::Ethernet,
            snaplen: SNAPLEN,
        }
    }
}

/// Streaming classic pcap writer.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    /// Destination.
    out: W,
    /// File settings.
    fmt: PcapFormat,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    pub fn new(mut out: W, fmt: PcapFormat) -> io::Result<Self> {
        let (o, mut h) = (
            Order {
                big: fmt.big_endian,
            },
            Vec::with_capacity(24),
        );
        o.u32(&mut h, if fmt.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        o.u16(&mut h, 2);
        o.u16(&mut h, 4);
        o.u32(&mut h, 0);
        o.u32(&mut h, 0);
        o.u32(&mut h, fmt.snaplen);
        o.u32(&mut h, u32::from(fmt.link.code()));
        out.write_all(&h)?;
        Ok(Self { out, fmt })
    }

    /// Appends one packet record.
    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        let (o, data) = (
            Order {
                big: self.fmt.big_endian,
            },
            to_linktype(&p.frame, self.fmt.link),
        );
        let cap = data.len().min(self.fmt.snaplen as usize);
        let frac = p.ts_ns % 1_000_000_000 / if self.fmt.nanos { 1 } else { 1_000 };
        let mut rec = Vec::with_capacity(16 + cap);
        o.u32(&mut rec, (p.ts_ns / 1_000_000_000) as u32);
        o.u32(&mut rec, frac as u32);
        o.u32(&mut rec, cap as u32);
        o.u32(&mut rec, data.len() as u32);
        rec.extend_from_slice(&data[..cap]);
        self.out.write_all(&rec)
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes `packets` as a classic pcap file to `out` and returns `out`.
pub fn write_pcap<W: Write>(
    out: W,
    fmt: PcapFormat,
    packets: impl IntoIterator<Item = Packet>,
) -> io::Result<W> {
    let mut w = PcapWriter::new(out, fmt)?;
    for p in packets {
        w.write(&p)?;
    }
    Ok(w.into_inner())
}

/// One pcapng interface description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Link type of this interface's packets.
    pub link: LinkType,
    /// Timestamp resolution as a power of ten: 6 = µs, 9 = ns (larger values are written as 9).
    pub tsresol: u8,
    /// Bytes kept per packet.
    pub snaplen: u32,
    /// Name written as `if_name`.
    pub name: String,
}

impl Interface {
    /// Interface `name` of type `link` with resolution 10^-`tsresol` s and the default snap length.
    pub fn new(name: &str, link: LinkType, tsresol: u8) -> Self {
        Self {
            link,
            tsresol,
            snaplen: SNAPLEN,
            name: name.into(),
        }
    }
}

/// Streaming pcapng writer; call [`PcapngWriter::section`] before writing packets.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    /// Destination.
    out: W,
    /// Byte order of the current section.
    order: Order,
    /// Interfaces of the current section.
    ifaces: Vec<Interface>,
}

impl<W: Write> PcapngWriter<W> {
    /// Creates a writer; nothing is written before the first section.
    pub fn new(out: W) -> Self {
        Self {
            out,
            order: Order::default(),
            ifaces: Vec::new(),
        }
    }

    /// Starts a section (Section Header Block) in the given byte order and describes its interfaces.
    pub fn section(&mut self, big_endian: bool, ifaces: Vec<Interface>) -> io::Result<()> {
        let o = Order { big: big_endian };
        self.order = o;
        let mut shb = Vec::with_capacity(40);
        o.u32(&mut shb, 0x1a2b_3c4d);
        o.u16(&mut shb, 1);
        o.u16(&mut shb, 0);
        shb.extend([0xff; 8]);
        option(o, &mut shb, 4, b"picket synth");
        option(o, &mut shb, 0, &[]);
        self.block(0x0a0d_0d0a, &shb)?;
        self.ifaces = ifaces;
        for i in 0..self.ifaces.len() {
            let iface = &mut self.ifaces[i];
            iface.tsresol = iface.tsresol.min(9);
            let mut idb = Vec::with_capacity(32 + iface.name.len());
            o.u16(&mut idb, iface.link.code());
            o.u16(&mut idb, 0);
            o.u32(&mut idb, iface.snaplen);
            option(o, &mut idb, 2, iface.name.as_bytes());
            option(o, &mut idb, 9, &[iface.tsresol]);
            option(o, &mut idb, 0, &[]);
            self.block(1, &idb)?;
        }
        Ok(())
    }

    /// Writes `p` as an Enhanced Packet Block on interface `iface` of the current section.
    pub fn write(&mut self, iface: usize, p: &Packet) -> io::Result<()> {
        let Some(i) = self.ifaces.get(iface) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no such pcapng interface",
            ));
        };
        let (o, data) = (self.order, to_linktype(&p.frame, i.link));
        let cap = data.len().min(i.snaplen as usize);
        let ts = p.ts_ns / 10u64.pow(9 - u32::from(i.tsresol));
        let mut epb = Vec::with_capacity(20 + cap);
        o.u32(&mut epb, iface as u32);
        o.u32(&mut epb, (ts >> 32) as u32);
        o.u32(&mut epb, ts as u32);
        o.u32(&mut epb, cap as u32);
        o.u32(&mut epb, data.len() as u32);
        epb.extend_from_slice(&data[..cap]);
        self.block(6, &epb)
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes one block: type, total length, body padded to 32 bits, total length again.
    fn block(&mut self, ty: u32, body: &[u8]) -> io::Result<()> {
        let pad = (4 - body.len() % 4) % 4;
        let total = 12 + body.len() + pad;
        let mut b = Vec::with_capacity(total);
        self.order.u32(&mut b, ty);
        self.order.u32(&mut b, total as u32);
        b.extend_from_slice(body);
        b.extend_from_slice(&[0; 3][..pad]);
        self.order.u32(&mut b, total as u32);
        self.out.write_all(&b)
    }
}

/// Appends a pcapng option (code, length, value padded to 32 bits).
fn option(o: Order, out: &mut Vec<u8>, code: u16, value: &[u8]) {
    o.u16(out, code);
    o.u16(out, value.len() as u16);
    out.extend_from_slice(value);
    out.resize(out.len() + (4 - value.len() % 4) % 4, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{udp_frame, IpHdr, Link};

    /// One record read back: link type, timestamp in ns, original length, stored bytes.
    type Rec = (u16, u64, u32, Vec<u8>);

    fn rd16(b: &[u8], at: usize, big: bool) -> u16 {
        let w = [b[at], b[at + 1]];
        if big {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        }
    }

    fn rd32(b: &[u8], at: usize, big: bool) -> u32 {
        let w = b[at..at + 4].try_into().unwrap();
        if big {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    fn read_pcap(b: &[u8]) -> Vec<Rec> {
        let (big, nanos) = match u32::from_le_bytes(b[..4].try_into().unwrap()) {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            m => panic!("magic {m:#x}"),
        };
        let link = rd32(b, 20, big) as u16;
        let (mut at, mut out) = (24, Vec::new());
        while at < b.len() {
            let ts = u64::from(rd32(b, at, big)) * 1_000_000_000
                + u64::from(rd32(b, at + 4, big)) * if nanos { 1 } else { 1_000 };
            let cap = rd32(b, at + 8, big) as usize;
            out.push((
                link,
                ts,
                rd32(b, at + 12, big),
                b[at + 16..at + 16 + cap].to_vec(),
            ));
            at += 16 + cap;
        }
        out
    }

    fn read_pcapng(b: &[u8]) -> Vec<Rec> {
        let (mut at, mut big, mut ifaces, mut out) = (0, false, Vec::new(), Vec::new());
        while at < b.len() {
            if b[at..at + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                big = b[at + 8] == 0x1a;
                ifaces.clear();
            }
            let (ty, total) = (rd32(b, at, big), rd32(b, at + 4, big) as usize);
            assert_eq!(total % 4, 0);
            assert_eq!(rd32(b, at + total - 4, big) as usize, total);
            let body = &b[at + 8..at + total - 4];
            match ty {
                1 => {
                    let (mut o, mut res) = (8, 6);
                    while o < body.len() {
                        let (code, len) = (rd16(body, o, big), usize::from(rd16(body, o + 2, big)));
                        if code == 9 {
                            res = body[o + 4];
                        }
                        o += 4 + len.div_ceil(4) * 4;
                    }
                    ifaces.push((rd32(body, 0, big) as u16, res));
                }
                6 => {
                    let (link, res) = ifaces[rd32(body, 0, big) as usize];
                    let ts = (u64::from(rd32(body, 4, big)) << 32 | u64::from(rd32(body, 8, big)))
                        * 10u64.pow(9 - u32::from(res));
                    let cap = rd32(body, 12, big) as usize;
                    out.push((link, ts, rd32(body, 16, big), body[20..20 + cap].to_vec()));
                }
                _ => {}
            }
            at += total;
        }
        out
    }

    fn packets() -> Vec<Packet> {
        let ip = IpHdr {
            src: "10.1.0.1".parse().unwrap(),
            dst: "2001:db8::1".parse().unwrap(),
            ttl: 1,
            id: 0,
            options: false,
        };
        let v4 = IpHdr {
            dst: "192.0.2.1".parse().unwrap(),
            ..ip
        };
        let link = Link {
            vlans: vec![5, 6],
            ..Link::default()
        };
        vec![
            Packet {
                ts_ns: 1_700_000_000_123_456_789,
                frame: udp_frame(&link, &v4, 1, 2, &[7; 300]),
            },
            Packet {
                ts_ns: 1_700_000_001_000_000_001,
                frame: udp_frame(&Link::default(), &ip, 1, 2, b"x"),
            },
        ]
    }

    #[test]
    fn write_pcap_roundtrip_formats() {
        let ps = packets();
        for (big_endian, nanos) in [(false, false), (true, true), (false, true), (true, false)] {
            let fmt = PcapFormat {
                big_endian,
                nanos,
                snaplen: 100,
                ..PcapFormat::default()
            };
            let recs = read_pcap(&write_pcap(Vec::new(), fmt, ps.clone()).unwrap());
            assert_eq!(recs.len(), 2);
            assert_eq!(
                recs[0].1,
                if nanos {
                    ps[0].ts_ns
                } else {
                    ps[0].ts_ns / 1000 * 1000
                }
            );
            assert_eq!(
                (recs[0].2 as usize, recs[0].3.as_slice()),
                (ps[0].frame.len(), &ps[0].frame[..100])
            );
        }
    }

    #[test]
    fn pcapng_writer_sections_and_resolutions() {
        let ps = packets();
        let mut w = PcapngWriter::new(Vec::new());
        assert!(w.write(0, &ps[0]).is_err());
        w.section(
            false,
            vec![
                Interface::new("eth0", LinkType::Ethernet, 6),
                Interface::new("any", LinkType::LinuxSll2, 9),
            ],
        )
        .unwrap();
        w.write(0, &ps[0]).unwrap();
        w.write(1, &ps[1]).unwrap();
        w.section(true, vec![Interface::new("lo0", LinkType::Null, 9)])
            .unwrap();
        w.write(0, &ps[1]).unwrap();
        let recs = read_pcapng(&w.into_inner());
        assert_eq!(recs.len(), 3);
        assert_eq!(
            (recs[0].0, recs[0].1, recs[0].3.clone()),
            (1, ps[0].ts_ns / 1000 * 1000, ps[0].frame.clone())
        );
        assert_eq!((recs[1].0, recs[1].1), (276, ps[1].ts_ns));
        assert_eq!((recs[2].0, &recs[2].3[..4]), (0, &[30, 0, 0, 0][..]));
    }

    #[test]
    fn to_linktype_layouts() {
        let ps = packets();
        let (tagged, v6) = (&ps[0].frame, &ps[1].frame);
        let raw = to_linktype(tagged, LinkType::Raw);
        assert_eq!((raw[0], raw.len()), (0x45, 20 + 8 + 300));
        assert_eq!(
            to_linktype(v6, LinkType::Ipv6).len(),
            40 + 8 + 1,
            "padding dropped"
        );
        assert_eq!(
            &to_linktype(tagged, LinkType::Null)[..5],
            &[2, 0, 0, 0, 0x45]
        );
        let sll = to_linktype(tagged, LinkType::LinuxSll);
        assert_eq!(
            (sll.len(), &sll[14..16]),
            (16 + tagged.len() - 14, &[0x88, 0xa8][..])
        );
        let sll2 = to_linktype(v6, LinkType::LinuxSll2);
        assert_eq!(
            (sll2.len(), &sll2[..2], sll2[10]),
            (20 + v6.len() - 14, &[0x86, 0xdd][..], 3)
        );
        assert_eq!(to_linktype(v6, LinkType::Ethernet), *v6);
    }
}
