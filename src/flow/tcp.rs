//! What a TCP flow's first bytes reveal: the client's stream reassembled until a ClientHello,
//! STUN/TURN messages or a payload signature shows, and the size of the server's first reply
//! where a signature waits for it. Gathers facts and says when the search is over.

use super::reasm::{ClientPrefix, HelloScan};
use super::state::{CertName, Flow, Hello, ReplyWait};
use super::tracker::{conclude, decide, hello_read, FlowTracker};
use super::Out;
use crate::capture::Timestamp;
use crate::classify;
use crate::decode::{tcp_flags, PacketMeta, Transport};
use crate::export::record::Anomaly;
use crate::proto::cert;
use crate::proto::shape::{self, Shape};
use crate::proto::stun;
use crate::proto::tls::{ClientHello, TlsSummary};
use crate::rules::CompiledRules;

/// Most STUN messages read at the start of a TCP stream.
const MAX_TCP_STUN: usize = 4;

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
        track_tcp(f, m, from_client);
        if payload.is_empty() {
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
            // Data on a SYN (TCP Fast Open) starts after the SYN's own sequence number.
            let seq = if m.flags & tcp_flags::SYN != 0 {
                m.seq.wrapping_add(1)
            } else {
                m.seq
            };
            self.client_bytes(i, seq, payload, m.ts, out);
        }
    }

    /// Feeds the server's first stream bytes to the search for its TLS 1.2 certificate (a flow
    /// whose client side is not seen); the search ends with the certificate, or giving up.
    fn server_bytes(&mut self, i: u32, seq: u32, payload: &[u8], ts: Timestamp, out: &mut Out) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let mut hello = f
            .hello
            .take()
            .unwrap_or_else(|| Box::new(Hello::Server(ClientPrefix::new(seq))));
        let Hello::Server(prefix) = &mut *hello else {
            f.hello = Some(hello);
            return;
        };
        let ins = prefix.insert(seq, payload);
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
                f.cert_name = classify::certificate_name(rules, names.get(..n).unwrap_or_default())
                    .map(|n| Box::new(CertName(n)));
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
        }
    }

    /// Feeds client payload to the handshake search; the search ends with a hello, a
    /// signature, STUN messages, or giving up.
    fn client_bytes(&mut self, i: u32, seq: u32, payload: &[u8], ts: Timestamp, out: &mut Out) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let base = f.tcp.client_base.unwrap_or(seq);
        // Taken out while it is read, so what it says can go into the flow.
        let mut hello = f
            .hello
            .take()
            .unwrap_or_else(|| Box::new(Hello::Tcp(ClientPrefix::new(base))));
        let Hello::Tcp(prefix) = &mut *hello else {
            f.hello_done = true;
            return;
        };
        if seq == base && f.shape == Shape::None {
            f.shape = shape::tcp(payload);
        }
        let ins = prefix.insert(seq, payload);
        self.stats
            .anomaly(Anomaly::ReassemblyConflict, u64::from(ins.conflict));
        self.stats.anomaly(
            Anomaly::ReassemblyLimit,
            u64::from(ins.beyond_cap || ins.too_many_holes),
        );
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
                    hello_read(&mut self.stats, &ch);
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
