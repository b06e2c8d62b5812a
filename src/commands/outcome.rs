//! What a plan says: printed for a dry run, or carried out (through `apply`) and reported —
//! the notes, the summary line, the `--json` document and the exit — for install and upgrade.

use crate::plan::doc::Document;
use crate::plan::{Action, Note, Plan, UnitKind};

use super::{Ctx, print_json};

/// What the command carrying a plan out is: its summary and its errors are said its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verb {
    /// `install`, `reinstall`, `bundle install`: a summary line, and the failures as errors.
    Install,
    /// `upgrade`: each failed unit said by its package.
    Upgrade,
}

/// How a plan is carried out and said.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub verb: Verb,
    /// `--dry-run`: printed, not carried out.
    pub dry_run: bool,
    /// `--json`: the plan's document on stdout.
    pub json: bool,
    /// `--overwrite`: links may replace files of other packages.
    pub overwrite: bool,
}

impl Run {
    pub(super) fn new(verb: Verb) -> Run {
        Run {
            verb,
            dry_run: false,
            json: false,
            overwrite: false,
        }
    }
}

/// Prints the plan (a dry run) or carries it out, says what happened and ends with the
/// command's error when a part failed.
/// Long: the one place a plan's run is reported — the dry run, the run, each unit's failure, the
/// `--json` document, the summary line and the exit — in that order.
pub(super) fn carry_out(ctx: &Ctx, plan: &Plan, run: Run) -> anyhow::Result<()> {
    let Run {
        verb,
        dry_run,
        json,
        overwrite,
    } = run;
    let started = std::time::Instant::now();
    announce(plan, ctx.reporter);
    if dry_run {
        if json {
            print_json(&Document::new(plan, true, &[]))?;
        } else {
            for line in plan.lines() {
                println!("{line}");
            }
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
            failures.push((i, crate::report::one_line(e.as_ref())));
            errors.push((what, e));
        }
    }
    let doc = Document::new(plan, false, &failures);
    if json {
        print_json(&doc)?;
    }
    if verb == Verb::Upgrade {
        for (i, message) in &failures {
            ctx.reporter
                .error(&format!("{}: {message}", plan.units[*i].package));
        }
        return finish(ctx, &doc, started.elapsed().as_secs_f64());
    }
    let verb = if plan.units.iter().all(|u| u.kind == UnitKind::Reinstall) {
        "reinstalling"
    } else {
        "installing"
    };
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
                "{verb} {} in {:.1}s",
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
                "{verb} {what} failed and left nothing behind: {}",
                crate::report::one_line(e.as_ref())
            ));
        }
        anyhow::bail!(
            "{} packages failed {}: {}; none of them left anything behind",
            errors.len(),
            if verb == "reinstalling" {
                "to reinstall"
            } else {
                "to install"
            },
            names.join(", ")
        );
    }
    if let Some((what, e)) = errors.pop() {
        return Err(e.context(format!("{verb} {what} failed and left nothing behind")));
    }
    if !doc.failed.is_empty() {
        let names: Vec<&str> = doc.failed.iter().map(|f| f.name.as_str()).collect();
        anyhow::bail!("could not plan: {}", names.join(", "));
    }
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

/// `lib 2.0.0, app 3.0.0`: the versions a document says are held back.
fn held_versions(doc: &Document) -> String {
    doc.held_back
        .iter()
        .map(|h| format!("{} {}", h.name, h.latest))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ends an upgrade: the summary line, and an error naming what failed.
fn finish(ctx: &Ctx, doc: &Document, seconds: f64) -> anyhow::Result<()> {
    let held = held_versions(doc);
    if doc.moved.is_empty() && doc.failed.is_empty() {
        if doc.held_back.is_empty() {
            ctx.reporter
                .status("Up to date", "(every package; nothing to upgrade)");
        } else {
            ctx.reporter
                .status("Finished", &format!("nothing upgraded; held back: {held}"));
        }
    }
    if !doc.moved.is_empty() {
        let mut also = Vec::new();
        if !doc.held_back.is_empty() {
            also.push(format!("held back: {held}"));
        }
        if !doc.failed.is_empty() {
            let names: Vec<&str> = doc.failed.iter().map(|f| f.name.as_str()).collect();
            also.push(format!("failed: {}", names.join(", ")));
        }
        let also = if also.is_empty() {
            String::new()
        } else {
            format!("; {}", also.join("; "))
        };
        let changes: Vec<String> = doc
            .moved
            .iter()
            .map(|m| match &m.from {
                Some(from) => format!("{} {from} -> {}", m.name, m.to),
                None => format!("{} {} (new)", m.name, m.to),
            })
            .collect();
        ctx.reporter.status(
            "Finished",
            &format!("upgrading {} in {seconds:.1}s{also}", changes.join(", ")),
        );
        caveat_path(ctx);
    }
    if !doc.failed.is_empty() {
        let names: Vec<&str> = doc.failed.iter().map(|f| f.name.as_str()).collect();
        anyhow::bail!(
            "{} package(s) failed to upgrade: {}; their previous versions are still linked",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// Says every note of the plan, and each unit's held-back versions.
fn announce(plan: &Plan, reporter: &super::Stderr) {
    for note in &plan.notes {
        match note {
            Note::Unchanged { name, version } => reporter.status(
                "Skipping",
                &format!("{name} {}: already installed", crate::version::Shown(version)),
            ),
            Note::Unlinked { name, version } => reporter.warn(&format!(
                "{name} {} is installed but not linked (`pkg unlink {name}` took its links away); `pkg link {name}` to link it",
                crate::version::Shown(version)
            )),
            Note::NotUpgraded {
                name,
                version,
                latest,
            } => reporter.warn(&format!(
                "{name} {} is installed and {} is available; run `pkg upgrade {name}` or `pkg install --upgrade {name}`",
                crate::version::Shown(version),
                crate::version::Shown(latest)
            )),
            Note::Pinned { name, version } => reporter.status(
                "Pinned",
                &format!(
                    "{name} {} (pinned; `pkg unpin {name}` to upgrade it)",
                    crate::version::Shown(version)
                ),
            ),
            Note::Held { hold, .. } => reporter.warn(&hold.reason),
            Note::Vanished { reason, .. } => reporter.warn(reason),
            Note::Failed { name, error } => reporter.error(&format!("{name}: {error}")),
            Note::UpToDate { .. } => {}
        }
    }
    for unit in &plan.units {
        if let Some(hold) = &unit.hold {
            reporter.warn(&hold.reason);
        }
    }
}
