//! The run summary: per-app totals gathered from ended flows, and the pipeline's counters, as a
//! readable table or as one JSON object (`picket replay --format json`).
//!
//! # JSON
//!
//! One object, on one line:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `apps` | array | one object per app seen, in the table's order (flagged apps first, then by flows) |
//! | `apps[].app` | string | app id from the rules |
//! | `apps[].verdict` | `"flag"` / `"observe"` | the policy's verdict (absent for an app with alerts but no ended flow) |
//! | `apps[].flows`, `apps[].bytes` | int | ended flows of the app, and their frame bytes both ways |
//! | `apps[].clients` | int | distinct client addresses, counted exactly up to [`MAX_CLIENTS`] |
//! | `apps[].clients_capped` | bool | `clients` reached [`MAX_CLIENTS`]: there may be more |
//! | `apps[].alerts` | int | alerts written for the app |
//! | `no_app` | object | `flows`, `bytes`, `clients`, `clients_capped` of flows no rule claimed |
//! | `unattributed` | object | those flows by why they have no app (the `unattributed` reasons of `flow` events, every reason, zeros included) |
//! | `totals.packets`, `totals.bytes` | int | packets read, and their bytes on the wire |
//! | `totals.decoded` | int | packets that went into flows (TCP/UDP over IP) |
//! | `totals.flows` | int | flows ended (the `flow` events) |
//! | `totals.hellos` | int | flows whose TLS ClientHello was read (over TCP or QUIC) |
//! | `totals.skipped` | object | packets skipped, by reason: every reason of `picket_packets_skipped_total` and `picket_decode_errors_total`, zeros included |
//! | `totals.decode_errors` | int | the skipped packets that were damaged |
//! | `totals.tunnels` | object | packets decapsulated, by tunnel kind (every kind, zeros included) |
//! | `totals.fragments` | object | fragmented datagrams by how their reassembly ended (every outcome, zeros included), plus `pending` (still waiting) and `duplicates` (exact duplicate fragments dropped) |
//! | `totals.evicted` | int | flows ended early because a flow table was full |
//! | `totals.clock_ahead`, `totals.clock_behind` | int | packets too far ahead of the sensor's clock to move it (`--clock-bound`), and packets over a second behind it, tracked at its time |
//! | `totals.files` | int | input files read |
//! | `totals.errors` | array of string | damage in the input, as also reported on standard error |
//! | `totals.stopped` | bool | the run was stopped by a signal before its input ended |
//! | `workers` | int | worker threads used |
//! | `elapsed_secs` | number | wall time of the run |

use crate::classify::Unattributed;
use crate::decode::frag::ReasmEnd;
use crate::decode::{Addr, Skip, TunnelKind};
use crate::export::record::{Anomaly, FlowRecord, RunReport};
use crate::rules::Verdict;
use serde::Serialize;
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
    fn row<'a>(&self, app: &'a str) -> AppRow<'a> {
        AppRow {
            app,
            verdict: self.verdict.map(Verdict::as_str),
            flows: self.flows,
            bytes: self.bytes,
            clients: self.clients.len() as u64,
            clients_capped: self.clients.len() >= MAX_CLIENTS,
            alerts: self.alerts,
        }
    }
}

/// One app's totals, as the summary shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppRow<'a> {
    /// App id.
    pub app: &'a str,
    /// The policy's verdict (none for an app with alerts but no ended flow yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// Ended flows.
    pub flows: u64,
    /// Their frame bytes, both ways.
    pub bytes: u64,
    /// Distinct client addresses, exact up to [`MAX_CLIENTS`].
    pub clients: u64,
    /// `clients` reached [`MAX_CLIENTS`].
    pub clients_capped: bool,
    /// Alerts written.
    pub alerts: u64,
}

/// The totals of flows no rule claimed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoAppRow {
    /// Ended flows.
    pub flows: u64,
    /// Their frame bytes, both ways.
    pub bytes: u64,
    /// Distinct client addresses, exact up to [`MAX_CLIENTS`].
    pub clients: u64,
    /// `clients` reached [`MAX_CLIENTS`].
    pub clients_capped: bool,
}

