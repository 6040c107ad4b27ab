//! What a TCP flow's first bytes reveal: the client's stream reassembled until a ClientHello,
//! STUN/TURN messages or a payload signature shows, and the size of the server's first reply
//! where a signature waits for it. Gathers facts and says when the search is over.

use super::reasm::{ClientPrefix, HelloScan, MAX_PREFIX};
use super::state::{side, Flow, Hello, ReplyWait};
use super::tracker::{conclude, decide, hello_read, redecide, FlowTracker};
use super::Out;
use crate::capture::Timestamp;
use crate::classify;
use crate::decode::{tcp_flags, tcp_opts, PacketMeta, Transport};
use crate::export::record::Anomaly;
use crate::proto::cert;
use crate::proto::shape::{self, Shape};
use crate::proto::stun;
use crate::proto::tls::{self, ClientHello, TlsSummary};
use crate::rules::CompiledRules;

/// Most STUN messages read at the start of a TCP stream.
const MAX_TCP_STUN: usize = 4;

/// Whether the receiver would drop a segment from `side` (0: client, 1: server), as a Linux
/// stack does: a bad checksum (where that side's checksums are known good: a side with none
/// has them offloaded on the sensor), a TTL below that side's others, no ACK on a segment
/// other than a SYN or RST, an MD5 option its SYN did not carry, a timestamp older than the
/// newest taken (PAWS; a RST is exempt), or, from the client, a RST or FIN whose sequence
/// number lies before the stream or far past it.
fn receiver_drops(f: &Flow, m: &PacketMeta, sum_ok: Option<bool>, side: usize) -> bool {
    let t = &f.tcp;
    let syn = m.flags & tcp_flags::SYN != 0;
    let rst = m.flags & tcp_flags::RST != 0;
    let ack = m.flags & tcp_flags::ACK != 0;
    if sum_ok == Some(false) && t.has(side::SUM_GOOD, side) {
        return true;
    }
    if !syn && m.wire.ttl != 0 && m.wire.ttl < t.ttl[side] {
        return true;
    }
    if !syn && !rst && !ack {
        return true;
    }
    if !syn && m.wire.opts & tcp_opts::MD5 != 0 && !t.has(side::MD5, side) {
        return true;
    }
    if side == 0
        && !syn
        && !rst
        && m.wire.opts & tcp_opts::TS != 0
        && t.has(side::TS, 0)
        && t.ts.wrapping_sub(m.wire.tsval) as i32 > 1
    {
        return true;
    }
    if side == 0 && (rst || m.flags & tcp_flags::FIN != 0) {
        if let Some(base) = t.client_base {
            let rel = m.seq.wrapping_sub(base) as i32;
            if !(0..=1 << 20).contains(&rel) {
                return true;
            }
        }
    }
    false
}

/// What a segment the receiver takes tells of its side: TTL, checksums, MD5, timestamps.
fn track_side(f: &mut Flow, m: &PacketMeta, sum_ok: Option<bool>, side: usize) {
    let t = &mut f.tcp;
    t.ttl[side] = t.ttl[side].max(m.wire.ttl);
    if sum_ok == Some(true) {
        t.sides |= side::SUM_GOOD << side;
    }
    if m.flags & tcp_flags::SYN != 0 && m.wire.opts & tcp_opts::MD5 != 0 {
        t.sides |= side::MD5 << side;
    }
    if side == 0 && m.wire.opts & tcp_opts::TS != 0 {
        if !t.has(side::TS, 0) || m.wire.tsval.wrapping_sub(t.ts) as i32 > 0 {
            t.ts = m.wire.tsval;
        }
        t.sides |= side::TS;
    }
}

