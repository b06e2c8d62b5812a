//! `pkg uninstall`: removes kegs and their links; refuses while installed packages depend on them.

use anyhow::bail;
use semver::Version;

use crate::cli::UninstallArgs;
use crate::link;
use crate::prefix::Mark;

use super::{Ctx, name_and_version};

pub fn run(ctx: &Ctx, args: &UninstallArgs) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    // What goes: (name, versions).
    let mut targets: Vec<(String, Vec<Version>)> = Vec::new();
    for arg in &args.packages {
        let (name, version) = name_and_version(arg)?;
        let installed = ctx.cellar.installed_versions(&name);
        let versions = match version {
            Some(v) if installed.contains(&v) => vec![v],
            Some(v) => bail!(
                "`{name}` {v} is not installed (installed: {})",
                list_or_none(&installed)
            ),
            None if installed.is_empty() && !(args.force && ctx.cellar.keg_dir_exists(&name)) => {
                bail!("`{name}` is not installed; `pkg list` shows what is")
            }
            None => installed,
        };
        targets.push((name, versions));
    }

    if !args.ignore_dependencies {
        let kegs = ctx.cellar.kegs();
        for (name, versions) in &targets {
            let remaining = ctx.cellar.installed_versions(name).len() - versions.len();
            if remaining > 0 {
                continue;
            }
            let dependents: Vec<String> = kegs
                .iter()
                .filter(|k| k.receipt.dependencies.contains_key(name))
                .filter(|k| {
                    !targets
                        .iter()
                        .any(|(n, vs)| *n == k.name && vs.contains(&k.version))
                })
                .map(|k| format!("{} {}", k.name, k.version))
                .collect();
            if !dependents.is_empty() {
                bail!(
                    "refusing to uninstall `{name}`: required by {}.\nUninstall those first, or pass --ignore-dependencies.",
                    dependents.join(", ")
                );
            }
        }
    }

    let prefix = &ctx.settings.prefix;
    for (name, versions) in &targets {
        let linked = link::linked_version(prefix, name);
        if linked.is_none() || versions.iter().any(|v| Some(v.to_string()) == linked) {
            link::unlink(prefix, name)?;
        }
        for v in versions {
            ctx.cellar.remove(name, v)?;
            ctx.reporter.status("Uninstalled", &format!("{name} {v}"));
        }
        if args.force {
            ctx.cellar.remove_all(name)?;
        }
        if ctx.cellar.installed_versions(name).is_empty() {
            ctx.records.set(Mark::Pinned, name, false)?;
            ctx.records.set(Mark::Unlinked, name, false)?;
        }
    }
    Ok(())
}

fn list_or_none(versions: &[Version]) -> String {
    if versions.is_empty() {
        "none".into()
    } else {
        versions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
