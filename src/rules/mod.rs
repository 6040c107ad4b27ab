//! Rules are data: one TOML file per app under `rules/`, validated with `file:line:col` errors and
//! compiled into an immutable matcher. The default rule files are embedded in the binary.
//!
//! Loading is all-or-nothing: a rule set with any error is refused as a whole (every error is
//! reported), so a sensor never runs on half a policy.

mod compile;
mod parse;

pub use compile::{CompiledRules, DomainMatch, StaleList};

/// Today, as days since 1970-01-01 (for the age of prefix lists; read when rules load).
pub fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

impl std::fmt::Display for StaleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the IP prefix list of {} is {} days old (as of {}, max {}): take the list again \
             from the source its `source` names and set `as_of` to that day, or delete the \
             [prefixes] table (the app is then found by its other rules only)",
            self.rule, self.app, self.age_days, self.as_of, self.max_age_days
        )
    }
}
pub use parse::{
    day_number, AppDef, BytePattern, DomainEntry, PrefixList, RuleSet, Sender, Signature, StunRule,
};

use std::fmt;
use std::path::{Path, PathBuf};

/// What a policy does with flows of an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The app is forbidden or restricted here: its flows are flagged.
    Flag,
    /// The app is watched and counted, nothing more.
    Observe,
}

impl Verdict {
    /// Lower-case name as used in rule files, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Flag => "flag",
            Verdict::Observe => "observe",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "flag" => Some(Verdict::Flag),
            "observe" => Some(Verdict::Observe),
            _ => None,
        }
    }
}

/// One problem in a rule or policy file, with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// The file, as named to the loader.
    pub path: PathBuf,
    /// 1-based line (0 when the problem concerns the whole file).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// Every error found in a rule set; none of it was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// A rule file's name and text, wherever it came from.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name used in errors (a path, or `rules/x.toml` for embedded files).
    pub path: PathBuf,
    /// The name used in events' `rule` field (the file name alone).
    pub name: String,
    /// The file's text.
    pub text: String,
}

/// The largest rule, list or policy file read (bytes): 1,000,000 domains take about 25 MB.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

impl Source {
    /// Reads a file; events cite it by its file name. Only a regular file (or a symlink to one)
    /// of at most [`MAX_FILE_BYTES`] is read: a FIFO, a device or a folder is refused before it
    /// is read (opened without blocking, checked again once open), so loading never hangs or
    /// reads without end. The error says which of these the file is.
    pub fn from_file(path: &Path) -> std::io::Result<Source> {
        Ok(Source {
            path: path.to_path_buf(),
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            text: read_regular(path, MAX_FILE_BYTES)?,
        })
    }
}

/// What a file is, for an error that refuses to read it.
fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Reads a regular file of at most `limit` bytes as UTF-8 text.
fn read_regular(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let refuse = |t: std::fs::FileType| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{}: only regular files are read", file_kind(t)),
        )
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(meta.file_type()));
    }
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A FIFO put in the file's place after the check must not block the open.
        open.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = open.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(meta.file_type()));
    }
    let too_big = |n: u64| {
        Error::new(
            ErrorKind::InvalidData,
            format!("{n} bytes or more, over the limit of {limit} bytes for a rule file"),
        )
    };
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    let mut text = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    let n = file.take(limit + 1).read_to_string(&mut text)?;
    if n as u64 > limit {
        return Err(too_big(n as u64));
    }
    Ok(text)
}

/// The default rule files, embedded at build time (see `build.rs`).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));
}

/// The embedded default rule files, as sources.
pub fn default_sources() -> Vec<Source> {
    embedded::FILES
        .iter()
        .map(|(name, text)| Source {
            path: Path::new("rules").join(name),
            name: (*name).to_string(),
            text: (*text).to_string(),
        })
        .collect()
}

/// The extension of plain list files (see the list format in the rules README): one domain or prefix a line.
pub const LIST_EXT: &str = "list";

