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
