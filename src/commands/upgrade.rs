//! `pkg upgrade` and `pkg outdated`: newest allowed versions, poured beside the old kegs, then
//! switched in link by link; the old version stays linked and working if anything fails.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use semver::{Version, VersionReq};
use serde_json::json;

use crate::cellar::receipt::Receipt;
use crate::cli::{OutdatedArgs, UpgradeArgs};
use crate::formula::Formula;
use crate::link;
use crate::platform::Platform;
use crate::pour::Pourer;
use crate::prefix::Mark;
use crate::resolve::{self, Installed, Plan, Request, Step};

use super::{Ctx, InstalledState, JSON_SCHEMA, SilentExit, human_bytes, print_json};

pub fn run(ctx: &Ctx, args: &UpgradeArgs) -> anyhow::Result<()> {
    let names = if args.packages.is_empty() {
        ctx.cellar.names()
    } else {
        args.packages.clone()
    };
    upgrade(ctx, &names, args.dry_run, args.keep_old, args.json)
}

/// Why a package does not go to the newest version its formula has.
struct Hold {
    /// The version held back (the formula's newest).
    version: Version,
    /// Who holds it back: `app 1.0.0`, `the pin on lib`.
    by: String,
    /// A sentence for the user, naming what holds it back.
    reason: String,
}

/// Where one package can go.
enum Choice {
    UpToDate,
    /// Every newer version is held back.
    Held(Hold),
    Upgrade {
        to: Version,
        plan: Plan,
        /// Set when `to` is not the newest version.
        hold: Option<Hold>,
    },
}

