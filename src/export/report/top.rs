//! The report's top clients and servers of each flagged app, counted in bounded memory with
//! Space-Saving: heavy hitters are kept, the counts say by how much they may be over.

use super::cut;
use super::data::{TopEntryData, TopListData};
use crate::decode::Addr;
use crate::export::events::ClientAddrs;
use std::collections::HashMap;

/// The top clients and servers of one flagged app.
#[derive(Debug)]
pub(super) struct Tops {
    pub(super) clients: TopK,
    pub(super) servers: TopK,
}

/// The most frequent addresses in bounded memory (Metwally, Agrawal and El Abbadi's
/// Space-Saving): up to `cap` counters; a new address past it takes over the least counted one,
/// starting from its count, and records that count as how much it may be over.
#[derive(Debug)]
pub(super) struct TopK {
    cap: usize,
    counters: Vec<Counter>,
    index: HashMap<Addr, usize>,
    replaced: u64,
}

#[derive(Debug)]
struct Counter {
    addr: Addr,
    flows: u64,
    over: u64,
    bytes: u64,
    name: Option<Box<str>>,
}

impl TopK {
    pub(super) fn new(cap: usize) -> Self {
        TopK {
            cap,
            counters: Vec::new(),
            index: HashMap::new(),
            replaced: 0,
        }
    }

    pub(super) fn add(&mut self, addr: Addr, bytes: u64, name: Option<&str>) {
        if let Some(&i) = self.index.get(&addr) {
            let c = &mut self.counters[i];
            c.flows += 1;
            c.bytes += bytes;
            if c.name.is_none() {
                c.name = name.map(cut);
            }
            return;
        }
        let fresh = |flows: u64| Counter {
            addr,
            flows: flows + 1,
            over: flows,
            bytes,
            name: name.map(cut),
        };
        if self.counters.len() < self.cap {
            self.index.insert(addr, self.counters.len());
            self.counters.push(fresh(0));
            return;
        }
        // The least counted; the first of equals, so the result does not depend on hashing.
        let Some((i, min)) = self
            .counters
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (c.flows, *i))
            .map(|(i, c)| (i, c.flows))
        else {
            return;
        };
        self.index.remove(&self.counters[i].addr);
        self.index.insert(addr, i);
        self.counters[i] = fresh(min);
        self.replaced += 1;
    }

    /// The top `n`; `clients` shows the addresses as the events do (None: as captured).
    pub(super) fn data(&self, n: usize, clients: Option<&ClientAddrs>) -> TopListData<'_> {
        let mut v: Vec<&Counter> = self.counters.iter().collect();
        v.sort_by(|a, b| {
            (
                std::cmp::Reverse(a.flows),
                std::cmp::Reverse(a.bytes),
                a.addr,
            )
                .cmp(&(
                    std::cmp::Reverse(b.flows),
                    std::cmp::Reverse(b.bytes),
                    b.addr,
                ))
        });
        TopListData {
            exact: self.replaced == 0,
            entries: v
                .into_iter()
                .take(n)
                .map(|c| TopEntryData {
                    ip: clients.map_or_else(|| c.addr.ip().to_string(), |k| k.show(c.addr.ip())),
                    flows: c.flows,
                    over: c.over,
                    bytes: c.bytes,
                    name: c.name.as_deref(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> Addr {
        Addr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn top_k_is_exact_within_capacity() {
        let mut k = TopK::new(4);
        for (i, n) in [(1, 5), (2, 3), (3, 9), (4, 1)] {
            for _ in 0..n {
                k.add(addr(i), 10, None);
            }
        }
        let d = k.data(3, None);
        assert!(d.exact);
        let got: Vec<(String, u64, u64)> = d
            .entries
            .iter()
            .map(|e| (e.ip.clone(), e.flows, e.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.3".into(), 9, 90),
                ("10.0.0.1".into(), 5, 50),
                ("10.0.0.2".into(), 3, 30)
            ]
        );
    }

    #[test]
    fn top_k_keeps_heavy_hitters_in_bounded_memory() {
        let mut k = TopK::new(8);
        for i in 0..10_000u32 {
            // Two heavy addresses among a stream of ones seen once.
            k.add(addr(1_000_000 + i), 1, None);
            if i % 3 == 0 {
                k.add(addr(1), 1, None);
            }
            if i % 5 == 0 {
                k.add(addr(2), 1, None);
            }
        }
        assert_eq!(k.counters.len(), 8);
        assert_eq!(k.index.len(), 8);
        let d = k.data(2, None);
        assert!(!d.exact);
        assert_eq!(d.entries[0].ip, "10.0.0.1");
        assert_eq!(d.entries[1].ip, "10.0.0.2");
        // Never under, over by at most `over`.
        assert!(d.entries[0].flows >= 3334 && d.entries[0].flows - d.entries[0].over <= 3334);
    }
}
