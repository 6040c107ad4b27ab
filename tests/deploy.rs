//! The files in `deploy/`, checked by the programs that consume them: `systemd-analyze` for the
//! unit, `promtool` for the Prometheus rules and configurations, `kubernetes-validate` (the
//! Kubernetes JSON schema, offline) for the manifests, `hadolint` for the Dockerfile, `rsyslogd
//! -N1` and `logrotate` for the log shipping. Every query of the Grafana dashboard and of the
//! rules is parsed by promtool and its metric names are checked against a scrape of the real
//! binary. As root, the sensor is started with exactly the privileges the unit and the
//! container get (an unprivileged user, two capabilities) and must capture and answer its probes.
//!
//! `scripts/ensure-deps` installs every tool when `PICKET_LIVE_TESTS=1` (as `scripts/check`
//! sets it); a missing tool fails the test that needs it, naming the tool.

mod common;

use common::{free_port, http_get};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Python that `scripts/ensure-deps` installs packages into (PyYAML, kubernetes-validate).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Labels Prometheus adds to every series: the target's, and a site Prometheus's external label.
const TARGET_LABELS: [&str; 3] = ["job", "instance", "site"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The path of a tool, or a failure that names it and says what installs it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed: `PICKET_LIVE_TESTS=1 scripts/ensure-deps` installs it \
         (scripts/check does this)"
    );
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot run: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command that must succeed; returns what it printed.
fn pass(cmd: &mut Command) -> String {
    let o = output(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    text(&o)
}

/// Every YAML document of a file, as JSON (PyYAML in the system Python).
fn yaml_docs(p: &Path) -> Vec<Value> {
    if !Path::new(SYSTEM_PYTHON).is_file() {
        panic!("{SYSTEM_PYTHON} is missing: scripts/ensure-deps installs python3");
    }
    let o = output(
        Command::new(SYSTEM_PYTHON)
            .arg("-c")
            .arg(
                "import json, sys, yaml; json.dump([d for d in \
                 yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)",
            )
            .arg(p),
    );
    assert!(
        o.status.success(),
        "reading {} as YAML failed (PyYAML: `PICKET_LIVE_TESTS=1 scripts/ensure-deps` installs \
         python3-yaml):\n{}",
        p.display(),
        text(&o)
    );
    match serde_json::from_slice(&o.stdout) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("{}: not a list of documents: {other:?}", p.display()),
    }
}

fn yaml(p: &Path) -> Value {
    yaml_docs(p).into_iter().next().unwrap_or(Value::Null)
}

