//! The sensor's one clock: packet time as the dispatcher believes it, over every packet read.
//! Workers, flows and export are handed its readings; nothing else keeps time.

use crate::capture::Timestamp;

const SEC: u64 = 1_000_000_000;

/// A jump forward larger than this needs a second packet to confirm it.
const MAX_JUMP: u64 = 3600 * SEC;

/// Packet time as the sensor believes it: the latest timestamp seen, except that one record far
/// ahead of the rest (a damaged timestamp) is not believed until a second packet near it
/// confirms the jump — otherwise a single bad record would end every flow as idle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    now: Timestamp,
    pending: Option<Timestamp>,
}

impl Clock {
    /// Takes a packet's timestamp into account.
    pub fn observe(&mut self, ts: Timestamp) {
        if ts <= self.now {
            return;
        }
        if self.now.0 == 0 || ts.0 - self.now.0 <= MAX_JUMP {
            self.now = ts;
            self.pending = None;
            return;
        }
        match self.pending {
            Some(p) if ts.0.abs_diff(p.0) <= MAX_JUMP => {
                self.now = ts;
                self.pending = None;
            }
            _ => self.pending = Some(ts),
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ignores_one_far_jump_until_confirmed() {
        let mut c = Clock::default();
        c.observe(Timestamp(10 * SEC));
        c.observe(Timestamp(4_000_000_000 * SEC));
        assert_eq!(
            c.now(),
            Timestamp(10 * SEC),
            "a lone record far ahead is not believed"
        );
        c.observe(Timestamp(11 * SEC));
        assert_eq!(c.now(), Timestamp(11 * SEC));
        // A real gap (the next file of a timeline, a day later) is confirmed by its second packet.
        c.observe(Timestamp(86_400 * SEC));
        c.observe(Timestamp(86_401 * SEC));
        assert_eq!(c.now(), Timestamp(86_401 * SEC));
    }
}
