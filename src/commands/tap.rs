//! `pkg tap add|list|remove` and `pkg update`: formula directories by name, local, from git,
//! or written from a formula JSON API.

use std::io::Write as _;

use crate::cli::TapCommand;
use crate::platform::Platform;
use crate::tap::{Refreshed, Taps, Updated, api};

use super::{Ctx, SilentExit};

/// Where a new tap's formulae come from.
enum From<'a> {
    /// A formula JSON API document's URL.
    Api(&'a str),
    /// A directory or a git URL.
    Source(&'a str),
}

/// `3 formulae (2 left out: openssh: version `9.9p1` …, …)`.
fn api_summary(r: &Refreshed) -> String {
    let mut out = crate::report::count(r.meta.formulae, "formula");
    if !r.meta.skipped.is_empty() {
        let shown: Vec<String> = r
            .meta
            .skipped
            .iter()
            .take(3)
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        let more = r.meta.skipped.len().saturating_sub(shown.len());
        out.push_str(&format!(
            "; {} left out: {}{}",
            r.meta.skipped.len(),
            shown.join("; "),
            if more > 0 {
                format!("; … and {more} more (listed in api.toml)")
            } else {
                String::new()
            }
        ));
    }
    out
}

/// `pkg tap list --json`.
#[derive(serde::Serialize)]
struct TapList {
    schema: u32,
    taps: Vec<crate::tap::Tap>,
}

/// Long: one arm per `pkg tap` subcommand (list, add, remove).
pub fn tap(ctx: &Ctx, command: &TapCommand) -> anyhow::Result<()> {
    let taps = Taps::new(&ctx.settings.prefix);
    match command {
        TapCommand::Add { name, source, api } => {
            let from = match (source, api) {
                (_, Some(url)) => From::Api(url),
                (None, None) if name == "homebrew/core" => From::Api(api::DEFAULT_URL),
                (None, None) => {
                    ctx.reporter.error(&format!(
                        "`pkg tap add {name}` needs where the formulae are: a directory, a git URL, or --api URL"
                    ));
                    return Err(SilentExit(2).into());
                }
                (Some(source), None) => From::Source(source),
            };
            let _lock = ctx.lock()?;
            match from {
                From::Api(url) => {
                    let (tap, refreshed) = taps.add_api(
                        name,
                        url,
                        &ctx.client(),
                        ctx.cellar.root(),
                        &Platform::host(),
                        crate::store::Store::open(&ctx.settings.cache).ok().as_ref(),
                    )?;
                    ctx.reporter.status(
                        "Tapped",
                        &format!("{} (api, {}) from {url}", tap.name, api_summary(&refreshed)),
                    );
                }
                From::Source(source) => {
                    let tap = taps.add(name, source)?;
                    // A tap whose formulae do not parse would fail every later search: refused.
                    let broken = crate::tap::broken_formulae(&tap.path);
                    if !broken.is_empty() {
                        taps.remove(name)?;
                        let shown: Vec<&String> = broken.iter().take(5).collect();
                        return Err(super::BadInput(format!(
                            "{source} holds {} that pkg cannot read, so it was not tapped: {}{}; fix them and add it again",
                            crate::report::count(broken.len(), "formula"),
                            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "),
                            if broken.len() > shown.len() { "; …" } else { "" }
                        ))
                        .into());
                    }
                    let count =
                        crate::report::count(crate::tap::formula_count(&tap.path), "formula");
                    ctx.reporter.status(
                        "Tapped",
                        &format!("{name} ({}, {count}) from {source}", tap.kind),
                    );
                }
            }
        }
        TapCommand::List { json: true } => {
            super::print_json(&TapList {
                schema: super::JSON_SCHEMA,
                taps: taps.list(),
            })?;
        }
        TapCommand::List { json: false } => {
            let mut out = std::io::stdout().lock();
            for t in taps.list() {
                writeln!(out, "{}\t{}\t{}", t.name, t.kind, t.path.display())?;
            }
        }
        TapCommand::Remove { name } => {
            let _lock = ctx.lock()?;
            // Installed packages whose formula this tap gave: they stay, but nothing upgrades them.
            let from_tap: Vec<String> = ctx
                .cellar
                .names()
                .into_iter()
                .filter(|n| {
                    ctx.formulary
                        .load(n)
                        .is_ok_and(|f| taps.provides(name, &f.origin))
                })
                .collect();
            taps.remove(name)?;
            ctx.reporter.status("Untapped", name);
            if !from_tap.is_empty() {
                ctx.reporter.warn(&format!(
                    "installed from {name}, now without a formula: {}; they stay installed but are not upgraded (`pkg tap add {name} …` again, or `pkg uninstall` them)",
                    from_tap.join(", ")
                ));
            }
        }
    }
    Ok(())
}

pub fn update(ctx: &Ctx) -> anyhow::Result<()> {
    if ctx.settings.network.offline {
        return Err(super::BadInput(
            "pkg update fetches the taps, which --offline (PKG_OFFLINE) forbids; run it online"
                .into(),
        )
        .into());
    }
    let _lock = ctx.lock()?;
    let taps = Taps::new(&ctx.settings.prefix);
    let mut failed = 0;
    let client = ctx.client();
    let host = Platform::host();
    // The newest version each installed package has, to say afterwards what got newer.
    let newest = || -> Vec<(String, Option<semver::Version>)> {
        ctx.cellar
            .names()
            .into_iter()
            .map(|n| {
                let v = ctx
                    .formulary
                    .load(&n)
                    .ok()
                    .and_then(|f| f.newest().cloned());
                (n, v)
            })
            .collect()
    };
    let before = newest();
    let store = crate::store::Store::open(&ctx.settings.cache).ok();
    for t in taps.list() {
        match taps.update(&t, &client, ctx.cellar.root(), &host, store.as_ref()) {
            Ok(Updated::Pulled { changed: true }) => ctx.reporter.status("Updated", &t.name),
            Ok(Updated::Pulled { changed: false }) => ctx
                .reporter
                .status("Unchanged", &format!("{} (no new commits)", t.name)),
            Ok(Updated::Api(r)) if r.changed => ctx
                .reporter
                .status("Updated", &format!("{} ({})", t.name, api_summary(&r))),
            Ok(Updated::Api(_)) => ctx.reporter.status(
                "Unchanged",
                &format!("{} (the formula API has not changed)", t.name),
            ),
            Ok(Updated::Local) => ctx
                .reporter
                .status("Skipping", &format!("{} (a local directory)", t.name)),
            Err(e) => {
                failed += 1;
                ctx.reporter.error(&e.to_string());
            }
        }
    }
    for ((name, was), (_, now)) in before.iter().zip(newest()) {
        if let Some(now) = now.filter(|n| Some(n) != was.as_ref())
            && ctx.state().in_use(name).is_none_or(|v| v < now)
        {
            ctx.reporter.status(
                "New",
                &format!(
                    "{name} {} (installed {}); `pkg upgrade {name}`",
                    crate::version::Shown(&now),
                    ctx.state()
                        .in_use(name)
                        .map_or("none".into(), |v| crate::version::show(&v))
                ),
            );
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} tap(s) could not be updated");
    }
    Ok(())
}