/// A source's file name without its extension: the app id for app files, which a file of the
/// same stem in an added folder replaces.
fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// Reads every `*.toml` and `*.list` file of a folder (sorted by name) as sources.
pub fn dir_sources(dir: &Path) -> Result<Vec<Source>, RuleErrors> {
    let io_err = |path: &Path, e: std::io::Error| {
        RuleErrors(vec![RuleError {
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read: {e}"),
        }])
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == LIST_EXT))
        .collect();
    paths.sort();
    let mut out: Vec<Source> = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    for path in paths {
        match Source::from_file(&path) {
            Ok(src) => {
                if let Some(other) = out.iter().find(|o| stem(&o.name) == stem(&src.name)) {
                    errors.push(RuleError {
                        path: path.clone(),
                        line: 0,
                        col: 0,
                        message: format!(
                            "{} defines the same app: one file per app id",
                            other.path.display()
                        ),
                    });
                }
                out.push(src);
            }
            Err(e) => errors.extend(io_err(&path, e).0),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(RuleError {
            path: dir.to_path_buf(),
            line: 0,
            col: 0,
            message: "no *.toml or *.list rule files in this folder".into(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(RuleErrors(errors))
    }
}

/// The base rules (the files of `base`, or the embedded defaults) with the files of each `add`
/// folder layered on, in order. A file of an added folder whose stem (its app id, or `ech`) is
/// the stem of a file below it **replaces** that file as a whole: the organisation's file wins,
/// and nothing of the replaced app is kept. A `policy.toml` never replaces: every policy applies,
/// the base folder's first and added ones after. Returns the sources and one line per
/// replacement (`DIR/whatsapp.list replaces rules/whatsapp.toml`).
pub fn layered_sources(
    base: Option<&Path>,
    add: &[PathBuf],
) -> Result<(Vec<Source>, Vec<String>), RuleErrors> {
    let mut sources = match base {
        Some(d) => dir_sources(d)?,
        None => default_sources(),
    };
    let mut replaced = Vec::new();
    let mut errors = Vec::new();
    for dir in add {
        let added = match dir_sources(dir) {
            Ok(a) => a,
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        for src in added {
            let keyed = src.name != parse::POLICY_FILE;
            match sources
                .iter()
                .position(|o| keyed && stem(&o.name) == stem(&src.name))
            {
                Some(i) => {
                    replaced.push(format!(
                        "{} replaces {}",
                        src.path.display(),
                        sources[i].path.display()
                    ));
                    sources[i] = src;
                }
                None => sources.push(src),
            }
        }
    }
    if errors.is_empty() {
        Ok((sources, replaced))
    } else {
        Err(RuleErrors(errors))
    }
}

/// Parses, validates and compiles a set of sources; `policy` is an extra policy file, if any.
pub fn load(sources: &[Source], policy: Option<&Source>) -> Result<CompiledRules, RuleErrors> {
    let set = RuleSet::parse(sources, policy)?;
    Ok(CompiledRules::build(&set))
}

/// The embedded defaults, compiled. They are checked by the test suite, so this cannot fail in a
/// released binary; the error is still returned rather than hidden.
pub fn defaults() -> Result<CompiledRules, RuleErrors> {
    load(&default_sources(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_cover_the_required_apps() {
        let rules = defaults().unwrap_or_else(|e| panic!("embedded rules invalid:\n{e}"));
        for id in [
            "whatsapp",
            "zoom",
            "signal",
            "telegram",
            "teams",
            "webex",
            "discord",
            "messenger",
            "google_meet",
            "viber",
            "wechat",
            "line",
            "threema",
            "snapchat",
            "instagram",
            "facebook",
            "whatsapp_site",
        ] {
            let app = rules
                .app_by_id(id)
                .unwrap_or_else(|| panic!("no rule file for {id}"));
            let want = if matches!(id, "whatsapp" | "zoom" | "signal") {
                Verdict::Flag
            } else {
                Verdict::Observe
            };
            assert_eq!(app.verdict, want, "{id}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read_with_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("x.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        // A FIFO with no writer would block a plain open and read: it is refused, not waited on.
        let e = dir_sources(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("x.toml: cannot read: a FIFO: only regular files"),
            "{e}"
        );
        std::fs::remove_file(&fifo).expect("remove");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.toml")).expect("symlink");
        let e = dir_sources(dir.path()).unwrap_err().to_string();
        assert!(e.contains("zero.toml: cannot read: a device"), "{e}");
        std::fs::remove_file(dir.path().join("zero.toml")).expect("remove");
        std::fs::create_dir(dir.path().join("d.toml")).expect("mkdir");
        let e = dir_sources(dir.path()).unwrap_err().to_string();
        assert!(e.contains("d.toml: cannot read: a folder"), "{e}");
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("big.toml");
        std::fs::write(&p, "x".repeat(101)).expect("write");
        let e = read_regular(&p, 100).unwrap_err().to_string();
        assert!(e.contains("over the limit of 100 bytes"), "{e}");
        std::fs::write(&p, "x".repeat(100)).expect("write");
        assert_eq!(read_regular(&p, 100).expect("at the limit").len(), 100);
    }

    #[test]
    fn rule_error_display_file_line_col() {
        let e = RuleError {
            path: "rules/x.toml".into(),
            line: 3,
            col: 7,
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "rules/x.toml:3:7: bad");
    }
}
