//! `pkg link` / `pkg unlink`: put a keg's links in place or take them away, remembering the choice.

use anyhow::bail;

use crate::cellar::receipt::Receipt;
use crate::cli::LinkArgs;
use crate::link::{self, LinkError};
use crate::prefix::Mark;

use super::Ctx;

pub fn link(ctx: &Ctx, args: &LinkArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let version = ctx.require_installed(name)?;
    let receipt = Receipt::read(&ctx.cellar.keg(name, &version))?;
    let prefix = &ctx.settings.prefix;
    if args.dry_run {
        let (plan, conflicts) = link::plan(
            prefix,
            name,
            &crate::version::show(&version),
            &receipt.bin,
            &receipt.link,
            args.overwrite,
        )?;
        for p in &plan {
            println!("{} -> {}", p.dest.display(), p.target.display());
        }
        if !conflicts.is_empty() {
            bail!(LinkError::Conflicts(conflicts));
        }
        return Ok(());
    }
    let _lock = ctx.lock()?;
    let links = link::link(
        prefix,
        name,
        &crate::version::show(&version),
        &receipt.bin,
        &receipt.link,
        args.overwrite,
    )?;
    ctx.records.set(Mark::Unlinked, name, false)?;
    ctx.reporter.status(
        "Linked",
        &format!(
            "{name} {} ({} links)",
            crate::version::Shown(&version),
            links.len()
        ),
    );
    Ok(())
}

pub fn unlink(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    let version = ctx.require_installed(name)?;
    let removed = link::unlink(&ctx.settings.prefix, name)?;
    ctx.records.set(Mark::Unlinked, name, true)?;
    ctx.reporter.status(
        "Unlinked",
        &format!(
            "{name} {} ({} links removed; upgrades keep it unlinked)",
            crate::version::Shown(&version),
            removed.len()
        ),
    );
    Ok(())
}
