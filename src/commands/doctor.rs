//! `pkg doctor`: runs the checkup (`doctor.rs`) and prints each finding with its fix, notes
//! first. Exit 1 when something was found.

use std::io::Write as _;

use super::{Ctx, SilentExit};

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let checkup = crate::doctor::examine(&crate::doctor::Subject {
        prefix: &ctx.settings.prefix,
        cache: &ctx.settings.cache,
        cellar: &ctx.cellar,
        formulary: &ctx.formulary,
        client: ctx.client(),
        credentials: &ctx.settings.credentials,
    });
    let (findings, notes) = (checkup.findings, checkup.notes);
    let mut out = std::io::stdout().lock();
    for note in &notes {
        writeln!(out, "Note: {note}")?;
    }
    if findings.is_empty() {
        writeln!(out, "No problems found.")?;
        return Ok(());
    }
    for f in &findings {
        writeln!(out, "Problem: {}\n    Fix: {}", f.problem, f.fix)?;
    }
    writeln!(out, "{} problem(s) found.", findings.len())?;
    Err(SilentExit(1).into())
}
