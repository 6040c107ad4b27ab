//! The README against the real binary, so the documentation cannot drift from the program:
//!
//! - every flag the README names exists in the `--help` of its command, and the option tables of
//!   `replay` and `live` list every option with its value name and default;
//! - every metric the README names is exported, and every exported metric is in its table with
//!   its type and labels (from a scrape of `picket replay --listen`);
//! - the event tables of the README and of the rustdoc of `src/export/events.rs` name the same
//!   fields, and every field of real events is in them;
//! - the man pages render with `man` and `groff` without a warning; the bash and fish completion
//!   scripts load and complete subcommands, and zsh's parses.
//!
//! The Markdown is read with a few line rules (headings, fences, `|` tables, code spans) rather
//! than a Markdown library: the README's shapes are simple, and each reader asserts it found
//! what it looks for, so a change of shape fails loudly instead of checking nothing.
//!
//! `scripts/ensure-deps` installs `man`, `groff`, `zsh` and `fish` when `PICKET_LIVE_TESTS=1`; a
//! missing tool skips the test that needs it, naming its package, or fails it under `CI=true` or
//! `PICKET_LIVE_TESTS=1`.

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_picket");

/// Sections of the README whose option table lists a command's options.
const OPTION_TABLES: [(&str, &str); 2] =
    [("Replaying captures", "replay"), ("Live capture", "live")];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the binary; it must succeed.
fn picket(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).output().expect("picket runs");
    assert!(o.status.success(), "picket {args:?} failed:\n{}", text(&o));
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// Whether a tool the test needs runs here (`tool --version`); when not, the test skips naming
/// the Debian package that provides it, or fails under CI (see `common::require`).
fn have(tool: &str, package: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    common::require(
        &format!("`{tool}`"),
        &format!(
            "install the Debian package {package} (`PICKET_LIVE_TESTS=1 scripts/ensure-deps` does)"
        ),
        found,
    )
}

// ---------------------------------------------------------------------------------------------
// Markdown, read by lines.

/// A run of lines under one heading (up to the next heading of any level).
#[derive(Debug, Default)]
struct Section {
    /// Heading level (0 before the first heading).
    level: usize,
    /// Heading text, without the `#`s.
    title: String,
    /// Title of the level-2 section it is in (itself when it is one).
    chapter: String,
    /// Lines outside code fences.
    prose: Vec<String>,
    /// Lines inside code fences.
    code: Vec<String>,
}

/// Splits Markdown into sections at its headings; fenced code is kept apart and never read as a
/// heading.
fn sections(md: &str) -> Vec<Section> {
    let mut out = vec![Section::default()];
    let mut fenced = false;
    let mut chapter = String::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let cur = out.last_mut().expect("a section");
        if fenced {
            cur.code.push(line.to_string());
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            let title = line[level..].trim().to_string();
            if level <= 2 {
                chapter = title.clone();
            }
            out.push(Section {
                level,
                title,
                chapter: chapter.clone(),
                ..Section::default()
            });
        } else {
            cur.prose.push(line.to_string());
        }
    }
    out
}

/// A Markdown table: header cells and rows of cells (`\|` kept as a literal `|`).
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of a header cell.
    fn column(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("a table without a `{name}` column: {:?}", self.header))
    }
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("a cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().expect("a cell").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The tables of a section's prose.
fn tables(lines: &[String]) -> Vec<Table> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let is_table = |l: &String| l.trim_start().starts_with('|');
        if is_table(&lines[i]) && lines.get(i + 1).is_some_and(|l| l.contains("---")) {
            let header = cells(&lines[i]);
            i += 2;
            let mut rows = Vec::new();
            while i < lines.len() && is_table(&lines[i]) {
                rows.push(cells(&lines[i]));
                i += 1;
            }
            out.push(Table { header, rows });
        } else {
            i += 1;
        }
    }
    out
}

