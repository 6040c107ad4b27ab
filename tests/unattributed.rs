//! Why flows stay unattributed, through the real binary: one generated flow per reason of
//! `unattributed` (real ECH, encrypted DNS by port, name and address, VPN tunnels by shape and by
//! name, an unknown QUIC version, a nameless ClientHello, an unclaimed name, one-way traffic, no
//! signal), each reason in the flow event, in the JSON summary's `unattributed` object, and
//! absent on a flow with an app. The reasons never change `app`.
// See: #18

use picket_synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, TcpConv, UdpConv};

mod common;
use common::{flow_of, replay_output, write_capture};

const T0: u64 = 1_700_000_000_000_000_000;

fn path(client: &str, server: &str) -> SynthPath {
    SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"))
}

/// A TCP connection whose client sends `first` and whose server answers.
fn tcp(client: &str, server: &str, first: &[u8], at: u64) -> Vec<Packet> {
    let mut c = TcpConv::new(path(client, server), T0 + at, at);
    c.handshake();
    c.client_send(first);
    c.server_send(&[0x17; 600]);
    c.close();
    c.take_packets()
}

fn hello(spec: ClientHelloSpec) -> Vec<u8> {
    client_hello(&spec)
}

fn named(sni: &str, at: u64) -> Vec<u8> {
    hello(ClientHelloSpec::new(sni, at))
}

/// UDP datagrams, (from the client, payload) in order.
fn udp(client: &str, server: &str, datagrams: &[(bool, Vec<u8>)], at: u64) -> Vec<Packet> {
    let mut u = UdpConv::new(path(client, server), T0 + at, at);
    for (from_client, d) in datagrams {
        u.send(*from_client, d);
        u.wait(1_000_000);
    }
    u.take_packets()
}

/// A WireGuard handshake initiation (148 bytes, type 1) and its response (92 bytes, type 2).
fn wireguard() -> Vec<(bool, Vec<u8>)> {
    let mut init = vec![0x5c; 148];
    init[..4].copy_from_slice(&[1, 0, 0, 0]);
    let mut resp = vec![0x3d; 92];
    resp[..4].copy_from_slice(&[2, 0, 0, 0]);
    vec![(true, init), (false, resp)]
}

/// An OpenVPN P_CONTROL_HARD_RESET_CLIENT_V2 without tls-auth.
fn openvpn() -> Vec<u8> {
    let mut p = vec![7 << 3, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0];
    p.extend([0, 0, 0, 0]);
    p
}

/// An IKEv2 IKE_SA_INIT request header (and a body of the length it says).
fn ike() -> Vec<u8> {
    let mut p = vec![0u8; 28 + 200];
    p[..8].copy_from_slice(&[0xa1, 2, 3, 4, 5, 6, 7, 8]);
    p[16] = 33;
    p[17] = 0x20;
    p[18] = 34;
    p[19] = 0x08;
    let len = p.len() as u32;
    p[24..28].copy_from_slice(&len.to_be_bytes());
    p
}

/// A QUIC long header of a reserved (RFC 9000 §15) version, padded like an Initial.
fn quic_unknown() -> Vec<u8> {
    let mut p = vec![0xc3, 0x1a, 0x2a, 0x3a, 0x4a, 8];
    p.extend([0x42; 8]);
    p.resize(1200, 0);
    p
}

