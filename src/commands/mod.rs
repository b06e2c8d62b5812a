//! Commands: orchestration of the library modules, one file per verb, plus the stderr reporter.

mod bottle;
mod bundle;
mod cleanup;
mod config;
mod deps;
mod doctor;
mod fetch;
mod files;
mod info;
mod install;
mod link;
mod list;
mod login;
mod outcome;
mod pin;
mod shell;
mod tap;
mod ui;
pub use ui::Stderr;
mod uninstall;
mod upgrade;
mod verify;
mod words;

use std::io::Write as _;

use crate::cellar::Cellar;
use crate::cli::{Cli, Command};
use crate::formula::Formulary;
use crate::lock::{self, PrefixLock};
use crate::pour::Pourer;
use crate::records::Records;
use crate::registry::Client;
use crate::report::{Reporter, count, human_bytes};
use crate::settings::{Flags, Settings};
use crate::store::Store;

/// Ends a command with an exit code and no further message (e.g. `pkg outdated NAME` → 1).
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct SilentExit(pub u8);

/// Bad input from the user (a malformed name, version, number or host): exit 2, like a usage
/// error, and nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// An error's causes, each said once (see [`crate::report::causes`]).
pub fn causes(err: &anyhow::Error) -> Vec<String> {
    crate::report::causes(err.as_ref())
}

/// Exit codes: 2 for usage errors and bad input, 1 for every other failure.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(is_bad_input) { 2 } else { 1 }
}

/// Whether an error of the chain is bad input: each error type classifies its own variants
/// ([`crate::report::Classify`], next to the type); this only names the types that can be
/// (`house::every_error_type_that_classifies_itself_is_asked_for_the_exit_code` keeps the list
/// whole).
fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    use crate::report::Classify;
    fn ask<T: Classify + std::error::Error + 'static>(
        e: &(dyn std::error::Error + 'static),
    ) -> Option<bool> {
        e.downcast_ref::<T>().map(Classify::bad_input)
    }
    ask::<crate::formula::FormulaError>(e)
        .or_else(|| ask::<crate::resolve::ResolveError>(e))
        .or_else(|| ask::<crate::plan::PlanError>(e))
        .or_else(|| ask::<crate::tap::TapError>(e))
        .or_else(|| ask::<crate::references::ReferencesError>(e))
        .or_else(|| ask::<crate::bundle::BundleError>(e))
        .or_else(|| ask::<crate::lock::LockError>(e))
        .or_else(|| ask::<crate::bottle::BottleError>(e))
        .or_else(|| ask::<crate::plan::state::ArgError>(e))
        .or_else(|| ask::<crate::settings::SettingsError>(e))
        .or_else(|| ask::<crate::registry::MirrorError>(e))
        .or_else(|| ask::<crate::registry::repository::ReferenceError>(e))
        .or_else(|| ask::<crate::bottle::inputs::InputError>(e))
        .or_else(|| ask::<BadInput>(e))
        .unwrap_or(false)
}

impl crate::report::Classify for BadInput {
    fn bad_input(&self) -> bool {
        true
    }
}

