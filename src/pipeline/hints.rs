//! The reader's side of the hint caches: it looks at DNS responses and app-marked STUN messages
//! in capture order, before it hands them to a worker, and turns what they reveal into
//! [`HintUpdate`]s that every worker applies to its own copy (`flow::hints`) in band with its
//! packets. The reader keeps only the STUN requests still waiting for their responses.
//!
//! Parsing is `proto`'s; which names and STUN marks belong to an app is the rules'. Nothing here
//! is on the per-packet path of an established flow: the reader calls it for DNS responses and
//! for UDP datagrams that look like STUN.

use crate::capture::Timestamp;
use crate::flow::hints::{Entry, HintUpdate};
use crate::proto::{dns, stun};
use crate::rules::CompiledRules;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

/// How long after a call's last app-marked STUN message its endpoints stay attributed.
pub const PEER_TTL_SECS: u64 = 300;
/// [`PEER_TTL_SECS`] in nanoseconds.
pub const PEER_TTL: u64 = PEER_TTL_SECS * 1_000_000_000;
/// App-marked STUN requests remembered until their responses come.
const MAX_PENDING: usize = 4096;

/// Turns DNS responses and app-marked STUN messages into cache updates.
#[derive(Debug, Default)]
pub struct HintWriter {
    /// App-marked requests waiting for their responses, by transaction id, oldest first: a
    /// response reveals addresses (the client's mapped address, a relayed one) without carrying
    /// the app's marks itself.
    pending: hashbrown::HashMap<[u8; 12], (Arc<str>, Arc<str>), foldhash::fast::FixedState>,
    pending_order: VecDeque<[u8; 12]>,
    /// The updates of the payload looked at last (reused).
    out: Vec<HintUpdate>,
}

impl HintWriter {
    /// A writer with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at a UDP payload (or the start of a TCP segment, `tcp`) between `src` and `dst`:
    /// a DNS response from port 53 gives the addresses of names that an app rule claims; an
    /// app-marked STUN message gives the asking side's endpoint and the addresses the message
    /// reveals. Returns the updates, in order.
    pub fn observe(
        &mut self,
        rules: &CompiledRules,
        tcp: bool,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        ts: Timestamp,
    ) -> std::vec::Drain<'_, HintUpdate> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.look(rules, tcp, src, dst, payload, ts, &mut out);
        self.out = out;
        self.out.drain(..)
    }

    #[allow(clippy::too_many_arguments)] // observe's arguments and where its updates go
    fn look(
        &mut self,
        rules: &CompiledRules,
        tcp: bool,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Vec<HintUpdate>,
    ) {
        if src.port() == 53 {
            let msg = if tcp { payload.get(2..) } else { Some(payload) };
            if let Some(msg) = msg {
                dns_response(rules, msg, ts, out);
            }
        } else if !tcp {
            let inner = stun::channel_data(payload).map_or(payload, |c| c.data);
            if stun::looks_like_stun(inner) {
                self.stun(rules, src, dst, inner, ts, out);
            }
        }
    }

    fn stun(
        &mut self,
        rules: &CompiledRules,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Vec<HintUpdate>,
    ) {
        let Some(msg) = stun::parse(payload) else {
            return;
        };
        let Ok(txid) = <[u8; 12]>::try_from(msg.txid()) else {
            return;
        };
        let request = msg.is_request_or_indication();
        let (app, rule) = match rules.match_stun(&msg) {
            Some(m) => {
                let Some(app) = rules.apps().get(usize::from(m.app)) else {
                    return;
                };
                if request && !self.pending.contains_key(&txid) {
                    if self.pending_order.len() >= MAX_PENDING {
                        if let Some(old) = self.pending_order.pop_front() {
                            self.pending.remove(&old);
                        }
                    }
                    self.pending
                        .insert(txid, (Arc::clone(&app.id), Arc::clone(&m.rule)));
                    self.pending_order.push_back(txid);
                }
                (Arc::clone(&app.id), Arc::clone(&m.rule))
            }
            // A response to a marked request is the same exchange.
            None if !request => match self.pending.get(&txid) {
                Some((app, rule)) => (Arc::clone(app), Arc::clone(rule)),
                None => return,
            },
            None => return,
        };
        let asker = if request { src } else { dst };
        let until = ts.plus_nanos(PEER_TTL);
        for ep in std::iter::once(asker).chain(msg.addresses()) {
            if ep.ip().is_unspecified() || ep.port() == 0 {
                continue;
            }
            let e = Entry {
                app: Arc::clone(&app),
                rule: Arc::clone(&rule),
                name: None,
                from: ts,
                until,
            };
            out.push(HintUpdate::Peer(ep, e));
        }
    }
}

