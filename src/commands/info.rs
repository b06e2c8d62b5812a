//! `pkg info`: a formula and what is installed of it. Read-only: no lock.

use std::io::Write as _;

use anyhow::bail;

use crate::cli::InfoArgs;
use crate::link;
use crate::records::Mark;

use super::{Ctx, JSON_SCHEMA, print_json};

pub fn run(ctx: &Ctx, args: &InfoArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let formula = ctx.formulary.load(name);
    let kegs: Vec<_> = ctx
        .cellar
        .kegs()
        .into_iter()
        .filter(|k| &k.name == name)
        .collect();
    let formula = match formula {
        Ok(f) => Some(f),
        Err(e) if kegs.is_empty() => return Err(e.into()),
        Err(e) => {
            ctx.reporter.warn(&e.to_string());
            None
        }
    };
    let prefix = &ctx.settings.prefix;
    let linked = link::linked_version(prefix, name);
    let pinned = ctx.records.has(Mark::Pinned, name);
    let unlinked = ctx.records.has(Mark::Unlinked, name);
    // Links of this package that another took with --overwrite, and links it took.
    let takeovers = link::owners::list(prefix);
    let lost: Vec<&link::owners::Takeover> = takeovers.iter().filter(|t| t.from == *name).collect();
    let took: Vec<&link::owners::Takeover> = takeovers.iter().filter(|t| t.by == *name).collect();

    if args.json {
        let installed = kegs
            .iter()
            .map(|k| Installed {
                version: crate::version::show(&k.version),
                path: k.path.display().to_string(),
                linked: linked.as_deref() == Some(crate::version::show(&k.version).as_str()),
                receipt: k.receipt.clone(),
            })
            .collect();
        let formula = formula.as_ref().map(|f| FormulaDoc {
            desc: f.desc.clone(),
            homepage: f.homepage.clone(),
            license: f.license.clone(),
            bin: f.bin.clone(),
            source: f.origin.to_string(),
            newest: f.newest().map(crate::version::show),
            versions: f
                .versions
                .iter()
                .map(|(v, spec)| VersionDoc {
                    version: crate::version::show(v),
                    repository: spec.repository.to_string(),
                    tag: spec.tag.to_string(),
                    digest: spec.digest.as_ref().map(ToString::to_string),
                    depends_on: spec
                        .depends_on
                        .iter()
                        .map(|(d, r)| (d.clone(), r.to_string()))
                        .collect(),
                })
                .collect(),
        });
        return print_json(&Doc {
            schema: JSON_SCHEMA,
            name: name.clone(),
            formula,
            installed,
            linked,
            pinned,
            unlinked,
            taken_over_by_others: lost.into_iter().cloned().collect(),
            taken_over_from_others: took.into_iter().cloned().collect(),
        });
    }

    let mut out = std::io::stdout().lock();
    match &formula {
        Some(f) => {
            let newest = f.newest().map(crate::version::show).unwrap_or_default();
            writeln!(
                out,
                "{name}: {newest}{}",
                if pinned { " [pinned]" } else { "" }
            )?;
            writeln!(out, "{}", f.desc)?;
            writeln!(out, "{}", f.homepage)?;
            if let Some(l) = &f.license {
                writeln!(out, "License: {l}")?;
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
    if kegs.is_empty() {
        writeln!(out, "Not installed")?;
    } else {
        writeln!(out, "Installed:")?;
        for k in &kegs {
            let is_linked = linked.as_deref() == Some(crate::version::show(&k.version).as_str());
            let mut notes = Vec::new();
            if is_linked && !lost.is_empty() {
                notes.push("linked, but not all its links");
            } else if is_linked {
                notes.push("linked");
            }
            notes.push(if k.receipt.installed_on_request {
                "on request"
            } else {
                "as a dependency"
            });
            writeln!(
                out,
                "  {} ({}) {}, {}, from {}:{} {}",
                crate::version::Shown(&k.version),
                notes.join(", "),
                k.path.display(),
                super::count(k.receipt.files.len(), "file"),
                k.receipt.repository,
                k.receipt.tag,
                k.receipt.manifest_digest,
            )?;
        }
        if unlinked {
            writeln!(out, "Unlinked on purpose; `pkg link {name}` links it again")?;
        }
        for t in &lost {
            writeln!(
                out,
                "{} belongs to {} now (--overwrite); uninstalling {} gives it back, `pkg link --overwrite {name}` takes it back",
                t.path, t.by, t.by
            )?;
        }
        for t in &took {
            writeln!(
                out,
                "{} was taken over from {} (--overwrite)",
                t.path, t.from
            )?;
        }
    }
    if formula.is_none() && kegs.is_empty() {
        bail!("`{name}` is neither a formula nor installed");
    }
    Ok(())
}

/// `pkg info --json`.
#[derive(serde::Serialize)]
struct Doc {
    schema: u32,
    name: String,
    /// `null` when the formula can no longer be found but kegs are installed.
    formula: Option<FormulaDoc>,
    installed: Vec<Installed>,
    linked: Option<String>,
    pinned: bool,
    unlinked: bool,
    taken_over_by_others: Vec<link::owners::Takeover>,
    taken_over_from_others: Vec<link::owners::Takeover>,
}

#[derive(serde::Serialize)]
struct FormulaDoc {
    desc: String,
    homepage: String,
    license: Option<String>,
    bin: Option<Vec<String>>,
    source: String,
    newest: Option<String>,
    versions: Vec<VersionDoc>,
}

#[derive(serde::Serialize)]
struct VersionDoc {
    version: String,
    repository: String,
    tag: String,
    digest: Option<String>,
    depends_on: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Serialize)]
struct Installed {
    version: String,
    path: String,
    linked: bool,
    receipt: crate::cellar::receipt::Receipt,
}
