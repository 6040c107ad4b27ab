//! The report's timeline: flows started and bytes per app in at most a fixed number of time
//! buckets, which widen as the capture's span grows. Bounded memory; never reads the clock.

use super::data::{SeriesData, TimelineData};
use super::NS;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bucket widths in seconds, each a multiple of the one before (so buckets merge exactly); past
/// the last, widths double.
const WIDTHS: [u64; 13] = [
    1, 2, 10, 30, 60, 120, 600, 1800, 3600, 7200, 21_600, 43_200, 86_400,
];

/// The flow-count and byte timeline per app, in at most `max` buckets of one width.
#[derive(Debug)]
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

    pub(super) fn data(&self, rank: &dyn Fn(&str) -> usize) -> TimelineData<'_> {
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
                    app: self.series[i].as_deref(),
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
        }
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
