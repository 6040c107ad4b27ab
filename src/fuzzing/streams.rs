//! Fuzz entry points of a flow's first bytes: TCP reassembly, ClientHellos, QUIC Initials, DNS
//! and STUN messages.

use super::{default_rules, meta, Bytes, Pipeline};
use crate::capture::Timestamp;
use crate::classify::{self, AppSource};
use crate::decode::Transport;
use crate::flow::reasm::{ClientPrefix, HelloScan, MAX_PREFIX};
use crate::proto::tls::TlsSummary;
use crate::proto::{dns, quic, stun, tls};

/// A reference model of [`ClientPrefix`]: one optional byte per stream offset.
struct PrefixModel {
    base: u32,
    bytes: Vec<Option<u8>>,
}

/// What the model expects one insert to report.
#[derive(Debug, PartialEq, Eq)]
struct Expect {
    conflict: bool,
    beyond_cap: bool,
    grew: bool,
}

impl PrefixModel {
    fn contiguous(&self) -> usize {
        self.bytes.iter().take_while(|b| b.is_some()).count()
    }

    /// What inserting `data` at `seq` must do, as a Linux receiver reads it: bytes already read
    /// (the contiguous prefix) stay; a segment that starts at or before the contiguous end
    /// replaces bytes queued out of order; one that starts after it keeps the first copy of each
    /// byte; bytes before the base and past [`MAX_PREFIX`] are dropped.
    fn insert(&mut self, seq: u32, data: &[u8]) -> Expect {
        let mut e = Expect {
            conflict: false,
            beyond_cap: false,
            grew: false,
        };
        let rel = i64::from(seq.wrapping_sub(self.base) as i32);
        let (start, data) = if rel < 0 {
            match data.get(rel.unsigned_abs() as usize..) {
                Some(rest) if !rest.is_empty() => (0usize, rest),
                _ => return e,
            }
        } else {
            (rel as usize, data)
        };
        let cap = MAX_PREFIX as usize;
        if start >= cap {
            e.beyond_cap = !data.is_empty();
            return e;
        }
        let data = if data.len() > cap - start {
            e.beyond_cap = true;
            &data[..cap - start]
        } else {
            data
        };
        if data.is_empty() {
            return e;
        }
        let before = self.contiguous();
        if self.bytes.len() < start + data.len() {
            self.bytes.resize(start + data.len(), None);
        }
        let in_order = start <= before;
        for (i, &b) in data.iter().enumerate() {
            let off = start + i;
            let slot = &mut self.bytes[off];
            match *slot {
                Some(held) if off < before || !in_order => e.conflict |= held != b,
                Some(held) => {
                    e.conflict |= held != b;
                    *slot = Some(b);
                }
                None => *slot = Some(b),
            }
        }
        e.grew = self.contiguous() > before;
        e
    }
}

/// Most segments of one `tcp_reassembly` script (more only slows the fuzzer down).
const MAX_SEGMENTS: usize = 64;

