//! `pkg bundle`: lock a Pkgfile, install exactly its lock, check, dump and clean up.

use std::io::Write as _;

use anyhow::Context as _;

use crate::bundle::{self, BundleError, Lock, Pkgfile};
use crate::cli::BundleCommand;
use crate::platform::Platform;
use crate::tap::{Taps, api};

use super::outcome::{Run, Verb};
use super::{BadInput, Ctx, SilentExit};

pub fn run(ctx: &Ctx, command: &BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Lock { file, platform } => {
            let pkgfile = Pkgfile::read(&file.file)?;
            let mut platforms = vec![Platform::host()];
            for p in platform {
                let p = crate::bottle::parse_platform(p)
                    .map_err(|e| BadInput(format!("--platform {p}: {e}")))?;
                if !platforms.contains(&p) {
                    platforms.push(p);
                }
            }
            let _lock = ctx.lock()?;
            let lock = lock_now(ctx, &pkgfile, &platforms)?;
            Ok(lock.write(&pkgfile.lock_path())?)
        }
        BundleCommand::Install {
            file,
            locked,
            frozen,
            overwrite,
        } => install(ctx, &file.file, *locked, *frozen, *overwrite),
        BundleCommand::Check { file } => check(ctx, &file.file),
        BundleCommand::Dump => dump(ctx),
        BundleCommand::Cleanup { file, force } => cleanup(ctx, &file.file, *force),
    }
}

/// Adds the Pkgfile's taps that are missing, then locks with the formulae they give.
fn lock_now(ctx: &Ctx, pkgfile: &Pkgfile, platforms: &[Platform]) -> anyhow::Result<Lock> {
    ensure_taps(ctx, &pkgfile.taps)?;
    let formulary = crate::tap::formulary(ctx.settings);
    let pourer = ctx.pourer()?;
    let lock = bundle::lock(
        pkgfile,
        &formulary,
        &pourer,
        platforms,
        &ctx.settings.prefix,
    )?;
    ctx.reporter.status(
        "Locked",
        &format!(
            "{} for {} → {}",
            crate::report::count(lock.packages.len(), "package"),
            lock.platforms.join(", "),
            pkgfile.lock_path().display()
        ),
    );
    Ok(lock)
}

