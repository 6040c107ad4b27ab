//! `picket eval LABELS PCAP...`: per-app recall and precision against labels. On the generated
//! demo capture with labels made from its own events (then some changed), the figures must be
//! what the changes make them; on the shared corpus they must be the corpus scorer's; every bad
//! label file fails with `file:line`.

mod common;

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap")
}

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("eval")
        .args(args)
        .output()
        .expect("picket runs")
}

/// The last line of stdout: the totals.
fn last_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

/// The demo's flow events with an app, as (transport, client, server, app); the client and
/// server swapped on every other one (labels may name either side first).
fn app_flows() -> Vec<(String, String, String, String)> {
    let events = common::replay(&demo(), &[]);
    let mut rows: Vec<_> = common::of(&events, "flow")
        .into_iter()
        .filter_map(|e: &Value| {
            let app = e["app"].as_str()?;
            let ep = |ip: &Value, port: &Value| {
                let ip = ip.as_str().unwrap_or_default();
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            };
            Some((
                e["transport"].as_str().unwrap_or_default().to_string(),
                ep(&e["src_ip"], &e["src_port"]),
                ep(&e["dst_ip"], &e["dst_port"]),
                app.to_string(),
            ))
        })
        .collect();
    rows.sort();
    rows.dedup();
    for (i, r) in rows.iter_mut().enumerate() {
        if i % 2 == 1 {
            std::mem::swap(&mut r.1, &mut r.2);
        }
    }
    rows
}

fn write_labels(dir: &Path, rows: &[(String, String, String, String)]) -> PathBuf {
    let mut t = String::from("# demo labels\ntransport\ta\tb\tapp\tnote\n");
    for (l4, a, b, app) in rows {
        let _ = writeln!(t, "{l4}\t{a}\t{b}\t{app}\tfrom the demo's events");
    }
    let p = dir.join("demo.tsv");
    std::fs::write(&p, t).expect("write labels");
    p
}

#[test]
fn eval_labels_of_the_demo_score_what_their_changes_make_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = app_flows();
    let n = rows.len();
    assert!(n >= 10, "the demo has app flows: {rows:?}");
    let labels = write_labels(dir.path(), &rows);
    let cap = demo();
    let args = [labels.to_str().unwrap(), cap.to_str().unwrap()];
    let o = eval(&[
        "--min-recall",
        "100",
        "--min-precision",
        "100",
        args[0],
        args[1],
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        last_line(&o),
        format!("1 captures: apps recall {n}/{n} (100.0%), precision {n}/{n} (100.0%)")
    );

    // Two labels say another app (wrong answers: recall and precision both drop), one says no
    // app (beyond the label: precision is not judged there), and one is of a flow not in the
    // capture (never found).
    let other = |app: &str| if app == "zoom" { "signal" } else { "zoom" }.to_string();
    rows[0].3 = other(&rows[0].3);
    rows[1].3 = other(&rows[1].3);
    rows[2].3 = "-".into();
    rows.push((
        "udp".into(),
        "192.0.2.1:1".into(),
        "192.0.2.2:2".into(),
        "whatsapp".into(),
    ));
    let labels = write_labels(dir.path(), &rows);
    let o = eval(&["--min-recall", "90", args[0], args[1]]);
    let labelled = n; // n - 1 app labels kept, one added
    let found = n - 3;
    let judged = n - 1;
    let right = n - 3;
    let want = format!(
        "1 captures: apps recall {found}/{labelled} ({:.1}%), precision {right}/{judged} ({:.1}%)",
        100.0 * found as f64 / labelled as f64,
        100.0 * right as f64 / judged as f64
    );
    assert_eq!(last_line(&o), want);
    let below = (100.0 * found as f64 / labelled as f64) < 90.0;
    assert_eq!(o.status.code(), Some(if below { 1 } else { 0 }));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("confusion (rows: label, columns: picket)"),
        "{out}"
    );
    assert!(out.contains("(no flow)"), "{out}");

    // --strict: the flow labelled with no app counts against precision.
    let o = eval(&["--strict", labels.to_str().unwrap(), args[1]]);
    assert!(
        last_line(&o).ends_with(&format!(
            "precision {right}/{n} ({:.1}%)",
            100.0 * right as f64 / n as f64
        )),
        "{}",
        last_line(&o)
    );
    // A bound that is met exits 0; one that is not exits 1 and says which.
    let o = eval(&["--min-precision", "99", labels.to_str().unwrap(), args[1]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("below the bound: precision"));
}

