//! One worker's flows through their lives: packets in, flows found or created, timeouts and
//! eviction in packet time, and owned records out. Asks `classify::decide` when a flow's facts
//! are complete; counts and raises the alert of what it decides.

use super::hints::{HintCache, HintUpdate};
use super::key::FlowKey;
use super::reasm::Pool;
use super::state::{side, Flow, Hello};
use super::table::{FlowTable, TimeoutClass};
use super::{FlowConfig, Out};
use crate::capture::Timestamp;
use crate::classify;
use crate::decode::{tcp_flags, PacketMeta, Transport};
use crate::export::record::{
    Anomaly, AppCount, EndReason, FlowRecord, FlowView, Mark, Record, WorkerStats,
};
use crate::proto::quic;
use crate::proto::tls::{ClientHello, MAX_SNI};
use crate::rules::CompiledRules;
use std::collections::VecDeque;
use std::sync::Arc;

const SEC: u64 = 1_000_000_000;

/// How often (in packet time) per-app counts are reported.
const REPORT_EVERY: u64 = SEC;

/// Most datagrams a UDP flow is looked at for, the late QUIC Initials of a flow whose search
/// ended without a name included (each costs a look, so a flood of them costs a bounded few).
const MAX_LATE_LOOKS: u8 = 64;

/// UDP port of DNS.
const DNS_PORT: u16 = 53;

/// The flow logic of one worker.
#[derive(Debug)]
pub struct FlowTracker {
    pub(super) table: FlowTable,
    cfg: FlowConfig,
    pub(super) rules: Arc<CompiledRules>,
    /// Bumped at each rule reload: a flow waiting for a reply names its signature by index,
    /// which only holds in the rules it was found in.
    pub(super) rules_gen: u8,
    pub(super) scratch: Vec<u8>,
    /// Decrypted QUIC Initial payloads.
    pub(super) quic_scratch: Vec<u8>,
    /// The sensor's time, as last handed in.
    pub(super) now: Timestamp,
    /// Time of the last look for quiet flows.
    swept: Timestamp,
    /// When per-app counts are next reported.
    next_report: Timestamp,
    /// Per-app counts since the last report; flows point at their slot.
    pub(super) apps: Vec<AppCount>,
    /// This worker's copy of the caches of DNS answers and call endpoints.
    hints: HintCache,
    /// The memory of this worker's reassembly buffers.
    pub(super) pool: Pool,
    /// Flows holding a reassembly buffer (slot and id), oldest buffer first; entries of flows
    /// that since ended or freed theirs are skipped.
    pending: VecDeque<(u32, u64)>,
    /// Counters.
    pub stats: WorkerStats,
}

/// Whether the sender of a packet without SYN information looks like the client: a port below
/// 1024 on one side only marks that side as the server; otherwise the first packet's sender is
/// taken as the client.
fn sender_looks_like_client(sport: u16, dport: u16) -> bool {
    !(sport < 1024 && dport >= 1024)
}

impl FlowTracker {
    /// A tracker with its own table, sharing the compiled rules.
    pub fn new(cfg: FlowConfig, rules: Arc<CompiledRules>) -> Self {
        FlowTracker {
            table: FlowTable::new(cfg.max_flows),
            cfg,
            rules,
            rules_gen: 0,
            scratch: Vec::with_capacity(4096),
            quic_scratch: Vec::with_capacity(2048),
            now: Timestamp(0),
            swept: Timestamp(0),
            next_report: Timestamp(0),
            apps: Vec::new(),
            hints: HintCache::new(1),
            pool: Pool::new(),
            pending: VecDeque::new(),
            stats: WorkerStats::default(),
        }
    }

    /// Keeps at most `capacity` entries in each hint cache.
    pub fn with_hint_capacity(mut self, capacity: usize) -> Self {
        self.hints = HintCache::new(capacity);
        self
    }

    /// Applies what the reader found in a DNS answer or a STUN exchange, for flows that start
    /// from now on.
    pub fn hint(&mut self, u: HintUpdate) {
        self.hints.apply(u);
    }

    /// This worker's hint caches.
    pub fn hints(&self) -> &HintCache {
        &self.hints
    }

    /// The most bytes of reassembly buffers this tracker holds.
    pub(super) fn cfg_memcap(&self) -> usize {
        self.cfg.reassembly_memcap
    }

    /// Bytes of reassembly buffers held now.
    pub fn reassembly_bytes(&self) -> usize {
        self.pool.used()
    }

