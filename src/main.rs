//! The `picket` command: replay capture files, check rules, generate captures.
//!
//! Exit codes: 0 success; 1 nothing readable (no input file could be read); 2 usage or
//! configuration error (bad flags, invalid rules, an output that cannot be created);
//! 3 input damaged but partly processed (everything read before the damage is reported).

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Picket: flags messaging and conferencing apps in network traffic.
#[derive(Parser, Debug)]
#[command(name = "picket", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Classify every flow of pcap/pcapng files, in the order given, as one timeline.
    Replay(cmd::replay::Args),
    /// Capture live from an interface (a span or mirror port) and serve metrics.
    #[cfg(feature = "live")]
    Live(cmd::live::Args),
    /// Measure each stage's throughput on a capture, as ratios to its bare read rate.
    Bench(cmd::bench::Args),
    /// Rule files: check a folder.
    #[command(subcommand)]
    Rules(cmd::rules::RulesCmd),
    /// Write the project's generated captures (demo, bulk load, many flows).
    Synth(cmd::synth::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => cmd::replay::run(a),
        #[cfg(feature = "live")]
        Command::Live(a) => cmd::live::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Synth(a) => cmd::synth::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("picket: {e:#}");
            ExitCode::from(cmd::EXIT_USAGE)
        }
    }
}
