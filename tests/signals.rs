//! Signals beyond the TLS server name through the real binary: IP prefix rules (a flow to an
//! address in an app's list with no server name of its own gets the app, `app_source` "ip"; a
//! server name always wins over the address), payload signatures (`app_source` "signature"),
//! STUN marks, and what other flows revealed: DNS answers (`dns_answer`) and the endpoints of a
//! call's STUN exchange (`peer_cache`).

use picket_synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, TcpConv, UdpConv};

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
    // An ICE check relayed through a TURN channel: WhatsApp's STUN inside ChannelData.
    let inner = stun(0x0801, &[]);
    let mut chan = vec![0x40, 0x01];
    chan.extend((inner.len() as u16).to_be_bytes());
    chan.extend(&inner);
    packets.extend(udp(
        "10.7.0.4:50004",
        "192.0.2.73:3478",
        &[chan],
        3_000_000_000,
    ));
    let cap = write_capture(dir.path(), "stun.pcap", packets);
    let events = replay(&cap, &[]);
    let flow = |c: &str| flow_of(&events, c);
    assert_eq!(flow("10.7.0.4")["app"], "whatsapp");
    assert_eq!(flow("10.7.0.4")["app_source"], "stun");
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

fn tls_to(client: &str, server: &str, spec: &ClientHelloSpec, at: u64) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut c = TcpConv::new(path, T0 + at, at);
    c.handshake();
    c.client_send(&client_hello(spec));
    c.server_send(&[0x17; 600]);
    c.close();
    c.take_packets()
}

fn dns(client: &str, name: &str, answer: &str, at: u64) -> Vec<Packet> {
    let path = SynthPath::new(
        client.parse().expect("addr"),
        "10.9.0.53:53".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + at, at);
    u.dns(name, answer.parse().expect("v4"));
    u.take_packets()
}

const SEC: u64 = 1_000_000_000;