#[cfg(feature = "live")]
fn is_root() -> bool {
    output(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0"
}

fn wait_for(what: &str, secs: u64, child: &mut Child, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the sensor exited ({st}) while waiting for {what}:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("timed out waiting for {what}");
}

/// SIGTERM, then the exit code; the sensor must stop within `secs`.
#[cfg(feature = "live")]
fn terminate(child: &mut Child, secs: u64) -> Option<i32> {
    pass(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the sensor did not stop within {secs} s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one series in a metrics text.
#[cfg(feature = "live")]
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// systemd

/// A unit file: section → key → values in order (continuation lines joined).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    let mut line = String::new();
    for raw in text.lines() {
        if let Some(cont) = raw.strip_suffix('\\') {
            line.push_str(cont);
            line.push(' ');
            continue;
        }
        line.push_str(raw);
        let l = std::mem::take(&mut line);
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            unit.entry(section.clone())
                .or_default()
                .entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    unit
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    unit.get(section)
        .and_then(|s| s.get(key))
        .and_then(|v| v.last())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("picket.service: no {key}= in [{section}]"))
}

fn words(unit: &Unit, section: &str, key: &str) -> BTreeSet<String> {
    one(unit, section, key)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The unit with its binary replaced by one that exists here.
fn unit_with_binary(dir: &Path, bin: &Path) -> PathBuf {
    let text = read(&deploy("systemd/picket.service"));
    assert!(text.contains("ExecStart=/usr/local/bin/picket "));
    let p = dir.join("picket.service");
    std::fs::write(
        &p,
        text.replace("/usr/local/bin/picket", bin.to_str().expect("utf-8 path")),
    )
    .expect("write unit");
    p
}

#[test]
fn systemd_unit_passes_systemd_analyze_and_is_hardened() {
    let analyze = tool("systemd-analyze");
    let dir = tempfile::tempdir().expect("temp dir");
    let unit_path = unit_with_binary(dir.path(), Path::new(env!("CARGO_BIN_EXE_picket")));
    // `verify` exits 0 on unknown keys and bad values: it only warns. Any output is a failure.
    let o = output(
        Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(&unit_path),
    );
    assert!(
        o.status.success() && text(&o).trim().is_empty(),
        "systemd-analyze verify deploy/systemd/picket.service ({}):\n{}",
        o.status,
        text(&o)
    );
    // systemd's own exposure score of the sandboxing: 2.5 at most ("OK"; an unhardened unit
    // scores 9.6).
    let o = output(
        Command::new(&analyze)
            .args(["security", "--offline=true", "--threshold=25", "--no-pager"])
            .arg(&unit_path),
    );
    assert!(
        o.status.success(),
        "systemd-analyze security: exposure above 2.5:\n{}",
        text(&o)
    );

    let unit = parse_unit(&read(&deploy("systemd/picket.service")));
    let caps: BTreeSet<String> = ["CAP_NET_ADMIN", "CAP_NET_RAW"].map(String::from).into();
    assert_eq!(words(&unit, "Service", "CapabilityBoundingSet"), caps);
    assert_eq!(words(&unit, "Service", "AmbientCapabilities"), caps);
    assert_eq!(one(&unit, "Service", "DynamicUser"), "yes");
    assert_ne!(one(&unit, "Service", "User"), "root");
    assert_eq!(one(&unit, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(one(&unit, "Service", "ProtectSystem"), "strict");
    assert_eq!(one(&unit, "Service", "Restart"), "on-failure");
    assert_eq!(one(&unit, "Service", "KillSignal"), "SIGTERM");
    assert_eq!(
        one(&unit, "Service", "ExecReload"),
        "/bin/kill -HUP $MAINPID"
    );
}

/// `KEY=VALUE` lines of an environment file, quotes removed.
#[cfg(feature = "live")]
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// ExecStart as systemd expands it: `${NAME}` is one argument, `$NAME` is split at spaces.
#[cfg(feature = "live")]
fn expand_exec(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    assert!(
        !line.contains(['"', '\'']),
        "ExecStart quoting is not emulated here: {line}"
    );
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for w in line.split_whitespace() {
        if let Some(k) = w.strip_prefix("${").and_then(|k| k.strip_suffix('}')) {
            out.push(get(k));
        } else if let Some(k) = w.strip_prefix('$') {
            out.extend(get(k).split_whitespace().map(str::to_string));
        } else {
            assert!(!w.contains('$'), "unexpanded variable in ExecStart: {w}");
            out.push(w.to_string());
        }
    }
    out
}

/// A directory that an unprivileged user can enter, holding a copy of the binary and the rules.
#[cfg(feature = "live")]
fn sandbox() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("picket");
    std::fs::copy(env!("CARGO_BIN_EXE_picket"), &bin).expect("copy binary");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    for f in std::fs::read_dir(repo().join("rules")).expect("rules/") {
        let f = f.expect("entry").path();
        if f.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&f, rules.join(f.file_name().expect("name"))).expect("copy rule");
        }
    }
    (dir, bin, rules)
}

/// `CAP_NET_RAW` → `+net_raw`, for setpriv.
#[cfg(feature = "live")]
fn setpriv_caps(caps: &BTreeSet<String>) -> String {
    let mut s = String::from("-all");
    for c in caps {
        s.push_str(",+");
        s.push_str(&c.trim_start_matches("CAP_").to_ascii_lowercase());
    }
    s
}

#[cfg(feature = "live")]
#[test]
fn systemd_unit_privileges_are_enough_to_capture_without_root() {
    if !is_root() {
        eprintln!("SKIPPED: starting the sensor as another user with capabilities needs root");
        return;
    }
    let setpriv = tool("setpriv");
    let unit = parse_unit(&read(&deploy("systemd/picket.service")));
    let (dir, bin, rules) = sandbox();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).expect("mkdir");
    // DynamicUser: some unprivileged uid owning LogsDirectory=; nobody stands in for it.
    std::os::unix::fs::chown(&logs, Some(65534), Some(65534)).expect("chown");

    // The environment systemd builds: Environment= defaults, then the example EnvironmentFile
    // (its BPF filter and extra flags included), with the interface and port of this test.
    let mut env = BTreeMap::new();
    for e in &unit["Service"]["Environment"] {
        let (k, v) = e.split_once('=').expect("Environment=KEY=VALUE");
        env.insert(k.to_string(), v.to_string());
    }
    assert_eq!(
        one(&unit, "Service", "EnvironmentFile"),
        "-/etc/default/picket"
    );
    env.extend(env_file(&read(&deploy("systemd/picket.default"))));
    let port = free_port();
    env.insert("PICKET_INTERFACE".into(), "lo".into());
    env.insert("PICKET_LISTEN".into(), format!("127.0.0.1:{port}"));
    let args: Vec<String> = expand_exec(one(&unit, "Service", "ExecStart"), &env)
        .into_iter()
        .map(|a| match a.as_str() {
            "/usr/local/bin/picket" => bin.display().to_string(),
            "/etc/picket/rules" => rules.display().to_string(),
            _ => match a.strip_prefix("/var/log/picket/") {
                Some(f) => logs.join(f).display().to_string(),
                None => a,
            },
        })
        .collect();

    let ambient = setpriv_caps(&words(&unit, "Service", "AmbientCapabilities"));
    let bounding = setpriv_caps(&words(&unit, "Service", "CapabilityBoundingSet"));
    let mut cmd = Command::new(&setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={ambient}"))
        .arg(format!("--ambient-caps={ambient}"))
        .arg(format!("--bounding-set={bounding}"));
    if one(&unit, "Service", "NoNewPrivileges") == "yes" {
        cmd.arg("--no-new-privs");
    }
    let mut child = cmd
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv starts");
    wait_for("/ready", 20, &mut child, || {
        http_get(port, "/ready").is_some_and(|(s, _)| s.contains(" 200 "))
    });
    let events = logs.join("flows.jsonl");
    assert!(events.exists(), "the events file is created");

    // ExecReload, with $MAINPID, as systemd runs it.
    let reload = one(&unit, "Service", "ExecReload").replace("$MAINPID", &child.id().to_string());
    let reload: Vec<&str> = reload.split_whitespace().collect();
    pass(Command::new(reload[0]).args(&reload[1..]));
    wait_for("the reload", 10, &mut child, || {
        http_get(port, "/metrics").is_some_and(|(_, m)| {
            metric(&m, "picket_rules_reloads_total{result=\"ok\"}") == Some(1.0)
        })
    });
    let code = terminate(&mut child, 30);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(code, Some(0), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Prometheus

fn promtool() -> PathBuf {
    tool("promtool")
}

#[test]
fn prometheus_configs_and_rules_pass_promtool() {
    let promtool = promtool();
    let prom = deploy("prometheus");
    for cfg in ["prometheus.yml", "federation.yml"] {
        pass(
            Command::new(&promtool)
                .args(["check", "config"])
                .arg(prom.join(cfg)),
        );
    }
    pass(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(prom.join("alerts.yml"))
            .arg(prom.join("recording.yml")),
    );
    // promtool resolves rule_files relative to the test file.
    for t in ["alerts.test.yml", "recording.test.yml"] {
        pass(
            Command::new(&promtool)
                .args(["test", "rules"])
                .arg(prom.join(t)),
        );
    }
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let prom = deploy("prometheus");
    let alerts: BTreeSet<String> = yaml(&prom.join("alerts.yml"))["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    assert!(alerts.len() >= 6, "{alerts:?}");
    let mut fires = BTreeSet::new();
    let mut spared = BTreeSet::new();
    for t in yaml(&prom.join("alerts.test.yml"))["tests"]
        .as_array()
        .expect("tests")
    {
        for a in t["alert_rule_test"].as_array().cloned().unwrap_or_default() {
            let name = a["alertname"].as_str().expect("alertname").to_string();
            if a["exp_alerts"].as_array().is_some_and(|v| !v.is_empty()) {
                fires.insert(name);
            } else {
                spared.insert(name);
            }
        }
    }
    for a in &alerts {
        assert!(fires.contains(a), "no test shows {a} firing");
        assert!(spared.contains(a), "no test shows {a} not firing");
    }
}

/// Metric names and the label names matched on them in a PromQL expression (an empty name for
/// a selector without one). Only as much of PromQL as finding selectors needs: strings, ranges,
/// numbers and the label lists of grouping modifiers are skipped, and names followed by `(` are
/// functions. promtool checks the syntax itself.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 19] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let b = expr.as_bytes();
    let skip_ws = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let string_end = |j: usize| {
        let q = b[j];
        let mut k = j + 1;
        while k < b.len() && b[k] != q {
            k += if b[k] == b'\\' { 2 } else { 1 };
        }
        k + 1
    };
    let ident_end = |mut j: usize| {
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
            j += 1;
        }
        j
    };
    // The label names in `{...}` starting at j, and the index after the `}`.
    let matchers = |mut j: usize| {
        let mut labels = Vec::new();
        j += 1;
        while j < b.len() && b[j] != b'}' {
            if matches!(b[j], b'"' | b'\'' | b'`') {
                j = string_end(j);
            } else if b[j].is_ascii_alphabetic() || b[j] == b'_' {
                let e = ident_end(j);
                labels.push(expr[j..e].to_string());
                j = e;
            } else {
                j += 1;
            }
        }
        (labels, j + 1)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = string_end(i);
        } else if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c == b'{' {
            let (labels, end) = matchers(i);
            out.push((String::new(), labels));
            i = end;
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let end = ident_end(i);
            let word = &expr[i..end];
            let next = skip_ws(end);
            i = end;
            if GROUPING.contains(&word) {
                if b.get(next) == Some(&b'(') {
                    while i < b.len() && b[i] != b')' {
                        i += 1;
                    }
                }
            } else if !KEYWORDS.contains(&word) && b.get(next) != Some(&b'(') {
                let mut labels = Vec::new();
                if b.get(next) == Some(&b'{') {
                    (labels, i) = matchers(next);
                }
                out.push((word.to_string(), labels));
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn selectors_finds_metrics_and_matched_labels() {
    let got = selectors(
        "sum by (app, verdict) (rate(a_total{x=\"{y}\", z!~'q'}[5m] offset 1h)) \
         / on (instance) group_left (app) b:rec * 2^30 > bool 1e3 unless {__name__=\"c\"}",
    );
    let want = vec![
        (
            "a_total".to_string(),
            vec!["x".to_string(), "z".to_string()],
        ),
        ("b:rec".to_string(), vec![]),
        (String::new(), vec!["__name__".to_string()]),
    ];
    assert_eq!(got, want);
}

/// Metric names and their label names, from the `/metrics` of the real binary.
fn exported_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let body = common::scrape_metrics();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().expect("TYPE name");
            out.entry(name.to_string()).or_default();
        } else if !l.starts_with('#') && !l.is_empty() {
            let (series, _) = l.rsplit_once(' ').expect("sample line");
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let set = out.entry(name.to_string()).or_default();
            for pair in labels.trim_end_matches('}').split(',') {
                if let Some((k, _)) = pair.split_once('=') {
                    set.insert(k.to_string());
                }
            }
        }
    }
    assert!(out.contains_key("picket_flows_total"), "{body}");
    out
}

/// Every `expr` of a Grafana dashboard (panels, rows, annotations) and the selectors of its
/// `label_values` variables, with where each comes from.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let e = t["expr"].as_str();
                let e = e.unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
                out.push((format!("panel {title:?}"), e.to_string()));
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&d["panels"], &mut out);
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push((format!("annotation {}", a["name"]), e.to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .expect("variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel.to_string())
            .unwrap_or_else(|| panic!("variable {}: only label_values() is checked", v["name"]));
        out.push((format!("variable {}", v["name"]), inner));
    }
    out
}

/// Grafana's variables replaced by values PromQL accepts where the dashboard uses them.
fn grafana_to_promql(e: &str) -> String {
    let mut s = e
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "6h");
    while let Some(i) = s.find('$') {
        let rest = &s[i + 1..];
        let len = if rest.starts_with('{') {
            rest.find('}').expect("closing }") + 1
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        s.replace_range(i..i + 1 + len, ".*");
    }
    s
}

fn rule_exprs(p: &Path) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for g in yaml(p)["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).expect("name");
            let expr = r["expr"].as_str().expect("expr").to_string();
            out.push((
                name.to_string(),
                expr,
                r["record"].as_str().map(String::from),
            ));
        }
    }
    out
}

#[test]
fn every_query_uses_metrics_the_sensor_exports() {
    let promtool = promtool();
    let exported = exported_metrics();
    let prom = deploy("prometheus");
    let recording = rule_exprs(&prom.join("recording.yml"));
    let recorded: BTreeSet<String> = recording.iter().filter_map(|r| r.2.clone()).collect();
    let mut queries: Vec<(String, String)> = Vec::new();
    for (file, rules) in [
        ("recording.yml", recording.clone()),
        ("alerts.yml", rule_exprs(&prom.join("alerts.yml"))),
    ] {
        queries.extend(
            rules
                .into_iter()
                .map(|(n, e, _)| (format!("{file} {n}"), e)),
        );
    }
    let dash: Value =
        serde_json::from_str(&read(&deploy("grafana/picket.json"))).expect("the dashboard is JSON");
    let from_dash = dashboard_queries(&dash);
    assert!(from_dash.len() >= 20, "{} queries", from_dash.len());
    queries.extend(
        from_dash
            .into_iter()
            .map(|(w, e)| (format!("dashboard {w}"), grafana_to_promql(&e))),
    );

    let mut bad = Vec::new();
    for (whence, e) in &queries {
        for (name, labels) in selectors(e) {
            if name.is_empty() || name == "up" || recorded.contains(&name) {
                continue;
            }
            let Some(known) = exported.get(&name) else {
                bad.push(format!(
                    "{whence}: `{name}` is neither exported by picket nor recorded in recording.yml"
                ));
                continue;
            };
            for l in labels {
                if !known.contains(&l) && !TARGET_LABELS.contains(&l.as_str()) {
                    bad.push(format!("{whence}: `{name}` has no label `{l}`"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // Every dashboard query through Prometheus's own parser: as recording rules for promtool.
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("dashboard.rules.yml");
    let mut y = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (whence, e)) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(e).expect("JSON string");
        y.push_str(&format!(
            "      # {}\n      - record: query:{i}\n        expr: {quoted}\n",
            whence.replace('\n', " ")
        ));
    }
    std::fs::write(&rules, &y).expect("write rules");
    let o = output(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
    assert!(
        o.status.success(),
        "promtool check rules:\n{}\n{y}",
        text(&o)
    );
}

#[test]
fn grafana_dashboard_is_complete() {
    let d: Value = serde_json::from_str(&read(&deploy("grafana/picket.json"))).expect("JSON");
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
    let mut ids = BTreeSet::new();
    let mut all = String::new();
    for p in d["panels"].as_array().expect("panels") {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "panel {id}: gridPos.{k}");
        }
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            all.push_str(t["expr"].as_str().unwrap_or(""));
        }
    }
    // What the issue asks to see: per-app flows and bytes, flagged apps, drops, the flow table,
    // rule reloads; for one sensor and from the fleet's recording rules.
    for m in [
        "picket_flows_total",
        "picket_app_bytes_total",
        "verdict=\"flag\"",
        "picket_capture_dropped_packets_total",
        "picket_flows_active",
        "picket_flows_max",
        "picket_rules_reloads_total",
        "app_verdict:picket_flows:rate5m",
        "app:picket_app_bytes:rate5m",
    ] {
        assert!(all.contains(m), "no panel shows {m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes and the container image

fn daemonset() -> Value {
    yaml_docs(&deploy("kubernetes/picket.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet in deploy/kubernetes/picket.yaml")
}

/// The rules ConfigMap as `kubectl create configmap picket-rules --from-file=rules/` makes it
/// (deploy/README.md), from the rule files.
fn rules_configmap() -> Value {
    let mut data = serde_json::Map::new();
    for f in std::fs::read_dir(repo().join("rules")).expect("rules/") {
        let f = f.expect("entry").path();
        if f.extension().is_some_and(|x| x == "toml") {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            data.insert(name, Value::String(read(&f)));
        }
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "picket-rules", "namespace": "picket"},
        "data": data,
    })
}

fn arg<'a>(args: &'a [Value], flag: &str) -> &'a str {
    args.iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(flag).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {flag}= in the container's args"))
}

#[test]
fn kubernetes_manifests_pass_the_schema_and_say_what_the_issue_asks() {
    let validate = tool("kubernetes-validate");
    let dir = tempfile::tempdir().expect("temp dir");
    let cm = dir.path().join("rules-configmap.yaml");
    std::fs::write(&cm, rules_configmap().to_string()).expect("write");
    let out = pass(
        Command::new(&validate)
            .args(["--strict", "--no-warn"])
            .arg(deploy("kubernetes/picket.yaml"))
            .arg(&cm),
    );
    assert!(!out.contains("ERROR"), "{out}");
    for kind in ["namespace", "serviceaccount", "daemonset", "configmap"] {
        assert!(
            out.contains(&format!("passed for resource {kind}/")),
            "{out}"
        );
    }
    let readme = read(&deploy("README.md"));
    assert!(
        readme.contains("create configmap picket-rules"),
        "deploy/README.md shows how to make the rules ConfigMap"
    );

    let ds = daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_u64() > Some(0));
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mut add: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    add.sort_unstable();
    assert_eq!(add, ["NET_ADMIN", "NET_RAW"]);
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    for k in ["cpu", "memory"] {
        assert!(c["resources"]["limits"][k].is_string(), "limits.{k}");
        assert!(c["resources"]["requests"][k].is_string(), "requests.{k}");
    }
    // Probes on the port the sensor listens on, at the paths it serves.
    let args = c["args"].as_array().expect("args");
    assert_eq!(args[0], "live");
    let listen_port = arg(args, "--listen").rsplit(':').next().expect("port");
    let ports = c["ports"].as_array().expect("ports");
    let port = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert_eq!(port["containerPort"].to_string(), listen_port);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    for p in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[p]["httpGet"]["port"], "metrics");
    }
    let ann = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], listen_port);
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    // Rules from the ConfigMap, mounted where --rules points.
    let vol = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["configMap"]["name"] == "picket-rules")
        .expect("a volume from the picket-rules ConfigMap");
    let mount = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == vol["name"])
        .expect("the rules volume is mounted");
    assert_eq!(mount["mountPath"].as_str(), Some(arg(args, "--rules")));
}

