//! `pkg list NAME…` (a keg's files), `pkg which BIN…` (the package a command belongs to) and
//! `pkg leaves`. Read-only: no lock.

use std::io::Write as _;

use crate::cli::WhichArgs;

use super::{Ctx, print_json};

/// The files of each named keg (`NAME`: the version in use; `NAME@VERSION`), one path a line.
/// `pkg list NAME… --json`: each keg's files.
#[derive(serde::Serialize)]
struct Files {
    schema: u32,
    packages: Vec<KegFiles>,
}

#[derive(serde::Serialize)]
struct KegFiles {
    name: String,
    version: String,
    files: Vec<std::path::PathBuf>,
}

pub fn list_files(ctx: &Ctx, names: &[String], json: bool) -> anyhow::Result<()> {
    let state = ctx.state();
    let mut kegs = Vec::new();
    for arg in names {
        let (name, version) = state.name_and_version(arg)?;
        let version = match version {
            Some(v) if ctx.cellar.is_installed(&name, &v) => v,
            Some(v) => anyhow::bail!(
                "{name} {} is not installed; `pkg list --versions` shows what is",
                crate::version::Shown(&v)
            ),
            None => state.require_installed(&name)?,
        };
        kegs.push((name, version));
    }
    if json {
        let mut packages = Vec::new();
        for (name, version) in &kegs {
            packages.push(KegFiles {
                name: name.clone(),
                version: crate::version::show(version),
                files: ctx.inventory().files(name, version)?,
            });
        }
        return super::print_json(&Files {
            schema: super::JSON_SCHEMA,
            packages,
        });
    }
    let mut out = std::io::stdout().lock();
    for (name, version) in &kegs {
        for path in ctx.inventory().files(name, version)? {
            writeln!(out, "{}", path.display())?;
        }
    }
    Ok(())
}

/// One line (or JSON document) a command; a command no package owns is said, and fails the
/// run once the others are answered.
pub fn which(ctx: &Ctx, args: &WhichArgs) -> anyhow::Result<()> {
    let mut owners = Vec::new();
    let mut unknown = Vec::new();
    for bin in &args.bins {
        match ctx.inventory().owner_of(bin) {
            Ok(owner) => owners.push(owner),
            Err(e) => {
                if args.bins.len() == 1 {
                    return Err(e.into());
                }
                ctx.reporter.error(&e.to_string());
                unknown.push(bin.as_str());
            }
        }
    }
    if args.json {
        print_json(&crate::inventory::Owners {
            schema: crate::inventory::SCHEMA,
            commands: owners,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        for o in &owners {
            writeln!(
                out,
                "{}\t{} {}\t{}",
                o.command,
                o.package,
                o.version,
                o.target.display()
            )?;
        }
    }
    if !unknown.is_empty() {
        anyhow::bail!("no package owns {}", unknown.join(", "));
    }
    Ok(())
}

/// `pkg leaves`: one name a line, or `--json`.
pub fn leaves(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let state = ctx.state();
    let leaves = ctx.inventory().leaves(|name| state.in_use(name));
    if json {
        return print_json(&leaves);
    }
    let mut out = std::io::stdout().lock();
    for leaf in &leaves.leaves {
        writeln!(out, "{}", leaf.name)?;
    }
    Ok(())
}

/// `pkg prefix [NAME]`: the prefix, or `PREFIX/opt/NAME` for an installed package (its linked
/// version; a package installed but not linked is said, with `pkg link`).
pub fn prefix(ctx: &Ctx, name: Option<&str>) -> anyhow::Result<()> {
    let prefix = &ctx.settings.prefix;
    let Some(name) = name else {
        println!("{}", prefix.display());
        return Ok(());
    };
    ctx.state().require_installed(name)?;
    let opt = prefix.join("opt").join(name);
    if crate::link::linked_version(prefix, name).is_none() {
        anyhow::bail!(
            "{name} is installed but not linked, so {} does not exist; `pkg link {name}` makes it",
            opt.display()
        );
    }
    println!("{}", opt.display());
    Ok(())
}
