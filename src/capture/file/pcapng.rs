//! pcapng: section headers (either byte order), interface descriptions (link type, snaplen,
//! `if_tsresol`, `if_tsoffset`) and the packet blocks. Skips every other block; never looks into
//! a frame.

use super::{
    u16_at, u32_at, CaptureError, CaptureErrorKind, FileSource, Format, TsUnit, MAX_BLOCK,
    MAX_INTERFACES,
};
use crate::capture::{LinkType, RawPacket, Timestamp};

/// Block type of a Section Header Block, the same in either byte order.
pub(super) const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
/// A section's byte-order magic, as written by a little-endian writer.
pub(super) const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

/// What an Interface Description Block says about the packets of one interface.
#[derive(Clone, Copy, Debug)]
pub(super) struct Interface {
    link: LinkType,
    unit: TsUnit,
    offset_secs: i64,
    snaplen: u32,
}

impl FileSource {
    /// Reads pcapng blocks until a packet block, handling section and interface blocks on the way.
    pub(super) fn next_pcapng(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        loop {
            if !self.fill(12)? {
                if self.end == self.start {
                    return Ok(None);
                }
                return Err(self.truncated(12));
            }
            let b = &self.buf[self.start..self.start + 12];
            let raw_type = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let Format::PcapNg {
                big_endian,
                in_section,
                ..
            } = self.format
            else {
                return Ok(None);
            };
            let big = if raw_type == PCAPNG_SHB {
                match u32::from_le_bytes([b[8], b[9], b[10], b[11]]) {
                    PCAPNG_BOM => false,
                    m if m.swap_bytes() == PCAPNG_BOM => true,
                    magic => return Err(self.error(CaptureErrorKind::BadByteOrder { magic })),
                }
            } else {
                big_endian
            };
            let block_type = u32_at(b, big);
            let len = u32_at(&b[4..], big);
            if len < 12 || len % 4 != 0 {
                return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
            }
            if len > MAX_BLOCK {
                return Err(self.error(CaptureErrorKind::BlockTooLarge { len }));
            }
            let total = len as usize;
            if !self.fill(total)? {
                return Err(self.truncated(total));
            }
            let blk = &self.buf[self.start..self.start + total];
            if u32_at(&blk[total - 4..], big) != len {
                return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
            }
            let body_start = self.start + 8;
            let body_end = self.start + total - 4;
            if block_type == PCAPNG_SHB {
                self.format = Format::PcapNg {
                    big_endian: big,
                    in_section: true,
                    interfaces: Vec::new(),
                };
                self.consume(total);
                continue;
            }
            if !in_section {
                return Err(self.error(CaptureErrorKind::NoSection));
            }
            match block_type {
                1 => {
                    let iface = parse_idb(&self.buf[body_start..body_end], big);
                    match iface {
                        Some(i) => {
                            if let Format::PcapNg { interfaces, .. } = &mut self.format {
                                if interfaces.len() >= MAX_INTERFACES {
                                    return Err(self.error(CaptureErrorKind::TooManyInterfaces));
                                }
                                interfaces.push(i);
                            }
                        }
                        None => return Err(self.error(CaptureErrorKind::BadBlockLength { len })),
                    }
                    self.consume(total);
                }
                2 | 6 => {
                    // Enhanced Packet Block (6) or the obsolete Packet Block (2).
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 20 {
                        return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
                    }
                    let id = if block_type == 6 {
                        u32_at(body, big)
                    } else {
                        u32::from(u16_at(body, big))
                    };
                    let hi = u64::from(u32_at(&body[4..], big));
                    let lo = u64::from(u32_at(&body[8..], big));
                    let caplen = u32_at(&body[12..], big);
                    let orig_len = u32_at(&body[16..], big);
                    if caplen as usize > body.len() - 20 {
                        return Err(self.error(CaptureErrorKind::ImpossibleLength {
                            len: caplen,
                            max: (body.len() - 20) as u32,
                        }));
                    }
                    let Some(iface) = self.interface(id) else {
                        return Err(self.error(CaptureErrorKind::UnknownInterface { id }));
                    };
                    let ts = iface_time(&iface, (hi << 32) | lo);
                    let data_at = body_start + 20;
                    self.consume(total);
                    self.packets += 1;
                    return Ok(Some(RawPacket {
                        ts,
                        orig_len: orig_len.max(caplen),
                        link: iface.link,
                        data: &self.buf[data_at..data_at + caplen as usize],
                        chunk: &self.buf,
                    }));
                }
                3 => {
                    // Simple Packet Block: interface 0, no timestamp.
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 4 {
                        return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
                    }
                    let orig_len = u32_at(body, big);
                    let Some(iface) = self.interface(0) else {
                        return Err(self.error(CaptureErrorKind::UnknownInterface { id: 0 }));
                    };
                    let mut caplen = orig_len.min((body.len() - 4) as u32);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen);
                    }
                    let data_at = body_start + 4;
                    self.consume(total);
                    self.packets += 1;
                    return Ok(Some(RawPacket {
                        ts: Timestamp(0),
                        orig_len,
                        link: iface.link,
                        data: &self.buf[data_at..data_at + caplen as usize],
                        chunk: &self.buf,
                    }));
                }
                _ => self.consume(total), // statistics, name resolution, custom: not ours
            }
        }
    }

    fn interface(&self, id: u32) -> Option<Interface> {
        match &self.format {
            Format::PcapNg { interfaces, .. } => interfaces.get(id as usize).copied(),
            Format::Pcap { .. } => None,
        }
    }
}