/// The instructions of the Dockerfile's stages: (FROM line, [(instruction, arguments)]).
type Stage = (String, Vec<(String, String)>);

fn dockerfile_stages() -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut line = String::new();
    for raw in read(&deploy("docker/Dockerfile")).lines() {
        let t = raw.trim();
        if t.starts_with('#') || (t.is_empty() && line.is_empty()) {
            continue;
        }
        if let Some(cont) = t.strip_suffix('\\') {
            line.push_str(cont);
            continue;
        }
        line.push_str(t);
        let l = std::mem::take(&mut line);
        let (ins, rest) = l.split_once(' ').unwrap_or((&l, ""));
        let ins = ins.to_ascii_uppercase();
        if ins == "FROM" {
            stages.push((rest.to_string(), Vec::new()));
        } else {
            stages
                .last_mut()
                .expect("FROM first")
                .1
                .push((ins, rest.to_string()));
        }
    }
    stages
}

#[test]
fn dockerfile_passes_hadolint_and_builds_a_small_non_root_image() {
    let hadolint = tool("hadolint");
    pass(
        Command::new(&hadolint)
            .args(["--failure-threshold", "info", "--no-color"])
            .arg(deploy("docker/Dockerfile")),
    );

    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let (from, runtime) = stages.last().expect("a stage");
    assert!(
        from.contains("-slim") || from.contains("distroless"),
        "small runtime base: {from}"
    );
    for (_, ins) in &stages {
        for (i, a) in ins {
            assert!(
                !(i == "ADD" && a.contains("://")),
                "no download with ADD: {a}"
            );
        }
    }
    // Copied from the build stage, not built in the runtime image.
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "COPY" && a.starts_with("--from=")));
    assert!(!runtime.iter().any(|(_, a)| a.contains("cargo")));
    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("numeric USER (Kubernetes runAsNonRoot checks numbers)");
    assert_ne!(uid, 0);
    // The DaemonSet runs the image's user with the capabilities the image's binary carries.
    let pod = &daemonset()["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsUser"].as_u64(),
        Some(u64::from(uid))
    );
    let caps = docker_setcap(runtime);
    assert_eq!(caps, "cap_net_raw,cap_net_admin=ep");

    // Everything cargo needs for `cargo build --bin picket` is in the build context: each
    // target and the build script of every workspace member (cargo loads them all, and
    // picket's dev-dependencies) lies under a COPY of the build stage (an undeclared bench
    // file, say, fails the build), and the build's dockerignore lets it through.
    let meta = pass(
        Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(repo()),
    );
    let meta: Value = serde_json::from_str(&meta).expect("cargo metadata JSON");
    let copied: Vec<String> = stages[0]
        .1
        .iter()
        .filter(|(i, a)| i == "COPY" && !a.starts_with("--from"))
        .flat_map(|(_, a)| {
            let parts: Vec<&str> = a.split_whitespace().collect();
            parts[..parts.len() - 1]
                .iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let ignore = read(&deploy("docker/Dockerfile.dockerignore"));
    let root = repo();
    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into(), "rules".into()];
    let packages = meta["packages"].as_array().expect("packages");
    assert!(packages.iter().any(|p| p["name"] == "picket"), "{meta}");
    for p in packages {
        let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
        let rel = manifest.strip_prefix(&root).expect("inside the repository");
        needed.push(rel.display().to_string());
        for t in p["targets"].as_array().expect("targets") {
            let kinds = t["kind"].to_string();
            if kinds.contains("test") || kinds.contains("example") {
                continue;
            }
            let src = Path::new(t["src_path"].as_str().expect("src_path"));
            let rel = src.strip_prefix(&root).expect("inside the repository");
            needed.push(rel.display().to_string());
        }
    }
    for n in &needed {
        let top = n.split('/').next().expect("a path");
        assert!(
            copied.iter().any(|c| c == n || c == top),
            "{n} is not copied into the build stage (COPY {copied:?})"
        );
        assert!(
            ignore
                .lines()
                .any(|l| l.trim_end_matches('/') == format!("!{top}")),
            "{n} is excluded by Dockerfile.dockerignore"
        );
    }
}

