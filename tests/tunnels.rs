//! Tunnels and fragments through the real binary: the inner flow of every tunnel kind gets its
//! app from its ClientHello, flows of two VXLAN sites with the same inner addresses stay apart,
//! fragmented hellos are reassembled (overlapping ones dropped), a fragment flood past every cap
//! leaves other flows classified, malformed and too-deep tunnels are counted, and the answers are
//! the same at any worker count. Counts are checked in the summary and in the metrics. The
//! generator's tunnel and fragment captures also go through the decoder alone: every inner flow
//! with its segment and VLANs, every tunnel kind and reassembly outcome counted.

use picket::capture::{LinkType, Timestamp};
use picket::decode::frag::{ReasmEnd, MAX_DATAGRAMS, MAX_DATAGRAM_BYTES, MAX_HELD_BYTES};
use picket::decode::{self, Decoded, Decoder, Segment};
use picket::export::metrics::Metrics;
use picket::pipeline::{self, Hooks};
use picket_synth::tunnel::{encapsulate, nested_ip_in_ip, Encap, Layer};
use picket_synth::{self as synth, Packet, TunnelFlow};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

mod common;
use common::{of, sorted, write_capture};

/// Replays with the real binary, summary on; the events and the summary text.
fn replay(cap: &Path, workers: &str) -> (Vec<Value>, String) {
    common::replay_output(cap, &["--workers", workers])
}

/// Replays at one and two workers, checks that the events are the same, returns them and the
/// summary.
fn replay_both(cap: &Path) -> (Vec<Value>, String) {
    let (one, summary) = replay(cap, "1");
    let (two, _) = replay(cap, "2");
    assert_eq!(sorted(&one), sorted(&two), "--workers 1 and 2 differ");
    (one, summary)
}

/// The metrics text after an in-process replay.
fn metrics(cap: &Path) -> String {
    let m = Metrics::new(1).expect("registry");
    let rules = Arc::new(picket::rules::defaults().expect("embedded rules"));
    m.rules_loaded(&rules);
    let cfg = pipeline::Config {
        workers: 1,
        ..pipeline::Config::default()
    };
    let hooks = Hooks {
        metrics: Some(&m),
        ..Hooks::default()
    };
    pipeline::replay(&[cap.to_path_buf()], &cfg, rules, hooks, |_| {});
    String::from_utf8(m.render()).expect("utf-8")
}

/// One series' value in a metrics text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series}"))
}

/// A summary line's `name count` pairs (e.g. the `tunnels` line).
fn summary_counts(summary: &str, line: &str) -> Vec<(String, u64)> {
    let Some(rest) = summary
        .lines()
        .find(|l| l.split_whitespace().next() == Some(line))
    else {
        return Vec::new();
    };
    rest[line.len()..]
        .split(',')
        .filter_map(|kv| {
            let mut w = kv.split_whitespace();
            let (a, b) = (w.next()?, w.next()?);
            match (a.parse(), b.parse()) {
                (Ok(n), _) => Some((b.to_string(), n)),
                (_, Ok(n)) => Some((a.to_string(), n)),
                _ => None,
            }
        })
        .collect()
}

/// The `flow` events of a manifest flow: its client endpoint and segment.
fn flows_of<'a>(events: &'a [Value], f: &TunnelFlow) -> Vec<&'a Value> {
    let segment = f
        .segment
        .map(|(kind, id)| serde_json::json!({"kind": kind, "id": id}));
    of(events, "flow")
        .into_iter()
        .filter(|e| {
            e["src_ip"] == f.client.ip().to_string()
                && e["src_port"] == f.client.port()
                && e.get("segment") == segment.as_ref()
        })
        .collect()
}