/// The code spans (`…`) of a piece of text.
fn spans(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every `--flag` in a piece of text (a `-` run starting at a word boundary, then a letter).
fn long_flags(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-');
        if boundary && &b[i..i + 2] == b"--" && b[i + 2].is_ascii_lowercase() {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') {
                j += 1;
            }
            out.push(s[i..j].to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// `--help`, read by lines.

/// One option of a command's `--help`.
#[derive(Debug, Clone)]
struct Opt {
    short: Option<String>,
    long: String,
    /// The value name, without `<>` (None for a flag without a value).
    value: Option<String>,
    /// The last `[default: …]` of its help.
    default: Option<String>,
    /// Its possible values, when listed.
    values: Vec<String>,
}

/// The options and subcommands of `picket <path> --help`.
fn help(path: &str) -> (Vec<Opt>, Vec<String>) {
    let mut args: Vec<&str> = path.split_whitespace().collect();
    args.push("--help");
    let out = picket(&args);
    let mut opts: Vec<Opt> = Vec::new();
    let mut subs = Vec::new();
    let mut section = "";
    for line in out.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        if !line.starts_with(' ') {
            section = "";
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if section == "Commands:" && indent == 2 {
            let name = t.split_whitespace().next().expect("a command name");
            if name != "help" {
                subs.push(name.to_string());
            }
            continue;
        }
        if section != "Options:" {
            continue;
        }
        if indent <= 6 && t.starts_with('-') {
            let mut words = t.split_whitespace().peekable();
            let mut short = None;
            if let Some(w) = words.next_if(|w| !w.starts_with("--")) {
                short = Some(w.trim_end_matches(',').to_string());
            }
            let long = words.next().expect("a long flag").to_string();
            let value = words.next_if(|w| w.starts_with('<')).map(|w| {
                w.trim_end_matches("...")
                    .trim_matches(['<', '>'])
                    .to_string()
            });
            opts.push(Opt {
                short,
                long,
                value,
                default: None,
                values: Vec::new(),
            });
        }
        let Some(o) = opts.last_mut() else { continue };
        // The help text of the current option: its own line's tail, or the lines below it.
        if let Some(d) = t.rfind("[default: ").map(|i| &t[i + 10..]) {
            o.default = d.split_once(']').map(|(d, _)| d.to_string());
        }
        if let Some(v) = t.find("[possible values: ").map(|i| &t[i + 18..]) {
            o.values = v
                .split(']')
                .next()
                .unwrap_or("")
                .split(", ")
                .map(str::to_string)
                .collect();
        } else if let Some(v) = t.strip_prefix("- ").filter(|_| indent > 6) {
            let name = v.split(':').next().expect("a value");
            o.values.push(name.to_string());
        }
    }
    (opts, subs)
}

/// Every command (`replay`, `rules check`, …) with its options; `""` is the top level.
fn all_help() -> BTreeMap<String, Vec<Opt>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(path) = todo.pop() {
        let (opts, subs) = help(&path);
        for s in subs {
            todo.push(format!("{path} {s}").trim().to_string());
        }
        out.insert(path, opts);
    }
    assert!(out.contains_key("replay") && out.contains_key("rules check"));
    out
}

/// The command a `picket …` command line runs, and the words after it.
fn command_of<'a>(
    words: &'a [&'a str],
    help: &BTreeMap<String, Vec<Opt>>,
) -> (String, &'a [&'a str]) {
    let mut path = String::new();
    let mut n = 0;
    for (i, w) in words.iter().enumerate() {
        let next = format!("{path} {w}").trim().to_string();
        if help.contains_key(&next) {
            path = next;
            n = i + 1;
        } else {
            break;
        }
    }
    (path, &words[n..])
}

// ---------------------------------------------------------------------------------------------
// Test 1: flags.