/// The TCP facts a segment carries: SYN, FIN and RST, and where the client's data starts.
fn track_tcp(f: &mut Flow, m: &PacketMeta, from_client: bool) {
    let syn = m.flags & tcp_flags::SYN != 0;
    let ack = m.flags & tcp_flags::ACK != 0;
    if syn && !ack && from_client && !f.tcp.syn {
        f.tcp.syn = true;
        f.tcp.isn = m.seq;
        f.tcp.client_base = Some(m.seq.wrapping_add(1));
    } else if syn && ack && !from_client && f.tcp.client_base.is_none() {
        f.tcp.client_base = Some(m.ack);
    }
    if m.flags & tcp_flags::FIN != 0 {
        if from_client {
            f.tcp.fin_client = true;
        } else {
            f.tcp.fin_server = true;
        }
    }
    if m.flags & tcp_flags::RST != 0 {
        f.tcp.rst = true;
    }
}

/// A ClientHello's facts, with real ECH told from GREASE by the rules' ECH public names.
pub(super) fn summary(rules: &CompiledRules, ch: &ClientHello<'_>, quic: bool) -> TlsSummary {
    let mut s = TlsSummary::from_hello(ch, quic);
    s.ech_outer = s.ech && s.sni().is_some_and(|n| rules.is_ech_public(n));
    s
}