/// The addresses a DNS response gives for the first of its names that an app rule claims.
fn dns_response(rules: &CompiledRules, msg: &[u8], ts: Timestamp, out: &mut Vec<HintUpdate>) {
    let Ok(a) = dns::answers(msg) else {
        return;
    };
    if a.addrs().is_empty() {
        return;
    }
    let Some((name, m)) = a.names().find_map(|n| rules.match_host(n).map(|m| (n, m))) else {
        return;
    };
    let Some(app) = rules.apps().get(usize::from(m.app)) else {
        return;
    };
    let name: Arc<str> = String::from_utf8_lossy(name).into();
    for addr in a.addrs() {
        if addr.ttl == 0 {
            continue;
        }
        let e = Entry {
            app: Arc::clone(&app.id),
            rule: Arc::clone(&m.rule),
            name: Some(Arc::clone(&name)),
            from: ts,
            until: ts.plus_nanos(u64::from(addr.ttl) * 1_000_000_000),
        };
        out.push(HintUpdate::Dns(addr.ip, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::AppSource;
    use crate::flow::hints::HintCache;

    const SEC: u64 = 1_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A DNS response for `name` with one A record `ip` and `ttl`.
    fn response(name: &str, ip: [u8; 4], ttl: u32) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend(l.as_bytes());
        }
        m.extend([0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1]);
        m.extend(ttl.to_be_bytes());
        m.extend([0, 4]);
        m.extend(ip);
        m
    }

    /// The writer's updates for one payload, applied to `cache`.
    fn feed(
        w: &mut HintWriter,
        cache: &mut HintCache,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        ts: Timestamp,
    ) -> usize {
        let rules = crate::rules::defaults().unwrap();
        let out: Vec<HintUpdate> = w.observe(&rules, false, src, dst, payload, ts).collect();
        let n = out.len();
        out.into_iter().for_each(|u| cache.apply(u));
        n
    }

    #[test]
    fn dns_answer_only_for_app_names_within_ttl() {
        let rules = crate::rules::defaults().unwrap();
        let (mut w, mut c) = (HintWriter::new(), HintCache::new(16));
        let dns = sa("10.0.0.53:53");
        let client = sa("10.0.0.9:40000");
        let t0 = Timestamp(100 * SEC);
        let zoom = response("zoom.us", [1, 2, 3, 4], 60);
        assert_eq!(feed(&mut w, &mut c, dns, client, &zoom, t0), 1);
        let other = response("www.example.com", [5, 6, 7, 8], 60);
        assert_eq!(feed(&mut w, &mut c, dns, client, &other, t0), 0);
        let server = sa("1.2.3.4:443");
        let hit = c
            .lookup(&rules, false, server, client, Timestamp(130 * SEC))
            .unwrap();
        assert_eq!(&*hit.class.app, "zoom");
        assert_eq!(hit.name.as_deref(), Some("zoom.us"));
        assert!(c
            .lookup(&rules, false, server, client, Timestamp(161 * SEC))
            .is_none());
        // A query (not from port 53) reveals nothing.
        assert_eq!(feed(&mut w, &mut c, client, dns, &zoom, t0), 0);
    }

    #[test]
    fn stun_marks_the_asker_and_a_response_follows_its_request() {
        let rules = crate::rules::defaults().unwrap();
        let (mut w, mut c) = (HintWriter::new(), HintCache::new(16));
        // A WhatsApp-typed request (0x0801) from the client to a relay.
        let mut m = vec![0x08, 0x01, 0x00, 0x00];
        m.extend(stun::MAGIC_COOKIE.to_be_bytes());
        m.extend([7; 12]);
        let client = sa("192.168.2.4:51518");
        let relay = sa("157.240.1.1:3478");
        assert_eq!(
            feed(&mut w, &mut c, client, relay, &m, Timestamp(10 * SEC)),
            1
        );
        assert_eq!(c.len(), (0, 1), "the asking side only");
        let peer = sa("1.194.90.191:60312");
        let hit = c
            .lookup(&rules, true, peer, client, Timestamp(70 * SEC))
            .unwrap();
        assert_eq!(&*hit.class.app, "whatsapp");
        assert_eq!(hit.class.source, AppSource::PeerCache);
        let late = Timestamp(10 * SEC + PEER_TTL + 1);
        assert!(c.lookup(&rules, true, peer, client, late).is_none());
        // The unmarked success response to that request (same transaction id) is the same
        // exchange: it refreshes the asker's entry.
        let mut resp = vec![0x01, 0x01, 0x00, 0x00];
        resp.extend(stun::MAGIC_COOKIE.to_be_bytes());
        resp.extend([7; 12]);
        assert_eq!(
            feed(&mut w, &mut c, relay, client, &resp, Timestamp(20 * SEC)),
            1
        );
        // An unmarked request changes nothing.
        let mut plain = vec![0x00, 0x01, 0x00, 0x00];
        plain.extend(stun::MAGIC_COOKIE.to_be_bytes());
        plain.extend([8; 12]);
        let other = sa("10.0.0.1:5000");
        assert_eq!(
            feed(&mut w, &mut c, other, relay, &plain, Timestamp(11 * SEC)),
            0
        );
        assert_eq!(c.len(), (0, 1));
    }
}
