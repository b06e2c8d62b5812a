//! `pkg pin` / `pkg unpin`: keep a package at its installed version during upgrades.

use crate::records::Mark;

use super::Ctx;

pub fn pin(ctx: &Ctx, name: &str, on: bool) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    let version = ctx.state().require_installed(name)?;
    let changed = ctx.records.set(Mark::Pinned, name, on)?;
    let what = match (on, changed) {
        (_, true) => "",
        (true, false) => " (already pinned)",
        (false, false) => " (was not pinned)",
    };
    ctx.reporter.status(
        if on { "Pinned" } else { "Unpinned" },
        &format!("{name} {}{what}", crate::version::Shown(&version)),
    );
    Ok(())
}
