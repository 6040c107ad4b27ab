//! Tracker tests: packets as `PacketMeta` plus payload, no frames needed.

use super::*;
use crate::capture::Timestamp;
use crate::classify::AppSource;
use crate::decode::{tcp_flags, Addr, PacketMeta, Transport, MAX_VLANS};
use crate::export::record::{EndReason, FlowRecord, Record as Event};
use crate::proto::tls::tests::{big_hello, records};
use std::net::Ipv4Addr;
use std::sync::Arc;

const C: [u8; 4] = [10, 1, 0, 5];
const S: [u8; 4] = [192, 0, 2, 10];

struct Pkt {
    m: PacketMeta,
    payload: Vec<u8>,
}

fn pkt(ts_ms: u64, from_client: bool, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Pkt {
    let (src, dst, sport, dport) = if from_client {
        (C, S, 50_000, 443)
    } else {
        (S, C, 443, 50_000)
    };
    Pkt {
        m: PacketMeta {
            ts: Timestamp(ts_ms * 1_000_000),
            wire_len: 54 + payload.len() as u32,
            src: Addr::from(Ipv4Addr::from(src)),
            dst: Addr::from(Ipv4Addr::from(dst)),
            sport,
            dport,
            transport: Transport::Tcp,
            vlans: [0; MAX_VLANS],
            nvlan: 0,
            segment: crate::decode::Segment::NONE,
            flags,
            seq,
            ack,
            payload_off: 0,
            payload_len: payload.len() as u32,
            wire: crate::decode::WireMarks::default(),
        },
        payload: payload.to_vec(),
    }
}

const SYN: u8 = tcp_flags::SYN;
const SA: u8 = tcp_flags::SYN | tcp_flags::ACK;
const A: u8 = tcp_flags::ACK;
const PA: u8 = tcp_flags::PSH | tcp_flags::ACK;
const FA: u8 = tcp_flags::FIN | tcp_flags::ACK;

fn tracker(max_flows: usize) -> (FlowTracker, FlowHasher) {
    let cfg = FlowConfig {
        max_flows,
        ..FlowConfig::default()
    };
    let rules = Arc::new(crate::rules::defaults().unwrap());
    (FlowTracker::new(cfg, rules), FlowHasher::default())
}

/// The ended flows among events.
fn ended(events: Vec<Event>) -> Vec<FlowRecord> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Flow(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn run(t: &mut FlowTracker, h: &FlowHasher, pkts: &[Pkt]) -> Vec<FlowRecord> {
    ended(run_events(t, h, pkts))
}

fn run_events(t: &mut FlowTracker, h: &FlowHasher, pkts: &[Pkt]) -> Vec<Event> {
    let mut out = Vec::new();
    for p in pkts {
        let hash = FlowKey::of(&p.m).0.hash_with(h);
        t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
    }
    let end = pkts.iter().map(|p| p.m.ts).max().unwrap_or_default();
    t.finish(end, 3, |v, _| out.extend(v));
    out
}

/// A whole connection: handshake, the hello in the given segment order, a reply, FIN both ways.
fn connection(t0: u64, isn: u32, name: &str, cuts: &[usize], order: &[usize]) -> Vec<Pkt> {
    let hello = records(&big_hello(name), 700);
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied());
    bounds.push(hello.len());
    let segs: Vec<(u32, &[u8])> = bounds
        .windows(2)
        .map(|w| (isn + 1 + w[0] as u32, &hello[w[0]..w[1]]))
        .collect();
    let mut v = vec![
        pkt(t0, true, SYN, isn, 0, b""),
        pkt(t0 + 10, false, SA, 9000, isn + 1, b""),
        pkt(t0 + 20, true, A, isn + 1, 9001, b""),
    ];
    for (k, &o) in order.iter().enumerate() {
        let (seq, data) = segs[o];
        v.push(pkt(t0 + 30 + k as u64, true, PA, seq, 9001, data));
    }
    let end = isn + 1 + hello.len() as u32;
    v.push(pkt(t0 + 60, false, PA, 9001, end, &[0x16; 1200]));
    v.push(pkt(t0 + 70, true, FA, end, 10_201, b""));
    v.push(pkt(t0 + 80, false, FA, 10_201, end + 1, b""));
    v.push(pkt(t0 + 90, true, A, end + 1, 10_202, b""));
    v
}

fn ended_at(events: &[Event], n: usize) -> &FlowRecord {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Flow(r) => Some(r),
            _ => None,
        })
        .nth(n)
        .expect("that many ended flows")
}

fn sni(r: &FlowRecord) -> Option<&str> {
    r.flow.tls.as_ref().and_then(|t| t.sni())
}

fn app(r: &FlowRecord) -> Option<&str> {
    r.flow.app.as_ref().map(|a| &*a.app)
}

#[test]
fn packet_tcp_fast_open_hello_in_the_syn() {
    let (mut t, h) = tracker(10);
    let hello = records(&big_hello("g.whatsapp.net"), 16_000);
    let out = run(&mut t, &h, &[pkt(0, true, SYN, 500, 0, &hello)]);
    assert_eq!(sni(&out[0]), Some("g.whatsapp.net"));
}

#[test]
fn packet_hole_at_the_start_gives_up_once_past_the_cap() {
    let (mut t, h) = tracker(10);
    let mut pkts = vec![pkt(0, true, SYN, 0, 0, b"")];
    // Byte 1 never arrives; the client goes on sending.
    for k in 0..20u32 {
        pkts.push(pkt(
            1 + u64::from(k),
            true,
            PA,
            2 + k * 1000,
            0,
            &[0x41; 1000],
        ));
    }
    let out = run(&mut t, &h, &pkts);
    assert_eq!(t.stats.hello_gave_up, 1);
    assert!(out[0].flow.tls.is_none());
}

