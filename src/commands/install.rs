//! `pkg install`: resolve the requests, pour the missing kegs (several at once, up to `--jobs`),
//! then link them in dependency order. A package that fails leaves nothing of itself behind and
//! does not stop the others; packages that depend on it are not installed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex, PoisonError};

use anyhow::anyhow;

use crate::cli::InstallArgs;
use crate::link;
use crate::platform::Platform;
use crate::pour::{PourError, Poured, Pourer};
use crate::prefix::Mark;
use crate::resolve::{self, Request, Step};

use super::{Ctx, InstalledState, human_bytes, upgrade};

pub fn run(ctx: &Ctx, args: &InstallArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut installed: Vec<String> = Vec::new();
    let mut requests = Vec::new();
    let mut to_upgrade = Vec::new();
    for arg in &args.packages {
        let request = if crate::byref::is_reference(arg) {
            let Some(request) = by_reference(ctx, arg, args.dry_run)? else {
                continue;
            };
            request
        } else {
            Request::parse_in(arg, &ctx.formulary)?
        };
        // `pkg install NAME` of an outdated package says so; it upgrades only with --upgrade.
        if request.spelled.is_none()
            && let Some(current) = ctx.current(&request.name)
        {
            let formula = super::load(ctx, &request.name)?;
            if let Some(newest) = formula.newest().filter(|n| **n > current) {
                if args.upgrade {
                    to_upgrade.push(request.name.clone());
                } else {
                    ctx.reporter.warn(&format!(
                        "{0} {1} is installed and {2} is available; run `pkg upgrade {0}` or `pkg install --upgrade {0}`",
                        request.name,
                        crate::version::Shown(&current),
                        crate::version::Shown(newest)
                    ));
                }
                continue;
            }
        }
        requests.push(request);
    }

    // Pins hold here as in upgrades: a plan that would move a pinned package is refused.
    let plan = resolve::resolve(
        &requests,
        &ctx.formulary,
        &InstalledState { ctx },
        &Platform::host(),
    )?;
    if args.dry_run {
        for step in &plan.steps {
            let state = if ctx.cellar.is_installed(&step.formula.name, &step.version) {
                "installed"
            } else {
                "install"
            };
            println!("{state} {} {}", step.formula.name, step.version);
        }
        for name in &to_upgrade {
            println!("upgrade {name}");
        }
        return Ok(());
    }

    let _lock = ctx.lock()?;
    let resolved: BTreeMap<String, String> = plan
        .steps
        .iter()
        .map(|s| (s.formula.name.clone(), crate::version::show(&s.version)))
        .collect();
    let mut todo = Vec::new();
    for step in &plan.steps {
        let (name, version) = (&step.formula.name, &step.version);
        if ctx.cellar.is_installed(name, version) {
            if step.on_request {
                ctx.cellar.mark_on_request(name, version)?;
                ctx.reporter.status(
                    "Skipping",
                    &format!(
                        "{name} {}: already installed",
                        crate::version::Shown(version)
                    ),
                );
                relink_if_needed(ctx, name, version, args.overwrite)?;
            }
            continue;
        }
        todo.push(step);
    }

    // Pour everything first (in parallel), then link in plan order: dependencies first, and a
    // package whose dependency failed is taken back out instead of linked.
    let poured = if todo.is_empty() {
        Vec::new()
    } else {
        pour_all(ctx, &ctx.pourer()?, &todo, &resolved)
    };
    let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
    let mut failed_names = BTreeSet::new();
    for (step, result) in todo.iter().zip(poured) {
        let (name, version) = (&step.formula.name, &step.version);
        let broken_dep = step.formula.versions[version]
            .depends_on
            .keys()
            .find(|d| failed_names.contains(*d));
        let outcome = match (result, broken_dep) {
            (Pour::Failed(e), _) => Err(e.into()),
            (Pour::Skipped { dependency }, _) => Err(anyhow!(
                "its dependency {dependency} could not be installed"
            )),
            (Pour::Done(_), Some(dep)) => {
                let _ = ctx.cellar.remove(name, version);
                Err(anyhow!("its dependency {dep} could not be installed"))
            }
            (Pour::Done(poured), None) => link_step(ctx, step, &poured, args.overwrite),
        };
        match outcome {
            Ok(()) => installed.push(format!("{name} {}", crate::version::Shown(version))),
            Err(e) => {
                failed_names.insert(name.clone());
                failed.push((format!("{name} {}", crate::version::Shown(version)), e));
            }
        }
    }
    if !installed.is_empty() {
        ctx.reporter.status(
            "Finished",
            &format!(
                "installed {} in {:.1}s",
                installed.join(", "),
                started.elapsed().as_secs_f64()
            ),
        );
        caveat_path(ctx);
    }
    if failed.len() > 1 {
        let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        for (what, e) in &failed {
            ctx.reporter.error(&format!(
                "installing {what} failed; nothing was changed: {e:#}"
            ));
        }
        anyhow::bail!(
            "{} packages failed to install: {}; nothing of theirs was changed",
            failed.len(),
            names.join(", ")
        );
    }
    if let Some((what, e)) = failed.pop() {
        return Err(e.context(format!("installing {what} failed; nothing was changed")));
    }
    if !to_upgrade.is_empty() {
        drop(_lock);
        upgrade::upgrade(ctx, &to_upgrade, false, false, false)?;
    }
    Ok(())
}

