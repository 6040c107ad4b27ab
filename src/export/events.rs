//! JSON-lines events: one JSON object per line, each with an `"event"` tag naming its type.
//! (With `--events-format ecs`, the same events under Elastic Common Schema names: see
//! [`crate::export::ecs`].)
//!
//! Fields that are unknown are **absent**, never `null` or an empty string. Addresses are text
//! (`"10.1.0.5"`, `"2001:db8::1"`); times are RFC 3339 in UTC with microseconds. Every event of a
//! flow carries the same `flow_id` (16 hex digits, a hash of the flow's key and first packet
//! time; with a sensor name, prefixed by it and a dash, and a `sensor` field is added).
//!
//! # `alert`
//!
//! The moment a flow is first classified as an app that alerts (verdict `flag`, or named by the
//! policy). At most one per client and app per alert interval.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `event` | `"alert"` | event type |
//! | `timestamp` | string | the event's moment: the packet that decided |
//! | `ts` | string | time of the packet that decided |
//! | `flow_id`, `sensor` | string | as in `flow` |
//! | `transport`, `src_ip`, `src_port`, `dst_ip`, `dst_port`, `vlan`, `segment`, `community_id` | | as in `flow` |
//! | `app`, `app_source`, `rule`, `rule_id`, `app_category`, `verdict`, `sni`, `dns_name`, `dns_query`, `evidence`, `confidence` | | as in `flow` |
//! | `anomalies`, `sni_candidates` | | as in `flow`: with two names, a flagged app among them alerts |
//! | `suppressed` | int | always 0: later alerts of the same client and app within the interval are reported by `alert_suppressed` |
//!
//! # `alert_suppressed`
//!
//! When a suppression interval with suppressed alerts closes.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `event` | `"alert_suppressed"` | event type |
//! | `timestamp` | string | the event's moment: when the interval closed |
//! | `ts`, `since` | string | when the interval closed and opened |
//! | `flow_id` | string | the flow whose alert opened the interval |
//! | `sensor` | string | as in `flow` |
//! | `src_ip`, `app` | string | the client and the app |
//! | `suppressed` | int | alerts not written in the interval |
//!
//! # `flow_update`
//!
//! Every update interval of a long flow's life: the `flow` fields (counters so far) without
//! `end_reason`, plus `ts`, the interval boundary (also its `timestamp`).
//!
//! # `call`
//!
//! A client's flows of one call (STUN/TURN exchanges, ICE checks, relayed and direct media),
//! grouped by the client socket and server addresses they share, written when the call ends:
//! 30 s after its last packet, once no flow of it can still be running (see
//! `picket::export::calls`). A set-up that never carried media is no call.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `event` | `"call"` | event type |
//! | `call_id` | string | the call's id: its first flow's `flow_id` |
//! | `sensor` | string | as in `flow` |
//! | `src_ip` | string | the client |
//! | `app`, `app_source`, `rule`, `verdict` | | the app, and what attributed the call: its first flow with the app's own STUN marks (else its first flow) |
//! | `ts_start`, `ts_end` | string | first and last packet of the call's flows that carried media (the set-up while it rang aside) |
//! | `duration_s` | float | `ts_end` − `ts_start`, in seconds |
//! | `path` | string | `"relayed"` (media through a TURN relay, as ChannelData), `"server"` (media to a server the app's own STUN exchange or UDP signature spoke to: an SFU, a media server), `"direct"` (media to the other party) |
//! | `media_packets_to_server`, `media_packets_to_client` | int | packets of the call's flows that were not STUN messages, per direction |
//! | `media_bytes_to_server`, `media_bytes_to_client` | int | their bytes on the wire |
//! | `flows` | int | flows grouped |
//! | `flow_ids` | array of string | their `flow_id`s (the first 64) |
//!
//! # `call_update`
//!
//! Every `--flow-update` interval of a long call: the `call` fields (counters so far), plus `ts`,
//! the interval boundary.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `event` | `"call_update"` | event type |
//! | `ts` | string | the interval boundary |
//! | `call_id`, `sensor`, `src_ip`, `app`, `app_source`, `rule`, `verdict` | | as in `call` |
//! | `ts_start`, `ts_end`, `duration_s`, `path` | | as in `call`, so far |
//! | `media_packets_to_server`, `media_packets_to_client`, `media_bytes_to_server`, `media_bytes_to_client` | int | as in `call`, so far |
//! | `flows`, `flow_ids` | | as in `call`, so far |
//!
//! # `flow`
//!
//! Written once per flow, when it ends (FIN/RST plus a short grace, idle timeout, eviction, a new
//! connection on the same 5-tuple, or the end of the input).
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `event` | `"flow"` | event type |
//! | `timestamp` | string | the event's moment: the flow's last packet (in `flow_update`, the interval boundary) |
//! | `flow_id`, `sensor` | string | the flow's id; the sensor's name when given |
//! | `ts_start`, `ts_end` | string | first and last packet time |
//! | `duration` | float | seconds from the first packet to the last, to the microsecond |
//! | `transport` | `"tcp"` / `"udp"` | |
//! | `src_ip`, `src_port` | string, int | the client: the side that sent the SYN; lacking one, the side with the port ≥ 1024 when the other is below 1024; else the first sender |
//! | `dst_ip`, `dst_port` | string, int | the server |
//! | `community_id` | string | the flow's Community ID (v1, `1:` and base64 of a SHA-1; seed 0 unless `--community-id-seed`), computed from the innermost decoded addresses and ports as Suricata and Zeek compute it, so their records of the flow join with this one; absent with `--client-addresses truncate` or `hash` (it would let anyone with the events test guesses of the client's address) |
//! | `vlan` | array of int | VLAN ids, outermost first (absent when untagged) |
//! | `segment` | object | the tunnel segment the flow came in, part of its identity: `{"kind": "vxlan", "id": 5001}`; kinds `vxlan` (VNI), `nvgre` (VSID), `erspan` (session id); absent outside such tunnels |
//! | `packets_to_server`, `packets_to_client` | int | packets per direction |
//! | `bytes_to_server`, `bytes_to_client` | int | frame bytes on the wire per direction |
//! | `payload_bytes_to_server`, `payload_bytes_to_client` | int | captured TCP/UDP payload bytes per direction |
//! | `tcp_flags_to_server`, `tcp_flags_to_client` | string | TCP flags seen, as letters from `SAFRPU` (TCP only, absent when no packet that way) |
//! | `syn_seen` | bool | the client's SYN was captured (false: the capture started mid-flow) — TCP only |
//! | `sni` | string | TLS server name from the ClientHello |
//! | `alpn` | array of string | ALPN protocols offered |
//! | `tls_version` | string | highest TLS version offered: `"1.3"`, `"1.2"`, `"1.1"`, `"1.0"`, `"ssl3"`, or `"0x…"`; absent for Google QUIC's own handshake (CHLO), which is not TLS |
//! | `cert_name` | string | with no ClientHello seen (a capture of the server's side only): the name of the server's TLS 1.2 certificate that speaks for it — its common name, or the alternative name of the one app its claimed names agree on |
//! | `user_agent` | string | the client's user agent, where its handshake names it (Google QUIC's CHLO `UAID` tag) |
//! | `ech` | string | `"real"`: an ECH extension with the public name of a known ECH client-facing server (`rules/ech.toml`): `sni` is only the outer name and does not decide `app`; `"grease"`: an ECH extension with any other name, taken for the GREASE placeholder browsers send, `sni` is the real name; `"esni"`: the older ESNI extension, `sni` does not decide; `"none"`. Present whenever a ClientHello was seen |
//! | `sni_trusted` | bool | `sni` names the server the client wants and could decide `app` (false for real ECH, ESNI, or an IP address written as a name); present with `sni` |
//! | `dns_name` | string | with `app_source` `"dns_answer"`: the name whose DNS answer gave the server's address |
//! | `dns_query` | string | a DNS flow: the name it asked for (with `app_source` `"dns_query"`, the name that decided) |
//! | `ja4` | string | JA4 client fingerprint of the ClientHello (FoxIO specification) |
//! | `app` | string | app id from the rules |
//! | `app_source` | string | the signal that decided `app`: `"sni"` (TLS over TCP), `"quic_sni"` (QUIC Initial), `"dns_query"` (a DNS flow asking for the app's name), `"dns_answer"` (the server's address came in a DNS answer for the app's name), `"signature"` (payload bytes), `"stun"` (a STUN/TURN message's marks), `"peer_cache"` (an endpoint revealed by the app's STUN exchange: a call's media), `"call_socket"` (UDP: the flow's client socket was marked by the app's STUN exchange while the flow lived, e.g. a binding to a public STUN server just before it; decided at the flow's end, with no alert of its own), `"ja4"` (a rule's JA4 fingerprint of the app's TLS stack), `"certificate"` (the server's TLS 1.2 certificate names the app's domain; no ClientHello seen), `"ip"` (the app's IP prefix list) |
//! | `rule` | string | `file:line` of the rule that matched |
//! | `rule_id` | string | the stable id of the app's rules (`rule_id` in its rule file, unique across the set), e.g. `"picket:whatsapp"`: unlike `rule`, editing the file does not change it (with `app`) |
//! | `app_category` | string | the app's category from its rule file: `"messaging"`, `"conferencing"`, `"social"`, `"web_visit"` (a visit to an app's web site, such as `whatsapp_site`: not use of the app) or an organisation's own name (with `app`) |
//! | `verdict` | `"flag"` / `"observe"` | the policy's verdict for `app` |
//! | `evidence` | array of object | with `app`: every signal that named an app for the flow, in the precedence order of `picket::classify`, whichever app it named (disagreements are kept): `{"source", "value", "app", "rule"}`, `source` named as `app_source` names it, `value` what it saw (the server name, the JA4, the certificate's name, the DNS question, the address, the name of another flow's DNS answer; absent for a payload signature or a STUN mark); at most 8, one per precedence row |
//! | `confidence` | string | with `app`: `"high"` (the flow's own bytes or server name decided), `"medium"` (a JA4, the server's certificate, a DNS question, a DNS answer or a call's endpoint), `"low"` (an address list); one step lower when `evidence` names another app |
//! | `unattributed` | string | a flow without `app`: why, the first that applies of `"ech"` (real ECH or ESNI hid the name), `"encrypted_dns"` (port 853, or a public DoH/DoT/DoQ resolver of `rules/hidden.toml` by name or address), `"vpn"` (WireGuard, OpenVPN over UDP or TCP, IKE by their packets' shape, or a VPN service's name in `rules/hidden.toml`), `"tor"` (reserved: not told yet), `"quic_unknown"` (a QUIC version whose Initials cannot be opened), `"tls_no_sni"` (a ClientHello without a name), `"unclaimed_name"` (a server name, certificate name or DNS question no rule claims), `"one_way"` (packets one way only), `"no_signal"`; in `flow` only |
//! | `end_reason` | string | `"fin"`, `"rst"`, `"idle"`, `"evicted"`, `"reused"` or `"end_of_input"` |
//! | `anomalies` | array of string | what the flow showed of evasion or damage, as `picket_anomalies_total` kinds (`"evasion"`: a packet its server would drop, `"decoy_hello"`, `"reassembly_conflict"`, `"duplicate_sni"`, …); absent when none |
//! | `sni_candidates` | array of string | every server name the flow carried (decoys, disagreeing copies, two `server_name` extensions, the hello read), in the order seen; absent unless the flow showed evasion |

