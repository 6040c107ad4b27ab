//! QUIC Initials through the real binary: the ClientHello in CRYPTO frames, split over several
//! Initial packets and datagrams, out of order, QUIC v1 and v2, gives the server name and app.

// Sealed by the generator, opened by the sensor.
use picket_synth::quic;
use picket_synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, UdpConv};

mod common;
use common::{flow_of, replay, write_capture};

const T0: u64 = 1_700_000_000_000_000_000;

/// The ClientHello handshake message of a TLS record stream (QUIC carries it without records).
fn handshake_message(name: &str, pq: bool) -> Vec<u8> {
    let mut spec = ClientHelloSpec::new(name, 11);
    spec.post_quantum = pq;
    spec.alpn = vec!["h3".into()];
    let records = client_hello(&spec);
    let mut hs = Vec::new();
    let mut at = 0;
    while at + 5 <= records.len() {
        let len = usize::from(u16::from_be_bytes([records[at + 3], records[at + 4]]));
        hs.extend_from_slice(&records[at + 5..at + 5 + len]);
        at += 5 + len;
    }
    hs
}

/// Client datagrams carrying `hs` in `parts` Initials (one per datagram), in the given order.
fn initials(version: u32, hs: &[u8], parts: usize, order: &[usize]) -> Vec<Vec<u8>> {
    let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    let scid = [0xaa; 5];
    let chunk = hs.len().div_ceil(parts);
    let mut grams: Vec<Vec<u8>> = Vec::new();
    for (pn, piece) in hs.chunks(chunk).enumerate() {
        let mut frames = Vec::new();
        quic::crypto_frame((pn * chunk) as u64, piece, &mut frames);
        grams.push(
            quic::seal_client_initial(version, &dcid, &scid, pn as u32, 2, &frames, 1200)
                .expect("seal"),
        );
    }
    order.iter().map(|&i| grams[i].clone()).collect()
}

fn capture(dir: &std::path::Path, flows: &[(&str, Vec<Vec<u8>>)]) -> std::path::PathBuf {
    let mut packets: Vec<Packet> = Vec::new();
    for (i, (client, grams)) in flows.iter().enumerate() {
        let path = SynthPath::new(
            client.parse().expect("addr"),
            format!("198.51.100.{}:443", 40 + i).parse().expect("addr"),
        );
        let mut u = UdpConv::new(path, T0 + i as u64 * 1_000_000_000, i as u64);
        for g in grams {
            u.send(true, g);
        }
        u.send(false, &[0xc0; 1200]);
        packets.extend(u.take_packets());
    }
    write_capture(dir, "quic.pcap", packets)
}

#[test]
fn quic_initials_give_the_server_name_and_app() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pq = handshake_message("mmg.whatsapp.net", true);
    assert!(
        pq.len() > 1500,
        "post-quantum hello spans Initials: {}",
        pq.len()
    );
    let small = handshake_message("chat.signal.org", false);
    let cap = capture(
        dir.path(),
        &[
            ("10.5.0.1:50001", initials(1, &pq, 2, &[0, 1])),
            ("10.5.0.2:50002", initials(1, &pq, 3, &[2, 0, 1])),
            ("10.5.0.3:50003", initials(0x6b33_43cf, &small, 1, &[0])),
            ("10.5.0.4:50004", vec![vec![0x17; 300], vec![0x17; 300]]),
        ],
    );
    let events = replay(&cap, &[]);
    let by = |c: &str| flow_of(&events, c);
    for c in ["10.5.0.1", "10.5.0.2"] {
        let f = by(c);
        assert_eq!(f["sni"], "mmg.whatsapp.net", "{f}");
        assert_eq!(f["app"], "whatsapp");
        assert_eq!(f["app_source"], "quic_sni");
        assert_eq!(f["alpn"], serde_json::json!(["h3"]));
    }
    assert_eq!(by("10.5.0.3")["sni"], "chat.signal.org");
    assert_eq!(by("10.5.0.3")["app"], "signal");
    assert!(by("10.5.0.4").get("sni").is_none());
}

