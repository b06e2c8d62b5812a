//! `pkg deps` (what a package needs) and `pkg uses` (installed packages that need it). Read-only.

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::cli::DepsArgs;
use crate::formula::Formula;
use crate::platform::Platform;
use crate::resolve::{self, Request};

use super::Ctx;

pub fn deps(ctx: &Ctx, args: &DepsArgs) -> anyhow::Result<()> {
    let mut request = Request::parse_in(&args.name, &ctx.formulary)?;
    if request.spelled.is_none()
        && let Some(current) = ctx.state().in_use(&request.name)
    {
        request = Request::parse(&format!("{}@{current}", request.name))?;
    }
    let plan = resolve::resolve(
        std::slice::from_ref(&request),
        &ctx.formulary,
        &ctx.state(),
        &Platform::host(),
    )?;
    let mut out = std::io::stdout().lock();
    if !args.tree {
        for step in plan.steps.iter().filter(|s| s.formula.name != request.name) {
            writeln!(out, "{} {}", step.formula.name, step.version)?;
        }
        return Ok(());
    }
    let chosen: BTreeMap<&str, (&Formula, &semver::Version)> = plan
        .steps
        .iter()
        .map(|s| (s.formula.name.as_str(), (&s.formula, &s.version)))
        .collect();
    fn walk(
        out: &mut impl std::io::Write,
        chosen: &BTreeMap<&str, (&Formula, &semver::Version)>,
        name: &str,
        indent: usize,
    ) -> std::io::Result<()> {
        let Some((formula, version)) = chosen.get(name) else {
            return Ok(());
        };
        writeln!(
            out,
            "{}{name} {}",
            "  ".repeat(indent),
            crate::version::Shown(version)
        )?;
        for dep in formula.versions[*version].depends_on.keys() {
            walk(out, chosen, dep, indent + 1)?;
        }
        Ok(())
    }
    walk(&mut out, &chosen, &request.name, 0)?;
    Ok(())
}

pub fn uses(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    if !ctx.formulary.has(name) && !ctx.cellar.keg_dir_exists(name) {
        // Not a package at all: say so (with suggestions) rather than print nothing.
        ctx.formulary.load(name)?;
    }
    let mut out = std::io::stdout().lock();
    for keg in ctx.cellar.kegs() {
        if keg.receipt.dependencies.contains_key(name) {
            writeln!(out, "{} {}", keg.name, keg.version)?;
        }
    }
    Ok(())
}