use crate::capture::Timestamp;
use crate::classify::EvidenceValue;
use crate::decode::{Segment, Transport};
use crate::export::calls::CallView;
use crate::export::community_id::community_id;
use crate::export::ecs;
use crate::export::gate::SuppressedAlerts;
use crate::export::json::{self, Obj};
use crate::export::record::{DirStats, FlowRecord, FlowView};
use crate::proto::tls::{self, TlsSummary};
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

/// The `segment` field: the tunnel segment a flow came in, when it came in one.
fn segment_field(o: &mut Obj<'_>, s: Segment) {
    if let Some(kind) = s.kind() {
        o.obj("segment", |o| {
            o.str("kind", kind);
            o.u64("id", u64::from(s.id()));
        });
    }
}

/// The `vlan` field, when the flow was tagged.
fn vlan_field(o: &mut Obj<'_>, ids: &[u16]) {
    if !ids.is_empty() {
        o.uints("vlan", ids.iter().map(|&v| u64::from(v)));
    }
}

/// TCP flags as letters, in a fixed order, into a small buffer.
fn flag_letters(flags: u8, out: &mut [u8; 6]) -> &str {
    use crate::decode::tcp_flags::*;
    let mut n = 0;
    for (bit, c) in [
        (SYN, b'S'),
        (ACK, b'A'),
        (FIN, b'F'),
        (RST, b'R'),
        (PSH, b'P'),
        (URG, b'U'),
    ] {
        if flags & bit != 0 {
            out[n] = c;
            n += 1;
        }
    }
    // ASCII letters only.
    std::str::from_utf8(&out[..n]).unwrap_or("")
}

