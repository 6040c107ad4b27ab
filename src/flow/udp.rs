//! What a UDP flow's first datagrams reveal: the question of a DNS message, STUN/TURN messages
//! (also inside TURN ChannelData), QUIC client Initials gathered until their ClientHello (or
//! Q050's CHLO) is whole, the CHLO of Google QUIC's plaintext packets (Q0xx up to Q046), and
//! payload signatures. Gathers facts and says when the search is over.
//!
//! **QUIC decoys.** Tools that hide a name (zapret's `--dpi-desync=fake` for QUIC sends a whole
//! fake Initial for another name, `--dpi-desync-repeats` times, before the real one, made for
//! the server to drop with `--dpi-desync-fooling=badsum` or a TTL that expires on the way) put
//! a second connection's Initial on the flow. A client Initial the flow's keys do not open but
//! its own DCID's do is such an attempt (up to `MAX_ATTEMPTS`, later ones replacing unanswered
//! ones); a new client ID or another name marks `decoy_hello` and `evasion`, and every name
//! goes to `sni_candidates`. The flow's name is the attempt's the server answered (its long
//! headers carry the client's SCID as DCID), else the one without a decoy marker (a UDP
//! checksum that fails where the client's others hold, a TTL below the client's others), else
//! the first read. The flow is decided at the first hello and watched while the server sends
//! `MAX_WATCH` more datagrams (short headers of either side count too); a change of name
//! decides again (an alert raised stands, and a flagged name among the candidates alerts).
//!
//! **A reconnection is a new flow.** A client Initial that opens with its own DCID's keys, with
//! a DCID the flow has not seen, ends the flow (`reused`) and starts another when the flow's
//! handshake is over (a short header was seen: a client drops its Initial keys before it sends
//! one) or when the flow was quiet for 2 s (`QUIC_RECONNECT_QUIET`): decoys come before or
//! around the real Initial, a reconnection after a connection that lived.

use super::reasm::{ClientPrefix, HelloScan};
use super::state::{side, Attempt, Attempts, Flow, Hello, TcpTrack, MAX_ATTEMPTS};
use super::tcp::summary;
use super::tracker::{conclude, decide, hello_read, redecide, FlowTracker};
use super::Out;
use crate::capture::Timestamp;
use crate::classify;
use crate::decode::{PacketMeta, Transport};
use crate::export::record::{Anomaly, WorkerStats};
use crate::proto::quic::gquic::{self, ChloScan};
use crate::proto::shape::{self, Shape};
use crate::proto::tls::TlsSummary;
use crate::proto::{dns, quic, stun};
use crate::rules::CompiledRules;

/// Datagrams of a UDP flow looked at for STUN, QUIC and signatures.
const MAX_UDP_LOOK: u8 = 8;

/// Most client datagrams of a UDP flow looked at for QUIC Initials before giving up (junk and
/// undecryptable ones included: they never stop a later real Initial from being read).
const MAX_QUIC_DATAGRAMS: u8 = 16;

/// Datagrams shorter than this are junk to every signal looked for (a STUN header is 20
/// bytes, a QUIC Initial at least 1,200): servers ignore them; sent first, they are not
/// attempts, so they cannot use the attempts up.
const JUNK_BELOW: usize = 20;

