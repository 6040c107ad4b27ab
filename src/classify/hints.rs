//! What one flow tells about others: the addresses DNS answers gave for an app's names
//! (`dns_answer`), and the endpoints a call's STUN/TURN exchange revealed (`peer_cache`).
//!
//! The reader thread is the only writer: it looks at DNS responses and app-marked STUN messages
//! in capture order, before it hands them to a worker, so a flow's first packet is dispatched
//! after every answer that came before it in the capture, whatever the worker count. Workers read
//! once per new flow (a shard read lock of a [`DashMap`]); nothing here is on the per-packet path
//! of an established flow.
//!
//! Both caches are bounded: at most `capacity` entries each, the oldest insertion dropped first,
//! and an entry only counts for flows that start after the answer (strictly: the packet that
//! made it is not the flow's own first packet) and before the end of its lifetime (the record's TTL, capped at a day, for DNS; [`PEER_TTL`] after the last marked
//! message for peers). What is kept is the app id and the rule, not the verdict, so a rule
//! reload's new verdicts apply to entries made before it.
//!
//! Known limit: when the cache is full, or a newer answer replaced an entry, a worker that lags
//! the reader can miss an entry that was valid for its flow; with `--workers 1` and no eviction
//! the result is the same as with any other width.

use crate::capture::Timestamp;
use crate::classify::{AppSource, Classification};
use crate::rules::CompiledRules;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How long after a call's last app-marked STUN message its endpoints stay attributed.
pub const PEER_TTL_SECS: u64 = 300;
/// [`PEER_TTL_SECS`] in nanoseconds.
pub const PEER_TTL: u64 = PEER_TTL_SECS * 1_000_000_000;
/// App-marked STUN requests remembered until their responses come.
const MAX_PENDING: usize = 4096;
/// Default entries per cache.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// What a cache entry attributes to an address.
#[derive(Clone, Debug)]
struct Entry {
    app: Arc<str>,
    rule: Arc<str>,
    /// The name the DNS answer was for (peer entries: none).
    name: Option<Arc<str>>,
    /// Valid for flows starting at or after this time...
    from: Timestamp,
    /// ...and up to this time.
    until: Timestamp,
}

/// One bounded cache; written by one thread, read by many.
#[derive(Debug)]
struct Cache<K: std::hash::Hash + Eq> {
    map: DashMap<K, Entry, foldhash::fast::RandomState>,
    /// Entries in `map`, kept by the writer: `DashMap::len` locks every shard, too dear for
    /// each new flow's "anything cached?" check.
    held: AtomicUsize,
    capacity: usize,
    evicted: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Copy> Cache<K> {
    fn new(capacity: usize) -> Self {
        Cache {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            held: AtomicUsize::new(0),
            capacity: capacity.max(1),
            evicted: AtomicU64::new(0),
        }
    }

    fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn get(&self, k: &K, at: Timestamp) -> Option<Entry> {
        if self.len() == 0 {
            return None;
        }
        let e = self.map.get(k)?;
        (e.from < at && at <= e.until).then(|| e.clone())
    }
}

/// The shared caches. Cheap to share (`Arc`); see the module documentation.
#[derive(Debug)]
pub struct Hints {
    dns: Cache<IpAddr>,
    peers: Cache<SocketAddr>,
}

impl Default for Hints {
    fn default() -> Self {
        Hints::new(DEFAULT_CAPACITY)
    }
}

/// A hint a flow found when it started: the app the caches attribute to one of its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The classification, with source [`AppSource::DnsAnswer`] or [`AppSource::PeerCache`].
    pub class: Classification,
    /// The DNS name whose answer gave the address (DNS hints only).
    pub name: Option<Arc<str>>,
}

impl Hints {
    /// Empty caches of at most `capacity` entries each.
    pub fn new(capacity: usize) -> Self {
        Hints {
            dns: Cache::new(capacity),
            peers: Cache::new(capacity),
        }
    }

    /// Entries held now: (DNS answers, peer endpoints).
    pub fn len(&self) -> (usize, usize) {
        (self.dns.len(), self.peers.len())
    }

    /// Whether both caches are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Entries dropped to stay within the capacity: (DNS answers, peer endpoints).
    pub fn evicted(&self) -> (u64, u64) {
        (
            self.dns.evicted.load(Ordering::Relaxed),
            self.peers.evicted.load(Ordering::Relaxed),
        )
    }

