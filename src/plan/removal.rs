//! What removing kegs would do, decided before anything changes: the [`Removal`] of
//! `uninstall`, `bundle cleanup`, `autoremove` and `cleanup`, what it would break, which kegs
//! nothing needs.

use std::collections::{BTreeSet, HashSet};

use semver::{Version, VersionReq};

use super::State;
use crate::cellar::Keg;
use crate::records::Mark;

#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    #[error(
        "refusing to uninstall `{name}`: required by {by}.\nUninstall those first, or pass --ignore-dependencies."
    )]
    Required { name: String, by: String },
    #[error(
        "refusing to uninstall `{name}` {versions}: required by {by}, which the remaining {remaining} does not satisfy.\nUninstall those first, or pass --ignore-dependencies."
    )]
    RequiredVersions {
        name: String,
        versions: String,
        by: String,
        remaining: String,
    },
}

/// How a removal came about, which is how each removed keg is reported: asked for by name
/// (`uninstall`, `bundle cleanup`), or housekeeping (`autoremove`, `cleanup`'s old kegs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Asked,
    Housekeeping,
}

/// Kegs to remove, decided before anything changes; `apply::remove` carries it out.
#[derive(Debug)]
pub struct Removal {
    /// (name, versions), one entry per name, in the order asked.
    pub targets: Vec<(String, Vec<Version>)>,
    /// Asked for but not installed (a typo, or removed already by a run that died): said once
    /// each, and the rest still goes.
    pub absent: Vec<String>,
    /// `--force`: also the kegs of a name whose receipt is missing or unreadable.
    pub force: bool,
    pub why: Why,
}

