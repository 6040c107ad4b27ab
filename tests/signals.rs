//! Signals beyond the TLS server name through the real binary: IP prefix rules (a flow to an
//! address in an app's list with no server name of its own gets the app, `app_source` "ip"; a
//! server name always wins over the address) and payload signatures (`app_source` "signature").

use picket::synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, TcpConv, UdpConv};

mod common;
use common::{flow_of, replay, write_capture};

const T0: u64 = 1_700_000_000_000_000_000;

fn tcp(client: &str, server: &str, sni: Option<&str>, at: u64) -> Vec<Packet> {
    tcp_with(client, server, sni, &[0x17; 8], at)
}

fn tcp_with(client: &str, server: &str, sni: Option<&str>, first: &[u8], at: u64) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut c = TcpConv::new(path, T0 + at, at);
    c.handshake();
    match sni {
        Some(n) => c.client_send(&client_hello(&ClientHelloSpec::new(n, at))),
        None => c.client_send(first),
    }
    c.server_send(&[0x17; 600]);
    c.close();
    c.take_packets()
}

/// A STUN message with the RFC 5389 cookie and the given attributes.
fn stun(ty: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut a = Vec::new();
    for (t, v) in attrs {
        a.extend(t.to_be_bytes());
        a.extend((v.len() as u16).to_be_bytes());
        a.extend(*v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
    }
    let mut m = ty.to_be_bytes().to_vec();
    m.extend((a.len() as u16).to_be_bytes());
    m.extend(0x2112_A442u32.to_be_bytes());
    m.extend([0x5a; 12]);
    m.extend(a);
    m
}

fn udp(client: &str, server: &str, datagrams: &[Vec<u8>], at: u64) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut u = UdpConv::new(path, T0 + at, at);
    for d in datagrams {
        u.send(true, d);
    }
    u.take_packets()
}

#[test]
fn stun_marks_classify_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    // WhatsApp's own attribute in a binding request.
    packets.extend(udp(
        "10.7.0.1:50001",
        "192.0.2.70:3478",
        &[stun(0x0001, &[(0x4003, b"wa")])],
        0,
    ));
    // A TURN allocate whose REALM names Signal's relays, after a plain binding request.
    packets.extend(udp(
        "10.7.0.2:50002",
        "192.0.2.71:3478",
        &[
            stun(0x0001, &[]),
            stun(0x0003, &[(0x0014, b"turn.Signal.org")]),
        ],
        1_000_000_000,
    ));
    // Plain STUN says nothing; RTP-like media afterwards neither.
    packets.extend(udp(
        "10.7.0.3:50003",
        "192.0.2.72:3478",
        &[stun(0x0001, &[]), vec![0x80; 200], vec![0x80; 200]],
        2_000_000_000,
    ));
    let cap = write_capture(dir.path(), "stun.pcap", packets);
    let events = replay(&cap, &[]);
    let flow = |c: &str| flow_of(&events, c);
    assert_eq!(flow("10.7.0.1")["app"], "whatsapp");
    assert_eq!(flow("10.7.0.1")["app_source"], "stun");
    assert_eq!(flow("10.7.0.2")["app"], "signal");
    assert_eq!(flow("10.7.0.2")["app_source"], "stun");
    assert!(
        flow("10.7.0.3").get("app").is_none(),
        "{}",
        flow("10.7.0.3")
    );
}

#[test]
fn ip_lists_classify_flows_without_a_server_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    // Zoom's published range (rules/zoom.toml), no TLS: the address decides.
    packets.extend(tcp("10.6.0.1:40001", "3.7.35.10:443", None, 0));
    // The same address, but the hello names an unrelated site: the name wins, no app.
    packets.extend(tcp(
        "10.6.0.2:40002",
        "3.7.35.10:443",
        Some("www.example.com"),
        1_000_000_000,
    ));
    // A Telegram address over UDP (media, no QUIC).
    let path = SynthPath::new(
        "10.6.0.3:40003".parse().expect("addr"),
        "91.105.192.10:599".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + 2_000_000_000, 3);
    u.media(20, 20_000_000);
    packets.extend(u.take_packets());
    // Nothing known.
    packets.extend(tcp("10.6.0.4:40004", "192.0.2.44:443", None, 3_000_000_000));
    // WhatsApp's chat prologue to an address no list holds: the signature decides.
    let prologue = [0x45, 0x44, 0, 1, 0, 0, 2, 8, 0x12, 0x34];
    packets.extend(tcp_with(
        "10.6.0.5:40005",
        "192.0.2.55:5222",
        None,
        &prologue,
        4_000_000_000,
    ));
    // The same bytes one position later: no match.
    let shifted = [0, 0x45, 0x44, 0, 1, 0, 0, 2, 8, 0x12];
    packets.extend(tcp_with(
        "10.6.0.6:40006",
        "192.0.2.55:5222",
        None,
        &shifted,
        5_000_000_000,
    ));
    let cap = write_capture(dir.path(), "ip.pcap", packets);
    let events = replay(&cap, &[]);
    let flow = |c: &str| flow_of(&events, c);
    assert_eq!(flow("10.6.0.1")["app"], "zoom");
    assert_eq!(flow("10.6.0.1")["app_source"], "ip");
    assert!(flow("10.6.0.1")["rule"]
        .as_str()
        .is_some_and(|r| r.starts_with("zoom.toml:")));
    assert!(
        flow("10.6.0.2").get("app").is_none(),
        "{}",
        flow("10.6.0.2")
    );
    assert_eq!(flow("10.6.0.3")["app"], "telegram");
    assert_eq!(flow("10.6.0.3")["app_source"], "ip");
    assert!(flow("10.6.0.4").get("app").is_none());
    assert_eq!(flow("10.6.0.5")["app"], "whatsapp");
    assert_eq!(flow("10.6.0.5")["app_source"], "signature");
    assert!(flow("10.6.0.5")["rule"]
        .as_str()
        .is_some_and(|r| r.starts_with("whatsapp.toml:")));
    assert!(flow("10.6.0.6").get("app").is_none());
    // Zoom is flagged: the address-classified flow alerts too.
    assert!(events
        .iter()
        .any(|e| e["event"] == "alert" && e["src_ip"] == "10.6.0.1" && e["app_source"] == "ip"));
}