/// The run's totals, for the JSON summary and the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    /// Packets read.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Packets that went into flows.
    pub decoded: u64,
    /// Flows ended.
    pub flows: u64,
    /// Flows whose ClientHello was read.
    pub hellos: u64,
    /// Packets skipped, by reason (every reason, zeros included).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Skipped packets that were damaged.
    pub decode_errors: u64,
    /// Packets decapsulated, by tunnel kind (every kind, zeros included).
    pub tunnels: BTreeMap<&'static str, u64>,
    /// Fragmented datagrams by reassembly outcome, with `pending` and `duplicates`.
    pub fragments: BTreeMap<&'static str, u64>,
    /// Flows evicted from a full table.
    pub evicted: u64,
    /// Packets too far ahead of the capture's time to move the sensor's clock (`--clock-bound`).
    pub clock_ahead: u64,
    /// Packets more than a second behind the sensor's clock, tracked at its time.
    pub clock_behind: u64,
    /// Input files read.
    pub files: usize,
    /// Damage in the input.
    pub errors: Vec<String>,
    /// Stopped by a signal before the input ended.
    pub stopped: bool,
}

/// The summary as one JSON object (see the module documentation for its fields).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryJson<'a> {
    /// Per-app totals, in the table's order.
    pub apps: Vec<AppRow<'a>>,
    /// Flows no rule claimed.
    pub no_app: NoAppRow,
    /// Those flows by why they have no app (every reason, zeros included).
    pub unattributed: BTreeMap<&'static str, u64>,
    /// The run's totals.
    pub totals: Totals,
    /// Worker threads used (left out of the report, which is the same at any worker count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Wall time in seconds (left out of the report, which is the same on every run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_secs: Option<f64>,
}

/// Per-app totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    apps: BTreeMap<Arc<str>, AppTotals>,
    other: AppTotals,
    unattributed: [u64; Unattributed::COUNT],
    flows: u64,
    tls: u64,
    /// Calls written (`call` events).
    pub calls: u64,
}

impl Summary {
    /// Counts one ended flow.
    pub fn add(&mut self, rec: &FlowRecord) {
        let f = &rec.flow;
        self.flows += 1;
        self.tls += u64::from(f.tls.is_some());
        if let Some(u) = f.unattributed {
            self.unattributed[u.index()] += 1;
        }
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
            t.clients.insert(f.client.0);
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

    /// Per-app totals, flagged apps first, then by flows (most first), then by id.
    pub fn rows(&self) -> Vec<AppRow<'_>> {
        let mut rows: Vec<AppRow<'_>> = self.apps.iter().map(|(k, v)| v.row(k)).collect();
        rows.sort_by(|a, b| {
            (verdict_rank(a.verdict), std::cmp::Reverse(a.flows), a.app).cmp(&(
                verdict_rank(b.verdict),
                std::cmp::Reverse(b.flows),
                b.app,
            ))
        });
        rows
    }

    /// The totals of flows no rule claimed.
    pub fn no_app(&self) -> NoAppRow {
        let r = self.other.row("");
        NoAppRow {
            flows: r.flows,
            bytes: r.bytes,
            clients: r.clients,
            clients_capped: r.clients_capped,
        }
    }

