//! `pkg completions SHELL` and `pkg manpage`, generated from the clap definitions (`cli/`),
//! and `pkg shellenv`.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::Cli;

/// The registration script of the dynamic completion (package names come from pkg as the
/// user types); shells it does not cover get clap's static script.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match crate::cli::complete::registration(shell) {
        Ok(script) => out.write_all(&script)?,
        Err(_) => clap_complete::generate(shell, &mut Cli::command(), "pkg", &mut out),
    }
    Ok(())
}

pub fn shellenv(
    shell: Option<crate::cli::EnvShell>,
    prefix: &std::path::Path,
) -> anyhow::Result<()> {
    let shell = shell.unwrap_or_else(crate::shellenv::from_env);
    std::io::stdout()
        .lock()
        .write_all(crate::shellenv::script(shell, prefix).as_bytes())?;
    Ok(())
}

pub fn manpage() -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(crate::cli::manual::man_page()?.as_bytes())?;
    Ok(())
}
