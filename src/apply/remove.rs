//! Carries out a [`Removal`]: per package, its links go when the version they lead to goes,
//! then its kegs; a package left with no keg gives back the links it took over with
//! `--overwrite` and its records go (pin, unlinked mark, request, platforms, the formula a
//! reference recorded); one left with older versions gets the newest linked in its place.

use semver::Version;

use super::Target;
use crate::cellar::CellarError;
use crate::cellar::receipt::{Receipt, ReceiptError};
use crate::link::{self, LinkError};
use crate::plan::removal::{Removal, Why};
use crate::records::{Mark, RecordsError};
use crate::references::{References, ReferencesError};
use crate::report::Event;

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Cellar(#[from] CellarError),
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Reference(#[from] ReferencesError),
    #[error("{path}: {source}", path = .prefix.display())]
    Takeovers {
        prefix: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the linked version of `{name}` was removed, but linking {name} {version} in its place failed; `pkg link {name}` to retry, or `pkg link --overwrite {name}` to replace what is in the way"
    )]
    Relink {
        name: String,
        version: String,
        #[source]
        source: Box<RelinkError>,
    },
    #[error(
        "uninstalled what was asked, but {} packages are left with no version linked: {}; `pkg link NAME` to retry",
        .0.len(),
        .0.join(", ")
    )]
    LeftUnlinked(Vec<String>),
}

/// Why linking the newest remaining version failed.
#[derive(Debug, thiserror::Error)]
pub enum RelinkError {
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// Removes what `removal` names; returns the bytes the removed kegs held. Every package is
/// dealt with even when linking one's newest remaining version fails: that is reported, and
/// the error says which packages are left unlinked.
pub fn remove(target: &Target, removal: &Removal) -> Result<u64, RemoveError> {
    let prefix = target.prefix;
    let mut freed = 0;
    let mut unlinked: Vec<(String, RemoveError)> = Vec::new();
    for (name, versions) in &removal.targets {
        let linked = link::linked_version(prefix, name);
        let removes_linked = versions
            .iter()
            .any(|v| Some(crate::version::show(v)) == linked);
        if linked.is_none() || removes_linked {
            link::unlink(prefix, name)?;
        }
        for v in versions {
            let size = target.cellar.size(name, v);
            target.cellar.remove(name, v)?;
            freed += size;
            target.reporter.event(match removal.why {
                Why::Asked => Event::Uninstalled { name, version: v },
                Why::Housekeeping => Event::Removed {
                    name,
                    version: v,
                    bytes: size,
                },
            });
        }
        if removal.force {
            target.cellar.remove_all(name)?;
        }
        let remaining = target.cellar.installed_versions(name);
        if remaining.is_empty() {
            forget(target, name)?;
        } else if removes_linked
            && !target.records.has(Mark::Unlinked, name)
            && let Err(e) = link_newest(target, name, &remaining)
        {
            unlinked.push((name.clone(), e));
        }
    }
    match unlinked.len() {
        0 => Ok(freed),
        1 => Err(unlinked.remove(0).1),
        _ => {
            for (_, e) in &unlinked {
                target.reporter.event(Event::LeftUnlinked { error: e });
            }
            Err(RemoveError::LeftUnlinked(
                unlinked.into_iter().map(|(n, _)| n).collect(),
            ))
        }
    }
}

/// A package with no keg left: what it took over goes back, and its records go.
fn forget(target: &Target, name: &str) -> Result<(), RemoveError> {
    give_back(target, name)?;
    let records = target.records;
    records.set(Mark::Pinned, name, false)?;
    records.set(Mark::Unlinked, name, false)?;
    records.set_request(name, None)?;
    records.set_platforms(name, None)?;
    if References::new(target.prefix).forget(name)? {
        target.reporter.event(Event::ForgotReference { name });
    }
    Ok(())
}

/// The links `name` took over with `--overwrite` go back to the packages that had them (those
/// still installed and not unlinked on purpose); one that cannot is warned about.
pub fn give_back(target: &Target, name: &str) -> Result<(), RemoveError> {
    let prefix = target.prefix;
    let from = link::owners::give_back(prefix, name).map_err(|source| RemoveError::Takeovers {
        prefix: prefix.to_owned(),
        source,
    })?;
    for from in from {
        if target.records.has(Mark::Unlinked, &from) {
            continue;
        }
        let in_use = link::linked_version(prefix, &from)
            .and_then(|v| crate::version::parse_brew(&v).ok())
            .filter(|v| target.cellar.is_installed(&from, v))
            .or_else(|| target.cellar.installed_versions(&from).pop());
        let Some(version) = in_use else {
            continue;
        };
        match relink(target, &from, &version) {
            Ok(_) => target.reporter.event(Event::GaveBack {
                owner: &from,
                version: &version,
                taker: name,
            }),
            Err(e) => target.reporter.event(Event::GiveBackFailed {
                owner: &from,
                taker: name,
                error: &e,
            }),
        }
    }
    Ok(())
}

fn relink(target: &Target, name: &str, version: &Version) -> Result<usize, RelinkError> {
    let receipt = Receipt::read(&target.cellar.keg(name, version))?;
    let links = link::link(
        target.prefix,
        name,
        &crate::version::show(version),
        &receipt.bin,
        &receipt.link,
        false,
    )?;
    Ok(links.len())
}

/// After the linked version went: the newest remaining version takes its place.
fn link_newest(target: &Target, name: &str, remaining: &[Version]) -> Result<(), RemoveError> {
    let Some(version) = remaining.last() else {
        return Ok(());
    };
    let links = relink(target, name, version).map_err(|source| RemoveError::Relink {
        name: name.to_owned(),
        version: crate::version::show(version),
        source: Box::new(source),
    })?;
    target.reporter.event(Event::LinkedNewest {
        name,
        version,
        links,
    });
    Ok(())
}