/// A `tcp_flags_to_*` field: TCP only, and only when a packet went that way.
fn tcp_flags_field(o: &mut Obj<'_>, k: &str, d: &DirStats, transport: Transport) {
    if transport == Transport::Tcp && d.packets > 0 {
        let mut buf = [0u8; 6];
        o.str(k, flag_letters(d.flags, &mut buf));
    }
}

/// The `ech` field: what the hello's ECH or ESNI extension was taken for.
fn ech_kind(t: &TlsSummary) -> &'static str {
    if t.esni {
        "esni"
    } else if t.ech_outer {
        "real"
    } else if t.ech {
        "grease"
    } else {
        "none"
    }
}

/// A flow id as text: 16 hex digits, prefixed with the sensor name when there is one.
pub fn flow_id_text(sensor: Option<&str>, id: u64) -> String {
    match sensor {
        Some(s) => format!("{s}-{id:016x}"),
        None => format!("{id:016x}"),
    }
}

/// Writes a flow id, escaped, as [`flow_id_text`] gives it.
fn write_flow_id(buf: &mut Vec<u8>, sensor: Option<&str>, id: u64) {
    if let Some(s) = sensor {
        json::escape(buf, s);
        buf.push(b'-');
    }
    hex16(buf, id);
}

/// 16 lower-case hex digits.
fn hex16(buf: &mut Vec<u8>, v: u64) {
    for i in (0..16).rev() {
        buf.push(b"0123456789abcdef"[((v >> (4 * i)) & 0xf) as usize]);
    }
}

/// Where serialized lines go.
struct Lines<W: Write> {
    out: W,
    line: Vec<u8>,
    written: u64,
}

/// How client addresses appear in events, for privacy-restricted deployments.
#[derive(Clone, Debug, Default)]
pub enum ClientAddrs {
    /// As captured.
    #[default]
    Keep,
    /// Network part only: IPv4 to its /24 (`10.1.2.0`), IPv6 to its /48.
    Truncate {
        /// Key of the flow-id transform (random per run): flow ids of the unkeyed form would
        /// let anyone with the events try every address.
        key: Arc<[u8; 32]>,
    },
    /// A keyed hash (HMAC-SHA-256 under the key, first 16 hex digits, prefixed `h:`): the same
    /// client gives the same value under the same key, and the address cannot be recovered
    /// without the key. Flow ids are keyed the same way.
    Hash {
        /// The secret key.
        key: Arc<[u8; 32]>,
    },
}

/// HMAC-SHA-256 of `data` under `key` (HKDF-Extract is exactly that: RFC 5869 §2.2).
fn keyed(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(key), data);
    prk.into()
}