    /// What the caches say of a flow that started at `at` between `server` and `client`: a peer
    /// endpoint (either side; UDP only) first, then the server's address in a DNS answer.
    pub fn lookup(
        &self,
        rules: &CompiledRules,
        udp: bool,
        server: SocketAddr,
        client: SocketAddr,
        at: Timestamp,
    ) -> Option<Hint> {
        if self.is_empty() {
            return None;
        }
        let peer = if udp {
            self.peers
                .get(&client, at)
                .or_else(|| self.peers.get(&server, at))
        } else {
            None
        };
        let (e, source) = match peer {
            Some(e) => (e, AppSource::PeerCache),
            None => (self.dns.get(&server.ip(), at)?, AppSource::DnsAnswer),
        };
        let app = rules.app_by_id(&e.app)?;
        Some(Hint {
            class: Classification {
                app: Arc::clone(&app.id),
                source,
                rule: e.rule,
                verdict: app.verdict,
                alert: app.alert,
            },
            name: e.name,
        })
    }
}

/// The reader's side: puts what DNS responses and STUN messages reveal into the caches, and
/// drops the oldest entries beyond the capacity.
#[derive(Debug)]
pub struct HintWriter {
    shared: Arc<Hints>,
    dns_order: VecDeque<(IpAddr, Timestamp)>,
    peer_order: VecDeque<(SocketAddr, Timestamp)>,
    /// App-marked requests waiting for their responses, by transaction id, oldest first: a
    /// response reveals addresses (the client's mapped address, a relayed one) without carrying
    /// the app's marks itself.
    pending: hashbrown::HashMap<[u8; 12], (Arc<str>, Arc<str>), foldhash::fast::RandomState>,
    pending_order: VecDeque<[u8; 12]>,
    /// DNS responses read (for the counters).
    pub dns_responses: u64,
    /// App-marked STUN messages read.
    pub stun_marked: u64,
}