#[test]
fn dns_answers_name_later_flows_and_real_ech_is_not_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    // Before any answer: nothing known of the address.
    packets.extend(tcp("10.9.0.1:41001", "198.51.100.80:443", None, 0));
    // The answer for zoom.us (TTL 300 s)...
    packets.extend(dns("10.9.0.2:41002", "zoom.us", "198.51.100.80", SEC));
    // ...names a later flow with no server name of its own, at once (UDP, Zoom's media port).
    let path = SynthPath::new(
        "10.9.0.3:41003".parse().expect("addr"),
        "198.51.100.80:8801".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + 2 * SEC, 5);
    u.media(6, 20_000_000);
    packets.extend(u.take_packets());
    // A TCP flow without TLS to the same address.
    packets.extend(tcp("10.9.0.4:41004", "198.51.100.80:443", None, 3 * SEC));
    // A server name still wins: an unrelated site on the same address is no app.
    packets.extend(tcp(
        "10.9.0.5:41005",
        "198.51.100.80:443",
        Some("www.example.com"),
        4 * SEC,
    ));
    // After the TTL the answer says nothing.
    packets.extend(tcp("10.9.0.6:41006", "198.51.100.80:443", None, 400 * SEC));
    // Real ECH: the hello names Cloudflare's client-facing server; the DNS answer for
    // discord.com gave the address, and decides.
    packets.extend(dns(
        "10.9.0.7:41007",
        "discord.com",
        "203.0.113.77",
        5 * SEC,
    ));
    let mut spec = ClientHelloSpec::new("cloudflare-ech.com", 7);
    spec.ech = true;
    packets.extend(tls_to("10.9.0.7:41008", "203.0.113.77:443", &spec, 6 * SEC));
    // GREASE ECH (any other name): the name is the real one and decides.
    let mut spec = ClientHelloSpec::new("web.whatsapp.com", 8);
    spec.ech = true;
    packets.extend(tls_to("10.9.0.8:41009", "192.0.2.88:443", &spec, 7 * SEC));
    // An IP address written as the server name is no name: Zoom's published range decides.
    let spec = ClientHelloSpec::new("3.7.35.10", 9);
    packets.extend(tls_to("10.9.0.9:41010", "3.7.35.10:443", &spec, 8 * SEC));
    let cap = write_capture(dir.path(), "dns.pcap", packets);
    for workers in ["1", "2"] {
        let events = replay(&cap, &["--workers", workers]);
        let flow = |c: &str| flow_of(&events, c);
        assert!(
            flow("10.9.0.1").get("app").is_none(),
            "{}",
            flow("10.9.0.1")
        );
        assert_eq!(flow("10.9.0.2")["app_source"], "dns_query");
        for c in ["10.9.0.3", "10.9.0.4"] {
            assert_eq!(flow(c)["app"], "zoom", "{}", flow(c));
            assert_eq!(flow(c)["app_source"], "dns_answer");
            assert_eq!(flow(c)["dns_name"], "zoom.us");
        }
        // The media flow's alert comes with its first datagram.
        let alert = events
            .iter()
            .find(|e| e["event"] == "alert" && e["src_ip"] == "10.9.0.3")
            .expect("alert for the media flow");
        assert_eq!(alert["ts"], flow("10.9.0.3")["ts_start"]);
        assert_eq!(alert["dns_name"], "zoom.us");
        assert!(
            flow("10.9.0.5").get("app").is_none(),
            "{}",
            flow("10.9.0.5")
        );
        assert_eq!(flow("10.9.0.5")["sni_trusted"], true);
        assert!(
            flow("10.9.0.6").get("app").is_none(),
            "{}",
            flow("10.9.0.6")
        );
        let ech = flow_of(&events, "10.9.0.7");
        let ech = if ech["transport"] == "tcp" {
            ech
        } else {
            events
                .iter()
                .find(|e| e["event"] == "flow" && e["src_port"] == 41008)
                .expect("ECH flow")
        };
        assert_eq!(ech["ech"], "real");
        assert_eq!(ech["sni_trusted"], false);
        assert_eq!(ech["app"], "discord");
        assert_eq!(ech["app_source"], "dns_answer");
        assert_eq!(flow("10.9.0.8")["ech"], "grease");
        assert_eq!(flow("10.9.0.8")["app"], "whatsapp");
        assert_eq!(flow("10.9.0.8")["app_source"], "sni");
        assert_eq!(flow("10.9.0.9")["sni_trusted"], false);
        assert_eq!(flow("10.9.0.9")["app"], "zoom");
        assert_eq!(flow("10.9.0.9")["app_source"], "ip");
    }
}