/// Checks each manifest flow: one flow event, with its app (from the SNI) or none.
fn check_manifest(events: &[Value], manifest: &[TunnelFlow]) {
    for f in manifest {
        let flows = flows_of(events, f);
        assert_eq!(flows.len(), 1, "{}: {flows:?}", f.description);
        let e = flows[0];
        assert_eq!(e["dst_ip"], f.server.ip().to_string(), "{}", f.description);
        let vlan: Vec<u16> = e
            .get("vlan")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_u64)
                    .map(|v| v as u16)
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(vlan, f.vlan, "{}", f.description);
        match f.app {
            Some(app) => {
                assert_eq!(e["app"], app, "{}: {e}", f.description);
                assert_eq!(e["app_source"], "sni", "{}", f.description);
                assert_eq!(e["sni"], f.sni, "{}", f.description);
            }
            None => {
                assert!(e.get("app").is_none(), "{}: {e}", f.description);
                assert!(e.get("sni").is_none(), "{}: {e}", f.description);
            }
        }
    }
}

#[test]
fn every_tunnel_kind_classifies_its_inner_flow_and_is_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, manifest) = synth::tunnels();
    let cap = write_capture(dir.path(), "tunnels.pcap", packets);
    let (events, summary) = replay_both(&cap);
    check_manifest(&events, &manifest);
    assert_eq!(of(&events, "flow").len(), manifest.len());
    // The summary and the metrics count every kind, and agree.
    let counted = summary_counts(&summary, "tunnels");
    let m = metrics(&cap);
    for kind in ["gre", "erspan", "vxlan", "ipip", "mpls", "gtpu"] {
        let n = counted
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("{kind} missing from the summary:\n{summary}"));
        assert!(n > 0);
        let series = format!("picket_tunnel_packets_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&m, &series), n as f64, "{kind}");
    }
    // Fragmented outer GRE packets were reassembled.
    assert!(summary_counts(&summary, "fragments")
        .iter()
        .any(|(k, n)| k == "reassembled" && *n > 0));
    assert_eq!(
        metric(
            &m,
            "picket_decode_errors_total{reason=\"malformed_tunnel\"}"
        ),
        0.0
    );
}

#[test]
fn json_summary_counts_tunnels_and_fragments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, _) = synth::tunnels();
    let cap = write_capture(dir.path(), "tunnels.pcap", packets);
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["replay", "--format", "json", "--events"])
        .arg(dir.path().join("ev.jsonl"))
        .arg(&cap)
        .output()
        .expect("picket runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let t = &j["totals"];
    let tunnels = t["tunnels"].as_object().expect("tunnels by kind");
    assert_eq!(tunnels.len(), 6, "every kind, zeros included");
    assert!(
        tunnels.values().all(|n| n.as_u64() > Some(0)),
        "{tunnels:?}"
    );
    assert!(t["fragments"]["reassembled"].as_u64() > Some(0));
    assert_eq!(t["fragments"]["overlap"], 0);
    assert_eq!(t["fragments"]["pending"], 0);
}

#[test]
fn vxlan_sites_with_the_same_inner_5_tuple_stay_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, manifest) = synth::tunnels();
    let cap = write_capture(dir.path(), "tunnels.pcap", packets);
    let (events, _) = replay(&cap, "2");
    let same: Vec<&TunnelFlow> = manifest
        .iter()
        .filter(|f| f.segment.is_some_and(|(k, _)| k == "vxlan") && f.client.port() == 40_030)
        .collect();
    assert_eq!(same.len(), 2);
    assert_eq!(same[0].client, same[1].client);
    assert_eq!(same[0].server, same[1].server);
    let apps: Vec<&Value> = same
        .iter()
        .map(|f| &flows_of(&events, f)[0]["app"])
        .collect();
    assert_eq!(apps, ["whatsapp", "signal"]);
    // Each flow has its own packets: a handshake apiece, not one merged flow.
    for f in same {
        assert_eq!(flows_of(&events, f)[0]["syn_seen"], true);
    }
}

