//! `pkg install`: the planner's install plan, printed (`--dry-run`) or carried out — kegs
//! poured several at once, then linked in dependency order; a package that fails leaves
//! nothing of itself behind and does not stop the others. `pkg reinstall`: the same road for
//! the versions in use.

use crate::cli::{InstallArgs, ReinstallArgs};
use crate::resolve::Request;

use super::Ctx;
use super::outcome::{Run, Verb};

/// Long: every argument (names, `SOURCE/NAME`, references, OCI layouts) becomes a request and, for
/// references, a recorded formula before planning; the guard putting those records back must
/// outlive the plan's run.
pub fn run(ctx: &Ctx, args: &InstallArgs) -> anyhow::Result<()> {
    if args.force {
        return Err(super::BadInput(
            "pkg install has no --force: to pour an installed package again, `pkg reinstall NAME`; to replace files in the way of its links, --overwrite".into(),
        )
        .into());
    }
    let references = args
        .packages
        .iter()
        .filter(|a| crate::references::is_reference(a))
        .count();
    if args.as_name.is_some() && (references != 1 || args.packages.len() != 1) {
        return Err(super::BadInput(
            "--as names the package of one reference: `pkg install --as NAME REGISTRY/REPO[:TAG]`"
                .into(),
        )
        .into());
    }
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock()?)
    };
    let mut requests = Vec::new();
    // `SOURCE/NAME` picks the formula source of NAME for this run (and, once installed, for
    // its upgrades: the receipt records it).
    let mut formulary = ctx.formulary.clone();
    // Formulae recorded for references: put back unless installed, however the run ends.
    let mut recorded = crate::references::Recorded::new(&ctx.settings.prefix, &ctx.cellar);
    for arg in &args.packages {
        // An OCI layout on disk: `oci:DIR[:TAG]`, or the layout's directory.
        if let Some(layout) = crate::references::layout::parse(arg)? {
            let Some((request, version, before)) = by_layout(ctx, arg, &layout, args)? else {
                continue;
            };
            recorded.push(&request.name, version, before);
            requests.push(request);
            continue;
        }
        let request = if formulary.split_qualified(arg).is_some() {
            let plain = formulary.choose(arg)?;
            Request::parse_in(&plain, &formulary)?
        } else if crate::references::is_reference(arg)
            && crate::references::parse(arg).is_err()
            && let Some((source, name)) = arg.rsplit_once('/')
            && !source.contains(['.', ':'])
            && formulary.has(name.split('@').next().unwrap_or(name))
        {
            // `SOURCE/NAME` with a source that does not exist, not a registry reference.
            return Err(crate::formula::FormulaError::UnknownSource {
                source_name: source.into(),
                name: name.into(),
                known: formulary.source_ids().join(", ").into(),
            }
            .into());
        } else if crate::references::is_reference(arg) {
            let Some((request, version, before)) = by_reference(ctx, arg, args)? else {
                continue;
            };
            recorded.push(&request.name, version, before);
            request
        } else {
            Request::parse_in(arg, &ctx.formulary)?
        };
        requests.push(request);
    }
    let mut state =
        crate::plan::State::new(&ctx.cellar, &formulary, &ctx.records, &ctx.settings.prefix);
    let result = crate::plan::install(&mut state, &requests, args.upgrade)
        .map_err(anyhow::Error::from)
        .and_then(|mut plan| {
            // A reference asks for its tag, not for the version recorded for it: nothing is
            // remembered that would hold it there when the tag moves.
            for (name, asked) in &mut plan.requests {
                if recorded.has(name) {
                    *asked = None;
                }
            }
            super::outcome::carry_out(
                ctx,
                &plan,
                Run {
                    dry_run: args.dry_run,
                    json: args.json,
                    overwrite: args.overwrite,
                    ..Run::new(Verb::Install)
                },
            )
        });
    // A reference is remembered only once its package is installed.
    recorded.finish()?;
    result
}