impl FlowTracker {
    /// Reads the question of a DNS message (a query, or the response to one when only that
    /// direction is captured): the name asked for is the flow's fact, and the search is over.
    /// False when the datagram is no DNS message (something else uses port 53), so the other
    /// UDP signals get their look.
    pub(super) fn dns_datagram(
        &mut self,
        i: u32,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Out,
    ) -> bool {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return true;
        };
        let mut name = [0u8; dns::MAX_NAME];
        let q = match dns::first_question(payload, &mut name) {
            Ok(q) => q,
            Err(e) => {
                if matches!(e, dns::DnsError::Malformed(_)) {
                    self.stats.anomaly(Anomaly::DnsMalformed, 1);
                }
                return false;
            }
        };
        f.hello_done = true;
        f.names_mut().dns_query = Some(String::from_utf8_lossy(&name[..q.name_len]).into());
        decide(&self.rules, &mut self.apps, f, ts, at, out);
        true
    }

    /// Looks at one of the first datagrams of a UDP flow: STUN/TURN messages (either direction),
    /// QUIC Initials and payload signatures (the client's). After [`MAX_UDP_LOOK`] datagrams
    /// without an answer, or at once when a hint speaks for the flow, the search is over.
    pub(super) fn udp_datagram(
        &mut self,
        i: u32,
        m: &PacketMeta,
        payload: &[u8],
        from_client: bool,
        ts: Timestamp,
        out: &mut Out,
    ) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        if quic::is_short_header(payload) {
            // A QUIC connection whose handshake is over (a flow seen from mid-way): a client
            // Initial of its own later is another connection's.
            f.tcp.sides |= side::SHORT << usize::from(!from_client);
        }
        // Junk before anything else is no attempt (later it counts: a flow of tiny datagrams
        // is still decided after a few).
        if payload.len() >= JUNK_BELOW || f.looked > 0 || !from_client {
            f.looked = f.looked.saturating_add(1);
        }
        let rules = &*self.rules;
        // TURN ChannelData (a relayed channel) carries the relayed datagram: ICE checks through
        // a relay are STUN messages inside it.
        let stun_bytes = stun::channel_data(payload).map_or(payload, |c| c.data);
        let msg = stun::parse(stun_bytes);
        if from_client && msg.is_none() && f.shape == Shape::None {
            f.shape = shape::udp(payload);
        }
        if msg.is_none() && stun::has_cookie(stun_bytes) {
            self.stats.anomaly(Anomaly::StunMalformed, 1);
        }
        let found = if let Some(msg) = msg {
            classify::by_stun(rules, &msg)
        } else if from_client && (f.hello.is_some() || quic::looks_like_client_initial(payload)) {
            self.quic_datagram(i, m, payload, ts, out);
            return;
        } else if let Some(chlo) = from_client.then(|| plain_chlo(payload)).flatten() {
            // Google QUIC before Q050 sends its CHLO in plaintext, whole in one packet.
            self.stats.hellos += 1;
            f.tls = Some(Box::new(TlsSummary::from_chlo(&chlo)));
            f.hello_done = true;
            f.hello = None;
            decide(rules, &mut self.apps, f, ts, at, out);
            return;
        } else {
            let (as_sent, turned) = udp_signature(rules, f, payload, from_client);
            if turned {
                // The guess of which side is the client was wrong: the signature says.
                f.turn_around();
                f.shape = Shape::None;
            }
            as_sent
        };
        if let Some(c) = found {
            f.marks = Some(Box::new(c));
            f.hello_done = true;
            f.hello = None;
            decide(rules, &mut self.apps, f, ts, at, out);
        } else if (f.hint.is_some() || f.looked >= MAX_UDP_LOOK) && f.hello.is_none() {
            // A datagram that is neither STUN, nor a QUIC Initial, nor a signature: a hint
            // decides at once (a call's media, a flow to an address a DNS answer gave).
            f.hello_done = true;
            decide(rules, &mut self.apps, f, ts, at, out);
        }
    }

    /// Gathers the CRYPTO data of QUIC client Initials; the search is over when the ClientHello
    /// is whole or cannot be. A client Initial that the flow's keys do not open but its own
    /// DCID's do is another connection's first: a decoy, kept as an attempt (see the module doc).
    fn quic_datagram(
        &mut self,
        i: u32,
        m: &PacketMeta,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Out,
    ) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        // Taken out while it is read, so what it says can go into the flow.
        let pool = &self.pool;
        let mut hello = f.hello.take().unwrap_or_else(|| {
            Box::new(Hello::Quic {
                dcid: None,
                crypto: ClientPrefix::in_pool(0, pool),
                datagrams: 0,
                attempts: Box::default(),
            })
        });
        let Hello::Quic {
            dcid,
            crypto,
            datagrams,
            attempts,
        } = &mut *hello
        else {
            f.hello_done = true;
            return;
        };
        *datagrams = datagrams.saturating_add(1);
        // What the server's stack checks of the datagram: its TTL and its checksum (a side
        // whose checksums are never good has them offloaded on the sensor: no marker there).
        let ttl = m.wire.ttl;
        let sum_ok = m.wire.checksum_ok(payload);
        f.tcp.ttl[0] = f.tcp.ttl[0].max(ttl);
        if sum_ok == Some(true) {
            f.tcp.sides |= side::SUM_GOOD;
        }
        let uncharged = crypto.charged() == 0;
        let known = *dcid;
        // The attempt being read has its hello: the same connection's later Initials (the
        // rest of its hello, retransmissions) add nothing.
        let feed = attempts
            .list
            .get(usize::from(attempts.reading))
            .is_none_or(|a| !a.read);
        let mut conflict = false;
        let mut got = quic::client_initials(
            payload,
            known.as_ref(),
            &mut self.quic_scratch,
            |off, data| {
                if let (true, Ok(off)) = (feed, u32::try_from(off)) {
                    conflict |= crypto.insert(off, data).conflict;
                }
            },
        );
        let mut fresh = None;
        if got.is_err() && known.is_some() {
            // Not the flow's connection: the first Initial of another one opens with its own
            // DCID's keys.
            let mut p = ClientPrefix::in_pool(0, pool);
            let own = quic::client_initials(payload, None, &mut self.quic_scratch, |off, data| {
                if let Ok(off) = u32::try_from(off) {
                    p.insert(off, data);
                }
            });
            if own.is_ok() {
                got = own;
                fresh = Some(p);
            }
        }
        self.stats
            .anomaly(Anomaly::ReassemblyConflict, u64::from(conflict));
        if matches!(
            got,
            Err(quic::QuicError::Decrypt
                | quic::QuicError::Malformed(_)
                | quic::QuicError::BadLength)
        ) {
            self.stats.anomaly(Anomaly::QuicUndecryptable, 1);
        }
        let rules = &*self.rules;
        let mut picked = false;
        if let Ok(info) = got {
            let attempt = Attempt {
                dcid: info.dcid,
                scid: info.scid,
                ttl,
                sum_ok,
                ..Attempt::default()
            };
            if dcid.is_none() {
                *dcid = Some(info.dcid);
                attempts.list[0] = attempt;
                attempts.n = 1;
            } else if let Some(mut p) = fresh {
                // Another connection's first Initial on this flow.
                let k = match attempts.by_dcid(&info.dcid) {
                    Some(k) => Some(k),
                    None => {
                        let same_client = attempts.seen().iter().any(|a| a.scid == info.scid);
                        if !same_client {
                            // Not a restart of one seen (a Retry's answer keeps the SCID).
                            decoy_seen(&mut self.stats, f);
                        }
                        let k = if usize::from(attempts.n) < MAX_ATTEMPTS {
                            attempts.n += 1;
                            Some(usize::from(attempts.n) - 1)
                        } else {
                            evictable(attempts, &f.tcp)
                        };
                        if let Some(slot) = k.and_then(|k| attempts.list.get_mut(k)) {
                            *slot = attempt;
                        }
                        k
                    }
                };
                let reading_read = attempts
                    .list
                    .get(usize::from(attempts.reading))
                    .is_some_and(|a| a.read);
                match k {
                    Some(k) if reading_read && !attempts.list[k].read => {
                        // The attempt being read has its hello: this one takes the buffer.
                        std::mem::swap(crypto, &mut p);
                        *dcid = Some(info.dcid);
                        attempts.reading = k as u8;
                    }
                    Some(k) if !attempts.list[k].read => {
                        // Another is still being read: this datagram's hello, if whole.
                        if let Some(tls) = crypto_hello(rules, &mut self.stats, f, &p) {
                            attempts.list[k].read = true;
                            attempts.list[k].tls = Some(Box::new(tls));
                            picked = true;
                        }
                    }
                    _ => {}
                }
            }
        }
        let reading = usize::from(attempts.reading);
        let reading_read = attempts.list.get(reading).is_some_and(|a| a.read);
        let later = !reading_read && f.tls.is_some();
        // Q050's CRYPTO stream holds QUIC crypto's CHLO, not a TLS ClientHello.
        let done = if reading_read {
            true
        } else {
            let found = match gquic::scan_chlo(crypto.contiguous()) {
                ChloScan::Found(c) => {
                    self.stats.hellos += 1;
                    Some(Ok(TlsSummary::from_chlo(&c)))
                }
                ChloScan::Pending
                    if crypto.contiguous_len() > 0 && *datagrams < MAX_QUIC_DATAGRAMS =>
                {
                    None
                }
                _ => match crypto.scan_handshake_message() {
                    HelloScan::Found(ch) => {
                        hello_read(&mut self.stats, &ch, f);
                        Some(Ok(summary(rules, &ch, true)))
                    }
                    HelloScan::GiveUp => Some(Err(())),
                    HelloScan::Pending if *datagrams >= MAX_QUIC_DATAGRAMS => Some(Err(())),
                    HelloScan::Pending => None,
                },
            };
            match found {
                Some(Ok(tls)) => {
                    if let Some(a) = attempts.list.get_mut(reading) {
                        a.read = true;
                    }
                    if f.tls.is_none() {
                        f.tls = Some(Box::new(tls));
                        attempts.chosen = attempts.reading;
                    } else if let Some(a) = attempts.list.get_mut(reading) {
                        a.tls = Some(Box::new(tls));
                        picked = true;
                    }
                    true
                }
                Some(Err(())) => {
                    if !later {
                        self.stats.hello_gave_up += 1;
                    }
                    true
                }
                None => false,
            }
        };
        if done && !f.hello_done && f.tls.is_none() {
            // The first attempt gave up, another's hello was whole: that one is the flow's.
            if let Some(k) = attempts.seen().iter().position(|a| a.tls.is_some()) {
                f.tls = attempts.list[k].tls.take();
                attempts.chosen = k as u8;
            }
        } else if done && !f.hello_done && attempts.seen().iter().any(|a| a.tls.is_some()) {
            picked = true;
        }
        if picked {
            names_seen(&mut self.stats, attempts, f);
        }
        let taken = uncharged && crypto.charged() > 0;
        let id = f.id;
        if f.hello_done {
            // A later attempt on a flow decided already: watched, and picked from.
            if done {
                *crypto = ClientPrefix::new(0);
            }
            let changed = picked && pick(attempts, f);
            f.hello = Some(hello);
            if changed {
                redecide(rules, &mut self.apps, f, ts, at, out);
            }
        } else if done && f.tls.is_some() {
            // The hello is read and decides; its buffer goes, the flow is watched a while
            // for decoys and the server's answer.
            *crypto = ClientPrefix::new(0);
            if picked {
                pick(attempts, f);
            }
            f.hello_done = true;
            // A flow decided without a name (a signature) before its Initial came: again.
            redecide(rules, &mut self.apps, f, ts, at, out);
            f.hello = Some(hello);
        } else {
            if done {
                // Initials that did not open: the version's keys are not the known ones.
                f.shape = Shape::QuicUnknown;
            }
            conclude(rules, &mut self.apps, f, hello, done, ts, at, out);
        }
        if taken && !done {
            self.buffer_taken(i);
        }
        // A datagram's CRYPTO frames are only known once it is opened: the memcap is kept
        // after it, dropping older buffers first, then this one.
        if !done && self.pool.used() > self.cfg_memcap() && !self.make_room(i, 0, out) {
            self.drop_buffer(i, id, out);
        }
    }

    /// A datagram of a QUIC flow whose hello was read, while it is watched (until `MAX_WATCH`
    /// datagrams of the server or short headers pass): the server's long headers say which attempt it answered,
    /// a client Initial may be a decoy's, short headers say the handshake is over.
    pub(super) fn quic_watch(
        &mut self,
        i: u32,
        m: &PacketMeta,
        payload: &[u8],
        from_client: bool,
        ts: Timestamp,
        out: &mut Out,
    ) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let Some(mut hello) = f.hello.take() else {
            return;
        };
        let Hello::Quic { attempts, .. } = &mut *hello else {
            return;
        };
        // The client's other datagrams do not count: junk from it cannot end the watch.
        let short = quic::is_short_header(payload);
        if short || !from_client {
            attempts.watched = attempts.watched.saturating_add(1);
        }
        let over = attempts.watched >= MAX_WATCH;
        let mut changed = false;
        let mut initial = false;
        if short {
            f.tcp.sides |= side::SHORT << usize::from(!from_client);
        } else if from_client {
            initial = quic::looks_like_client_initial(payload);
        } else if let Some((to, _, _)) = quic::long_header_ids(payload) {
            let mut answered = false;
            for a in attempts.list.iter_mut().take(usize::from(attempts.n)) {
                if a.scid == to && !a.answered {
                    a.answered = true;
                    answered = true;
                }
            }
            changed = answered && attempts.n > 1 && pick(attempts, f);
        }
        f.hello = (!over).then_some(hello);
        if changed {
            redecide(&self.rules, &mut self.apps, f, ts, at, out);
        }
        if initial && !over {
            self.quic_datagram(i, m, payload, ts, out);
        }
    }
}

