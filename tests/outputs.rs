//! Outputs that never lie or surprise, through the real binary: whole lines only on a full disk,
//! with exact counts of what reached the file; appending on a clean line; replacing atomically.
// See: #14 (part 5), #15 (part 3)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn picket(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(args)
        .output()
        .expect("picket runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `n` short TCP flows in a capture in `dir`.
fn flows_capture(dir: &Path, n: usize) -> PathBuf {
    common::write_capture(dir, "flows.pcap", picket_synth::many_flows(n, 7).collect())
}

/// The lines of a JSON-lines file, each checked to be JSON, the file checked to end on a whole
/// line.
fn json_lines(p: &Path) -> Vec<serde_json::Value> {
    let t = std::fs::read_to_string(p).expect("events file");
    assert!(
        t.is_empty() || t.ends_with('\n'),
        "the file ends in a partial line: …{:?}",
        &t[t.len().saturating_sub(80)..]
    );
    t.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let d = tempfile::tempdir().expect("temp dir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .status()
            .expect("mount runs");
        assert!(st.success(), "mount -t tmpfs failed");
        Tmpfs(d)
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .expect("mount runs");
        assert!(st.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// The count in "N lines dropped" of a failed run's message.
fn dropped_in(err: &str) -> u64 {
    let at = err
        .find(" lines dropped")
        .unwrap_or_else(|| panic!("no count of dropped lines in: {err}"));
    let digits: String = err[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .chars()
        .rev()
        .collect::<String>()
        .parse()
        .expect("a count")
}

#[test]
fn issue_14_full_disk_leaves_whole_lines_exact_counts_and_appending_resumes_clean() {
    if !common::require_root("mounting a small tmpfs to fill") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 3000;
    let cap = flows_capture(dir.path(), n);
    // Every event of the capture (flows and alerts), written where there is room.
    let all = common::replay(&cap, &[]).len();
    assert!(all >= n);
    let fs = Tmpfs::new("128k");
    let ev = fs.0.path().join("ev.jsonl");
    let ev_s = ev.to_str().expect("utf-8");
    let o = picket(&[
        "replay",
        "--quiet",
        "--events",
        ev_s,
        cap.to_str().expect("utf-8"),
    ]);
    let err = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let lines = json_lines(&ev);
    let dropped = dropped_in(&err);
    assert!(!lines.is_empty() && dropped > 0, "{err}");
    assert_eq!(
        lines.len() as u64 + dropped,
        all as u64,
        "written and dropped lines are every event"
    );
    let names: Vec<_> = std::fs::read_dir(fs.0.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["ev.jsonl"], "no temporary file left behind");

    // Space comes back: appending starts on a clean line, and everything is written.
    fs.resize("16m");
    let o = picket(&[
        "replay",
        "--quiet",
        "--append",
        "--events",
        ev_s,
        cap.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let after = json_lines(&ev);
    assert_eq!(after.len(), lines.len() + all);
    assert_eq!(
        after[..lines.len()],
        lines[..],
        "the old lines stay as they were"
    );
}
