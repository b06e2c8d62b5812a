//! `pkg completions SHELL` and `pkg manpage`: generated from the clap definitions in `cli.rs`.

use clap::CommandFactory as _;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "pkg", &mut std::io::stdout().lock());
    Ok(())
}

pub fn manpage() -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(Cli::command());
    man.render(&mut std::io::stdout().lock())?;
    Ok(())
}