#[test]
fn every_unattributed_flow_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ech = ClientHelloSpec {
        ech: true,
        ..ClientHelloSpec::new("cloudflare-ech.com", 1)
    };
    let mut ovpn_tcp = (openvpn().len() as u16).to_be_bytes().to_vec();
    ovpn_tcp.extend(openvpn());
    let junk = vec![0x5a; 120];
    // (client, what the flow is, reason)
    let cases: Vec<(&str, Vec<Packet>, &str)> = vec![
        (
            "10.7.0.1",
            tcp("10.7.0.1:40001", "203.0.113.10:443", &hello(ech), 0),
            "ech",
        ),
        (
            "10.7.0.2",
            tcp(
                "10.7.0.2:40002",
                "203.0.113.11:443",
                &named("dns.google", 2),
                1,
            ),
            "encrypted_dns",
        ),
        (
            "10.7.0.3",
            tcp("10.7.0.3:40003", "203.0.113.12:853", &junk, 2),
            "encrypted_dns",
        ),
        (
            "10.7.0.4",
            tcp(
                "10.7.0.4:40004",
                "9.9.9.9:443",
                &hello(ClientHelloSpec::default()),
                3,
            ),
            "encrypted_dns",
        ),
        (
            "10.7.0.5",
            udp("10.7.0.5:40005", "203.0.113.13:51820", &wireguard(), 4),
            "vpn",
        ),
        (
            "10.7.0.6",
            tcp("10.7.0.6:40006", "203.0.113.14:443", &ovpn_tcp, 5),
            "vpn",
        ),
        (
            "10.7.0.7",
            udp(
                "10.7.0.7:40007",
                "203.0.113.15:1194",
                &[(true, openvpn()), (false, vec![0x40; 30])],
                6,
            ),
            "vpn",
        ),
        (
            "10.7.0.8",
            udp(
                "10.7.0.8:40008",
                "203.0.113.16:500",
                &[(true, ike()), (false, vec![0x21; 200])],
                7,
            ),
            "vpn",
        ),
        (
            "10.7.0.9",
            tcp(
                "10.7.0.9:40009",
                "203.0.113.17:443",
                &named("us1234.nordvpn.com", 9),
                8,
            ),
            "vpn",
        ),
        (
            "10.7.0.10",
            udp(
                "10.7.0.10:40010",
                "203.0.113.18:443",
                &[(true, quic_unknown()), (false, vec![0x40; 60])],
                9,
            ),
            "quic_unknown",
        ),
        (
            "10.7.0.11",
            tcp(
                "10.7.0.11:40011",
                "203.0.113.19:443",
                &hello(ClientHelloSpec::default()),
                10,
            ),
            "tls_no_sni",
        ),
        (
            "10.7.0.12",
            tcp(
                "10.7.0.12:40012",
                "203.0.113.20:443",
                &named("www.example.org", 12),
                11,
            ),
            "unclaimed_name",
        ),
        (
            "10.7.0.13",
            udp(
                "10.7.0.13:40013",
                "203.0.113.21:9999",
                &[(true, junk.clone()), (true, junk.clone())],
                12,
            ),
            "one_way",
        ),
        (
            "10.7.0.14",
            udp(
                "10.7.0.14:40014",
                "203.0.113.22:9999",
                &[(true, junk.clone()), (false, junk.clone())],
                13,
            ),
            "no_signal",
        ),
        (
            "10.7.0.15",
            tcp(
                "10.7.0.15:40015",
                "203.0.113.23:443",
                &named("g.whatsapp.net", 15),
                14,
            ),
            "",
        ),
    ];
    let mut packets = Vec::new();
    for (_, p, _) in &cases {
        packets.extend(p.iter().cloned());
    }
    let cap = write_capture(dir.path(), "unattributed.pcap", packets);
    let (events, stdout) = replay_output(&cap, &["--format", "json"]);
    let mut want = std::collections::BTreeMap::<String, u64>::new();
    for (client, _, reason) in &cases {
        let f = flow_of(&events, client);
        if reason.is_empty() {
            assert_eq!(f["app"], "whatsapp", "{f}");
            assert!(f.get("unattributed").is_none(), "{f}");
            continue;
        }
        assert!(f.get("app").is_none(), "{client}: {f}");
        assert_eq!(f["unattributed"], *reason, "{client}: {f}");
        *want.entry(reason.to_string()).or_default() += 1;
    }
    let summary: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON summary");
    let by_reason = summary["unattributed"].as_object().expect("unattributed");
    for r in [
        "ech",
        "encrypted_dns",
        "vpn",
        "tor",
        "quic_unknown",
        "tls_no_sni",
        "unclaimed_name",
        "one_way",
        "no_signal",
    ] {
        let n = want.get(r).copied().unwrap_or(0);
        assert_eq!(by_reason[r], n, "{r}: {summary}");
    }
    assert_eq!(summary["no_app"]["flows"], want.values().sum::<u64>());
}
