//! What a UDP flow's first datagrams reveal: the question of a DNS message, STUN/TURN messages
//! (also inside TURN ChannelData), QUIC client Initials gathered until their ClientHello (or
//! Q050's CHLO) is whole, the CHLO of Google QUIC's plaintext packets (Q0xx up to Q046), and
//! payload signatures. Gathers facts and says when the search is over.

use super::reasm::{ClientPrefix, HelloScan};
use super::state::Hello;
use super::tcp::summary;
use super::tracker::{conclude, decide, hello_read, FlowTracker};
use super::Out;
use crate::capture::Timestamp;
use crate::classify;
use crate::decode::Transport;
use crate::export::record::Anomaly;
use crate::proto::quic::gquic::{self, ChloScan};
use crate::proto::shape::{self, Shape};
use crate::proto::tls::TlsSummary;
use crate::proto::{dns, quic, stun};

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
        payload: &[u8],
        from_client: bool,
        ts: Timestamp,
        out: &mut Out,
    ) {
        let at = self.now;
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
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
            self.quic_datagram(i, payload, ts, out);
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
    /// is whole or cannot be.
    fn quic_datagram(&mut self, i: u32, payload: &[u8], ts: Timestamp, out: &mut Out) {
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
            })
        });
        let Hello::Quic {
            dcid,
            crypto,
            datagrams,
        } = &mut *hello
        else {
            f.hello_done = true;
            return;
        };
        *datagrams = datagrams.saturating_add(1);
        let uncharged = crypto.charged() == 0;
        let known = *dcid;
        let mut conflict = false;
        let got = quic::client_initials(
            payload,
            known.as_ref(),
            &mut self.quic_scratch,
            |off, data| {
                if let Ok(off) = u32::try_from(off) {
                    conflict |= crypto.insert(off, data).conflict;
                }
            },
        );
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
        if let Ok(info) = got {
            if dcid.is_none() {
                *dcid = Some(info.dcid);
            }
        }
        let rules = &*self.rules;
        // Q050's CRYPTO stream holds QUIC crypto's CHLO, not a TLS ClientHello.
        let done = match gquic::scan_chlo(crypto.contiguous()) {
            ChloScan::Found(c) => {
                self.stats.hellos += 1;
                f.tls = Some(Box::new(TlsSummary::from_chlo(&c)));
                true
            }
            ChloScan::Pending if crypto.contiguous_len() > 0 && *datagrams < MAX_QUIC_DATAGRAMS => {
                false
            }
            _ => match crypto.scan_handshake_message() {
                HelloScan::Found(ch) => {
                    hello_read(&mut self.stats, &ch, f);
                    f.tls = Some(Box::new(summary(rules, &ch, true)));
                    true
                }
                HelloScan::GiveUp => {
                    self.stats.hello_gave_up += 1;
                    true
                }
                HelloScan::Pending if *datagrams >= MAX_QUIC_DATAGRAMS => {
                    self.stats.hello_gave_up += 1;
                    true
                }
                HelloScan::Pending => false,
            },
        };
        let taken = uncharged && crypto.charged() > 0;
        let id = f.id;
        if done && f.tls.is_none() {
            // Initials that did not open: the version's keys are not the known ones.
            f.shape = Shape::QuicUnknown;
        }
        conclude(rules, &mut self.apps, f, hello, done, ts, at, out);
        if taken && !done {
            self.buffer_taken(i);
        }
        // A datagram's CRYPTO frames are only known once it is opened: the memcap is kept
        // after it, dropping older buffers first, then this one.
        if !done && self.pool.used() > self.cfg_memcap() && !self.make_room(i, 0, out) {
            self.drop_buffer(i, id, out);
        }
    }
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