#[test]
fn call_endpoints_from_stun_name_the_media_flows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    // A WhatsApp-typed STUN request from the client's call socket to a relay; the relay's
    // answer reveals the client's public address (XOR-MAPPED-ADDRESS).
    let mut req = stun(0x0801, &[]);
    req[8..20].copy_from_slice(&[0x5a; 12]);
    let mapped = {
        let port = 62000u16 ^ 0x2112;
        let cookie = 0x2112_A442u32.to_be_bytes();
        let ip: Vec<u8> = [203u8, 0, 113, 9]
            .iter()
            .zip(cookie)
            .map(|(a, k)| a ^ k)
            .collect();
        let mut v = vec![0, 1];
        v.extend(port.to_be_bytes());
        v.extend(&ip);
        v
    };
    let resp = stun(0x0101, &[(0x0020, &mapped)]);
    let path = SynthPath::new(
        "10.10.0.1:50010".parse().expect("addr"),
        "192.0.2.90:3478".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0, 1);
    u.exchange(&req, &resp);
    packets.extend(u.take_packets());
    // Media from the same socket straight to the other party (no STUN of its own).
    let path = SynthPath::new(
        "10.10.0.1:50010".parse().expect("addr"),
        "198.51.100.7:40000".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + SEC, 2);
    u.media(10, 20_000_000);
    packets.extend(u.take_packets());
    // A flow to the revealed public address (a peer's view of the client).
    let path = SynthPath::new(
        "10.10.0.2:50020".parse().expect("addr"),
        "203.0.113.9:62000".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + 2 * SEC, 3);
    u.media(4, 20_000_000);
    packets.extend(u.take_packets());
    // Another socket of the same host: not the call's.
    let path = SynthPath::new(
        "10.10.0.1:50011".parse().expect("addr"),
        "198.51.100.7:40000".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + 3 * SEC, 4);
    u.media(10, 20_000_000);
    packets.extend(u.take_packets());
    // The call's socket long after the call: the entry has expired.
    let path = SynthPath::new(
        "10.10.0.1:50010".parse().expect("addr"),
        "198.51.100.8:40000".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0 + 900 * SEC, 5);
    u.media(10, 20_000_000);
    packets.extend(u.take_packets());
    let cap = write_capture(dir.path(), "call.pcap", packets);
    for workers in ["1", "2"] {
        let events = replay(&cap, &["--workers", workers]);
        let by_server = |ip: &str, port: u64| -> &serde_json::Value {
            events
                .iter()
                .find(|e| e["event"] == "flow" && e["dst_ip"] == ip && e["dst_port"] == port)
                .unwrap_or_else(|| panic!("no flow to {ip}:{port}"))
        };
        let relay = by_server("192.0.2.90", 3478);
        assert_eq!(relay["app"], "whatsapp");
        assert_eq!(relay["app_source"], "stun");
        let media = events
            .iter()
            .find(|e| {
                e["event"] == "flow" && e["src_port"] == 50010 && e["dst_ip"] == "198.51.100.7"
            })
            .expect("media flow");
        assert_eq!(media["app"], "whatsapp", "{media}");
        assert_eq!(media["app_source"], "peer_cache");
        let to_public = by_server("203.0.113.9", 62000);
        assert_eq!(to_public["app_source"], "peer_cache", "{to_public}");
        let other = events
            .iter()
            .find(|e| e["event"] == "flow" && e["src_port"] == 50011)
            .expect("other socket");
        assert!(other.get("app").is_none(), "{other}");
        let late = by_server("198.51.100.8", 40000);
        assert!(late.get("app").is_none(), "{late}");
    }
}

fn udp_first(client: &str, server: &str, first: &[u8], at: u64) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut u = UdpConv::new(path, T0 + at, at);
    u.send(true, first);
    u.media(4, 20_000_000);
    u.take_packets()
}