/// Version of every `--json` document; bump when a field changes meaning.
pub const JSON_SCHEMA: u32 = 1;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Commands that need no settings (and must work even when they are broken).
    match &cli.command {
        Command::Completions(args) => return shell::completions(args.shell),
        Command::Manpage => return shell::manpage(),
        _ => {}
    }
    let flags = Flags {
        prefix: cli.prefix.clone(),
        cache: cli.cache.clone(),
        jobs: cli.jobs.map(usize::from),
        offline: cli.offline.then_some(true),
        require_signatures: cli.require_signatures.then_some(true),
        link_mode: cli.link_mode.clone(),
    };
    let settings = Settings::load(&flags)?;
    let reporter = Stderr::new(cli.quiet, cli.color);
    let log: Option<crate::registry::Log> = cli.verbose.then(|| {
        let out = reporter.clone();
        let log: crate::registry::Log = std::sync::Arc::new(move |line: &str| out.debug(line));
        log
    });
    let notice: std::sync::Arc<dyn Reporter> = std::sync::Arc::new(reporter.clone());
    let ctx = Ctx {
        notice,
        cellar: Cellar::new(&settings.prefix),
        formulary: crate::tap::formulary(&settings),
        records: Records::new(&settings.prefix),
        settings: &settings,
        reporter: &reporter,
        wait: !cli.no_wait,
        log,
    };
    match cli.command {
        Command::Install(args) => install::run(&ctx, &args),
        Command::Upgrade(args) => upgrade::run(&ctx, &args),
        Command::Outdated(args) => upgrade::outdated(&ctx, &args),
        Command::Uninstall(args) => uninstall::run(&ctx, &args),
        Command::List(args) if !args.names.is_empty() => {
            files::list_files(&ctx, &args.names, args.json)
        }
        Command::List(args) => list::list(&ctx, &args),
        Command::Info(args) => info::run(&ctx, &args),
        Command::Search(args) => list::search(&ctx, &args),
        Command::Pin(args) => pin::pin(&ctx, &args.names, true),
        Command::Unpin(args) => pin::pin(&ctx, &args.names, false),
        Command::Link(args) => link::link(&ctx, &args),
        Command::Unlink(args) => link::unlink(&ctx, &args.names),
        Command::Reinstall(args) => install::reinstall(&ctx, &args),
        Command::Leaves(args) => files::leaves(&ctx, args.json),
        Command::Which(args) => files::which(&ctx, &args),
        Command::Prefix(args) => files::prefix(&ctx, args.name.as_deref()),
        Command::Shellenv(args) => shell::shellenv(args.shell, &ctx.settings.prefix),
        Command::Fetch(args) => fetch::run(&ctx, &args),
        Command::Cleanup(args) => cleanup::cleanup(&ctx, &args),
        Command::Autoremove(args) => cleanup::autoremove(&ctx, args.dry_run),
        Command::Deps(args) => deps::deps(&ctx, &args),
        Command::Uses(args) => deps::uses(&ctx, &args.name, args.json),
        Command::Bottle(args) => bottle::run(&ctx, &args),
        Command::Login(args) => login::run(&ctx, &args),
        Command::Logout(args) => login::logout(&ctx, &args),
        Command::Config(args) => config::show(&ctx, args.json),
        Command::Doctor(args) => doctor::run(&ctx, args.json),
        Command::Completions(_) | Command::Manpage => Ok(()),
        Command::Tap { command } => tap::tap(
            &ctx,
            command
                .as_ref()
                .unwrap_or(&crate::cli::TapCommand::List { json: false }),
        ),
        Command::Update => tap::update(&ctx),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Bundle { command } => bundle::run(&ctx, &command),
    }
}

/// What every command works with.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub reporter: &'a Stderr,
    pub cellar: Cellar,
    pub formulary: Formulary,
    pub records: Records,
    pub wait: bool,
    /// `--verbose`: where the registry client logs its requests.
    pub log: Option<crate::registry::Log>,
    /// Where the registry client says what the user should know (a mirror that did not answer).
    pub notice: std::sync::Arc<dyn Reporter>,
}

