//! `pkg info`: a formula and what is installed of it. Read-only: no lock.

use crate::report::printable;
use std::io::Write as _;

use anyhow::bail;

use crate::cli::InfoArgs;

use super::{Ctx, print_json};

/// Each name in turn (JSON: one document listing them), going on past names that are neither a
/// formula nor installed, which fail the run at the end. One name that is not found is its
/// error, as any other verb's.
pub fn run(ctx: &Ctx, args: &InfoArgs) -> anyhow::Result<()> {
    if let [name] = args.names.as_slice()
        && !args.json
    {
        let (formula, info) = look_up(ctx, name)?;
        return show(name, formula.as_ref(), &info);
    }
    let mut doc = crate::inventory::InfoDoc {
        schema: crate::inventory::SCHEMA,
        packages: Vec::new(),
        errors: Vec::new(),
    };
    let mut failed: Vec<anyhow::Error> = Vec::new();
    for (i, name) in args.names.iter().enumerate() {
        let found = look_up(ctx, name).and_then(|(formula, info)| {
            if !args.json {
                if i > 0 {
                    println!();
                }
                show(name, formula.as_ref(), &info)?;
            }
            Ok(info)
        });
        match found {
            Ok(info) => doc.packages.push(info),
            Err(e) => {
                let message = crate::report::one_line(e.as_ref());
                if args.names.len() > 1 {
                    ctx.reporter.error(&message);
                }
                doc.errors.push(crate::inventory::NameError {
                    name: name.clone(),
                    message,
                });
                failed.push(e);
            }
        }
    }
    if args.json {
        print_json(&doc)?;
    }
    match (failed.pop(), args.names.len()) {
        (None, _) => Ok(()),
        // One name: its own error (and exit code: a malformed name is bad input).
        (Some(e), 1) => Err(e),
        (Some(_), _) => {
            let names: Vec<&str> = doc.errors.iter().map(|e| e.name.as_str()).collect();
            bail!("no information on {}", names.join(", "))
        }
    }
}

fn look_up(
    ctx: &Ctx,
    name: &str,
) -> anyhow::Result<(Option<crate::formula::Formula>, crate::inventory::Info)> {
    let formula = match ctx.formulary.load(name) {
        Ok(f) => Some(f),
        Err(e) if ctx.cellar.installed_versions(name).is_empty() => return Err(e.into()),
        Err(e) => {
            ctx.reporter.warn(&e.to_string());
            None
        }
    };
    let info = ctx.inventory().info(name, formula.as_ref());
    Ok((formula, info))
}

/// Long: the text form of `pkg info`, one section after another in the order it is printed.
fn show(
    name: &str,
    formula: Option<&crate::formula::Formula>,
    info: &crate::inventory::Info,
) -> anyhow::Result<()> {
    let p = &info.package;
    let (pinned, lost, took) = (p.pinned, &p.taken_over_by_others, &p.taken_over_from_others);
    let mut out = std::io::stdout().lock();
    match formula {
        Some(f) => {
            let newest = f.newest().map(crate::version::show).unwrap_or_default();
            writeln!(
                out,
                "{name}: {newest}{}",
                if pinned { " [pinned]" } else { "" }
            )?;
            // Formula text is escaped on a terminal (the JSON document stays exact).
            writeln!(out, "{}", printable(&f.desc))?;
            writeln!(out, "{}", printable(&f.homepage))?;
            if let Some(l) = &f.license {
                writeln!(out, "License: {}", printable(l))?;
            }
            writeln!(out, "Formula: {}", f.origin)?;
            let versions: Vec<String> = f.versions.keys().map(crate::version::show).collect();
            writeln!(out, "Versions: {}", versions.join(", "))?;
            if let Some(newest) = f.newest() {
                let deps = &f.versions[newest].depends_on;
                if !deps.is_empty() {
                    let d: Vec<String> = deps.iter().map(|(n, r)| format!("{n} {r}")).collect();
                    writeln!(out, "Dependencies: {}", d.join(", "))?;
                }
            }
        }
        None => writeln!(out, "{name} (no formula found)")?,
    }
    if info.installed.is_empty() {
        writeln!(out, "Not installed")?;
    } else {
        writeln!(out, "Installed:")?;
        for k in &info.installed {
            let mut notes = Vec::new();
            if k.linked && !lost.is_empty() {
                notes.push("linked, but not all its links");
            } else if k.linked {
                notes.push("linked");
            }
            notes.push(if k.receipt.installed_on_request {
                "on request"
            } else {
                "as a dependency"
            });
            writeln!(
                out,
                "  {} ({}) {}, {}, from {} {}",
                k.version,
                notes.join(", "),
                k.path.display(),
                super::count(
                    crate::cellar::count_files(&k.path, &k.receipt.files),
                    "file"
                ),
                crate::references::shown(&k.receipt.repository, &k.receipt.tag),
                k.receipt.manifest_digest,
            )?;
        }
        if p.unlinked {
            writeln!(out, "Unlinked on purpose; `pkg link {name}` links it again")?;
        }
        if let (Some(asked), Some(req)) = (&p.requested, &p.requirement) {
            writeln!(
                out,
                "Held to {name}@{asked} ({req}), as you asked; `pkg install {name}` asks for the newest again"
            )?;
        }
        for t in lost {
            writeln!(
                out,
                "{} belongs to {} now (--overwrite); uninstalling {} gives it back, `pkg link --overwrite {name}` takes it back",
                t.path, t.by, t.by
            )?;
        }
        for t in took {
            writeln!(
                out,
                "{} was taken over from {} (--overwrite)",
                t.path, t.from
            )?;
        }
    }
    if formula.is_none() && info.installed.is_empty() {
        bail!("`{name}` is neither a formula nor installed");
    }
    Ok(())
}
