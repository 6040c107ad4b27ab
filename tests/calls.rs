//! Calls through the real binary: every flow of a call gets the app (the binding to a public
//! STUN server that came before the app's own exchange on the same socket: `call_socket`; the
//! media after it: `peer_cache`), a public STUN server is never claimed by its address alone,
//! and the events are the same at any worker count.

use picket_synth::calls::{call, CallSpec, Mark};
use picket_synth::Packet;

mod common;
use common::{of, replay, sorted, write_capture};

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn spec(client: &str, relay: &str, mark: Mark, relayed: bool, at: u64) -> CallSpec {
    CallSpec {
        client: client.parse().expect("addr"),
        public_stun: "74.125.250.129:19302".parse().expect("addr"),
        relay: relay.parse().expect("addr"),
        relay_media_port: 443,
        peer: "198.51.100.90:41000".parse().expect("addr"),
        mark,
        relayed,
        start_ns: T0 + at,
        media: 200,
        seed: at / SEC + 1,
    }
}

/// The `flow` events of a client socket, by server port.
fn flows_of<'a>(
    events: &'a [serde_json::Value],
    ip: &str,
    port: u16,
) -> Vec<&'a serde_json::Value> {
    of(events, "flow")
        .into_iter()
        .filter(|e| e["src_ip"] == ip && e["src_port"] == port)
        .collect()
}

#[test]
fn every_flow_of_a_call_gets_the_app_at_any_worker_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets: Vec<Packet> = Vec::new();
    packets.extend(call(&spec(
        "10.20.0.5:50000",
        "192.0.2.80:3478",
        Mark::MessageType(0x0801),
        false,
        0,
    )));
    packets.extend(call(&spec(
        "10.20.0.6:50002",
        "192.0.2.81:3478",
        Mark::Realm("turn.signal.org"),
        true,
        2 * SEC,
    )));
    // A binding to the same public STUN server from a socket no app marked: nobody's.
    let mut lone = spec(
        "10.20.0.7:50004",
        "192.0.2.82:3478",
        Mark::MessageType(0x0001),
        false,
        3 * SEC,
    );
    lone.media = 0;
    packets.extend(
        call(&lone)
            .into_iter()
            .filter(|p| p.frame.len() < 200 && p.ts_ns < T0 + 3 * SEC + 50_000_000),
    );
    let cap = write_capture(dir.path(), "calls.pcap", packets);
    let one = replay(&cap, &["--workers", "1"]);
    for (ip, port, app) in [
        ("10.20.0.5", 50000, "whatsapp"),
        ("10.20.0.6", 50002, "signal"),
    ] {
        let flows = flows_of(&one, ip, port);
        assert_eq!(flows.len(), 3, "binding, exchange and media of {ip}");
        for f in &flows {
            assert_eq!(f["app"], app, "{f}");
        }
        let binding = flows
            .iter()
            .find(|f| f["dst_port"] == 19302)
            .expect("the binding");
        assert_eq!(binding["app_source"], "call_socket", "{binding}");
        let media = flows
            .iter()
            .find(|f| f["dst_port"] != 3478 && f["dst_port"] != 19302);
        assert_eq!(media.expect("media")["app_source"], "peer_cache");
    }
    let lone = flows_of(&one, "10.20.0.7", 50004);
    assert_eq!(lone.len(), 1);
    assert!(
        lone[0]["app"].is_null(),
        "a public STUN server by its address alone: {}",
        lone[0]
    );
    // The binding decided at its end raises no alert of its own: the exchange's alert is the call's.
    assert!(of(&one, "alert").iter().all(|a| a["dst_port"] != 19302));
    // One `call` event per call, naming the app, the path and every flow, with the media span.
    let calls = of(&one, "call");
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (ip, app, path) in [
        ("10.20.0.5", "whatsapp", "direct"),
        ("10.20.0.6", "signal", "relayed"),
    ] {
        let c = calls
            .iter()
            .find(|c| c["src_ip"] == ip)
            .unwrap_or_else(|| panic!("a call of {ip}"));
        assert_eq!(c["app"], app);
        assert_eq!(c["app_source"], "stun");
        assert_eq!(c["path"], path, "{c}");
        assert_eq!(c["flows"], 3);
        let ids: Vec<&serde_json::Value> =
            flows_of(&one, ip, if ip.ends_with('5') { 50000 } else { 50002 })
                .iter()
                .map(|f| &f["flow_id"])
                .collect();
        for id in ids {
            assert!(
                c["flow_ids"].as_array().unwrap().contains(id),
                "{id} in {c}"
            );
        }
        // 200 media datagrams, half each way, 10 ms apart: the call lasts the media's 2 s.
        assert_eq!(c["media_packets_to_server"], 100);
        assert_eq!(c["media_packets_to_client"], 100);
        let d = c["duration_s"].as_f64().unwrap();
        assert!((1.98..2.0).contains(&d), "duration {d}");
    }
    for w in ["2", "4"] {
        assert_eq!(
            sorted(&one),
            sorted(&replay(&cap, &["--workers", w])),
            "--workers {w}"
        );
    }
}

/// Each app's own STUN/TURN mark, as its rule file gives it (the sources are cited there).
const APP_MARKS: [(&str, Mark); 8] = [
    ("whatsapp", Mark::MessageType(0x0801)),
    ("signal", Mark::Realm("turn3.voip.signal.org")),
    ("google_meet", Mark::Attribute(0xFF03, b"\x00\x01")),
    ("messenger", Mark::Realm("facebook.com")),
    ("teams", Mark::Attribute(0x8054, b"\x00\x00\x00\x01")),
    ("telegram", Mark::Realm("telegram.org")),
    ("viber", Mark::Realm("viber.com")),
    ("zoom", Mark::Attribute(0x0103, b"\x00\x00\x00\x02")),
];

