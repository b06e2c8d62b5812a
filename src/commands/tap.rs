//! `pkg tap add|list|remove` and `pkg update`: formula directories by name, local or from git.

use std::io::Write as _;

use crate::cli::TapCommand;
use crate::tap::Taps;

use super::Ctx;

pub fn tap(ctx: &Ctx, command: &TapCommand) -> anyhow::Result<()> {
    let taps = Taps::new(&ctx.settings.prefix);
    match command {
        TapCommand::Add { name, source } => {
            let _lock = ctx.lock()?;
            let tap = taps.add(name, source)?;
            let count = formula_count(&tap.path);
            ctx.reporter.status(
                "Tapped",
                &format!("{name} ({}, {count} formulae) from {source}", tap.kind),
            );
        }
        TapCommand::List => {
            let mut out = std::io::stdout().lock();
            for t in taps.list() {
                writeln!(out, "{}\t{}\t{}", t.name, t.kind, t.path.display())?;
            }
        }
        TapCommand::Remove { name } => {
            let _lock = ctx.lock()?;
            taps.remove(name)?;
            ctx.reporter.status("Untapped", name);
        }
    }
    Ok(())
}

pub fn update(ctx: &Ctx) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    let taps = Taps::new(&ctx.settings.prefix);
    let mut failed = 0;
    for t in taps.list() {
        match taps.update(&t) {
            Ok(true) => ctx.reporter.status("Updated", &t.name),
            Ok(false) => ctx
                .reporter
                .status("Skipping", &format!("{} (a local directory)", t.name)),
            Err(e) => {
                failed += 1;
                ctx.reporter.error(&e.to_string());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} tap(s) could not be updated");
    }
    Ok(())
}

fn formula_count(dir: &std::path::Path) -> usize {
    let dir = if dir.join("formulae").is_dir() {
        dir.join("formulae")
    } else {
        dir.to_owned()
    };
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".toml"))
                .count()
        })
        .unwrap_or(0)
}