/// What became of one step's pour.
enum Pour {
    Done(Poured),
    Failed(PourError),
    /// Not attempted: a dependency in the same plan failed first.
    Skipped {
        dependency: String,
    },
}

/// Where each step of [`pour_all`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Poured,
    Failed,
}

/// Pours `steps` with up to `--jobs` at once, sharing one client (one connection pool, one token
/// per repository). A step starts once the steps it depends on are poured, so a dependency that
/// fails stops its dependents before they download anything. One result per step, in order.
fn pour_all(
    ctx: &Ctx,
    pourer: &Pourer,
    steps: &[&Step],
    resolved: &BTreeMap<String, String>,
) -> Vec<Pour> {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.formula.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            s.formula.versions[&s.version]
                .depends_on
                .keys()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let board = Mutex::new(vec![State::Waiting; steps.len()]);
    let changed = Condvar::new();
    let pour_one = |step: &Step| {
        let (formula, version) = (&step.formula, &step.version);
        let spec = &formula.versions[version];
        ctx.reporter.status(
            "Fetching",
            &format!(
                "{} {} ({}:{})",
                formula.name,
                crate::version::Shown(version),
                spec.repository,
                spec.tag
            ),
        );
        let dependencies = spec
            .depends_on
            .keys()
            .filter_map(|d| Some((d.clone(), resolved.get(d)?.clone())))
            .collect();
        match pourer.pour(&ctx.cellar, formula, version, step.on_request, dependencies) {
            Ok(p) => Pour::Done(p),
            Err(e) => Pour::Failed(e),
        }
    };
    // The next step to run: waiting, with every dependency poured (or one failed: then it is
    // skipped). `None` when nothing is ready yet.
    let ready = |states: &[State]| {
        (0..steps.len()).find_map(|i| {
            if states[i] != State::Waiting {
                return None;
            }
            if let Some(&d) = deps[i].iter().find(|&&d| states[d] == State::Failed) {
                return Some((i, Some(d)));
            }
            deps[i]
                .iter()
                .all(|&d| states[d] == State::Poured)
                .then_some((i, None))
        })
    };
    let worker = || {
        let mut done = Vec::new();
        let mut states = board.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let Some((i, failed_dep)) = ready(&states) else {
                if !states.contains(&State::Waiting) {
                    return done;
                }
                states = changed.wait(states).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            states[i] = State::Running;
            drop(states);
            let result = match failed_dep {
                Some(d) => Pour::Skipped {
                    dependency: format!("{} {}", steps[d].formula.name, steps[d].version),
                },
                None => {
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pour_one(steps[i])
                    })) {
                        Ok(result) => result,
                        Err(panic) => {
                            // Let the other workers finish (and skip its dependents) first.
                            let mut states = board.lock().unwrap_or_else(PoisonError::into_inner);
                            states[i] = State::Failed;
                            changed.notify_all();
                            drop(states);
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
            };
            states = board.lock().unwrap_or_else(PoisonError::into_inner);
            states[i] = match result {
                Pour::Done(_) => State::Poured,
                _ => State::Failed,
            };
            done.push((i, result));
            changed.notify_all();
        }
    };
    let workers = ctx.settings.jobs.clamp(1, steps.len());
    let mut results: Vec<(usize, Pour)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(worker)).collect();
        let mut all = Vec::with_capacity(steps.len());
        for handle in handles {
            match handle.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Links a poured keg (an explicit install links even a package the user had unlinked; a
/// dependency the user unlinked stays unlinked). A keg that cannot be linked is taken back out.
fn link_step(ctx: &Ctx, step: &Step, poured: &Poured, overwrite: bool) -> anyhow::Result<()> {
    let (formula, version) = (&step.formula, &step.version);
    let name = &formula.name;
    let keep_unlinked = !step.on_request && ctx.records.has(Mark::Unlinked, name);
    if !keep_unlinked {
        let linked = link::link(
            &ctx.settings.prefix,
            name,
            &crate::version::show(version),
            &poured.bins,
            &poured.link,
            overwrite,
        );
        if let Err(e) = linked {
            let _ = ctx.cellar.remove(name, version);
            return Err(e.into());
        }
        ctx.records.set(Mark::Unlinked, name, false)?;
    }
    ctx.reporter.status(
        "Installed",
        &format!(
            "{name} {} ({}, {}) in {}",
            crate::version::Shown(version),
            super::count(poured.files, "file"),
            human_bytes(poured.stats.bytes),
            poured.keg.display()
        ),
    );
    Ok(())
}

/// An installed keg asked for by name is made the linked one, unless the user unlinked the
/// package on purpose (then says how to link it): this switches versions, and finishes an
/// install that died before linking.
fn relink_if_needed(
    ctx: &Ctx,
    name: &str,
    version: &semver::Version,
    overwrite: bool,
) -> anyhow::Result<()> {
    let prefix = &ctx.settings.prefix;
    if ctx.records.has(Mark::Unlinked, name) {
        ctx.reporter.warn(&format!(
            "{name} {} is installed but not linked (`pkg unlink {name}` took its links away); `pkg link {name}` to link it",
            crate::version::Shown(version)
        ));
        return Ok(());
    }
    if link::linked_version(prefix, name).as_deref() == Some(crate::version::show(version).as_str())
    {
        return Ok(());
    }
    let receipt = crate::cellar::receipt::Receipt::read(&ctx.cellar.keg(name, version))?;
    link::link(
        prefix,
        name,
        &crate::version::show(version),
        &receipt.bin,
        &receipt.link,
        overwrite,
    )?;
    ctx.reporter.status(
        "Linked",
        &format!("{name} {}", crate::version::Shown(version)),
    );
    Ok(())
}

/// Says so when `PREFIX/bin` is not on PATH: the linked commands cannot be run by name.
pub(super) fn caveat_path(ctx: &Ctx) {
    let bin = ctx.settings.prefix.join("bin");
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == bin));
    if !on_path && bin.is_dir() {
        ctx.reporter.warn(&format!(
            "{} is not on your PATH; add `export PATH=\"{}:$PATH\"` to your shell profile",
            bin.display(),
            bin.display()
        ));
    }
}

/// `REGISTRY/REPO[:TAG]` or `…@DIGEST`: recorded as a formula (unless a dry run), then
/// requested at exactly its version like any other package.
fn by_reference(ctx: &Ctx, arg: &str, dry_run: bool) -> anyhow::Result<Option<Request>> {
    let reference = crate::byref::parse(arg)?;
    let name = reference.name_among(|| ctx.formulary.names())?;
    let version = reference.version();
    if dry_run {
        let state = if ctx.cellar.is_installed(&name, &version) {
            "installed"
        } else {
            "install"
        };
        println!("{state} {name} {} ({arg})", crate::version::Shown(&version));
        return Ok(None);
    }
    let refs = crate::byref::References::new(&ctx.settings.prefix);
    let existing = ctx.formulary.load(&name).ok();
    let (name, version) = refs.record(arg, &name, &reference, existing)?;
    // `{version}` spells it whole (`10.44.0+x2`), so the request is exactly that version.
    Ok(Some(Request::parse(&format!("{name}@{version}"))?))
}
