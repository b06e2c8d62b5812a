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

/// `pkg search --json`.
#[derive(serde::Serialize)]
struct Found {
    schema: u32,
    formulae: Vec<FoundFormula>,
}

#[derive(serde::Serialize)]
struct FoundFormula {
    name: String,
    desc: String,
    newest: Option<String>,
    installed: bool,
    /// Listed by a tap that left it out: which, and why (not installable here).
    #[serde(skip_serializing_if = "Option::is_none")]
    left_out: Option<String>,
}

/// `pkg search --remote --json`.
#[derive(serde::Serialize)]
struct Tags<'a> {
    schema: u32,
    repository: String,
    tags: &'a [String],
}

pub fn search(ctx: &Ctx, args: &SearchArgs) -> anyhow::Result<()> {
    if args.remote {
        let repo: crate::registry::Repository = args.text.parse()?;
        let tags = ctx.client().list_tags(&repo)?;
        if args.json {
            return print_json(&Tags {
                schema: super::JSON_SCHEMA,
                repository: repo.to_string(),
                tags: &tags,
            });
        }
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
    let mut found = Vec::new();
    for name in ctx.formulary.names() {
        let formula = match ctx.formulary.load(&name) {
            Ok(f) => f,
            // Listed under each `SOURCE/NAME` instead.
            Err(crate::formula::FormulaError::Ambiguous { .. }) => continue,
            Err(e) => {
                ctx.reporter.warn(&e.to_string());
                continue;
            }
        };
        if name.to_lowercase().contains(&needle) || formula.desc.to_lowercase().contains(&needle) {
            found.push(FoundFormula {
                installed: ctx.state().in_use(&name).is_some(),
                newest: formula.newest().map(crate::version::show),
                desc: formula.desc,
                name,
                left_out: None,
            });
        }
    }
    // What a tap lists but left out is found too, with why it cannot be installed here.
    for (name, source, reason) in ctx.formulary.all_left_out() {
        if name.to_lowercase().contains(&needle) && !found.iter().any(|f| f.name == name) {
            found.push(FoundFormula {
                name: name.to_owned(),
                desc: String::new(),
                newest: None,
                installed: false,
                left_out: Some(format!("{source}: {reason}")),
            });
        }
    }
    if args.json {
        let none = found.is_empty();
        print_json(&Found {
            schema: super::JSON_SCHEMA,
            formulae: found,
        })?;
        // The same exit code as the text: nothing found is a failure (the document says so).
        return if none {
            Err(SilentExit(1).into())
        } else {
            Ok(())
        };
    }
    let mut out = std::io::stdout().lock();
    for f in &found {
        match &f.left_out {
            Some(why) => writeln!(
                out,
                "{}: (left out of {})",
                f.name,
                crate::report::printable(why)
            )?,
            None => writeln!(out, "{}: {}", f.name, crate::report::printable(&f.desc))?,
        }
    }
    if found.is_empty() {
        ctx.reporter
            .warn(&format!("no formula matches `{}`", args.text));
        return Err(SilentExit(1).into());
    }
    Ok(())
}
