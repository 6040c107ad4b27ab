//! The fuzz corpora as ordinary tests, on stable: every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same entry point the fuzz target calls
//! (`picket::fuzzing`, with the private `_fuzz` feature). A target without a corpus, or with an empty one, fails, so a corpus
//! cannot silently vanish.
//!
//! The seed corpora come from `write_seed_corpora` (ignored; run it by hand, see
//! `fuzz/README.md`), built from the project's own generator and rule files.

use picket::fuzzing::TARGETS;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of a folder, sorted; empty when the folder does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(target: &str, run: fn(&[u8]), path: &Path) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = std::panic::catch_unwind(|| run(&data));
    assert!(r.is_ok(), "{target}: {} panicked", path.display());
}

#[test]
fn every_target_replays_its_nonempty_corpus() {
    for &(name, run) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let inputs = files(&dir);
        assert!(
            !inputs.is_empty(),
            "{name}: no corpus at {} (write the seeds, see fuzz/README.md)",
            dir.display()
        );
        for p in &inputs {
            replay(name, run, p);
        }
    }
}

#[test]
fn every_regression_input_replays() {
    let dir = fuzz_dir().join("regressions");
    for sub in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        let run = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("fuzz/regressions/{name}: no such target"))
            .1;
        for p in files(&sub.path()) {
            replay(&name, run, &p);
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file_and_back() {
    let mut on_disk: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &listed {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} missing from fuzz/Cargo.toml"
        );
    }
}

/// Seed inputs, built from the project's generator, test fixtures and rule files.
mod seeds {
    use picket_synth::quic;
    use picket_synth::{
        self as synth, client_hello, ClientHelloSpec, Interface, LinkType, Packet, PcapFormat,
        PcapngWriter, TcpConv, UdpConv,
    };
    use std::net::SocketAddr;

    const T0: u64 = 1_714_564_800_000_000_000;

