//! Outputs that never lie or surprise, through the real binary: whole lines only on a full disk,
//! with exact counts of what reached the file; appending on a clean line; replacing atomically.
// See: #14 (part 5), #15 (part 3)

use std::os::unix::fs::OpenOptionsExt;
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

#[test]
fn issue_15_an_output_that_is_an_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = flows_capture(dir.path(), 3);
    let before = std::fs::read(&cap).expect("capture");
    // The same file under another name: refused by inode, not by path.
    let link = dir.path().join("link.pcap");
    std::fs::hard_link(&cap, &link).expect("hard link");
    for opt in ["--events", "--alerts", "--report"] {
        let o = picket(&[
            "replay",
            opt,
            link.to_str().expect("utf-8"),
            cap.to_str().expect("utf-8"),
        ]);
        assert_eq!(o.status.code(), Some(2), "{opt}: {}", text(&o));
        assert!(text(&o).contains("is the input"), "{opt}: {}", text(&o));
        assert_eq!(std::fs::read(&cap).expect("capture"), before, "{opt}");
    }
    let ev = dir.path().join("ev.jsonl");
    let o = picket(&[
        "replay",
        "--events",
        ev.to_str().expect("utf-8"),
        "--alerts",
        ev.to_str().expect("utf-8"),
        cap.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("is also the --events file"),
        "{}",
        text(&o)
    );
}