    /// Flows without an app by why (every reason, zeros included).
    pub fn unattributed(&self) -> BTreeMap<&'static str, u64> {
        Unattributed::ALL
            .iter()
            .map(|u| (u.as_str(), self.unattributed[u.index()]))
            .collect()
    }

    /// The run's totals.
    pub fn totals(&self, run: &RunReport) -> Totals {
        let r = &run.read;
        Totals {
            packets: r.packets,
            bytes: r.bytes,
            decoded: r.decoded,
            flows: self.flows,
            hellos: self.tls,
            skipped: Skip::ALL
                .iter()
                .map(|k| (k.as_str(), r.skips[k.index()]))
                .collect(),
            decode_errors: r.decode_errors(),
            tunnels: TunnelKind::ALL
                .iter()
                .map(|k| (k.as_str(), r.decode.tunnels[k.index()]))
                .collect(),
            fragments: ReasmEnd::ALL
                .iter()
                .map(|e| (e.as_str(), r.decode.reassembly.count(*e)))
                .chain([
                    ("pending", r.decode.reassembly.pending),
                    ("duplicates", r.decode.reassembly.duplicates),
                ])
                .collect(),
            evicted: run.workers.stats.evicted,
            clock_ahead: r.clock_ahead,
            clock_behind: r.clock_behind,
            files: r.files,
            errors: r.errors.clone(),
            stopped: run.stopped,
        }
    }

    /// The summary as one JSON object, with the worker count and wall time of the run.
    pub fn json(&self, run: &RunReport) -> SummaryJson<'_> {
        SummaryJson {
            apps: self.rows(),
            no_app: self.no_app(),
            unattributed: self.unattributed(),
            totals: self.totals(run),
            workers: Some(run.workers_used),
            elapsed_secs: Some(run.elapsed.as_secs_f64()),
        }
    }

    /// The summary as text: the per-app table, then the run's totals.
    pub fn render(&self, run: &RunReport) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:>8} {:>12} {:>8} {:>7}",
            "app", "verdict", "flows", "bytes", "clients", "alerts"
        );
        let clients = |n: u64, capped: bool| {
            if capped {
                format!(">={MAX_CLIENTS}")
            } else {
                n.to_string()
            }
        };
        for r in self.rows() {
            let _ = writeln!(
                s,
                "{:<14} {:<8} {:>8} {:>12} {:>8} {:>7}",
                r.app,
                r.verdict.unwrap_or(""),
                r.flows,
                human_bytes(r.bytes),
                clients(r.clients, r.clients_capped),
                r.alerts
            );
        }
        let o = self.no_app();
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:>8} {:>12} {:>8} {:>7}",
            "(no app)",
            "",
            o.flows,
            human_bytes(o.bytes),
            clients(o.clients, o.clients_capped),
            "-"
        );
        let why: Vec<String> = Unattributed::ALL
            .iter()
            .map(|u| (u, self.unattributed[u.index()]))
            .filter(|(_, n)| *n > 0)
            .map(|(u, n)| format!("{u} {n}"))
            .collect();
        if !why.is_empty() {
            let _ = writeln!(s, "  no app because: {}", why.join(", "));
        }
        let r = &run.read;
        let secs = run.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(s);
        if run.stopped {
            let _ = writeln!(s, "stopped   after {} packets, by a stop signal", r.packets);
        }
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
        let anomalies: Vec<String> = Anomaly::ALL
            .iter()
            .map(|k| (k, run.workers.stats.anomalies[k.index()]))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect();
        if !anomalies.is_empty() {
            let _ = writeln!(s, "anomalies {}", anomalies.join(", "));
        }
        if r.filtered > 0 {
            let _ = writeln!(s, "filter    {} packets left out by --bpf", r.filtered);
        }
        if r.clock_ahead + r.clock_behind > 0 {
            let _ = writeln!(
                s,
                "clock     {} packets too far ahead of the capture's time to move the clock, {} behind it tracked at its time",
                r.clock_ahead, r.clock_behind
            );
        }
        let d = &r.decode;
        let tunnels: Vec<String> = TunnelKind::ALL
            .iter()
            .filter(|k| d.tunnels[k.index()] > 0)
            .map(|k| format!("{} {}", k, d.tunnels[k.index()]))
            .collect();
        if !tunnels.is_empty() {
            let _ = writeln!(s, "tunnels   {}", tunnels.join(", "));
        }
        let mut frags: Vec<String> = ReasmEnd::ALL
            .iter()
            .filter(|e| d.reassembly.count(**e) > 0)
            .map(|e| format!("{} {}", d.reassembly.count(*e), e.as_str()))
            .collect();
        if d.reassembly.pending > 0 {
            frags.push(format!("{} pending", d.reassembly.pending));
        }
        if d.reassembly.duplicates > 0 {
            frags.push(format!("{} duplicates dropped", d.reassembly.duplicates));
        }
        if !frags.is_empty() {
            let _ = writeln!(s, "fragments {}", frags.join(", "));
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

/// Orders verdicts as the table lists them: flag, observe, none.
fn verdict_rank(v: Option<&str>) -> u8 {
    match v {
        Some("flag") => 0,
        Some(_) => 1,
        None => 2,
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