/// Flows that each hold a 16 KiB buffer with one byte at its end (a hole that never fills) stay
/// within the memcap: the oldest buffers go, counted, and their flows are still tracked.
// See: #14
#[test]
fn issue_14_hole_holding_flows_stay_within_the_reassembly_memcap() {
    let cfg = FlowConfig {
        max_flows: 10_000,
        reassembly_memcap: 1 << 20,
        ..FlowConfig::default()
    };
    let mut t = FlowTracker::new(cfg, Arc::new(crate::rules::defaults().unwrap()));
    let h = FlowHasher::default();
    let mut out = Vec::new();
    let mut peak = 0;
    for k in 0..1000u32 {
        let mut syn = pkt(u64::from(k), true, SYN, 7, 0, b"");
        let mut data = pkt(u64::from(k), true, PA, 8 + 16_383, 1, b"x");
        for p in [&mut syn, &mut data] {
            p.m.sport = 1024 + k as u16;
        }
        for p in [&syn, &data] {
            let hash = FlowKey::of(&p.m).0.hash_with(&h);
            t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
        }
        peak = peak.max(t.reassembly_bytes());
    }
    assert!(peak <= 1 << 20, "peak {peak}");
    assert_eq!(t.active(), 1000);
    let dropped = t.stats.anomalies[crate::export::record::Anomaly::ReassemblyMemcap.index()];
    // 18 KiB a flow: 56 fit in 1 MiB, every later one pushes an older one out.
    assert!(dropped >= 900, "dropped {dropped}");
    // A hello that completes at once still gets read under the same pressure.
    let got = run(
        &mut t,
        &h,
        &connection(5_000, 99, "web.whatsapp.com", &[], &[0]),
    );
    assert!(got.iter().any(|r| sni(r) == Some("web.whatsapp.com")));
    drop(t);
}

#[test]
fn finish_ends_flows_past_their_timeout_as_idle() {
    let (mut t, h) = tracker(10);
    let mut out = Vec::new();
    let p = pkt(0, true, PA, 1, 1, b"x");
    let hash = FlowKey::of(&p.m).0.hash_with(&h);
    t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
    t.finish(Timestamp(301 * SEC), 8, |v, _| out.extend(v));
    assert_eq!(ended_at(&out, 0).reason, EndReason::Idle);
    let p = pkt(0, true, PA, 1, 1, b"x");
    t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
    t.finish(Timestamp(299 * SEC), 8, |v, _| out.extend(v));
    assert_eq!(ended_at(&out, 1).reason, EndReason::Eof);
}

#[test]
fn flow_size_stays_small() {
    // The per-flow budget is 256 bytes; buffers are boxed and freed after classification. (The
    // key's tunnel segment took it from 216 to 224; the DNS question kept as a fact, to 232; the
    // server certificate's name, to 240; a UDP flow's STUN and ChannelData counts, to 256, the
    // budget; the TCP facts that tell decoys apart and the boxed evasion facts took it to 280, and
    // the DNS question and certificate name sharing one thin box back to 264: 8 bytes over. The
    // padding of the two DirStats, 7 bytes each, is where the rest can be won.)
    assert!(
        std::mem::size_of::<Flow>() <= 264,
        "{}",
        std::mem::size_of::<Flow>()
    );
}

#[test]
fn packet_hello_split_out_of_order_with_retransmission() {
    let (mut t, h) = tracker(100);
    // Segments 2, 0, 0 again (retransmission), 1.
    let pkts = connection(0, 1000, "mmg.whatsapp.net", &[600, 1200], &[2, 0, 0, 1]);
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(sni(r), Some("mmg.whatsapp.net"));
    assert_eq!(app(r), Some("whatsapp"));
    assert_eq!(r.reason, EndReason::Fin);
    assert_eq!(r.flow.client.1, 50_000);
    assert_eq!(r.flow.to_server.packets, 8);
    assert_eq!(r.flow.to_client.packets, 3);
    assert!(r.flow.syn_seen);
    assert_eq!(t.stats.hellos, 1);
    assert_eq!(t.stats.overlap_conflicts(), 0);
}

#[test]
fn packet_new_connection_reusing_finished_five_tuple_is_a_new_flow() {
    let (mut t, h) = tracker(100);
    let mut pkts = connection(0, 1000, "zoom.us", &[], &[0]);
    // Same ports again, one second later (within the closing grace), a different name.
    pkts.extend(connection(
        1000,
        777_000,
        "chat.signal.org",
        &[300],
        &[0, 1],
    ));
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 2);
    assert_eq!(sni(&out[0]), Some("zoom.us"));
    assert_eq!(out[0].reason, EndReason::Fin);
    assert_eq!(sni(&out[1]), Some("chat.signal.org"));
    assert_eq!(app(&out[1]), Some("signal"));
    assert_eq!(
        out[0].flow.to_server.packets + out[1].flow.to_server.packets,
        11
    );
}

#[test]
fn packet_new_syn_on_open_connection_ends_it_as_reused() {
    let (mut t, h) = tracker(100);
    let mut pkts = connection(0, 1000, "zoom.us", &[], &[0]);
    pkts.truncate(5); // no FIN
    pkts.push(pkt(100, true, SYN, 55_555, 0, b""));
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].reason, EndReason::Reused);
    assert_eq!(out[1].reason, EndReason::Eof);
    assert_eq!(out[1].flow.to_server.packets, 1);
}