/// A script of TCP segments through the reassembler and through a flow tracker.
///
/// Input: client ISN (4 bytes), server port (2), then records of `ctl(1) flags(1) off(2) len(2)`
/// and, when `ctl & 2`, `len` literal bytes (else `len` copies of `ctl`); at most 64 records.
/// `ctl & 1`: sent by the server; `ctl >> 2 & 3`: time step (0, 1 ms, 10 s, 400 s); `ctl & 16`:
/// scan for a hello. The sequence number is the ISN + 1 + `off` - 256, so segments can start
/// before the stream.
///
/// Checks: every insert of a client segment into a [`ClientPrefix`] reports and holds exactly
/// what a byte-by-byte model of a Linux receiver says, and the tracker and its events survive.
pub fn tcp_reassembly(data: &[u8]) {
    let mut b = Bytes::new(data);
    let isn = b.u32();
    let port = b.u16();
    let base = isn.wrapping_add(1);
    let mut prefix = ClientPrefix::new(base);
    let mut model = PrefixModel {
        base,
        bytes: Vec::new(),
    };
    let mut scratch = Vec::new();
    let mut pipe = Pipeline::new();
    let mut ts = Timestamp(1_700_000_000_000_000_000);
    let mut fill = Vec::new();
    let mut segments = 0;
    while !b.is_empty() && segments < MAX_SEGMENTS {
        segments += 1;
        let ctl = b.u8();
        let flags = b.u8() & 0x3f;
        let off = b.u16();
        let len = usize::from(b.u16() & 0x7fff);
        let payload: &[u8] = if ctl & 2 != 0 {
            b.take(len)
        } else {
            fill.clear();
            fill.resize(len, ctl);
            &fill
        };
        ts = ts
            .plus_nanos([0, 1_000_000, 10_000_000_000, 400_000_000_000][usize::from(ctl >> 2 & 3)]);
        let from_client = ctl & 1 == 0;
        let seq = base.wrapping_add(u32::from(off)).wrapping_sub(256);
        if from_client {
            let want = model.insert(seq, payload);
            let got = prefix.insert(seq, payload);
            let got = Expect {
                conflict: got.conflict,
                beyond_cap: got.beyond_cap,
                grew: got.grew,
            };
            assert_eq!(got, want, "insert at {seq} of {} bytes", payload.len());
            let held: Vec<u8> = model.bytes[..model.contiguous()]
                .iter()
                .map(|b| b.unwrap_or(0))
                .collect();
            assert_eq!(prefix.contiguous(), &held[..]);
            assert!(prefix.buffered() <= MAX_PREFIX as usize);
            if ctl & 16 != 0 {
                if let HelloScan::Found(ch) = prefix.scan_hello(&mut scratch) {
                    assert!(ch.consumed <= held.len());
                }
            }
        }
        let mut m = meta(ts, from_client, port, Transport::Tcp, payload.len());
        m.flags = flags;
        m.seq = if from_client {
            seq
        } else {
            0x5000_0000u32.wrapping_add(u32::from(off))
        };
        m.ack = if from_client { 0x5000_0001 } else { base };
        pipe.packet(&m, payload);
    }
    pipe.finish();
}

/// The client's first bytes as TLS records ([`tls::parse_client_hello`]) and as a bare handshake
/// message ([`tls::parse_client_hello_message`], as QUIC carries it).
///
/// Checks: `consumed` within the input, the JA4 shape, the flow's summary giving back the same
/// server name and ALPN list, and the reassembler finding the same hello in the same bytes.
pub fn tls_client_hello(data: &[u8]) {
    let mut scratch = Vec::new();
    let parsed = tls::parse_client_hello(data, &mut scratch);
    if let Ok(ch) = &parsed {
        assert!(ch.consumed <= data.len());
        check_hello(ch, false);
    }
    if let Err(tls::TlsError::Incomplete { needed }) = parsed {
        assert!(
            needed > data.len(),
            "Incomplete asks for {needed} of {}",
            data.len()
        );
    }
    if let Ok(ch) = tls::parse_client_hello_message(data) {
        assert!(ch.consumed <= data.len());
        check_hello(&ch, true);
    }
    if data.len() <= MAX_PREFIX as usize {
        let mut p = ClientPrefix::new(0);
        p.insert(0, data);
        let mut s = Vec::new();
        let expected = tls::parse_client_hello(data, &mut Vec::new())
            .ok()
            .map(|ch| (ch.sni.map(<[u8]>::to_vec), ch.consumed));
        match (p.scan_hello(&mut s), expected) {
            (HelloScan::Found(ch), Some((sni, consumed))) => {
                assert_eq!(ch.sni.map(<[u8]>::to_vec), sni);
                assert_eq!(ch.consumed, consumed);
            }
            (HelloScan::Found(ch), None) => assert!(ch.consumed <= data.len()),
            (other, Some(_)) => panic!("the reassembler missed a hello at offset 0: {other:?}"),
            (_, None) => {}
        }
    }
}

