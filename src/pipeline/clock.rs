//! The sensor's one clock: packet time as the dispatcher believes it, over every packet read.
//! Workers, flows and export are handed its readings; nothing else keeps time.
//!
//! A capture's timestamps are data, and data can be wrong: one record stamped years ahead (a
//! damaged or forged timestamp) must not end every open flow, and time going backwards (files
//! given out of order, a 1970 record in a 2019 capture) must not turn each later packet into a
//! flow of its own. So the clock moves forward only to times the capture as a whole vouches for:
//! a packet far ahead keeps its own time for its flow but does not move the clock (so no other
//! flow ends for it), and a packet far behind is stamped with the clock's time, so its flow is
//! tracked as if the packet came now. Both are counted ([`Clock::ahead`], [`Clock::behind`]).

use crate::capture::Timestamp;

const SEC: u64 = 1_000_000_000;

/// The default bound: a packet more than this ahead of both the clock and the median of the
/// recent packets is an outlier.
pub const DEFAULT_BOUND: u64 = 3600 * SEC;

/// A packet more than this behind the clock is late: it is stamped with the clock's time. Less
/// than that is ordinary disorder (interfaces merged in one file) and keeps its own time.
pub const LATE: u64 = SEC;

/// Recent packet times whose median vouches for a jump (odd, so the median is one of them).
const RECENT: usize = 15;

/// Packet time as the sensor believes it.
///
/// - A packet within the bound ahead of the clock moves it (the common case: one compare).
/// - A packet further ahead moves it only when the median of the last `RECENT` (15) packets is
///   within the bound of it too: a real gap (the next file of a rotation, a day later) is
///   believed after half a window of packets; a lone record far ahead never is. Such a packet
///   keeps its own time (its flow's), so the packets of a real gap make no split flows.
/// - The clock never goes back; a packet more than [`LATE`] behind it is stamped with its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    now: Timestamp,
    bound: u64,
    recent: [u64; RECENT],
    filled: usize,
    at: usize,
    /// Packets too far ahead of the clock to move it.
    pub ahead: u64,
    /// Packets stamped with the clock's time because they were more than [`LATE`] behind it.
    pub behind: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(DEFAULT_BOUND)
    }
}

impl Clock {
    /// A clock that believes jumps of at most `bound` nanoseconds ahead of the recent packets.
    pub fn new(bound: u64) -> Self {
        Clock {
            now: Timestamp(0),
            bound: bound.max(1),
            recent: [0; RECENT],
            filled: 0,
            at: 0,
            ahead: 0,
            behind: 0,
        }
    }

    /// Takes a packet's timestamp into account; returns the time to stamp the packet with (its
    /// own, or the clock's when the packet is far behind it).
    pub fn observe(&mut self, ts: Timestamp) -> Timestamp {
        self.recent[self.at] = ts.0;
        self.at = (self.at + 1) % RECENT;
        self.filled = (self.filled + 1).min(RECENT);
        if self.now.0 == 0 {
            self.now = ts;
            return ts;
        }
        if ts <= self.now {
            if self.now.0 - ts.0 > LATE {
                self.behind += 1;
                return self.now;
            }
            return ts;
        }
        if ts.0 - self.now.0 <= self.bound || ts.0 - self.median() <= self.bound {
            self.now = ts;
            return ts;
        }
        self.ahead += 1;
        ts
    }

    /// Moves the clock to a time that is not a packet's (a live source's wall clock on a quiet
    /// link); a jump beyond the bound is not believed.
    pub fn tick(&mut self, now: Timestamp) {
        if now > self.now && (self.now.0 == 0 || now.0 - self.now.0 <= self.bound) {
            self.now = now;
        }
    }

    /// Median of the recent packet times (this one included).
    fn median(&self) -> u64 {
        let mut r = self.recent;
        let r = &mut r[..self.filled];
        let mid = r.len() / 2;
        *r.select_nth_unstable(mid).1
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(c: &mut Clock, secs: &[u64]) -> Vec<u64> {
        secs.iter()
            .map(|s| c.observe(Timestamp(s * SEC)).0 / SEC)
            .collect()
    }

    #[test]
    fn observe_a_lone_record_far_ahead_does_not_move_the_clock() {
        let mut c = Clock::default();
        let got = feed(&mut c, &[10, 11, 4_000_000_000, 12, 13]);
        assert_eq!(got, [10, 11, 4_000_000_000, 12, 13]);
        assert_eq!((c.ahead, c.behind), (1, 0));
        assert_eq!(c.now(), Timestamp(13 * SEC));
        // Forged records fewer than half the window do not outvote the capture either.
        feed(&mut c, &[14; 15]);
        feed(&mut c, &[9_000_000; 7]);
        assert_eq!(c.now(), Timestamp(14 * SEC));
        assert_eq!(c.ahead, 8);
    }

    #[test]
    fn observe_a_real_gap_is_believed_once_most_recent_packets_are_past_it() {
        let mut c = Clock::default();
        feed(&mut c, &[100; 20]);
        let day = 86_400;
        for k in 0..10 {
            // The packets keep their time; the clock waits until the median is past the gap.
            assert_eq!(c.observe(Timestamp(day * SEC)), Timestamp(day * SEC));
            let want = if k < 7 { 100 } else { day };
            assert_eq!(c.now(), Timestamp(want * SEC), "packet {k}");
        }
        assert_eq!(c.ahead, 7);
        // Within the bound, the clock simply follows the packets.
        assert_eq!(feed(&mut c, &[day + 3000]), [day + 3000]);
    }

    #[test]
    fn observe_time_going_back_stamps_late_packets_with_the_clock() {
        let mut c = Clock::new(10 * SEC);
        feed(&mut c, &[1000]);
        // Disorder within a second keeps its time; older packets take the clock's.
        let t = c.observe(Timestamp(1000 * SEC - SEC / 2));
        assert_eq!(t, Timestamp(1000 * SEC - SEC / 2));
        assert_eq!(feed(&mut c, &[0, 5, 500]), [1000, 1000, 1000]);
        assert_eq!((c.ahead, c.behind), (0, 3));
        assert_eq!(c.now(), Timestamp(1000 * SEC));
    }

    #[test]
    fn tick_moves_forward_within_the_bound_only() {
        let mut c = Clock::new(10 * SEC);
        c.tick(Timestamp(5 * SEC));
        c.tick(Timestamp(9 * SEC));
        c.tick(Timestamp(1000 * SEC));
        c.tick(Timestamp(SEC));
        assert_eq!(c.now(), Timestamp(9 * SEC));
    }
}