/// Discord's IP discovery request (74 bytes: type 1, length 70, SSRC, zeros).
const DISCORD_IP_DISCOVERY: [u8; 74] = {
    let mut d = [0u8; 74];
    d[1] = 0x01;
    d[3] = 0x46;
    d[7] = 0x2a;
    d
};

/// Apps whose calls go to their own media servers, opened by a datagram of their own: the
/// call's server, its first datagram.
const SERVER_CALLS: [(&str, &str, Mark); 2] = [
    // Zoom's connect request to a media server on UDP 8801.
    (
        "zoom",
        "192.0.2.150:8801",
        Mark::FirstDatagram(&[0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00]),
    ),
    (
        "discord",
        "192.0.2.151:50001",
        Mark::FirstDatagram(&DISCORD_IP_DISCOVERY),
    ),
];

#[test]
fn server_calls_of_zoom_and_discord_are_calls_to_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets: Vec<Packet> = Vec::new();
    for (i, (_, server, mark)) in SERVER_CALLS.iter().enumerate() {
        let mut s = spec(
            &format!("10.40.{i}.2:52000"),
            server,
            *mark,
            false,
            i as u64 * 5 * SEC,
        );
        // The media goes to the server itself.
        s.peer = server.parse().expect("addr");
        packets.extend(call(&s));
    }
    let cap = write_capture(dir.path(), "server_calls.pcap", packets);
    let events = replay(&cap, &[]);
    let calls = of(&events, "call");
    for (i, (app, _, _)) in SERVER_CALLS.iter().enumerate() {
        let ip = format!("10.40.{i}.2");
        let c: Vec<_> = calls
            .iter()
            .filter(|c| c["src_ip"] == ip.as_str())
            .collect();
        assert_eq!(c.len(), 1, "{app}: {calls:?}");
        assert_eq!(c[0]["app"], *app, "{}", c[0]);
        assert_eq!(c[0]["app_source"], "signature", "{}", c[0]);
        assert_eq!(c[0]["path"], "server", "{}", c[0]);
    }
}

#[test]
fn each_apps_call_direct_and_relayed_is_one_call_of_the_app() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets: Vec<Packet> = Vec::new();
    for (i, (_, mark)) in APP_MARKS.iter().enumerate() {
        for relayed in [false, true] {
            let n = 2 * i + usize::from(relayed);
            packets.extend(call(&spec(
                &format!("10.30.{n}.2:5{n:04}"),
                &format!("192.0.2.{}:3478", 100 + n),
                *mark,
                relayed,
                n as u64 * 5 * SEC,
            )));
        }
    }
    let cap = write_capture(dir.path(), "app_calls.pcap", packets);
    let events = replay(&cap, &[]);
    let calls = of(&events, "call");
    for (i, (app, _)) in APP_MARKS.iter().enumerate() {
        for (relayed, path) in [(false, "direct"), (true, "relayed")] {
            let n = 2 * i + usize::from(relayed);
            let ip = format!("10.30.{n}.2");
            let c: Vec<_> = calls
                .iter()
                .filter(|c| c["src_ip"] == ip.as_str())
                .collect();
            assert_eq!(c.len(), 1, "{app} {path}: {c:?}");
            assert_eq!(c[0]["app"], *app, "{}", c[0]);
            assert_eq!(c[0]["path"], path, "{}", c[0]);
            assert_eq!(c[0]["flows"], 3, "{}", c[0]);
        }
    }
}

/// The corpus's own call captures: their `call` events name the app, and a call lasts the span
/// of its media flows.
#[test]
fn corpus_calls_name_the_app_and_last_the_media_span() {
    let Some(corpus) = common::require_corpus() else {
        return;
    };
    for (file, app, calls) in [
        ("whatsapp_login_call.pcap", "whatsapp", 2),
        ("zoom_p2p.pcapng", "zoom", 2),
    ] {
        let events = replay(&corpus.dir.join("pcap").join(file), &[]);
        let got = of(&events, "call");
        let of_app: Vec<_> = got.iter().filter(|c| c["app"] == app).collect();
        assert_eq!(of_app.len(), calls, "{file}: {got:?}");
        for c in of_app {
            let ids = c["flow_ids"].as_array().expect("flow ids");
            let flows: Vec<_> = of(&events, "flow")
                .into_iter()
                .filter(|f| ids.contains(&f["flow_id"]))
                .collect();
            assert_eq!(flows.len(), ids.len(), "{file}: every flow of {c}");
            assert!(flows.iter().all(|f| f["app"] == app), "{file}: {c}");
            // The span is that of some of its flows: it starts at one's first packet and ends
            // at one's last, within the whole envelope of its flows.
            let starts: Vec<&str> = flows
                .iter()
                .map(|f| f["ts_start"].as_str().unwrap())
                .collect();
            let ends: Vec<&str> = flows
                .iter()
                .map(|f| f["ts_end"].as_str().unwrap())
                .collect();
            assert!(
                starts.contains(&c["ts_start"].as_str().unwrap()),
                "{file}: {c}"
            );
            assert!(ends.contains(&c["ts_end"].as_str().unwrap()), "{file}: {c}");
            assert!(c["duration_s"].as_f64().unwrap() > 5.0, "{file}: {c}");
            assert!(
                c["media_packets_to_server"].as_u64().unwrap() > 50,
                "{file}: {c}"
            );
        }
    }
}