/// What every parsed hello must satisfy.
fn check_hello(ch: &tls::ClientHello<'_>, quic: bool) {
    let ja4 = ch.ja4(quic);
    assert_eq!(ja4.len(), 36, "{ja4}");
    assert!(ja4.is_ascii(), "{ja4}");
    let info = TlsSummary::from_hello(ch, quic);
    assert_eq!(info.ja4(), ja4);
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).replace('\0', "\u{fffd}");
    assert_eq!(info.sni().map(str::to_string), ch.sni.map(lossy));
    let alpn: Vec<String> = info.alpn().map(str::to_string).collect();
    let want: Vec<String> = ch.alpn.iter().map(|a| lossy(a)).collect();
    assert_eq!(alpn, want);
    if let Some(v) = tls::version_name(ch.max_version()) {
        assert!(!v.is_empty());
    }
    let rules = default_rules();
    if let Some(sni) = ch.sni {
        let _ = classify::by_server_name(&rules, sni, AppSource::Sni);
    }
}

/// QUIC versions a sealed Initial is built with (v1, v2, draft-29, draft-23, mvfst).
const QUIC_VERSIONS: [u32; 5] = [
    quic::QUIC_V1,
    quic::QUIC_V2,
    0xff00_001d,
    0xff00_0017,
    0xface_b001,
];

/// QUIC client Initials, three ways by the first byte:
///
/// - 0: the rest is a UDP datagram (bytes after a connection-id length and id: the original
///   DCID, when the length's top bit is set), read by [`quic::client_initials`];
/// - 1: the rest are frames, sealed into a valid protected Initial, so the fuzzer reaches the
///   frame parser behind the decryption;
/// - 2: the rest is a CRYPTO stream, split into up to four CRYPTO frames sent in an order the
///   input picks, each in its own sealed Initial; the packets go coalesced to the parser and one
///   datagram each through a flow tracker.
///
/// Checks: CRYPTO ranges stay below 2^62; a sealed packet always opens (only its frames can be
/// refused); the delivered CRYPTO data puts the stream back together; a hello the TLS parser
/// reads from the stream is found by the reassembler too.
pub fn quic_initial(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut scratch = Vec::new();
    match b.u8() % 3 {
        0 => {
            let n = b.u8();
            let known = if n & 0x80 != 0 {
                quic::ConnId::new(b.take(usize::from(n & 0x1f)))
            } else {
                None
            };
            let datagram = b.rest();
            let got = quic::client_initials(datagram, known.as_ref(), &mut scratch, |off, d| {
                assert!(off.checked_add(d.len() as u64).is_some_and(|e| e < 1 << 62));
            });
            if let Ok(info) = got {
                assert!(info.packets >= 1);
                assert!(quic::looks_like_client_initial(datagram));
            }
            let _ = got.map_err(|e| e.to_string());
        }
        mode => {
            let version = QUIC_VERSIONS[usize::from(b.u8()) % QUIC_VERSIONS.len()];
            let n = usize::from(b.u8()) % 21;
            let dcid = b.take(n).to_vec();
            let n = usize::from(b.u8()) % 21;
            let scid = b.take(n).to_vec();
            let pn_len = 1 + usize::from(b.u8() % 4);
            let min_len = if b.u8() & 1 == 0 { 1200 } else { 0 };
            if mode == 1 {
                sealed_frames(
                    version,
                    &dcid,
                    &scid,
                    pn_len,
                    min_len,
                    b.rest(),
                    &mut scratch,
                );
            } else {
                let order = b.u8();
                let cuts = [b.u16(), b.u16(), b.u16()];
                sealed_stream(
                    version,
                    &dcid,
                    &scid,
                    pn_len,
                    min_len,
                    order,
                    cuts,
                    b.rest(),
                );
            }
        }
    }
}

/// One sealed Initial around fuzzer frames: it must open, and only the frames may be refused.
fn sealed_frames(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn_len: usize,
    min_len: usize,
    frames: &[u8],
    scratch: &mut Vec<u8>,
) {
    let Ok(packet) =
        picket_synth::quic::seal_client_initial(version, dcid, scid, 0, pn_len, frames, min_len)
    else {
        return; // too long for the sealing helper
    };
    let got = quic::client_initials(&packet, None, scratch, |off, d| {
        assert!(off.checked_add(d.len() as u64).is_some_and(|e| e < 1 << 62));
    });
    match got {
        Ok(info) => {
            assert_eq!(info.version, version);
            assert_eq!(info.dcid.as_slice(), dcid);
            assert_eq!(info.scid.as_slice(), scid);
        }
        Err(quic::QuicError::Malformed(_)) => {}
        Err(e) => panic!("a sealed Initial did not open: {e}"),
    }
    let mut pipe = Pipeline::new();
    let m = meta(Timestamp(1), true, 443, Transport::Udp, packet.len());
    pipe.packet(&m, &packet);
    pipe.finish();
}

