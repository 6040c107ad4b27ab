//! Alerts, flow ids, long-flow updates and alert suppression through the real binary, on
//! captures the project's generator writes.

use picket_synth::{
    self as synth, client_hello, ClientHelloSpec, Packet, Path as SynthPath, PcapFormat, TcpConv,
};
use serde_json::Value;
use std::path::Path;

mod common;
use common::{of, replay, sorted, write_capture as write};

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

/// A TLS connection to `name` from `client` starting at `start`, with `exchanges` more
/// request/response pairs `gap` apart, then closed.
fn tls_conn(
    client: &str,
    server: &str,
    name: &str,
    start: u64,
    exchanges: u32,
    gap: u64,
) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut c = TcpConv::new(path, start, start ^ 0x5eed);
    c.handshake();
    c.client_send(&client_hello(&ClientHelloSpec::new(name, start)));
    c.server_send(&[0x16; 3000]);
    for _ in 0..exchanges {
        c.wait(gap);
        c.client_send(&[0x17; 200]);
        c.server_send(&[0x17; 1200]);
    }
    c.close();
    c.take_packets()
}

#[test]
fn fifty_connections_of_one_client_give_one_alert_and_a_suppressed_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    for i in 0..50u64 {
        packets.extend(tls_conn(
            &format!("10.3.0.1:{}", 40_000 + i),
            &format!("192.0.2.{}:443", 10 + i % 5),
            "g.whatsapp.net",
            T0 + i * SEC / 2,
            0,
            0,
        ));
    }
    // Another client: its own alert. A Telegram user (verdict observe): none.
    packets.extend(tls_conn(
        "10.3.0.2:41000",
        "192.0.2.10:443",
        "mmg.whatsapp.net",
        T0 + 3 * SEC,
        0,
        0,
    ));
    packets.extend(tls_conn(
        "10.3.0.3:41000",
        "203.0.113.5:443",
        "web.telegram.org",
        T0 + 4 * SEC,
        0,
        0,
    ));
    let cap = write(dir.path(), "fifty.pcap", packets);
    let events = replay(&cap, &[]);
    let alerts = of(&events, "alert");
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let first = alerts
        .iter()
        .find(|a| a["src_ip"] == "10.3.0.1")
        .expect("the busy client's alert");
    assert_eq!(first["app"], "whatsapp");
    assert_eq!(first["verdict"], "flag");
    assert_eq!(first["src_port"], 40_000, "the first connection alerts");
    let sup = of(&events, "alert_suppressed");
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0]["suppressed"], 49);
    assert_eq!(sup[0]["flow_id"], first["flow_id"]);
    assert_eq!(sup[0]["src_ip"], "10.3.0.1");
    assert!(!alerts.iter().any(|a| a["app"] == "telegram"));
    assert_eq!(of(&events, "flow").len(), 52);
    // With suppression off, every flagged connection alerts.
    let every = replay(&cap, &["--alert-interval", "0"]);
    assert_eq!(of(&every, "alert").len(), 51);
    // The same events at any worker count.
    for w in ["2", "4", "2"] {
        assert_eq!(
            sorted(&events),
            sorted(&replay(&cap, &["--workers", w])),
            "--workers {w}"
        );
    }
}

