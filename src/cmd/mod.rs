//! Subcommands. The only place, with `main`, where `anyhow` and exit codes appear.

pub mod bench;
pub mod common;
pub mod eval;
#[cfg(feature = "live")]
pub mod live;
pub mod manual;
pub mod replay;
pub mod rules;

/// Nothing readable.
pub const EXIT_UNREADABLE: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Input damaged but partly processed.
pub const EXIT_DAMAGED: u8 = 3;

/// Every exit code with its meaning, for `--help` and the man page.
pub const EXIT_CODES: [(u8, &str); 6] = [
    (0, "success"),
    (
        EXIT_UNREADABLE,
        "nothing readable: no input file could be opened as a capture (`rules check`: a rule \
         file has an error; `eval`: a score below --min-recall or --min-precision)",
    ),
    (
        EXIT_USAGE,
        "usage or configuration error: bad flags, invalid rules, an output that cannot be created",
    ),
    (
        EXIT_DAMAGED,
        "input damaged but partly processed: everything read before the damage is reported \
         (`eval`: scored on what was read)",
    ),
    (
        130,
        "replay stopped by SIGINT (Ctrl-C): everything read before is written",
    ),
    (
        143,
        "replay stopped by SIGTERM: everything read before is written",
    ),
];

use anyhow::{Context, Result};
use picket::rules::{self as ruleset, CompiledRules};
use std::path::Path;

/// Loads the rules of `dir` (or the embedded defaults) with the files of the `add` folders
/// layered on (see [`ruleset::layered_sources`]) and an optional extra policy file.
pub fn load_rules(
    dir: Option<&Path>,
    add: &[std::path::PathBuf],
    policy: Option<&Path>,
) -> Result<CompiledRules> {
    let (sources, replaced) =
        ruleset::layered_sources(dir, add).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    for r in &replaced {
        tracing::info!("rules: {r}");
    }
    let policy = match policy {
        Some(p) => Some(
            ruleset::Source::from_file(p)
                .with_context(|| format!("cannot read policy file {}", p.display()))?,
        ),
        None => None,
    };
    let rules = ruleset::load(&sources, policy.as_ref())
        .map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    let stale = rules.stale_lists(ruleset::today());
    // Once per run: a reload (SIGHUP) of the same lists has nothing new to say.
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some(oldest) = stale.iter().max_by_key(|s| s.age_days) {
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let whose = match dir {
                Some(d) => format!("the rules in {}", d.display()),
                None => "the embedded rules".to_string(),
            };
            let n = stale.len();
            let (lists, are) = if n == 1 {
                ("list", "is")
            } else {
                ("lists", "are")
            };
            tracing::warn!(
                "{n} IP prefix {lists} of {whose} {are} past {} max age (oldest: {}'s, {} days, \
                 as of {}): flows to those apps' addresses without a server name may be missed \
                 or misnamed. Server names, DNS and STUN are not affected. To refresh: `picket \
                 rules check` names each list and its source; put updated copies in a rules \
                 folder and pass --rules DIR",
                if n == 1 { "its" } else { "their" },
                oldest.app,
                oldest.age_days,
                oldest.as_of
            );
        }
    }
    Ok(rules)
}