#[test]
fn packet_retransmitted_syn_is_not_a_new_connection() {
    let (mut t, h) = tracker(100);
    let pkts = [
        pkt(0, true, SYN, 5, 0, b""),
        pkt(1000, true, SYN, 5, 0, b""),
        pkt(1010, false, SA, 9, 6, b""),
    ];
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flow.to_server.packets, 2);
}

#[test]
fn packet_mid_flow_start_takes_the_low_port_as_server() {
    let (mut t, h) = tracker(100);
    // The capture starts with the server's data; no SYN, no hello.
    let pkts = [
        pkt(0, false, PA, 9000, 1000, &[0x17; 300]),
        pkt(1, true, A, 1000, 9300, b""),
    ];
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 1);
    let f = &out[0].flow;
    assert_eq!(f.client.1, 50_000);
    assert_eq!(f.server.1, 443);
    assert_eq!(f.to_client.payload, 300);
    assert!(f.tls.is_none() && !f.syn_seen);
}

#[test]
fn packet_one_direction_only_still_finds_the_hello() {
    let (mut t, h) = tracker(100);
    let pkts: Vec<Pkt> = connection(0, 42, "discord.com", &[500], &[0, 1])
        .into_iter()
        .filter(|p| p.m.sport == 50_000)
        .collect();
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 1);
    assert_eq!(app(&out[0]), Some("discord"));
    assert_eq!(out[0].flow.to_client.packets, 0);
}

/// A UDP datagram between the voice client C:56271 and the server S:50004.
fn voice(ts_ms: u64, from_client: bool, payload: &[u8]) -> Pkt {
    let mut p = pkt(ts_ms, from_client, 0, 0, 0, payload);
    p.m.transport = Transport::Udp;
    p.m.flags = 0;
    (p.m.sport, p.m.dport) = if from_client {
        (56_271, 50_004)
    } else {
        (50_004, 56_271)
    };
    p.m.wire_len = 42 + payload.len() as u32;
    p
}

/// Discord's IP discovery response (type 2, length 70: 74 bytes).
fn discovery_response() -> Vec<u8> {
    let mut d = vec![0, 2, 0, 0x46, 0, 0, 0xac, 0xe3];
    d.extend(b"84.59.132.10");
    d.resize(72, 0);
    d.extend(56_271u16.to_be_bytes());
    d
}

#[test]
fn packet_server_side_signature_turns_a_guessed_flow_around() {
    // A span port that hears the server only: neither port is well known, so the first sender
    // is taken for the client, until the server's IP discovery response says otherwise.
    let (mut t, h) = tracker(100);
    let pkts = [
        voice(0, false, &discovery_response()),
        voice(40, false, &[0x90; 281]),
    ];
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 1);
    let f = &out[0].flow;
    assert_eq!(app(&out[0]), Some("discord"));
    assert_eq!(f.app.as_ref().unwrap().source, AppSource::Signature);
    assert_eq!((f.client.1, f.server.1), (56_271, 50_004), "turned around");
    assert_eq!((f.to_server.packets, f.to_client.packets), (0, 2));

    // Once both sides were heard, the orientation stands: the response, sent by what was taken
    // for the server, still decides, and nothing turns.
    let (mut t, h) = tracker(100);
    let pkts = [
        voice(0, true, &[0x90; 100]),
        voice(10, false, &discovery_response()),
    ];
    let out = run(&mut t, &h, &pkts);
    assert_eq!(app(&out[0]), Some("discord"));
    assert_eq!(out[0].flow.client.1, 56_271);

    // The request alone from the server's side is not the server's signature: no app.
    let mut req = discovery_response();
    req[1] = 1;
    let (mut t, h) = tracker(100);
    let out = run(&mut t, &h, &[voice(0, false, &req)]);
    assert_eq!(
        app(&out[0]),
        Some("discord"),
        "the client's request, turned"
    );
    assert_eq!(out[0].flow.client.1, 50_004, "its sender is the client");
}

#[test]
fn packet_keepalive_from_either_side_names_the_flow() {
    let ping = [0x13, 0x37, 0xca, 0xfe, 0x0e, 0, 0, 0];
    for from_client in [true, false] {
        let (mut t, h) = tracker(100);
        let out = run(&mut t, &h, &[voice(0, from_client, &ping)]);
        assert_eq!(app(&out[0]), Some("discord"), "from client: {from_client}");
        // Either side's: it says nothing of the sides, and the first sender stays the client.
        let first = if from_client { 56_271 } else { 50_004 };
        assert_eq!(out[0].flow.client.1, first, "no turn");
    }
    // Another size is not it.
    let (mut t, h) = tracker(100);
    let out = run(
        &mut t,
        &h,
        &[voice(0, true, &[0x13, 0x37, 0xca, 0xfe, 0, 0])],
    );
    assert_eq!(app(&out[0]), None);
}

#[test]
fn packet_idle_timeout_splits_flows_in_packet_time() {
    let (mut t, h) = tracker(100);
    let pkts = [
        pkt(0, true, PA, 1, 1, b"x"),
        pkt(301_000, true, PA, 2, 1, b"y"),
    ];
    let out = run(&mut t, &h, &pkts);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].reason, EndReason::Idle);
}

