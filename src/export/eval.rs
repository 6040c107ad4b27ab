//! `picket eval`: how well the flows' apps agree with an analyst's labels.
//!
//! # The label format
//!
//! A TSV file (tab-separated, UTF-8). Blank lines and lines starting with `#` are skipped. The
//! first other line is the header: column names, in any order; columns not named here are
//! ignored (so the `.ndpi.tsv` labels of the shared corpus read as they are).
//!
//! | column | meaning |
//! |---|---|
//! | `transport` (or `l4`) | `tcp` or `udp`, in any case; another IP protocol's name (`icmp`, `igmp`) is a flow Picket does not track: counted as labelled, never found |
//! | `a` and `b` (or `client` and `server`) | the flow's two endpoints, `IP:PORT` (`[IPv6]:PORT`, or an IPv6 address whose last `:` starts the port); either order |
//! | `app` | the app id the flow belongs to (an id of the rules in force), or empty / `-` for a flow of no messaging app |
//!
//! A flow matches a label when its transport is the same and its client and server are the
//! label's two endpoints, in either order (labels written from the server's side still match).
//! Two rows for the same flow with different apps are an error; a bad row is an error naming
//! `file:line`, except a row whose endpoint is not an address (a labeller's typo, as one row of
//! the corpus has): it is reported as a warning naming `file:line` and counted as a label no flow
//! matched, as the corpus scorer counts it.
//!
//! # The scores
//!
//! As `../shared/tools/score` counts them, so both give the same figures on the corpus:
//! - recall of app X: the flows labelled X of which some flow record says X, over the flows
//!   labelled X;
//! - precision of app X: the flow records that say X whose label says X, over the flow records
//!   that say X and whose label names an app. A record saying X on a flow without a label, or
//!   whose label names no app, is counted apart as *beyond the label* (a labeller misses flows
//!   too); `strict` counts a record on a flow labelled with no app as wrong instead.
//!
//! The confusion table has one row per label (each app, `-` for no app, `(unlabelled)` for
//! records on flows no label names) and one column per answer (each app, `-` for a flow
//! without an app, `(no flow)` for a label no flow matched). A labelled flow is counted once: in
//! its label's column when some record of it agrees, else in the first app a record of it gave.
//!
//! Memory: one entry per label row and per app, whatever the size of the captures.

use crate::decode::Transport;
use crate::export::record::FlowView;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::Arc;

/// An endpoint as labels and flows name it.
type Endpoint = (IpAddr, u16);

/// A flow's key: transport and its two endpoints, the lower first (direction does not matter).
type Key = (Transport, Endpoint, Endpoint);

fn key(t: Transport, a: Endpoint, b: Endpoint) -> Key {
    if a <= b {
        (t, a, b)
    } else {
        (t, b, a)
    }
}

/// A bad label file: which file, which line, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelError {
    /// The file's name as given.
    pub file: String,
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for LabelError {}

/// One labelled flow and what the records said of it.
#[derive(Debug)]
struct Labelled {
    /// The label's app (None: no messaging app).
    app: Option<Arc<str>>,
    /// Its line, for duplicate reports.
    line: usize,
    /// Some record matched the flow.
    seen: bool,
    /// Some record gave the label's app.
    hit: bool,
    /// The first other app a record gave.
    other: Option<Arc<str>>,
}

/// The labels of one file (or of one capture).
#[derive(Debug, Default)]
pub struct Labels {
    rows: HashMap<Key, Labelled>,
    /// The apps of labels on another IP protocol (ICMP, IGMP…): Picket tracks no such flow,
    /// so they count as labelled and never found.
    elsewhere: Vec<Option<Arc<str>>>,
    /// Rows read but unmatchable: an endpoint that is not an address (`file:line: why`).
    pub warnings: Vec<LabelError>,
}

