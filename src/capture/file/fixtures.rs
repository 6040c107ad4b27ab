//! Capture files built byte by byte for the tests of every format.

pub(super) use super::pcap::PCAP_US_LE;
use super::pcapng::{PCAPNG_BOM, PCAPNG_SHB};
use super::{CaptureError, FileSource};
use crate::capture::LinkType;
use std::io;
use std::path::PathBuf;

pub(super) fn pcap_header(magic: u32, big: bool, link: u32) -> Vec<u8> {
    let mut v = Vec::new();
    let p32 = |v: &mut Vec<u8>, x: u32| {
        v.extend(if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    p32(&mut v, magic);
    v.extend(if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
    p32(&mut v, 0);
    p32(&mut v, 0);
    p32(&mut v, 65535);
    p32(&mut v, link);
    v
}

pub(super) fn pcap_record(v: &mut Vec<u8>, big: bool, secs: u32, frac: u32, data: &[u8]) {
    for x in [secs, frac, data.len() as u32, data.len() as u32] {
        v.extend(if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
    }
    v.extend_from_slice(data);
}

pub(super) fn source(bytes: Vec<u8>) -> Result<FileSource, CaptureError> {
    let len = bytes.len() as u64;
    FileSource::from_reader(
        PathBuf::from("t.pcap"),
        Box::new(io::Cursor::new(bytes)),
        Some(len),
    )
}

pub(super) fn collect(src: &mut FileSource) -> Vec<(u64, LinkType, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(p) = src.next_packet().unwrap() {
        out.push((p.ts.0, p.link, p.data.to_vec()));
    }
    out
}

pub(super) fn block(v: &mut Vec<u8>, big: bool, ty: u32, body: &[u8]) {
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    let w = |x: u32| {
        if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    };
    v.extend(w(ty));
    v.extend(w(len));
    v.extend(body);
    v.extend(w(len));
}

pub(super) fn shb(v: &mut Vec<u8>, big: bool) {
    let mut b = Vec::new();
    b.extend(if big {
        PCAPNG_BOM.to_be_bytes()
    } else {
        PCAPNG_BOM.to_le_bytes()
    });
    b.extend(if big { [0, 1, 0, 0] } else { [1, 0, 0, 0] });
    b.extend([0xFF; 8]);
    block(v, big, PCAPNG_SHB, &b);
}

pub(super) fn idb(v: &mut Vec<u8>, big: bool, link: u16, tsresol: Option<u8>) {
    let w16 = |x: u16| {
        if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    };
    let mut b = Vec::new();
    b.extend(w16(link));
    b.extend(w16(0));
    b.extend(if big {
        0u32.to_be_bytes()
    } else {
        0u32.to_le_bytes()
    });
    if let Some(r) = tsresol {
        b.extend(w16(9));
        b.extend(w16(1));
        b.extend([r, 0, 0, 0]);
        b.extend(w16(0));
        b.extend(w16(0));
    }
    block(v, big, 1, &b);
}

pub(super) fn epb(v: &mut Vec<u8>, big: bool, iface: u32, ts: u64, data: &[u8]) {
    let w = |x: u32| {
        if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    };
    let mut b = Vec::new();
    b.extend(w(iface));
    b.extend(w((ts >> 32) as u32));
    b.extend(w(ts as u32));
    b.extend(w(data.len() as u32));
    b.extend(w(data.len() as u32));
    b.extend(data);
    block(v, big, 6, &b);
}
