//! `pkg pin` / `pkg unpin`: keep packages at their installed versions during upgrades.

use crate::records::Mark;

use super::Ctx;

/// Every name must be installed, or nothing is changed.
pub fn pin(ctx: &Ctx, names: &[String], on: bool) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    let versions = super::installed_all(ctx, names)?;
    for (name, version) in names.iter().zip(versions) {
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
    }
    Ok(())
}
