//! The run summary: per-app totals gathered from ended flows, and the pipeline's counters, as a
//! readable table.

use crate::decode::{Addr, Skip};
use crate::engine::RunReport;
use crate::flow::FlowRecord;
use crate::rules::Verdict;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

/// Distinct clients counted exactly per app up to this many; past it the summary says "≥ N".
pub const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Default)]
struct AppTotals {
    flows: u64,
    bytes: u64,
    alerts: u64,
    clients: HashSet<Addr>,
    verdict: Option<Verdict>,
}

impl AppTotals {
    fn clients_text(&self) -> String {
        if self.clients.len() >= MAX_CLIENTS {
            format!(">={MAX_CLIENTS}")
        } else {
            self.clients.len().to_string()
        }
    }
}

/// Per-app totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    apps: BTreeMap<Arc<str>, AppTotals>,
    other: AppTotals,
    flows: u64,
    tls: u64,
}

impl Summary {
    /// Counts one ended flow.
    pub fn add(&mut self, rec: &FlowRecord) {
        let f = &rec.flow;
        self.flows += 1;
        self.tls += u64::from(f.tls.is_some());
        let t = match &f.app {
            Some(c) => {
                let t = self.apps.entry(Arc::clone(&c.app)).or_default();
                t.verdict = Some(c.verdict);
                t
            }
            None => &mut self.other,
        };
        t.flows += 1;
        t.bytes += f.to_server.bytes + f.to_client.bytes;
        if t.clients.len() < MAX_CLIENTS {
            t.clients.insert(f.client().0);
        }
    }

    /// Counts an alert written for an app.
    pub fn alert(&mut self, app: &Arc<str>) {
        self.apps.entry(Arc::clone(app)).or_default().alerts += 1;
    }

    /// Flows counted.
    pub fn flows(&self) -> u64 {
        self.flows
    }

    /// Flows of an app (by id).
    pub fn app_flows(&self, app: &str) -> u64 {
        self.apps.get(app).map_or(0, |t| t.flows)
    }

    /// The summary as text: the per-app table, then the run's totals.
    pub fn render(&self, run: &RunReport) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:>8} {:>12} {:>8} {:>7}",
            "app", "verdict", "flows", "bytes", "clients", "alerts"
        );
        let mut rows: Vec<(&str, &AppTotals)> = self.apps.iter().map(|(k, v)| (&**k, v)).collect();
        rows.sort_by(|a, b| {
            (a.1.verdict, std::cmp::Reverse(a.1.flows), a.0).cmp(&(
                b.1.verdict,
                std::cmp::Reverse(b.1.flows),
                b.0,
            ))
        });
        for (app, t) in rows {
            let _ = writeln!(
                s,
                "{:<14} {:<8} {:>8} {:>12} {:>8} {:>7}",
                app,
                t.verdict.map_or("", Verdict::as_str),
                t.flows,
                human_bytes(t.bytes),
                t.clients_text(),
                t.alerts
            );
        }
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:>8} {:>12} {:>8} {:>7}",
            "(no app)",
            "",
            self.other.flows,
            human_bytes(self.other.bytes),
            self.other.clients_text(),
            "-"
        );
        let r = &run.read;
        let secs = run.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "packets   {} read, {} into flows, {} skipped ({} decode errors)",
            r.packets,
            r.decoded,
            r.skipped(),
            r.decode_errors()
        );
        let _ = writeln!(
            s,
            "flows     {} ({} with a TLS ClientHello, {} evicted)",
            self.flows, self.tls, run.workers.stats.evicted
        );
        let _ = writeln!(s, "bytes     {}", human_bytes(r.bytes));
        let kinds: Vec<String> = Skip::ALL
            .iter()
            .filter(|k| r.skips[k.index()] > 0)
            .map(|k| format!("{} {}", k, r.skips[k.index()]))
            .collect();
        if !kinds.is_empty() {
            let _ = writeln!(s, "skipped   {}", kinds.join(", "));
        }
        let anomalies: Vec<String> = crate::flow::Anomaly::ALL
            .iter()
            .map(|k| (k, run.workers.stats.anomalies[k.index()]))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect();
        if !anomalies.is_empty() {
            let _ = writeln!(s, "anomalies {}", anomalies.join(", "));
        }
        let _ = writeln!(
            s,
            "time      {:.3} s, {:.0} packets/s, {} worker(s), {} file(s)",
            secs,
            r.packets as f64 / secs,
            run.workers_used,
            r.files
        );
        if !r.errors.is_empty() {
            let _ = writeln!(
                s,
                "errors    {} (input damaged; each reported on standard error)",
                r.errors.len()
            );
        }
        s
    }
}

/// Bytes with a binary unit, e.g. `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