    /// Notes that the flow at slot `i` now holds a reassembly buffer (the oldest go first when
    /// memory runs short).
    pub(super) fn buffer_taken(&mut self, i: u32) {
        let Some(id) = self.table.get(i).map(|f| f.id) else {
            return;
        };
        if self.pending.len() > 2 * self.table.len() + 64 {
            let table = &self.table;
            self.pending.retain(|&(slot, id)| {
                table
                    .get(slot)
                    .is_some_and(|f| f.id == id && f.hello.is_some())
            });
        }
        self.pending.push_back((i, id));
    }

    /// Makes room for `need` more bytes of reassembly for the flow at slot `i` within the
    /// memcap: the oldest pending buffers of other flows are dropped (counted; their flows go
    /// on). False when that is not enough.
    pub(super) fn make_room(&mut self, i: u32, need: usize, out: &mut Out) -> bool {
        let cap = self.cfg.reassembly_memcap;
        let own = self.table.get(i).map(|f| f.id);
        let mut own_entry = None;
        while self.pool.used().saturating_add(need) > cap {
            let Some((slot, id)) = self.pending.pop_front() else {
                break;
            };
            if slot == i && Some(id) == own {
                own_entry = Some((slot, id));
                continue;
            }
            self.drop_buffer(slot, id, out);
        }
        if let Some(e) = own_entry {
            self.pending.push_front(e);
        }
        self.pool.used().saturating_add(need) <= cap
    }

    /// Drops the reassembly buffer of the flow at `slot` (if it is still flow `id` and holds
    /// one) for lack of memory: its handshake search is over, and it is decided with what it has.
    pub(super) fn drop_buffer(&mut self, slot: u32, id: u64, out: &mut Out) {
        let at = self.now;
        let Some(f) = self.table.get_mut(slot) else {
            return;
        };
        if f.id != id {
            return;
        }
        if let Some(Hello::Quic { crypto, .. }) = f.hello.as_deref() {
            if crypto.charged() == 0 {
                return; // a watched flow's: it holds no buffer
            }
        }
        let Some(hello) = f.hello.take() else {
            return;
        };
        if let Hello::Tcp(p) = &*hello {
            if p.hello_started() {
                self.stats.anomaly(Anomaly::HelloIncomplete, 1);
            }
        }
        drop(hello);
        f.hello_done = true;
        f.reply = None;
        self.stats.anomaly(Anomaly::ReassemblyMemcap, 1);
        self.stats.hello_gave_up += 1;
        decide(&self.rules, &mut self.apps, f, at, at, out);
    }

    /// Flows held now.
    pub fn active(&self) -> usize {
        self.table.len()
    }

    /// Replaces the rules used for flows classified from now on.
    pub fn set_rules(&mut self, rules: Arc<CompiledRules>) {
        self.rules = rules;
        self.rules_gen = self.rules_gen.wrapping_add(1);
    }

