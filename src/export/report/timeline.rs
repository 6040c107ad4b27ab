//! The report's timeline: flows started and bytes per app in at most a fixed number of time
//! buckets, which widen as the capture's span grows; the bucket width is chosen from the bulk of
//! the packets, and packets far outside it are listed apart. Bounded memory; never reads the
//! clock.
//!
//! Times are gathered in *islands*: runs of packet times with no gap longer than the island's
//! own span (or [`MIN_GAP`], an hour, when it is shorter). A packet stamped years away (a 1970
//! or a 2023 record in a 2019 capture) starts an island of its own instead of stretching the
//! axis. At most [`MAX_ISLANDS`] are kept (past it the two closest merge). At the end, the axis
//! starts as the island with the most packets and takes in the others, most packets first,
//! until it holds [`BULK_PERCENT`] % of the packets: the bulk. An island joins only when it lies
//! within [`AXIS_REACH`] (a week) of the axis, or within the axis's own length when that is
//! longer (the days of a week's captures, two files a day apart, join; a 2023 run of packets in
//! a 2019 capture does not, however many packets it holds). Every island off the axis is listed
//! as an outlier.

use super::data::{OutlierData, SeriesData, TimelineData};
use super::NS;
use crate::capture::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A gap between packet times shorter than this never splits an island.
pub const MIN_GAP: u64 = 3600 * NS;
/// Islands of packet times kept at most (the bulk's and the outliers').
pub const MAX_ISLANDS: usize = 8;
/// The share of the packets (percent) the axis takes in islands to cover, when it can.
pub const BULK_PERCENT: u64 = 95;
/// An island further than this from the axis (and than the axis's length) stays off it.
pub const AXIS_REACH: u64 = 7 * 86_400 * NS;

/// Bucket widths in seconds, each a multiple of the one before (so buckets merge exactly); past
/// the last, widths double.
const WIDTHS: [u64; 13] = [
    1, 2, 10, 30, 60, 120, 600, 1800, 3600, 7200, 21_600, 43_200, 86_400,
];

/// The flow-count and byte timeline per app, in at most `max` buckets of one width.
#[derive(Clone, Debug)]
pub(super) struct Timeline {
    max: usize,
    step: usize,
    width: u64,
    series: Vec<Option<Arc<str>>>,
    /// Bucket number (start time / width) → counts per series.
    buckets: BTreeMap<u64, Vec<Cell>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    flows: u64,
    bytes: u64,
}

/// Bucket width of a step, in nanoseconds.
fn width_at(step: usize) -> u64 {
    match WIDTHS.get(step) {
        Some(s) => s * NS,
        None => {
            let doublings = (step - WIDTHS.len() + 1).min(63) as u32;
            (86_400 * NS).saturating_mul(1u64 << doublings)
        }
    }
}

