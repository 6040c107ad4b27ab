//! What one flow tells about others, as one worker holds it: the addresses DNS answers gave for
//! an app's names (`dns_answer`), and the endpoints a call's STUN/TURN exchange revealed
//! (`peer_cache`). Each worker owns its own copy; nothing here is shared or locked.
//!
//! The reader finds the updates (`pipeline::hints`) in capture order and hands every worker the
//! same ones, in band with its packets: a worker applies an update exactly where it fell among
//! the packets, so a flow's first packet sees every answer that came before it in the capture
//! and none after, whatever the worker count or how far a worker lags. Every copy gets the same
//! updates in the same order, so the copies are equal, evictions included.
//!
//! Both caches are bounded: at most `capacity` entries each, the oldest insertion dropped first,
//! and an entry only counts for flows that start after the answer (strictly: the packet that
//! made it is not the flow's own first packet) and before the end of its lifetime (the record's
//! TTL, capped at a day, for DNS; `pipeline::hints::PEER_TTL` after the last marked message for
//! peers). What is kept is the app id and the rule, not the verdict, so a rule reload's new
//! verdicts apply to entries made before it.

use crate::capture::Timestamp;
use crate::classify::{AppSource, Classification};
use crate::rules::CompiledRules;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Default entries per cache.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// What a cache entry attributes to an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// App id.
    pub app: Arc<str>,
    /// The rule that claimed the name or the STUN message, `file:line`.
    pub rule: Arc<str>,
    /// The name the DNS answer was for (peer entries: none).
    pub name: Option<Arc<str>>,
    /// Valid for flows starting after this time...
    pub from: Timestamp,
    /// ...and up to this time.
    pub until: Timestamp,
}

/// One change to the caches, as the reader found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HintUpdate {
    /// A DNS answer gave this address for an app's name.
    Dns(IpAddr, Entry),
    /// An app-marked STUN exchange used or revealed this endpoint.
    Peer(SocketAddr, Entry),
}

/// One bounded cache.
#[derive(Debug)]
struct Cache<K: std::hash::Hash + Eq> {
    map: hashbrown::HashMap<K, Entry, foldhash::fast::FixedState>,
    /// Insertions, oldest first, with the entry's start (a key can appear more than once; only
    /// its newest insertion removes it).
    order: VecDeque<(K, Timestamp)>,
    capacity: usize,
    evicted: u64,
}

impl<K: std::hash::Hash + Eq + Copy> Cache<K> {
    fn new(capacity: usize) -> Self {
        Cache {
            map: hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::default()),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    fn get(&self, k: &K, at: Timestamp) -> Option<&Entry> {
        if self.map.is_empty() {
            return None;
        }
        let e = self.map.get(k)?;
        (e.from < at && at <= e.until).then_some(e)
    }

    /// Inserts or refreshes `k`: the same app keeps its start and extends its end; another app
    /// replaces the entry; then the oldest entries beyond the capacity are dropped.
    fn put(&mut self, k: K, e: Entry) {
        use hashbrown::hash_map::Entry as E;
        match self.map.entry(k) {
            E::Occupied(mut o) => {
                let old = o.get_mut();
                if old.app == e.app && old.until >= e.from {
                    old.until = old.until.max(e.until);
                    return;
                }
                let from = e.from;
                *old = e;
                self.order.push_back((k, from));
            }
            E::Vacant(v) => {
                let from = e.from;
                v.insert(e);
                self.order.push_back((k, from));
            }
        }
        while self.map.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((old, from)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.from == from) {
                self.map.remove(&old);
                self.evicted += 1;
            }
        }
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

/// One worker's caches of DNS answers and call endpoints.
#[derive(Debug)]
pub struct HintCache {
    dns: Cache<IpAddr>,
    peers: Cache<SocketAddr>,
}

impl Default for HintCache {
    fn default() -> Self {
        HintCache::new(DEFAULT_CAPACITY)
    }
}

impl HintCache {
    /// Empty caches of at most `capacity` entries each.
    pub fn new(capacity: usize) -> Self {
        HintCache {
            dns: Cache::new(capacity),
            peers: Cache::new(capacity),
        }
    }

    /// Entries held now: (DNS answers, peer endpoints).
    pub fn len(&self) -> (usize, usize) {
        (self.dns.map.len(), self.peers.map.len())
    }

    /// Whether both caches are empty.
    pub fn is_empty(&self) -> bool {
        self.dns.map.is_empty() && self.peers.map.is_empty()
    }

    /// Entries dropped to stay within the capacity: (DNS answers, peer endpoints).
    pub fn evicted(&self) -> (u64, u64) {
        (self.dns.evicted, self.peers.evicted)
    }

    /// Applies one update.
    pub fn apply(&mut self, u: HintUpdate) {
        match u {
            HintUpdate::Dns(ip, e) => self.dns.put(ip, e),
            HintUpdate::Peer(ep, e) => self.peers.put(ep, e),
        }
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
        // A public STUN server is every app's: only the client's own socket speaks for it.
        let peer = if udp {
            self.peers.get(&client, at).or_else(|| {
                if rules.is_public_stun(server) {
                    None
                } else {
                    self.peers.get(&server, at)
                }
            })
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
                rule: Arc::clone(&e.rule),
                rule_id: Arc::clone(&app.rule_id),
                category: Arc::clone(&app.category),
                verdict: app.verdict,
                alert: app.alert,
            },
            name: e.name.clone(),
        })
    }
}