/// The capabilities the runtime stage gives the binary with setcap.
fn docker_setcap(runtime: &[(String, String)]) -> String {
    runtime
        .iter()
        .filter(|(i, _)| i == "RUN")
        .find_map(|(_, a)| {
            let w: Vec<&str> = a.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "setcap")?;
            assert_eq!(w.get(i + 2), Some(&"/usr/local/bin/picket"));
            w.get(i + 1).map(|s| s.to_string())
        })
        .expect("setcap on /usr/local/bin/picket in the runtime stage")
}

/// Starts the DaemonSet's container command line the way the runtime does: as the image's
/// user, only the added capabilities in the bounding set, no_new_privs when privilege
/// escalation is off, and the given binary.
#[cfg(feature = "live")]
fn start_container(bin: &Path, rules: &Path, port: u16) -> Child {
    let ds = daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let uid = pod["securityContext"]["runAsUser"].to_string();
    let gid = pod["securityContext"]["runAsGroup"].to_string();
    let caps: BTreeSet<String> = c["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("add")
        .iter()
        .filter_map(Value::as_str)
        .map(|s| format!("CAP_{s}"))
        .collect();
    let env = BTreeMap::from([
        ("$(PICKET_INTERFACE)", "lo".to_string()),
        ("$(HOST_IP)", "127.0.0.1".to_string()),
        ("$(NODE_NAME)", "node-1".to_string()),
    ]);
    let listen_port = arg(c["args"].as_array().expect("args"), "--listen")
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let rules_path = arg(c["args"].as_array().expect("args"), "--rules").to_string();
    let args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            let mut a = a.as_str().expect("string arg").to_string();
            for (k, v) in &env {
                a = a.replace(k, v);
            }
            assert!(!a.contains("$("), "unset variable in {a}");
            if a.starts_with("--listen=") {
                a = a.replace(&format!(":{listen_port}"), &format!(":{port}"));
            }
            a.replace(&rules_path, rules.to_str().expect("utf-8"))
        })
        .collect();
    let mut cmd = Command::new(tool("setpriv"));
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--inh-caps=-all"])
        .arg(format!("--bounding-set={}", setpriv_caps(&caps)));
    if c["securityContext"]["allowPrivilegeEscalation"] == false {
        cmd.arg("--no-new-privs");
    }
    cmd.arg(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv starts")
}