/// `pkg uninstall NAME[@VERSION]…` (the names parsed): every installed version of a name, or
/// the one named; refused while a package that stays depends on what goes, unless
/// `ignore_dependencies`.
pub fn uninstall(
    state: &State,
    requests: &[(String, Option<Version>)],
    force: bool,
    ignore_dependencies: bool,
) -> Result<Removal, RemovalError> {
    let mut targets: Vec<(String, Vec<Version>)> = Vec::new();
    let mut absent = Vec::new();
    for (name, version) in requests {
        let installed = state.cellar.installed_versions(name);
        let versions = match version {
            Some(v) if installed.contains(v) => vec![v.clone()],
            Some(v) => {
                absent.push(format!(
                    "`{name}` {} is not installed (installed: {})",
                    crate::version::Shown(v),
                    list_or_none(&installed)
                ));
                continue;
            }
            None if installed.is_empty() && !(force && state.cellar.keg_dir_exists(name)) => {
                let similar = super::similar_installed(state.cellar, name);
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
        match targets.iter_mut().find(|(n, _)| n == name) {
            Some((_, vs)) => {
                vs.extend(versions);
                vs.sort();
                vs.dedup();
            }
            None => targets.push((name.clone(), versions)),
        }
    }
    if !ignore_dependencies {
        check_dependents(state, &targets)?;
    }
    Ok(Removal {
        targets,
        absent,
        force,
        why: Why::Asked,
    })
}

/// Housekeeping's kegs (`unneeded`, `superseded`), grouped by name in the order given.
pub fn housekeeping(kegs: &[(String, Version)]) -> Removal {
    let mut targets: Vec<(String, Vec<Version>)> = Vec::new();
    for (name, version) in kegs {
        match targets.iter_mut().find(|(n, _)| n == name) {
            Some((_, vs)) => vs.push(version.clone()),
            None => targets.push((name.clone(), vec![version.clone()])),
        }
    }
    Removal {
        targets,
        absent: Vec::new(),
        force: false,
        why: Why::Housekeeping,
    }
}

/// Refuses when an installed package that stays depends on what goes: on a package removed
/// entirely, or on a version whose removal leaves no installed version that meets its
/// requirement.
pub fn check_dependents(
    state: &State,
    targets: &[(String, Vec<Version>)],
) -> Result<(), RemovalError> {
    let kegs = state.cellar.kegs();
    let goes = |name: &str, version: &Version| {
        targets
            .iter()
            .any(|(n, vs)| n == name && vs.contains(version))
    };
    for (name, versions) in targets {
        let remaining: Vec<Version> = state
            .cellar
            .installed_versions(name)
            .into_iter()
            .filter(|v| !versions.contains(v))
            .collect();
        let mut dependents = Vec::new();
        for keg in kegs.iter().filter(|k| !goes(&k.name, &k.version)) {
            let Some(used) = keg.receipt.dependencies.get(name) else {
                continue;
            };
            if remaining.is_empty() {
                dependents.push(format!("{} {}", keg.name, keg.version));
                continue;
            }
            // The requirement its formula states; without the formula, the version it was
            // installed with.
            let req = state
                .formulary
                .load(&keg.name)
                .ok()
                .and_then(|f| f.versions.get(&keg.version)?.depends_on.get(name).cloned())
                .or_else(|| VersionReq::parse(&format!("={used}")).ok());
            let Some(req) = req else {
                continue;
            };
            if versions.iter().any(|v| req.matches(v)) && !remaining.iter().any(|v| req.matches(v))
            {
                dependents.push(format!("{} {} ({name} {req})", keg.name, keg.version));
            }
        }
        if dependents.is_empty() {
            continue;
        }
        if remaining.is_empty() {
            return Err(RemovalError::Required {
                name: name.clone(),
                by: dependents.join(", "),
            });
        }
        return Err(RemovalError::RequiredVersions {
            name: name.clone(),
            versions: list_or_none(versions),
            by: dependents.join(", "),
            remaining: remaining
                .iter()
                .map(|v| format!("{name} {}", crate::version::Shown(v)))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

/// The kegs `cleanup` removes as old versions, and the newer ones it keeps.
#[derive(Debug, Default)]
pub struct Superseded {
    /// Every keg of a package but the one in use and the newest installed.
    pub remove: Vec<(String, Version)>,
    /// (name, newest, in use): kept although not in use — a user who linked an older version
    /// on purpose (`pkg install 'hello@^1.2'`) did not ask to lose the newer one.
    pub kept: Vec<(String, Version, Version)>,
}

/// What `cleanup` does with packages that have more than one keg.
pub fn superseded(state: &State) -> Superseded {
    let mut out = Superseded::default();
    for name in state.cellar.names() {
        let versions = state.cellar.installed_versions(&name);
        let Some(keep) = state.in_use(&name).filter(|_| versions.len() > 1) else {
            continue;
        };
        let newest = versions.last().cloned().filter(|n| *n != keep);
        for v in &versions {
            if *v != keep && Some(v) != newest.as_ref() {
                out.remove.push((name.clone(), v.clone()));
            }
        }
        if let Some(newest) = newest {
            out.kept.push((name, newest, keep));
        }
    }
    out
}

/// Kegs installed as dependencies that no package installed on request needs, directly or not.
pub fn unneeded(
    state: &State,
    already_removed: &BTreeSet<(String, Version)>,
) -> Vec<(String, Version)> {
    let kegs: Vec<Keg> = state
        .cellar
        .kegs()
        .into_iter()
        .filter(|k| !already_removed.contains(&(k.name.clone(), k.version.clone())))
        .collect();
    let mut needed: HashSet<String> = HashSet::new();
    let mut queue: Vec<String> = kegs
        .iter()
        .filter(|k| k.receipt.installed_on_request || state.records.has(Mark::Pinned, &k.name))
        .map(|k| k.name.clone())
        .collect();
    while let Some(name) = queue.pop() {
        if !needed.insert(name.clone()) {
            continue;
        }
        for k in kegs.iter().filter(|k| k.name == name) {
            queue.extend(k.receipt.dependencies.keys().cloned());
        }
    }
    kegs.into_iter()
        .filter(|k| !needed.contains(&k.name))
        .map(|k| (k.name, k.version))
        .collect()
}

pub fn list_or_none(versions: &[Version]) -> String {
    if versions.is_empty() {
        "none".into()
    } else {
        versions
            .iter()
            .map(crate::version::show)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The blobs the kegs that stay (all but `removed`) were installed from: layers and manifests.
pub fn referenced_blobs(
    state: &State,
    removed: &BTreeSet<(String, Version)>,
) -> HashSet<crate::digest::Digest> {
    blobs_where(state.cellar, |k| {
        !removed.contains(&(k.name.clone(), k.version.clone()))
    })
}

/// The blobs every keg of a Cellar (another prefix's) was installed from.
pub fn blobs_of(cellar: &crate::cellar::Cellar) -> HashSet<crate::digest::Digest> {
    blobs_where(cellar, |_| true)
}

fn blobs_where(
    cellar: &crate::cellar::Cellar,
    keep: impl Fn(&Keg) -> bool,
) -> HashSet<crate::digest::Digest> {
    cellar
        .kegs()
        .into_iter()
        .filter(keep)
        .flat_map(|k| {
            let r = k.receipt;
            r.layers
                .into_iter()
                .chain(std::iter::once(r.manifest_digest))
                .chain(r.platform_manifest_digest)
        })
        .collect()
}