#[test]
fn payload_signatures_of_calls_and_framed_chat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    // Discord voice IP discovery: 74 bytes, type 1, length 70, SSRC, zero address.
    let mut disc = vec![0, 1, 0, 70, 0, 0, 0x4b, 0x18];
    disc.resize(74, 0);
    packets.extend(udp_first("10.11.0.1:50001", "192.0.2.101:50003", &disc, 0));
    // The same bytes one byte longer: the length field no longer fits.
    let mut long = disc.clone();
    long.push(0);
    packets.extend(udp_first(
        "10.11.0.2:50002",
        "192.0.2.102:50003",
        &long,
        SEC,
    ));
    // Telegram's reflector: a 16-byte peer tag, then twelve 0xFF.
    let mut tg = vec![0x3c; 16];
    tg.extend([0xff; 12]);
    tg.extend([0x6e, 0x0b, 0xb5, 0xc0, 0, 0, 0, 0]);
    packets.extend(udp_first(
        "10.11.0.3:50003",
        "192.0.2.103:599",
        &tg,
        2 * SEC,
    ));
    // Zoom's connect request to a media server port.
    let mut zoom = vec![0x01, 0x00, 0x02, 0x7d];
    zoom.resize(107, 0x42);
    packets.extend(udp_first(
        "10.11.0.4:50004",
        "192.0.2.104:8801",
        &zoom,
        3 * SEC,
    ));
    // The same datagram to another port is nothing.
    packets.extend(udp_first(
        "10.11.0.5:50005",
        "192.0.2.105:9000",
        &zoom,
        4 * SEC,
    ));
    // Viber: UDP keep-alive, and TCP chat framed by its little-endian length.
    let mut vb = vec![0xed, 0xf6, 0x01, 0x00, 0x05, 0x00];
    vb.resize(72, 0x11);
    packets.extend(udp_first(
        "10.11.0.6:50006",
        "192.0.2.106:7985",
        &vb,
        5 * SEC,
    ));
    let mut framed = 60u16.to_le_bytes().to_vec();
    framed.resize(60, 0x5a);
    packets.extend(tcp_with(
        "10.11.0.7:50007",
        "192.0.2.107:4244",
        None,
        &framed,
        6 * SEC,
    ));
    // The same framing on another port says nothing.
    packets.extend(tcp_with(
        "10.11.0.8:50008",
        "192.0.2.108:4245",
        None,
        &framed,
        7 * SEC,
    ));
    // STUN over TCP, framed as ICE-TCP: an allocate without a realm, then its retry with
    // Google's TURN realm.
    let first = stun(0x0003, &[(0x0019, &[17, 0, 0, 0])]);
    let retry = stun(0x0003, &[(0x0014, b"turn.l.google.com")]);
    let mut stream = Vec::new();
    for m in [&first, &retry] {
        stream.extend((m.len() as u16).to_be_bytes());
        stream.extend(m);
    }
    let path = SynthPath::new(
        "10.11.0.9:50009".parse().expect("addr"),
        "192.0.2.109:3478".parse().expect("addr"),
    );
    let mut c = TcpConv::new(path, T0 + 8 * SEC, 9);
    c.handshake();
    c.client_send(&stream[..first.len() + 2]);
    c.server_send(&[0x01, 0x13, 0, 0]);
    c.client_send(&stream[first.len() + 2..]);
    c.close();
    packets.extend(c.take_packets());
    // Meet's media range, UDP media with no STUN of its own.
    packets.extend(udp_first(
        "10.11.0.10:50010",
        "142.250.82.99:19305",
        &[0x80; 100],
        9 * SEC,
    ));
    let cap = write_capture(dir.path(), "sigs.pcap", packets);
    let events = replay(&cap, &[]);
    let flow = |c: &str| flow_of(&events, c);
    let want = [
        ("10.11.0.1", "discord", "signature"),
        ("10.11.0.3", "telegram", "signature"),
        ("10.11.0.4", "zoom", "signature"),
        ("10.11.0.6", "viber", "signature"),
        ("10.11.0.7", "viber", "signature"),
        ("10.11.0.9", "google_meet", "stun"),
        ("10.11.0.10", "google_meet", "ip"),
    ];
    for (client, app, source) in want {
        assert_eq!(flow(client)["app"], app, "{}", flow(client));
        assert_eq!(flow(client)["app_source"], source, "{}", flow(client));
    }
    for client in ["10.11.0.2", "10.11.0.5", "10.11.0.8"] {
        assert!(flow(client).get("app").is_none(), "{}", flow(client));
    }
}