/// `REGISTRY/REPO[:TAG]` or `…@DIGEST`: recorded as a formula (unless a dry run), then
/// requested at exactly its version like any other package. Returns the request, the version
/// and what was recorded for the name before.
fn by_reference(
    ctx: &Ctx,
    arg: &str,
    args: &InstallArgs,
) -> anyhow::Result<Option<(Request, semver::Version, Option<String>)>> {
    let reference = crate::references::parse(arg)?;
    let name = match &args.as_name {
        Some(name) => name.clone(),
        None => reference.name_among(|| ctx.formulary.names())?,
    };
    let refs = crate::references::References::new(&ctx.settings.prefix);
    let existing = ctx.formulary.load(&name).ok();
    if args.dry_run {
        // Refused here as the run refuses it; nothing is recorded.
        let (name, version) = refs.check(arg, &name, &reference, existing)?;
        say_dry_run(ctx, &name, &version, arg);
        return Ok(None);
    }
    let before = refs.snapshot(&name);
    // A tag recorded before is asked again: what it points at now is what gets installed (the
    // version recorded for that content, or a new one), never the bytes it had back then.
    let followed = match (&reference.digest, &existing) {
        (None, Some(f))
            if f.origin
                == crate::formula::Origin::File(refs.dir().join(format!("{name}.toml")))
                && !ctx.settings.network.offline =>
        {
            match ctx
                .client()
                .fetch_manifest(&reference.repository, &reference.tag)
            {
                Ok(m) => refs.at_digest(&name, &reference, &m.digest, &ctx.cellar)?,
                Err(_) => None,
            }
        }
        _ => None,
    };
    let (name, version) = match followed {
        Some(version) => (name, version),
        None => refs.record(arg, &name, &reference, existing)?,
    };
    // `{version}` spells it whole (`10.44.0+x2`), so the request is exactly that version (not
    // remembered as one: see `run`).
    let request = Request::parse(&format!("{name}@{version}"))?;
    Ok(Some((request, version, before)))
}

/// A dry run's line for a package named by a reference or a layout: `install NAME VERSION (ARG)`,
/// or `already installed …`.
fn say_dry_run(ctx: &Ctx, name: &str, version: &semver::Version, arg: &str) {
    let state = if ctx.cellar.is_installed(name, version) {
        "already installed"
    } else {
        "install"
    };
    println!("{state} {name} {} ({arg})", crate::version::Shown(version));
}

/// An OCI layout on disk: recorded as a formula naming `oci:DIR` (unless a dry run), then
/// requested at exactly its tag's version, as a registry reference is.
fn by_layout(
    ctx: &Ctx,
    arg: &str,
    layout: &crate::references::layout::LayoutRef,
    args: &InstallArgs,
) -> anyhow::Result<Option<(Request, semver::Version, Option<String>)>> {
    let name = match &args.as_name {
        Some(name) => name.clone(),
        None => layout.name()?,
    };
    let refs = crate::references::References::new(&ctx.settings.prefix);
    let path = refs.dir().join(format!("{name}.toml"));
    if let Ok(f) = ctx.formulary.load(&name)
        && f.origin != crate::formula::Origin::File(path.clone())
    {
        return Err(crate::references::ReferencesError::Collides {
            arg: arg.to_owned(),
            name,
            origin: f.origin.to_string(),
            other: f
                .versions
                .values()
                .next()
                .map(|s| s.repository.to_string())
                .unwrap_or_default(),
        }
        .into());
    }
    let version = layout.version();
    if args.dry_run {
        say_dry_run(ctx, &name, &version, arg);
        return Ok(None);
    }
    let before = refs.snapshot(&name);
    let text = layout.formula(&name);
    crate::formula::Formula::parse(&text, crate::formula::Origin::File(path), Some(&name))?;
    refs.restore(&name, Some(&text))?;
    let request = Request::parse(&format!("{name}@{version}"))?;
    Ok(Some((request, version, before)))
}

/// `pkg reinstall NAME…`: each poured again at the version in use and put in place of its keg
/// whole (a keg that cannot be poured stays as it was).
pub fn reinstall(ctx: &Ctx, args: &ReinstallArgs) -> anyhow::Result<()> {
    let _lock = (!args.dry_run).then(|| ctx.lock()).transpose()?;
    let plan = crate::plan::reinstall(&mut ctx.state(), &args.packages)?;
    let run = Run {
        dry_run: args.dry_run,
        json: args.json,
        ..Run::new(Verb::Install)
    };
    super::outcome::carry_out(ctx, &plan, run)
}