#[test]
fn advance_expires_quiet_flows_without_new_packets_for_them() {
    let (mut t, h) = tracker(100);
    let mut out = Vec::new();
    let p = pkt(0, true, SYN, 1, 0, b"");
    let hash = FlowKey::of(&p.m).0.hash_with(&h);
    t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
    t.advance(Timestamp(299 * SEC), &mut out);
    assert!(out.is_empty());
    t.advance(Timestamp(302 * SEC), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(ended_at(&out, 0).reason, EndReason::Idle);
    assert_eq!(t.active(), 0);
}

#[test]
fn packet_full_table_evicts_least_recently_seen() {
    let (mut t, h) = tracker(2);
    let mut pkts = Vec::new();
    for (k, port) in [1000u16, 1001, 1000, 1002].iter().enumerate() {
        let mut p = pkt(k as u64, true, SYN, 1, 0, b"");
        p.m.sport = *port;
        pkts.push(p);
    }
    let out = run(&mut t, &h, &pkts);
    assert_eq!(t.stats.evicted, 1);
    let evicted: Vec<u16> = out
        .iter()
        .filter(|r| r.reason == EndReason::Evicted)
        .map(|r| r.flow.client.1)
        .collect();
    assert_eq!(evicted, vec![1001]);
    assert_eq!(out.len(), 3);
}

#[test]
fn packet_rst_ends_after_grace_with_reason_rst() {
    let (mut t, h) = tracker(100);
    let pkts = [
        pkt(0, true, SYN, 1, 0, b""),
        pkt(1, false, tcp_flags::RST | tcp_flags::ACK, 0, 2, b""),
        // Another flow's packet 6 s later moves time past the grace.
        Pkt {
            m: PacketMeta {
                sport: 40_000,
                ..pkt(6_100, true, SYN, 7, 0, b"").m
            },
            payload: vec![],
        },
    ];
    let mut out = Vec::new();
    for p in &pkts {
        let hash = FlowKey::of(&p.m).0.hash_with(&h);
        t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(ended_at(&out, 0).reason, EndReason::Rst);
}

#[test]
fn packet_conflicting_overlap_keeps_first_bytes() {
    let (mut t, h) = tracker(100);
    let hello = records(&big_hello("web.telegram.org"), 16_000);
    let mut forged = hello.clone();
    for b in &mut forged[100..200] {
        *b ^= 0xff;
    }
    let pkts = [
        pkt(0, true, SYN, 10, 0, b""),
        pkt(1, true, PA, 11, 0, &hello[..300]),
        pkt(2, true, PA, 11, 0, &forged[..300]),
        pkt(3, true, PA, 311, 0, &hello[300..]),
    ];
    let out = run(&mut t, &h, &pkts);
    assert_eq!(sni(&out[0]), Some("web.telegram.org"));
    assert_eq!(t.stats.overlap_conflicts(), 1);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any segmentation and delivery order of a ClientHello (retransmissions included)
        /// yields the same server name.
        #[test]
        fn any_segmentation_and_order_yields_the_same_sni(
            cuts in proptest::collection::btree_set(1usize..1900, 0..12),
            order_seed in any::<u64>(),
            dup in any::<bool>(),
        ) {
            let hello_len = records(&big_hello("cdn.signal.org"), 700).len();
            let cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < hello_len).collect();
            let n = cuts.len() + 1;
            let mut order: Vec<usize> = (0..n).collect();
            let mut x = order_seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            if dup {
                order.push(order[0]);
            }
            let (mut t, h) = tracker(10);
            let out = run(&mut t, &h, &connection(0, 123_456, "cdn.signal.org", &cuts, &order));
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(sni(&out[0]), Some("cdn.signal.org"));
            prop_assert_eq!(app(&out[0]), Some("signal"));
        }
    }
}

/// A flow waiting for the server's reply to a fixed-size handshake (Threema's 48 bytes out, 80
/// back on 443 in the default rules) is decided by the reply; a rule reload in between voids the
/// wait (the signature's index is the old rules'), and the flow is left to its address.
#[test]
fn packet_reply_size_decides_unless_rules_were_reloaded() {
    let handshake = |t: &mut FlowTracker, h: &FlowHasher, reload: bool| {
        let mut ev = Vec::new();
        let mut feed = |t: &mut FlowTracker, p: Pkt| {
            let hash = FlowKey::of(&p.m).0.hash_with(h);
            t.packet(&p.m, hash, &p.payload, p.m.ts, &mut ev);
        };
        feed(t, pkt(0, true, SYN, 1000, 0, &[]));
        feed(t, pkt(1, false, SA, 5000, 1001, &[]));
        feed(t, pkt(2, true, PA, 1001, 5001, &[0x5a; 48]));
        if reload {
            t.set_rules(Arc::new(crate::rules::defaults().unwrap()));
        }
        feed(t, pkt(3, false, PA, 5001, 1049, &[0xa5; 80]));
        t.finish(Timestamp(10_000_000_000), 64, |v, _| ev.extend(v));
        ended(ev)
    };
    let (mut t, h) = tracker(16);
    let r = handshake(&mut t, &h, false);
    assert_eq!(r.len(), 1);
    assert_eq!(app(&r[0]), Some("threema"));
    let src = r[0].flow.app.as_ref().map(|c| c.source);
    assert_eq!(src, Some(AppSource::Signature));
    let (mut t, h) = tracker(16);
    let r = handshake(&mut t, &h, true);
    assert_eq!(r.len(), 1);
    assert_eq!(app(&r[0]), None, "192.0.2.10 is in no list");
}