    /// Processes one packet; what happens on the way is pushed to `out`. `now` is the sensor's
    /// time when the packet was read (the one clock over all packets), so flows age the same way
    /// whichever worker holds them.
    pub fn packet(
        &mut self,
        m: &PacketMeta,
        hash: u64,
        payload: &[u8],
        now: Timestamp,
        out: &mut Out,
    ) {
        self.stats.packets += 1;
        self.stats.bytes += u64::from(m.wire_len);
        self.advance(now, out);
        let now = self.now;
        let (key, src_is_lo) = FlowKey::of(m);
        let is_tcp = m.transport == Transport::Tcp;
        let syn_only = is_tcp && m.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        let mut slot = self.table.find(hash, &key);
        if let Some(i) = slot {
            if let Some(f) = self.table.get(i) {
                let from_client = src_is_lo == f.client_is_lo;
                let quiet_at = f.last_ts.plus_nanos(self.cfg.timeout(f.class()));
                let end = if now > quiet_at {
                    Some((f.quiet_end(), quiet_at))
                } else if syn_only && f.is_new_connection(m, from_client) {
                    Some(if f.closing() {
                        (f.quiet_end(), now)
                    } else {
                        (EndReason::Reused, now)
                    })
                } else if !is_tcp
                    && from_client
                    && quic_reconnects(f, payload, m.ts, &mut self.quic_scratch)
                {
                    Some((EndReason::Reused, now))
                } else {
                    None
                };
                if let Some((reason, at)) = end {
                    self.end(i, reason, at, out);
                    slot = None;
                }
            }
        }
        let i = match slot {
            Some(i) => i,
            None => self.create(key, hash, src_is_lo, m, out),
        };
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let from_client = src_is_lo == f.client_is_lo;
        let d = if from_client {
            &mut f.to_server
        } else {
            &mut f.to_client
        };
        d.packets += 1;
        d.bytes += u64::from(m.wire_len);
        d.payload += payload.len() as u64;
        d.flags |= m.flags;
        if m.ts > f.last_ts {
            f.last_ts = m.ts;
        }
        if f.app.is_some() {
            if let Some(a) = self.apps.get_mut(usize::from(f.app_slot)) {
                a.bytes += u64::from(m.wire_len);
            }
        }
        let every = self.cfg.update_ns;
        if every > 0 {
            let age = m.ts.0.saturating_sub(f.first_ts.0);
            let due = u64::from(f.updates) + 1;
            if age >= due.saturating_mul(every) {
                let n = age / every;
                f.updates = u32::try_from(n).unwrap_or(u32::MAX);
                out.push(Record::Update {
                    ts: f.first_ts.plus_nanos(n * every),
                    at: now,
                    flow: f.view(),
                });
            }
        }
        if !is_tcp {
            f.calls.count(payload, m.wire_len, from_client);
            if !payload.is_empty() && !f.hello_done {
                let dns = (m.sport == DNS_PORT || m.dport == DNS_PORT)
                    && self.dns_datagram(i, payload, m.ts, out);
                if !dns {
                    self.udp_datagram(i, m, payload, from_client, m.ts, out);
                }
            } else if !payload.is_empty() && f.hello.is_some() {
                // A QUIC flow decided by its hello, watched for decoys and the server's answer.
                self.quic_watch(i, m, payload, from_client, m.ts, out);
            } else if from_client
                && f.tls.is_none()
                && f.looked < MAX_LATE_LOOKS
                && quic::looks_like_client_initial(payload)
            {
                // A client Initial after a search that ended without a name (junk came first,
                // a datagram that matched a signature, or the flow was seen from mid-way):
                // looked at after all, its name deciding again.
                f.hello_done = false;
                self.udp_datagram(i, m, payload, from_client, m.ts, out);
            }
        } else {
            self.tcp_segment(i, m, payload, from_client, out);
        }
        if let Some(f) = self.table.get(i) {
            let class = f.class();
            self.table.touch(i, class);
        }
    }

    fn create(
        &mut self,
        key: FlowKey,
        hash: u64,
        src_is_lo: bool,
        m: &PacketMeta,
        out: &mut Out,
    ) -> u32 {
        if self.table.is_full() {
            if let Some(old) = self.table.oldest_overall() {
                self.stats.evicted += 1;
                let at = self.now;
                self.end(old, EndReason::Evicted, at, out);
            }
        }
        let syn = m.flags & tcp_flags::SYN != 0;
        let ack = m.flags & tcp_flags::ACK != 0;
        let src_is_client = match (m.transport, syn, ack) {
            (Transport::Tcp, true, false) => true,
            (Transport::Tcp, true, true) => false,
            _ => sender_looks_like_client(m.sport, m.dport),
        };
        let client_is_lo = src_is_lo == src_is_client;
        let mut flow = Flow::new(key, hash, client_is_lo, m.ts);
        if !self.hints.is_empty() {
            let sock = |(a, p): (crate::decode::Addr, u16)| std::net::SocketAddr::new(a.ip(), p);
            flow.hint = self
                .hints
                .lookup(
                    &self.rules,
                    m.transport == Transport::Udp,
                    sock(flow.server()),
                    sock(flow.client()),
                    m.ts,
                )
                .map(Box::new);
        }
        let class = flow.class();
        self.stats.flows += 1;
        let i = self.table.insert(flow, class);
        self.stats.peak_flows = self.stats.peak_flows.max(self.table.len() as u64);
        i
    }