#[test]
fn ja4_rules_name_an_app_when_the_server_name_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = tcp(
        "10.12.0.1:41000",
        "192.0.2.121:443",
        Some("www.example.com"),
        0,
    );
    packets.extend(tcp(
        "10.12.0.2:41001",
        "192.0.2.122:443",
        Some("zoom.us"),
        SEC,
    ));
    let cap = write_capture(dir.path(), "ja4.pcap", packets);
    let before = replay(&cap, &[]);
    let ja4 = flow_of(&before, "10.12.0.1")["ja4"]
        .as_str()
        .expect("a JA4")
        .to_string();
    assert!(flow_of(&before, "10.12.0.1").get("app").is_none());
    // A rule set where Signal's file claims that fingerprint.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for e in std::fs::read_dir(&shipped).expect("rules").flatten() {
        std::fs::copy(e.path(), rules.join(e.file_name())).expect("copy");
    }
    let signal = rules.join("signal.toml");
    let mut text = std::fs::read_to_string(&signal).expect("read");
    text = format!("ja4 = [\"{ja4}\"]\n{text}");
    // (`ja4` goes before the first table of the file: the first line will do.)
    std::fs::write(&signal, &text).expect("write");
    let after = replay(&cap, &["--rules", rules.to_str().expect("utf-8")]);
    let f = flow_of(&after, "10.12.0.1");
    assert_eq!(f["app"], "signal", "{f}");
    assert_eq!(f["app_source"], "ja4");
    assert_eq!(f["rule"], "signal.toml:1");
    // A server name that names an app still decides (the same client stack).
    assert_eq!(flow_of(&after, "10.12.0.2")["app"], "zoom");
    assert_eq!(flow_of(&after, "10.12.0.2")["app_source"], "sni");
    // A malformed fingerprint is refused with its place.
    std::fs::write(
        &signal,
        format!(
            "ja4 = [\"t13d_nope\"]\n{}",
            &text[text.find('\n').map_or(0, |i| i + 1)..]
        ),
    )
    .expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("signal.toml:1:") && err.contains("not a JA4 fingerprint"),
        "{err}"
    );
}

/// A TCP exchange: the client's first segment, the server's first segment (if any), then data.
fn tcp_exchange(
    client: &str,
    server: &str,
    first: &[&[u8]],
    reply: Option<&[u8]>,
    at: u64,
) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut c = TcpConv::new(path, T0 + at, at);
    c.handshake();
    for seg in first {
        c.client_send(seg);
    }
    if let Some(r) = reply {
        c.server_send(r);
        c.client_send(&[0x33; 144]);
        c.server_send(&[0x44; 32]);
    }
    c.close();
    c.take_packets()
}

/// Threema's chat handshake: random bytes of fixed sizes (48 from the client, 80 back). The
/// reply's size decides; a reply of another size, no reply at all (one direction seen), another
/// port, or a ClientHello that happens to start with a 48-byte segment do not make Threema.
#[test]
fn reply_size_signature_names_threema_handshakes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hello: Vec<u8> = (0..48u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let server: Vec<u8> = (0..80u8)
        .map(|i| i.wrapping_mul(53).wrapping_add(7))
        .collect();
    let mut packets = Vec::new();
    // Not in Threema's address list: only the handshake can say it.
    packets.extend(tcp_exchange(
        "10.12.0.1:40001",
        "192.0.2.201:5222",
        &[&hello],
        Some(&server),
        0,
    ));
    packets.extend(tcp_exchange(
        "10.12.0.2:40002",
        "192.0.2.202:443",
        &[&hello],
        Some(&server),
        SEC,
    ));
    packets.extend(tcp_exchange(
        "10.12.0.3:40003",
        "192.0.2.203:5222",
        &[&hello],
        Some(&server[..79]),
        2 * SEC,
    ));
    packets.extend(tcp_exchange(
        "10.12.0.4:40004",
        "192.0.2.204:5222",
        &[&hello],
        None,
        3 * SEC,
    ));
    packets.extend(tcp_exchange(
        "10.12.0.5:40005",
        "192.0.2.205:8443",
        &[&hello],
        Some(&server),
        4 * SEC,
    ));
    // A ClientHello whose first segment is 48 bytes; the server says nothing before it ends.
    let ch = client_hello(&ClientHelloSpec::new("web.whatsapp.com", 6));
    packets.extend(tcp_exchange(
        "10.12.0.6:40006",
        "192.0.2.206:443",
        &[&ch[..48], &ch[48..]],
        Some(&[0x16; 80]),
        5 * SEC,
    ));
    // No reply, to an address of the hosting company Threema uses (AS29691, Nine Internet
    // Solutions'): no list claims it, so nothing decides.
    packets.extend(tcp_exchange(
        "10.12.0.7:40007",
        "5.148.175.10:5222",
        &[&hello],
        None,
        6 * SEC,
    ));
    let cap = write_capture(dir.path(), "threema.pcap", packets);
    for workers in ["1", "2"] {
        let events = replay(&cap, &["--workers", workers]);
        let flow = |c: &str| flow_of(&events, c);
        for (client, app, source) in [
            ("10.12.0.1", "threema", "signature"),
            ("10.12.0.2", "threema", "signature"),
            ("10.12.0.6", "whatsapp", "sni"),
        ] {
            assert_eq!(flow(client)["app"], app, "{}", flow(client));
            assert_eq!(flow(client)["app_source"], source, "{}", flow(client));
        }
        for client in ["10.12.0.3", "10.12.0.4", "10.12.0.5", "10.12.0.7"] {
            assert!(flow(client).get("app").is_none(), "{}", flow(client));
        }
    }
}