/// What a fixed-size handshake must not be taken from: a flow picked up mid-way (no SYN), a
/// server that spoke first, and a client that goes on without a reply (a one-way capture).
#[test]
fn packet_reply_size_needs_the_start_of_both_directions() {
    let feed = |t: &mut FlowTracker, h: &FlowHasher, pkts: Vec<Pkt>| {
        let mut ev = Vec::new();
        for p in pkts {
            let hash = FlowKey::of(&p.m).0.hash_with(h);
            t.packet(&p.m, hash, &p.payload, p.m.ts, &mut ev);
        }
        ev
    };
    let finish = |t: &mut FlowTracker, mut ev: Vec<Event>| {
        t.finish(Timestamp(10_000_000_000), 64, |v, _| ev.extend(v));
        ended(ev)
    };
    // Mid-flow: no SYN, 48 bytes out, 80 back.
    let (mut t, h) = tracker(16);
    let ev = feed(
        &mut t,
        &h,
        vec![
            pkt(0, true, PA, 1001, 5001, &[0x5a; 48]),
            pkt(1, false, PA, 5001, 1049, &[0xa5; 80]),
        ],
    );
    assert_eq!(app(&finish(&mut t, ev)[0]), None, "mid-flow");
    // The server spoke first.
    let (mut t, h) = tracker(16);
    let ev = feed(
        &mut t,
        &h,
        vec![
            pkt(0, true, SYN, 1000, 0, &[]),
            pkt(1, false, SA, 5000, 1001, &[]),
            pkt(2, false, PA, 5001, 1001, &[0x11; 30]),
            pkt(3, true, PA, 1001, 5031, &[0x5a; 48]),
            pkt(4, false, PA, 5031, 1049, &[0xa5; 80]),
        ],
    );
    assert_eq!(app(&finish(&mut t, ev)[0]), None, "server first");
    // One way, to an address in an app's list (Telegram's: Threema has none of its own): the
    // client's next data ends the wait (a retransmitted first segment does not), and the flow
    // goes on as any other, decided by the address at its end.
    let listed: [u8; 4] = [91, 108, 4, 10];
    let to_threema = |mut p: Pkt| {
        p.m.dst = Addr::from(Ipv4Addr::from(listed));
        p
    };
    let waiting = |t: &FlowTracker| t.table.get(0).map(|f| f.reply.is_some());
    let (mut t, h) = tracker(16);
    let ev = feed(
        &mut t,
        &h,
        vec![
            to_threema(pkt(0, true, SYN, 1000, 0, &[])),
            to_threema(pkt(2, true, PA, 1001, 0, &[0x5a; 48])),
            to_threema(pkt(3, true, PA, 1001, 0, &[0x5a; 48])),
        ],
    );
    assert_eq!(
        waiting(&t),
        Some(true),
        "a retransmitted first segment still waits"
    );
    let ev2 = feed(
        &mut t,
        &h,
        vec![to_threema(pkt(4, true, PA, 1049, 0, &[0x77; 200]))],
    );
    assert_eq!(waiting(&t), Some(false), "more client data ends the wait");
    let r = finish(&mut t, ev.into_iter().chain(ev2).collect());
    assert_eq!(app(&r[0]), Some("telegram"));
    assert_eq!(
        r[0].flow.app.as_ref().map(|c| c.source),
        Some(AppSource::Ip)
    );
}

#[test]
fn finish_emits_in_release_order_with_marks_that_cover_each_batch() {
    use crate::export::record::Mark;
    let (mut t, h) = tracker(1000);
    let mut out = Vec::new();
    // Flows of several ages, so some end as idle at their own times and the rest at the end.
    for k in 0..60u32 {
        let ts = u64::from(k % 7) * 10_000 + u64::from(k);
        let mut p = pkt(ts, true, SYN, 1000 + k, 0, b"");
        p.m.sport = 40_000 + k as u16;
        let hash = FlowKey::of(&p.m).0.hash_with(&h);
        t.packet(&p.m, hash, &p.payload, p.m.ts, &mut out);
    }
    out.clear();
    let mut batches = Vec::new();
    // At 330 s the flows last seen before 30 s are past their 300 s timeout: two end times.
    t.finish(Timestamp(330 * SEC), 4, |v, m| batches.push((v, m)));
    assert_eq!(t.active(), 0);
    let (mut last, mut flows) = (Mark::default(), 0);
    for (records, mark) in &batches {
        assert!(
            records.len() <= 5,
            "a batch is at most its size plus the counts"
        );
        for r in records {
            let Some(m) = r.mark() else { continue };
            assert!(m >= last, "{m:?} after {last:?}");
            assert!(m < *mark, "{m:?} not covered by its batch's mark {mark:?}");
            last = m;
            flows += usize::from(matches!(r, Event::Flow(_)));
        }
    }
    assert_eq!(flows, 60);
    let ends: std::collections::BTreeSet<_> = batches
        .iter()
        .flat_map(|b| &b.0)
        .filter_map(|r| r.mark().map(|m| m.at))
        .collect();
    assert!(ends.len() > 2, "flows ended at several times: {ends:?}");
    assert_eq!(batches.last().map(|b| b.1), Some(Mark::END));
}

/// Evasion tools' decoys, each made to be dropped by the server; see: #14.
mod decoys {
    use super::*;
    use crate::decode::{ones_sum, tcp_opts};
    use crate::export::record::Anomaly;