#[test]
fn alert_comes_before_its_flow_and_shares_its_id() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap");
    let events = replay(&demo, &["--sensor-name", "hq-span1"]);
    let alerts = of(&events, "alert");
    assert!(!alerts.is_empty());
    for a in &alerts {
        let id = a["flow_id"].as_str().expect("flow_id");
        assert!(id.starts_with("hq-span1-"), "{id}");
        assert_eq!(a["sensor"], "hq-span1");
        let at = events.iter().position(|e| e == *a).expect("present");
        let flow = events
            .iter()
            .position(|e| e["event"] == "flow" && e["flow_id"] == a["flow_id"])
            .expect("the alerted flow ends with a flow event");
        assert!(at < flow, "alert after its flow: {a}");
        assert_eq!(events[flow]["app"], a["app"]);
        assert_eq!(events[flow]["sni"], a["sni"]);
    }
    // Only flagged apps alert, and every flow id is unique among flow events.
    assert!(alerts.iter().all(|a| a["verdict"] == "flag"));
    let mut ids: Vec<&str> = of(&events, "flow")
        .iter()
        .filter_map(|e| e["flow_id"].as_str())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    // Alerts come out in packet-time order.
    let ts: Vec<&str> = alerts.iter().filter_map(|a| a["ts"].as_str()).collect();
    let mut sorted_ts = ts.clone();
    sorted_ts.sort();
    assert_eq!(ts, sorted_ts);
}

#[test]
fn an_hour_long_call_is_visible_while_it_lasts() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A Zoom session: a request and answer every 10 s for an hour.
    let packets = tls_conn(
        "10.4.0.1:50000",
        "198.51.100.20:443",
        "zoom.us",
        T0,
        360,
        10 * SEC,
    );
    let cap = write(dir.path(), "call.pcap", packets);
    let events = replay(&cap, &["--flow-update", "300"]);
    let updates = of(&events, "flow_update");
    let flows = of(&events, "flow");
    assert_eq!(flows.len(), 1);
    let flow = flows[0];
    assert_eq!(updates.len(), 12, "an hour at 300 s");
    let mut last = 0;
    for (i, u) in updates.iter().enumerate() {
        assert_eq!(u["flow_id"], flow["flow_id"]);
        assert_eq!(u["app"], "zoom");
        let p = u["packets_to_server"].as_u64().expect("count");
        assert!(p > last, "update {i} does not grow: {p} after {last}");
        last = p;
    }
    // Counters so far add up to the final flow's.
    assert!(last <= flow["packets_to_server"].as_u64().expect("count"));
    let bytes = |e: &Value| {
        e["bytes_to_server"].as_u64().unwrap_or(0) + e["bytes_to_client"].as_u64().unwrap_or(0)
    };
    assert!(bytes(updates[11]) <= bytes(flow));
    assert!(
        bytes(updates[11]) * 10 > bytes(flow) * 9,
        "the last update is near the end"
    );
    // Off means none.
    assert!(of(&replay(&cap, &["--flow-update", "0"]), "flow_update").is_empty());
    for w in ["2", "4"] {
        assert_eq!(
            sorted(&events),
            sorted(&replay(&cap, &["--flow-update", "300", "--workers", w]))
        );
    }
}

#[test]
fn alerts_file_gets_alerts_alone() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap");
    let dir = tempfile::tempdir().expect("temp dir");
    let alerts = dir.path().join("alerts.jsonl");
    let events = replay(&demo, &["--alerts", alerts.to_str().expect("utf-8")]);
    let only: Vec<Value> = std::fs::read_to_string(&alerts)
        .expect("alerts file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(!only.is_empty());
    assert!(only
        .iter()
        .all(|e| e["event"] == "alert" || e["event"] == "alert_suppressed"));
    let in_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "alert" || e["event"] == "alert_suppressed")
        .collect();
    assert_eq!(only.iter().collect::<Vec<_>>(), in_events);
}

