//! `pkg doctor`: runs the checkup (`doctor.rs`) and prints each finding with its fix, notes
//! first. Exit 1 when something was found.

use std::io::Write as _;

use super::{Ctx, SilentExit};

/// `pkg doctor --json`.
#[derive(serde::Serialize)]
struct Report<'a> {
    schema: u32,
    problems: &'a [crate::doctor::Finding],
    notes: &'a [String],
}

pub fn run(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let checkup = crate::doctor::examine(&crate::doctor::Subject {
        prefix: &ctx.settings.prefix,
        cache: &ctx.settings.cache,
        cellar: &ctx.cellar,
        formulary: &ctx.formulary,
        client: ctx.client(),
        credentials: &ctx.settings.credentials,
    });
    let (findings, notes) = (checkup.findings, checkup.notes);
    if json {
        super::print_json(&Report {
            schema: super::JSON_SCHEMA,
            problems: &findings,
            notes: &notes,
        })?;
        return match findings.is_empty() {
            true => Ok(()),
            false => Err(SilentExit(1).into()),
        };
    }
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