impl ClientAddrs {
    /// A client address as events show it.
    pub fn show(&self, ip: IpAddr) -> String {
        let mut buf = Vec::with_capacity(40);
        self.write(&mut buf, ip);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Writes a client address as events show it (plain text: digits, dots, colons, hex).
    pub fn write(&self, buf: &mut Vec<u8>, ip: IpAddr) {
        match self {
            ClientAddrs::Keep => json::addr(buf, ip),
            ClientAddrs::Truncate { .. } => json::addr(
                buf,
                match ip {
                    IpAddr::V4(v) => {
                        let o = v.octets();
                        IpAddr::from([o[0], o[1], o[2], 0])
                    }
                    IpAddr::V6(v) => {
                        let s = v.segments();
                        IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
                    }
                },
            ),
            ClientAddrs::Hash { key } => {
                let octets = match ip {
                    IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                    IpAddr::V6(v) => v.octets(),
                };
                let h = keyed(key, &octets);
                buf.extend_from_slice(b"h:");
                for &b in &h[..8] {
                    buf.push(b"0123456789abcdef"[usize::from(b >> 4)]);
                    buf.push(b"0123456789abcdef"[usize::from(b & 0xf)]);
                }
            }
        }
    }

    /// A flow id as events show it: keyed in the privacy modes.
    pub(crate) fn flow_id(&self, id: u64) -> u64 {
        match self {
            ClientAddrs::Keep => id,
            ClientAddrs::Truncate { key } | ClientAddrs::Hash { key } => {
                let h = keyed(key, &id.to_be_bytes());
                u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
            }
        }
    }
}

/// How events are written: what every writer of one run shares.
#[derive(Clone, Debug, Default)]
pub struct EventStyle {
    /// The sensor's name, in every event and prefixed to flow ids.
    pub sensor: Option<String>,
    /// How client addresses appear.
    pub clients: ClientAddrs,
    /// The seed of `community_id`.
    pub community_id_seed: u16,
    /// The layout: Picket's names or ECS's.
    pub format: EventFormat,
}

/// The layout of events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventFormat {
    /// Picket's own field names (this module's tables).
    #[default]
    Picket,
    /// Elastic Common Schema names (see [`crate::export::ecs`]).
    Ecs,
}

/// Writes events as JSON lines to any sink, one `write` per event.
pub struct EventWriter<W: Write> {
    lines: Lines<W>,
    sensor: Option<String>,
    clients: ClientAddrs,
    community_id_seed: u16,
    format: EventFormat,
}

impl<W: Write> EventWriter<W> {
    /// A writer into `out` (buffer it yourself if it is a file); `sensor` names the sensor in
    /// every event and prefixes flow ids, so they are unique across a fleet.
    pub fn new(out: W, sensor: Option<String>) -> Self {
        EventWriter {
            lines: Lines {
                out,
                line: Vec::with_capacity(1024),
                written: 0,
            },
            sensor,
            clients: ClientAddrs::Keep,
            community_id_seed: 0,
            format: EventFormat::Picket,
        }
    }

    /// Writes events in `format`'s layout.
    pub fn with_format(mut self, format: EventFormat) -> Self {
        self.format = format;
        self
    }

    fn ecs(&self) -> bool {
        self.format == EventFormat::Ecs
    }

    /// The `event` field and, in the ECS layout, the categorisation fields for it.
    fn event_tag(&self, o: &mut Obj<'_>, event: &str) {
        if self.ecs() {
            o.str("ecs.version", ecs::ECS_VERSION);
            o.str(
                "event.kind",
                if event == "alert" { "alert" } else { "event" },
            );
            o.strs("event.category", ["network"]);
            let ty: &[&str] = match event {
                "flow" => &["connection", "end"],
                "flow_update" | "alert" => &["connection", "info"],
                _ => &["info"],
            };
            o.strs("event.type", ty.iter().copied());
        }
        o.str("event", event);
    }

    /// A writer into `out` in `style`.
    pub fn styled(out: W, style: &EventStyle) -> Self {
        EventWriter::new(out, style.sensor.clone())
            .with_client_addrs(style.clients.clone())
            .with_community_id_seed(style.community_id_seed)
            .with_format(style.format)
    }

    /// Computes `community_id` under `seed` (the Community ID specification's seed; 0 unless
    /// the tools joined with use another).
    pub fn with_community_id_seed(mut self, seed: u16) -> Self {
        self.community_id_seed = seed;
        self
    }

    /// Shows client addresses (and flow ids) as `clients` says.
    pub fn with_client_addrs(mut self, clients: ClientAddrs) -> Self {
        self.clients = clients;
        self
    }

    /// The fields every flow-bound event starts with: `flow_id`, `sensor`.
    fn ids(&self, o: &mut Obj<'_>, id: u64) {
        let (sensor, id) = (self.sensor.as_deref(), self.clients.flow_id(id));
        o.text("flow_id", |b| write_flow_id(b, sensor, id));
        o.opt_str("sensor", sensor);
    }

    /// The endpoint fields: `transport`, the client (as `clients` shows it) and the server,
    /// `vlan`, `segment`.
    fn endpoints(&self, o: &mut Obj<'_>, f: &FlowView) {
        let (client, server) = (f.client, f.server);
        o.str("transport", f.transport.as_str());
        o.text("src_ip", |b| self.clients.write(b, client.0.ip()));
        o.u64("src_port", u64::from(client.1));
        o.ip("dst_ip", server.0.ip());
        o.u64("dst_port", u64::from(server.1));
        if self.ecs() {
            for (k, id) in ["network.vlan.id", "network.inner.vlan.id"]
                .into_iter()
                .zip(f.vlans.ids())
            {
                o.text(k, |b| json::uint(b, u64::from(*id)));
            }
        } else {
            vlan_field(o, f.vlans.ids());
        }
        segment_field(o, f.segment);
        if let ClientAddrs::Keep = self.clients {
            let proto = match f.transport {
                Transport::Tcp => 6,
                Transport::Udp => 17,
            };
            let id = community_id(
                self.community_id_seed,
                client.0.ip(),
                server.0.ip(),
                proto,
                Some((client.1, server.1)),
            );
            o.str("community_id", id.as_str());
        }
    }