    fn fold(mut s: u32) -> u32 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s
    }

    /// `p` with a verifiable checksum, good or bad, and a TTL.
    fn wire(mut p: Pkt, good: bool, ttl: u8) -> Pkt {
        p.m.wire.sum_known = true;
        p.m.wire.ttl = ttl;
        let s = !fold(ones_sum(0, &p.payload)) & 0xffff;
        p.m.wire.sum = if good { s } else { s ^ 0x0101 };
        p
    }

    fn ok(p: Pkt) -> Pkt {
        wire(p, true, 64)
    }

    fn evasion(r: &FlowRecord) -> (Vec<&str>, Vec<&'static str>) {
        let e = r.flow.evasion.as_deref();
        (
            e.map(|e| e.candidates.iter().map(|c| &**c).collect())
                .unwrap_or_default(),
            e.map(|e| e.kinds().map(|k| k.as_str()).collect())
                .unwrap_or_default(),
        )
    }

    /// A handshake, then `decoy` and the real hello at the same sequence number, then a reply.
    fn decoyed(decoy: impl Fn(Pkt) -> Pkt) -> (FlowRecord, FlowTracker) {
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let fake = records(&big_hello("www.example.org"), 16_000);
        let pkts = [
            ok(pkt(0, true, SYN, 100, 0, b"")),
            ok(pkt(10, false, SA, 900, 101, b"")),
            ok(pkt(20, true, A, 101, 901, b"")),
            decoy(pkt(21, true, PA, 101, 901, &fake)),
            ok(pkt(22, true, PA, 101, 901, &real)),
            ok(pkt(40, false, PA, 901, 101 + real.len() as u32, b"ok")),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_eq!(out.len(), 1);
        (out.into_iter().next().unwrap(), t)
    }

    fn assert_real_name_and_decoy_kept(r: &FlowRecord) {
        assert_eq!(sni(r), Some("web.whatsapp.com"));
        assert_eq!(app(r), Some("whatsapp"));
        let (names, kinds) = evasion(r);
        assert_eq!(names, ["www.example.org", "web.whatsapp.com"]);
        assert!(
            kinds.contains(&"evasion") && kinds.contains(&"decoy_hello"),
            "{kinds:?}"
        );
    }

    #[test]
    fn packet_decoy_with_a_bad_checksum_is_not_read() {
        let (r, t) = decoyed(|p| wire(p, false, 64));
        assert_real_name_and_decoy_kept(&r);
        assert_eq!(t.stats.anomalies[Anomaly::Evasion.index()], 1);
    }

    #[test]
    fn packet_bad_checksums_on_every_packet_are_offload_not_decoys() {
        // The sensor's own NIC fills the checksums in later: every packet of the side is bad.
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let bad = |p| wire(p, false, 64);
        let pkts = [
            bad(pkt(0, true, SYN, 100, 0, b"")),
            bad(pkt(20, true, A, 101, 901, b"")),
            bad(pkt(22, true, PA, 101, 901, &real)),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_eq!(sni(&out[0]), Some("web.whatsapp.com"));
        assert!(out[0].flow.evasion.is_none());
    }

    #[test]
    fn packet_decoy_with_a_short_ttl_is_not_read() {
        let (r, _) = decoyed(|p| wire(p, true, 3));
        assert_real_name_and_decoy_kept(&r);
    }

    #[test]
    fn packet_decoy_without_ack_is_not_read() {
        let (r, _) = decoyed(|mut p| {
            p.m.flags = tcp_flags::PSH;
            ok(p)
        });
        assert_real_name_and_decoy_kept(&r);
    }

    #[test]
    fn packet_decoy_with_an_md5_option_never_negotiated_is_not_read() {
        let (r, _) = decoyed(|mut p| {
            p.m.wire.opts = tcp_opts::MD5;
            ok(p)
        });
        assert_real_name_and_decoy_kept(&r);
    }

    #[test]
    fn packet_decoy_with_an_old_timestamp_is_not_read() {
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let fake = records(&big_hello("www.example.org"), 16_000);
        let ts = |mut p: Pkt, v: u32| {
            p.m.wire.opts = tcp_opts::TS;
            p.m.wire.tsval = v;
            ok(p)
        };
        let pkts = [
            ts(pkt(0, true, SYN, 100, 0, b""), 5_000_000),
            ts(pkt(20, true, A, 101, 901, b""), 5_000_010),
            ts(pkt(21, true, PA, 101, 901, &fake), 4_400_000),
            ts(pkt(22, true, PA, 101, 901, &real), 5_000_011),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_real_name_and_decoy_kept(&out[0]);
    }

    #[test]
    fn packet_syn_data_the_syn_ack_does_not_take_is_a_decoy() {
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let fake = records(&big_hello("www.example.org"), 16_000);
        let pkts = [
            ok(pkt(0, true, SYN, 100, 0, &fake)),
            ok(pkt(10, false, SA, 900, 101, b"")),
            ok(pkt(20, true, A, 101, 901, b"")),
            ok(pkt(22, true, PA, 101, 901, &real)),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_real_name_and_decoy_kept(&out[0]);
        assert_eq!(t.reassembly_bytes(), 0);
    }

    #[test]
    fn packet_syn_data_the_syn_ack_takes_is_read() {
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let end = 101 + real.len() as u32;
        let pkts = [
            ok(pkt(0, true, SYN, 100, 0, &real)),
            ok(pkt(10, false, SA, 900, end, b"")),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_eq!(sni(&out[0]), Some("web.whatsapp.com"));
        assert!(out[0].flow.evasion.is_none());
    }

    #[test]
    fn packet_urgent_byte_is_not_part_of_the_name() {
        // ByeDPI's --oob: the first part with one more byte the urgent pointer points at.
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let cut = 60;
        let mut first = real[..cut].to_vec();
        first.push(b'a');
        let mut oob = ok(pkt(21, true, PA | tcp_flags::URG, 101, 901, &first));
        oob.m.wire.urgent = first.len() as u16;
        let pkts = [
            ok(pkt(0, true, SYN, 100, 0, b"")),
            ok(pkt(20, true, A, 101, 901, b"")),
            oob,
            ok(pkt(22, true, PA, 101 + cut as u32 + 1, 901, &real[cut..])),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_eq!(sni(&out[0]), Some("web.whatsapp.com"));
        assert!(evasion(&out[0]).1.contains(&"evasion"));
    }

    #[test]
    fn packet_forged_rst_with_a_short_ttl_does_not_end_the_flow() {
        let (mut t, h) = tracker(10);
        let real = records(&big_hello("web.whatsapp.com"), 16_000);
        let pkts = [
            ok(pkt(0, true, SYN, 100, 0, b"")),
            ok(pkt(20, true, A, 101, 901, b"")),
            wire(pkt(21, true, tcp_flags::RST | A, 101, 901, b""), true, 2),
            // Long past the closing grace.
            ok(pkt(30_000, true, PA, 101, 901, &real)),
        ];
        let out = run(&mut t, &h, &pkts);
        assert_eq!(out.len(), 1);
        assert_eq!(sni(&out[0]), Some("web.whatsapp.com"));
        assert_ne!(out[0].reason, EndReason::Rst);
    }

    #[test]
    fn packet_decoy_read_first_without_a_marker_still_shows_both_names() {
        // Nothing tells the decoy apart: it is read (the server would read it too), and the
        // real copy's name is kept beside it, with the conflict.
        let (r, _) = decoyed(ok);
        assert_eq!(sni(&r), Some("www.example.org"));
        let (names, kinds) = evasion(&r);
        assert!(names.contains(&"web.whatsapp.com"), "{names:?}");
        assert!(kinds.contains(&"reassembly_conflict"), "{kinds:?}");
        // WhatsApp is flagged in the default rules: the flow is its app, and alerts.
        assert_eq!(app(&r), Some("whatsapp"));
    }

    /// QUIC: decoy Initials (another connection id, another name) and reconnections on one
    /// 5-tuple.
    mod quic {
        use super::*;
        use picket_synth::quic::{crypto_frame, seal_client_initial};
        use picket_synth::{client_hello, ClientHelloSpec};

        const REAL: &str = "web.whatsapp.com";
        const FAKE: &str = "www.example1.org";

        /// A client datagram (checksum good, TTL 64 unless changed).
        fn udp(ts_ms: u64, from_client: bool, payload: &[u8]) -> Pkt {
            let mut p = ok(pkt(ts_ms, from_client, 0, 0, 0, payload));
            p.m.transport = Transport::Udp;
            p
        }

        /// A client Initial for `name` to `dcid` from `scid`.
        fn initial(name: &str, dcid: u8, scid: u8) -> Vec<u8> {
            let hello = client_hello(&ClientHelloSpec::new(name, u64::from(dcid)));
            let mut frames = Vec::new();
            crypto_frame(0, &hello[5..], &mut frames);
            seal_client_initial(1, &[dcid; 8], &[scid; 8], 0, 2, &frames, 1200).unwrap()
        }

        /// The start of a server's Initial to the client's `scid` (only its header is read).
        fn server_initial(scid: u8) -> Vec<u8> {
            let mut p = vec![0xc1, 0, 0, 0, 1, 8];
            p.extend([scid; 8]);
            p.extend([8]);
            p.extend([0x5e; 8]);
            p.resize(1200, 0xa5);
            p
        }

        /// A short-header (1-RTT) packet.
        fn short(dcid: u8) -> Vec<u8> {
            let mut p = vec![0x41];
            p.extend([dcid; 8]);
            p.resize(100, 0x3c);
            p
        }

        fn one(pkts: &[Pkt]) -> (FlowRecord, FlowTracker, Vec<Event>) {
            let (mut t, h) = tracker(10);
            let (flows, events): (Vec<_>, Vec<_>) = run_events(&mut t, &h, pkts)
                .into_iter()
                .partition(|e| matches!(e, Event::Flow(_)));
            let flows = ended(flows);
            assert_eq!(flows.len(), 1, "{flows:?}");
            (flows.into_iter().next().unwrap(), t, events)
        }

        fn assert_real_quic(r: &FlowRecord, events: &[Event]) {
            assert_eq!(sni(r), Some(REAL));
            assert_eq!(app(r), Some("whatsapp"));
            let (names, kinds) = evasion(r);
            assert!(names.contains(&REAL) && names.contains(&FAKE), "{names:?}");
            assert!(
                kinds.contains(&"evasion") && kinds.contains(&"decoy_hello"),
                "{kinds:?}"
            );
            let alerts = events
                .iter()
                .filter(|e| matches!(e, Event::Alert { .. }))
                .count();
            assert_eq!(alerts, 1);
        }

        #[test]
        fn quic_decoy_initial_with_a_bad_checksum_is_not_the_name() {
            let mut fake = udp(0, true, &initial(FAKE, 1, 2));
            fake = wire(fake, false, 64);
            let pkts = [fake, udp(1, true, &initial(REAL, 3, 4))];
            let (r, t, events) = one(&pkts);
            assert_real_quic(&r, &events);
            assert!(t.stats.anomalies[Anomaly::DecoyHello.index()] >= 1);
            assert_eq!(t.stats.anomalies[Anomaly::QuicUndecryptable.index()], 0);
        }

        #[test]
        fn quic_bad_checksums_on_every_datagram_are_offload_not_decoys() {
            // Both Initials bad (the sensor's NIC fills checksums in): nothing tells them
            // apart; the first read stays, both names are shown.
            let bad = |p| wire(p, false, 64);
            let pkts = [
                bad(udp(0, true, &initial(FAKE, 1, 2))),
                bad(udp(1, true, &initial(REAL, 3, 4))),
            ];
            let (r, _, _) = one(&pkts);
            assert_eq!(sni(&r), Some(FAKE));
            let (names, _) = evasion(&r);
            assert_eq!(names, [FAKE, REAL]);
            // The flagged name among them decides, and alerts.
            assert_eq!(app(&r), Some("whatsapp"));
        }

        #[test]
        fn quic_decoy_initial_with_a_short_ttl_is_not_the_name() {
            let fake = wire(udp(0, true, &initial(FAKE, 1, 2)), true, 3);
            let pkts = [fake, udp(1, true, &initial(REAL, 3, 4))];
            let (r, _, events) = one(&pkts);
            assert_real_quic(&r, &events);
        }

        #[test]
        fn quic_the_initial_the_server_answers_is_the_name() {
            // No marker at all: the server's Initial to the real SCID says which it read.
            let pkts = [
                udp(0, true, &initial(FAKE, 1, 2)),
                udp(1, true, &initial(REAL, 3, 4)),
                udp(30, false, &server_initial(4)),
            ];
            let (r, _, events) = one(&pkts);
            assert_real_quic(&r, &events);
            // The decoy's name was decided first, without an alert: the answer decides again.
            let alert_ts = events.iter().find_map(|e| match e {
                Event::Alert { ts, .. } => Some(*ts),
                _ => None,
            });
            assert_eq!(alert_ts, Some(Timestamp(30_000_000)));
        }

        #[test]
        fn quic_decoy_after_the_real_initial_changes_nothing_but_the_candidates() {
            let fake = wire(udp(1, true, &initial(FAKE, 1, 2)), false, 64);
            let pkts = [udp(0, true, &initial(REAL, 3, 4)), fake];
            let (r, _, events) = one(&pkts);
            assert_real_quic(&r, &events);
        }

        #[test]
        fn quic_retransmitted_initial_and_answer_show_no_evasion() {
            let real = initial(REAL, 3, 4);
            let pkts = [
                udp(0, true, &real),
                udp(300, true, &real),
                udp(330, false, &server_initial(4)),
                udp(340, true, &short(0x5e)),
            ];
            let (r, t, _) = one(&pkts);
            assert_eq!(sni(&r), Some(REAL));
            assert!(r.flow.evasion.is_none(), "{:?}", r.flow.evasion);
            assert_eq!(t.stats.anomalies[Anomaly::Evasion.index()], 0);
        }

        #[test]
        fn quic_decoys_past_the_attempts_kept_do_not_keep_the_real_initial_out() {
            let mut pkts: Vec<Pkt> = (1..=6u8)
                .map(|k| {
                    wire(
                        udp(u64::from(k), true, &initial(FAKE, k, k + 100)),
                        false,
                        64,
                    )
                })
                .collect();
            pkts.push(udp(10, true, &initial(REAL, 0x77, 0x78)));
            let (r, _, events) = one(&pkts);
            assert_real_quic(&r, &events);
        }

        #[test]
        fn quic_initial_after_junk_that_ended_the_search_is_read() {
            // Eight datagrams of 20 bytes or more end a UDP flow's search without a name.
            let mut pkts: Vec<Pkt> = (0..8u8)
                .map(|k| udp(u64::from(k), true, &[k; 40]))
                .collect();
            pkts.push(udp(10, true, &initial(REAL, 3, 4)));
            let (r, _, _) = one(&pkts);
            assert_eq!(sni(&r), Some(REAL));
            assert_eq!(app(&r), Some("whatsapp"));
        }

        /// Two QUIC connections with different names, one after the other on one 5-tuple.
        // See: #17
        #[test]
        fn issue_17_a_new_quic_connection_on_a_reused_five_tuple_is_a_new_flow() {
            let mut pkts = vec![
                udp(0, true, &initial(REAL, 3, 4)),
                udp(30, false, &server_initial(4)),
                udp(35, true, &short(0x5e)),
                udp(40, false, &short(4)),
            ];
            // The same socket, a new connection a second later.
            pkts.push(udp(1_000, true, &initial("zoom.us", 5, 6)));
            pkts.push(udp(1_030, false, &server_initial(6)));
            let (mut t, h) = tracker(10);
            let flows = run(&mut t, &h, &pkts);
            assert_eq!(flows.len(), 2, "{flows:?}");
            assert_eq!(flows[0].reason, EndReason::Reused);
            assert_eq!(sni(&flows[0]), Some(REAL));
            assert_eq!(sni(&flows[1]), Some("zoom.us"));
            assert_eq!(flows[0].flow.to_server.packets, 2);
            assert!(flows.iter().all(|f| f.flow.evasion.is_none()));
        }

        #[test]
        fn quic_new_initial_after_a_quiet_unanswered_handshake_is_a_new_flow() {
            let pkts = [
                udp(0, true, &initial(REAL, 3, 4)),
                udp(5_000, true, &initial("zoom.us", 5, 6)),
            ];
            let (mut t, h) = tracker(10);
            let flows = run(&mut t, &h, &pkts);
            assert_eq!(flows.len(), 2, "{flows:?}");
            assert_eq!(sni(&flows[1]), Some("zoom.us"));
        }
    }
}
