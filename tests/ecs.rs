//! `--events-format ecs` through the real binary: every field of every event is an Elastic
//! Common Schema field of the right type, or one of Picket's own under `picket.`; and the ECS
//! events are the same events, value for value, as the default layout's.
// See: #18

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The ECS types the layout uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    /// `keyword`: a string (or an array of strings: ECS fields are arrays where they may be).
    Keyword,
    /// `long`: an integer.
    Long,
    /// `date`: RFC 3339 text.
    Date,
    /// `ip`: an IPv4 or IPv6 address as text.
    Ip,
}

/// The ECS fields the layout writes and their types, from the ECS field reference (version
/// 8.11, elastic.co/guide/en/ecs/8.11/: Base, ECS, Event, Observer, Network, Source, Destination,
/// TLS, DNS and Rule fields; `event.duration` is nanoseconds there).
const ECS_FIELDS: &[(&str, Ty)] = &[
    ("@timestamp", Ty::Date),
    ("ecs.version", Ty::Keyword),
    ("event.kind", Ty::Keyword),
    ("event.category", Ty::Keyword),
    ("event.type", Ty::Keyword),
    ("event.action", Ty::Keyword),
    ("event.start", Ty::Date),
    ("event.end", Ty::Date),
    ("event.duration", Ty::Long),
    ("event.reason", Ty::Keyword),
    ("observer.name", Ty::Keyword),
    ("network.transport", Ty::Keyword),
    ("network.community_id", Ty::Keyword),
    ("network.application", Ty::Keyword),
    ("network.bytes", Ty::Long),
    ("network.packets", Ty::Long),
    ("network.vlan.id", Ty::Keyword),
    ("network.inner.vlan.id", Ty::Keyword),
    ("source.ip", Ty::Ip),
    ("source.port", Ty::Long),
    ("source.bytes", Ty::Long),
    ("source.packets", Ty::Long),
    ("destination.ip", Ty::Ip),
    ("destination.port", Ty::Long),
    ("destination.bytes", Ty::Long),
    ("destination.packets", Ty::Long),
    ("tls.client.server_name", Ty::Keyword),
    ("tls.version", Ty::Keyword),
    ("tls.version_protocol", Ty::Keyword),
    ("dns.question.name", Ty::Keyword),
    ("rule.name", Ty::Keyword),
];

/// ECS's allowed values of the categorisation fields this layout uses (ECS Categorization
/// Fields: event.kind, event.category, event.type).
const KINDS: &[&str] = &["alert", "event"];
const CATEGORIES: &[&str] = &["network"];
const TYPES: &[&str] = &["connection", "end", "info", "start"];

/// Picket's field → its ECS field, for comparing the two layouts.
const SAME: &[(&str, &str)] = &[
    ("timestamp", "@timestamp"),
    ("event", "event.action"),
    ("ts_start", "event.start"),
    ("ts_end", "event.end"),
    ("end_reason", "event.reason"),
    ("transport", "network.transport"),
    ("community_id", "network.community_id"),
    ("src_ip", "source.ip"),
    ("src_port", "source.port"),
    ("dst_ip", "destination.ip"),
    ("dst_port", "destination.port"),
    ("packets_to_server", "source.packets"),
    ("bytes_to_server", "source.bytes"),
    ("packets_to_client", "destination.packets"),
    ("bytes_to_client", "destination.bytes"),
    ("sni", "tls.client.server_name"),
    ("tls_version", "tls.version"),
    ("dns_query", "dns.question.name"),
    ("app", "network.application"),
    ("rule", "rule.name"),
];

fn events(cap: &Path, format: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let ev = dir.path().join("ev.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["replay", "--quiet", "--events-format", format, "--events"])
        .arg(&ev)
        .arg(cap)
        .output()
        .expect("picket runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(&ev)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

fn check_type(k: &str, ty: Ty, v: &Value) {
    let ok = match ty {
        Ty::Keyword => {
            v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        }
        Ty::Long => v.is_u64() || v.is_i64(),
        Ty::Date => v
            .as_str()
            .is_some_and(|s| s.len() == 27 && s.ends_with('Z') && s.as_bytes()[10] == b'T'),
        Ty::Ip => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
    };
    assert!(ok, "{k} is not a {ty:?}: {v}");
}

#[test]
fn ecs_events_use_ecs_fields_and_match_the_default_layout() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap");
    let plain = events(&cap, "picket");
    let ecs = events(&cap, "ecs");
    assert_eq!(plain.len(), ecs.len());
    assert!(ecs.len() > 20, "the demo has events");
    let mut seen = std::collections::BTreeSet::new();
    for (p, e) in plain.iter().zip(&ecs) {
        let obj = e.as_object().expect("an object");
        for (k, v) in obj {
            if k.starts_with("picket.") {
                continue;
            }
            let ty = ECS_FIELDS
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| *t)
                .unwrap_or_else(|| panic!("{k} is no ECS field of the list: {e}"));
            check_type(k, ty, v);
            seen.insert(k.clone());
        }
        assert!(KINDS.contains(&e["event.kind"].as_str().expect("event.kind")));
        for (field, allowed) in [("event.category", CATEGORIES), ("event.type", TYPES)] {
            for c in e[field].as_array().expect(field) {
                assert!(
                    allowed.contains(&c.as_str().expect("string")),
                    "{field}: {c}"
                );
            }
        }
        for (pk, ek) in SAME {
            assert_eq!(p.get(*pk), e.get(*ek), "{pk} / {ek}:\n{p}\n{e}");
        }
        // Everything else is there under picket., with the same value.
        for (pk, pv) in p.as_object().expect("object") {
            if SAME.iter().any(|(n, _)| n == pk) || pk == "duration" || pk == "vlan" {
                continue;
            }
            assert_eq!(e.get(format!("picket.{pk}")), Some(pv), "{pk}: {e}");
        }
        if let Some(secs) = p["duration"].as_f64() {
            let ns = e["event.duration"].as_u64().expect("event.duration in ns");
            assert!(
                (ns as f64 / 1e3 - secs * 1e6).abs() < 1.0,
                "{secs} s vs {ns} ns"
            );
            let sum = |a: &str, b: &str| e[a].as_u64().unwrap_or(0) + e[b].as_u64().unwrap_or(0);
            assert_eq!(
                e["network.bytes"].as_u64(),
                Some(sum("source.bytes", "destination.bytes"))
            );
        }
    }
    for must in [
        "@timestamp",
        "source.ip",
        "destination.port",
        "network.transport",
        "network.community_id",
        "event.duration",
        "tls.client.server_name",
        "network.application",
    ] {
        assert!(seen.contains(must), "{must} never written");
    }
}
