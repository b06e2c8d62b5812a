//! `pkg completions SHELL` and `pkg manpage`: generated from the clap definitions (`cli/`).

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "pkg", &mut std::io::stdout().lock());
    Ok(())
}

pub fn manpage() -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(crate::cli::manual::man_page()?.as_bytes())?;
    Ok(())
}