    /// Moves packet time forward and ends the flows that went quiet.
    ///
    /// Every flow whose timeout has passed is ended as soon as time passes it (a look at the
    /// oldest flow of each timeout class: cheap when nothing expires), with its deterministic
    /// end time, so ended flows never come after the progress mark that covers them.
    pub fn advance(&mut self, now: Timestamp, out: &mut Out) {
        self.now = self.now.max(now);
        let now = self.now;
        if now <= self.swept {
            return;
        }
        self.swept = now;
        if now >= self.next_report {
            self.next_report = now.plus_nanos(REPORT_EVERY);
            self.report_counts(out);
        }
        for class in [TimeoutClass::Closing, TimeoutClass::Udp, TimeoutClass::Tcp] {
            let timeout = self.cfg.timeout(class);
            while let Some(i) = self.table.oldest(class) {
                let Some(f) = self.table.get(i) else { break };
                let quiet_at = f.last_ts.plus_nanos(timeout);
                if quiet_at >= now {
                    break;
                }
                let reason = f.quiet_end();
                self.end(i, reason, quiet_at, out);
            }
        }
    }

    /// Ends every flow (end of input or shutdown), handing the records to `emit` in batches of
    /// at most `batch`, in release order (the time each flow ends, alerts before flows, then
    /// flow id), each batch with the [`Mark`] it reached: the consumer can write them as they
    /// come, and ending a full table holds neither a copy of it nor its records.
    ///
    /// `now` is the whole sensor's final time: a flow already past its timeout then ends as idle
    /// whether or not a sweep of this worker came to it first, so the records do not depend on
    /// how flows were spread over workers.
    pub fn finish(&mut self, now: Timestamp, batch: usize, mut emit: impl FnMut(Out, Mark)) {
        let batch = batch.max(1);
        let mut order: Vec<(Timestamp, u64, u32, EndReason)> = self
            .table
            .iter()
            .map(|(i, flow)| {
                let quiet_at = flow.last_ts.plus_nanos(self.cfg.timeout(flow.class()));
                let (reason, at) = if quiet_at < now {
                    (flow.quiet_end(), quiet_at)
                } else if flow.closing() {
                    (flow.quiet_end(), now)
                } else {
                    (EndReason::Eof, now)
                };
                (at, flow.id, i, reason)
            })
            .collect();
        order.sort_unstable_by_key(|&(at, id, i, _)| (at, id, i));
        let mut out = Vec::with_capacity(batch.min(order.len() * 2 + 1));
        let mut k = 0;
        while k < order.len() {
            let at = order[k].0;
            let end = k + order[k..].iter().take_while(|o| o.0 == at).count();
            // The alerts of flows decided at their end come before every flow ending then.
            for &(_, id, i, _) in &order[k..end] {
                self.close(i, at, &mut out);
                if out.len() >= batch {
                    let mark = Mark { at, rank: 0, id }.next();
                    emit(std::mem::replace(&mut out, Vec::with_capacity(batch)), mark);
                }
            }
            for &(_, id, i, reason) in &order[k..end] {
                if let Some(flow) = self.table.remove(i) {
                    out.push(Record::Flow(FlowRecord {
                        flow: ended_view(&self.rules, flow),
                        reason,
                        at,
                    }));
                }
                if out.len() >= batch {
                    let mark = Mark { at, rank: 2, id }.next();
                    emit(std::mem::replace(&mut out, Vec::with_capacity(batch)), mark);
                }
            }
            k = end;
        }
        self.report_counts(&mut out);
        emit(out, Mark::END);
    }

    /// Emits the per-app counts gathered since the last report.
    fn report_counts(&mut self, out: &mut Out) {
        if self.apps.iter().all(|a| a.flows == 0 && a.bytes == 0) {
            return;
        }
        let counts = self
            .apps
            .iter_mut()
            .filter(|a| a.flows > 0 || a.bytes > 0)
            .map(|a| {
                let c = a.clone();
                a.flows = 0;
                a.bytes = 0;
                c
            })
            .collect();
        out.push(Record::Counts(counts));
    }

    pub(super) fn end(&mut self, i: u32, reason: EndReason, at: Timestamp, out: &mut Out) {
        self.close(i, at, out);
        if let Some(flow) = self.table.remove(i) {
            out.push(Record::Flow(FlowRecord {
                flow: ended_view(&self.rules, flow),
                reason,
                at,
            }));
        }
    }

