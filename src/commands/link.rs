//! `pkg link` / `pkg unlink`: put a keg's links in place or take them away, remembering the choice.

use anyhow::bail;

use crate::cellar::receipt::Receipt;
use crate::cli::LinkArgs;
use crate::link::{self, LinkError};
use crate::records::Mark;

use super::Ctx;

pub fn link(ctx: &Ctx, args: &LinkArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let version = ctx.state().require_installed(name)?;
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
    let (links, taken) = link::link_taking(
        prefix,
        name,
        &crate::version::show(&version),
        &receipt.bin,
        &receipt.link,
        args.overwrite,
    )?;
    for (path, from) in &taken {
        ctx.reporter.status(
            "Took over",
            &format!(
                "{} from {from} (unlinking or uninstalling {name} gives it back)",
                path.strip_prefix(prefix).unwrap_or(path).display()
            ),
        );
    }
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
    let version = ctx.state().require_installed(name)?;
    let removed = link::unlink(&ctx.settings.prefix, name)?;
    ctx.records.set(Mark::Unlinked, name, true)?;
    give_back(ctx, name)?;
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

/// Links taken over by `name` (`--overwrite`) go back to the packages that had them: each is
/// linked again at its current version, unless the user unlinked it.
pub(super) fn give_back(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let prefix = &ctx.settings.prefix;
    for from in link::owners::give_back(prefix, name)? {
        if ctx.records.has(Mark::Unlinked, &from) {
            continue;
        }
        let Some(version) = ctx.state().in_use(&from) else {
            continue;
        };
        let receipt = Receipt::read(&ctx.cellar.keg(&from, &version))?;
        match link::link(
            prefix,
            &from,
            &crate::version::show(&version),
            &receipt.bin,
            &receipt.link,
            false,
        ) {
            Ok(_) => ctx.reporter.status(
                "Linked",
                &format!(
                    "{from} {} again (its links that {name} had taken over)",
                    crate::version::Shown(&version)
                ),
            ),
            Err(e) => ctx.reporter.warn(&format!(
                "{from} could not get back the links {name} had taken over: {e}; `pkg link {from}` to retry"
            )),
        }
    }
    Ok(())
}