/// Taps a Pkgfile names that this prefix does not have yet (`api` for a formula API tap);
/// returns the names of those it added.
fn ensure_taps(
    ctx: &Ctx,
    taps: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<String>> {
    let mut added = Vec::new();
    let have = Taps::new(&ctx.settings.prefix);
    let known: Vec<String> = have.list().into_iter().map(|t| t.name).collect();
    for (name, source) in taps.iter().filter(|(n, _)| !known.contains(n)) {
        if let Some(url) = source
            .strip_prefix("api:")
            .or((source == "api").then_some(api::DEFAULT_URL))
        {
            have.add_api(
                name,
                url,
                &ctx.client(),
                ctx.cellar.root(),
                &Platform::host(),
                crate::store::Store::open(&ctx.settings.cache).ok().as_ref(),
            )?;
        } else {
            have.add(name, source)?;
        }
        ctx.reporter
            .status("Tapped", &format!("{name} from {source}"));
        added.push(name.clone());
    }
    Ok(added)
}

fn install(
    ctx: &Ctx,
    path: &std::path::Path,
    locked: bool,
    frozen: bool,
    overwrite: bool,
) -> anyhow::Result<()> {
    let host = Platform::host();
    let lock_path = bundle::lock_path_for(path);
    let prefix_lock = ctx.lock()?;
    let (lock, pkgfile) = if frozen {
        let known: Vec<String> = Taps::new(&ctx.settings.prefix)
            .list()
            .into_iter()
            .map(|t| t.name)
            .collect();
        (bundle::frozen_lock(path, &lock_path, &known)?, None)
    } else {
        let pkgfile = Pkgfile::read(path)?;
        let lock = settled_lock(ctx, &pkgfile, &lock_path, locked, &host)?;
        (lock, Some(pkgfile))
    };
    let added = ensure_taps(ctx, &lock.taps)?;
    let formulae = crate::tap::formulary(ctx.settings);
    bundle::check_lock(&lock, &lock_path, &formulae)?;
    let formulary = bundle::pinned_formulary(&lock, &formulae);
    let (requests, elsewhere) = bundle::requests_for(&lock, &host.to_string())?;
    say_kept_elsewhere(ctx, pkgfile.as_ref(), &elsewhere, &host);
    let unlinked = mark_links(ctx, pkgfile.as_ref(), &host)?;
    let mut state =
        crate::plan::State::new(&ctx.cellar, &formulary, &ctx.records, &ctx.settings.prefix);
    let mut plan = crate::plan::install(&mut state, &requests, false)?;
    plan.keep_unlinked(&unlinked);
    // What is remembered for later upgrades is what the Pkgfile asks for, not the lock's pin.
    for (name, asked) in &mut plan.requests {
        *asked = bundle::remembered_request(&lock, name);
    }
    for name in &unlinked {
        // Remembered as `pkg unlink` is: upgrades leave it unlinked too.
        ctx.records
            .set(crate::records::Mark::Unlinked, name, true)
            .with_context(|| format!("remembering that {name} stays unlinked"))?;
    }
    let run = Run {
        overwrite,
        ..Run::new(Verb::Install)
    };
    if let Err(e) = super::outcome::carry_out(ctx, &plan, run) {
        // What this run did write before the failure is said, not left to "nothing".
        let mut wrote = vec![format!("{} is as locked", lock_path.display())];
        wrote.extend(added.iter().map(|t| format!("tap {t} was added")));
        return Err(e.context(format!(
            "bundle install did not finish ({}; the packages that failed left nothing behind)",
            wrote.join(", ")
        )));
    }
    // The platforms each package is kept to, for `bundle dump` to write back.
    for w in pkgfile.iter().flat_map(|p| p.for_platform(&host)) {
        ctx.records
            .set_platforms(w.plain_name(), w.platforms.as_deref())
            .with_context(|| format!("remembering the platforms of {}", w.plain_name()))?;
    }
    drop(prefix_lock);
    // A package linked before the Pkgfile said `link = false` is unlinked now.
    for name in &unlinked {
        if crate::link::linked_version(&ctx.settings.prefix, name).is_some() {
            super::link::unlink(ctx, std::slice::from_ref(name))?;
        }
    }
    ctx.reporter.status(
        "Bundled",
        &format!(
            "{} from {}",
            crate::report::count(requests.len(), "package"),
            lock_path.display()
        ),
    );
    Ok(())
}

/// Links as the Pkgfile says: a package it links (the default) is linked, though it was kept
/// unlinked before. Returns those with `link = false`: installed, never linked.
fn mark_links(
    ctx: &Ctx,
    pkgfile: Option<&Pkgfile>,
    host: &Platform,
) -> anyhow::Result<Vec<String>> {
    let Some(pkgfile) = pkgfile else {
        return Ok(Vec::new());
    };
    let unlinked = pkgfile.kept_unlinked();
    for w in pkgfile.for_platform(host).filter(|w| w.link) {
        ctx.records
            .set(crate::records::Mark::Unlinked, w.plain_name(), false)
            .with_context(|| format!("letting {} be linked", w.plain_name()))?;
    }
    Ok(unlinked)
}

/// The lock `bundle install` installs: the one at `lock_path` while it matches the Pkgfile;
/// else written again for this platform and those it held (refused with `--locked`); and
/// written when there is none (unless `--locked`).
fn settled_lock(
    ctx: &Ctx,
    pkgfile: &Pkgfile,
    lock_path: &std::path::Path,
    locked: bool,
    host: &Platform,
) -> anyhow::Result<Lock> {
    let lock = match Lock::read(lock_path) {
        Ok(lock) => match lock.mismatch(pkgfile, &host.to_string()) {
            None => return Ok(lock),
            Some(what) if locked => {
                return Err(BundleError::Stale {
                    pkgfile: pkgfile.path.clone(),
                    lock: lock_path.to_owned(),
                    what,
                }
                .into());
            }
            Some(what) => {
                ctx.reporter.status("Relocking", &format!("({what})"));
                let mut platforms = vec![host.clone()];
                platforms.extend(
                    lock.platforms
                        .iter()
                        .filter_map(|p| crate::bottle::parse_platform(p).ok())
                        .filter(|p| p != host),
                );
                lock_now(ctx, pkgfile, &platforms)?
            }
        },
        Err(BundleError::NoLock { .. }) if !locked => {
            lock_now(ctx, pkgfile, std::slice::from_ref(host))?
        }
        Err(e) => return Err(e.into()),
    };
    lock.write(lock_path)?;
    Ok(lock)
}

/// Packages kept to other platforms are named, not skipped in silence: by the Pkgfile's
/// `platforms` (they are not in the lock), or locked only for other platforms.
fn say_kept_elsewhere(
    ctx: &Ctx,
    pkgfile: Option<&Pkgfile>,
    elsewhere: &[&bundle::Locked],
    host: &Platform,
) {
    if let Some(pkgfile) = pkgfile {
        let meant: Vec<&str> = pkgfile.for_platform(host).map(|w| w.plain_name()).collect();
        for w in (pkgfile.packages.iter()).filter(|w| !meant.contains(&w.plain_name())) {
            ctx.reporter.status(
                "Skipping",
                &format!(
                    "{} (the Pkgfile keeps it to {}; this is {host})",
                    w.plain_name(),
                    w.platforms.as_deref().unwrap_or_default().join(", ")
                ),
            );
        }
    }
    for p in elsewhere {
        let theirs: Vec<&str> = p.platforms.iter().map(|pl| pl.platform.as_str()).collect();
        ctx.reporter.status(
            "Skipping",
            &format!(
                "{} {} (locked for {}, not for this {host})",
                p.name,
                p.version,
                theirs.join(", ")
            ),
        );
    }
}

fn lock_of(path: &std::path::Path) -> anyhow::Result<Lock> {
    Ok(Lock::read(&bundle::lock_path_for(path))?)
}

fn check(ctx: &Ctx, path: &std::path::Path) -> anyhow::Result<()> {
    let lock = lock_of(path)?;
    bundle::check_lock(&lock, &bundle::lock_path_for(path), &ctx.formulary)?;
    let here = Platform::host().to_string();
    // The Pkgfile is the truth: a lock it no longer matches is not satisfied, whatever is
    // installed.
    let pkgfile = Pkgfile::read(path)?;
    if let Some(what) = lock.mismatch(&pkgfile, &here) {
        ctx.reporter.warn(&format!(
            "{} changed since it was locked ({what}); `pkg bundle install` locks and installs it",
            path.display()
        ));
        return Err(SilentExit(1).into());
    }
    let mut missing = Vec::new();
    for p in lock
        .packages
        .iter()
        .filter(|p| p.platforms.iter().any(|pl| pl.platform == here))
    {
        let ok = crate::version::parse_brew(&p.version)
            .ok()
            .map(|v| ctx.cellar.keg(&p.name, &v))
            .and_then(|keg| crate::cellar::receipt::Receipt::read(&keg).ok())
            .is_some_and(|r| r.manifest_digest == p.digest);
        if !ok {
            missing.push(format!("{} {}", p.name, p.version));
        }
    }
    if missing.is_empty() {
        ctx.reporter.status(
            "Satisfied",
            &format!("every package of {} is installed", path.display()),
        );
        return Ok(());
    }
    ctx.reporter.warn(&format!(
        "not installed as locked: {}; `pkg bundle install` installs them",
        missing.join(", ")
    ));
    Err(SilentExit(1).into())
}

fn dump(ctx: &Ctx) -> anyhow::Result<()> {
    let mut out = String::from("[packages]\n");
    for p in ctx.inventory().list().packages {
        if !p.installed_on_request {
            continue;
        }
        let req = ctx
            .records
            .request_spelled(&p.name)
            .unwrap_or_else(|| "*".to_owned());
        // Kept unlinked (a Pkgfile's `link = false`, or `pkg unlink`) or to some platforms (as
        // the Pkgfile that installed it said): said, so a Pkgfile made from this prefix installs
        // it the same way.
        let mut fields = Vec::new();
        if p.unlinked {
            fields.push("link = false".to_owned());
        }
        if let Some(platforms) = ctx.records.platforms(&p.name) {
            let listed: Vec<String> = platforms.iter().map(|p| toml_string(p)).collect();
            fields.push(format!("platforms = [{}]", listed.join(", ")));
        }
        let value = if fields.is_empty() {
            toml_string(&req)
        } else {
            format!(
                "{{ version = {}, {} }}",
                toml_string(&req),
                fields.join(", ")
            )
        };
        out.push_str(&format!("{} = {value}\n", toml_key(&p.name)));
    }
    let taps = Taps::new(&ctx.settings.prefix).list();
    if !taps.is_empty() {
        out.push_str("\n[taps]\n");
        for t in taps {
            if let Some(s) = t.source() {
                out.push_str(&format!("{} = {}\n", toml_key(&t.name), toml_string(&s)));
            }
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn toml_key(k: &str) -> String {
    if k.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_owned()
    } else {
        toml_string(k)
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn cleanup(ctx: &Ctx, path: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let pkgfile = Pkgfile::read(path)?;
    let named: Vec<&str> = pkgfile.packages.iter().map(|w| w.plain_name()).collect();
    let extra: Vec<String> = ctx
        .inventory()
        .list()
        .packages
        .into_iter()
        .filter(|p| p.installed_on_request && !named.contains(&p.name.as_str()))
        .map(|p| p.name)
        .collect();
    if extra.is_empty() {
        ctx.reporter.status(
            "Clean",
            &format!("everything installed on request is in {}", path.display()),
        );
        return Ok(());
    }
    if !force {
        let mut out = std::io::stdout().lock();
        for name in &extra {
            writeln!(out, "{name}")?;
        }
        ctx.reporter.warn(&format!(
            "{} not in {}; `pkg bundle cleanup --force` uninstalls {}",
            crate::report::count(extra.len(), "package"),
            path.display(),
            if extra.len() == 1 { "it" } else { "them" }
        ));
        return Ok(());
    }
    {
        let _lock = ctx.lock()?;
        let requests: Vec<_> = extra.into_iter().map(|name| (name, None)).collect();
        let removal = crate::plan::removal::uninstall(&ctx.state(), &requests, false, false)
            .context("bundle cleanup")?;
        super::uninstall::remove(ctx, &removal).context("bundle cleanup")?;
    }
    super::cleanup::autoremove(ctx, false)
}