/// Google QUIC's own handshake, as each of its packet formats carries it: the plaintext CHLO of
/// Q024…Q043 (public header) and Q046 (long header), Q050's CHLO and T051's TLS hello in
/// Initials sealed with their own salts. The CHLO's `SNI` names the app, its `UAID` the client.
#[test]
fn google_quic_gives_the_server_name_and_user_agent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chlo = |name: &str| {
        quic::gquic_chlo(&[
            (b"PAD\0", &[0x2d; 300]),
            (b"SNI\0", name.as_bytes()),
            (b"UAID", b"Chrome/85.0.4169.0 Windows NT 10.0"),
            (b"VER\0", b"Q043"),
        ])
    };
    let sealed = |version: u32, data: &[u8]| {
        let mut frames = Vec::new();
        quic::gquic_crypto_frame(0, data, &mut frames);
        quic::seal_client_initial(version, &[0x51; 8], &[], 1, 2, &frames, 1350).expect("seal")
    };
    let cap = capture(
        dir.path(),
        &[
            (
                "10.6.0.1:50001",
                vec![quic::gquic_plain_packet(
                    b"Q024",
                    0,
                    &chlo("mmg.whatsapp.net"),
                )],
            ),
            (
                "10.6.0.2:50002",
                vec![quic::gquic_plain_packet(
                    b"Q039",
                    0,
                    &chlo("chat.signal.org"),
                )],
            ),
            // A second CHLO after the server's REJ, further on the stream.
            (
                "10.6.0.3:50003",
                vec![quic::gquic_plain_packet(
                    b"Q046",
                    1024,
                    &chlo("mmg.whatsapp.net"),
                )],
            ),
            (
                "10.6.0.4:50004",
                vec![sealed(quic::GOOGLE_Q050, &chlo("chat.signal.org"))],
            ),
            (
                "10.6.0.5:50005",
                vec![sealed(
                    quic::GOOGLE_T051,
                    &handshake_message("mmg.whatsapp.net", false),
                )],
            ),
            // A CHLO cut short by the packet's end names nothing.
            (
                "10.6.0.6:50006",
                vec![quic::gquic_plain_packet(
                    b"Q043",
                    0,
                    &chlo("mmg.whatsapp.net")[..200],
                )],
            ),
        ],
    );
    let events = replay(&cap, &[]);
    let by = |c: &str| flow_of(&events, c);
    for (c, app) in [
        ("10.6.0.1", "whatsapp"),
        ("10.6.0.2", "signal"),
        ("10.6.0.3", "whatsapp"),
        ("10.6.0.4", "signal"),
    ] {
        let f = by(c);
        assert_eq!(f["app"], app, "{f}");
        assert_eq!(f["app_source"], "quic_sni", "{f}");
        assert_eq!(f["user_agent"], "Chrome/85.0.4169.0 Windows NT 10.0", "{f}");
        assert!(
            f.get("tls_version").is_none() && f.get("ja4").is_none(),
            "{f}"
        );
    }
    let t051 = by("10.6.0.5");
    assert_eq!(t051["sni"], "mmg.whatsapp.net", "{t051}");
    assert_eq!(t051["tls_version"], "1.3", "{t051}");
    assert!(t051.get("user_agent").is_none());
    assert!(by("10.6.0.6").get("sni").is_none());
}

/// The corpus's Google QUIC captures (Q024 to Q050, from Chrome and Cronet): every flow that
/// nDPI names by its CHLO gets the same server name.
#[test]
fn google_quic_in_the_corpus_names_what_ndpi_names() {
    let Some(corpus) = common::require_corpus() else {
        return;
    };
    let mut checked = 0;
    for file in [
        "gquic.pcap",
        "quic.pcap",
        "quic046.pcap",
        "quic_q39.pcap",
        "quic_q46.pcap",
        "quic_q46_b.pcap",
    ] {
        let events = replay(&corpus.dir.join("pcap").join(file), &[]);
        let labels =
            std::fs::read_to_string(corpus.dir.join("labels").join(format!("{file}.ndpi.tsv")))
                .expect("labels");
        for row in labels.lines().filter(|l| l.starts_with("UDP\t")) {
            let c: Vec<&str> = row.split('\t').collect();
            let host = c[6];
            if host.is_empty() {
                continue;
            }
            let ends = |e: &serde_json::Value, a: &str, b: &str| {
                let end = |ip: &serde_json::Value, port: &serde_json::Value| {
                    format!("{}:{}", ip.as_str().unwrap_or(""), port)
                };
                let (s, d) = (
                    end(&e["src_ip"], &e["src_port"]),
                    end(&e["dst_ip"], &e["dst_port"]),
                );
                (s == a && d == b) || (s == b && d == a)
            };
            let flow = events
                .iter()
                .find(|e| e["event"] == "flow" && ends(e, c[1], c[2]))
                .unwrap_or_else(|| panic!("{file}: no flow {} {}", c[1], c[2]));
            assert_eq!(flow["sni"], host, "{file}: {flow}");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} named flows checked");
}
