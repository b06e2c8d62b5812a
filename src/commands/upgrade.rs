//! `pkg upgrade` and `pkg outdated`: both read the planner's upgrade plan; upgrade prints it
//! (`--dry-run`) or carries it out and reports what it did.

use anyhow::bail;

use crate::cli::{OutdatedArgs, UpgradeArgs};
use crate::plan::Note;

use super::outcome::{Run, Verb};
use super::{Ctx, JSON_SCHEMA, SilentExit, print_json};

pub fn run(ctx: &Ctx, args: &UpgradeArgs) -> anyhow::Result<()> {
    if args.yes {
        return Err(super::BadInput(
            "pkg upgrade asks nothing, so it has no -y/--yes: run `pkg upgrade` (with --dry-run first to see the plan)".into(),
        )
        .into());
    }
    let named = !args.packages.is_empty();
    // `pkg upgrade NAME@REQ` moves what is held for NAME to REQ, then upgrades within it.
    let mut asked = Vec::new();
    let mut names = Vec::new();
    for arg in &args.packages {
        let request = crate::resolve::Request::parse_in(arg, &ctx.formulary)?;
        if let (Some(spelled), Some(requirement)) = (&request.spelled, request.range()) {
            asked.push((request.name.clone(), requirement.clone(), spelled.clone()));
        }
        names.push(request.name);
    }
    if !named {
        names = ctx.cellar.names();
    }
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock()?)
    };
    // Every name checked before any hold moves: a typo in the second changes nothing.
    for (name, _, _) in &asked {
        ctx.state().require_installed(name)?;
    }
    for (name, requirement, spelled) in &asked {
        if !args.dry_run {
            ctx.records
                .set_request(name, Some((requirement, spelled)))
                .map_err(anyhow::Error::from)?;
        }
    }
    refresh_moved_tags(ctx)?;
    // A dry run plans with the holds asked for, as the real run will (it has recorded them).
    let mut state = ctx.state();
    for (name, requirement, _) in &asked {
        state.hold(name, requirement.clone());
    }
    let plan = crate::plan::upgrade(&mut state, &names, named, args.keep_old);
    super::outcome::carry_out(
        ctx,
        &plan,
        Run {
            dry_run: args.dry_run,
            json: args.json,
            ..Run::new(Verb::Upgrade)
        },
    )
}

/// Installs by reference from a moving tag (`latest`, `main`): a tag that moved since becomes a
/// newer version of its recorded formula; from a version tag (`1.4.0`): the repository's newer
/// version tags become newer versions. The planner then sees them like any other.
fn refresh_moved_tags(ctx: &Ctx) -> anyhow::Result<()> {
    let refs = crate::references::References::new(&ctx.settings.prefix);
    if !refs.dir().is_dir() {
        return Ok(());
    }
    let mut skipped = Vec::new();
    let short = |d: &crate::digest::Digest| d.to_string().chars().take(19).collect::<String>();
    for m in refs.refresh_moved_tags(&ctx.cellar, &ctx.client(), &mut skipped)? {
        ctx.reporter.status(
            "Moved",
            &format!(
                "{} points at {}… now (was {}…): {} {}",
                m.reference,
                short(&m.to),
                short(&m.from),
                m.name,
                crate::version::Shown(&m.version)
            ),
        );
    }
    for s in skipped {
        ctx.reporter.warn(&format!(
            "could not check where a moving tag points now: {s}"
        ));
    }
    // Installs by a version tag (`tool:1.4.0`): the repository's newer version tags.
    let mut skipped = Vec::new();
    for n in refs.refresh_version_tags(&ctx.cellar, &ctx.client(), &mut skipped)? {
        ctx.reporter.status(
            "Found",
            &format!(
                "{}: {} {}",
                n.reference,
                n.name,
                crate::version::Shown(&n.version)
            ),
        );
    }
    for s in skipped {
        ctx.reporter
            .warn(&format!("could not list the tags of {s}"));
    }
    Ok(())
}

pub fn outdated(ctx: &Ctx, args: &OutdatedArgs) -> anyhow::Result<()> {
    let named = !args.packages.is_empty();
    let names = if named {
        for name in &args.packages {
            ctx.state().require_installed(name)?;
        }
        args.packages.clone()
    } else {
        ctx.cellar.names()
    };
    refresh_moved_tags(ctx)?;
    // The very plan `pkg upgrade` of the same names makes.
    let (rows, plan) = crate::plan::outdated(&mut ctx.state(), &names, named);
    for note in &plan.notes {
        match note {
            Note::Vanished { reason, .. } => ctx.reporter.warn(reason),
            Note::Failed { error, .. } if named => bail!("{error}"),
            Note::Failed { name, error } => ctx.reporter.warn(&format!("{name}: {error}")),
            _ => {}
        }
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct HeldBy {
            by: String,
            reason: String,
        }
        #[derive(serde::Serialize)]
        struct Outdated {
            name: String,
            installed: String,
            latest: String,
            pinned: bool,
            allowed: Option<String>,
            held_back: Option<HeldBy>,
        }
        #[derive(serde::Serialize)]
        struct Doc {
            schema: u32,
            outdated: Vec<Outdated>,
        }
        let doc = Doc {
            schema: JSON_SCHEMA,
            outdated: rows
                .iter()
                .map(|r| Outdated {
                    name: r.name.clone(),
                    installed: crate::version::show(&r.current),
                    latest: crate::version::show(&r.newest),
                    pinned: r.pinned,
                    allowed: r.allowed.as_ref().map(crate::version::show),
                    held_back: r.hold.as_ref().map(|h| HeldBy {
                        by: h.by.clone(),
                        reason: h.reason.clone(),
                    }),
                })
                .collect(),
        };
        print_json(&doc)?;
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
