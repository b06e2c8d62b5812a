//! `pkg link` / `pkg unlink`: put a keg's links in place or take them away, remembering the choice.

use anyhow::bail;

use crate::cellar::receipt::Receipt;
use crate::cli::LinkArgs;
use crate::link::{self, LinkError};
use crate::records::Mark;

use super::Ctx;

/// Every name must be installed, or nothing is linked; a name whose links conflict is said
/// and the others are still linked (the run then fails naming it).
pub fn link(ctx: &Ctx, args: &LinkArgs) -> anyhow::Result<()> {
    let _lock = (!args.dry_run).then(|| ctx.lock()).transpose()?;
    let versions = super::installed_all(ctx, &args.names)?;
    if let ([name], [version]) = (args.names.as_slice(), versions.as_slice()) {
        return link_one(ctx, args, name, version);
    }
    let mut failed = Vec::new();
    for (name, version) in args.names.iter().zip(&versions) {
        if let Err(e) = link_one(ctx, args, name, version) {
            ctx.reporter.error(&format!(
                "{name}: {}",
                crate::report::causes(e.as_ref()).join(": ")
            ));
            failed.push(name.as_str());
        }
    }
    if !failed.is_empty() {
        bail!("could not link {}", failed.join(", "));
    }
    Ok(())
}

fn link_one(
    ctx: &Ctx,
    args: &LinkArgs,
    name: &str,
    version: &semver::Version,
) -> anyhow::Result<()> {
    let receipt = Receipt::read(&ctx.cellar.keg(name, version))?;
    let prefix = &ctx.settings.prefix;
    if args.dry_run {
        let (plan, conflicts) = link::plan(
            prefix,
            name,
            &crate::version::show(version),
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
    let (links, taken) = link::link_taking(
        prefix,
        name,
        &crate::version::show(version),
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
            crate::version::Shown(version),
            links.len()
        ),
    );
    Ok(())
}

/// Every name must be installed, or nothing is unlinked.
pub fn unlink(ctx: &Ctx, names: &[String]) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    let versions = super::installed_all(ctx, names)?;
    for (name, version) in names.iter().zip(versions) {
        let removed = link::unlink(&ctx.settings.prefix, name)?;
        ctx.records.set(Mark::Unlinked, name, true)?;
        crate::apply::remove::give_back(&ctx.target(false), name)?;
        ctx.reporter.status(
            "Unlinked",
            &format!(
                "{name} {} ({} links removed; upgrades keep it unlinked)",
                crate::version::Shown(&version),
                removed.len()
            ),
        );
    }
    Ok(())
}