/// A CRYPTO stream cut into up to four frames, each sealed in its own Initial.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the fields
fn sealed_stream(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn_len: usize,
    min_len: usize,
    order: u8,
    cuts: [u16; 3],
    stream: &[u8],
) {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    at.dedup();
    let mut pieces: Vec<(usize, &[u8])> =
        at.windows(2).map(|w| (w[0], &stream[w[0]..w[1]])).collect();
    if pieces.is_empty() {
        pieces.push((0, &[]));
    }
    let n = pieces.len();
    pieces.rotate_left(usize::from(order) % n);
    if order & 0x80 != 0 {
        pieces.reverse();
    }
    let mut packets = Vec::with_capacity(n);
    for (pn, &(off, piece)) in pieces.iter().enumerate() {
        let mut frames = Vec::with_capacity(piece.len() + 16);
        if order & 0x40 != 0 {
            frames.push(0x01); // PING first
        }
        picket_synth::quic::crypto_frame(off as u64, piece, &mut frames);
        let Ok(p) = picket_synth::quic::seal_client_initial(
            version, dcid, scid, pn as u32, pn_len, &frames, min_len,
        ) else {
            return;
        };
        packets.push(p);
    }
    // All packets coalesced into one datagram: every piece comes back.
    let datagram = packets.concat();
    let mut back = ClientPrefix::new(0);
    let mut scratch = Vec::new();
    let got = quic::client_initials(&datagram, None, &mut scratch, |off, d| {
        if let Ok(off) = u32::try_from(off) {
            back.insert(off, d);
        }
    });
    match got {
        Ok(info) => assert_eq!(info.packets as usize, n),
        Err(e) => panic!("sealed Initials did not open: {e}"),
    }
    let whole = stream.len().min(MAX_PREFIX as usize);
    assert_eq!(back.contiguous(), &stream[..whole]);
    let found = matches!(back.scan_handshake_message(), HelloScan::Found(_));
    if whole == stream.len() && tls::parse_client_hello_message(stream).is_ok() {
        assert!(
            found,
            "the CRYPTO stream holds a hello the reassembler did not find"
        );
    }
    // One datagram per packet through a tracker, as a client sends a large hello.
    let mut pipe = Pipeline::new();
    for (i, p) in packets.iter().enumerate() {
        let m = meta(Timestamp(1 + i as u64), true, 443, Transport::Udp, p.len());
        pipe.packet(&m, p);
    }
    pipe.finish();
}

/// A DNS message's first question ([`dns::first_question`]), then classified by its name.
///
/// Checks: the name fits its buffer and is lower case.
pub fn dns(data: &[u8]) {
    let mut name = [0u8; dns::MAX_NAME];
    if let Ok(q) = dns::first_question(data, &mut name) {
        assert!(q.name_len <= dns::MAX_NAME);
        let name = &name[..q.name_len];
        assert!(!name.iter().any(u8::is_ascii_uppercase));
        let _ = classify::by_server_name(&default_rules(), name, AppSource::DnsQuery);
    }
}

/// A STUN/TURN message ([`stun::parse`]) and its attributes, then classified.
///
/// Checks: the attributes lie inside the message, at most 64 are read, a classic message fills
/// the datagram exactly.
pub fn stun(data: &[u8]) {
    let Some(msg) = stun::parse(data) else {
        return;
    };
    let mut seen = 0usize;
    let mut count = 0usize;
    for (_, v) in msg.attributes() {
        seen += 4 + v.len();
        count += 1;
    }
    assert!(seen <= data.len().saturating_sub(20));
    assert!(count <= 64);
    if msg.classic {
        assert_eq!((data.len() - 20) % 4, 0);
    }
    let _ = classify::by_stun(&default_rules(), &msg);
}

/// Most datagrams one `quic_datagrams` input sends before the real Initial.
const MAX_JUNK_DATAGRAMS: usize = 8;

