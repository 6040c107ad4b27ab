//! `picket completions SHELL` and `picket man [--out DIR]`: shell completions and man pages,
//! generated from the command-line definition itself, so they cannot drift from `--help`.

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Examples of `picket completions`, shown after the options and in the man page.
pub const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  picket completions bash > ~/.local/share/bash-completion/completions/picket
  picket completions zsh > ~/.zfunc/_picket
  picket completions fish > ~/.config/fish/completions/picket.fish";

/// Examples of `picket man`, shown after the options and in the man page.
pub const MAN_EXAMPLES: &str = "\
Examples:
  picket man | man -l -
  picket man --out /usr/local/share/man/man1";

/// Options of `picket completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// Options of `picket man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write every page into DIR: picket.1, and picket-replay.1 and so on for each subcommand
    /// (the folder is created when missing) [default: picket.1 alone, on standard output].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `picket completions`: the script goes to standard output.
pub fn completions(a: CompletionsArgs, mut cli: Command) -> Result<ExitCode> {
    // Into a buffer first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cli, "picket", &mut script);
    let mut out = io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `picket man`.
pub fn man(a: ManArgs, cli: Command) -> Result<ExitCode> {
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    match a.out {
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&page(&cli, true)?)
                .and_then(|()| out.flush())
                .context("writing the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for path in write_pages(&cli, &dir, true)? {
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` and of each of its visible subcommands into `dir`.
fn write_pages(cmd: &Command, dir: &Path, top: bool) -> Result<Vec<PathBuf>> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(cmd, top)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = vec![path];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.extend(write_pages(sub, dir, false)?);
    }
    Ok(written)
}

/// One man page in roff: clap_mangen's sections, then the examples (kept as written, line by
/// line), the exit status on the top page, and the related pages.
fn page(cmd: &Command, top: bool) -> Result<Vec<u8>> {
    let source = format!("picket {}", env!("CARGO_PKG_VERSION"));
    let man = Man::new(cmd.clone()).source(source).manual("User Commands");
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut roff = Roff::new();
    if let Some(after) = cmd.get_after_help() {
        let text = after.to_string();
        let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
        if lines.peek().is_some_and(|l| l.ends_with(':')) {
            lines.next();
        }
        roff.control("SH", ["EXAMPLES"]).control("nf", []);
        for l in lines {
            roff.text([roman(l.trim_start())]);
        }
        roff.control("fi", []);
    }
    if top {
        roff.control("SH", ["EXIT STATUS"]);
        for (code, meaning) in super::EXIT_CODES {
            roff.control("TP", []).text([roman(code.to_string())]);
            roff.text([roman(meaning)]);
        }
    }
    let related = see_also(cmd);
    if !top {
        roff.control("SH", ["SEE ALSO"]);
        roff.text([roman(related.join(", "))]);
    }
    roff.to_writer(&mut buf)?;
    Ok(buf)
}

/// The pages a subcommand's page refers to: the top page and its own subcommands' (the top
/// page lists every subcommand already).
fn see_also(cmd: &Command) -> Vec<String> {
    let mut out = vec!["picket(1)".to_string()];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_display_name().unwrap_or_else(|| sub.get_name());
        out.push(format!("{name}(1)"));
    }
    out
}