/// Needs `live`: the README documents `picket live`.
#[cfg(feature = "live")]
#[test]
fn readme_flags_exist_in_help_and_option_tables_are_complete() {
    let help = all_help();
    let has = |cmd: &str, flag: &str| {
        help.get(cmd).is_some_and(|o| {
            o.iter()
                .any(|o| o.long == flag || o.short.as_deref() == Some(flag))
        })
    };
    let anywhere = |flag: &str| help.keys().any(|c| has(c, flag));
    let readme = read(&repo().join("README.md"));
    let secs = sections(&readme);
    let mut bad = Vec::new();
    let mut checked = 0;

    // Command lines: in code blocks, and in code spans that start with `picket `. Their flags
    // belong to the command they run.
    let mut command_lines: Vec<(String, String)> = Vec::new();
    for s in &secs {
        for l in &s.code {
            // A comment ends the command; a pipe starts another program.
            let l = l.split(" #").next().unwrap_or("");
            for part in l.split(" | ") {
                command_lines.push((s.title.clone(), part.trim().to_string()));
            }
        }
        for l in &s.prose {
            for sp in spans(l) {
                command_lines.push((s.title.clone(), sp));
            }
        }
    }
    for (whence, line) in &command_lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.split_first() {
            Some((&"picket", rest)) => {
                let (cmd, args) = command_of(rest, &help);
                for a in args {
                    let a = a.trim_matches(['[', ']']);
                    let flag = a.split('=').next().unwrap_or(a);
                    let named = flag.strip_prefix('-').and_then(|f| f.chars().next());
                    if named.is_some_and(|c| c == '-' || c.is_ascii_alphabetic()) {
                        checked += 1;
                        if !has(&cmd, flag) {
                            bad.push(format!(
                                "{whence}: `{line}`: `picket {cmd}` has no option {flag}"
                            ));
                        }
                    }
                }
            }
            _ => {
                for flag in long_flags(line) {
                    checked += 1;
                    if !anywhere(&flag) {
                        bad.push(format!("{whence}: `{line}`: no command has {flag}"));
                    }
                }
            }
        }
    }
    // Flags in plain prose, outside code: some command must have them.
    for s in &secs {
        for l in &s.prose {
            let plain: String = l.split('`').step_by(2).collect::<Vec<_>>().join(" ");
            for flag in long_flags(&plain) {
                checked += 1;
                if !anywhere(&flag) {
                    bad.push(format!("{}: no command has {flag}", s.title));
                }
            }
        }
    }

    // The option tables: each row against the command's help, and each option in a table.
    let mut listed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (title, cmd) in OPTION_TABLES {
        let s = secs
            .iter()
            .find(|s| s.level == 2 && s.title == title)
            .unwrap_or_else(|| panic!("README has no `## {title}` section"));
        let ts: Vec<Table> = tables(&s.prose)
            .into_iter()
            .filter(|t| t.header.first().is_some_and(|h| h == "option"))
            .collect();
        assert_eq!(ts.len(), 1, "`## {title}`: one option table expected");
        let t = &ts[0];
        let (c_opt, c_def) = (t.column("option"), t.column("default"));
        let opts = &help[cmd];
        for row in &t.rows {
            for sp in spans(&row[c_opt]) {
                let (flag, value) = match sp.split_once(' ') {
                    Some((f, v)) => (f.to_string(), Some(v.to_string())),
                    None => (sp.clone(), None),
                };
                checked += 1;
                let Some(o) = opts
                    .iter()
                    .find(|o| o.long == flag || o.short.as_deref() == Some(&flag))
                else {
                    bad.push(format!(
                        "`## {title}` table: `picket {cmd}` has no option {flag}"
                    ));
                    continue;
                };
                listed.entry(cmd).or_default().insert(o.long.clone());
                if flag != o.long {
                    continue; // the short form: value and default are on the long one's row
                }
                let want_values: BTreeSet<&str> = o.values.iter().map(String::as_str).collect();
                match (&value, &o.value) {
                    (None, None) => {}
                    (Some(v), Some(_)) if v.contains('|') => {
                        let got: BTreeSet<&str> = v.split('|').collect();
                        if got != want_values {
                            bad.push(format!(
                                "`## {title}` table: {flag} {v}, but --help lists {want_values:?}"
                            ));
                        }
                    }
                    (Some(v), Some(h)) if v == h => {}
                    (v, h) => bad.push(format!(
                        "`## {title}` table: {flag} takes {:?} here, {:?} in `picket {cmd} \
                         --help`",
                        v.as_deref().unwrap_or("no value"),
                        h.as_deref().unwrap_or("no value"),
                    )),
                }
                let readme_default = row[c_def].replace(',', "");
                match (&o.value, &o.default) {
                    (None, _) if readme_default != "off" => bad.push(format!(
                        "`## {title}` table: {flag} is a switch, its default is `off`, not \
                         `{readme_default}`"
                    )),
                    // Defaults written in words by hand ("cores - 1, at least 1") are not
                    // compared; clap's own are single values.
                    (Some(_), Some(d)) if !d.contains(' ') && *d != readme_default => {
                        bad.push(format!(
                            "`## {title}` table: {flag} defaults to `{readme_default}` here, \
                             `{d}` in `picket {cmd} --help`"
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    // Live takes the replay options the replay table lists, besides its own; those it does not
    // take are named in its section ("but `--report`").
    let replay_listed = listed.get("replay").cloned().unwrap_or_default();
    let live_prose = secs
        .iter()
        .filter(|s| s.level == 2 && s.title == OPTION_TABLES[1].0)
        .flat_map(|s| s.prose.iter())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    for flag in &replay_listed {
        if !has("live", flag) && !live_prose.contains(&format!("`{flag}`")) {
            bad.push(format!(
                "`picket live` has no {flag}, and `## {}` does not say so",
                OPTION_TABLES[1].0
            ));
        }
    }
    for (_, cmd) in OPTION_TABLES {
        for o in &help[cmd] {
            let in_own = listed.get(cmd).is_some_and(|l| l.contains(&o.long));
            let in_replay = replay_listed.contains(&o.long);
            if o.long != "--help" && !in_own && !(cmd == "live" && in_replay) {
                bad.push(format!(
                    "`picket {cmd}` option {} is in no README option table",
                    o.long
                ));
            }
        }
    }
    assert!(
        checked > 60,
        "only {checked} flags found: has the README changed shape?"
    );
    assert!(bad.is_empty(), "README flags drifted:\n{}", bad.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Test 2: metrics.

/// An exported metric: its type and each label with the values seen.
#[derive(Debug, Default)]
struct Exported {
    kind: String,
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// A scrape of the real binary, metric by metric.
fn scrape() -> BTreeMap<String, Exported> {
    let body = common::scrape_metrics();
    let mut out: BTreeMap<String, Exported> = BTreeMap::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            out.entry(name.to_string()).or_default().kind = kind.to_string();
        } else if !l.starts_with('#') && !l.is_empty() {
            let (series, _) = l.rsplit_once(' ').expect("a sample line");
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            // A histogram's series are its name with `_bucket` (and `le`), `_sum`, `_count`.
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|x| name.strip_suffix(x))
                .filter(|base| out.get(*base).is_some_and(|m| m.kind == "histogram"))
                .unwrap_or(name);
            let m = out.entry(name.to_string()).or_default();
            for pair in labels.trim_end_matches('}').split(',') {
                if let Some((k, v)) = pair.split_once('=').filter(|(k, _)| *k != "le") {
                    let v = v.trim_matches('"').to_string();
                    m.labels.entry(k.to_string()).or_default().insert(v);
                }
            }
        }
    }
    assert!(out.contains_key("picket_flows_total"), "{body}");
    out
}

/// Every `picket_…` metric name in a text, with the `{label="value"}` written after it.
fn metric_mentions(s: &str) -> Vec<(String, Option<(String, String)>)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = s[i..].find("picket_").map(|k| k + i) {
        let boundary = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let mut j = at;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            j += 1;
        }
        if boundary {
            let label = s[j..]
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .and_then(|(inner, _)| inner.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()));
            out.push((s[at..j].to_string(), label));
        }
        i = j;
    }
    out
}

#[test]
fn readme_metrics_match_a_scrape() {
    let exported = scrape();
    let readme = read(&repo().join("README.md"));
    let secs = sections(&readme);
    let s = secs
        .iter()
        .find(|s| s.title == "Metrics")
        .expect("README has a `### Metrics` section");
    let ts: Vec<Table> = tables(&s.prose)
        .into_iter()
        .filter(|t| t.header.first().is_some_and(|h| h == "metric"))
        .collect();
    assert_eq!(ts.len(), 1, "`### Metrics`: one metrics table expected");
    let t = &ts[0];
    let (c_name, c_type, c_labels) = (t.column("metric"), t.column("type"), t.column("labels"));
    let mut bad = Vec::new();
    let mut documented = BTreeSet::new();
    for row in &t.rows {
        for name in spans(&row[c_name]) {
            if let Some(prefix) = name.strip_suffix('*') {
                if !exported.keys().any(|k| k.starts_with(prefix)) {
                    bad.push(format!("table: nothing exported matches `{name}`"));
                }
                documented.insert(name);
                continue;
            }
            documented.insert(name.clone());
            let Some(m) = exported.get(&name) else {
                bad.push(format!("table: `{name}` is not exported"));
                continue;
            };
            if row[c_type] != m.kind {
                bad.push(format!(
                    "table: `{name}` is a {}, the table says {:?}",
                    m.kind, row[c_type]
                ));
            }
            // Labels: `name` or `name` = v1, v2 (all values) or `name` = v1 … vN (some).
            let parts: Vec<&str> = row[c_labels].split('`').collect();
            let mut names = BTreeSet::new();
            for (k, label) in parts.iter().enumerate().skip(1).step_by(2) {
                names.insert(label.to_string());
                let after = parts.get(k + 1).map_or("", |a| a.trim());
                let Some(values) = after.strip_prefix('=') else {
                    continue;
                };
                let listed: BTreeSet<String> = values
                    .split([',', '…'])
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                let got = m.labels.get(*label).cloned().unwrap_or_default();
                let some_only = values.contains('…');
                if (some_only && !listed.is_subset(&got)) || (!some_only && listed != got) {
                    bad.push(format!(
                        "table: `{name}` label `{label}` lists {listed:?}, the binary exports \
                         {got:?}"
                    ));
                }
            }
            let got: BTreeSet<String> = m.labels.keys().cloned().collect();
            if names != got {
                bad.push(format!(
                    "table: `{name}` has labels {names:?} here, {got:?} exported"
                ));
            }
        }
    }
    for name in exported.keys().filter(|n| n.starts_with("picket_")) {
        if !documented.contains(name) {
            bad.push(format!(
                "`{name}` is exported but not in the README's metrics table"
            ));
        }
    }
    // Names anywhere else in the README (prose, code, other tables).
    let mut mentions = 0;
    for l in readme.lines() {
        for (name, label) in metric_mentions(l) {
            mentions += 1;
            let Some(m) = exported.get(&name) else {
                bad.push(format!(
                    "`{name}` is named in the README but not exported: {l}"
                ));
                continue;
            };
            if let Some((k, v)) = label {
                if !m.labels.get(&k).is_some_and(|vs| vs.contains(&v)) {
                    bad.push(format!("`{name}{{{k}=\"{v}\"}}` is not exported: {l}"));
                }
            }
        }
    }
    assert!(
        documented.len() > 20 && mentions > 20,
        "only {} metrics in the table, {mentions} mentions: has the README changed shape?",
        documented.len()
    );
    assert!(
        bad.is_empty(),
        "README metrics drifted:\n{}",
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Test 3: event fields.

/// Event type → the fields its tables name, for the sections of `secs` that `pick` selects
/// (the type is the heading's first code span).
fn event_fields(secs: &[Section], pick: impl Fn(&Section) -> bool) -> BTreeMap<String, EventDoc> {
    let mut out = BTreeMap::new();
    for s in secs.iter().filter(|s| pick(s)) {
        let Some(kind) = spans(&s.title).into_iter().next() else {
            continue;
        };
        let mut fields = BTreeSet::new();
        for t in tables(&s.prose) {
            if t.header.first().is_some_and(|h| h == "field") {
                for row in &t.rows {
                    fields.extend(spans(&row[0]));
                }
            }
        }
        out.insert(
            kind,
            EventDoc {
                fields,
                prose: s.prose.join(" "),
            },
        );
    }
    out
}

/// An event type's documented fields, and the prose around them.
#[derive(Debug)]
struct EventDoc {
    fields: BTreeSet<String>,
    prose: String,
}

/// `flow_update` has no table of its own: it is `flow` without `end_reason`, plus `ts`; both
/// documents must say so.
fn with_flow_update(
    mut doc: BTreeMap<String, EventDoc>,
    whence: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    let flow = doc
        .get("flow")
        .unwrap_or_else(|| panic!("{whence}: no `flow` section"))
        .fields
        .clone();
    if let Some(u) = doc.get_mut("flow_update") {
        assert!(
            u.fields.is_empty()
                && u.prose.contains("without `end_reason`")
                && u.prose.contains("`ts`"),
            "{whence}: `flow_update` is described as `flow` without `end_reason`, plus `ts`"
        );
        u.fields = flow;
        u.fields.remove("end_reason");
        u.fields.insert("ts".to_string());
    }
    doc.into_iter().map(|(k, v)| (k, v.fields)).collect()
}

#[test]
fn readme_event_schema_matches_rustdoc_and_real_events() {
    let readme = read(&repo().join("README.md"));
    let readme_doc = with_flow_update(
        event_fields(&sections(&readme), |s| {
            s.level == 3 && s.chapter == "Event schema"
        }),
        "README",
    );
    let rs = read(&repo().join("src/export/events.rs"));
    let rustdoc: String = rs
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let rust_doc = with_flow_update(
        event_fields(&sections(&rustdoc), |s| s.level == 1),
        "rustdoc",
    );

    let mut bad = Vec::new();
    let types: BTreeSet<&String> = readme_doc.keys().chain(rust_doc.keys()).collect();
    for t in &types {
        let (a, b) = (readme_doc.get(*t), rust_doc.get(*t));
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                bad.push(format!(
                    "event `{t}`: documented in {} only",
                    if a.is_some() {
                        "the README"
                    } else {
                        "the rustdoc"
                    }
                ));
                continue;
            }
        };
        for f in a.difference(b) {
            bad.push(format!(
                "event `{t}`: `{f}` is in the README, not in the rustdoc"
            ));
        }
        for f in b.difference(a) {
            bad.push(format!(
                "event `{t}`: `{f}` is in the rustdoc, not in the README"
            ));
        }
    }
    assert!(
        ["alert", "alert_suppressed", "flow", "flow_update"]
            .iter()
            .all(|t| readme_doc.get(*t).is_some_and(|f| f.len() > 3)),
        "the README's event tables were not found: {readme_doc:?}"
    );

    // Real events: every type, with a sensor name, updates and suppressed alerts.
    let dir = tempfile::tempdir().expect("temp dir");
    let ev = dir.path().join("events.jsonl");
    let ev_s = ev.to_str().expect("UTF-8 path");
    let pcap = repo().join("pcaps/demo.pcap");
    let pcap_s = pcap.to_str().expect("UTF-8 path");
    picket(&[
        "replay",
        "--quiet",
        "--events",
        ev_s,
        "--sensor-name",
        "docs-test",
        "--flow-update",
        "1",
        "--alert-interval",
        "3600",
        pcap_s,
    ]);
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in read(&ev).lines() {
        let e: Value = serde_json::from_str(l).expect("each line is JSON");
        let obj = e.as_object().expect("an object");
        let kind = obj["event"].as_str().expect("an event type").to_string();
        seen.entry(kind).or_default().extend(obj.keys().cloned());
    }
    for t in ["alert", "alert_suppressed", "flow", "flow_update"] {
        assert!(seen.contains_key(t), "the demo replay wrote no `{t}` event");
    }
    for (t, fields) in &seen {
        let Some(doc) = readme_doc.get(t) else {
            bad.push(format!("event `{t}` is written but not documented"));
            continue;
        };
        for f in fields.difference(doc) {
            bad.push(format!(
                "event `{t}`: field `{f}` is written but not documented"
            ));
        }
    }
    assert!(bad.is_empty(), "event schema drifted:\n{}", bad.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Test 4: man pages and completions.

#[test]
fn man_pages_render_without_warnings() {
    if !have("man", "man-db") || !have("groff", "groff-base") {
        return;
    }
    let help = all_help();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("man1");
    let listed = picket(&["man", "--out", out.to_str().expect("UTF-8 path")]);
    let mut want: BTreeSet<String> = help
        .keys()
        .map(|c| format!("picket {c}").trim().replace(' ', "-") + ".1")
        .collect();
    want.insert("picket.1".to_string());
    let written: BTreeSet<String> = listed
        .lines()
        .map(|l| {
            let p = Path::new(l);
            assert!(p.starts_with(&out), "{l} is outside --out");
            p.file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(written, want, "one page per command");
    assert_eq!(
        picket(&["man"]),
        read(&out.join("picket.1")),
        "`picket man` prints picket.1"
    );

    let mut bad = Vec::new();
    for (cmd, opts) in &help {
        let page = out.join(format!("picket {cmd}").trim().replace(' ', "-") + ".1");
        let o = Command::new("man")
            .args(["--warnings", "--no-hyphenation", "--no-justification", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man runs");
        let rendered = String::from_utf8_lossy(&o.stdout).into_owned();
        if !o.status.success() || !o.stderr.is_empty() {
            let err = String::from_utf8_lossy(&o.stderr);
            bad.push(format!("man --warnings {}:\n{err}", page.display()));
        }
        let g = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .expect("groff runs");
        if !g.status.success() || !g.stderr.is_empty() {
            let err = String::from_utf8_lossy(&g.stderr);
            bad.push(format!("groff -ww {}:\n{err}", page.display()));
        }
        // man may hyphenate or justify; flags are single words and stay whole.
        let words: BTreeSet<&str> = rendered
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '|'))
            .collect();
        for o in opts {
            if !words.contains(o.long.as_str()) {
                bad.push(format!("{}: {} is missing", page.display(), o.long));
            }
        }
        if cmd.is_empty() {
            for section in ["EXAMPLES", "EXIT STATUS"] {
                if !rendered.lines().any(|l| l == section) {
                    bad.push(format!("picket.1 has no {section} section:\n{rendered}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

#[test]
fn bash_completion_loads_and_completes_commands() {
    if !have("bash", "bash") {
        return;
    }
    let (_, top) = help("");
    let script = r#"
        source <("$PICKET" completions bash) || exit 1
        spec=$(complete -p picket) || exit 1
        echo "spec: $spec"
        fn=${spec##*-F }; fn=${fn%% *}
        ask() {
            COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
            "$fn" picket "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            echo "$*: ${COMPREPLY[*]}"
        }
        ask picket ''
        ask picket re
        ask picket replay --ev
        ask picket rules ''
        ask picket replay --format ''
    "#;
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env("PICKET", BIN)
        .output()
        .expect("bash runs");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let answer = |q: &str| -> BTreeSet<String> {
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{q}: ")))
            .unwrap_or_else(|| panic!("no answer for `{q}`:\n{out}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert!(
        out.contains("spec: complete ") && out.contains(" picket"),
        "{out}"
    );
    let all = answer("picket ");
    for c in &top {
        assert!(
            all.contains(c),
            "`picket <TAB>` does not offer {c}: {all:?}"
        );
    }
    assert_eq!(answer("picket re"), BTreeSet::from(["replay".to_string()]));
    assert!(answer("picket replay --ev").contains("--events"), "{out}");
    assert!(answer("picket rules ").contains("check"), "{out}");
    assert_eq!(
        answer("picket replay --format "),
        BTreeSet::from(["table".to_string(), "json".to_string()])
    );
}

#[test]
fn completions_for_every_shell_name_every_command() {
    if !have("zsh", "zsh") || !have("fish", "fish") {
        return;
    }
    let (_, top) = help("");
    let dir = tempfile::tempdir().expect("temp dir");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = picket(&["completions", shell]);
        for c in &top {
            assert!(script.contains(c.as_str()), "{shell}: no `{c}`");
        }
        std::fs::write(dir.path().join(shell), script).expect("write the script");
    }
    // zsh: a syntax check (from a file: on standard input zsh -n reports errors yet exits 0).
    let o = Command::new("zsh")
        .arg("-n")
        .arg(dir.path().join("zsh"))
        .output()
        .expect("zsh runs");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "zsh -n:\n{}",
        text(&o)
    );
    // fish: loaded, then asked what it would complete.
    let o = Command::new("fish")
        .args(["--no-config", "-c"])
        .arg("source $argv[1]; and complete -C 'picket '; and echo ==; and complete -C 'picket re'")
        .arg(dir.path().join("fish"))
        .output()
        .expect("fish runs");
    let out = text(&o);
    assert!(o.status.success(), "fish:\n{out}");
    let (all, re) = out
        .split_once("==\n")
        .unwrap_or_else(|| panic!("fish:\n{out}"));
    let first = |s: &str| -> BTreeSet<String> {
        s.lines()
            .filter_map(|l| l.split('\t').next())
            .map(str::to_string)
            .collect()
    };
    let all = first(all);
    for c in &top {
        assert!(
            all.contains(c),
            "fish: `picket <TAB>` does not offer {c}:\n{out}"
        );
    }
    assert_eq!(first(re), BTreeSet::from(["replay".to_string()]), "{out}");
}