impl FlowTracker {
    /// One TCP segment of the flow at slot `i`, after its counters were taken.
    pub(super) fn tcp_segment(
        &mut self,
        i: u32,
        m: &PacketMeta,
        payload: &[u8],
        from_client: bool,
        out: &mut Out,
    ) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let side = usize::from(!from_client);
        let control = m.flags & (tcp_flags::SYN | tcp_flags::RST | tcp_flags::FIN) != 0;
        let searching = from_client && !f.hello_done && !payload.is_empty();
        // Only segments that can change what is read are checked (one pass over the bytes).
        let sum_ok = if control || searching {
            m.wire.checksum_ok(payload)
        } else {
            None
        };
        if (control || searching) && receiver_drops(f, m, sum_ok, side) {
            // A decoy: never stream data, never the flow's end; its name is kept.
            self.stats.anomaly(Anomaly::Evasion, 1);
            f.mark(Anomaly::Evasion);
            if from_client && !payload.is_empty() {
                self.decoy_payload(i, payload);
            }
            return;
        }
        track_side(f, m, sum_ok, side);
        track_tcp(f, m, from_client);
        if m.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK
            && !from_client
        {
            self.syn_acked(i, m.ack, m.ts, out);
        }
        if payload.is_empty() {
            return;
        }
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        if from_client && m.flags & tcp_flags::SYN != 0 && !f.hello_done {
            // Data on a SYN counts only once the server is known to have taken it.
            if f.hello.is_none() && f.tcp.client_base == Some(m.seq.wrapping_add(1)) {
                self.syn_data(i, m.seq.wrapping_add(1), payload, out);
            }
            return;
        }
        if from_client && matches!(f.hello.as_deref(), Some(Hello::Syn(_))) {
            // No SYN-ACK seen: the client's next sequence number says whether it was taken.
            self.syn_acked(i, m.seq, m.ts, out);
        }
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        if from_client && m.flags & tcp_flags::URG != 0 && m.wire.urgent > 0 && !f.hello_done {
            let at = m.seq.wrapping_add(u32::from(m.wire.urgent) - 1);
            if at.wrapping_sub(m.seq) < payload.len() as u32 {
                let base = f.tcp.client_base.unwrap_or(m.seq);
                let hello = f.hello.get_or_insert_with(|| {
                    Box::new(Hello::Tcp(ClientPrefix::in_pool(base, &self.pool)))
                });
                if let Hello::Tcp(p) = &mut **hello {
                    if p.set_urgent(at) {
                        self.stats.anomaly(Anomaly::Evasion, 1);
                        f.mark(Anomaly::Evasion);
                    }
                }
            }
        }
        let Some(f) = self.table.get(i) else {
            return;
        };
        if from_client
            && f.tls.is_some()
            && f.tcp
                .client_base
                .is_some_and(|b| m.seq.wrapping_sub(b) < MAX_PREFIX)
            && tls::looks_like_client_hello(payload)
        {
            // A second hello within the stream's first bytes, after one was read: a copy that
            // disagrees shows the other name.
            self.late_hello(i, payload, m.ts, out);
            return;
        }
        if !from_client && f.reply.is_some() {
            self.server_reply(i, payload.len(), m.ts, out);
        } else if !from_client
            && f.app.is_none()
            && f.tls.is_none()
            && f.to_server.payload == 0
            && (matches!(f.hello.as_deref(), Some(Hello::Server(_)))
                || (f.hello.is_none() && !f.hello_done && payload.starts_with(&[0x16, 0x03])))
        {
            // Only the server's side so far, and it speaks TLS: read its certificate.
            self.server_bytes(i, m.seq, payload, m.ts, out);
        } else if from_client
            && f.reply.is_some()
            && f.hello_done
            && f.tcp.client_base != Some(m.seq)
        {
            // More client data before any reply: not the handshake that was waited for.
            // (A one-way capture would otherwise wait until the flow ends.)
            self.reply_abandoned(i, m.ts, out);
        } else if from_client && !f.hello_done {
            self.client_bytes(i, m.seq, payload, m.ts, out);
        }
    }

    /// Holds the data of the client's SYN (stream offset 0 at `start`) until it is known
    /// whether the server took it; charged to the pool like any reassembly buffer.
    fn syn_data(&mut self, i: u32, start: u32, payload: &[u8], out: &mut Out) {
        let mut prefix = ClientPrefix::in_pool(start, &self.pool);
        let need = prefix.growth(start, payload.len());
        if !self.make_room(i, need, out) {
            self.stats.anomaly(Anomaly::ReassemblyMemcap, 1);
            return;
        }
        prefix.insert(start, payload);
        if let Some(f) = self.table.get_mut(i) {
            f.hello = Some(Box::new(Hello::Syn(prefix)));
            self.buffer_taken(i);
        }
    }

    /// The server acknowledged the client's sequence numbers up to `ack` (or the client's next
    /// segment starts there): data its SYN carried is stream data when `ack` covers it all
    /// (TCP Fast Open), a decoy when `ack` is the SYN's own.
    pub(super) fn syn_acked(&mut self, i: u32, ack: u32, ts: Timestamp, out: &mut Out) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let Some(Hello::Syn(p)) = f.hello.as_deref() else {
            return;
        };
        let start = f.tcp.isn.wrapping_add(1);
        let len = p.contiguous_len();
        let taken = ack.wrapping_sub(start) as i32;
        if taken >= 1 && taken as u32 >= len {
            // Read as any client bytes (a copy: TCP Fast Open flows only).
            let data = p.contiguous().to_vec();
            f.hello = None;
            self.client_bytes(i, start, &data, ts, out);
        } else {
            let Some(hello) = f.hello.take() else {
                return;
            };
            self.stats.anomaly(Anomaly::Evasion, 1);
            f.mark(Anomaly::Evasion);
            if let Hello::Syn(p) = &*hello {
                self.decoy_payload(i, p.contiguous());
            }
        }
    }

    /// A ClientHello that came after the flow's hello was read, at a sequence number within its
    /// first bytes: another name is a conflict (the two copies disagree), kept beside the first;
    /// a flagged app among the names alerts.
    fn late_hello(&mut self, i: u32, payload: &[u8], ts: Timestamp, out: &mut Out) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let Ok(ch) = tls::parse_client_hello(payload, &mut self.scratch) else {
            return;
        };
        let Some(name) = ch.sni else {
            return;
        };
        let first = f
            .tls
            .as_deref()
            .and_then(TlsSummary::sni)
            .map(str::as_bytes);
        if first == Some(name) {
            return; // a retransmission
        }
        if let Some(first) = first.map(<[u8]>::to_vec) {
            f.candidate(&first);
        }
        f.candidate(name);
        f.mark(Anomaly::ReassemblyConflict);
        f.mark(Anomaly::DecoyHello);
        f.mark(Anomaly::Evasion);
        self.stats.anomaly(Anomaly::Evasion, 1);
        self.stats.anomaly(Anomaly::ReassemblyConflict, 1);
        self.stats.anomaly(Anomaly::DecoyHello, 1);
        // Decided already, without an alert: decided again with the names seen.
        redecide(&self.rules, &mut self.apps, f, ts, at, out);
    }

    /// Keeps the server name of a ClientHello carried whole by client bytes the server does not
    /// read (a decoy, or a copy that disagrees with the bytes read).
    fn decoy_payload(&mut self, i: u32, payload: &[u8]) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let start = (0..payload.len().saturating_sub(5).min(64))
            .find(|&k| tls::looks_like_client_hello(&payload[k..]));
        let Some(k) = start else {
            return;
        };
        if let Ok(ch) = tls::parse_client_hello(&payload[k..], &mut self.scratch) {
            if let Some(name) = ch.sni {
                f.candidate(name);
            }
            self.stats.anomaly(Anomaly::DecoyHello, 1);
            f.mark(Anomaly::DecoyHello);
            if let Some(e) = f.evasion.as_deref_mut() {
                if e.decoy.is_none() {
                    e.decoy = Some(Box::new(summary(&self.rules, &ch, false)));
                }
            }
        }
    }

    /// Makes room in the reassembly budget for `len` bytes at `seq` in flow `i`'s buffer of the
    /// client's (or, with `server`, the server's) stream, which a new buffer would start at
    /// `base`. False when not even the flow's own buffer fits: it is dropped and the flow's
    /// search is over.
    fn room_for(
        &mut self,
        i: u32,
        server: bool,
        base: u32,
        seq: u32,
        len: usize,
        out: &mut Out,
    ) -> bool {
        let Some(f) = self.table.get(i) else {
            return false;
        };
        let need = match f.hello.as_deref() {
            Some(Hello::Tcp(p)) if !server => p.growth(seq, len),
            Some(Hello::Server(p)) if server => p.growth(seq, len),
            Some(_) => 0,
            None => ClientPrefix::new(base).growth(seq, len),
        };
        let id = f.id;
        if need > 0 && !self.make_room(i, need, out) {
            self.drop_buffer(i, id, out);
            if let Some(f) = self.table.get_mut(i) {
                f.hello_done = true;
            }
            return false;
        }
        true
    }

    /// Feeds the server's first stream bytes to the search for its TLS 1.2 certificate (a flow
    /// whose client side is not seen); the search ends with the certificate, or giving up.
    fn server_bytes(&mut self, i: u32, seq: u32, payload: &[u8], ts: Timestamp, out: &mut Out) {
        let at = self.now;
        // The server's bytes are held on the same budget as the client's.
        if !self.room_for(i, true, seq, seq, payload.len(), out) {
            return;
        }
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let pool = &self.pool;
        let mut hello = f
            .hello
            .take()
            .unwrap_or_else(|| Box::new(Hello::Server(ClientPrefix::in_pool(seq, pool))));
        let Hello::Server(prefix) = &mut *hello else {
            f.hello = Some(hello);
            return;
        };
        let uncharged = prefix.charged() == 0;
        let ins = prefix.insert(seq, payload);
        let taken = uncharged && prefix.charged() > 0;
        let rules = &*self.rules;
        let done = match cert::server_certificate(prefix.contiguous(), &mut self.scratch) {
            cert::CertScan::Found(c) => {
                let mut names: [&[u8]; cert::MAX_NAMES] = [&[]; cert::MAX_NAMES];
                let mut n = 0;
                cert::names(c, |name| {
                    if let Some(slot) = names.get_mut(n) {
                        *slot = name;
                        n += 1;
                    }
                });
                let name = classify::certificate_name(rules, names.get(..n).unwrap_or_default());
                if name.is_some() {
                    f.names_mut().cert_name = name;
                }
                true
            }
            cert::CertScan::GiveUp => true,
            cert::CertScan::Pending => {
                ins.beyond_cap || prefix.contiguous().len() >= cert::MAX_SERVER_PREFIX
            }
        };
        if done {
            f.hello_done = true;
            decide(rules, &mut self.apps, f, ts, at, out);
        } else {
            f.hello = Some(hello);
            if taken {
                self.buffer_taken(i);
            }
        }
    }

    /// Feeds client payload to the handshake search; the search ends with a hello, a
    /// signature, STUN messages, or giving up.
    pub(super) fn client_bytes(
        &mut self,
        i: u32,
        seq: u32,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Out,
    ) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let base = f.tcp.client_base.unwrap_or(seq);
        if !self.room_for(i, false, base, seq, payload.len(), out) {
            return;
        }
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let pool = &self.pool;
        // Taken out while it is read, so what it says can go into the flow.
        let mut hello = f
            .hello
            .take()
            .unwrap_or_else(|| Box::new(Hello::Tcp(ClientPrefix::in_pool(base, pool))));
        let Hello::Tcp(prefix) = &mut *hello else {
            f.hello_done = true;
            return;
        };
        if seq == base && f.shape == Shape::None {
            f.shape = shape::tcp(payload);
        }
        let uncharged = prefix.charged() == 0;
        let ins = prefix.insert(seq, payload);
        let taken = uncharged && prefix.charged() > 0;
        if ins.conflict {
            f.mark(Anomaly::ReassemblyConflict);
            // The copy not read may be a whole hello of its own: keep its name.
            let start = (0..payload.len().saturating_sub(5).min(64))
                .find(|&k| tls::looks_like_client_hello(&payload[k..]));
            if let Some(k) = start {
                if let Ok(ch) = tls::parse_client_hello(&payload[k..], &mut self.scratch) {
                    if let Some(name) = ch.sni {
                        f.candidate(name);
                    }
                    self.stats.anomaly(Anomaly::DecoyHello, 1);
                    self.stats.anomaly(Anomaly::Evasion, 1);
                    f.mark(Anomaly::DecoyHello);
                    f.mark(Anomaly::Evasion);
                }
            }
        }
        self.stats
            .anomaly(Anomaly::ReassemblyConflict, u64::from(ins.conflict));
        self.stats
            .anomaly(Anomaly::ReassemblyLimit, u64::from(ins.beyond_cap));
        let rules = &*self.rules;
        let reach = rules.signature_reach(Transport::Tcp);
        if ins.grew && f.app.is_none() && reach > 0 && prefix.contiguous_len() as usize >= reach {
            let port = f.server().1;
            // Length fields count the client's first segment only.
            let frame = if seq == base {
                payload.len()
            } else {
                usize::MAX
            };
            if let Some(c) =
                classify::by_payload(rules, Transport::Tcp, port, prefix.contiguous(), frame)
            {
                // A signature decides at once: no handshake is coming.
                f.marks = Some(Box::new(c));
                f.hello_done = true;
                decide(rules, &mut self.apps, f, ts, at, out);
                return;
            }
        }
        // Client data past the first segment before any reply: not the handshake waited for.
        if f.reply.is_some() && seq != base {
            f.reply = None;
        }
        // Only a handshake seen from its start: the SYN or SYN-ACK fixed where the client's data
        // begins, and the server has sent nothing yet (a flow picked up mid-way has no "first"
        // segments, and 48- and 80-byte records are common there).
        if ins.grew
            && seq == base
            && f.tcp.client_base.is_some()
            && f.to_client.payload == 0
            && f.app.is_none()
            && f.reply.is_none()
            && rules.has_reply_signatures()
        {
            let port = f.server().1;
            if let Some(sig) = rules.reply_candidate(port, prefix.contiguous(), payload.len()) {
                f.reply = Some(ReplyWait {
                    sig,
                    rules_gen: self.rules_gen,
                });
            }
        }
        if ins.grew && f.app.is_none() && stun::parse_stream(prefix.contiguous()).is_some() {
            // STUN/TURN over TCP (RFC 8489 §6.2.2, or framed as ICE-TCP does): no TLS is coming.
            // The client's first messages are read as they come (an allocation's first try
            // usually carries no realm; its retry after the 401 does).
            let data = prefix.contiguous();
            let found = stun::stream_messages(data, MAX_TCP_STUN)
                .find_map(|msg| classify::by_stun(rules, &msg));
            let whole = stun::stream_messages(data, MAX_TCP_STUN).count();
            if let Some(c) = found {
                f.marks = Some(Box::new(c));
                f.hello_done = true;
                decide(rules, &mut self.apps, f, ts, at, out);
            } else if whole >= MAX_TCP_STUN || ins.beyond_cap {
                f.hello_done = true;
                decide(rules, &mut self.apps, f, ts, at, out);
            } else {
                f.hello = Some(hello);
                if taken {
                    self.buffer_taken(i);
                }
            }
            return;
        }
        let done = if !ins.grew {
            // The client is past the cap and the prefix still has a hole: the missing bytes
            // are not coming back in time. Stop and free the buffer.
            if ins.beyond_cap {
                self.stats.hello_gave_up += 1;
                true
            } else {
                false
            }
        } else {
            match prefix.scan_hello(&mut self.scratch) {
                HelloScan::Found(ch) => {
                    hello_read(&mut self.stats, &ch, f);
                    f.tls = Some(Box::new(summary(rules, &ch, false)));
                    true
                }
                HelloScan::GiveUp => {
                    self.stats.hello_gave_up += 1;
                    true
                }
                HelloScan::Pending => false,
            }
        };
        let bad = prefix.take_malformed();
        self.stats.anomaly(Anomaly::TlsMalformed, u64::from(bad));
        if done && f.tls.is_none() && prefix.hello_started() {
            self.stats.anomaly(Anomaly::HelloIncomplete, 1);
        }
        conclude(rules, &mut self.apps, f, hello, done, ts, at, out);
        if taken && !done {
            self.buffer_taken(i);
        }
    }

    /// The server's first segment on a flow whose client's first segment matched a signature that
    /// waits for the reply: its exact size decides. Otherwise a search that already ended
    /// without a hello leaves the flow to its address now, and one still going on goes on.
    fn server_reply(&mut self, i: u32, len: usize, ts: Timestamp, out: &mut Out) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let Some(wait) = f.reply.take() else {
            return;
        };
        if f.app.is_some() || f.tls.is_some() {
            return;
        }
        // Rules reloaded since the client's segment: the index means another signature now. And
        // only the server's first data counts (its bytes so far are this segment's).
        let first = f.to_client.payload == len as u64;
        let rules = &*self.rules;
        let found = (wait.rules_gen == self.rules_gen && first)
            .then(|| classify::by_reply(rules, wait.sig, len))
            .flatten();
        match found {
            Some(c) => {
                // A server that answers before any ClientHello completed: no TLS is coming.
                if let Some(Hello::Tcp(p)) = f.hello.as_deref() {
                    if p.hello_started() {
                        self.stats.anomaly(Anomaly::HelloIncomplete, 1);
                    }
                }
                f.hello = None;
                f.hello_done = true;
                f.marks = Some(Box::new(c));
                decide(rules, &mut self.apps, f, ts, at, out);
            }
            None if f.hello_done => decide(rules, &mut self.apps, f, ts, at, out),
            None => {}
        }
    }

    /// Stops waiting for a server reply (the client went on without one): a search that already
    /// ended without a hello leaves the flow to its address now.
    fn reply_abandoned(&mut self, i: u32, ts: Timestamp, out: &mut Out) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        f.reply = None;
        if f.app.is_none() && f.tls.is_none() {
            decide(&self.rules, &mut self.apps, f, ts, at, out);
        }
    }
}