/// Regressions found in review: a flow classified by its address only when it ends must not
/// change which alert of a client is written, and packets out of time order must age flows the
/// same way whichever worker holds them.
#[test]
fn late_address_alerts_and_out_of_order_time_same_at_any_width() {
    use picket_synth::UdpConv;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    // UDP to a WhatsApp prefix at t=0 (classified by address when it ends), TLS to WhatsApp at
    // t=10 from the same client.
    let path = SynthPath::new(
        "10.8.0.5:40000".parse().expect("addr"),
        "3.33.221.48:3478".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, T0, 1);
    u.send(true, &[0x80; 100]);
    packets.extend(u.take_packets());
    packets.extend(tls_conn(
        "10.8.0.5:40001",
        "192.0.2.80:443",
        "g.whatsapp.net",
        T0 + 10 * SEC,
        0,
        0,
    ));
    let cap = write(dir.path(), "late.pcap", packets);
    let one = replay(&cap, &["--workers", "1"]);
    assert_eq!(of(&one, "alert").len(), 1);
    for w in ["2", "3", "4", "2", "3"] {
        assert_eq!(
            sorted(&one),
            sorted(&replay(&cap, &["--workers", w])),
            "--workers {w}"
        );
    }
    // Out of time order: X at t=0 and t=1, Y at t=100, X again at t=2 (not sorted on purpose).
    let mut packets = Vec::new();
    for (at, client) in [
        (0, "10.8.1.1:5000"),
        (1, "10.8.1.1:5000"),
        (100, "10.8.1.2:5000"),
        (2, "10.8.1.1:5000"),
    ] {
        let path = SynthPath::new(
            client.parse().expect("addr"),
            "192.0.2.81:6000".parse().expect("addr"),
        );
        let mut u = UdpConv::new(path, T0 + at * SEC, at);
        u.send(true, &[0x11; 40]);
        packets.extend(u.take_packets());
    }
    let p = dir.path().join("disorder.pcap");
    synth::write_pcap(
        std::fs::File::create(&p).expect("create"),
        PcapFormat::default(),
        packets,
    )
    .expect("write");
    let one = replay(&p, &["--workers", "1"]);
    for w in ["2", "3", "4", "2", "3", "4"] {
        assert_eq!(
            sorted(&one),
            sorted(&replay(&p, &["--workers", w])),
            "--workers {w}"
        );
    }
}

#[test]
fn client_addresses_can_be_truncated_or_hashed() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key");
    std::fs::write(&key, [0x5au8; 40]).expect("key");
    let plain = replay(&demo, &[]);
    let hashed = replay(
        &demo,
        &[
            "--client-addresses",
            "hash",
            "--client-hash-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let again = replay(
        &demo,
        &[
            "--client-addresses",
            "hash",
            "--client-hash-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let truncated = replay(&demo, &["--client-addresses", "truncate"]);
    assert_eq!(plain.len(), hashed.len());
    let text = |ev: &[serde_json::Value]| -> String {
        ev.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for e in &plain {
        let client = e["src_ip"].as_str().expect("src_ip");
        // No client address survives anywhere in the hashed events.
        assert!(
            !text(&hashed).contains(&format!("\"{client}\"")),
            "{client}"
        );
    }
    for e in hashed.iter().chain(&truncated) {
        let src = e["src_ip"].as_str().expect("src_ip");
        assert!(
            src.starts_with("h:") || src == "10.1.0.0" || src == "fd00::",
            "{e}"
        );
        if e["event"] == "flow" {
            // Servers are kept.
            assert!(plain.iter().any(|p| p["dst_ip"] == e["dst_ip"]));
        }
    }
    // The same key gives the same values; flow ids are keyed, and still join a flow's events.
    assert_eq!(sorted(&hashed), sorted(&again));
    let ids = |ev: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        // (Call events carry a `call_id` instead.)
        ev.iter()
            .filter_map(|e| e.get("flow_id").map(|i| i.to_string()))
            .collect()
    };
    assert!(ids(&plain).is_disjoint(&ids(&hashed)));
    for a in hashed.iter().filter(|e| e["event"] == "alert") {
        assert!(hashed.iter().any(|f| f["event"] == "flow"
            && f["flow_id"] == a["flow_id"]
            && f["src_ip"] == a["src_ip"]));
    }
    // A short key is refused with a clear error.
    std::fs::write(&key, [1u8; 8]).expect("key");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_picket"))
        .args([
            "replay",
            "--quiet",
            "--client-addresses",
            "hash",
            "--client-hash-key",
        ])
        .arg(&key)
        .arg(&demo)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("needs at least 32 bytes"), "{err}");
}