#[cfg(feature = "live")]
#[test]
fn container_privileges_are_enough_to_capture_without_root() {
    if !is_root() {
        eprintln!("SKIPPED: starting the sensor as another user with capabilities needs root");
        return;
    }
    let (_dir, bin, rules) = sandbox();
    // Without the image's file capabilities the unprivileged user cannot capture...
    let port = free_port();
    let mut child = start_container(&bin, &rules, port);
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        assert!(
            Instant::now() < end,
            "the sensor started without capabilities"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");

    // ... with them (the Dockerfile's setcap) it captures and answers both probes.
    let stages = dockerfile_stages();
    let caps = docker_setcap(&stages.last().expect("runtime stage").1);
    pass(Command::new(tool("setcap")).arg(&caps).arg(&bin));
    let port = free_port();
    let mut child = start_container(&bin, &rules, port);
    let c = &daemonset()["spec"]["template"]["spec"]["containers"][0];
    let live = c["livenessProbe"]["httpGet"]["path"]
        .as_str()
        .expect("path");
    let ready = c["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .expect("path");
    wait_for(ready, 20, &mut child, || {
        http_get(port, ready).is_some_and(|(s, _)| s.contains(" 200 "))
    });
    let (status, _) = http_get(port, live).expect("liveness answer");
    assert!(status.contains(" 200 "), "{live}: {status}");
    let grace = daemonset()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    let code = terminate(&mut child, grace);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(code, Some(0), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Log shipping

#[test]
fn log_shipper_configs_pass_rsyslogd_and_logrotate_checks() {
    let rsyslogd = tool("rsyslogd");
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = parse_unit(&read(&deploy("systemd/picket.service")));
    let exec = one(&unit, "Service", "ExecStart");
    for conf in ["rsyslog-kafka.conf", "rsyslog-elasticsearch.conf"] {
        let path = deploy(&format!("shipper/{conf}"));
        // As Debian's /etc/rsyslog.conf includes /etc/rsyslog.d/*.conf: after its globals.
        let main = dir.path().join(format!("main-{conf}"));
        std::fs::write(
            &main,
            format!(
                "global(workDirectory=\"{}\")\ninclude(file=\"{}\")\n",
                dir.path().display(),
                path.display()
            ),
        )
        .expect("write");
        pass(Command::new(&rsyslogd).args(["-N1", "-f"]).arg(&main));
        // It reads the file the unit writes.
        let text = read(&path);
        let file = text
            .split("File=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("imfile File=");
        assert!(
            exec.contains(&format!("--events {file}")),
            "{conf} reads {file}, the unit writes elsewhere"
        );
    }
    let state = dir.path().join("logrotate.state");
    pass(
        Command::new(tool("logrotate"))
            .arg("--debug")
            .arg("--state")
            .arg(&state)
            .arg(deploy("systemd/picket.logrotate")),
    );
}
