//! `picket rules check [DIR]`.

use anyhow::Result;
use clap::Subcommand;
use picket::rules;
use std::path::PathBuf;
use std::process::ExitCode;

/// Examples shown after the options, and in the man page.
pub const EXAMPLES: &str = "\
Examples:
  picket rules check
  picket rules check rules/ --policy policy.toml
  picket rules check --rules-add /etc/picket/rules.d";

/// Rule-file subcommands.
#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// Validate rule files; print every error as file:line:col: message (exit 1 on error).
    ///
    /// Loads the rules as a sensor would: every error of every file is listed, and a rule set
    /// with any error is refused as a whole. IP prefix lists past their `max_age_days` are
    /// warnings. On success prints the apps, domain rules and prefixes loaded, and the flagged
    /// apps.
    #[command(after_help = EXAMPLES)]
    Check {
        /// The rules folder [default: the embedded rules].
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Folders of rule files (`*.toml`, `*.list`) layered on DIR or the embedded rules, as
        /// `--rules-add` of replay and live layers them: a file of an app already defined
        /// replaces it (each replacement is listed).
        #[arg(long, value_name = "DIR")]
        rules_add: Vec<PathBuf>,
        /// An extra policy file to validate with them, applied after the folder's own
        /// `policy.toml` (as `--policy` of replay and live is).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

/// Runs a rules subcommand.
pub fn run(cmd: RulesCmd) -> Result<ExitCode> {
    let RulesCmd::Check {
        dir,
        rules_add,
        policy,
    } = cmd;
    let sources = match rules::layered_sources(dir.as_deref(), &rules_add) {
        Ok((s, replaced)) => {
            for r in replaced {
                println!("{r}");
            }
            s
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errs.0.len());
            return Ok(ExitCode::from(1));
        }
    };
    let policy_src = match &policy {
        Some(p) => match rules::Source::from_file(p) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("{}: cannot read: {e}", p.display());
                return Ok(ExitCode::from(1));
            }
        },
        None => None,
    };
    match rules::load(&sources, policy_src.as_ref()) {
        Ok(r) => {
            let flagged: Vec<&str> = r
                .apps()
                .iter()
                .filter(|a| a.verdict == rules::Verdict::Flag)
                .map(|a| &*a.id)
                .collect();
            for s in r.stale_lists(rules::today()) {
                eprintln!("warning: {s}");
            }
            println!(
                "ok: {} apps, {} domain rules, {} IP prefixes, flagged: {}",
                r.apps().len(),
                r.domain_count(),
                r.prefix_count(),
                if flagged.is_empty() {
                    "none".to_string()
                } else {
                    flagged.join(", ")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errs.0.len());
            Ok(ExitCode::from(1))
        }
    }
}
