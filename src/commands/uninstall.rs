//! `pkg uninstall`: removes kegs and their links; refuses while installed packages depend on them.

use crate::cli::UninstallArgs;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &UninstallArgs) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    let state = ctx.state();
    let requests = args
        .packages
        .iter()
        .map(|arg| state.name_and_version(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let removal =
        crate::plan::removal::uninstall(&state, &requests, args.force, args.ignore_dependencies)?;
    remove(ctx, &removal)
}

/// Says what was asked for but is not installed, then carries the removal out.
pub(super) fn remove(ctx: &Ctx, removal: &crate::plan::removal::Removal) -> anyhow::Result<()> {
    for note in &removal.absent {
        ctx.reporter.warn(&format!(
            "{note}; nothing to remove (`pkg list` shows what is)"
        ));
    }
    crate::apply::remove::remove(&ctx.target(false), removal)?;
    Ok(())
}
