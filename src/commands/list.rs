//! `pkg list` (what is installed) and `pkg search` (what formulae exist). Read-only: no lock.

use std::io::Write as _;

use crate::cli::{ListArgs, SearchArgs};
use crate::link;
use crate::records::Mark;

use super::{Ctx, JSON_SCHEMA, SilentExit, print_json};

pub fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    let prefix = &ctx.settings.prefix;
    let mut rows = Vec::new();
    for name in ctx.cellar.names() {
        let versions = ctx.cellar.installed_versions(&name);
        if versions.is_empty() {
            continue;
        }
        let pinned = ctx.records.has(Mark::Pinned, &name);
        if args.pinned && !pinned {
            continue;
        }
        rows.push((name, versions, pinned));
    }
    if args.json {
        /// One installed package in `pkg list --json`.
        #[derive(serde::Serialize)]
        struct Package {
            name: String,
            versions: Vec<String>,
            linked: Option<String>,
            pinned: bool,
            installed_on_request: bool,
        }
        #[derive(serde::Serialize)]
        struct Doc {
            schema: u32,
            packages: Vec<Package>,
        }
        let packages = rows
            .iter()
            .map(|(name, versions, pinned)| Package {
                name: name.clone(),
                versions: versions.iter().map(crate::version::show).collect(),
                linked: link::linked_version(prefix, name),
                pinned: *pinned,
                installed_on_request: versions.iter().any(|v| {
                    crate::cellar::receipt::Receipt::read(&ctx.cellar.keg(name, v))
                        .is_ok_and(|r| r.installed_on_request)
                }),
            })
            .collect();
        return print_json(&Doc {
            schema: JSON_SCHEMA,
            packages,
        });
    }
    let mut out = std::io::stdout().lock();
    for (name, versions, _) in &rows {
        if args.versions {
            let vs: Vec<String> = versions.iter().map(crate::version::show).collect();
            writeln!(out, "{name} {}", vs.join(" "))?;
        } else {
            writeln!(out, "{name}")?;
        }
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