/// Packets of `c` that the server sent: a span port that sees one direction.
fn server_side(packets: Vec<Packet>, server: &str) -> Vec<Packet> {
    let ip: std::net::SocketAddrV4 = server.parse().expect("server address");
    let ip = *ip.ip();
    packets
        .into_iter()
        .filter(|p| p.frame[12..14] == [0x08, 0x00] && p.frame[26..30] == ip.octets())
        .collect()
}

/// A capture of the server's side only: the TLS 1.2 certificate's common name names the app
/// (`app_source` "certificate"); a shared certificate whose alternative names claim two apps
/// names none; a TLS 1.3 server (certificate encrypted) and a flow whose client is seen are
/// untouched.
#[test]
fn server_certificate_names_the_app_when_only_the_server_is_seen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flight = |c: &str, cn: &str, sans: &[&str], at: u64, tls13: bool| {
        let server = format!("198.51.100.{}:443", 60 + at);
        let path = SynthPath::new(c.parse().expect("addr"), server.parse().expect("addr"));
        let mut t = TcpConv::new(path, T0 + at * 1_000_000_000, at);
        t.handshake();
        t.client_send(&client_hello(&ClientHelloSpec::new("hidden.example", at)));
        if tls13 {
            t.server_send(&picket_synth::server_hello_and_more(at, 3000));
        } else {
            t.server_send(&picket_synth::server_flight_tls12(at, cn, sans, 16384));
        }
        t.close();
        server_side(t.take_packets(), &server)
    };
    let mut packets = Vec::new();
    packets.extend(flight(
        "10.7.0.1:40001",
        "*.whatsapp.net",
        &["*.whatsapp.net", "*.facebook.com"],
        1,
        false,
    ));
    // A common name of no app, alternatives of one app: that app.
    packets.extend(flight(
        "10.7.0.2:40002",
        "edge.example",
        &["edge.example", "chat.signal.org"],
        2,
        false,
    ));
    // Alternatives of two apps: none.
    packets.extend(flight(
        "10.7.0.3:40003",
        "edge.example",
        &["chat.signal.org", "mmg.whatsapp.net"],
        3,
        false,
    ));
    packets.extend(flight("10.7.0.4:40004", "", &[], 4, true));
    packets.sort_by_key(|p| p.ts_ns);
    let cap = write_capture(dir.path(), "s2c.pcap", packets);
    let events = replay(&cap, &[]);
    // The client is the one receiving from port 443.
    let by = |c: &str| flow_of(&events, c);
    let wa = by("10.7.0.1");
    assert_eq!(wa["app"], "whatsapp", "{wa}");
    assert_eq!(wa["app_source"], "certificate");
    assert_eq!(wa["cert_name"], "*.whatsapp.net");
    let signal = by("10.7.0.2");
    assert_eq!(signal["app"], "signal", "{signal}");
    assert_eq!(signal["cert_name"], "chat.signal.org");
    let shared = by("10.7.0.3");
    assert!(shared.get("app").is_none(), "{shared}");
    assert_eq!(shared["cert_name"], "edge.example");
    let tls13 = by("10.7.0.4");
    assert!(
        tls13.get("app").is_none() && tls13.get("cert_name").is_none(),
        "{tls13}"
    );
}