/// Datagrams of a QUIC flow before its real client Initial: junk, undecryptable Initials, stray
/// server datagrams, decoy Initials and server answers. Input: records of
/// `ctl(1) len(2) bytes(len)`, at most 8; `ctl & 1`: sent by the server; `ctl & 2`: instead of
/// the bytes, a whole decoy Initial (client; its DCID from the first bytes, its SCID from
/// `ctl >> 4`, a bad checksum with `ctl & 4`, the TTL from `ctl & 8`) or the long header of a
/// server's Initial to that SCID (server). Other datagrams with a long header have their last
/// byte flipped, so they never open.
///
/// Checks: the real Initial after them is read (junk and decoys never stop it), the flow's
/// reassembly stays within the budget, and when decoys came the real name is among the
/// flow's names.
pub fn quic_datagrams(data: &[u8]) {
    const REAL: &str = "web.whatsapp.com";
    let mut b = Bytes::new(data);
    let mut pipe = Pipeline::new();
    let mut ts = Timestamp(1_700_000_000_000_000_000);
    let mut buf = Vec::new();
    let mut sent = 0;
    let mut decoys = 0;
    let seal = |name: &str, dcid: &[u8], scid: &[u8]| {
        let hello = picket_synth::client_hello(&picket_synth::ClientHelloSpec::new(name, 1));
        let mut frames = Vec::new();
        picket_synth::quic::crypto_frame(0, &hello[5..], &mut frames);
        picket_synth::quic::seal_client_initial(1, dcid, scid, 0, 2, &frames, 1200)
            .expect("an Initial seals")
    };
    while !b.is_empty() && sent < MAX_JUNK_DATAGRAMS {
        sent += 1;
        let ctl = b.u8();
        let len = usize::from(b.u16() & 0x7ff);
        buf.clear();
        buf.extend_from_slice(b.take(len));
        let from_client = ctl & 1 == 0;
        let scid = [ctl >> 4; 4];
        if ctl & 2 != 0 && from_client {
            // A decoy: its own connection, another name (never the real one's DCID).
            let mut dcid = [0x5a; 8];
            for (d, s) in dcid.iter_mut().zip(&buf) {
                *d = *s;
            }
            if dcid == [0x22; 8] {
                dcid[0] = 0;
            }
            buf = seal("www.example1.org", &dcid, &scid);
            decoys += 1;
        } else if ctl & 2 != 0 {
            buf = vec![0xc1, 0, 0, 0, 1, 4];
            buf.extend(scid);
            buf.extend([4, 9, 9, 9, 9]);
            buf.resize(60, 0);
        } else if buf.first().is_some_and(|&h| h & 0x80 != 0) {
            if let Some(last) = buf.last_mut() {
                *last ^= 0xff;
            }
        }
        ts = ts.plus_nanos(1_000_000);
        let mut m = meta(ts, from_client, 443, Transport::Udp, buf.len());
        m.wire.ttl = if ctl & 8 != 0 { 3 } else { 64 };
        // A verifiable checksum: good, or (ctl & 4) bad.
        m.wire.sum_known = true;
        let s = fold_sum(crate::decode::ones_sum(0, &buf));
        m.wire.sum = if ctl & 4 != 0 { s ^ 0x0101 } else { s };
        pipe.packet(&m, &buf);
    }
    let real = seal(REAL, &[0x22; 8], &[0x33; 8]);
    let before = pipe.tracker.stats.hellos;
    ts = ts.plus_nanos(1_000_000);
    let mut m = meta(ts, true, 443, Transport::Udp, real.len());
    m.wire.ttl = 64;
    pipe.packet(&m, &real);
    assert_eq!(
        pipe.tracker.stats.hellos,
        before + 1,
        "the real Initial after {sent} datagrams ({decoys} decoys) was not read"
    );
    let names = pipe.finish();
    if decoys > 0 {
        assert!(
            names.iter().any(|n| n == REAL),
            "the real name is not among the flows' names: {names:?}"
        );
    }
}

/// The ones'-complement of a folded sum: the checksum field that makes `sum` verify.
fn fold_sum(mut sum: u32) -> u32 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !sum & 0xffff
}
