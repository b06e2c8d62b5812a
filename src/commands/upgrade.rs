//! `pkg upgrade` and `pkg outdated`: newest allowed versions, poured beside the old kegs, then
//! switched in link by link; the old version stays linked and working if anything fails.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use semver::Version;
use serde_json::json;

use crate::cellar::receipt::Receipt;
use crate::cli::{OutdatedArgs, UpgradeArgs};
use crate::link;
use crate::platform::Platform;
use crate::pour::Pourer;
use crate::prefix::Mark;
use crate::resolve::{self, Request, Step};

use super::{Ctx, InstalledState, JSON_SCHEMA, SilentExit, print_json};

pub fn run(ctx: &Ctx, args: &UpgradeArgs) -> anyhow::Result<()> {
    let names = if args.packages.is_empty() {
        ctx.cellar.names()
    } else {
        args.packages.clone()
    };
    upgrade(ctx, &names, args.dry_run, args.keep_old, args.json)
}

enum Outcome {
    UpToDate(Version),
    Pinned(Version),
    Upgraded { from: Version, to: Version },
}

/// Upgrades each of `names`; one failure does not stop the others; an error if any failed.
pub fn upgrade(
    ctx: &Ctx,
    names: &[String],
    dry_run: bool,
    keep_old: bool,
    json: bool,
) -> anyhow::Result<()> {
    let _lock = if dry_run { None } else { Some(ctx.lock()?) };
    let mut pourer: Option<Pourer> = None;
    let mut upgraded = Vec::new();
    let mut up_to_date = Vec::new();
    let mut pinned = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        match upgrade_one(ctx, &mut pourer, name, dry_run && !json, dry_run, keep_old) {
            Ok(Outcome::UpToDate(v)) => {
                up_to_date.push(json!({"name": name, "version": v.to_string()}))
            }
            Ok(Outcome::Pinned(v)) => {
                ctx.reporter.status(
                    "Pinned",
                    &format!("{name} {v} (pinned; `pkg unpin {name}` to upgrade it)"),
                );
                pinned.push(json!({"name": name, "version": v.to_string()}));
            }
            Ok(Outcome::Upgraded { from, to }) => {
                upgraded
                    .push(json!({"name": name, "from": from.to_string(), "to": to.to_string()}));
            }
            Err(e) => {
                ctx.reporter.warn(&format!("{name}: {e:#}"));
                failed.push(json!({"name": name, "error": format!("{e:#}")}));
            }
        }
    }
    if json {
        print_json(&json!({
            "schema": JSON_SCHEMA,
            "dry_run": dry_run,
            "upgraded": upgraded,
            "up_to_date": up_to_date,
            "pinned": pinned,
            "failed": failed,
        }))?;
    } else if upgraded.is_empty() && failed.is_empty() {
        ctx.reporter.status("Up to date", "nothing to upgrade");
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().filter_map(|f| f["name"].as_str()).collect();
        bail!(
            "{} package(s) failed to upgrade: {}; their previous versions are still linked",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

fn upgrade_one<'a>(
    ctx: &'a Ctx,
    pourer: &mut Option<Pourer<'a>>,
    name: &str,
    print_plan: bool,
    dry_run: bool,
    keep_old: bool,
) -> anyhow::Result<Outcome> {
    let current = ctx.require_installed(name)?;
    if ctx.records.has(Mark::Pinned, name) {
        return Ok(Outcome::Pinned(current));
    }
    let formula = super::load(ctx, name)?;
    let Some(newest) = formula.newest().filter(|n| **n > current).cloned() else {
        return Ok(Outcome::UpToDate(current));
    };
    let request = Request::parse(&format!("{name}@{newest}"))?;
    let plan = resolve::resolve(
        &[request],
        &ctx.formulary,
        &InstalledState { ctx },
        &Platform::host(),
    )?;
    // Steps whose package is not at the planned version yet. A keg already in the Cellar
    // (poured by a run that died before switching links) is switched to, not poured again.
    let todo: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| ctx.current(&s.formula.name).as_ref() != Some(&s.version))
        .collect();
    if dry_run {
        for step in todo.iter().filter(|_| print_plan) {
            let from = ctx
                .current(&step.formula.name)
                .map_or("not installed".to_owned(), |v| v.to_string());
            println!("upgrade {} {from} -> {}", step.formula.name, step.version);
        }
        return Ok(Outcome::Upgraded {
            from: current,
            to: newest,
        });
    }
    ctx.reporter
        .status("Upgrading", &format!("{name} {current} -> {newest}"));
    let on_request = ctx
        .cellar
        .kegs()
        .iter()
        .find(|k| k.name == name && k.version == current)
        .is_none_or(|k| k.receipt.installed_on_request);
    let resolved: BTreeMap<String, String> = plan
        .steps
        .iter()
        .map(|s| (s.formula.name.clone(), s.version.to_string()))
        .collect();

    // 1. Pour every new keg; on failure take them all back out: nothing was switched yet.
    let pourer = match pourer {
        Some(p) => &*p,
        None => &*pourer.insert(ctx.pourer()?),
    };
    // (step, version in use before, bins to link, poured by this run)
    let mut poured: Vec<(&Step, Option<Version>, Vec<String>, bool)> = Vec::new();
    let take_back = |poured: &[(&Step, Option<Version>, Vec<String>, bool)]| {
        for (s, _, _, fresh) in poured {
            if *fresh {
                let _ = ctx.cellar.remove(&s.formula.name, &s.version);
            }
        }
    };
    for step in &todo {
        let previous = ctx.current(&step.formula.name);
        let keg = ctx.cellar.keg(&step.formula.name, &step.version);
        if ctx.cellar.is_installed(&step.formula.name, &step.version) {
            let receipt = Receipt::read(&keg)?;
            poured.push((step, previous, receipt.bin, false));
            continue;
        }
        let spec = &step.formula.versions[&step.version];
        let deps = spec
            .depends_on
            .keys()
            .filter_map(|d| Some((d.clone(), resolved.get(d)?.clone())))
            .collect();
        let step_on_request = if step.formula.name == name {
            on_request
        } else {
            false
        };
        match pourer.pour(
            &ctx.cellar,
            &step.formula,
            &step.version,
            step_on_request,
            deps,
        ) {
            Ok(p) => poured.push((step, previous, p.bins, true)),
            Err(e) => {
                take_back(&poured);
                return Err(e).with_context(|| {
                    format!("fetching {} {} failed", step.formula.name, step.version)
                });
            }
        }
    }

    // 2. Switch links, dependencies first; a failure puts the previous links back.
    let prefix = &ctx.settings.prefix;
    let mut switched: Vec<(&str, Option<Version>)> = Vec::new();
    for (step, previous, bins, _) in &poured {
        let pname = step.formula.name.as_str();
        if ctx.records.has(Mark::Unlinked, pname) {
            continue;
        }
        if let Err(e) = link::link(prefix, pname, &step.version.to_string(), bins, false) {
            for (sname, prev) in switched.iter().rev() {
                relink(ctx, sname, prev.as_ref());
            }
            take_back(&poured);
            return Err(e).context(format!("linking {pname} {} failed", step.version));
        }
        switched.push((pname, previous.clone()));
    }

    // 3. The old kegs go, unless asked to keep them.
    for (step, previous, _, _) in &poured {
        if let Some(prev) = previous
            && !keep_old
            && *prev != step.version
        {
            ctx.cellar.remove(&step.formula.name, prev)?;
        }
        ctx.reporter.status(
            "Upgraded",
            &format!(
                "{} {} -> {}",
                step.formula.name,
                previous
                    .as_ref()
                    .map_or("(new)".to_owned(), |v| v.to_string()),
                step.version
            ),
        );
    }
    Ok(Outcome::Upgraded {
        from: current,
        to: newest,
    })
}

