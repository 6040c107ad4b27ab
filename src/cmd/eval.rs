//! `picket eval LABELS PCAP...`: per-app precision and recall of the flows' apps against labels.

use super::{load_rules, EXIT_DAMAGED};
use anyhow::{Context, Result};
use picket::capture::file::{Input, Order};
use picket::export::eval::{Labels, Score};
use picket::export::record::Record;
use picket::pipeline::{self, Control, Hooks};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Examples shown after the options, and in the man page.
pub const EXAMPLES: &str = "\
Examples:
  picket eval labels.tsv capture.pcap
  picket eval --min-recall 90 --min-precision 99 labels.tsv a.pcap b.pcap
  picket eval corpus/labels corpus/pcap/zoom.pcap corpus/pcap/line.pcap

Label file (TSV; a header line names the columns, `#` lines are comments):
  transport\ta\tb\tapp
  tcp\t10.0.0.5:50432\t52.1.2.3:443\tzoom
  udp\t[2001:db8::5]:3478\t[2001:db8::9]:3478\twhatsapp
  udp\t10.0.0.5:5353\t224.0.0.251:5353\t-
`l4` may name the transport column and `client`/`server` the endpoints; other columns are ignored.
The endpoints match a flow in either order. An empty or `-` app: a flow of no messaging app.";

/// A score below `--min-recall` or `--min-precision`.
const EXIT_BELOW: u8 = 1;

/// Options of `picket eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The labels: one TSV file for all the captures (replayed as one timeline), or a folder
    /// holding NAME.tsv or NAME.ndpi.tsv for each capture NAME (each replayed on its own, as the
    /// shared corpus is laid out).
    #[arg(value_name = "PATH")]
    labels: PathBuf,
    /// The labelled captures (pcap or pcapng, plain or compressed).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Exit 1 when the overall recall (percent) is below this.
    #[arg(long, value_name = "N")]
    min_recall: Option<f64>,
    /// Exit 1 when the overall precision (percent) is below this.
    #[arg(long, value_name = "N")]
    min_precision: Option<f64>,
    /// A flow labelled with no app that Picket names an app counts against precision (by
    /// default it is counted apart as beyond the label, as the corpus scorer does).
    #[arg(long)]
    strict: bool,
    /// Use the rule files of DIR instead of the embedded defaults.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Layer the rule files of DIR on the rules in force (repeatable), as replay does.
    #[arg(long, value_name = "DIR")]
    rules_add: Vec<PathBuf>,
    /// A policy file that overrides the rules' default verdicts.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Worker threads [default: cores - 1, at least 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
}

/// The label file of `capture` in the folder `dir`: NAME.tsv, else NAME.ndpi.tsv.
fn label_file_in(dir: &Path, capture: &Path) -> Result<PathBuf> {
    let name = capture
        .file_name()
        .with_context(|| format!("{}: not a file name", capture.display()))?
        .to_string_lossy();
    let candidates = [format!("{name}.tsv"), format!("{name}.ndpi.tsv")];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{}: no label file for {} (looked for {} and {})",
                dir.display(),
                capture.display(),
                candidates[0],
                candidates[1]
            )
        })
}

/// Reads and parses one label file.
fn read_labels(path: &Path, is_app: &dyn Fn(&str) -> bool) -> Result<Labels> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels {}", path.display()))?;
    let labels = Labels::parse(&path.display().to_string(), &text, is_app)?;
    for w in &labels.warnings {
        eprintln!("picket: warning: {w}: the row is counted as a label no flow matched");
    }
    Ok(labels)
}

/// Runs `picket eval`.
pub fn run(a: Args) -> Result<ExitCode> {
    for (flag, v) in [
        ("--min-recall", a.min_recall),
        ("--min-precision", a.min_precision),
    ] {
        if let Some(v) = v.filter(|v| !(0.0..=100.0).contains(v)) {
            anyhow::bail!("{flag} {v}: a percentage, 0 to 100");
        }
    }
    let rules = Arc::new(load_rules(
        a.rules.as_deref(),
        &a.rules_add,
        a.policy.as_deref(),
    )?);
    let is_app = |id: &str| rules.app_by_id(id).is_some();
    let per_capture = a.labels.is_dir();
    // Every label file is read first: a bad one fails before any replay.
    let sets: Vec<(Vec<Input>, Labels)> = if per_capture {
        a.files
            .iter()
            .map(|f| {
                let labels = read_labels(&label_file_in(&a.labels, f)?, &is_app)?;
                Ok((vec![Input::Path(f.clone())], labels))
            })
            .collect::<Result<_>>()?
    } else {
        let inputs = a.files.iter().map(|f| Input::Path(f.clone())).collect();
        vec![(inputs, read_labels(&a.labels, &is_app)?)]
    };
    let mut cfg = pipeline::Config::default();
    if let Some(w) = a.workers {
        cfg.workers = usize::from(w);
    }
    let control = Arc::new(Control::default());
    let reopen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    super::common::watch_signals(Arc::clone(&control), reopen)?;
    let mut score = Score {
        strict: a.strict,
        ..Score::default()
    };
    let (mut unreadable, mut damaged) = (0, 0);
    for (inputs, mut labels) in sets {
        let hooks = Hooks {
            control: Some(&control),
            ..Hooks::default()
        };
        let report = pipeline::replay_inputs(
            &inputs,
            Order::Time,
            None,
            &cfg,
            Arc::clone(&rules),
            hooks,
            |batch| {
                for r in &batch.records {
                    if let Record::Flow(f) = r {
                        score.record(&mut labels, &f.flow);
                    }
                }
            },
        );
        score.finish(labels);
        for e in &report.read.errors {
            eprintln!("picket: {e}");
        }
        if report.read.files == 0 {
            unreadable += 1;
        } else if !report.read.errors.is_empty() {
            damaged += 1;
        }
        if report.stopped {
            break;
        }
    }
    print!("{}", score.table(a.files.len()));
    if let Some(code) = super::common::stop_status() {
        return Ok(ExitCode::from(code));
    }
    let (recall, precision) = score.percentages();
    let mut short = Vec::new();
    if a.min_recall.is_some_and(|m| recall < m) {
        short.push(format!(
            "recall {recall:.1}% < {}%",
            a.min_recall.unwrap_or(0.0)
        ));
    }
    if a.min_precision.is_some_and(|m| precision < m) {
        short.push(format!(
            "precision {precision:.1}% < {}%",
            a.min_precision.unwrap_or(0.0)
        ));
    }
    if unreadable > 0 || damaged > 0 {
        eprintln!(
            "picket: {unreadable} captures unreadable, {damaged} damaged: the scores count only \
             what was read"
        );
    }
    if !short.is_empty() {
        eprintln!("picket: below the bound: {}", short.join(", "));
        return Ok(ExitCode::from(EXIT_BELOW));
    }
    Ok(if unreadable > 0 || damaged > 0 {
        ExitCode::from(EXIT_DAMAGED)
    } else {
        ExitCode::SUCCESS
    })
}
