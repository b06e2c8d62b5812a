//! `pkg cleanup` and `pkg autoremove`: old kegs, dependencies nothing needs, cache blobs no keg
//! references, and downloads a dead run left behind.

use std::collections::BTreeSet;
use std::path::Path;

use semver::Version;

use crate::cli::CleanupArgs;
use crate::link;
use crate::records::Mark;
use crate::store::Store;

use super::{Ctx, human_bytes};

pub fn cleanup(ctx: &Ctx, args: &CleanupArgs) -> anyhow::Result<()> {
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock()?)
    };
    let mut freed = 0u64;
    let mut removed: BTreeSet<(String, Version)> = BTreeSet::new();

    // 1. Kegs other than the one in use and the newest of each package.
    let superseded = crate::plan::removal::superseded(&ctx.state());
    for (name, newest, keep) in &superseded.kept {
        let (newest, keep) = (crate::version::Shown(newest), crate::version::Shown(keep));
        ctx.reporter.status(
            "Keeping",
            &format!("{name} {newest} (newer than the linked {keep}; `pkg uninstall {name}@{newest}` removes it)"),
        );
    }
    for (name, v) in superseded.remove {
        freed += remove_keg(ctx, &name, &v, args.dry_run)?;
        removed.insert((name, v));
    }

    // 2. Dependencies nothing installed on request needs.
    for (name, v) in crate::plan::removal::unneeded(&ctx.state(), &removed) {
        freed += remove_keg(ctx, &name, &v, args.dry_run)?;
        removed.insert((name, v));
    }

    // 3. Cache blobs no remaining keg references (and, with --prune, old referenced ones).
    let store = Store::open(&ctx.settings.cache)?;
    let referenced = crate::plan::removal::referenced_blobs(&ctx.state(), &removed);
    let mut blobs = 0;
    for (path, size) in store.unreferenced(&referenced, args.prune) {
        freed += size;
        blobs += 1;
        remove_file(ctx, &path, size, args.dry_run)?;
    }

    // 4. Downloads left behind by runs that died (a live run holds the lock of its files, so
    // those are left alone however old they are).
    for (path, size) in store.sweep(args.dry_run) {
        freed += size;
        if args.dry_run {
            println!("would remove {} ({})", path.display(), human_bytes(size));
        } else {
            ctx.reporter.status(
                "Removed",
                &format!("{} ({})", path.display(), human_bytes(size)),
            );
        }
    }

    let verb = if args.dry_run { "Would free" } else { "Freed" };
    ctx.reporter.status(
        verb,
        &format!(
            "{} ({} kegs, {blobs} cached blobs)",
            human_bytes(freed),
            removed.len()
        ),
    );
    Ok(())
}

pub fn autoremove(ctx: &Ctx, dry_run: bool) -> anyhow::Result<()> {
    let _lock = if dry_run { None } else { Some(ctx.lock()?) };
    let mut freed = 0;
    let unneeded = crate::plan::removal::unneeded(&ctx.state(), &BTreeSet::new());
    for (name, v) in &unneeded {
        freed += remove_keg(ctx, name, v, dry_run)?;
    }
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

fn remove_keg(ctx: &Ctx, name: &str, version: &Version, dry_run: bool) -> anyhow::Result<u64> {
    let path = ctx.cellar.keg(name, version);
    let size = ctx.cellar.size(name, version);
    if dry_run {
        println!("would remove {} ({})", path.display(), human_bytes(size));
        return Ok(size);
    }
    let prefix = &ctx.settings.prefix;
    if link::linked_version(prefix, name).as_deref() == Some(crate::version::show(version).as_str())
    {
        link::unlink(prefix, name)?;
    }
    ctx.cellar.remove(name, version)?;
    if ctx.cellar.installed_versions(name).is_empty() {
        ctx.records.set(Mark::Pinned, name, false)?;
        ctx.records.set(Mark::Unlinked, name, false)?;
    }
    ctx.reporter.status(
        "Removed",
        &format!(
            "{name} {} ({})",
            crate::version::Shown(version),
            human_bytes(size)
        ),
    );
    Ok(size)
}

fn remove_file(ctx: &Ctx, path: &Path, size: u64, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        println!("would remove {} ({})", path.display(), human_bytes(size));
        return Ok(());
    }
    fs_err::remove_file(path)?;
    ctx.reporter.status(
        "Removed",
        &format!("{} ({})", path.display(), human_bytes(size)),
    );
    Ok(())
}