/// Puts back the links of `version` (or removes the package's links if it had none).
fn relink(ctx: &Ctx, name: &str, version: Option<&Version>) {
    let prefix = &ctx.settings.prefix;
    match version.and_then(|v| {
        ctx.cellar
            .kegs()
            .into_iter()
            .find(|k| k.name == name && k.version == *v)
    }) {
        Some(keg) => {
            let _ = link::link(
                prefix,
                name,
                &keg.version.to_string(),
                &keg.receipt.bin,
                false,
            );
        }
        None => {
            let _ = link::unlink(prefix, name);
        }
    }
}

pub fn outdated(ctx: &Ctx, args: &OutdatedArgs) -> anyhow::Result<()> {
    let named = !args.packages.is_empty();
    let names = if named {
        args.packages.clone()
    } else {
        ctx.cellar.names()
    };
    let mut rows = Vec::new();
    for name in &names {
        let current = if named {
            ctx.require_installed(name)?
        } else {
            match ctx.current(name) {
                Some(v) => v,
                None => continue,
            }
        };
        let formula = match ctx.formulary.load(name) {
            Ok(f) => f,
            Err(e) if !named => {
                ctx.reporter.warn(&format!("{name}: {e}"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(newest) = formula.newest().filter(|n| **n > current) {
            rows.push((
                name.clone(),
                current,
                newest.clone(),
                ctx.records.has(Mark::Pinned, name),
            ));
        }
    }
    if args.json {
        print_json(&json!({
            "schema": JSON_SCHEMA,
            "outdated": rows.iter().map(|(name, current, newest, pinned)| json!({
                "name": name,
                "installed": current.to_string(),
                "latest": newest.to_string(),
                "pinned": pinned,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for (name, current, newest, pinned) in &rows {
            let pin = if *pinned { " [pinned]" } else { "" };
            println!("{name} ({current}) < {newest}{pin}");
        }
    }
    if named && !rows.is_empty() {
        return Err(SilentExit(1).into());
    }
    Ok(())
}
