//! Commands: orchestration of the library modules, one file per verb, plus the stderr reporter.

mod install;

use std::io::Write as _;

use crate::cli::{Cli, Command};
use crate::report::Reporter;
use crate::settings::Settings;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let reporter = Stderr { quiet: cli.quiet };
    match cli.command {
        Command::Install(args) => install::run(&settings, &args, &reporter),
    }
}

/// Messages and progress on stderr (stdout is for data).
pub struct Stderr {
    quiet: bool,
}

impl Reporter for Stderr {
    fn status(&self, action: &str, message: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{action:>12} {message}");
        }
    }
    fn warn(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
    }
}