impl Timeline {
    pub(super) fn new(max: usize) -> Self {
        Timeline {
            max,
            step: 0,
            width: width_at(0),
            series: Vec::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// Counts a flow that lasted from `a` to `b` (nanoseconds, `a <= b`): one flow in the bucket
    /// where it started, its bytes spread over the buckets it lasted in, by time.
    pub(super) fn add(&mut self, app: Option<&Arc<str>>, a: u64, b: u64, bytes: u64) {
        let slot = match self.series.iter().position(|s| s.as_ref() == app) {
            Some(i) => i,
            None => {
                self.series.push(app.cloned());
                self.series.len() - 1
            }
        };
        // The widest width (saturated) puts every time in one of two buckets: stop there.
        while self.span_with(a / self.width, b / self.width) > self.max as u64
            && self.width < u64::MAX
        {
            self.coarsen();
        }
        let w = self.width;
        let (ka, kb) = (a / w, b / w);
        self.cell(ka, slot).flows += 1;
        if ka == kb {
            self.cell(ka, slot).bytes += bytes;
            return;
        }
        let d = u128::from(b - a);
        let (mut done, mut given) = (0u128, 0u64);
        for k in ka..=kb {
            let end = if k == kb { b } else { (k + 1) * w };
            done += u128::from(end - a.max(k * w));
            let upto = (u128::from(bytes) * done / d) as u64;
            self.cell(k, slot).bytes += upto - given;
            given = upto;
        }
    }

    /// Buckets from the first to the last, counting those `ka` and `kb` would add.
    fn span_with(&self, ka: u64, kb: u64) -> u64 {
        let lo = self.buckets.keys().next().map_or(ka, |&k| k.min(ka));
        let hi = self.buckets.keys().next_back().map_or(kb, |&k| k.max(kb));
        hi - lo + 1
    }

    /// Moves to the next width, merging buckets.
    fn coarsen(&mut self) {
        self.step += 1;
        let width = width_at(self.step);
        let old = std::mem::take(&mut self.buckets);
        for (k, cells) in old {
            // Widths are multiples of each other, so a bucket falls into exactly one new one.
            let nk = (u128::from(k) * u128::from(self.width) / u128::from(width)) as u64;
            let merged = self.buckets.entry(nk).or_default();
            if merged.len() < cells.len() {
                merged.resize(cells.len(), Cell::default());
            }
            for (m, c) in merged.iter_mut().zip(cells) {
                m.flows += c.flows;
                m.bytes += c.bytes;
            }
        }
        self.width = width;
    }

    fn cell(&mut self, k: u64, slot: usize) -> &mut Cell {
        let cells = self.buckets.entry(k).or_default();
        if cells.len() <= slot {
            cells.resize(slot + 1, Cell::default());
        }
        &mut cells[slot]
    }

    /// Adds another timeline's counts, widening to the wider width and to fit both spans.
    fn absorb(&mut self, other: &Timeline) {
        while self.step < other.step {
            self.coarsen();
        }
        let key = |k: u64, w: u64| (u128::from(k) * u128::from(other.width) / u128::from(w)) as u64;
        if let (Some(&lo), Some(&hi)) = (
            other.buckets.keys().next(),
            other.buckets.keys().next_back(),
        ) {
            while self.span_with(key(lo, self.width), key(hi, self.width)) > self.max as u64
                && self.width < u64::MAX
            {
                self.coarsen();
            }
        }
        let slots: Vec<usize> = other
            .series
            .iter()
            .map(|app| match self.series.iter().position(|s| s == app) {
                Some(i) => i,
                None => {
                    self.series.push(app.clone());
                    self.series.len() - 1
                }
            })
            .collect();
        for (&k, cells) in &other.buckets {
            let nk = key(k, self.width);
            for (i, c) in cells.iter().enumerate() {
                let m = self.cell(nk, slots[i]);
                m.flows += c.flows;
                m.bytes += c.bytes;
            }
        }
    }

    pub(super) fn data(&self, rank: &dyn Fn(&str) -> usize) -> TimelineData {
        let lo = self.buckets.keys().next().copied().unwrap_or(0);
        let n = self
            .buckets
            .keys()
            .next_back()
            .map_or(0, |&hi| (hi - lo + 1) as usize);
        let mut order: Vec<usize> = (0..self.series.len()).collect();
        // Apps in the summary's order, flows with no app last.
        order.sort_by_key(|&i| self.series[i].as_deref().map_or(usize::MAX, rank));
        let series = order
            .into_iter()
            .map(|i| {
                let mut flows = vec![0; n];
                let mut bytes = vec![0; n];
                for (k, cells) in &self.buckets {
                    if let Some(c) = cells.get(i) {
                        flows[(k - lo) as usize] = c.flows;
                        bytes[(k - lo) as usize] = c.bytes;
                    }
                }
                SeriesData {
                    app: self.series[i].as_deref().map(str::to_string),
                    flows,
                    bytes,
                }
            })
            .collect();
        TimelineData {
            bucket_secs: self.width / NS,
            start: u128::from(lo) * u128::from(self.width / NS),
            buckets: n,
            series,
            outliers: Vec::new(),
            outlier_packets: 0,
        }
    }
}

/// One run of packet times (see the module documentation).
#[derive(Clone, Debug)]
struct Island {
    lo: u64,
    hi: u64,
    /// Packets counted here (a flow's, or one for a flow's far end).
    packets: u64,
    /// Flows that started here.
    flows: u64,
    /// Flows of which one end (first or last packet) fell here, the rest far away.
    far_ends: u64,
    bytes: u64,
    timeline: Timeline,
}

impl Island {
    /// How far from it a time still belongs to it.
    fn reach(&self) -> u64 {
        (self.hi - self.lo).max(MIN_GAP)
    }

    fn holds(&self, t: u64) -> bool {
        t >= self.lo.saturating_sub(self.reach()) && t <= self.hi.saturating_add(self.reach())
    }

    /// Whether `next` (which starts at or after this one) is within reach of it.
    fn touches(&self, next: &Island) -> bool {
        next.lo <= self.hi.saturating_add(self.reach())
            || next.lo.saturating_sub(next.reach()) <= self.hi
    }

    fn absorb(&mut self, o: &Island) {
        self.lo = self.lo.min(o.lo);
        self.hi = self.hi.max(o.hi);
        self.packets += o.packets;
        self.flows += o.flows;
        self.far_ends += o.far_ends;
        self.bytes += o.bytes;
        self.timeline.absorb(&o.timeline);
    }
}

/// The timeline of the bulk of the packets, and the outliers apart (see the module
/// documentation).
#[derive(Debug)]
pub(super) struct Spans {
    max: usize,
    /// Ordered by start; disjoint and out of each other's reach.
    islands: Vec<Island>,
}

impl Spans {
    pub(super) fn new(max: usize) -> Self {
        Spans {
            max,
            islands: Vec::new(),
        }
    }

    /// Counts a flow of `packets` packets that lasted from `a` to `b` (nanoseconds, `a <= b`).
    pub(super) fn add(&mut self, app: Option<&Arc<str>>, a: u64, b: u64, bytes: u64, packets: u64) {
        self.touch(a);
        let ib = self.touch(b);
        let ia = self.find(a);
        if ia == ib {
            let i = &mut self.islands[ia];
            i.packets += packets.max(1);
            i.flows += 1;
            i.bytes += bytes;
            i.timeline.add(app, a, b, bytes);
        } else {
            // One end far from the other: the flow counts in the island with more packets so
            // far (its bulk), at that end's time; the other end is one packet there.
            let (home, far, at) = if self.islands[ib].packets > self.islands[ia].packets {
                (ib, ia, b)
            } else {
                (ia, ib, a)
            };
            let i = &mut self.islands[home];
            i.packets += packets.saturating_sub(1).max(1);
            i.flows += 1;
            i.bytes += bytes;
            i.timeline.add(app, at, at, bytes);
            let e = &mut self.islands[far];
            e.packets += 1;
            e.far_ends += 1;
        }
    }

    /// The island holding `t` (there is one once `t` was touched).
    fn find(&self, t: u64) -> usize {
        self.islands
            .iter()
            .position(|i| i.lo <= t && t <= i.hi)
            .unwrap_or(0)
    }

    /// Puts `t` in an island (joining, starting or merging them) and says which.
    fn touch(&mut self, t: u64) -> usize {
        match self.islands.iter().position(|i| i.holds(t)) {
            Some(i) => {
                let il = &mut self.islands[i];
                il.lo = il.lo.min(t);
                il.hi = il.hi.max(t);
            }
            None => {
                let at = self.islands.partition_point(|i| i.lo < t);
                self.islands.insert(
                    at,
                    Island {
                        lo: t,
                        hi: t,
                        packets: 0,
                        flows: 0,
                        far_ends: 0,
                        bytes: 0,
                        timeline: Timeline::new(self.max),
                    },
                );
            }
        }
        self.settle();
        self.find(t)
    }

    /// Merges islands within each other's reach, then the closest while there are too many.
    fn settle(&mut self) {
        loop {
            let mut i = 0;
            while i + 1 < self.islands.len() {
                if self.islands[i].touches(&self.islands[i + 1]) {
                    self.merge(i);
                } else {
                    i += 1;
                }
            }
            if self.islands.len() <= MAX_ISLANDS {
                return;
            }
            let i = (0..self.islands.len() - 1)
                .min_by_key(|&i| self.islands[i + 1].lo.saturating_sub(self.islands[i].hi))
                .unwrap_or(0);
            self.merge(i);
        }
    }

    /// Merges island `i + 1` into island `i`.
    fn merge(&mut self, i: usize) {
        let next = self.islands.remove(i + 1);
        self.islands[i].absorb(&next);
    }

    pub(super) fn data(&self, rank: &dyn Fn(&str) -> usize) -> TimelineData {
        let total: u64 = self.islands.iter().map(|i| i.packets).sum();
        let Some(biggest) =
            (0..self.islands.len()).max_by_key(|&i| (self.islands[i].packets, usize::MAX - i))
        else {
            return Timeline::new(self.max).data(rank);
        };
        let mut by_size: Vec<usize> = (0..self.islands.len()).collect();
        by_size.sort_by_key(|&i| (std::cmp::Reverse(self.islands[i].packets), i));
        let (mut first, mut last) = (biggest, biggest);
        let covered = |first: usize, last: usize| -> u64 {
            self.islands[first..=last].iter().map(|i| i.packets).sum()
        };
        'grow: while u128::from(covered(first, last)) * 100
            < u128::from(total) * u128::from(BULK_PERCENT)
        {
            let (lo, hi) = (self.islands[first].lo, self.islands[last].hi);
            let reach = AXIS_REACH.max(hi - lo);
            for &i in &by_size {
                let il = &self.islands[i];
                let within = if i < first {
                    lo - il.hi <= reach
                } else if i > last {
                    il.lo - hi <= reach
                } else {
                    false
                };
                if within {
                    first = first.min(i);
                    last = last.max(i);
                    continue 'grow;
                }
            }
            break;
        }
        let mut axis = self.islands[first].timeline.clone();
        for i in first + 1..=last {
            axis.absorb(&self.islands[i].timeline);
        }
        let mut d = axis.data(rank);
        for (n, i) in self.islands.iter().enumerate() {
            if (first..=last).contains(&n) {
                continue;
            }
            d.outlier_packets += i.packets;
            d.outliers.push(OutlierData {
                first: Timestamp(i.lo).to_string(),
                last: Timestamp(i.hi).to_string(),
                packets: i.packets,
                flows: i.flows,
                far_ends: i.far_ends,
                bytes: i.bytes,
                apps: i
                    .timeline
                    .series
                    .iter()
                    .map(|a| a.as_deref().map(str::to_string))
                    .collect(),
            });
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::T0;
    use super::*;

    fn sums(t: &Timeline) -> (u64, u64) {
        t.buckets
            .values()
            .flatten()
            .fold((0, 0), |(f, b), c| (f + c.flows, b + c.bytes))
    }

    #[test]
    fn timeline_spreads_bytes_by_time_and_keeps_totals() {
        let mut t = Timeline::new(200);
        t.add(None, 0, 4 * NS, 1000);
        assert_eq!(t.width, NS);
        let b: Vec<u64> = t.buckets.values().map(|c| c[0].bytes).collect();
        assert_eq!(b, [250, 250, 250, 250, 0]);
        assert_eq!(sums(&t), (1, 1000));
        t.add(None, NS / 2, NS / 2 + 3, 7);
        assert_eq!(sums(&t), (2, 1007));
    }

    #[test]
    fn timeline_widens_to_stay_within_max_buckets() {
        let mut t = Timeline::new(10);
        let app: Arc<str> = Arc::from("zoom");
        let mut total = 0;
        for i in 0..1000u64 {
            t.add(Some(&app), T0 + i * 37 * NS, T0 + i * 37 * NS + 90 * NS, i);
            total += i;
            assert!(t.buckets.len() <= 10);
            let lo = t.buckets.keys().next().unwrap();
            let hi = t.buckets.keys().next_back().unwrap();
            assert!(hi - lo < 10);
        }
        assert_eq!(sums(&t), (1000, total));
        // 37,053 s need 11 one-hour buckets: two-hour ones.
        assert_eq!(t.width, 7200 * NS);
        // An earlier flow arriving late still fits.
        t.add(Some(&app), T0 - 5000 * NS, T0, 1);
        assert_eq!(sums(&t), (1001, total + 1));
        assert!(t.buckets.len() <= 10);
    }

    #[test]
    fn timeline_survives_absurd_time_spans() {
        let mut t = Timeline::new(3);
        t.add(None, 0, 0, 1);
        t.add(None, u64::MAX - 1, u64::MAX, 1);
        assert!(t.buckets.len() <= 3);
        assert_eq!(sums(&t), (2, 2));
    }
}

#[cfg(test)]
mod spans_tests {
    use super::super::tests::T0;
    use super::*;

    const H: u64 = 3600 * NS;

    #[test]
    fn spans_list_a_lone_packet_years_away_apart_and_size_buckets_from_the_bulk() {
        for outlier_first in [true, false] {
            let mut s = Spans::new(120);
            let app: Arc<str> = Arc::from("zoom");
            let wild = T0 + 4 * 365 * 24 * H;
            if outlier_first {
                s.add(None, 0, 0, 60, 1);
                s.add(None, wild, wild, 60, 1);
            }
            // Ten minutes of flows.
            for i in 0..600u64 {
                s.add(Some(&app), T0 + i * NS, T0 + i * NS + 5 * NS, 100, 10);
            }
            if !outlier_first {
                s.add(None, 0, 0, 60, 1);
                s.add(None, wild, wild, 60, 1);
            }
            let d = s.data(&|_| 0);
            assert_eq!(d.bucket_secs, 10, "600 s in at most 120 buckets");
            assert_eq!(d.start, u128::from(T0 / NS));
            assert_eq!(d.outliers.len(), 2, "{:?}", d.outliers);
            assert_eq!(d.outliers[0].first, "1970-01-01T00:00:00.000000Z");
            assert!(
                d.outliers[1].first.starts_with("2028-"),
                "{}",
                d.outliers[1].first
            );
            assert_eq!(d.outlier_packets, 2);
            assert_eq!(d.outliers[1].apps, [None]);
        }
    }

    #[test]
    fn spans_keep_a_flow_whose_last_packet_is_far_away_where_its_bulk_is() {
        let mut s = Spans::new(120);
        for i in 0..100u64 {
            s.add(None, T0 + i * NS, T0 + i * NS, 100, 4);
        }
        // One flow of the capture, its last packet stamped a year ahead.
        let wild = T0 + 365 * 24 * H;
        s.add(None, T0 + 50 * NS, wild, 1000, 20);
        let d = s.data(&|_| 0);
        assert_eq!(d.bucket_secs, 1);
        assert_eq!(d.outliers.len(), 1);
        assert_eq!(
            (
                d.outliers[0].packets,
                d.outliers[0].flows,
                d.outliers[0].far_ends
            ),
            (1, 0, 1)
        );
        let flows: u64 = d.series[0].flows.iter().sum();
        let bytes: u64 = d.series[0].bytes.iter().sum();
        assert_eq!((flows, bytes), (101, 100 * 100 + 1000));
    }

    #[test]
    fn spans_keep_two_days_of_bulk_on_one_axis() {
        // Two capture files a day apart, each half the packets: both are the bulk.
        let mut s = Spans::new(120);
        for day in 0..2u64 {
            for i in 0..300u64 {
                let t = T0 + day * 24 * H + i * NS;
                s.add(None, t, t, 10, 1);
            }
        }
        let d = s.data(&|_| 0);
        assert!(d.outliers.is_empty());
        assert!(
            d.bucket_secs >= 1800 && d.buckets <= 120,
            "{}",
            d.bucket_secs
        );
        assert_eq!(d.series[0].flows.iter().sum::<u64>(), 600);
    }

    #[test]
    fn spans_stay_bounded_under_scattered_times() {
        let mut s = Spans::new(50);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (a, b) = (x % (u64::MAX / 2), x % (u64::MAX / 2) + (x >> 40));
            s.add(None, a, b, 1, 2);
            assert!(s.islands.len() <= MAX_ISLANDS);
            assert!(s.islands.iter().all(|i| i.timeline.buckets.len() <= 50));
        }
        let d = s.data(&|_| 0);
        assert!(d.buckets <= 50);
        assert!(d.outliers.len() < MAX_ISLANDS);
        let total: u64 = s.islands.iter().map(|i| i.packets).sum();
        assert_eq!(total, 10_000);
    }
}

#[cfg(test)]
mod axis_tests {
    use super::super::tests::T0;
    use super::*;

    const H: u64 = 3600 * NS;

    #[test]
    fn spans_keep_a_run_years_away_off_the_axis_however_many_packets_it_holds() {
        // Seven minutes in 2019-like time, then two minutes (10 % of the packets) years later.
        let mut s = Spans::new(120);
        for i in 0..420u64 {
            s.add(None, T0 + i * NS, T0 + i * NS, 10, 9);
        }
        let wild = T0 + 3 * 365 * 24 * H;
        for i in 0..120u64 {
            s.add(None, wild + i * NS, wild + i * NS, 10, 3);
        }
        let d = s.data(&|_| 0);
        assert_eq!(d.bucket_secs, 10, "{}", d.bucket_secs);
        assert_eq!(d.outliers.len(), 1);
        assert_eq!((d.outliers[0].flows, d.outlier_packets), (120, 360));
    }

    #[test]
    fn spans_keep_a_week_of_working_days_on_one_axis() {
        // Ten hours a day, seven days: the nights split the islands, the axis takes them all.
        let mut s = Spans::new(120);
        for day in 0..7u64 {
            for m in 0..600u64 {
                let t = T0 + day * 24 * H + m * 60 * NS;
                s.add(None, t, t, 10, 2);
            }
        }
        assert!(
            s.islands.len() > 1,
            "nights are gaps longer than a day's span"
        );
        let d = s.data(&|_| 0);
        assert!(d.outliers.is_empty(), "{:?}", d.outliers);
        assert_eq!(d.series[0].flows.iter().sum::<u64>(), 7 * 600);
        assert!(
            d.buckets <= 120 && d.bucket_secs == 7200,
            "{}",
            d.bucket_secs
        );
    }

    #[test]
    fn spans_list_a_small_run_days_away_apart_once_the_axis_holds_the_bulk() {
        // An hour holding 97 % of the packets, and 3 % three days before it.
        let mut s = Spans::new(120);
        for i in 0..12u64 {
            s.add(None, T0 + i * NS, T0 + i * NS, 10, 1);
        }
        let later = T0 + 72 * H;
        for i in 0..388u64 {
            s.add(None, later + i * 9 * NS, later + i * 9 * NS, 10, 1);
        }
        let d = s.data(&|_| 0);
        assert_eq!(d.outliers.len(), 1);
        assert_eq!(d.outliers[0].packets, 12);
        assert_eq!(
            d.bucket_secs, 30,
            "an hour in 30 s buckets, not 3 days in hours"
        );
    }
}