fn iface_time(iface: &Interface, units: u64) -> Timestamp {
    let ns = iface.unit.to_nanos(units);
    let off = iface.offset_secs.saturating_mul(1_000_000_000);
    Timestamp(ns.saturating_add_signed(off))
}

/// Parses an Interface Description Block body: link type, snaplen and the time options.
fn parse_idb(body: &[u8], big: bool) -> Option<Interface> {
    if body.len() < 8 {
        return None;
    }
    let mut iface = Interface {
        link: LinkType::from_u32(u32::from(u16_at(body, big))),
        unit: TsUnit::Dec(6),
        offset_secs: 0,
        snaplen: u32_at(&body[4..], big),
    };
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = u16_at(opts, big);
        let len = usize::from(u16_at(&opts[2..], big));
        let padded = (len + 3) & !3;
        if opts.len() < 4 + len {
            break; // a damaged option list ends the options, not the interface
        }
        let val = &opts[4..4 + len];
        match (code, len) {
            (0, _) => break,
            (9, 1) => {
                iface.unit = if val[0] & 0x80 == 0 {
                    TsUnit::Dec(val[0])
                } else {
                    TsUnit::Bin(val[0] & 0x7F)
                }
            }
            (14, 8) => {
                let a = [
                    val[0], val[1], val[2], val[3], val[4], val[5], val[6], val[7],
                ];
                iface.offset_secs = if big {
                    i64::from_be_bytes(a)
                } else {
                    i64::from_le_bytes(a)
                };
            }
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    Some(iface)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn next_packet_pcapng_sections_interfaces_tsresol() {
        let mut f = Vec::new();
        shb(&mut f, false);
        idb(&mut f, false, 1, None); // µs
        idb(&mut f, false, 113, Some(9)); // ns
        idb(&mut f, false, 101, Some(0x80 | 10)); // 2^-10 s
        epb(&mut f, false, 0, 5_000_001, b"eth");
        epb(&mut f, false, 1, 5_000_000_002, b"sll");
        epb(&mut f, false, 2, 1024 * 3 + 512, b"raw");
        block(&mut f, false, 5, &[0; 8]); // interface statistics: skipped
                                          // A second, big-endian section resets interfaces.
        shb(&mut f, true);
        idb(&mut f, true, 276, Some(3));
        epb(&mut f, true, 0, 1_500, b"sll2");
        let mut src = source(f).unwrap();
        let got = collect(&mut src);
        assert_eq!(
            got,
            vec![
                (5_000_001_000, LinkType::Ethernet, b"eth".to_vec()),
                (5_000_000_002, LinkType::LinuxSll, b"sll".to_vec()),
                (3_500_000_000, LinkType::Raw, b"raw".to_vec()),
                (1_500_000_000, LinkType::LinuxSll2, b"sll2".to_vec()),
            ]
        );
    }

    #[test]
    fn next_packet_pcapng_unknown_interface_and_bad_length() {
        let mut f = Vec::new();
        shb(&mut f, false);
        idb(&mut f, false, 1, None);
        epb(&mut f, false, 3, 0, b"x");
        let mut src = source(f).unwrap();
        let e = src.next_packet().unwrap_err();
        assert!(matches!(
            e.kind,
            CaptureErrorKind::UnknownInterface { id: 3 }
        ));

        let mut f = Vec::new();
        shb(&mut f, false);
        f.extend(6u32.to_le_bytes());
        f.extend(13u32.to_le_bytes());
        f.extend([0; 8]);
        let mut src = source(f).unwrap();
        let e = src.next_packet().unwrap_err();
        assert!(matches!(
            e.kind,
            CaptureErrorKind::BadBlockLength { len: 13 }
        ));
    }
}