    /// What the flow at slot `i`, ending at `at`, still owes: its handshake buffer freed (a
    /// ClientHello that started and never completed counted), and the decision made with what
    /// it gathered, if none was.
    fn close(&mut self, i: u32, at: Timestamp, out: &mut Out) {
        let Some(flow) = self.table.get_mut(i) else {
            return;
        };
        if let Some(Hello::Syn(p)) = flow.hello.as_deref() {
            // Data on a SYN, and nothing since said whether the server took it (a capture of
            // the client's side alone): read as sent.
            let all = flow
                .tcp
                .isn
                .wrapping_add(1)
                .wrapping_add(p.contiguous_len());
            self.syn_acked(i, all, at, out);
        }
        let Some(flow) = self.table.get_mut(i) else {
            return;
        };
        if let Some(Hello::Tcp(p)) = flow.hello.as_deref() {
            if p.hello_started() {
                self.stats.anomaly(Anomaly::HelloIncomplete, 1);
            }
        }
        flow.hello = None;
        if flow.app.is_none() && flow.key.transport == Transport::Udp {
            let (a, p) = flow.client();
            let client = std::net::SocketAddr::new(a.ip(), p);
            if let Some(h) = self
                .hints
                .call_socket(&self.rules, client, flow.first_ts, at)
            {
                // Another flow of a call the app's exchange already alerted on: its verdict,
                // not a second alert.
                flow.hint = Some(Box::new(h));
                let mut quiet = Vec::new();
                decide(&self.rules, &mut self.apps, flow, at, at, &mut quiet);
                return;
            }
        }
        decide(&self.rules, &mut self.apps, flow, at, at, out);
    }
}

/// An ended flow as export sees it, with the reason it stayed unattributed if it has no app.
fn ended_view(rules: &CompiledRules, flow: Flow) -> FlowView {
    let unattributed = flow.unattributed(rules);
    let mut view = flow.into_view();
    view.unattributed = unattributed;
    view
}

/// Decides a flow whose facts are complete (its handshake search is over, or it ends), if it is
/// not decided yet: counts it in its app's slot of `apps` and raises its alert. `ts` is the
/// deciding packet's time, `at` the sensor's. (A free function: the flow is borrowed from the
/// tracker's table while the rules and counts are other fields of it.)
pub(super) fn decide(
    rules: &CompiledRules,
    apps: &mut Vec<AppCount>,
    f: &mut Flow,
    ts: Timestamp,
    at: Timestamp,
    out: &mut Out,
) {
    if f.app.is_some() {
        return;
    }
    if f.tls.is_none() && f.hello.is_none() {
        // The search is over without a hello the server would read: a decoy's is all there is.
        if let Some(d) = f.evasion.as_deref_mut().and_then(|e| e.decoy.take()) {
            f.tls = Some(d);
        }
    }
    let mut decided = classify::decide_explained(&f.facts(), rules);
    // Two names and no telling which the server got: a flagged app among them alerts.
    if let Some(e) = f.evasion.as_deref() {
        if !decided.as_ref().is_some_and(|(c, _)| c.alert) {
            let source = if f.key.transport == Transport::Udp {
                classify::AppSource::QuicSni
            } else {
                classify::AppSource::Sni
            };
            if let Some(c) = e
                .candidates
                .iter()
                .filter_map(|n| classify::by_server_name(rules, n.as_bytes(), source))
                .find(|c| c.alert)
            {
                let evidence = vec![classify::Evidence {
                    source: c.source,
                    app: Arc::clone(&c.app),
                    rule: c.rule.clone(),
                    rule_id: Arc::clone(&c.rule_id),
                    value: classify::EvidenceValue::ServerName,
                }];
                let explain = classify::Explanation {
                    evidence,
                    confidence: classify::Confidence::Low,
                };
                decided = Some((c, explain));
            }
        }
    }
    let Some((c, explain)) = decided else {
        return;
    };
    let slot = match apps
        .iter()
        .position(|a| a.app == c.app && a.verdict == c.verdict)
    {
        Some(s) => s,
        None => {
            apps.push(AppCount {
                app: Arc::clone(&c.app),
                verdict: c.verdict,
                flows: 0,
                bytes: 0,
            });
            apps.len() - 1
        }
    };
    f.app_slot = u16::try_from(slot).unwrap_or(u16::MAX);
    if let Some(a) = apps.get_mut(slot) {
        a.flows += 1;
        a.bytes += f.to_server.bytes + f.to_client.bytes;
    }
    let alert = c.alert;
    f.app = Some(Box::new(c));
    f.explain = Some(Arc::new(explain));
    if alert {
        out.push(Record::Alert {
            ts,
            at,
            flow: f.view(),
        });
    }
}

