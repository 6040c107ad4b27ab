//! A worker's flow table: a slab of flows, an index by precomputed key hash, and one
//! recency list per timeout class, so idle expiry and least-recently-seen eviction look only at
//! list tails (amortised O(1), never a scan of the table).

use super::{Flow, FlowKey};
use hashbrown::HashTable;

/// Timeout classes; each has its own recency list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutClass {
    /// An open TCP connection.
    Tcp = 0,
    /// A UDP conversation.
    Udp = 1,
    /// A TCP connection after FIN both ways or a RST: kept a short grace for stragglers.
    Closing = 2,
}

/// Most flows a table reserves room for up front; past it the slab grows as it fills.
pub const RESERVE_MAX: usize = 4 << 20;

/// Number of timeout classes.
pub const CLASSES: usize = 3;
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    class: u8,
}

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
}

/// Flows of one worker, bounded to `capacity`.
#[derive(Debug)]
pub struct FlowTable {
    slots: Vec<Option<Flow>>,
    links: Vec<Link>,
    free: Vec<u32>,
    index: HashTable<u32>,
    lists: [List; CLASSES],
    capacity: usize,
    len: usize,
}

impl FlowTable {
    /// An empty table that will hold at most `capacity` flows (at least 1).
    ///
    /// The slab is reserved up front (up to [`RESERVE_MAX`] flows): the reservation is address
    /// space, and memory is only touched as flows arrive, so the table does not double and copy
    /// itself at a peak.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let reserve = capacity.min(RESERVE_MAX);
        FlowTable {
            slots: Vec::with_capacity(reserve),
            links: Vec::with_capacity(reserve),
            free: Vec::new(),
            index: HashTable::with_capacity(capacity.min(1 << 16)),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; CLASSES],
            capacity,
            len: 0,
        }
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the next insert needs an eviction first.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// The slot of the flow with this key and hash.
    pub fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                slots[i as usize].as_ref().is_some_and(|f| f.key == *key)
            })
            .copied()
    }

    /// Every flow held, with its slot, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Flow)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i as u32, f.as_ref()?)))
    }

    /// The flow in a slot.
    pub fn get(&self, i: u32) -> Option<&Flow> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    /// The flow in a slot, mutably.
    pub fn get_mut(&mut self, i: u32) -> Option<&mut Flow> {
        self.slots.get_mut(i as usize).and_then(Option::as_mut)
    }

    /// Adds a flow at the head of its class list and returns its slot. The caller makes room
    /// first (see [`FlowTable::is_full`]); past capacity the table still grows rather than lose
    /// a flow.
    pub fn insert(&mut self, flow: Flow, class: TimeoutClass) -> u32 {
        let hash = flow.hash;
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(flow);
                i
            }
            None => {
                self.slots.push(Some(flow));
                self.links.push(Link {
                    prev: NIL,
                    next: NIL,
                    class: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, i, |&j| {
            slots[j as usize].as_ref().map_or(0, |f| f.hash)
        });
        self.push_front(i, class as u8);
        self.len += 1;
        i
    }

    /// Removes a flow and returns it.
    pub fn remove(&mut self, i: u32) -> Option<Flow> {
        let flow = self.slots.get_mut(i as usize)?.take()?;
        if let Ok(e) = self.index.find_entry(flow.hash, |&j| j == i) {
            e.remove();
        }
        self.unlink(i);
        self.free.push(i);
        self.len -= 1;
        Some(flow)
    }

    /// Marks a flow as just seen: moves it to the head of `class`'s list.
    pub fn touch(&mut self, i: u32, class: TimeoutClass) {
        let l = self.links[i as usize];
        if l.class == class as u8 && self.lists[class as usize].head == i {
            return;
        }
        self.unlink(i);
        self.push_front(i, class as u8);
    }

    /// The least recently seen flow of a class.
    pub fn oldest(&self, class: TimeoutClass) -> Option<u32> {
        let t = self.lists[class as usize].tail;
        (t != NIL).then_some(t)
    }

    /// The least recently seen flow of all classes (by its last packet time).
    pub fn oldest_overall(&self) -> Option<u32> {
        (0..CLASSES)
            .filter_map(|c| {
                let t = self.lists[c].tail;
                (t != NIL).then_some(t)
            })
            .min_by_key(|&i| self.get(i).map(|f| f.last_ts))
    }

    /// Takes out the least recently seen flow of all.
    pub fn pop_oldest(&mut self) -> Option<Flow> {
        let i = self.oldest_overall()?;
        self.remove(i)
    }

    fn unlink(&mut self, i: u32) {
        let Link { prev, next, class } = self.links[i as usize];
        let list = &mut self.lists[class as usize];
        if prev == NIL {
            if list.head == i {
                list.head = next;
            }
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            if list.tail == i {
                list.tail = prev;
            }
        } else {
            self.links[next as usize].prev = prev;
        }
        self.links[i as usize].prev = NIL;
        self.links[i as usize].next = NIL;
    }

    fn push_front(&mut self, i: u32, class: u8) {
        let list = &mut self.lists[class as usize];
        let old = list.head;
        self.links[i as usize] = Link {
            prev: NIL,
            next: old,
            class,
        };
        if old == NIL {
            list.tail = i;
        } else {
            self.links[old as usize].prev = i;
        }
        list.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::decode::{Addr, Transport};
    use std::net::Ipv4Addr;

    fn flow(n: u16, ts: u64) -> Flow {
        let key = FlowKey {
            lo: (Addr::from(Ipv4Addr::new(10, 0, 0, 1)), n),
            hi: (Addr::from(Ipv4Addr::new(10, 0, 0, 2)), 443),
            transport: Transport::Tcp,
            vlans: [0; 3],
            nvlan: 0,
            segment: crate::decode::Segment::NONE,
        };
        // A deliberately poor hash: collisions must still resolve by key.
        Flow::new(key, u64::from(n % 4), true, Timestamp(ts))
    }

    #[test]
    fn insert_find_remove_reuses_slots() {
        let mut t = FlowTable::new(10);
        let a = t.insert(flow(1, 1), TimeoutClass::Tcp);
        let b = t.insert(flow(5, 2), TimeoutClass::Tcp);
        assert_eq!(t.find(1, &flow(1, 0).key), Some(a));
        assert_eq!(t.find(1, &flow(5, 0).key), Some(b));
        assert_eq!(t.find(1, &flow(9, 0).key), None);
        assert!(t.remove(a).is_some());
        assert_eq!(t.find(1, &flow(1, 0).key), None);
        assert_eq!(t.len(), 1);
        let c = t.insert(flow(9, 3), TimeoutClass::Udp);
        assert_eq!(c, a, "freed slot reused");
    }

    #[test]
    fn touch_orders_lists_by_recency_per_class() {
        let mut t = FlowTable::new(10);
        let a = t.insert(flow(1, 1), TimeoutClass::Tcp);
        let b = t.insert(flow(2, 2), TimeoutClass::Tcp);
        let c = t.insert(flow(3, 3), TimeoutClass::Udp);
        assert_eq!(t.oldest(TimeoutClass::Tcp), Some(a));
        t.touch(a, TimeoutClass::Tcp);
        assert_eq!(t.oldest(TimeoutClass::Tcp), Some(b));
        t.touch(b, TimeoutClass::Closing);
        assert_eq!(t.oldest(TimeoutClass::Tcp), Some(a));
        assert_eq!(t.oldest(TimeoutClass::Closing), Some(b));
        assert_eq!(t.oldest(TimeoutClass::Udp), Some(c));
        assert_eq!(t.oldest_overall(), Some(a));
        let mut all = Vec::new();
        while let Some(f) = t.pop_oldest() {
            all.push(f.key.lo.1);
        }
        assert_eq!(all, [1, 2, 3], "oldest last packet time first");
        assert!(t.is_empty());
        assert_eq!(t.oldest_overall(), None);
    }
}
