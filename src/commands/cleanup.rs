//! `pkg cleanup` and `pkg autoremove`: old kegs, dependencies nothing needs, cache blobs no keg
//! references, and downloads a dead run left behind.

use std::collections::BTreeSet;
use std::path::Path;

use semver::Version;

use crate::cellar::Cellar;
use crate::cli::CleanupArgs;
use crate::lock;
use crate::store::Store;

use super::{Ctx, count, human_bytes};

pub fn cleanup(ctx: &Ctx, args: &CleanupArgs) -> anyhow::Result<()> {
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock()?)
    };
    let mut freed = 0u64;
    let mut removed: BTreeSet<(String, Version)> = BTreeSet::new();

    if !args.cache_only {
        // 1. Kegs other than the one in use and the newest of each package.
        let superseded = crate::plan::removal::superseded(&ctx.state());
        for (name, newest, keep) in &superseded.kept {
            let (newest, keep) = (crate::version::Shown(newest), crate::version::Shown(keep));
            ctx.reporter.status(
                "Keeping",
                &format!("{name} {newest} (newer than the linked {keep}; `pkg uninstall {name}@{newest}` removes it)"),
            );
        }
        freed += remove_kegs(ctx, &superseded.remove, args.dry_run)?;
        removed.extend(superseded.remove);

        // 2. Dependencies nothing installed on request needs.
        let unneeded = crate::plan::removal::unneeded(&ctx.state(), &removed);
        freed += remove_kegs(ctx, &unneeded, args.dry_run)?;
        removed.extend(unneeded);
    }
    let kegs = removed.len();
    let blobs = if args.kegs_only {
        0
    } else {
        clean_cache(ctx, args, &removed, &mut freed)?
    };

    let verb = if args.dry_run { "Would free" } else { "Freed" };
    ctx.reporter.status(
        verb,
        &format!(
            "{} ({}, {})",
            human_bytes(freed),
            count(kegs, "keg"),
            count(blobs, "cached blob")
        ),
    );
    Ok(())
}

/// The shared cache: blobs that neither this prefix (once `removed` is gone) nor any other
/// prefix registered in the cache references, and downloads left by runs that died. Returns
/// how many blobs go.
/// Long: what stays is gathered from every prefix registered in the cache while its lock is held,
/// then blobs, signatures, partial downloads and unpacked trees go in one pass, counted for one
/// report.
fn clean_cache(
    ctx: &Ctx,
    args: &CleanupArgs,
    removed: &BTreeSet<(String, Version)>,
    freed: &mut u64,
) -> anyhow::Result<usize> {
    let store = Store::open(&ctx.settings.cache)?;
    // No run adds blobs while they are counted and removed.
    let _cache = lock::cache(&ctx.settings.cache, true, ctx.wait, ctx.reporter)?;
    let prefix = std::path::absolute(&ctx.settings.prefix)?;
    if ctx.cellar.root().is_dir() {
        store.register(&prefix)?;
    }
    let mut referenced = crate::plan::removal::referenced_blobs(&ctx.state(), removed);
    let mut others = Vec::new();
    for r in store.registrations() {
        if r.prefix == prefix {
            continue;
        }
        if r.is_stale() {
            if !args.dry_run {
                store.unregister(&r)?;
            }
            ctx.reporter.status(
                if args.dry_run {
                    "Would forget"
                } else {
                    "Forgot"
                },
                &format!("the prefix {} (it is gone)", r.prefix.display()),
            );
            continue;
        }
        let theirs = crate::plan::removal::blobs_of(&Cellar::new(&r.prefix));
        let only_theirs = theirs
            .iter()
            .filter(|d| !referenced.contains(*d) && store.cached(d).is_some())
            .count();
        referenced.extend(theirs);
        others.push((r.prefix, only_theirs));
    }
    // The signatures kept for referenced manifests stay with them (offline re-verification).
    let signatures = store.keep_signatures(&referenced, args.dry_run);
    referenced.extend(signatures);
    // Cache blobs no remaining keg references (and, with --prune, old referenced ones).
    let mut blobs = 0;
    for (path, size) in store.unreferenced(&referenced, args.prune) {
        *freed += size;
        blobs += 1;
        remove_blob(ctx, &store, &path, size, args.dry_run)?;
    }
    // Unpacked trees (warm installs) go with their layers, or unused for --prune DAYS.
    let unpacked = store.unpacked();
    let now = std::time::SystemTime::now();
    for (entry, layers, used) in unpacked.entries() {
        let unused_days = now.duration_since(used).map_or(0, |d| d.as_secs() / 86_400);
        if layers.iter().all(|l| referenced.contains(l))
            && args.prune.is_none_or(|days| unused_days < days)
        {
            continue;
        }
        let size = crate::store::tree_copy::tree_size(&entry);
        *freed += size;
        if args.dry_run {
            println!("would remove {} ({})", entry.display(), human_bytes(size));
            continue;
        }
        unpacked.remove(&entry)?;
        ctx.reporter.status(
            "Removed",
            &format!("{} ({})", entry.display(), human_bytes(size)),
        );
    }
    for (other, only_theirs) in others.iter().filter(|(_, n)| *n > 0) {
        ctx.reporter.status(
            "Keeping",
            &format!(
                "{} that {} uses (it shares this cache)",
                count(*only_theirs, "cached blob"),
                other.display()
            ),
        );
    }
    // Downloads left behind by runs that died (a live run holds the lock of its files, so
    // those are left alone however old they are).
    for (path, size) in store.sweep(args.dry_run) {
        *freed += size;
        if args.dry_run {
            println!("would remove {} ({})", path.display(), human_bytes(size));
        } else {
            ctx.reporter.status(
                "Removed",
                &format!("{} ({})", path.display(), human_bytes(size)),
            );
        }
    }
    Ok(blobs)
}

pub fn autoremove(ctx: &Ctx, dry_run: bool) -> anyhow::Result<()> {
    let _lock = if dry_run { None } else { Some(ctx.lock()?) };
    let unneeded = crate::plan::removal::unneeded(&ctx.state(), &BTreeSet::new());
    let freed = remove_kegs(ctx, &unneeded, dry_run)?;
    let verb = if dry_run { "Would free" } else { "Freed" };
    ctx.reporter.status(
        verb,
        &format!(
            "{} ({} dependencies no longer needed)",
            human_bytes(freed),
            unneeded.len()
        ),
    );
    Ok(())
}

/// Housekeeping's kegs: listed with their sizes on a dry run, else removed by `apply::remove`.
/// Returns the bytes they hold.
fn remove_kegs(ctx: &Ctx, kegs: &[(String, Version)], dry_run: bool) -> anyhow::Result<u64> {
    if !dry_run {
        let removal = crate::plan::removal::housekeeping(kegs);
        return Ok(crate::apply::remove::remove(&ctx.target(false), &removal)?);
    }
    let mut size = 0;
    for (name, version) in kegs {
        let keg = ctx.cellar.size(name, version);
        let path = ctx.cellar.keg(name, version);
        println!("would remove {} ({})", path.display(), human_bytes(keg));
        size += keg;
    }
    Ok(size)
}

fn remove_blob(
    ctx: &Ctx,
    store: &Store,
    path: &Path,
    size: u64,
    dry_run: bool,
) -> anyhow::Result<()> {
    if dry_run {
        println!("would remove {} ({})", path.display(), human_bytes(size));
        return Ok(());
    }
    store.remove_blob(path)?;
    ctx.reporter.status(
        "Removed",
        &format!("{} ({})", path.display(), human_bytes(size)),
    );
    Ok(())
}