#[test]
fn fragmented_hellos_are_reassembled_and_overlapping_ones_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (packets, manifest) = synth::fragments();
    let cap = write_capture(dir.path(), "fragments.pcap", packets);
    let (events, summary) = replay_both(&cap);
    check_manifest(&events, &manifest);
    assert!(manifest
        .iter()
        .any(|f| f.client.is_ipv6() && f.app.is_some()));
    let frags = summary_counts(&summary, "fragments");
    let count = |k: &str| frags.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
    assert!(count("reassembled") >= 6, "{summary}");
    assert!(count("overlap") >= 2, "{summary}");
    assert!(count("duplicates") >= 1, "{summary}");
    let m = metrics(&cap);
    assert_eq!(
        metric(&m, "picket_ip_reassembly_total{result=\"reassembled\"}"),
        count("reassembled") as f64
    );
    assert_eq!(
        metric(&m, "picket_ip_fragment_duplicates_total"),
        count("duplicates") as f64
    );
    assert_eq!(
        metric(&m, "picket_tunnel_packets_total{kind=\"vxlan\"}"),
        summary_counts(&summary, "tunnels")[0].1 as f64
    );
}

#[test]
fn fragment_flood_holds_the_caps_and_other_flows_are_classified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flood = 3 * MAX_DATAGRAMS;
    let (packets, manifest) = synth::fragment_flood(flood, 2048);
    let cap = write_capture(dir.path(), "flood.pcap", packets);
    let (events, summary) = replay_both(&cap);
    check_manifest(&events, &manifest);
    let m = metrics(&cap);
    let evicted = metric(&m, "picket_ip_reassembly_total{result=\"evicted\"}");
    assert!(
        evicted >= (flood - MAX_DATAGRAMS) as f64,
        "{evicted}\n{summary}"
    );
    assert!(metric(&m, "picket_ip_reassembly_pending") <= MAX_DATAGRAMS as f64);
    assert!(
        metric(&m, "picket_ip_reassembly_bytes") <= (MAX_HELD_BYTES + MAX_DATAGRAM_BYTES) as f64
    );
    assert!(metric(&m, "picket_ip_reassembly_total{result=\"reassembled\"}") >= 1.0);
}

/// A TLS session to WhatsApp from `client`, frames as the conversation builder makes them.
fn session(client: &str, at_s: u64) -> Vec<Packet> {
    let path = synth::Path::new(
        client.parse().expect("addr"),
        "192.0.2.80:443".parse().expect("addr"),
    );
    let mut c = synth::TcpConv::new(path, 1_700_000_000_000_000_000 + at_s * 1_000_000_000, at_s);
    c.handshake();
    c.client_send(&synth::client_hello(&synth::ClientHelloSpec::new(
        "g.whatsapp.net",
        at_s,
    )));
    c.server_send(&[0x17; 800]);
    c.close();
    c.take_packets()
}

#[test]
fn malformed_and_too_deep_tunnels_are_counted_not_fatal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gre = Layer {
        encap: Encap::Gre {
            key: None,
            seq: false,
            checksum: false,
        },
        outer_v6: false,
    };
    let ends = (
        "198.18.0.1".parse().expect("addr"),
        "198.19.0.1".parse().expect("addr"),
    );
    let mut packets = Vec::new();
    let bad = session("10.9.0.1:40001", 0);
    let n = bad.len();
    for (i, p) in bad.into_iter().enumerate() {
        // Too deep: five IP-in-IP layers.
        packets.push(Packet {
            frame: nested_ip_in_ip(&p.frame, 5),
            ..p.clone()
        });
        let mut g = encapsulate(&p.frame, gre, ends, true, i as u32);
        // GRE with the routing bit (RFC 1701), which RFC 2784 receivers discard.
        g[34] |= 0x40;
        packets.push(Packet {
            ts_ns: p.ts_ns + 1,
            frame: g,
        });
        // GRE cut inside its header (the IPv4 total length says so too).
        let mut cut = encapsulate(&p.frame, gre, ends, true, i as u32)[..36].to_vec();
        cut[16..18].copy_from_slice(&22u16.to_be_bytes());
        cut.resize(60, 0);
        packets.push(Packet {
            ts_ns: p.ts_ns + 2,
            frame: cut,
        });
    }
    // A good GRE session alongside.
    for (i, p) in session("10.9.0.2:40002", 1).into_iter().enumerate() {
        packets.push(Packet {
            frame: encapsulate(&p.frame, gre, ends, true, i as u32),
            ..p
        });
    }
    let cap = write_capture(dir.path(), "bad.pcap", packets);
    let (events, summary) = replay_both(&cap);
    let flows = of(&events, "flow");
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0]["src_ip"], "10.9.0.2");
    assert_eq!(flows[0]["app"], "whatsapp");
    let skipped = summary_counts(&summary, "skipped");
    for reason in ["tunnel_too_deep", "malformed_tunnel", "truncated_tunnel"] {
        assert!(
            skipped.iter().any(|(k, v)| k == reason && *v as usize == n),
            "{reason}: {summary}"
        );
    }
    let m = metrics(&cap);
    assert_eq!(
        metric(&m, "picket_decode_errors_total{reason=\"tunnel_too_deep\"}"),
        n as f64
    );
}