    /// The `evidence` and `confidence` fields of a flow with an app.
    fn explain(&self, o: &mut Obj<'_>, f: &FlowView) {
        let Some(x) = f.explain.as_deref() else {
            return;
        };
        if !x.evidence.is_empty() {
            o.objs("evidence", &x.evidence, |o, e| {
                o.str("source", e.source.as_str());
                let tls = f.tls.as_deref();
                match &e.value {
                    EvidenceValue::None => {}
                    EvidenceValue::ServerName => o.opt_str("value", tls.and_then(|t| t.sni())),
                    EvidenceValue::Ja4 => o.opt_str("value", tls.map(|t| t.ja4())),
                    EvidenceValue::DnsQuery => o.opt_str("value", f.dns_query.as_deref()),
                    EvidenceValue::CertName => o.opt_str("value", f.cert_name.as_deref()),
                    EvidenceValue::Server => o.ip("value", f.server.0.ip()),
                    EvidenceValue::Client => {
                        o.text("value", |b| self.clients.write(b, f.client.0.ip()))
                    }
                    EvidenceValue::Name(n) => o.str("value", n),
                }
                o.str("app", &e.app);
                o.str("rule", &e.rule);
            });
        }
        o.str("confidence", x.confidence.as_str());
    }

    /// Writes one `alert` event.
    pub fn alert(&mut self, ts: Timestamp, f: &FlowView) -> io::Result<()> {
        let Some(app) = f.app.as_ref() else {
            return Ok(());
        };
        let buf = std::mem::take(&mut self.lines.line);
        self.line(buf, |w, o| {
            w.event_tag(o, "alert");
            o.ts("timestamp", ts);
            o.ts("ts", ts);
            w.ids(o, f.id);
            w.endpoints(o, f);
            o.str("app", &app.app);
            o.str("app_source", app.source.as_str());
            o.str("rule", &app.rule);
            o.str("rule_id", &app.rule_id);
            o.str("app_category", &app.category);
            o.opt_str("sni", f.tls.as_ref().and_then(|t| t.sni()));
            o.opt_str("dns_name", f.dns_name.as_deref());
            o.opt_str("dns_query", f.dns_query.as_deref());
            o.str("verdict", app.verdict.as_str());
            w.explain(o, f);
            o.u64("suppressed", 0);
            evasion_fields(o, f);
        })
    }

    /// Builds one line in `buf` (the writer's reused buffer, taken out so the fields can read
    /// the writer) and writes it.
    fn line(&mut self, mut buf: Vec<u8>, f: impl FnOnce(&Self, &mut Obj<'_>)) -> io::Result<()> {
        buf.clear();
        let mut o = match self.format {
            EventFormat::Picket => Obj::begin(&mut buf),
            EventFormat::Ecs => Obj::begin_named(&mut buf, ecs::name, ecs::PREFIX),
        };
        f(self, &mut o);
        o.end();
        buf.push(b'\n');
        let r = self.lines.out.write_all(&buf);
        self.lines.line = buf;
        r?;
        self.lines.written += 1;
        Ok(())
    }

    /// Writes one `alert_suppressed` event.
    pub fn suppressed(&mut self, s: &SuppressedAlerts) -> io::Result<()> {
        let buf = std::mem::take(&mut self.lines.line);
        self.line(buf, |w, o| {
            w.event_tag(o, "alert_suppressed");
            o.ts("timestamp", s.ts);
            o.ts("ts", s.ts);
            o.ts("since", s.since);
            w.ids(o, s.alert_flow_id);
            o.text("src_ip", |b| w.clients.write(b, s.client.ip()));
            o.str("app", &s.app);
            o.u64("suppressed", s.suppressed);
        })
    }

    /// Writes one `flow_update` event.
    pub fn update(&mut self, ts: Timestamp, f: &FlowView) -> io::Result<()> {
        self.flow_like("flow_update", Some(ts), f, None)
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.lines.written
    }

    /// Writes one `flow` event.
    pub fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        self.flow_like("flow", None, &rec.flow, Some(rec.reason.as_str()))
    }