impl HintCache {
    /// What the peer cache says, when a UDP flow that lived from `first` ends at `end`, of its
    /// client socket: the app whose STUN/TURN exchange marked that socket while the flow lived
    /// (from its first packet to its end, the end included), with source
    /// [`AppSource::CallSocket`]. ICE sends every check and the media from one socket, so a flow
    /// that started before the app's own exchange on it (a binding to a public STUN server, say)
    /// is the same call's.
    ///
    /// Deterministic: a flow ends at `end` only once its worker has seen a packet past `end` (or
    /// the input's end), and every update from a packet up to then came before it in band.
    pub fn call_socket(
        &self,
        rules: &CompiledRules,
        client: SocketAddr,
        first: Timestamp,
        end: Timestamp,
    ) -> Option<Hint> {
        if self.peers.map.is_empty() {
            return None;
        }
        let e = self.peers.map.get(&client)?;
        if e.from > end || e.until < first {
            return None;
        }
        let app = rules.app_by_id(&e.app)?;
        Some(Hint {
            class: Classification {
                app: Arc::clone(&app.id),
                source: AppSource::CallSocket,
                rule: Arc::clone(&e.rule),
                rule_id: Arc::clone(&app.rule_id),
                category: Arc::clone(&app.category),
                verdict: app.verdict,
                alert: app.alert,
            },
            name: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn dns(app: &str, ip: &str, from: u64, until: u64) -> HintUpdate {
        HintUpdate::Dns(
            ip.parse().unwrap(),
            Entry {
                app: Arc::from(app),
                rule: Arc::from("test.toml:1"),
                name: Some(Arc::from("zoom.us")),
                from: Timestamp(from * SEC),
                until: Timestamp(until * SEC),
            },
        )
    }

    #[test]
    fn lookup_within_lifetime_only() {
        let rules = crate::rules::defaults().unwrap();
        let mut c = HintCache::new(16);
        c.apply(dns("zoom", "1.2.3.4", 100, 160));
        let (server, client) = (sa("1.2.3.4:443"), sa("10.0.0.9:40000"));
        let hit = c
            .lookup(&rules, false, server, client, Timestamp(130 * SEC))
            .unwrap();
        assert_eq!(&*hit.class.app, "zoom");
        assert_eq!(hit.class.source, AppSource::DnsAnswer);
        assert_eq!(hit.name.as_deref(), Some("zoom.us"));
        let at = |c: &HintCache, s| c.lookup(&rules, false, server, client, Timestamp(s * SEC));
        assert!(at(&c, 100).is_none(), "not the answer's own packet");
        assert!(at(&c, 161).is_none(), "past the TTL");
        // A later answer for the same app extends the entry; it still covers the first flow.
        c.apply(dns("zoom", "1.2.3.4", 150, 210));
        assert!(at(&c, 101).is_some() && at(&c, 200).is_some());
    }

    #[test]
    fn capacity_drops_the_oldest_and_copies_agree() {
        let rules = crate::rules::defaults().unwrap();
        let updates: Vec<HintUpdate> = (0..10u64)
            .map(|i| dns("zoom", &format!("1.2.3.{i}"), i, 600))
            .chain([dns("whatsapp", "1.2.3.9", 11, 600)])
            .collect();
        let (mut a, mut b) = (HintCache::new(4), HintCache::new(4));
        for u in &updates {
            a.apply(u.clone());
            b.apply(u.clone());
        }
        // Another app's answer for a held address replaces it: still 4 entries.
        assert_eq!(a.len().0, 4);
        assert_eq!(a.evicted().0, 6);
        let at = Timestamp(20 * SEC);
        let client = sa("10.0.0.9:40000");
        assert!(a
            .lookup(&rules, false, sa("1.2.3.0:443"), client, at)
            .is_none());
        let last = a.lookup(&rules, false, sa("1.2.3.9:443"), client, at);
        assert_eq!(last.as_ref().map(|h| &*h.class.app), Some("whatsapp"));
        assert_eq!(
            last,
            b.lookup(&rules, false, sa("1.2.3.9:443"), client, at),
            "two copies fed the same updates answer the same"
        );
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn call_socket_marked_while_the_flow_lived() {
        let rules = crate::rules::defaults().unwrap();
        let mut c = HintCache::new(16);
        let client = sa("192.168.2.4:51518");
        c.apply(HintUpdate::Peer(
            client,
            Entry {
                app: Arc::from("signal"),
                rule: Arc::from("signal.toml:1"),
                name: None,
                from: Timestamp(10 * SEC),
                until: Timestamp(310 * SEC),
            },
        ));
        let t = |s| Timestamp(s * SEC);
        // A binding that started before the mark and ends after it: the call's.
        let hit = c.call_socket(&rules, client, t(9), t(40)).unwrap();
        assert_eq!(hit.class.source, AppSource::CallSocket);
        assert_eq!(&*hit.class.app, "signal");
        // A flow that ended before the mark, one that started after the entry's life, and
        // another socket are not.
        assert!(c.call_socket(&rules, client, t(1), t(9)).is_none());
        assert!(c.call_socket(&rules, client, t(311), t(320)).is_none());
        assert!(c
            .call_socket(&rules, sa("192.168.2.4:51519"), t(9), t(40))
            .is_none());
    }

    #[test]
    fn public_stun_server_never_claimed_by_its_endpoint() {
        let rules = crate::rules::defaults().unwrap();
        let mut c = HintCache::new(16);
        let google = sa("74.125.250.129:19302");
        c.apply(HintUpdate::Peer(
            google,
            Entry {
                app: Arc::from("whatsapp"),
                rule: Arc::from("whatsapp.toml:1"),
                name: None,
                from: Timestamp(10 * SEC),
                until: Timestamp(310 * SEC),
            },
        ));
        let t = Timestamp(20 * SEC);
        assert!(rules.is_public_stun(google));
        assert!(!rules.is_public_stun(sa("74.125.250.129:19305")));
        assert!(c
            .lookup(&rules, true, google, sa("10.0.0.9:5000"), t)
            .is_none());
    }

    #[test]
    fn peers_for_udp_only_either_side() {
        let rules = crate::rules::defaults().unwrap();
        let mut c = HintCache::new(16);
        let client = sa("192.168.2.4:51518");
        c.apply(HintUpdate::Peer(
            client,
            Entry {
                app: Arc::from("whatsapp"),
                rule: Arc::from("whatsapp.toml:1"),
                name: None,
                from: Timestamp(10 * SEC),
                until: Timestamp(310 * SEC),
            },
        ));
        let peer = sa("1.194.90.191:60312");
        let t = Timestamp(70 * SEC);
        let hit = c.lookup(&rules, true, peer, client, t).unwrap();
        assert_eq!(hit.class.source, AppSource::PeerCache);
        assert!(c.lookup(&rules, true, client, peer, t).is_some());
        assert!(c.lookup(&rules, false, peer, client, t).is_none());
    }
}