/// Decodes every packet with one reassembling decoder, as the reader does: the metas of the
/// flow packets (fragments held for reassembly give none) and the decoder's counters.
fn decoded(packets: &[Packet]) -> (Vec<decode::PacketMeta>, decode::DecodeStats) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for p in packets {
        match d.decode(LinkType::Ethernet, Timestamp(p.ts_ns), 0, &p.frame) {
            Ok(Decoded::Frame(m)) | Ok(Decoded::Reassembled { meta: m, .. }) => out.push(m),
            Err(s) => assert_eq!(s, decode::Skip::Fragment, "{s}"),
        }
    }
    (out, d.stats())
}

#[test]
fn decoder_finds_every_generated_tunnel_flow_with_its_segment() {
    let (packets, manifest) = synth::tunnels();
    let (metas, stats) = decoded(&packets);
    for f in &manifest {
        let seg = match f.segment {
            None => Segment::NONE,
            Some(("vxlan", n)) => Segment::vxlan(n),
            Some(("nvgre", n)) => Segment::nvgre(n),
            Some((_, n)) => Segment::erspan(n as u16),
        };
        let flow: Vec<_> = metas
            .iter()
            .filter(|m| m.src.ip() == f.client.ip() && m.sport == f.client.port())
            .filter(|m| m.segment == seg)
            .collect();
        assert!(flow.len() > 5, "{}: {} packets", f.description, flow.len());
        assert!(flow.iter().all(|m| m.dport == 443));
        let vlans: Vec<u16> = flow[0].vlans[..usize::from(flow[0].nvlan)].to_vec();
        assert_eq!(vlans, f.vlan, "{}", f.description);
    }
    for k in ["gre", "erspan", "vxlan", "ipip", "mpls", "gtpu"] {
        let i = decode::TunnelKind::ALL
            .iter()
            .position(|t| t.as_str() == k)
            .expect("a tunnel kind");
        assert!(stats.tunnels[i] > 0, "{k}");
    }
    assert!(stats.reassembly.count(ReasmEnd::Reassembled) > 0);
}

#[test]
fn decoder_reassembles_generated_fragments_and_holds_the_flood() {
    let (packets, manifest) = synth::fragments();
    let (metas, stats) = decoded(&packets);
    let r = stats.reassembly;
    assert!(r.count(ReasmEnd::Reassembled) >= 6, "{r:?}");
    assert!(r.count(ReasmEnd::Overlap) >= 2, "{r:?}");
    assert!(r.duplicates >= 1);
    assert!(manifest
        .iter()
        .all(|f| metas.iter().any(|m| m.src.ip() == f.client.ip())));
    let (flood, _) = synth::fragment_flood(3000, 2048);
    let (_, stats) = decoded(&flood);
    let r = stats.reassembly;
    assert!(
        r.count(ReasmEnd::Evicted) >= 3000 - MAX_DATAGRAMS as u64,
        "{r:?}"
    );
    assert!(r.pending <= MAX_DATAGRAMS as u64);
    assert!(
        r.count(ReasmEnd::Reassembled) >= 1,
        "the hello after the flood"
    );
}

#[test]
fn decoder_refuses_ip_in_ip_past_its_depth() {
    let (packets, _) = synth::tunnels();
    let deep = nested_ip_in_ip(&packets[0].frame, 5);
    assert_eq!(
        decode::decode(LinkType::Ethernet, Timestamp(0), 0, &deep),
        Err(decode::Skip::TunnelDepth)
    );
}