/// Most datagrams of the server, and short headers of either side, a QUIC flow is watched for
/// after its hello was read.
const MAX_WATCH: u8 = 32;

/// A second connection's Initial on one flow: counted, and marked on the flow.
fn decoy_seen(stats: &mut WorkerStats, f: &mut Flow) {
    stats.anomaly(Anomaly::DecoyHello, 1);
    stats.anomaly(Anomaly::Evasion, 1);
    f.mark(Anomaly::DecoyHello);
    f.mark(Anomaly::Evasion);
    if let Some(n) = f
        .tls
        .as_deref()
        .and_then(TlsSummary::sni)
        .map(str::to_owned)
    {
        f.candidate(n.as_bytes());
    }
}

/// Two attempts' hellos are known: every name seen is a candidate, and names that differ are
/// a conflict (marked once, as a decoy's).
fn names_seen(stats: &mut WorkerStats, attempts: &Attempts, f: &mut Flow) {
    let first = f
        .tls
        .as_deref()
        .and_then(TlsSummary::sni)
        .map(str::to_owned);
    let differ = attempts
        .seen()
        .iter()
        .filter_map(|a| a.tls.as_deref().and_then(TlsSummary::sni))
        .any(|n| Some(n) != first.as_deref());
    if differ
        && !f
            .evasion
            .as_deref()
            .is_some_and(|e| e.has(Anomaly::DecoyHello))
    {
        decoy_seen(stats, f);
    }
    if f.evasion.is_none() {
        return;
    }
    if let Some(n) = first {
        f.candidate(n.as_bytes());
    }
    for a in attempts.seen() {
        if let Some(n) = a.tls.as_deref().and_then(TlsSummary::sni) {
            f.candidate(n.as_bytes());
        }
    }
}

