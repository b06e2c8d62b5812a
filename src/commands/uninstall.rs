//! `pkg uninstall`: removes kegs and their links; refuses while installed packages depend on them.

use anyhow::{Context as _, bail};
use semver::Version;

use crate::cellar::receipt::Receipt;
use crate::cli::UninstallArgs;
use crate::link;
use crate::records::Mark;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &UninstallArgs) -> anyhow::Result<()> {
    let _lock = ctx.lock()?;
    // What goes: (name, versions), one entry per name.
    let mut targets: Vec<(String, Vec<Version>)> = Vec::new();
    // Asked for but not installed (a typo, or already removed by a run that died): said once
    // each, and the rest still goes. Only what is still there after the run is a failure.
    let mut absent: Vec<String> = Vec::new();
    for arg in &args.packages {
        let (name, version) = ctx.state().name_and_version(arg)?;
        let installed = ctx.cellar.installed_versions(&name);
        let versions = match version {
            Some(v) if installed.contains(&v) => vec![v],
            Some(v) => {
                absent.push(format!(
                    "`{name}` {} is not installed (installed: {})",
                    crate::version::Shown(&v),
                    crate::plan::removal::list_or_none(&installed)
                ));
                continue;
            }
            None if installed.is_empty() && !(args.force && ctx.cellar.keg_dir_exists(&name)) => {
                let similar = crate::plan::similar_installed(&ctx.cellar, &name);
                absent.push(match similar.as_slice() {
                    [] => format!("`{name}` is not installed"),
                    [one] => format!("`{name}` is not installed (did you mean `{one}`?)"),
                    many => format!(
                        "`{name}` is not installed (did you mean one of: {}?)",
                        many.join(", ")
                    ),
                });
                continue;
            }
            None => installed,
        };
        match targets.iter_mut().find(|(n, _)| *n == name) {
            Some((_, vs)) => {
                vs.extend(versions);
                vs.sort();
                vs.dedup();
            }
            None => targets.push((name, versions)),
        }
    }
    for note in &absent {
        ctx.reporter.warn(&format!(
            "{note}; nothing to remove (`pkg list` shows what is)"
        ));
    }

    if !args.ignore_dependencies {
        crate::plan::removal::check_dependents(&ctx.state(), &targets)?;
    }

    let prefix = &ctx.settings.prefix;
    // Packages whose removed linked version could not be replaced by the newest remaining one:
    // their kegs are gone all the same, and the other targets still go.
    let mut unlinked: Vec<(&str, anyhow::Error)> = Vec::new();
    for (name, versions) in &targets {
        let linked = link::linked_version(prefix, name);
        let removes_linked = versions
            .iter()
            .any(|v| Some(crate::version::show(v)) == linked);
        if linked.is_none() || removes_linked {
            link::unlink(prefix, name)?;
        }
        for v in versions {
            ctx.cellar.remove(name, v)?;
            ctx.reporter.status(
                "Uninstalled",
                &format!("{name} {}", crate::version::Shown(v)),
            );
        }
        if args.force {
            ctx.cellar.remove_all(name)?;
        }
        let remaining = ctx.cellar.installed_versions(name);
        if remaining.is_empty() {
            // What it took over with --overwrite goes back to the packages that had it.
            super::link::give_back(ctx, name)?;
            ctx.records.set(Mark::Pinned, name, false)?;
            ctx.records.set(Mark::Unlinked, name, false)?;
            ctx.records.set_request(name, None)?;
            ctx.records.set_platforms(name, None)?;
            // What `pkg install REFERENCE` recorded for it goes too.
            if crate::references::References::new(prefix).forget(name)? {
                ctx.reporter.status(
                    "Forgot",
                    &format!("the formula `pkg install REFERENCE` recorded for {name}"),
                );
            }
        } else if removes_linked
            && !ctx.records.has(Mark::Unlinked, name)
            && let Err(e) = link_newest(ctx, name, &remaining)
        {
            unlinked.push((name, e));
        }
    }
    if unlinked.len() > 1 {
        let names: Vec<&str> = unlinked.iter().map(|(n, _)| *n).collect();
        for (_, e) in &unlinked {
            ctx.reporter.error(&crate::report::one_line(e.as_ref()));
        }
        bail!(
            "uninstalled what was asked, but {} packages are left with no version linked: {}; `pkg link NAME` to retry",
            unlinked.len(),
            names.join(", ")
        );
    }
    match unlinked.pop() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// After the linked version went: the newest remaining version takes its place.
fn link_newest(ctx: &Ctx, name: &str, remaining: &[Version]) -> anyhow::Result<()> {
    let Some(version) = remaining.last() else {
        return Ok(());
    };
    let receipt = Receipt::read(&ctx.cellar.keg(name, version))?;
    let links = link::link(
        &ctx.settings.prefix,
        name,
        &crate::version::show(version),
        &receipt.bin,
        &receipt.link,
        false,
    )
    .with_context(|| {
        format!("the linked version of `{name}` was removed, but linking {name} {} in its place failed; `pkg link {name}` to retry, or `pkg link --overwrite {name}` to replace what is in the way", crate::version::Shown(version))
    })?;
    ctx.reporter.status(
        "Linked",
        &format!(
            "{name} {} ({} links; the newest remaining version)",
            crate::version::Shown(version),
            links.len()
        ),
    );
    Ok(())
}