    fn flow_like(
        &mut self,
        event: &'static str,
        ts: Option<Timestamp>,
        f: &FlowView,
        end_reason: Option<&'static str>,
    ) -> io::Result<()> {
        let buf = std::mem::take(&mut self.lines.line);
        self.line(buf, |w, o| {
            let tls = f.tls.as_ref();
            let app = f.app.as_ref();
            w.event_tag(o, event);
            o.ts("timestamp", ts.unwrap_or(f.last_ts));
            if let Some(ts) = ts {
                o.ts("ts", ts);
            }
            w.ids(o, f.id);
            o.ts("ts_start", f.first_ts);
            o.ts("ts_end", f.last_ts);
            let duration = f.last_ts.0.saturating_sub(f.first_ts.0);
            if w.ecs() {
                o.u64("duration", duration);
            } else {
                o.secs("duration", duration);
            }
            w.endpoints(o, f);
            o.u64("packets_to_server", f.to_server.packets);
            o.u64("packets_to_client", f.to_client.packets);
            o.u64("bytes_to_server", f.to_server.bytes);
            o.u64("bytes_to_client", f.to_client.bytes);
            o.u64("payload_bytes_to_server", f.to_server.payload);
            o.u64("payload_bytes_to_client", f.to_client.payload);
            if w.ecs() {
                o.u64("network.packets", f.to_server.packets + f.to_client.packets);
                o.u64("network.bytes", f.to_server.bytes + f.to_client.bytes);
            }
            tcp_flags_field(o, "tcp_flags_to_server", &f.to_server, f.transport);
            tcp_flags_field(o, "tcp_flags_to_client", &f.to_client, f.transport);
            if f.transport == Transport::Tcp {
                o.bool("syn_seen", f.syn_seen);
            }
            if let Some(t) = tls {
                o.opt_str("sni", t.sni());
                if t.alpn().next().is_some() {
                    o.strs("alpn", t.alpn());
                }
                if w.ecs() {
                    o.str("tls.version_protocol", "tls");
                }
                match tls::version_name(t.version) {
                    _ if t.version == 0 => {} // Google QUIC's CHLO: no TLS
                    Some(v) => o.str("tls_version", v),
                    None => o.text("tls_version", |b| {
                        b.extend_from_slice(b"0x");
                        for i in (0..4).rev() {
                            b.push(b"0123456789abcdef"[usize::from((t.version >> (4 * i)) & 0xf)]);
                        }
                    }),
                }
                o.str("ech", ech_kind(t));
                if t.sni().is_some() {
                    o.bool("sni_trusted", t.trusted_sni().is_some());
                }
            }
            o.opt_str("user_agent", tls.and_then(|t| t.user_agent.as_deref()));
            o.opt_str("cert_name", f.cert_name.as_deref());
            o.opt_str("dns_name", f.dns_name.as_deref());
            o.opt_str("dns_query", f.dns_query.as_deref());
            if let Some(t) = tls.filter(|t| !t.ja4().is_empty()) {
                o.str("ja4", t.ja4());
            }
            if let Some(a) = app {
                o.str("app", &a.app);
                o.str("app_source", a.source.as_str());
                o.str("rule", &a.rule);
                o.str("rule_id", &a.rule_id);
                o.str("app_category", &a.category);
                o.str("verdict", a.verdict.as_str());
                w.explain(o, f);
            }
            o.opt_str("unattributed", f.unattributed.map(|u| u.as_str()));
            o.opt_str("end_reason", end_reason);
            evasion_fields(o, f);
        })
    }

    /// Writes one `call` event.
    pub fn call(&mut self, c: &CallView) -> io::Result<()> {
        self.call_like("call", None, c)
    }

    /// Writes one `call_update` event.
    pub fn call_update(&mut self, ts: Timestamp, c: &CallView) -> io::Result<()> {
        self.call_like("call_update", Some(ts), c)
    }

    fn call_like(
        &mut self,
        event: &'static str,
        ts: Option<Timestamp>,
        c: &CallView,
    ) -> io::Result<()> {
        let buf = std::mem::take(&mut self.lines.line);
        self.line(buf, |w, o| {
            o.str("event", event);
            if let Some(ts) = ts {
                o.ts("ts", ts);
            }
            let sensor = w.sensor.as_deref();
            o.text("call_id", |b| {
                write_flow_id(b, sensor, w.clients.flow_id(c.id))
            });
            o.opt_str("sensor", sensor);
            o.text("src_ip", |b| w.clients.write(b, c.client));
            o.str("app", &c.class.app);
            o.str("app_source", c.class.source.as_str());
            o.str("rule", &c.class.rule);
            o.str("verdict", c.class.verdict.as_str());
            o.ts("ts_start", c.first_ts);
            o.ts("ts_end", c.last_ts);
            o.secs("duration_s", c.last_ts.0.saturating_sub(c.first_ts.0));
            o.str("path", c.path.as_str());
            o.u64("media_packets_to_server", c.media_packets[0]);
            o.u64("media_packets_to_client", c.media_packets[1]);
            o.u64("media_bytes_to_server", c.media_bytes[0]);
            o.u64("media_bytes_to_client", c.media_bytes[1]);
            o.u64("flows", c.flows);
            o.key_raw("flow_ids", |b| {
                b.push(b'[');
                for (i, id) in c.flow_ids.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    b.push(b'"');
                    write_flow_id(b, sensor, w.clients.flow_id(*id));
                    b.push(b'"');
                }
                b.push(b']');
            });
        })
    }

    /// Flushes the sink.
    pub fn flush(&mut self) -> io::Result<()> {
        self.lines.out.flush()
    }

    /// The sink written to.
    pub fn get_ref(&self) -> &W {
        &self.lines.out
    }

    /// The sink written to, mutably.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.lines.out
    }
}

