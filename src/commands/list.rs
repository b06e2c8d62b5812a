//! `pkg list` (what is installed) and `pkg search` (what formulae exist). Read-only: no lock.

use std::io::Write as _;

use crate::cli::{ListArgs, SearchArgs};

use super::{Ctx, SilentExit, print_json};

pub fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    let mut list = ctx.inventory().list();
    list.packages.retain(|p| p.pinned || !args.pinned);
    if args.json {
        return print_json(&list);
    }
    let mut out = std::io::stdout().lock();
    for p in &list.packages {
        if args.versions {
            writeln!(out, "{} {}", p.name, p.versions.join(" "))?;
        } else {
            writeln!(out, "{}", p.name)?;
        }
    }
    // Names stay the data on stdout; who owns a link another package had is said beside them.
    for t in list.packages.iter().flat_map(|p| &p.taken_over_from_others) {
        ctx.reporter.status(
            "Taken over",
            &format!(
                "{} belongs to {}, taken from {} (--overwrite); uninstalling {} gives it back",
                t.path, t.by, t.from, t.by
            ),
        );
    }
    Ok(())
}

pub fn search(ctx: &Ctx, args: &SearchArgs) -> anyhow::Result<()> {
    if args.remote {
        let repo: crate::registry::Repository = args.text.parse()?;
        let tags = ctx.client().list_tags(&repo)?;
        let mut out = std::io::stdout().lock();
        for t in &tags {
            writeln!(out, "{t}")?;
        }
        if tags.is_empty() {
            ctx.reporter.warn(&format!("{repo} has no tags"));
        }
        return Ok(());
    }
    let needle = args.text.to_lowercase();
    let mut out = std::io::stdout().lock();
    let mut found = 0;
    for name in ctx.formulary.names() {
        let formula = match ctx.formulary.load(&name) {
            Ok(f) => f,
            Err(e) => {
                ctx.reporter.warn(&e.to_string());
                continue;
            }
        };
        if name.to_lowercase().contains(&needle) || formula.desc.to_lowercase().contains(&needle) {
            writeln!(out, "{name}: {}", formula.desc)?;
            found += 1;
        }
    }
    if found == 0 {
        ctx.reporter
            .warn(&format!("no formula matches `{}`", args.text));
        return Err(SilentExit(1).into());
    }
    Ok(())
}