/// The hello a whole CRYPTO stream holds: Q050's CHLO or a TLS ClientHello.
fn crypto_hello(
    rules: &CompiledRules,
    stats: &mut WorkerStats,
    f: &mut Flow,
    p: &ClientPrefix,
) -> Option<TlsSummary> {
    if let ChloScan::Found(c) = gquic::scan_chlo(p.contiguous()) {
        stats.hellos += 1;
        return Some(TlsSummary::from_chlo(&c));
    }
    match p.scan_handshake_message() {
        HelloScan::Found(ch) => {
            hello_read(stats, &ch, f);
            Some(summary(rules, &ch, true))
        }
        _ => None,
    }
}

/// Whether a client datagram of attempt `a` carries a decoy marker: a checksum the server's
/// stack would reject (on a flow whose client checksums are otherwise good), or a TTL below the
/// client's others (it expires before the server).
fn marked(a: &Attempt, t: &TcpTrack) -> bool {
    (a.sum_ok == Some(false) && t.has(side::SUM_GOOD, 0)) || (a.ttl != 0 && a.ttl < t.ttl[0])
}

/// The attempt a new one replaces when `MAX_ATTEMPTS` are kept (so a flood of decoys cannot
/// keep the real Initial out): the latest that is neither the flow's hello, nor being read, nor
/// answered, a marked one first. Its name stays among the candidates.
fn evictable(attempts: &Attempts, t: &TcpTrack) -> Option<usize> {
    let free = |k: usize, a: &Attempt| {
        k != usize::from(attempts.chosen) && k != usize::from(attempts.reading) && !a.answered
    };
    let seen = attempts.seen().iter().enumerate();
    seen.clone()
        .rev()
        .find(|&(k, a)| free(k, a) && marked(a, t))
        .or_else(|| seen.rev().find(|&(k, a)| free(k, a)))
        .map(|(k, _)| k)
}