    /// A seed's name (after `seed_`) and bytes.
    pub type Named = (String, Vec<u8>);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    /// Hellos of several shapes, as TLS records.
    pub fn hellos() -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let plain = ClientHelloSpec::new("g.whatsapp.net", 1);
        out.push(("plain", client_hello(&plain)));
        let mut pq = ClientHelloSpec::new("mmg.whatsapp.net", 2);
        pq.post_quantum = true;
        out.push(("post_quantum", client_hello(&pq)));
        let mut ech = ClientHelloSpec::new("cloudflare-ech.com", 3);
        ech.ech = true;
        ech.post_quantum = true;
        out.push(("ech", client_hello(&ech)));
        let mut split = ClientHelloSpec::new("chat.signal.org", 4);
        split.record_split = Some(100);
        out.push(("two_records", client_hello(&split)));
        let nosni = ClientHelloSpec {
            seed: 5,
            ..ClientHelloSpec::default()
        };
        out.push(("no_sni", client_hello(&nosni)));
        let mut tls12 = ClientHelloSpec::new("zoom.us", 6);
        tls12.grease = false;
        tls12.supported_versions = Vec::new();
        tls12.alpn = Vec::new();
        out.push(("tls12", client_hello(&tls12)));
        out
    }

    /// The handshake message inside TLS records (QUIC's CRYPTO stream form).
    pub fn message(records: &[u8]) -> Vec<u8> {
        let mut hs = Vec::new();
        let mut at = 0;
        while at + 5 <= records.len() {
            let len = usize::from(u16::from_be_bytes([records[at + 3], records[at + 4]]));
            hs.extend_from_slice(&records[at + 5..(at + 5 + len).min(records.len())]);
            at += 5 + len;
        }
        hs
    }

    pub fn tls_client_hello() -> Vec<Named> {
        let mut out = Vec::new();
        for (name, rec) in hellos() {
            out.push((format!("records_{name}"), rec.clone()));
            out.push((format!("message_{name}"), message(&rec)));
        }
        let mut preamble = b"CONNECT zoom.us:443 HTTP/1.1\r\n\r\n".to_vec();
        preamble.extend(&hellos()[0].1);
        out.push(("after_connect".into(), preamble));
        out
    }

    /// A `tcp_reassembly` record.
    fn seg(out: &mut Vec<u8>, server: bool, flags: u8, off: u16, data: &[u8], scan: bool) {
        out.push(u8::from(server) | 2 | if scan { 16 } else { 0 } | 4);
        out.push(flags);
        out.extend(off.to_be_bytes());
        out.extend((data.len() as u16).to_be_bytes());
        out.extend(data);
    }

    pub fn tcp_reassembly() -> Vec<Named> {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        const PA: u8 = 0x18;
        let mut out = Vec::new();
        let hello = &hellos()[1].1; // post-quantum, about 1.8 KB
        let handshake = |port: u16| {
            let mut s = 0x1234_5678u32.to_be_bytes().to_vec();
            s.extend(port.to_be_bytes());
            seg(&mut s, false, SYN, 255, &[], false);
            seg(&mut s, true, SYN | ACK, 0, &[], false);
            seg(&mut s, false, ACK, 256, &[], false);
            s
        };
        // In order, two segments.
        let mut s = handshake(443);
        seg(&mut s, false, PA, 256, &hello[..1000], true);
        seg(&mut s, false, PA, 1256, &hello[1000..], true);
        out.push(("in_order".into(), s));
        // Three pieces, 2nd 1st 3rd, the 3rd again.
        let third = hello.len() / 3;
        let mut s = handshake(443);
        let piece =
            |i: usize| &hello[i * third..if i == 2 { hello.len() } else { (i + 1) * third }];
        for i in [1usize, 0, 2, 2] {
            seg(&mut s, false, PA, 256 + (i * third) as u16, piece(i), true);
        }
        out.push(("out_of_order_retransmit".into(), s));
        // Overlapping pieces, and one that disagrees.
        let mut s = handshake(443);
        seg(&mut s, false, PA, 256, &hello[..600], false);
        seg(&mut s, false, PA, 256 + 400, &hello[400..1200], false);
        let mut bad = hello[1100..1300].to_vec();
        bad[0] ^= 0xff;
        seg(&mut s, false, PA, 256 + 1100, &bad, false);
        seg(&mut s, false, PA, 256 + 1200, &hello[1200..], true);
        out.push(("overlap_conflict".into(), s));
        // Many holes.
        let mut s = handshake(443);
        for i in (0..12u16).rev() {
            seg(
                &mut s,
                false,
                PA,
                256 + i * 100,
                &hello[usize::from(i) * 100..usize::from(i) * 100 + 50],
                true,
            );
        }
        out.push(("many_holes".into(), s));
        // Data before the stream start, then a WhatsApp chat signature on port 5222.
        let mut s = handshake(5222);
        seg(
            &mut s,
            false,
            PA,
            250,
            b"xxxxxxED\x00\x01\x00\x00\x02\x08\x01",
            true,
        );
        out.push(("before_start_signature".into(), s));
        // No handshake seen: the capture starts mid-flow.
        let mut s = 7u32.to_be_bytes().to_vec();
        s.extend(443u16.to_be_bytes());
        seg(&mut s, false, PA, 256, &hello[..500], true);
        seg(&mut s, true, PA, 0, b"server bytes", false);
        seg(&mut s, false, 0x11, 756, &hello[500..], true);
        out.push(("mid_flow_fin".into(), s));
        out
    }

    /// The hello of `name` as a CRYPTO stream.
    fn stream(pq: bool) -> Vec<u8> {
        let mut spec = ClientHelloSpec::new("mmg.whatsapp.net", 9);
        spec.post_quantum = pq;
        spec.alpn = vec!["h3".into()];
        message(&client_hello(&spec))
    }

    /// Datagrams before the real Initial: 1-byte junk, an Initial that does not open, a
    /// server's datagram.
    pub fn quic_datagrams() -> Vec<Named> {
        let rec = |ctl: u8, d: &[u8]| {
            let mut v = vec![ctl];
            v.extend((d.len() as u16).to_be_bytes());
            v.extend_from_slice(d);
            v
        };
        let junk: Vec<u8> = (0..8u8).flat_map(|k| rec(0, &[k])).collect();
        let mut long = vec![0xc3, 0, 0, 0, 1, 8];
        long.extend([0x11; 8]);
        long.extend([0, 0x44, 0xd0]);
        long.resize(1200, 0x5a);
        let mixed = [rec(0, &long), rec(1, b"server first"), rec(0, &[0])].concat();
        // Decoy Initials (ctl & 2; SCID from ctl >> 4): with a bad checksum, with a short TTL
        // and answered by the server, more than a flow keeps, and junk of 20 bytes.
        let badsum = rec(0x16, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let answered = [rec(0x2a, &[9; 8]), rec(0x23, b"")].concat();
        let many: Vec<u8> = (1..=5u8).flat_map(|k| rec(k << 4 | 2, &[k; 8])).collect();
        let junk20: Vec<u8> = (0..8u8).flat_map(|k| rec(0, &[k + 1; 20])).collect();
        vec![
            ("junk_first".into(), junk),
            ("undecryptable_first".into(), mixed),
            ("decoy_badsum_first".into(), badsum),
            ("decoy_short_ttl_answered".into(), answered),
            ("decoys_past_the_attempts_kept".into(), many),
            ("junk_20_bytes_first".into(), junk20),
        ]
    }

    pub fn quic_initial() -> Vec<Named> {
        let mut out = Vec::new();
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let hs = stream(false);
        for (vi, version) in [quic::QUIC_V1, quic::QUIC_V2, 0xff00_001d]
            .into_iter()
            .enumerate()
        {
            // Mode 0: a real datagram.
            let mut frames = Vec::new();
            quic::crypto_frame(0, &hs, &mut frames);
            let p = quic::seal_client_initial(version, &dcid, &[1, 2, 3], 0, 2, &frames, 1200)
                .expect("seal");
            let mut s = vec![0, 0];
            s.extend(&p);
            out.push((format!("datagram_v{vi}"), s));
            // Mode 1: frames (ACK, PING, CRYPTO, PADDING).
            let mut f = vec![0x02, 0x05, 0x00, 0x01, 0x00, 0x02, 0x01, 0x01];
            quic::crypto_frame(0, &hs[..200], &mut f);
            f.extend([0x01, 0x00, 0x00]);
            quic::crypto_frame(200, &hs[200..], &mut f);
            let mut s = vec![1, vi as u8, 8];
            s.extend(dcid);
            s.extend([3, 1, 2, 3, 1, 0]);
            s.extend(&f);
            out.push((format!("frames_v{vi}"), s));
        }
        // Mode 0 with a known original DCID and two coalesced Initials.
        let mut f1 = Vec::new();
        quic::crypto_frame(0, &hs[..300], &mut f1);
        let mut f2 = Vec::new();
        quic::crypto_frame(300, &hs[300..], &mut f2);
        let mut d =
            quic::seal_client_initial(quic::QUIC_V1, &dcid, &[], 0, 1, &f1, 0).expect("seal");
        d.extend(
            quic::seal_client_initial(quic::QUIC_V1, &[9; 4], &[], 1, 4, &f2, 0).expect("seal"),
        );
        let mut s = vec![0, 0x80 | dcid.len() as u8];
        s.extend(dcid);
        s.extend(&d);
        out.push(("coalesced_known_dcid".into(), s));
        // Mode 2: streams cut in pieces.
        for (name, pq, order, cuts) in [
            ("stream_two", false, 0u8, [100u16, 0, 0]),
            ("stream_pq_reversed", true, 0x81, [500, 1000, 1500]),
            ("stream_pq_ping", true, 0x42, [1200, 300, 2000]),
        ] {
            let mut s = vec![2, 0, 8];
            s.extend(dcid);
            s.extend([0, 1, 0, order]);
            for c in cuts {
                s.extend(c.to_be_bytes());
            }
            s.extend(stream(pq));
            out.push((name.into(), s));
        }
        out
    }

    /// The UDP payloads of a conversation's packets (Ethernet, IPv4, no options).
    fn udp_payloads(packets: &[Packet]) -> Vec<Vec<u8>> {
        packets.iter().map(|p| p.frame[42..].to_vec()).collect()
    }

    pub fn dns() -> Vec<Named> {
        let mut u = UdpConv::new(
            synth::Path::new(addr("10.1.0.26:40000"), addr("192.0.2.53:53")),
            T0,
            1,
        );
        u.dns("Web.Telegram.org", "192.0.2.80".parse().expect("ip"));
        let grams = udp_payloads(&u.take_packets());
        let mut out = vec![
            ("query".to_string(), grams[0].clone()),
            ("response".to_string(), grams[1].clone()),
        ];
        // A question whose name ends in a pointer to a name in the header area's end.
        #[rustfmt::skip]
        let pointer: Vec<u8> = vec![
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, // id, RD, 1 question
            0x00, 0x00, 0x00, 0x00, 0x03, b'c', b'd', b'n', // "cdn"
            0xc0, 0x14, 0x00, 0x01, 0x06, b's', b'i', b'g', // -> 20; "signal"
            b'n', b'a', b'l', 0x03, b'o', b'r', b'g', 0x00, // "org"
        ];
        out.push(("pointer".into(), pointer));
        out
    }

    /// A STUN message with the magic cookie (or an RFC 3489 one without).
    fn stun_msg(ty: u16, attrs: &[(u16, &[u8])], cookie: bool) -> Vec<u8> {
        let mut a = Vec::new();
        for (t, v) in attrs {
            a.extend(t.to_be_bytes());
            a.extend((v.len() as u16).to_be_bytes());
            a.extend(*v);
            a.resize(a.len().div_ceil(4) * 4, 0);
        }
        let mut m = ty.to_be_bytes().to_vec();
        m.extend((a.len() as u16).to_be_bytes());
        m.extend(if cookie {
            0x2112_A442u32.to_be_bytes()
        } else {
            [7, 7, 7, 7]
        });
        m.extend([0x5a; 12]);
        m.extend(a);
        m
    }

    pub fn stun() -> Vec<Named> {
        vec![
            ("binding".into(), stun_msg(0x0001, &[], true)),
            (
                "whatsapp_type".into(),
                stun_msg(0x0801, &[(0x4003, b"wa")], true),
            ),
            (
                "realm_software".into(),
                stun_msg(
                    0x0003,
                    &[(0x0014, b"turn.Signal.org"), (0x8022, b"Zoom client")],
                    true,
                ),
            ),
            (
                "classic".into(),
                stun_msg(
                    0x0101,
                    &[(0x0001, &[0, 1, 0x0d, 0x96, 192, 0, 2, 1])],
                    false,
                ),
            ),
        ]
    }

    /// A few flows of every kind: TLS over TCP, QUIC, DNS and STUN over UDP.
    fn mixed_packets() -> Vec<Packet> {
        let mut packets: Vec<Packet> = synth::demo()
            .into_iter()
            .filter(|p| p.frame.len() <= 400)
            .take(20)
            .collect();
        let mut t = TcpConv::new(
            synth::Path::new(addr("10.2.0.1:50000"), addr("192.0.2.5:443")),
            T0,
            3,
        );
        t.handshake();
        t.client_send(&hellos()[2].1);
        packets.extend(t.take_packets());
        let mut frames = Vec::new();
        quic::crypto_frame(0, &stream(false), &mut frames);
        let p = quic::seal_client_initial(quic::QUIC_V1, &[4; 8], &[], 0, 2, &frames, 1200)
            .expect("seal");
        let mut u = UdpConv::new(
            synth::Path::new(addr("10.2.0.2:50001"), addr("192.0.2.6:443")),
            T0,
            4,
        );
        u.send(true, &p);
        u.dns("zoom.us", "192.0.2.7".parse().expect("ip"));
        packets.extend(u.take_packets());
        let mut u = UdpConv::new(
            synth::Path::new(addr("10.2.0.3:50002"), addr("192.0.2.8:3478")),
            T0,
            5,
        );
        u.exchange(
            &stun_msg(0x0001, &[(0x4003, b"wa")], true),
            &stun_msg(0x0101, &[], true),
        );
        packets.extend(u.take_packets());
        packets.sort_by_key(|p| p.ts_ns);
        packets
    }

    /// The picket-side link byte of `decode_frame` for a synth link type.
    fn link_byte(l: LinkType) -> u8 {
        match l {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 2,
            LinkType::Ipv4 => 3,
            LinkType::Ipv6 => 4,
            LinkType::LinuxSll => 5,
            LinkType::LinuxSll2 => 6,
        }
    }

    pub fn decode_frame() -> Vec<Named> {
        let mut out = Vec::new();
        let demo = synth::demo();
        // One frame in 40 of the demo (VLANs, QinQ, IPv6 extension headers, IPv4 options).
        for (i, p) in demo.iter().enumerate().filter(|(i, _)| i % 40 == 0) {
            let mut s = vec![1];
            s.extend(&p.frame);
            out.push((format!("demo_{i:04}"), s));
        }
        let tagged = demo
            .iter()
            .filter(|p| {
                matches!(
                    u16::from_be_bytes([p.frame[12], p.frame[13]]),
                    0x8100 | 0x88a8 | 0x86dd
                )
            })
            .take(3);
        for (i, p) in tagged.enumerate() {
            let mut s = vec![1];
            s.extend(&p.frame);
            out.push((format!("tagged_or_v6_{i}"), s));
        }
        let first = &demo[0].frame;
        for l in [
            LinkType::Null,
            LinkType::Raw,
            LinkType::Ipv4,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
        ] {
            let mut s = vec![link_byte(l)];
            s.extend(synth::to_linktype(first, l));
            out.push((format!("link_{}", l.code()), s));
        }
        // GTP-U around the first demo frame's IP packet.
        let inner = &first[14..];
        let mut gtp = vec![0x32, 0xff];
        gtp.extend(((inner.len() + 4) as u16).to_be_bytes());
        gtp.extend([0, 0, 0, 1, 0, 7, 0, 0]);
        gtp.extend(inner);
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(2152, 2152);
        let mut f = Vec::new();
        b.write(&mut f, &gtp).expect("frame");
        let mut s = vec![1];
        s.extend(f);
        out.push(("gtp_u".into(), s));
        out
    }

    fn be16(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
    }

    /// The `tunnel_decap` envelope of a tunnel capture frame (see `picket::fuzzing`) and what it
    /// carries: the bytes after the outer IP (or UDP, or Ethernet) header. None for an outer
    /// fragment, or an envelope the target does not build (VXLAN to 8472 over IPv4).
    fn envelope(f: &[u8]) -> Option<(u8, &[u8])> {
        match be16(f, 12) {
            0x0800 => {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let ip = &f[14..14 + be16(f, 16)];
                if be16(ip, 6) & 0x3fff != 0 {
                    return None;
                }
                let body = &ip[ihl..];
                match (ip[9], be16(body, 2)) {
                    (47, _) => Some((0, body)),
                    (17, 4789) => Some((2, &body[8..])),
                    (17, 2152) => Some((4, &body[8..])),
                    (4, _) => Some((8, body)),
                    (41, _) => Some((9, body)),
                    _ => None,
                }
            }
            0x86dd => {
                let body = &f[54..54 + be16(f, 18)];
                match (f[20], be16(body, 2)) {
                    (47, _) => Some((1, body)),
                    (17, 8472) => Some((3, &body[8..])),
                    (17, 2152) => Some((5, &body[8..])),
                    (4, _) => Some((10, body)),
                    (41, _) => Some((11, body)),
                    _ => None,
                }
            }
            0x8847 => Some((6, &f[14..])),
            _ => None,
        }
    }

    pub fn tunnel_decap() -> Vec<Named> {
        let (packets, _) = synth::tunnels();
        let mut out = Vec::new();
        let mut per_envelope = [0usize; 14];
        let mut whole = 0;
        let mut lens = std::collections::BTreeSet::new();
        // Small frames (handshakes, ACKs) of every tunnel kind, three per envelope, and a
        // dozen whole Ethernet frames.
        for (i, p) in packets.iter().enumerate() {
            if p.frame.len() > 240 || !lens.insert(p.frame.len()) {
                continue;
            }
            if let Some((env, inner)) = envelope(&p.frame) {
                if per_envelope[usize::from(env)] < 3 {
                    per_envelope[usize::from(env)] += 1;
                    let mut s = vec![env];
                    s.extend(inner);
                    out.push((format!("env{env}_{i}"), s));
                }
            }
            if whole < 12 {
                whole += 1;
                let mut s = vec![12];
                s.extend(&p.frame);
                out.push((format!("ethernet_{i}"), s));
            }
        }
        let first = &synth::demo()[0].frame;
        let ip = synth::to_linktype(first, LinkType::Raw);
        // PPPoE session around an IPv4 packet.
        let mut s = vec![7, 0x11, 0x00, 0x12, 0x34];
        s.extend(((ip.len() + 2) as u16).to_be_bytes());
        s.extend([0x00, 0x21]);
        s.extend(&ip);
        out.push(("pppoe_ipv4".into(), s));
        // One MPLS label, a pseudowire control word, then the demo's Ethernet frame.
        let mut s = vec![6, 0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0];
        s.extend(first);
        out.push(("mpls_control_word_ethernet".into(), s));
        // IP-in-IP as deep as the decoder goes, and one deeper; a raw IP packet.
        for depth in [3, 4] {
            let mut s = vec![12];
            s.extend(synth::tunnel::nested_ip_in_ip(first, depth));
            out.push((format!("nested_ipv6_depth_{}", depth + 1), s));
        }
        let mut s = vec![13];
        s.extend(&ip);
        out.push(("raw_ipv4".into(), s));
        out
    }

    /// One `ip_fragments` record: control byte, length, frame.
    fn record(out: &mut Vec<u8>, ctl: u8, frame: &[u8]) {
        out.push(ctl);
        out.extend((frame.len() as u16).to_be_bytes());
        out.extend(frame);
    }

    /// Runs of consecutive fragment frames in `packets`: the pieces of one IP packet each.
    fn fragment_runs(packets: &[Packet]) -> Vec<Vec<Vec<u8>>> {
        let mut runs: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut run = Vec::new();
        for p in packets {
            let skip = picket::decode::decode(
                picket::capture::LinkType::Ethernet,
                picket::capture::Timestamp(p.ts_ns),
                0,
                &p.frame,
            );
            if skip == Err(picket::decode::Skip::Fragment) {
                run.push(p.frame.clone());
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        runs
    }

    pub fn ip_fragments() -> Vec<Named> {
        let mut out = Vec::new();
        // The first fragmented packet of each case of the fragment capture (in order, reversed,
        // duplicated, overlapping, IPv6, in VXLAN) and of the two outer-fragmented GRE cases.
        let mut seen = std::collections::BTreeSet::new();
        for (name, packets) in [("frag", synth::fragments().0), ("gre", synth::tunnels().0)] {
            for (i, run) in fragment_runs(&packets).into_iter().enumerate() {
                // A case's packets share their first 30 bytes' shape: keep one run per shape.
                let shape = (run.len(), run[0].len().min(64), run[0][12..14].to_vec());
                if run.len() > 10 || !seen.insert(shape) {
                    continue;
                }
                let mut s = Vec::new();
                for (j, f) in run.iter().enumerate() {
                    record(&mut s, u8::from(j > 0), f);
                }
                out.push((format!("{name}_run_{i}"), s));
            }
        }
        let run = fragment_runs(&synth::fragments().0)
            .into_iter()
            .find(|r| r.len() >= 2 && r[0][12..14] == [0x08, 0x00])
            .expect("an IPv4 run");
        // The same as raw IP packets, last one first.
        let mut s = Vec::new();
        for f in run.iter().rev() {
            record(&mut s, 4, &f[14..]);
        }
        out.push(("raw_reversed".into(), s));
        // The first piece, 31 s of silence, the rest: timed out, then expired.
        let mut s = Vec::new();
        record(&mut s, 0, &run[0]);
        for f in &run[1..] {
            record(&mut s, 3 | 8, f);
        }
        out.push(("timeout".into(), s));
        // A flood: 2048 first pieces with different identifications (bytes 18-19), then the
        // datagram whose first piece was evicted.
        let mut s = vec![0x40];
        s.extend((run[0].len() as u16).to_be_bytes());
        s.extend([11, 18]);
        s.extend(&run[0]);
        for f in &run[1..] {
            record(&mut s, 1, f);
        }
        out.push(("flood_evicts".into(), s));
        out
    }

    /// A bcrypt hash of `password` at cost 4 with a fixed salt (seeds stay the same).
    fn hash4(password: &str) -> String {
        bcrypt::hash_with_salt(password, 4, [0x5a; 16])
            .expect("bcrypt")
            .to_string()
    }

    fn basic(credentials: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    pub fn web_config() -> Vec<Named> {
        let h = hash4("s3cret");
        let users = format!(
            "basic_auth_users:\n  prom: '{h}'\n  other: {}\n",
            hash4("x")
        );
        let tls = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
        let with = |yaml: &str, header: Option<&str>| {
            let mut s = yaml.as_bytes().to_vec();
            if let Some(h) = header {
                s.push(0);
                s.extend(h.as_bytes());
            }
            s
        };
        vec![
            ("users_right".into(), with(&users, Some(&basic("prom:s3cret")))),
            ("users_wrong".into(), with(&users, Some(&basic("prom:wrong")))),
            ("users_unknown".into(), with(&users, Some(&basic("nobody:s3cret")))),
            ("users_bearer".into(), with(&users, Some("Bearer abc"))),
            (
                "cost_unpadded".into(),
                with(
                    &format!("basic_auth_users:\n  a: \"{}\"\n", h.replacen("$04$", "$4$", 1)),
                    Some(&basic("a:s3cret")),
                ),
            ),
            (
                "cost_12_parsed_only".into(),
                with(&format!("basic_auth_users:\n  a: $2b$12${}\n", "a".repeat(53)), None),
            ),
            (
                "tls_versions".into(),
                with(&format!("{tls}  min_version: TLS12\n  max_version: TLS13\n"), None),
            ),
            (
                "mtls_and_users".into(),
                with(
                    &format!(
                        "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: \
                         ca.crt\n  min_version: TLS13\n{users}"
                    ),
                    Some(&basic("prom:s3cret")),
                ),
            ),
            (
                "verify_if_given".into(),
                with(
                    &format!("{tls}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"),
                    None,
                ),
            ),
            (
                "versions_inverted".into(),
                with(&format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"), None),
            ),
            (
                "ca_without_client_auth".into(),
                with(&format!("{tls}  client_ca_file: ca.crt\n"), None),
            ),
            (
                "empty_cert".into(),
                with("tls_server_config:\n  cert_file: empty.pem\n  key_file: tls.key\n", None),
            ),
            (
                "key_as_cert".into(),
                with("tls_server_config:\n  cert_file: key_as.crt\n  key_file: tls.key\n", None),
            ),
            ("plaintext_hash".into(), with("basic_auth_users:\n  prom: plaintext\n", None)),
            (
                "unknown_field".into(),
                with(&format!("{tls}  cipher_suites: [x]\n"), None),
            ),
            (
                "missing_cert".into(),
                with("tls_server_config:\n  cert_file: missing.crt\n  key_file: b\n", None),
            ),
            ("unknown_section".into(), with("basic_auth: {}\n", None)),
            ("empty".into(), Vec::new()),
        ]
    }

    pub fn capture_file() -> Vec<Named> {
        let packets = mixed_packets();
        let mut out = Vec::new();
        let some = || packets.iter().take(12).cloned();
        let pcap = |fmt: PcapFormat, it: Vec<Packet>| {
            synth::write_pcap(Vec::new(), fmt, it).expect("pcap")
        };
        // Whole chunks, one read: the common case.
        let mut s = vec![7];
        s.extend(pcap(PcapFormat::default(), packets.clone()));
        out.push(("pcap_mixed".into(), s));
        // Small chunks, 3 bytes per read, two frames held.
        let fmt = PcapFormat {
            big_endian: true,
            nanos: true,
            ..PcapFormat::default()
        };
        let mut s = vec![0x80 | (3 << 3)];
        s.extend(pcap(fmt, some().collect()));
        out.push(("pcap_be_ns_trickle".into(), s));
        let fmt = PcapFormat {
            link: LinkType::LinuxSll2,
            ..PcapFormat::default()
        };
        let mut s = vec![0x41];
        s.extend(pcap(fmt, some().collect()));
        out.push(("pcap_sll2".into(), s));
        // pcapng: two interfaces, big-endian second section.
        let mut w = PcapngWriter::new(Vec::new());
        w.section(
            false,
            vec![
                Interface::new("eth0", LinkType::Ethernet, 9),
                Interface::new("raw", LinkType::Raw, 6),
            ],
        )
        .expect("section");
        for (i, p) in some().enumerate() {
            w.write(i % 2, &p).expect("write");
        }
        w.section(true, vec![Interface::new("lo", LinkType::Null, 6)])
            .expect("section");
        for p in packets.iter().skip(12).take(6) {
            w.write(0, p).expect("write");
        }
        let mut s = vec![0xc2];
        s.extend(w.into_inner());
        out.push(("pcapng_two_sections".into(), s));
        out
    }

    pub fn rule_file() -> Vec<Named> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut out = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("rules/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            let mut text = std::fs::read(&p).expect("rule file");
            if stem == "zoom" {
                text.push(0);
                text.extend(b"alert = [\"zoom\"]\n[verdicts]\nzoom = \"observe\"\n");
            }
            out.push((stem, text));
        }
        let small = br#"id = "chat"
rule_id = "t:chat"
name = "Chat"
category = "messaging"
verdict = "flag"
domains = ["Chat.Example.", "=exact.example.net"]
[prefixes]
source = "test"
as_of = "2024-06-01"
max_age_days = 30
list = ["198.51.100.128/25", "2001:db8:1::/48"]
[[signatures]]
transport = "udp"
ports = [5222]
offset = 2
bytes = "45 44 ?? (02|04) 08 aa"
[stun]
message_types = [0x0800]
attributes = [0x4003]
realms = ["chat.example"]
"#;
        out.push(("small_all_kinds".into(), small.to_vec()));
        out
    }
}

/// Writes the seed corpora under `fuzz/corpus/<target>/seed_*` (by hand: `cargo test --features
/// _fuzz --test fuzz_corpus -- --ignored write_seed_corpora`).
#[test]
#[ignore = "writes files; run by hand to refresh the seeds"]
fn write_seed_corpora() {
    let sets: [(&str, Vec<seeds::Named>); 12] = [
        ("decode_frame", seeds::decode_frame()),
        ("tcp_reassembly", seeds::tcp_reassembly()),
        ("tls_client_hello", seeds::tls_client_hello()),
        ("quic_initial", seeds::quic_initial()),
        ("quic_datagrams", seeds::quic_datagrams()),
        ("dns", seeds::dns()),
        ("stun", seeds::stun()),
        ("capture_file", seeds::capture_file()),
        ("rule_file", seeds::rule_file()),
        ("tunnel_decap", seeds::tunnel_decap()),
        ("ip_fragments", seeds::ip_fragments()),
        ("web_config", seeds::web_config()),
    ];
    for (target, inputs) in sets {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in inputs {
            std::fs::write(dir.join(format!("seed_{name}")), bytes).expect("write seed");
        }
    }
}