impl Ctx<'_> {
    /// The prefix lock, for commands that change the prefix. Holding it, first repair what a
    /// pkg that died mid-change left: half-unpacked kegs and kegs moved aside in
    /// `Cellar/.staging`, temporary links in `bin/` and `opt/`.
    fn lock(&self) -> anyhow::Result<PrefixLock> {
        let lock = lock::acquire(&self.settings.prefix, self.wait, self.reporter)?;
        let staged = self.cellar.recover();
        let links = crate::link::recover(&self.settings.prefix);
        if staged > 0 || !links.is_empty() {
            self.reporter.status(
                "Recovered",
                &format!(
                    "from an interrupted run ({staged} staged kegs removed, {} links repaired)",
                    links.len()
                ),
            );
        }
        Ok(lock)
    }

    /// The network side, created only when something must be fetched.
    fn pourer(&self) -> anyhow::Result<Pourer<'_>> {
        let store = Store::open(&self.settings.cache)?;
        // This prefix uses the cache: cleanup anywhere keeps what its receipts reference.
        let cache_lock = lock::cache(&self.settings.cache, false, self.wait, self.reporter)?;
        store.register(&self.settings.prefix)?;
        // Temporary files of runs that died; the cache may be shared, so not under our lock.
        // Their partial downloads stay, for this run or a later one to resume.
        store.sweep_keeping_partials();
        let options = crate::pour::PourOptions {
            limits: self.settings.limits,
            jobs: self.settings.jobs,
            require_signatures: self.settings.require_signatures,
            link_mode: self.settings.link_mode,
        };
        Ok(Pourer::new(
            store,
            self.client(),
            self.reporter,
            options,
            cache_lock,
        ))
    }

    /// A registry client from the settings (logging with `--verbose`).
    fn client(&self) -> Client {
        let client = Client::new(
            self.settings.mirrors.clone(),
            self.settings.credentials.clone(),
            self.settings.network.clone(),
        );
        let client = match &self.log {
            Some(log) => client.with_log(log.clone()),
            None => client,
        };
        client.with_notice(self.notice.clone())
    }

    /// The prefix as the planner sees it: every command that plans (install, upgrade,
    /// outdated, fetch, deps) plans with it, so they agree.
    fn state(&self) -> crate::plan::State<'_> {
        crate::plan::State::new(
            &self.cellar,
            &self.formulary,
            &self.records,
            &self.settings.prefix,
        )
    }

    /// What is installed, as `list` and `info` report it.
    fn inventory(&self) -> crate::inventory::Inventory<'_> {
        crate::inventory::Inventory {
            cellar: &self.cellar,
            records: &self.records,
            prefix: &self.settings.prefix,
        }
    }

    /// Where a plan is carried out.
    fn target(&self, overwrite: bool) -> crate::apply::Target<'_> {
        crate::apply::Target {
            prefix: &self.settings.prefix,
            cellar: &self.cellar,
            records: &self.records,
            reporter: self.reporter,
            jobs: self.settings.jobs,
            overwrite,
        }
    }
}

/// The version in use of each name; the first that is not installed is the error (before
/// anything is changed).
fn installed_all(ctx: &Ctx, names: &[String]) -> anyhow::Result<Vec<semver::Version>> {
    let state = ctx.state();
    let versions = names
        .iter()
        .map(|n| state.require_installed(n))
        .collect::<Result<_, _>>()?;
    Ok(versions)
}

/// Whether this run wrote its JSON document (so a failure after it writes no second one).
static PRINTED_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes a JSON document to stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    PRINTED_JSON.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// What a `--json` run that failed prints on stdout when it printed no document of its own
/// (`{"schema": 1, "error": {...}}`), beside the message on stderr; its exit code is the text
/// mode's.
#[derive(Debug, serde::Serialize)]
pub struct FailureDoc {
    pub schema: u32,
    pub error: Failure,
}

#[derive(Debug, serde::Serialize)]
pub struct Failure {
    /// `bad_input` (exit 2: fix the command line, a name, a file) or `failure` (exit 1).
    pub kind: &'static str,
    /// The error, then each cause (as stderr says them).
    pub message: String,
    pub causes: Vec<String>,
    pub exit_code: u8,
}

/// The failure document for `err`, unless the command already printed its document (which
/// says what failed, as `install`'s `failed` does).
pub fn failure_document(err: &anyhow::Error) -> Option<FailureDoc> {
    if PRINTED_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let code = match err.downcast_ref::<SilentExit>() {
        Some(SilentExit(code)) => *code,
        None => exit_code(err),
    };
    let mut causes = causes(err).into_iter();
    let message = match err.downcast_ref::<SilentExit>() {
        Some(_) => "failed; stderr says why".to_owned(),
        None => causes.next().unwrap_or_default(),
    };
    Some(FailureDoc {
        schema: JSON_SCHEMA,
        error: Failure {
            kind: if code == 2 { "bad_input" } else { "failure" },
            message,
            causes: causes.collect(),
            exit_code: code,
        },
    })
}

/// Prints the failure document of a command line clap refused (exit 2): `rendered` is clap's
/// message, whose first line is the error.
pub fn print_usage_failure(kind: &str, rendered: &str) {
    let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or(kind);
    let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let causes = lines
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| l.trim().to_owned())
        .collect();
    let _ = print_json(&FailureDoc {
        schema: JSON_SCHEMA,
        error: Failure {
            kind: "bad_input",
            message,
            causes,
            exit_code: 2,
        },
    });
}

/// Prints [`failure_document`] for `err` on stdout, when there is one to print.
pub fn print_failure(err: &anyhow::Error) {
    if let Some(doc) = failure_document(err) {
        let _ = print_json(&doc);
    }
}