/// The newest version of `name` its formula allows that every installed dependent accepts and
/// that needs no pinned package to move, with its plan; versions above it are held back.
fn choose(ctx: &Ctx, name: &str, current: &Version, formula: &Formula) -> anyhow::Result<Choice> {
    let newer: Vec<&Version> = formula
        .versions
        .keys()
        .rev()
        .filter(|v| *v > current)
        .collect();
    if newer.is_empty() {
        return Ok(Choice::UpToDate);
    }
    let state = InstalledState { ctx };
    // What installed dependents (other than the package's own kegs) require of it.
    let dependents: Vec<(String, VersionReq)> = state
        .requirements()
        .into_iter()
        .filter(|(dep, _, by)| dep == name && by.split(' ').next() != Some(name))
        .map(|(_, req, by)| (by, req))
        .collect();
    let mut hold: Option<Hold> = None;
    for version in newer {
        let against: Vec<&(String, VersionReq)> = dependents
            .iter()
            .filter(|(_, req)| !req.matches(version))
            .collect();
        if !against.is_empty() {
            hold.get_or_insert_with(|| Hold {
                version: version.clone(),
                by: against
                    .iter()
                    .map(|(by, _)| by.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: format!(
                    "{name} {} is held back by {}",
                    crate::version::Shown(version),
                    against
                        .iter()
                        .map(|(by, req)| format!("{by} (requires {name} {req})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            continue;
        }
        let request = Request::parse(&format!("{name}@{version}"))?;
        match resolve::resolve(&[request], &ctx.formulary, &state, &Platform::host()) {
            Ok(plan) => {
                return Ok(Choice::Upgrade {
                    to: version.clone(),
                    plan,
                    hold,
                });
            }
            Err(e) => match e.held_by() {
                Some(by) => {
                    hold.get_or_insert_with(|| Hold {
                        version: version.clone(),
                        by,
                        reason: e.to_string(),
                    });
                }
                None => {
                    return Err(e).context(format!(
                        "planning {name} {}",
                        crate::version::Shown(version)
                    ));
                }
            },
        }
    }
    Ok(match hold {
        Some(hold) => Choice::Held(hold),
        None => Choice::UpToDate,
    })
}

enum Outcome {
    UpToDate(Version),
    Pinned(Version),
    /// Stays at `version`: everything newer is held back.
    Held {
        version: Version,
        hold: Hold,
    },
    Upgraded {
        from: Version,
        to: Version,
        /// Newer versions than `to` that are held back.
        hold: Option<Hold>,
        /// Every package this changed, dependencies included (empty for a dry run).
        moved: Vec<Moved>,
    },
}

/// One package an upgrade put in place.
struct Moved {
    name: String,
    from: Option<Version>,
    to: Version,
}

impl Moved {
    /// `lib 1.0.0 -> 2.0.0`, or `lib 2.0.0 (new)` for a dependency that was not installed.
    fn change(&self) -> String {
        match &self.from {
            Some(from) => format!(
                "{} {} -> {}",
                self.name,
                crate::version::Shown(from),
                crate::version::Shown(&self.to)
            ),
            None => format!("{} {} (new)", self.name, crate::version::Shown(&self.to)),
        }
    }
}

/// Upgrades each of `names`; one failure does not stop the others; an error if any failed.
/// Packages held back (by installed dependents or pins) are reported, not failed.
pub fn upgrade(
    ctx: &Ctx,
    names: &[String],
    dry_run: bool,
    keep_old: bool,
    json: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let _lock = if dry_run { None } else { Some(ctx.lock()?) };
    let mut pourer: Option<Pourer> = None;
    let mut upgraded = Vec::new();
    let mut up_to_date = Vec::new();
    let mut pinned = Vec::new();
    let mut held_back = Vec::new();
    let mut failed = Vec::new();
    let mut moved: Vec<Moved> = Vec::new();
    let mut held = |name: &str, version: &Version, hold: &Hold| {
        ctx.reporter.warn(&hold.reason);
        held_back.push(json!({
            "name": name,
            "version": crate::version::show(version),
            "latest": crate::version::show(&hold.version),
            "by": hold.by,
            "reason": hold.reason,
        }));
    };
    for name in names {
        match upgrade_one(ctx, &mut pourer, name, dry_run && !json, dry_run, keep_old) {
            Ok(Outcome::UpToDate(v)) => {
                up_to_date.push(json!({"name": name, "version": crate::version::show(&v)}))
            }
            Ok(Outcome::Pinned(v)) => {
                ctx.reporter.status(
                    "Pinned",
                    &format!(
                        "{name} {} (pinned; `pkg unpin {name}` to upgrade it)",
                        crate::version::Shown(&v)
                    ),
                );
                pinned.push(json!({"name": name, "version": crate::version::show(&v)}));
            }
            Ok(Outcome::Held { version, hold }) => held(name, &version, &hold),
            Ok(Outcome::Upgraded {
                from,
                to,
                hold,
                moved: m,
            }) => {
                if let Some(hold) = &hold {
                    held(name, &to, hold);
                }
                upgraded
                    .push(json!({"name": name, "from": from.to_string(), "to": to.to_string()}));
                moved.extend(m);
            }
            Err(e) => {
                ctx.reporter.error(&format!("{name}: {e:#}"));
                failed.push(json!({"name": name, "error": format!("{e:#}")}));
            }
        }
    }
    let names_of = |rows: &[serde_json::Value]| -> Vec<String> {
        rows.iter()
            .filter_map(|r| Some(r["name"].as_str()?.to_owned()))
            .collect()
    };
    // `lib 2.0.0, app 3.0.0`: the versions held back.
    let held_versions = held_back
        .iter()
        .filter_map(|r| Some(format!("{} {}", r["name"].as_str()?, r["latest"].as_str()?)))
        .collect::<Vec<_>>()
        .join(", ");
    if json {
        print_json(&json!({
            "schema": JSON_SCHEMA,
            "dry_run": dry_run,
            "upgraded": upgraded,
            "up_to_date": up_to_date,
            "pinned": pinned,
            "held_back": held_back,
            "failed": failed,
            "moved": moved
                .iter()
                .map(|m| json!({
                    "name": m.name,
                    "from": m.from.as_ref().map(crate::version::show),
                    "to": crate::version::show(&m.to),
                }))
                .collect::<Vec<_>>(),
        }))?;
    } else if upgraded.is_empty() && failed.is_empty() {
        if held_back.is_empty() {
            ctx.reporter.status("Up to date", "nothing to upgrade");
        } else {
            ctx.reporter.status(
                "Finished",
                &format!("nothing upgraded; held back: {held_versions}"),
            );
        }
    }
    if !moved.is_empty() {
        let mut also = Vec::new();
        if !held_back.is_empty() {
            also.push(format!("held back: {held_versions}"));
        }
        if !failed.is_empty() {
            also.push(format!("failed: {}", names_of(&failed).join(", ")));
        }
        let also = if also.is_empty() {
            String::new()
        } else {
            format!("; {}", also.join("; "))
        };
        ctx.reporter.status(
            "Finished",
            &format!(
                "upgraded {} in {:.1}s{also}",
                moved
                    .iter()
                    .map(Moved::change)
                    .collect::<Vec<_>>()
                    .join(", "),
                started.elapsed().as_secs_f64()
            ),
        );
        super::install::caveat_path(ctx);
    }
    if !failed.is_empty() {
        let names = names_of(&failed);
        bail!(
            "{} package(s) failed to upgrade: {}; their previous versions are still linked",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// A keg ready to be switched to: poured by this run, or found in the Cellar.
struct Ready<'s> {
    step: &'s Step,
    /// The version in use before.
    previous: Option<Version>,
    bins: Vec<String>,
    link: Vec<String>,
    /// Poured by this run (taken back out if the upgrade fails).
    fresh: bool,
    files: usize,
    bytes: u64,
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
    let (target, plan, hold) = match choose(ctx, name, &current, &formula)? {
        Choice::UpToDate => return Ok(Outcome::UpToDate(current)),
        Choice::Held(hold) => {
            return Ok(Outcome::Held {
                version: current,
                hold,
            });
        }
        Choice::Upgrade { to, plan, hold } => (to, plan, hold),
    };
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
                .map_or("not installed".to_owned(), |v| crate::version::show(&v));
            println!(
                "upgrade {} {from} -> {}",
                step.formula.name,
                crate::version::Shown(&step.version)
            );
        }
        return Ok(Outcome::Upgraded {
            from: current,
            to: target,
            hold,
            moved: Vec::new(),
        });
    }
    ctx.reporter.status(
        "Upgrading",
        &format!(
            "{name} {} -> {}",
            crate::version::Shown(&current),
            crate::version::Shown(&target)
        ),
    );
    let on_request = ctx
        .cellar
        .kegs()
        .iter()
        .find(|k| k.name == name && k.version == current)
        .is_none_or(|k| k.receipt.installed_on_request);
    let resolved: BTreeMap<String, String> = plan
        .steps
        .iter()
        .map(|s| (s.formula.name.clone(), crate::version::show(&s.version)))
        .collect();

    // 1. Pour every new keg; on failure take them all back out: nothing was switched yet.
    let pourer = match pourer {
        Some(p) => &*p,
        None => &*pourer.insert(ctx.pourer()?),
    };
    let mut poured: Vec<Ready> = Vec::new();
    let take_back = |poured: &[Ready]| {
        for r in poured.iter().filter(|r| r.fresh) {
            let _ = ctx.cellar.remove(&r.step.formula.name, &r.step.version);
        }
    };
    for step in &todo {
        let previous = ctx.current(&step.formula.name);
        let keg = ctx.cellar.keg(&step.formula.name, &step.version);
        if ctx.cellar.is_installed(&step.formula.name, &step.version) {
            let receipt = Receipt::read(&keg)?;
            poured.push(Ready {
                step,
                previous,
                bytes: keg_bytes(&keg, &receipt.files),
                files: receipt.files.len(),
                bins: receipt.bin,
                link: receipt.link,
                fresh: false,
            });
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
            Ok(p) => poured.push(Ready {
                step,
                previous,
                bins: p.bins,
                link: p.link,
                fresh: true,
                files: p.files,
                bytes: p.stats.bytes,
            }),
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
    for r in &poured {
        let pname = r.step.formula.name.as_str();
        if ctx.records.has(Mark::Unlinked, pname) {
            continue;
        }
        if let Err(e) = link::link(
            prefix,
            pname,
            &crate::version::show(&r.step.version),
            &r.bins,
            &r.link,
            false,
        ) {
            for (sname, prev) in switched.iter().rev() {
                relink(ctx, sname, prev.as_ref());
            }
            take_back(&poured);
            return Err(e).context(format!("linking {pname} {} failed", r.step.version));
        }
        switched.push((pname, r.previous.clone()));
    }

    // 3. The old kegs go, unless asked to keep them.
    let mut moved = Vec::new();
    for r in poured {
        let (pname, version) = (&r.step.formula.name, &r.step.version);
        if let Some(prev) = &r.previous
            && !keep_old
            && prev != version
        {
            ctx.cellar.remove(pname, prev)?;
        }
        let size = format!(
            "({}, {})",
            super::count(r.files, "file"),
            human_bytes(r.bytes)
        );
        match &r.previous {
            Some(prev) => ctx.reporter.status(
                "Upgraded",
                &format!(
                    "{pname} {} -> {} {size}",
                    crate::version::Shown(prev),
                    crate::version::Shown(version)
                ),
            ),
            None => ctx.reporter.status(
                "Installed",
                &format!(
                    "{pname} {} {size} (a new dependency)",
                    crate::version::Shown(version)
                ),
            ),
        }
        moved.push(Moved {
            name: pname.clone(),
            from: r.previous,
            to: version.clone(),
        });
    }
    Ok(Outcome::Upgraded {
        from: current,
        to: target,
        hold,
        moved,
    })
}

/// Bytes in the regular files a receipt lists (for a keg this run did not pour).
fn keg_bytes(keg: &std::path::Path, files: &[String]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(keg.join(f)).ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
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
                &crate::version::show(&keg.version),
                &keg.receipt.bin,
                &keg.receipt.link,
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
    struct Row {
        name: String,
        current: Version,
        newest: Version,
        pinned: bool,
        /// What `pkg upgrade` would move it to; `None` when pinned or everything newer is held.
        allowed: Option<Version>,
        hold: Option<Hold>,
    }
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
        let Some(newest) = formula.newest().filter(|n| **n > current).cloned() else {
            continue;
        };
        let pinned = ctx.records.has(Mark::Pinned, name);
        let (allowed, hold) = if pinned {
            (None, None)
        } else {
            match choose(ctx, name, &current, &formula) {
                Ok(Choice::Upgrade { to, hold, .. }) => (Some(to), hold),
                Ok(Choice::Held(hold)) => (None, Some(hold)),
                Ok(Choice::UpToDate) => (None, None),
                Err(e) if !named => {
                    ctx.reporter.warn(&format!("{name}: {e:#}"));
                    (None, None)
                }
                Err(e) => return Err(e),
            }
        };
        rows.push(Row {
            name: name.clone(),
            current,
            newest,
            pinned,
            allowed,
            hold,
        });
    }
    if args.json {
        print_json(&json!({
            "schema": JSON_SCHEMA,
            "outdated": rows.iter().map(|r| json!({
                "name": r.name,
                "installed": crate::version::show(&r.current),
                "latest": crate::version::show(&r.newest),
                "pinned": r.pinned,
                "allowed": r.allowed.as_ref().map(crate::version::show),
                "held_back": r.hold.as_ref().map(|h| json!({"by": h.by, "reason": h.reason})),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for r in &rows {
            let (name, current) = (&r.name, crate::version::Shown(&r.current));
            let newest = crate::version::Shown(&r.newest);
            let line = match (&r.allowed, &r.hold) {
                _ if r.pinned => format!("{name} ({current}) < {newest} [pinned]"),
                (Some(to), Some(h)) => {
                    format!(
                        "{name} ({current}) < {} [{} held back by {}]",
                        crate::version::Shown(to),
                        crate::version::Shown(&h.version),
                        h.by
                    )
                }
                (None, Some(h)) => {
                    format!("{name} ({current}) < {newest} [held back by {}]", h.by)
                }
                (_, None) => format!("{name} ({current}) < {newest}"),
            };
            println!("{line}");
        }
    }
    if named && !rows.is_empty() {
        return Err(SilentExit(1).into());
    }
    Ok(())
}