/// `anomalies` and `sni_candidates`, on flows that showed evasion.
fn evasion_fields(o: &mut Obj<'_>, f: &FlowView) {
    let Some(e) = f.evasion.as_deref() else {
        return;
    };
    if e.anomalies != 0 {
        o.strs("anomalies", e.kinds().map(|a| a.as_str()));
    }
    if !e.candidates.is_empty() {
        o.strs("sni_candidates", e.candidates.iter().map(|c| &**c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::classify::{AppSource, Classification};
    use crate::decode::{tcp_flags, Addr};
    use crate::export::record::{EndReason, Vlans};
    use crate::rules::Verdict;
    use std::net::IpAddr;
    use std::sync::Arc;

    fn record(tls: bool) -> FlowRecord {
        let c: IpAddr = "2001:db8::5".parse().unwrap();
        let s: IpAddr = "2001:db8::1".parse().unwrap();
        let flow = FlowView {
            id: 0x1234,
            transport: Transport::Tcp,
            client: (Addr::from(c), 50000),
            server: (Addr::from(s), 443),
            vlans: Vlans::new([10, 20, 0], 2),
            segment: Segment::NONE,
            first_ts: Timestamp(1_700_000_000_000_000_000),
            last_ts: Timestamp(1_700_000_001_500_000_000),
            to_server: DirStats {
                packets: 3,
                bytes: 400,
                payload: 200,
                flags: tcp_flags::SYN | tcp_flags::ACK,
            },
            to_client: DirStats::default(),
            syn_seen: true,
            tls: tls.then(|| {
                Box::new(TlsSummary::new(
                    "t13d0101h2_aaaaaaaaaaaa_bbbbbbbbbbbb",
                    Some(b"g.whatsapp.net"),
                    &[b"h2"],
                    0x0304,
                    false,
                    false,
                ))
            }),
            cert_name: None,
            app: tls.then(|| {
                Box::new(Classification {
                    app: Arc::from("whatsapp"),
                    source: AppSource::Sni,
                    rule: Arc::from("whatsapp.toml:12"),
                    rule_id: Arc::from("picket:whatsapp"),
                    category: Arc::from("messaging"),
                    verdict: Verdict::Flag,
                    alert: true,
                })
            }),
            explain: None,
            dns_name: None,
            evasion: None,
            dns_query: None,
            unattributed: None,
            calls: Default::default(),
        };
        FlowRecord {
            flow,
            reason: EndReason::Fin,
            at: Timestamp(1_700_000_006_500_000_000),
        }
    }

    fn json(rec: &FlowRecord) -> serde_json::Value {
        let mut w = EventWriter::new(Vec::new(), None);
        w.flow(rec).unwrap();
        assert_eq!(w.written(), 1);
        let text = String::from_utf8(w.lines.out).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn flow_event_fields_and_client_orientation() {
        let v = json(&record(true));
        assert_eq!(v["event"], "flow");
        assert_eq!(v["ts_start"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["ts_end"], "2023-11-14T22:13:21.500000Z");
        assert_eq!(v["timestamp"], v["ts_end"], "a flow's moment is its end");
        assert_eq!(v["duration"], 1.5);
        assert_eq!(v["src_ip"], "2001:db8::5");
        assert_eq!(v["src_port"], 50000);
        assert_eq!(v["dst_ip"], "2001:db8::1");
        assert_eq!(v["dst_port"], 443);
        assert_eq!(v["vlan"], serde_json::json!([10, 20]));
        assert!(v.get("segment").is_none(), "no tunnel segment");
        assert_eq!(v["tcp_flags_to_server"], "SA");
        assert_eq!(v["sni"], "g.whatsapp.net");
        assert_eq!(v["alpn"], serde_json::json!(["h2"]));
        assert_eq!(v["tls_version"], "1.3");
        assert_eq!(v["ech"], "none");
        assert_eq!(v["sni_trusted"], true);
        assert_eq!(v["app"], "whatsapp");
        assert_eq!(v["app_source"], "sni");
        assert_eq!(v["rule"], "whatsapp.toml:12");
        assert_eq!(v["rule_id"], "picket:whatsapp");
        assert_eq!(v["app_category"], "messaging");
        assert_eq!(v["verdict"], "flag");
        assert_eq!(v["end_reason"], "fin");
    }

    /// Evidence items name their source, what it saw (read from the record), the app and rule.
    #[test]
    fn flow_event_evidence_and_confidence() {
        use crate::classify::{Confidence, Evidence, Explanation};
        let mut rec = record(true);
        let item = |source, app: &str, value| Evidence {
            source,
            app: Arc::from(app),
            rule: Arc::from("x.toml:3"),
            value,
        };
        rec.flow.explain = Some(Arc::new(Explanation {
            evidence: vec![
                item(AppSource::Sni, "whatsapp", EvidenceValue::ServerName),
                item(AppSource::Stun, "whatsapp", EvidenceValue::None),
                item(AppSource::Ip, "signal", EvidenceValue::Server),
                item(
                    AppSource::DnsAnswer,
                    "x",
                    EvidenceValue::Name(Arc::from("a.b")),
                ),
            ],
            confidence: Confidence::Medium,
        }));
        let v = json(&rec);
        assert_eq!(
            v["evidence"],
            serde_json::json!([
                {"source": "sni", "value": "g.whatsapp.net", "app": "whatsapp", "rule": "x.toml:3"},
                {"source": "stun", "app": "whatsapp", "rule": "x.toml:3"},
                {"source": "ip", "value": "2001:db8::1", "app": "signal", "rule": "x.toml:3"},
                {"source": "dns_answer", "value": "a.b", "app": "x", "rule": "x.toml:3"},
            ])
        );
        assert_eq!(v["confidence"], "medium");
    }

    #[test]
    fn flow_event_unknowns_are_absent_not_empty() {
        let v = json(&record(false));
        let obj = v.as_object().unwrap();
        for absent in [
            "sni",
            "alpn",
            "tls_version",
            "ech",
            "app",
            "app_source",
            "rule",
            "rule_id",
            "app_category",
            "verdict",
            "tcp_flags_to_client",
        ] {
            assert!(!obj.contains_key(absent), "{absent} should be absent: {v}");
        }
        assert!(obj.values().all(|x| x != ""), "{v}");
    }

    #[test]
    fn client_addresses_truncated_or_hashed_and_flow_ids_keyed() {
        let key = Arc::new([7u8; 32]);
        let t = ClientAddrs::Truncate {
            key: Arc::clone(&key),
        };
        assert_eq!(t.show("10.1.2.3".parse().unwrap()), "10.1.2.0");
        assert_eq!(t.show("2001:db8:1:2:3::9".parse().unwrap()), "2001:db8:1::");
        let h = ClientAddrs::Hash {
            key: Arc::clone(&key),
        };
        let a = h.show("10.1.2.3".parse().unwrap());
        assert!(a.starts_with("h:") && a.len() == 18, "{a}");
        assert_eq!(
            a,
            h.show("10.1.2.3".parse().unwrap()),
            "stable under one key"
        );
        assert_ne!(a, h.show("10.1.2.4".parse().unwrap()));
        let other = ClientAddrs::Hash {
            key: Arc::new([8u8; 32]),
        };
        assert_ne!(a, other.show("10.1.2.3".parse().unwrap()), "keyed");
        assert_eq!(ClientAddrs::Keep.flow_id(42), 42);
        assert_ne!(h.flow_id(42), 42);
        assert_ne!(h.flow_id(42), other.flow_id(42));
        // Through the writer: the client is hidden, the server is not, ids agree per flow.
        let rec = record(true);
        let mut w = EventWriter::new(Vec::new(), None).with_client_addrs(h.clone());
        w.flow(&rec).unwrap();
        w.alert(rec.flow.first_ts, &rec.flow).unwrap();
        let text = String::from_utf8(w.lines.out.clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let client = rec.flow.client.0.ip();
        let server = rec.flow.server.0.ip();
        assert!(!text.contains(&client.to_string()), "{text}");
        assert_eq!(lines[0]["src_ip"], h.show(client));
        assert_eq!(lines[0]["dst_ip"], server.to_string());
        assert_eq!(lines[0]["flow_id"], lines[1]["flow_id"]);
        assert_ne!(lines[0]["flow_id"], flow_id_text(None, rec.flow.id));
    }

    /// `community_id` of the flow's tuple under the writer's seed, the same in the alert, and
    /// absent when client addresses are hidden.
    #[test]
    fn community_id_in_flow_and_alert_under_the_seed() {
        let rec = record(true);
        let want = |seed| {
            community_id(
                seed,
                rec.flow.client.0.ip(),
                rec.flow.server.0.ip(),
                6,
                Some((rec.flow.client.1, rec.flow.server.1)),
            )
            .to_string()
        };
        for seed in [0, 1, 65535] {
            let mut w = EventWriter::new(Vec::new(), None).with_community_id_seed(seed);
            w.flow(&rec).unwrap();
            w.alert(rec.flow.first_ts, &rec.flow).unwrap();
            let text = String::from_utf8(w.lines.out).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["community_id"], want(seed), "{line}");
            }
        }
        assert_ne!(want(0), want(1));
        let key = Arc::new([7u8; 32]);
        let mut w = EventWriter::new(Vec::new(), None).with_client_addrs(ClientAddrs::Hash { key });
        w.flow(&rec).unwrap();
        assert!(!String::from_utf8(w.lines.out)
            .unwrap()
            .contains("community_id"));
    }

    /// The ECS layout: VLAN ids as ECS's two keyword fields, the duration in nanoseconds, the
    /// rest renamed or under `picket.`.
    #[test]
    fn ecs_layout_renames_and_converts() {
        let rec = record(true);
        let mut w = EventWriter::new(Vec::new(), None).with_format(EventFormat::Ecs);
        w.flow(&rec).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&w.lines.out).unwrap();
        assert_eq!(v["network.vlan.id"], "10");
        assert_eq!(v["network.inner.vlan.id"], "20");
        assert_eq!(v["event.duration"], 1_500_000_000u64);
        assert_eq!(v["source.ip"], "2001:db8::5");
        assert_eq!(v["tls.client.server_name"], "g.whatsapp.net");
        assert_eq!(v["picket.ja4"], "t13d0101h2_aaaaaaaaaaaa_bbbbbbbbbbbb");
        assert_eq!(v["event.kind"], "event");
        assert_eq!(v["event.type"], serde_json::json!(["connection", "end"]));
        assert!(v.get("vlan").is_none() && v.get("picket.vlan").is_none());
    }

    #[test]
    fn segment_field_names_kind_and_id() {
        let field = |s: Segment| {
            let mut buf = Vec::new();
            let mut o = Obj::begin(&mut buf);
            segment_field(&mut o, s);
            o.end();
            serde_json::from_slice::<serde_json::Value>(&buf).unwrap()
        };
        assert_eq!(
            field(Segment::vxlan(5001)),
            serde_json::json!({"segment": {"kind": "vxlan", "id": 5001}})
        );
        assert_eq!(field(Segment::NONE), serde_json::json!({}));
    }

    /// Sensor names and flow ids: the id keeps its 16 digits, and a name that JSON must escape
    /// comes out escaped inside the id as in the `sensor` field.
    #[test]
    fn flow_ids_with_odd_sensor_names_stay_one_valid_line() {
        let rec = record(true);
        let mut w = EventWriter::new(Vec::new(), Some("edge \"1\"\\x".into()));
        w.flow(&rec).unwrap();
        let text = String::from_utf8(w.lines.out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["sensor"], "edge \"1\"\\x");
        assert_eq!(
            v["flow_id"],
            flow_id_text(Some("edge \"1\"\\x"), rec.flow.id)
        );
    }
}