#[test]
fn eval_bad_labels_fail_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = demo();
    let cases = [
        ("transport\ta\tb\n", ":1: the header has no app column"),
        (
            "transport\ta\tb\tapp\ntcp\t10.0.0.1:1\t10.0.0.2:2\tzoom\ntcp\t10.0.0.1:1\n",
            ":3: 2 cells, the header has 4",
        ),
        (
            "transport\ta\tb\tapp\n\n# c\nquic!\t10.0.0.1:1\t10.0.0.2:2\tzoom\n",
            ":4: transport \"quic!\" is not tcp, udp",
        ),
        (
            "transport\ta\tb\tapp\ntcp\t10.0.0.1:1\t10.0.0.2:2\twhatsap\n",
            ":2: app \"whatsap\" is no app of the rules in force",
        ),
        (
            "transport\ta\tb\tapp\ntcp\t10.0.0.1:1\t10.0.0.2:2\tzoom\ntcp\t10.0.0.2:2\t10.0.0.1:1\tsignal\n",
            ":3: this flow was labelled zoom on line 2, here signal",
        ),
        ("# nothing\n", ": no header line"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.tsv"));
        std::fs::write(&p, text).expect("write labels");
        let o = eval(&[p.to_str().unwrap(), cap.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text:?}: {err}");
        assert!(
            err.contains(&format!("{}{want}", p.display())),
            "{text:?}: want {want:?} in {err}"
        );
        assert!(
            o.stdout.is_empty(),
            "nothing scored before the labels are read"
        );
    }
    // A bad address is a warning naming file:line; the row is a label never found.
    let p = dir.path().join("warn.tsv");
    std::fs::write(
        &p,
        "l4\ta\tb\tapp\nudp\t[2600::19::]:3478\t10.0.0.1:5\tzoom\n",
    )
    .unwrap();
    let o = eval(&[p.to_str().unwrap(), cap.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("{}:2: a: ", p.display())),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        last_line(&o).contains("apps recall 0/1 (0.0%)"),
        "{}",
        last_line(&o)
    );
    // No label file for a capture in a labels folder; a labels file that is not there.
    let o = eval(&[dir.path().to_str().unwrap(), cap.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no label file for"));
    let missing = dir.path().join("missing.tsv");
    let o = eval(&[missing.to_str().unwrap(), cap.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read labels"));
    // A bound outside 0..100.
    let o = eval(&[
        "--min-recall",
        "150",
        missing.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// The figures of a scorer's last line: (recall found, labelled, precision right, judged).
fn figures(line: &str) -> Option<(u64, u64, u64, u64)> {
    let pair = |after: &str| -> Option<(u64, u64)> {
        let rest = &line[line.find(after)? + after.len()..];
        let frac = rest.split_whitespace().next()?;
        let (a, b) = frac.split_once('/')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let (f, l) = pair("apps recall ")?;
    let (r, j) = pair("precision ")?;
    Some((f, l, r, j))
}

#[test]
fn eval_on_the_corpus_agrees_with_its_scorer() {
    let Some(common::Corpus { dir: corpus, score }) = common::require_corpus() else {
        return;
    };
    if common::require_tool("python3", "the Debian package python3").is_none() {
        return;
    }
    // Captures with misses, with apps beyond the label, with IPv6, ICMP rows and a bad address.
    let names = [
        "discord.pcap",
        "zoom.pcap",
        "teams.pcap",
        "viber.pcap",
        "stun.pcap",
        "instagram.pcap",
        "webex.pcap",
    ];
    let names: Vec<&str> = names
        .into_iter()
        .filter(|n| corpus.join("pcap").join(n).is_file())
        .collect();
    assert!(names.len() >= 4, "the corpus holds these captures");
    let o = Command::new("python3")
        .arg(&score)
        .args(["--picket", env!("CARGO_BIN_EXE_picket")])
        .arg(&corpus)
        .args(&names)
        .output()
        .expect("python3 runs the scorer");
    let scored = last_line(&o);
    let want = figures(&scored).unwrap_or_else(|| panic!("scorer's line: {scored}"));
    let caps: Vec<PathBuf> = names.iter().map(|n| corpus.join("pcap").join(n)).collect();
    let mut args = vec![corpus.join("labels").to_string_lossy().into_owned()];
    args.extend(caps.iter().map(|c| c.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = eval(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = figures(&last_line(&o)).unwrap_or_else(|| panic!("eval's line: {}", last_line(&o)));
    assert_eq!(got, want, "eval: {}\nscore: {scored}", last_line(&o));
    // Per app too: the scorer's table rows (app, labelled, recall, claimed, precision, beyond).
    let table = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty() && !l.contains("captures:"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let o_score = Command::new("python3")
        .arg(&score)
        .args(["--picket", env!("CARGO_BIN_EXE_picket")])
        .arg(&corpus)
        .args(&names)
        .output()
        .expect("python3 runs the scorer");
    assert!(table(&o).len() >= 4, "{:?}", table(&o));
    assert_eq!(table(&o), table(&o_score));
}