/// Inserts or refreshes `k`: the same app keeps its start and extends its end; another app
/// replaces the entry; then the oldest entries beyond the capacity are dropped.
fn put<K: std::hash::Hash + Eq + Copy>(
    cache: &Cache<K>,
    order: &mut VecDeque<(K, Timestamp)>,
    k: K,
    e: Entry,
) {
    use dashmap::mapref::entry::Entry as E;
    match cache.map.entry(k) {
        E::Occupied(mut o) => {
            let old = o.get_mut();
            if old.app == e.app && old.until >= e.from {
                old.until = old.until.max(e.until);
                return;
            }
            let from = e.from;
            *old = e;
            order.push_back((k, from));
        }
        E::Vacant(v) => {
            let from = e.from;
            v.insert(e);
            cache.held.fetch_add(1, Ordering::Relaxed);
            order.push_back((k, from));
        }
    }
    while cache.len() > cache.capacity || order.len() > 2 * cache.capacity {
        let Some((old, from)) = order.pop_front() else {
            break;
        };
        // The queue can hold a key more than once (it was replaced); only its newest
        // insertion removes it.
        if cache.map.remove_if(&old, |_, e| e.from == from).is_some() {
            cache.held.fetch_sub(1, Ordering::Relaxed);
            cache.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl HintWriter {
    /// A writer for `shared`.
    pub fn new(shared: Arc<Hints>) -> Self {
        HintWriter {
            shared,
            dns_order: VecDeque::new(),
            peer_order: VecDeque::new(),
            pending: hashbrown::HashMap::default(),
            pending_order: VecDeque::new(),
            dns_responses: 0,
            stun_marked: 0,
        }
    }

    /// The caches written.
    pub fn shared(&self) -> &Arc<Hints> {
        &self.shared
    }

    /// Looks at a UDP payload (or the start of a TCP segment, `tcp`) between `src` and `dst`:
    /// a DNS response from port 53 fills the DNS cache with the addresses of names that an app
    /// rule claims; an app-marked STUN message fills the peer cache with the asking side's
    /// endpoint and the addresses the message reveals.
    pub fn observe(
        &mut self,
        rules: &CompiledRules,
        tcp: bool,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        ts: Timestamp,
    ) {
        if src.port() == 53 {
            let msg = if tcp { payload.get(2..) } else { Some(payload) };
            if let Some(msg) = msg {
                self.dns_response(rules, msg, ts);
            }
        } else if !tcp {
            let inner = crate::proto::stun::channel_data(payload).map_or(payload, |c| c.data);
            if crate::proto::stun::looks_like_stun(inner) {
                self.stun(rules, src, dst, inner, ts);
            }
        }
    }

    fn dns_response(&mut self, rules: &CompiledRules, msg: &[u8], ts: Timestamp) {
        let Ok(a) = crate::proto::dns::answers(msg) else {
            return;
        };
        self.dns_responses += 1;
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
            put(&self.shared.dns, &mut self.dns_order, addr.ip, e);
        }
    }

    fn stun(
        &mut self,
        rules: &CompiledRules,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        ts: Timestamp,
    ) {
        let Some(msg) = crate::proto::stun::parse(payload) else {
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
        self.stun_marked += 1;
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
            put(&self.shared.peers, &mut self.peer_order, ep, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn dns_answer_within_ttl_only_and_only_for_app_names() {
        let rules = crate::rules::defaults().unwrap();
        let mut w = HintWriter::new(Arc::new(Hints::new(16)));
        let dns = sa("10.0.0.53:53");
        let client = sa("10.0.0.9:40000");
        let t0 = Timestamp(100 * SEC);
        w.observe(
            &rules,
            false,
            dns,
            client,
            &response("zoom.us", [1, 2, 3, 4], 60),
            t0,
        );
        w.observe(
            &rules,
            false,
            dns,
            client,
            &response("www.example.com", [5, 6, 7, 8], 60),
            t0,
        );
        let h = w.shared().clone();
        assert_eq!(h.len(), (1, 0), "only the app's name is kept");
        let server = sa("1.2.3.4:443");
        let hit = h
            .lookup(&rules, false, server, client, Timestamp(130 * SEC))
            .unwrap();
        assert_eq!(&*hit.class.app, "zoom");
        assert_eq!(hit.class.source, AppSource::DnsAnswer);
        assert_eq!(hit.name.as_deref(), Some("zoom.us"));
        assert!(h
            .lookup(&rules, false, server, client, Timestamp(99 * SEC))
            .is_none());
        assert!(h
            .lookup(&rules, false, server, client, Timestamp(161 * SEC))
            .is_none());
        // A later answer for the same app extends the entry; it still covers the first flow.
        w.observe(
            &rules,
            false,
            dns,
            client,
            &response("zoom.us", [1, 2, 3, 4], 60),
            Timestamp(150 * SEC),
        );
        assert!(h
            .lookup(&rules, false, server, client, Timestamp(101 * SEC))
            .is_some());
        assert!(h
            .lookup(&rules, false, server, client, Timestamp(200 * SEC))
            .is_some());
    }

    #[test]
    fn capacity_drops_the_oldest() {
        let rules = crate::rules::defaults().unwrap();
        let mut w = HintWriter::new(Arc::new(Hints::new(4)));
        let dns = sa("10.0.0.53:53");
        let client = sa("10.0.0.9:40000");
        for i in 0..10u8 {
            let r = response("zoom.us", [1, 2, 3, i], 600);
            w.observe(
                &rules,
                false,
                dns,
                client,
                &r,
                Timestamp(u64::from(i) * SEC),
            );
        }
        // Another app's answer for a held address replaces it: still 4 entries.
        let r = response("whatsapp.net", [1, 2, 3, 9], 600);
        w.observe(&rules, false, dns, client, &r, Timestamp(11 * SEC));
        let h = w.shared().clone();
        assert_eq!(h.len().0, 4);
        assert_eq!(h.dns.map.len(), 4, "the kept count is the map's");
        assert_eq!(h.evicted().0, 6);
        let at = Timestamp(20 * SEC);
        assert!(h
            .lookup(&rules, false, sa("1.2.3.0:443"), client, at)
            .is_none());
        assert!(h
            .lookup(&rules, false, sa("1.2.3.9:443"), client, at)
            .is_some());
    }

    #[test]
    fn stun_marks_the_asker_and_revealed_endpoints() {
        let rules = crate::rules::defaults().unwrap();
        let mut w = HintWriter::new(Arc::new(Hints::new(16)));
        // A WhatsApp-typed request (0x0801) from the client to a relay.
        let mut m = vec![0x08, 0x01, 0x00, 0x00];
        m.extend(crate::proto::stun::MAGIC_COOKIE.to_be_bytes());
        m.extend([7; 12]);
        let client = sa("192.168.2.4:51518");
        let relay = sa("157.240.1.1:3478");
        w.observe(&rules, false, client, relay, &m, Timestamp(10 * SEC));
        let h = w.shared().clone();
        assert_eq!(h.len(), (0, 1), "the asking side only");
        // A media flow from the same socket to a peer, a minute later.
        let peer = sa("1.194.90.191:60312");
        let hit = h
            .lookup(&rules, true, peer, client, Timestamp(70 * SEC))
            .unwrap();
        assert_eq!(&*hit.class.app, "whatsapp");
        assert_eq!(hit.class.source, AppSource::PeerCache);
        // Not for TCP, and not after the TTL.
        assert!(h
            .lookup(&rules, false, peer, client, Timestamp(70 * SEC))
            .is_none());
        let late = Timestamp(10 * SEC + PEER_TTL + 1);
        assert!(h.lookup(&rules, true, peer, client, late).is_none());
        // An unmarked STUN message changes nothing.
        let mut plain = vec![0x00, 0x01, 0x00, 0x00];
        plain.extend(crate::proto::stun::MAGIC_COOKIE.to_be_bytes());
        plain.extend([8; 12]);
        w.observe(
            &rules,
            false,
            sa("10.0.0.1:5000"),
            relay,
            &plain,
            Timestamp(11 * SEC),
        );
        assert_eq!(h.len(), (0, 1));
    }
}