#[test]
fn issue_15_replace_is_atomic_with_mode_0640_and_append_keeps_the_old_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = flows_capture(dir.path(), 5);
    let ev = dir.path().join("ev.jsonl");
    std::fs::write(&ev, "{\"old\":1}\n").expect("old file");
    std::fs::set_permissions(&ev, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let old_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&ev).expect("stat"));
    let run = |extra: &[&str]| {
        let mut args = vec!["replay", "--quiet", "--events", ev.to_str().expect("utf-8")];
        args.extend(extra);
        args.push(cap.to_str().expect("utf-8"));
        let o = picket(&args);
        assert!(o.status.success(), "{}", text(&o));
    };
    run(&[]);
    let m = std::fs::metadata(&ev).expect("stat");
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&m),
        old_ino,
        "a new file, renamed over the old one"
    );
    let first = json_lines(&ev);
    assert!(first.iter().all(|v| v.get("old").is_none()));
    run(&["--append"]);
    let both = json_lines(&ev);
    assert_eq!(both.len(), 2 * first.len());
    assert_eq!(both[..first.len()], first[..]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

/// `picket replay` of a FIFO the test feeds: a capture header and `flows` flows at once, the
/// rest of an endless flow stream (at once, or once `more` says so when `hold`).
struct Fed {
    child: std::process::Child,
    feeder: Option<std::thread::JoinHandle<()>>,
    more: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The replay has ended: the feeder stops.
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dir: tempfile::TempDir,
}

impl Fed {
    fn start(flows: usize, hold: bool) -> Fed {
        Self::start_with(flows, hold, &[])
    }

    /// [`Fed::start`] with extra options.
    fn start_with(flows: usize, hold: bool, extra: &[&str]) -> Fed {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("in.pcap");
        let made = Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        let d = dir.path();
        let child = Command::new(env!("CARGO_BIN_EXE_picket"))
            .args([
                "replay",
                "--workers",
                "2",
                "--closing-grace",
                "0",
                "--events",
            ])
            .arg(d.join("ev.jsonl"))
            .arg("--report")
            .arg(d.join("report.html"))
            .args(extra)
            .arg(&fifo)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("picket starts");
        let more = Arc::new(AtomicBool::new(!hold));
        let go = Arc::clone(&more);
        let done = Arc::new(AtomicBool::new(false));
        let quit = Arc::clone(&done);
        let feeder = std::thread::spawn(move || {
            let Ok(f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                return;
            };
            let mut w = picket_synth::PcapWriter::new(f, Default::default()).expect("header");
            for (i, p) in picket_synth::many_flows(10_000_000, 3).enumerate() {
                while i >= flows * 5 && !go.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                if done.load(Ordering::Relaxed) {
                    return;
                }
                if w.write(&p).is_err() {
                    return;
                }
            }
        });
        Fed {
            child,
            feeder: Some(feeder),
            more,
            done: quit,
            dir,
        }
    }

    /// Waits for the first events in the file (60 s failure bound): the replay is reading, its
    /// signal handlers in place.
    fn wait_for_events(&self) {
        let ev = self.dir.path().join("ev.jsonl");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::metadata(&ev).map_or(true, |m| m.len() == 0) {
            assert!(std::time::Instant::now() < end, "no events within 60 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits for the events output to be created (60 s failure bound): the replay's signal
    /// handlers are in place by then.
    fn wait_for_outputs(&self) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let made = || {
            std::fs::read_dir(self.dir.path()).is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("ev.jsonl"))
            })
        };
        while !made() {
            assert!(std::time::Instant::now() < end, "no output within 60 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(st.success());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// Waits (at most 60 s, a failure bound) for the exit; status, stdout, stderr.
    fn wait(mut self) -> (Option<i32>, String, String, tempfile::TempDir) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > end {
                let _ = self.child.kill();
                panic!("picket did not exit");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let o = self.child.wait_with_output().expect("output");
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        self.more.store(true, std::sync::atomic::Ordering::Relaxed);
        // A feeder still waiting to open the FIFO (the replay ended before reading it) gets
        // a reader, then a broken pipe.
        let _unblock = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(self.dir.path().join("in.pcap"));
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            dir,
        )
    }
}

/// The number after `label` at the start of a line of the summary table.
fn table_number(table: &str, label: &str) -> u64 {
    let line = table
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' line in:\n{table}"));
    line[label.len()..]
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line}"))
}

fn stopped_run_wrote_everything(sig: &str, times: usize, status: i32) {
    let fed = Fed::start(200, false);
    fed.wait_for_events();
    for _ in 0..times {
        fed.signal(sig);
    }
    let (code, out, err, dir) = fed.wait();
    assert_eq!(code, Some(status), "{err}");
    let packets = table_number(&out, "stopped   after");
    assert!(packets > 0, "{out}");
    assert_eq!(table_number(&out, "packets"), packets, "{out}");
    let events = json_lines(&dir.path().join("ev.jsonl"));
    let flows = events.iter().filter(|e| e["event"] == "flow").count() as u64;
    assert_eq!(flows, table_number(&out, "flows"), "every flow written");
    let report = std::fs::read_to_string(dir.path().join("report.html")).expect("the report");
    assert!(report.trim_end().ends_with("</html>"), "a whole report");
}

#[test]
fn issue_15_sigint_stops_with_130_and_writes_every_event_and_the_report() {
    stopped_run_wrote_everything("INT", 1, 130);
}

#[test]
fn issue_14_two_sigterms_exit_143_with_the_report_whole() {
    stopped_run_wrote_everything("TERM", 2, 143);
}

#[test]
fn issue_15_a_third_stop_signal_exits_at_once_leaving_no_temporary_file() {
    // The feeder holds the rest back: the replay waits on its input and cannot end by itself.
    let fed = Fed::start(50, true);
    fed.wait_for_outputs();
    for _ in 0..3 {
        fed.signal("TERM");
    }
    let (code, _, err, dir) = fed.wait();
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("third stop signal"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
    assert!(
        !dir.path().join("report.html").exists(),
        "no partial report"
    );
    let ev = dir.path().join("ev.jsonl");
    if ev.exists() {
        json_lines(&ev);
    }
}

// See: #15 (part 7)
#[test]
fn issue_15_stale_list_warning_once_per_run_without_colour_and_saying_what_to_do() {
    let rules = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        rules.path().join("oldapp.toml"),
        "id = \"oldapp\"\nrule_id = \"t:oldapp\"\nname = \"Old\"\ncategory = \"messaging\"\nverdict = \"flag\"\n\
         domains = [\"old.example\"]\n\n[prefixes]\nsource = \"a test list\"\n\
         as_of = \"2001-01-01\"\nmax_age_days = 30\nlist = [\"192.0.2.0/24\"]\n",
    )
    .expect("rule file");
    let fed = Fed::start_with(
        50,
        false,
        &["--rules", rules.path().to_str().expect("utf-8")],
    );
    // Two reloads (SIGHUP) of the same stale list, while the replay reads.
    fed.wait_for_events();
    fed.signal("HUP");
    fed.signal("HUP");
    fed.signal("TERM");
    let (code, _, err, _) = fed.wait();
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("rules reloaded"), "{err}");
    assert_eq!(err.matches("past its max age").count(), 1, "{err}");
    assert!(
        err.contains("--rules DIR") && err.contains("picket rules check"),
        "{err}"
    );
    // Standard error is a pipe here: no colour codes.
    assert!(!err.contains('\x1b'), "{err:?}");
}
