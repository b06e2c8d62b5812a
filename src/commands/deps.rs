//! `pkg deps` (what a package needs) and `pkg uses` (installed packages that need it). Read-only.

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::cli::DepsArgs;
use crate::formula::Formula;
use crate::platform::Platform;
use crate::resolve::{self, Request};

use super::{Ctx, print_json};

/// `pkg deps --json`: what the package needs, each at the version the planner picks.
#[derive(serde::Serialize)]
struct Deps {
    schema: u32,
    name: String,
    version: String,
    dependencies: Vec<Dependency>,
}

#[derive(serde::Serialize)]
struct Dependency {
    name: String,
    version: String,
    /// The packages of the plan that depend on it directly.
    needed_by: Vec<String>,
}

/// `pkg uses --json`.
#[derive(serde::Serialize)]
struct Uses {
    schema: u32,
    name: String,
    used_by: Vec<User>,
}

#[derive(serde::Serialize)]
struct User {
    name: String,
    version: String,
}

pub fn deps(ctx: &Ctx, args: &DepsArgs) -> anyhow::Result<()> {
    // `SOURCE/NAME`: that source's formula.
    let mut formulary = ctx.formulary.clone();
    let plain = formulary.choose(&args.name)?;
    let mut request = Request::parse_in(&plain, &formulary)?;
    if request.spelled.is_none()
        && let Some(current) = ctx.state().in_use(&request.name)
    {
        request = Request::parse(&format!("{}@{current}", request.name))?;
    }
    let plan = resolve::resolve(
        std::slice::from_ref(&request),
        &formulary,
        &ctx.state(),
        &Platform::host(),
    )?;
    if args.json {
        let of = |name: &str| {
            plan.steps
                .iter()
                .filter(|s| s.formula.versions[&s.version].depends_on.contains_key(name))
                .map(|s| s.formula.name.clone())
                .collect()
        };
        let top = plan.steps.iter().find(|s| s.formula.name == request.name);
        return print_json(&Deps {
            schema: super::JSON_SCHEMA,
            name: request.name.clone(),
            version: top
                .map(|s| crate::version::show(&s.version))
                .unwrap_or_default(),
            dependencies: plan
                .steps
                .iter()
                .filter(|s| s.formula.name != request.name)
                .map(|s| Dependency {
                    name: s.formula.name.clone(),
                    version: crate::version::show(&s.version),
                    needed_by: of(&s.formula.name),
                })
                .collect(),
        });
    }
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

pub fn uses(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<()> {
    if !ctx.formulary.has(name) && !ctx.cellar.keg_dir_exists(name) {
        // Not a package at all: say so (with suggestions) rather than print nothing.
        ctx.formulary.load(name)?;
    }
    let used_by: Vec<User> = ctx
        .cellar
        .kegs()
        .into_iter()
        .filter(|k| k.receipt.dependencies.contains_key(name))
        .map(|k| User {
            name: k.name,
            version: crate::version::show(&k.version),
        })
        .collect();
    if json {
        return print_json(&Uses {
            schema: super::JSON_SCHEMA,
            name: name.to_owned(),
            used_by,
        });
    }
    let mut out = std::io::stdout().lock();
    for u in &used_by {
        writeln!(out, "{} {}", u.name, u.version)?;
    }
    Ok(())
}
