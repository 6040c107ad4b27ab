//! The labelled corpus in ../shared/corpus (real captures written by others): every ClientHello
//! server name that tshark dissects (TCP and QUIC) must appear on its flow, and app recall and
//! precision must stay at or above 95% (recall 94%) overall, with no app's recall under 80%
//! (Discord's 75%: see below). Scored by the corpus's own tool, `../shared/tools/score`.
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
            // 94, not 95, since Discord's address list went (issue 18 item 8): AS49544 is
            // i3D.net's, a hosting company's, and 8 voice flows of discord.pcap had no other signal.
            "--min-recall",
            "94",
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
        // Discord: 29 of 37 once the hosting company's address list was dropped (above).
        let floor = if app == "discord" { 75 } else { 80 };
        assert!(
            labelled == 0 || recall >= floor,
            "{app}: recall {recall}% of {labelled} labelled flows is under {floor}%"
        );
    }
    assert!(
        apps >= 10,
        "the scorer's per-app table was not found:\n{text}"
    );
}
