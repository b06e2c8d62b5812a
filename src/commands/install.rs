//! `pkg install`: resolve the requests, pour each missing keg (dependencies first) and link it.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::cli::InstallArgs;
use crate::link;
use crate::platform::Platform;
use crate::pour::Pourer;
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
            Request::parse(arg)?
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
                        "{} {current} is installed and {newest} is available; run `pkg upgrade {0}` or `pkg install --upgrade {0}`",
                        request.name
                    ));
                }
                continue;
            }
        }
        requests.push(request);
    }

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
        .map(|s| (s.formula.name.clone(), s.version.to_string()))
        .collect();
    let mut pourer: Option<Pourer> = None;
    for step in &plan.steps {
        let (name, version) = (&step.formula.name, &step.version);
        if ctx.cellar.is_installed(name, version) {
            if step.on_request {
                ctx.cellar.mark_on_request(name, version)?;
                ctx.reporter
                    .status("Skipping", &format!("{name} {version}: already installed"));
                relink_if_needed(ctx, name, version, args.overwrite)?;
            }
            continue;
        }
        let pourer = match &pourer {
            Some(p) => p,
            None => pourer.insert(ctx.pourer()?),
        };
        install_step(ctx, pourer, step, &resolved, args.overwrite)
            .with_context(|| format!("installing {name} {version} failed; nothing was changed"))?;
        installed.push(format!("{name} {version}"));
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
    if !to_upgrade.is_empty() {
        drop(_lock);
        upgrade::upgrade(ctx, &to_upgrade, false, false, false)?;
    }
    Ok(())
}

/// Pours one step and links it (an explicit install links even a package the user had unlinked;
/// a dependency the user unlinked stays unlinked). A keg that cannot be linked is taken back out.
fn install_step(
    ctx: &Ctx,
    pourer: &Pourer,
    step: &Step,
    resolved: &BTreeMap<String, String>,
    overwrite: bool,
) -> anyhow::Result<()> {
    let (formula, version) = (&step.formula, &step.version);
    let name = &formula.name;
    let spec = &formula.versions[version];
    ctx.reporter.status(
        "Fetching",
        &format!("{name} {version} ({}:{})", spec.repository, spec.tag),
    );
    let dependencies = spec
        .depends_on
        .keys()
        .filter_map(|d| Some((d.clone(), resolved.get(d)?.clone())))
        .collect();
    let poured = pourer.pour(&ctx.cellar, formula, version, step.on_request, dependencies)?;
    let keep_unlinked = !step.on_request && ctx.records.has(Mark::Unlinked, name);
    if !keep_unlinked {
        let linked = link::link(
            &ctx.settings.prefix,
            name,
            &version.to_string(),
            &poured.bins,
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
            "{name} {version} ({}, {}) in {}",
            super::count(poured.files, "file"),
            human_bytes(poured.stats.bytes),
            poured.keg.display()
        ),
    );
    Ok(())
}

/// An installed keg asked for by name is made the linked one, unless the user unlinked the
/// package on purpose: this switches versions, and finishes an install that died before linking.
fn relink_if_needed(
    ctx: &Ctx,
    name: &str,
    version: &semver::Version,
    overwrite: bool,
) -> anyhow::Result<()> {
    let prefix = &ctx.settings.prefix;
    if ctx.records.has(Mark::Unlinked, name)
        || link::linked_version(prefix, name).as_deref() == Some(version.to_string().as_str())
    {
        return Ok(());
    }
    let receipt = crate::cellar::receipt::Receipt::read(&ctx.cellar.keg(name, version))?;
    link::link(prefix, name, &version.to_string(), &receipt.bin, overwrite)?;
    ctx.reporter.status("Linked", &format!("{name} {version}"));
    Ok(())
}

/// Says so when `PREFIX/bin` is not on PATH: the linked commands cannot be run by name.
fn caveat_path(ctx: &Ctx) {
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
    let name = reference.name()?;
    let version = reference.version();
    if dry_run {
        let state = if ctx.cellar.is_installed(&name, &version) {
            "installed"
        } else {
            "install"
        };
        println!("{state} {name} {version} ({arg})");
        return Ok(None);
    }
    let refs = crate::byref::References::new(&ctx.settings.prefix);
    let existing = ctx.formulary.load(&name).ok();
    refs.record(arg, &reference, existing)?;
    Ok(Some(Request::parse(&format!("{name}@{version}"))?))
}