/// Parses an endpoint: `IP:PORT`, `[IPv6]:PORT`, or an IPv6 address whose last `:` starts the
/// port.
fn endpoint(s: &str) -> Result<Endpoint, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not an endpoint (IP:PORT, or [IPv6]:PORT)");
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            (h, p)
        }
        None => s.rsplit_once(':').ok_or_else(bad)?,
    };
    let ip: IpAddr = host.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    // IPv4-mapped addresses are IPv4, as flows name them.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    };
    Ok((ip, port))
}

/// The column of one of `names` in `head`.
fn column(head: &[&str], names: &[&str]) -> Option<usize> {
    head.iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

impl Labels {
    /// Parses a label file's text. `file` names it in errors; `is_app` says whether an app id is
    /// one of the rules in force (a label naming another could never be matched: a typo).
    pub fn parse(
        file: &str,
        text: &str,
        is_app: &dyn Fn(&str) -> bool,
    ) -> Result<Labels, LabelError> {
        let err = |line: usize, message: String| LabelError {
            file: file.to_string(),
            line,
            message,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let Some((hline, header)) = lines.next() else {
            return Err(err(0, "no header line (transport, a, b, app)".into()));
        };
        let head: Vec<&str> = header.split('\t').collect();
        let need = |names: &[&str], what: &str| {
            column(&head, names).ok_or_else(|| {
                err(
                    hline,
                    format!(
                        "the header has no {what} column (columns: {})",
                        head.join(", ")
                    ),
                )
            })
        };
        let t_col = need(&["transport", "l4"], "transport (or l4)")?;
        let (a_col, b_col) = match (column(&head, &["a"]), column(&head, &["b"])) {
            (Some(a), Some(b)) => (a, b),
            _ => (
                need(&["client"], "a/b (or client/server) endpoint")?,
                need(&["server"], "a/b (or client/server) endpoint")?,
            ),
        };
        let app_col = need(&["app"], "app")?;
        let mut labels = Labels::default();
        for (n, line) in lines {
            let cells: Vec<&str> = line.split('\t').collect();
            let cell = |i: usize| cells.get(i).map(|c| c.trim());
            let Some(t) = cell(t_col) else {
                return Err(err(n, "no transport".into()));
            };
            let transport = match t.to_ascii_lowercase().as_str() {
                "tcp" => Some(Transport::Tcp),
                "udp" => Some(Transport::Udp),
                // Another IP protocol by name: a flow Picket does not track.
                p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()) => None,
                _ => {
                    return Err(err(
                        n,
                        format!("transport {t:?} is not tcp, udp or an IP protocol's name"),
                    ))
                }
            };
            let ep = |col: usize, what: &str| match cell(col) {
                Some(c) => endpoint(c).map_err(|m| err(n, format!("{what}: {m}"))),
                None => Err(err(
                    n,
                    format!("{} cells, the header has {}", cells.len(), head.len()),
                )),
            };
            let (a, b) = (ep(a_col, head[a_col].trim()), ep(b_col, head[b_col].trim()));
            let app = match cell(app_col) {
                // A short row whose last cells are empty (trailing tabs trimmed by an editor).
                None | Some("") | Some("-") => None,
                Some(id) if is_app(id) => Some(Arc::<str>::from(id)),
                Some(id) => {
                    return Err(err(
                        n,
                        format!("app {id:?} is no app of the rules in force (`picket rules check` lists them)"),
                    ))
                }
            };
            let (a, b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) if cells.len() < head.len() => return Err(e),
                // An address no flow can have (a labeller's typo): reported, and counted as a
                // label no flow matched.
                (Err(e), _) | (_, Err(e)) => {
                    labels.warnings.push(e);
                    labels.elsewhere.push(app);
                    continue;
                }
            };
            let Some(transport) = transport else {
                labels.elsewhere.push(app);
                continue;
            };
            let k = key(transport, a, b);
            match labels.rows.get(&k) {
                Some(old) if old.app != app => {
                    return Err(err(
                        n,
                        format!(
                            "this flow was labelled {} on line {}, here {}",
                            old.app.as_deref().unwrap_or("-"),
                            old.line,
                            app.as_deref().unwrap_or("-")
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    labels.rows.insert(
                        k,
                        Labelled {
                            app,
                            line: n,
                            seen: false,
                            hit: false,
                            other: None,
                        },
                    );
                }
            }
        }
        Ok(labels)
    }

    /// Number of labelled flows.
    pub fn len(&self) -> usize {
        self.rows.len() + self.elsewhere.len()
    }

    /// No labelled flow.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One app's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppScore {
    /// Flows labelled with the app.
    pub labelled: u64,
    /// Of those, flows some record gave the app.
    pub found: u64,
    /// Flow records that gave the app.
    pub claimed: u64,
    /// Of those, records whose label is the app.
    pub right: u64,
    /// Of those, records on flows without a label or (unless strict) labelled with no app.
    pub beyond: u64,
}

impl AppScore {
    /// Records judged for precision.
    pub fn judged(&self) -> u64 {
        self.claimed - self.beyond
    }
}

/// `-` for no app in the confusion table.
const NONE: &str = "-";
/// The column of labels no flow matched.
const NO_FLOW: &str = "(no flow)";
/// The row of records on flows without a label.
const UNLABELLED: &str = "(unlabelled)";

/// The counts of a whole evaluation (every capture and label file).
#[derive(Debug, Default)]
pub struct Score {
    /// Per app.
    pub apps: BTreeMap<Arc<str>, AppScore>,
    /// (label, answer) → flows.
    pub confusion: BTreeMap<(String, String), u64>,
    /// A record on a flow labelled with no app counts against precision.
    pub strict: bool,
}

impl Score {
    /// Counts one flow record against `labels` (call for every ended flow's record).
    pub fn record(&mut self, labels: &mut Labels, flow: &FlowView) {
        let k = key(
            flow.transport,
            (flow.client.0.ip(), flow.client.1),
            (flow.server.0.ip(), flow.server.1),
        );
        let app = flow.app.as_ref().map(|c| &c.app);
        match (labels.rows.get_mut(&k), app) {
            (Some(l), app) => {
                l.seen = true;
                match (app, &l.app) {
                    (Some(a), Some(want)) if a == want => l.hit = true,
                    (Some(a), _) if l.other.is_none() => l.other = Some(Arc::clone(a)),
                    _ => {}
                }
                if let Some(a) = app {
                    let judged_label = l.app.clone();
                    let s = self.apps.entry(Arc::clone(a)).or_default();
                    s.claimed += 1;
                    match judged_label {
                        Some(want) if want == *a => s.right += 1,
                        Some(_) => {}
                        None if self.strict => {}
                        None => s.beyond += 1,
                    }
                }
            }
            (None, Some(a)) => {
                let s = self.apps.entry(Arc::clone(a)).or_default();
                s.claimed += 1;
                s.beyond += 1;
                *self
                    .confusion
                    .entry((UNLABELLED.into(), a.to_string()))
                    .or_default() += 1;
            }
            (None, None) => {}
        }
    }

    /// Ends one label set: counts recall and the confusion table of its labelled flows.
    pub fn finish(&mut self, labels: Labels) {
        let elsewhere = labels.elsewhere.into_iter().map(|app| Labelled {
            app,
            line: 0,
            seen: false,
            hit: false,
            other: None,
        });
        for l in labels.rows.into_values().chain(elsewhere) {
            let answer = if l.hit {
                l.app.as_deref().unwrap_or(NONE).to_string()
            } else if let Some(o) = &l.other {
                o.to_string()
            } else if l.seen {
                NONE.to_string()
            } else {
                NO_FLOW.to_string()
            };
            let row = l.app.as_deref().unwrap_or(NONE).to_string();
            *self.confusion.entry((row, answer)).or_default() += 1;
            if let Some(app) = l.app {
                let s = self.apps.entry(app).or_default();
                s.labelled += 1;
                if l.hit {
                    s.found += 1;
                }
            }
        }
    }

    /// Totals over the apps: (labelled, found, judged, right).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        self.apps.values().fold((0, 0, 0, 0), |t, s| {
            (
                t.0 + s.labelled,
                t.1 + s.found,
                t.2 + s.judged(),
                t.3 + s.right,
            )
        })
    }

    /// Overall recall and precision in percent (100 when nothing was there to find or judge).
    pub fn percentages(&self) -> (f64, f64) {
        let (l, f, j, r) = self.totals();
        let pct = |a: u64, b: u64| {
            if b == 0 {
                100.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        (pct(f, l), pct(r, j))
    }

    /// The per-app table, the confusion table and the totals line (last), for people.
    pub fn table(&self, captures: usize) -> String {
        let mut o = String::new();
        let pct = |a: u64, b: u64| {
            if b == 0 {
                "-".to_string()
            } else {
                format!("{:.0}%", 100.0 * a as f64 / b as f64)
            }
        };
        let _ = writeln!(
            o,
            "{:<12} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "app", "labelled", "recall", "claimed", "precision", "beyond"
        );
        for (app, s) in &self.apps {
            let _ = writeln!(
                o,
                "{:<12} {:>8} {:>8} {:>8} {:>9} {:>7}",
                app,
                s.labelled,
                pct(s.found, s.labelled),
                s.claimed,
                pct(s.right, s.judged()),
                s.beyond
            );
        }
        if !self.confusion.is_empty() {
            let mut rows: Vec<&str> = Vec::new();
            let mut cols: Vec<&str> = Vec::new();
            for (r, c) in self.confusion.keys() {
                if !rows.contains(&r.as_str()) {
                    rows.push(r);
                }
                if !cols.contains(&c.as_str()) {
                    cols.push(c);
                }
            }
            // Apps in name order, then no app, then the flows no label or no record names.
            let order = |s: &&str| match *s {
                NONE => 1,
                NO_FLOW | UNLABELLED => 2,
                _ => 0,
            };
            rows.sort_by_key(|r| (order(r), *r));
            cols.sort_by_key(|c| (order(c), *c));
            let w = rows.iter().map(|s| s.len()).max().unwrap_or(1);
            let _ = write!(o, "\nconfusion (rows: label, columns: picket)\n{:<w$}", "");
            for c in &cols {
                let _ = write!(o, " {c:>3}");
            }
            o.push('\n');
            for r in &rows {
                let _ = write!(o, "{r:<w$}");
                for c in &cols {
                    let n = self
                        .confusion
                        .get(&(r.to_string(), c.to_string()))
                        .copied()
                        .unwrap_or(0);
                    let cw = c.len().max(3);
                    let _ = write!(o, " {n:>cw$}");
                }
                o.push('\n');
            }
            o.push('\n');
        }
        let (l, f, j, r) = self.totals();
        let (rec, pre) = self.percentages();
        let _ = writeln!(
            o,
            "{captures} captures: apps recall {f}/{l} ({rec:.1}%), precision {r}/{j} ({pre:.1}%)"
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps(id: &str) -> bool {
        matches!(id, "zoom" | "whatsapp" | "signal")
    }

    fn parse(text: &str) -> Result<Labels, LabelError> {
        Labels::parse("l.tsv", text, &apps)
    }

    #[test]
    fn eval_endpoints_of_every_form() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(endpoint("10.0.0.1:443"), Ok((v4, 443)));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(endpoint("[fe80::1]:546"), Ok((v6, 546)));
        assert_eq!(endpoint("fe80::1:546"), Ok((v6, 546)));
        assert_eq!(endpoint("[::ffff:10.0.0.1]:443"), Ok((v4, 443)));
        for bad in [
            "10.0.0.1",
            "10.0.0.1:x",
            "10.0.0.1:70000",
            "host:80",
            "[::1:80",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn eval_labels_read_the_corpus_header_and_either_order() {
        let l = parse(
            "# comment\n\nl4\ta\tb\tndpi_label\tapp\tconfidence\thost\tja4\n\
             UDP\t10.0.0.1:5000\t10.0.0.2:53\tDNS\t\tDPI\t\t\n\
             TCP\t10.0.0.2:443\t10.0.0.1:40000\tZoom\tzoom\tDPI\t\t\n\
             TCP\t10.0.0.1:40000\t10.0.0.2:443\tZoom\tzoom\tDPI\t\t\n\
             ICMP\t10.0.0.1:0\t10.0.0.2:0\tICMP\t\tDPI\t\t\n",
        )
        .unwrap();
        assert_eq!(l.len(), 3, "the same flow from both sides is one label");
        let l = parse("transport\tclient\tserver\tapp\ntcp\t10.0.0.1:1\t10.0.0.2:2\t-\n").unwrap();
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn eval_bad_label_lines_name_file_and_line() {
        let cases = [
            ("", 0, "no header"),
            ("# only\n", 0, "no header"),
            ("l4\ta\tb\n", 1, "no app column"),
            ("a\tb\tapp\n", 1, "no transport"),
            ("l4\tx\ty\tapp\n", 1, "endpoint"),
            ("l4\ta\tb\tapp\nt c p\t1.1.1.1:1\t2.2.2.2:2\tzoom\n", 2, "not tcp, udp or"),
            ("l4\ta\tb\tapp\n\t1.1.1.1:1\t2.2.2.2:2\tzoom\n", 2, "not tcp, udp or"),
            ("l4\ta\tb\tapp\n\ntcp\t1.1.1.1:1\n", 3, "2 cells, the header has 4"),
            ("l4\ta\tb\tapp\ntcp\t1.1.1.1:1\t2.2.2.2:2\tzom\n", 2, "\"zom\" is no app"),
            (
                "l4\ta\tb\tapp\ntcp\t1.1.1.1:1\t2.2.2.2:2\tzoom\ntcp\t2.2.2.2:2\t1.1.1.1:1\tsignal\n",
                3,
                "labelled zoom on line 2, here signal",
            ),
        ];
        for (text, line, want) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(want), "{text:?}: {e}");
            let prefix = if line == 0 {
                "l.tsv: ".to_string()
            } else {
                format!("l.tsv:{line}: ")
            };
            assert!(e.to_string().starts_with(&prefix), "{e}");
        }
    }

    #[test]
    fn eval_a_row_with_a_bad_address_is_reported_and_never_found() {
        let l = parse(
            "l4\ta\tb\tapp\n\
             tcp\t1.1.1.1\t2.2.2.2:2\tzoom\n\
             udp\t[2600::19::]:3478\t[2001:db8::1]:5\t\n",
        )
        .unwrap();
        let w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("l.tsv:2: a: \"1.1.1.1\" is not an endpoint"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("l.tsv:3: a: \"[2600::19::]:3478\""),
            "{w:?}"
        );
        let mut s = Score::default();
        s.finish(l);
        assert_eq!(s.totals(), (1, 0, 0, 0));
        assert_eq!(
            s.confusion.get(&("zoom".into(), "(no flow)".into())),
            Some(&1)
        );
    }

    fn view(t: Transport, c: &str, s: &str, app: Option<&str>) -> FlowView {
        let (ci, cp) = endpoint(c).unwrap();
        let (si, sp) = endpoint(s).unwrap();
        let ts = crate::capture::Timestamp(0);
        let mut v = FlowView::sample((ci, cp), (si, sp), ts, ts);
        v.transport = t;
        v.app = app.map(|a| {
            Box::new(crate::classify::Classification {
                app: Arc::from(a),
                source: crate::classify::AppSource::Sni,
                rule: Arc::from("x.toml:1"),
                rule_id: Arc::from("t:x"),
                category: Arc::from("messaging"),
                verdict: crate::rules::Verdict::Flag,
                alert: true,
            })
        });
        v
    }

    #[test]
    fn eval_scores_count_as_the_corpus_scorer_does() {
        let mut labels = parse(
            "l4\ta\tb\tapp\n\
             tcp\t10.0.0.9:443\t10.0.0.1:1\tzoom\n\
             tcp\t10.0.0.1:2\t10.0.0.9:443\tzoom\n\
             udp\t10.0.0.1:3\t10.0.0.9:53\t\n\
             udp\t10.0.0.1:4\t10.0.0.9:3478\twhatsapp\n\
             tcp\t10.0.0.1:5\t10.0.0.9:443\tsignal\n\
             icmp\t10.0.0.1:0\t10.0.0.9:0\twhatsapp\n",
        )
        .unwrap();
        let mut s = Score::default();
        let tcp = Transport::Tcp;
        let udp = Transport::Udp;
        // Found from the other side; a second record of the flow without an app.
        s.record(
            &mut labels,
            &view(tcp, "10.0.0.1:1", "10.0.0.9:443", Some("zoom")),
        );
        s.record(&mut labels, &view(tcp, "10.0.0.1:1", "10.0.0.9:443", None));
        // Missed: no app.
        s.record(&mut labels, &view(tcp, "10.0.0.1:2", "10.0.0.9:443", None));
        // Beyond the label: labelled with no app, and no label at all.
        s.record(
            &mut labels,
            &view(udp, "10.0.0.1:3", "10.0.0.9:53", Some("zoom")),
        );
        s.record(
            &mut labels,
            &view(udp, "10.0.0.1:7", "10.0.0.9:53", Some("zoom")),
        );
        // Wrong: labelled whatsapp, said signal.
        s.record(
            &mut labels,
            &view(udp, "10.0.0.1:4", "10.0.0.9:3478", Some("signal")),
        );
        // The signal label's flow never appears.
        s.finish(labels);
        let zoom = s.apps["zoom"];
        assert_eq!(
            zoom,
            AppScore {
                labelled: 2,
                found: 1,
                claimed: 3,
                right: 1,
                beyond: 2
            }
        );
        let signal = s.apps["signal"];
        assert_eq!(
            (signal.labelled, signal.found, signal.claimed, signal.right),
            (1, 0, 1, 0)
        );
        // An ICMP label is labelled and never found, as the scorer counts it.
        assert_eq!(s.apps["whatsapp"].labelled, 2);
        assert_eq!(s.totals(), (5, 1, 2, 1));
        let c = |r: &str, col: &str| s.confusion.get(&(r.into(), col.into())).copied();
        assert_eq!(c("zoom", "zoom"), Some(1));
        assert_eq!(c("zoom", "-"), Some(1));
        assert_eq!(c("-", "zoom"), Some(1));
        assert_eq!(c("whatsapp", "signal"), Some(1));
        assert_eq!(c("whatsapp", "(no flow)"), Some(1));
        assert_eq!(c("signal", "(no flow)"), Some(1));
        assert_eq!(c("(unlabelled)", "zoom"), Some(1));
        let t = s.table(1);
        assert!(
            t.ends_with("1 captures: apps recall 1/5 (20.0%), precision 1/2 (50.0%)\n"),
            "{t}"
        );
        assert!(
            t.contains("confusion (rows: label, columns: picket)"),
            "{t}"
        );
    }

    #[test]
    fn eval_strict_counts_a_claim_on_a_no_app_label_as_wrong() {
        let mut labels = parse("l4\ta\tb\tapp\nudp\t10.0.0.1:3\t10.0.0.9:53\t-\n").unwrap();
        let mut s = Score {
            strict: true,
            ..Score::default()
        };
        s.record(
            &mut labels,
            &view(Transport::Udp, "10.0.0.1:3", "10.0.0.9:53", Some("zoom")),
        );
        s.finish(labels);
        assert_eq!(s.apps["zoom"].judged(), 1);
        assert_eq!(s.percentages().1, 0.0);
    }
}