/// Decides again a flow whose hello changed (another copy or attempt turned out to be the one
/// the server read): a decision without an alert is undone and made again with what the flow
/// now holds (kept if the new facts decide nothing); an alert already raised stands.
pub(super) fn redecide(
    rules: &CompiledRules,
    apps: &mut Vec<AppCount>,
    f: &mut Flow,
    ts: Timestamp,
    at: Timestamp,
    out: &mut Out,
) {
    if f.app.as_deref().is_some_and(|c| !c.alert) {
        if let Some(a) = apps.get_mut(usize::from(f.app_slot)) {
            a.flows = a.flows.saturating_sub(1);
        }
        let kept = f.app.take();
        let explain = f.explain.take();
        decide(rules, apps, f, ts, at, out);
        if f.app.is_none() {
            f.app = kept;
            f.explain = explain;
            if let Some(a) = apps.get_mut(usize::from(f.app_slot)) {
                a.flows += 1;
            }
        }
    } else if f.app.is_none() && f.hello_done && f.reply.is_none() {
        decide(rules, apps, f, ts, at, out);
    }
}

/// How long a QUIC flow whose handshake has not been seen to end stays quiet before the
/// first Initial of another connection on its 5-tuple is a reconnection rather than a decoy
/// (decoy tools send their fakes right before the real Initial; a client that gave up on a
/// handshake retries after its timeouts, seconds later).
const QUIC_RECONNECT_QUIET: u64 = 2 * SEC;

/// Whether a client datagram on a UDP flow is the first Initial of a new QUIC connection on the
/// flow's 5-tuple: one that opens with its own DCID's keys (no Initial of a connection that is
/// going on does: later ones keep the first one's keys), with a DCID the flow has not seen,
/// after the flow's handshake is over (a short header was seen: a client sends none before its
/// handshake keys, and drops its Initial keys with its first Handshake packet, RFC 9001
/// §4.9.1) or after it was quiet for [`QUIC_RECONNECT_QUIET`].
fn quic_reconnects(f: &Flow, payload: &[u8], ts: Timestamp, scratch: &mut Vec<u8>) -> bool {
    if payload.first().is_none_or(|&b| b & 0xc0 != 0xc0) {
        return false;
    }
    let live = f.tcp.has(side::SHORT, 0) || f.tcp.has(side::SHORT, 1);
    let attempts = match f.hello.as_deref() {
        Some(Hello::Quic { attempts, .. }) if attempts.n > 0 => Some(attempts),
        _ => None,
    };
    let quiet = attempts.is_some() && ts.0.saturating_sub(f.last_ts.0) >= QUIC_RECONNECT_QUIET;
    if !live && !quiet {
        return false;
    }
    let Ok(info) = quic::client_initials(payload, None, scratch, |_, _| {}) else {
        return false;
    };
    attempts.is_none_or(|a| a.by_dcid(&info.dcid).is_none())
}

/// Counts a ClientHello read (over TCP or QUIC) and what was wrong with it; on a flow that
/// showed evasion, its name joins the names seen.
pub(super) fn hello_read(stats: &mut WorkerStats, ch: &ClientHello<'_>, f: &mut Flow) {
    stats.hellos += 1;
    if ch.duplicate_sni {
        stats.anomaly(Anomaly::DuplicateSni, 1);
        stats.anomaly(Anomaly::Evasion, 1);
        f.mark(Anomaly::DuplicateSni);
        f.mark(Anomaly::Evasion);
        for name in [ch.sni, ch.other_sni].into_iter().flatten() {
            f.candidate(name);
        }
    }
    if f.evasion.is_some() {
        if let Some(name) = ch.sni {
            f.candidate(name);
        }
    }
    if ch.sni.is_some_and(|n| n.len() > MAX_SNI) {
        stats.anomaly(Anomaly::SniOversized, 1);
    }
    if ch.malformed_extensions {
        stats.anomaly(Anomaly::TlsMalformed, 1);
    }
}

/// Ends a round of the handshake search: one that goes on keeps its buffer; one that is over
/// decides the flow, unless a signature still waits for the server's reply and no hello came.
#[allow(clippy::too_many_arguments)] // the tracker's fields, borrowed apart from its table
pub(super) fn conclude(
    rules: &CompiledRules,
    apps: &mut Vec<AppCount>,
    f: &mut Flow,
    hello: Box<Hello>,
    done: bool,
    ts: Timestamp,
    at: Timestamp,
    out: &mut Out,
) {
    if !done {
        f.hello = Some(hello);
        return;
    }
    f.hello_done = true;
    // A handshake of fixed sizes is decided by the server's reply, which is still to come.
    if f.tls.is_some() || f.reply.is_none() {
        decide(rules, apps, f, ts, at, out);
    }
}
