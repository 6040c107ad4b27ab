//! The `picket` command: replay capture files, capture live, check rules, measure throughput,
//! score against labels, write shell completions and man pages.
//!
//! Exit codes ([`cmd::EXIT_CODES`]): 0 success; 1 nothing readable (no input file could be
//! read); 2 usage or configuration error (bad flags, invalid rules, an output that cannot be
//! created); 3 input damaged but partly processed (everything read before the damage is reported);
//! 130 / 143 a replay stopped by SIGINT / SIGTERM.

mod cmd;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// What `picket --help` says after the one-line description.
const LONG_ABOUT: &str = "\
Picket flags messaging and conferencing apps (WhatsApp, Zoom, Signal, Telegram, Teams and more) \
in network traffic: from the TLS server name of each connection, QUIC Initials, DNS lookups, \
STUN/TURN call set-up, the apps' byte signatures and, when nothing else decides, their published \
IP ranges. It writes one JSON event per flow, alerts for the apps the policy flags, a summary, \
and Prometheus metrics.

`replay` reads capture files and `live` a network interface; both run the same pipeline, rules \
and events, so the same packets give the same answers. `rules check` validates a rules folder and \
a policy before a sensor loads them, `eval` scores the apps found against labelled captures \
(per-app precision and recall), and `bench` measures throughput on a capture. `completions` \
and `man` write shell completion scripts and man pages made from this very definition.

`picket COMMAND --help` describes each command's options.";

/// Examples shown after the options, and in the man page.
const EXAMPLES: &str = "\
Examples:
  picket replay --events flows.jsonl capture.pcap
  picket live -i eth1 --events /var/log/picket/flows.jsonl
  picket rules check rules/
  picket completions bash > ~/.local/share/bash-completion/completions/picket
  picket man --out /usr/local/share/man/man1";

/// Picket: flags messaging and conferencing apps in network traffic.
#[derive(Parser, Debug)]
#[command(name = "picket", version, about, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Classify every flow of pcap/pcapng files, in the order given, as one timeline.
    ///
    /// Reads classic pcap and pcapng without libpcap, in constant memory, and writes the events,
    /// alerts, summary and report asked for. All times are packet time: a capture replays the
    /// same way however fast it is read, and the same packets give the same events at any worker
    /// count (evictions aside). Exit status 1 when no file could be read as a capture, 3 when
    /// input was damaged but partly processed (damage is reported on standard error), 130 / 143
    /// when Ctrl-C / SIGTERM stopped it (every event and the report are still written).
    #[command(after_help = cmd::replay::EXAMPLES)]
    Replay(cmd::replay::Args),
    /// Capture live from an interface (a span or mirror port) and serve metrics.
    ///
    /// Runs the pipeline, rules and events of `replay` on packets from libpcap and serves
    /// /metrics, /healthz and /ready. Once the capture is open, every privilege is dropped (see
    /// --user). SIGHUP reloads the rules and the policy (a broken set is refused and the old one
    /// stays) and reopens the events and alerts files; SIGTERM or SIGINT drains the queues,
    /// writes every open flow as an event and exits 0.
    #[cfg(feature = "live")]
    #[command(after_help = cmd::live::EXAMPLES)]
    Live(cmd::live::Args),
    /// Measure each stage's throughput on a capture, as ratios to its bare read rate.
    #[command(after_help = cmd::bench::EXAMPLES)]
    Bench(cmd::bench::Args),
    /// Score the flows' apps against labelled captures: per-app precision and recall.
    ///
    /// Replays each capture as `replay` does and matches every ended flow to a TSV label by its
    /// transport and two endpoints (either order); prints per-app recall and precision, a
    /// confusion table, and a last line with the totals. The counts are those of the shared
    /// corpus's scorer: a flow Picket names an app whose label names none, or that no label
    /// names, is counted apart as beyond the label (--strict: against precision). Exit status 1
    /// below --min-recall / --min-precision, 2 for a bad label file (named by file:line), 3 when
    /// a capture was damaged.
    #[command(after_help = cmd::eval::EXAMPLES)]
    Eval(cmd::eval::Args),
    /// Check rule files and a policy before a sensor loads them.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCmd),
    /// Write a shell completion script to standard output.
    #[command(after_help = cmd::manual::COMPLETIONS_EXAMPLES)]
    Completions(cmd::manual::CompletionsArgs),
    /// Write the man pages: picket.1 on standard output, or every page into a folder.
    #[command(after_help = cmd::manual::MAN_EXAMPLES)]
    Man(cmd::manual::ManArgs),
}

/// The command-line definition: the derived one, with the exit codes after the long help.
fn command() -> clap::Command {
    let mut status = String::from("\n\nExit status:");
    for (code, meaning) in cmd::EXIT_CODES {
        status.push_str(&format!("\n  {code}  {meaning}"));
    }
    Cli::command().after_long_help(format!("{EXAMPLES}{status}"))
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Replay(a) => cmd::replay::run(a),
        #[cfg(feature = "live")]
        Command::Live(a) => cmd::live::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Completions(a) => cmd::manual::completions(a, command()),
        Command::Man(a) => cmd::manual::man(a, command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("picket: {e:#}");
            ExitCode::from(cmd::EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::command;
    use std::collections::BTreeMap;

    /// Every command with its path, depth first.
    fn all(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            all(sub, format!("{path} {}", sub.get_name()), out);
        }
        out.push((path, cmd.clone()));
    }

    fn commands() -> Vec<(String, clap::Command)> {
        let mut cmd = command();
        cmd.build();
        let mut out = Vec::new();
        all(&cmd, "picket".to_string(), &mut out);
        out
    }

    #[test]
    fn command_debug_assert() {
        command().debug_assert();
    }

    #[test]
    fn command_every_command_and_argument_has_help() {
        let mut missing = Vec::new();
        for (path, cmd) in commands() {
            if cmd.get_about().is_none() {
                missing.push(format!("{path}: no about"));
            }
            for a in cmd.get_arguments() {
                if a.get_help().is_none() {
                    missing.push(format!("{path}: {} has no help line", a.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn command_value_names_are_chosen_and_consistent() {
        // The value names in use, one meaning each; a new one is added here on purpose.
        const VOCABULARY: [&str; 16] = [
            "FILE", "PATH", "DIR", // read, written, a folder
            "N", "SECS", "MS", "MIB", "BYTES", // counts and quantities
            "ADDR", "IFACE", "EXPR", "USER", "NAME", // network and identity
            "FORMAT", "MODE", "SHELL", // closed sets (possible values listed)
        ];
        // Flag → (value name, where first seen): a flag shared by several commands shows the
        // same value name in each.
        let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut bad = Vec::new();
        for (path, cmd) in commands() {
            for a in cmd.get_arguments() {
                if !a.get_num_args().is_some_and(|n| n.takes_values()) {
                    continue;
                }
                let Some(names) = a.get_value_names() else {
                    bad.push(format!("{path}: {} has no value name", a.get_id()));
                    continue;
                };
                let name = names.join(" ");
                if !VOCABULARY.contains(&name.as_str()) {
                    bad.push(format!(
                        "{path}: {} takes <{name}>, not one of {VOCABULARY:?}",
                        a.get_id()
                    ));
                }
                let Some(long) = a.get_long() else { continue };
                match seen.get(long) {
                    Some((n, first)) if *n != name => bad.push(format!(
                        "--{long}: <{name}> in `{path}` but <{n}> in `{first}`"
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(long.to_string(), (name, path.clone()));
                    }
                }
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
