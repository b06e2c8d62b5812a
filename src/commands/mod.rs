//! Commands: orchestration of the library modules, one file per verb, plus the stderr reporter.

mod install;

use std::io::Write as _;

use crate::cellar::Cellar;
use crate::cellar::unpack::Limits;
use crate::cli::{Cli, Command};
use crate::platform::Platform;
use crate::pour::Pourer;
use crate::registry::Client;
use crate::report::Reporter;
use crate::resolve::Installed;
use crate::settings::Settings;
use crate::store::Store;

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

/// The installed versions the resolver may keep.
struct CellarVersions<'a>(&'a Cellar);

impl Installed for CellarVersions<'_> {
    fn versions(&self, name: &str) -> Vec<semver::Version> {
        self.0.installed_versions(name)
    }
}

/// The network side of an install, created only when something must be fetched.
fn pourer<'a>(settings: &Settings, reporter: &'a dyn Reporter) -> anyhow::Result<Pourer<'a>> {
    Ok(Pourer {
        store: Store::open(&settings.cache)?,
        client: Client::new(settings.mirrors.clone(), settings.credentials.clone()),
        host: Platform::host(),
        reporter,
        limits: Limits::default(),
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
