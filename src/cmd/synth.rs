//! `picket synth`: placeholder until the generator lands.
use anyhow::Result;
use std::process::ExitCode;
/// Options.
#[derive(clap::Args, Debug)]
pub struct Args {}
/// Runs.
pub fn run(_a: Args) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
