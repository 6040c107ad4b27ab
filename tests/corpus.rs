//! The labelled corpus in ../shared/corpus (real captures written by others): every ClientHello
//! server name that tshark dissects (TCP and QUIC) must appear on its flow, and app recall and
//! precision must stay at or above 95% overall, with no app's recall under 80%. Scored by the corpus's own tool, `../shared/tools/score`.
//! Skips, saying so, when the corpus or the scorer is absent; fails instead under `CI=true` or
//! `PICKET_LIVE_TESTS=1`.

mod common;

use std::process::Command;

#[test]
fn corpus_sni_agreement_and_app_recall_and_precision() {
    let Some(common::Corpus { dir: corpus, score }) = common::require_corpus() else {
        return;
    };
    if common::require_tool("python3", "the Debian package python3").is_none() {
        return;
    }
    let out = Command::new("python3")
        .arg(&score)
        .args(["--picket", env!("CARGO_BIN_EXE_picket")])
        .args([
            "--min-sni",
            "100",
            "--min-recall",
            "95",
            "--min-precision",
            "95",
        ])
        .arg(&corpus)
        .output()
        .expect("python3 runs the scorer");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "score below the bounds (exit {:?}): {last}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The per-app table: `app labelled recall claimed precision beyond`.
    let mut apps = 0;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [app, labelled, recall, _, _, _] = cols[..] else {
            continue;
        };
        let (Ok(labelled), Some(Ok(recall))) = (
            labelled.parse::<u32>(),
            recall.strip_suffix('%').map(str::parse::<u32>),
        ) else {
            continue;
        };
        apps += 1;
        assert!(
            labelled == 0 || recall >= 80,
            "{app}: recall {recall}% of {labelled} labelled flows is under 80%"
        );
    }
    assert!(
        apps >= 10,
        "the scorer's per-app table was not found:\n{text}"
    );
}
