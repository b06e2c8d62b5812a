//! `pkg install`: the planner's install plan, printed (`--dry-run`) or carried out — kegs
//! poured several at once, then linked in dependency order; a package that fails leaves
//! nothing of itself behind and does not stop the others. `carry_out` serves upgrade too.

use crate::cli::InstallArgs;
use crate::plan::doc::Document;
use crate::plan::{Action, Note, Plan, UnitKind};
use crate::resolve::Request;

use super::{Ctx, print_json, upgrade};

pub fn run(ctx: &Ctx, args: &InstallArgs) -> anyhow::Result<()> {
    let mut requests = Vec::new();
    for arg in &args.packages {
        let request = if crate::byref::is_reference(arg) {
            let Some(request) = by_reference(ctx, arg, args.dry_run)? else {
                continue;
            };
            request
        } else {
            Request::parse_in(arg, &ctx.formulary)?
        };
        requests.push(request);
    }
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock()?)
    };
    let plan = crate::plan::install(&mut ctx.state(), &requests, args.upgrade)?;
    carry_out_with(ctx, &plan, args.dry_run, args.json, true, args.overwrite)
}

/// Prints the plan (a dry run) or carries it out, says what happened and ends with the
/// command's error when a part failed. `install`: the summary and errors of an install.
pub(super) fn carry_out(
    ctx: &Ctx,
    plan: &Plan,
    dry_run: bool,
    json: bool,
    install: bool,
) -> anyhow::Result<()> {
    carry_out_with(ctx, plan, dry_run, json, install, false)
}

fn carry_out_with(
    ctx: &Ctx,
    plan: &Plan,
    dry_run: bool,
    json: bool,
    install: bool,
    overwrite: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    say_notes(ctx, plan);
    upgrade::say_notes(ctx, plan);
    if dry_run {
        if json {
            print_json(&Document::new(plan, true, &[]))?;
        } else {
            print_plan(plan);
        }
        return Ok(());
    }
    let pourer = if plan.pours() {
        Some(ctx.pourer()?)
    } else {
        None
    };
    let outcome = crate::apply::apply(&ctx.target(overwrite), plan, pourer.as_ref());
    let mut failures: Vec<(usize, String)> = Vec::new();
    let mut errors: Vec<(String, anyhow::Error)> = Vec::new();
    for (i, result) in outcome.into_iter().enumerate() {
        if let Err(e) = result {
            let unit = &plan.units[i];
            let what = format!("{} {}", unit.package, crate::version::Shown(&unit.to));
            let e = anyhow::Error::new(e);
            failures.push((i, format!("{e:#}")));
            errors.push((what, e));
        }
    }
    let doc = Document::new(plan, false, &failures);
    if json {
        print_json(&doc)?;
    }
    if !install {
        for (i, message) in &failures {
            ctx.reporter
                .error(&format!("{}: {message}", plan.units[*i].package));
        }
        return upgrade::finish(ctx, &doc, started.elapsed().as_secs_f64());
    }
    if !doc.moved.is_empty() {
        let what: Vec<String> = doc
            .moved
            .iter()
            .map(|m| match (&m.from, m.action) {
                (Some(from), Action::Upgrade | Action::Downgrade)
                    if plan.units.iter().any(|u| {
                        u.kind == UnitKind::Upgrade && u.moves.iter().any(|x| x.name() == m.name)
                    }) =>
                {
                    format!("{} {from} -> {}", m.name, m.to)
                }
                _ => format!("{} {}", m.name, m.to),
            })
            .collect();
        ctx.reporter.status(
            "Finished",
            &format!(
                "installed {} in {:.1}s",
                what.join(", "),
                started.elapsed().as_secs_f64()
            ),
        );
        caveat_path(ctx);
    }
    if errors.len() > 1 {
        let names: Vec<&str> = errors.iter().map(|(n, _)| n.as_str()).collect();
        for (what, e) in &errors {
            ctx.reporter.error(&format!(
                "installing {what} failed; nothing was changed: {e:#}"
            ));
        }
        anyhow::bail!(
            "{} packages failed to install: {}; nothing of theirs was changed",
            errors.len(),
            names.join(", ")
        );
    }
    if let Some((what, e)) = errors.pop() {
        return Err(e.context(format!("installing {what} failed; nothing was changed")));
    }
    if !doc.failed.is_empty() {
        let names: Vec<&str> = doc.failed.iter().map(|f| f.name.as_str()).collect();
        anyhow::bail!("could not plan: {}", names.join(", "));
    }
    Ok(())
}

/// What an install says of the packages it leaves as they are.
fn say_notes(ctx: &Ctx, plan: &Plan) {
    for note in &plan.notes {
        match note {
            Note::Unchanged { name, version } => ctx.reporter.status(
                "Skipping",
                &format!("{name} {}: already installed", crate::version::Shown(version)),
            ),
            Note::Unlinked { name, version } => ctx.reporter.warn(&format!(
                "{name} {} is installed but not linked (`pkg unlink {name}` took its links away); `pkg link {name}` to link it",
                crate::version::Shown(version)
            )),
            Note::NotUpgraded {
                name,
                version,
                latest,
            } => ctx.reporter.warn(&format!(
                "{name} {} is installed and {} is available; run `pkg upgrade {name}` or `pkg install --upgrade {name}`",
                crate::version::Shown(version),
                crate::version::Shown(latest)
            )),
            _ => {}
        }
    }
}

/// The plan on stdout, a line a package: `install hello 1.2`, `upgrade lib 1.0 -> 2.0`,
/// `downgrade hello 2.0 -> 1.3`, `installed hello 1.2` (asked for, already there).
fn print_plan(plan: &Plan) {
    for note in &plan.notes {
        if let Note::Unchanged { name, version } | Note::Unlinked { name, version } = note {
            if plan.moves().any(|m| m.name() == name) {
                continue;
            }
            println!("installed {name} {}", crate::version::Shown(version));
        }
    }
    for m in plan.moves() {
        let to = crate::version::Shown(&m.step.version);
        match (&m.from, m.action()) {
            (Some(from), Action::Upgrade) => {
                println!(
                    "upgrade {} {} -> {to}",
                    m.name(),
                    crate::version::Shown(from)
                )
            }
            (Some(from), Action::Downgrade) => {
                println!(
                    "downgrade {} {} -> {to}",
                    m.name(),
                    crate::version::Shown(from)
                )
            }
            _ => println!("install {} {to}", m.name()),
        }
    }
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
    let refs = crate::byref::References::new(&ctx.settings.prefix);
    let existing = ctx.formulary.load(&name).ok();
    if dry_run {
        // Refused here as the run refuses it; nothing is recorded.
        let (name, version) = refs.check(arg, &name, &reference, existing)?;
        let state = if ctx.cellar.is_installed(&name, &version) {
            "installed"
        } else {
            "install"
        };
        println!("{state} {name} {} ({arg})", crate::version::Shown(&version));
        return Ok(None);
    }
    let (name, version) = refs.record(arg, &name, &reference, existing)?;
    // `{version}` spells it whole (`10.44.0+x2`), so the request is exactly that version.
    Ok(Some(Request::parse(&format!("{name}@{version}"))?))
}