/// Makes the flow's hello the one the server read: the attempt it answered, else the chosen
/// one if it carries no decoy marker, else the first read without one. True when it changed.
fn pick(attempts: &mut Attempts, f: &mut Flow) -> bool {
    let n = usize::from(attempts.n);
    let chosen = usize::from(attempts.chosen);
    let seen = attempts.list.get(..n).unwrap_or_default();
    let to = seen
        .iter()
        .position(|a| a.read && a.answered)
        .or_else(|| {
            seen.get(chosen)
                .is_some_and(|a| !marked(a, &f.tcp))
                .then_some(chosen)
        })
        .or_else(|| seen.iter().position(|a| a.read && !marked(a, &f.tcp)))
        .unwrap_or(chosen);
    if to == chosen || to >= n {
        return false;
    }
    let Some(new) = attempts.list.get_mut(to).and_then(|a| a.tls.take()) else {
        return false;
    };
    let old = f.tls.replace(new);
    if let Some(a) = attempts.list.get_mut(chosen) {
        a.tls = old;
    }
    attempts.chosen = to as u8;
    true
}

/// The signature a datagram matches, sent by the client (`from_client`) or the server as the
/// flow's orientation has it; and, while only that side has been heard, a signature of the other
/// side's bytes, which says the orientation was guessed wrong (the second value: true). A flow
/// whose first packets carry no SYN is oriented by a guess (ports, the first sender), and a
/// capture of one direction, or one begun mid-flow, may hear the server first.
fn udp_signature(
    rules: &crate::rules::CompiledRules,
    f: &super::state::Flow,
    payload: &[u8],
    from_client: bool,
) -> (Option<classify::Classification>, bool) {
    let (client_port, server_port) = (f.client().1, f.server().1);
    let found = if from_client {
        classify::by_payload(rules, Transport::Udp, server_port, payload, payload.len())
    } else {
        classify::by_server_payload(rules, server_port, payload)
    };
    if found.is_some() {
        return (found, false);
    }
    let one_way = if from_client {
        f.to_client.packets == 0
    } else {
        f.to_server.packets == 0
    };
    if !one_way {
        return (None, false);
    }
    // The sender taken as one side is the other: its port is the server's if it is the server.
    let other = if from_client {
        classify::by_server_payload(rules, client_port, payload)
    } else {
        classify::by_payload(rules, Transport::Udp, client_port, payload, payload.len())
    };
    let turned = other.is_some();
    (other, turned)
}

/// The CHLO of a client's plaintext Google QUIC packet, when the packet holds all of it.
fn plain_chlo(payload: &[u8]) -> Option<gquic::Chlo<'_>> {
    let (_, _, data) = gquic::plain_handshake(payload).ok()?;
    match gquic::scan_chlo(data) {
        ChloScan::Found(c) => Some(c),
        _ => None,
    }
}
