//! Carries out a [`Plan`]: every keg it needs poured at once (up to `--jobs`), then unit by
//! unit, dependencies first, links switched in a [`Transaction`] that puts everything back
//! when the unit fails; old kegs go only after their unit committed.

pub mod remove;
mod schedule;
pub mod transaction;

use std::path::Path;

use semver::Version;

use crate::cellar::receipt::{Receipt, ReceiptError};
use crate::cellar::{Cellar, CellarError};
use crate::link::LinkError;
use crate::plan::{Move, Plan, UnitKind};
use crate::pour::{PourError, Pourer};
use crate::records::{Mark, Records, RecordsError};
use crate::report::{Arrival, Event, Reporter, Switch};
use schedule::Pour;
pub use transaction::Transaction;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("fetching {name} {version} failed")]
    Pour {
        name: String,
        version: String,
        #[source]
        source: Box<PourError>,
    },
    #[error("linking {name} {version} failed")]
    Link {
        name: String,
        version: String,
        #[source]
        source: Box<LinkError>,
    },
    #[error("its dependency {0} could not be installed")]
    Dependency(String),
    #[error("it was planned on top of {0}, which failed")]
    Earlier(String),
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error(transparent)]
    Cellar(#[from] CellarError),
    #[error(transparent)]
    Prefix(#[from] RecordsError),
}

/// Where a plan is carried out.
pub struct Target<'a> {
    pub prefix: &'a Path,
    pub cellar: &'a Cellar,
    pub records: &'a Records,
    pub reporter: &'a dyn Reporter,
    pub jobs: usize,
    /// `--overwrite`: links may replace files of other packages.
    pub overwrite: bool,
}

/// One result per unit of the plan, in order.
pub type Outcome = Vec<Result<(), ApplyError>>;

/// Runs `plan`; `pourer` is needed when [`Plan::pours`].
pub fn apply(target: &Target, plan: &Plan, pourer: Option<&Pourer>) -> Outcome {
    for (name, version) in &plan.on_request {
        if let Err(e) = target.cellar.mark_on_request(name, version) {
            target.reporter.event(Event::RecordNotWritten { error: &e });
        }
    }
    for unit in plan.units.iter().filter(|u| u.kind == UnitKind::Upgrade) {
        target.reporter.event(Event::Upgrading {
            name: &unit.package,
            from: unit.from.as_ref(),
            to: &unit.to,
        });
    }
    let to_pour: Vec<&Move> = plan.moves().filter(|m| m.pour).collect();
    let mut poured = match pourer {
        Some(p) => schedule::pour_all(target.cellar, p, target.reporter, target.jobs, &to_pour),
        None => to_pour
            .iter()
            .map(|_| Pour::Skipped {
                dependency: "nothing".into(),
            })
            .collect(),
    }
    .into_iter();
    // Each unit's pours, in the order of its moves.
    let mut pours: Vec<Vec<Option<Pour>>> = plan
        .units
        .iter()
        .map(|u| {
            u.moves
                .iter()
                .map(|m| if m.pour { poured.next() } else { None })
                .collect()
        })
        .collect();
    let mut outcome: Outcome = Vec::with_capacity(plan.units.len());
    for (i, unit) in plan.units.iter().enumerate() {
        let pours = std::mem::take(&mut pours[i]);
        let failed_before = unit
            .after
            .iter()
            .find(|&&a| outcome.get(a).is_some_and(Result::is_err));
        let result = match failed_before {
            Some(&a) => {
                let earlier = &plan.units[a];
                let what = format!("{} {}", earlier.package, crate::version::Shown(&earlier.to));
                // Kegs poured for it are not used.
                for (m, p) in unit.moves.iter().zip(&pours) {
                    if let Some(Pour::Done(_)) = p {
                        let _ = target.cellar.remove(m.name(), &m.step.version);
                    }
                }
                Err(match unit.kind {
                    UnitKind::Install | UnitKind::Reinstall => ApplyError::Dependency(what),
                    UnitKind::Upgrade => ApplyError::Earlier(format!("the upgrade of {what}")),
                })
            }
            None => run_unit(target, unit.kind, &unit.moves, pours),
        };
        outcome.push(result);
    }
    for (name, req) in &plan.requests {
        let failed = plan
            .units
            .iter()
            .zip(&outcome)
            .any(|(u, r)| u.package == *name && r.is_err());
        let asked = req.as_ref().map(|a| (&a.requirement, a.spelled.as_str()));
        if !failed && let Err(e) = target.records.set_request(name, asked) {
            target.reporter.event(Event::RecordNotWritten { error: &e });
        }
    }
    outcome
}

/// Long: the unit's three phases (every keg in the Cellar, the links switched in one transaction,
/// what follows the commit) share its moves and its transaction, and read in the order they happen.
fn run_unit(
    target: &Target,
    kind: UnitKind,
    moves: &[Move],
    pours: Vec<Option<Pour>>,
) -> Result<(), ApplyError> {
    let mut tx = Transaction::new(target.prefix, target.cellar, target.reporter);
    // 1. Every keg of the unit is in the Cellar, or the unit fails (its fresh kegs go).
    let mut ready = Vec::new();
    let mut failure = None;
    let mut loader = None;
    for (m, p) in moves.iter().zip(pours) {
        let shown = crate::version::show(&m.step.version);
        match p {
            Some(Pour::Done(p)) => {
                // A reinstall's keg took the place of the old one whole, at the same path: it
                // stays, complete and verified, whatever happens to the links.
                if kind != UnitKind::Reinstall {
                    tx.poured(m.name(), &m.step.version);
                }
                if p.needs_loader {
                    loader.get_or_insert(m);
                }
                ready.push((m, p.bins, p.link, p.files, p.stats.bytes));
            }
            Some(Pour::Failed(source)) => {
                failure.get_or_insert(ApplyError::Pour {
                    name: m.name().to_owned(),
                    version: shown,
                    source: Box::new(source),
                });
            }
            Some(Pour::Skipped { dependency }) => {
                failure.get_or_insert(ApplyError::Dependency(dependency));
            }
            None => {
                let keg = target.cellar.keg(m.name(), &m.step.version);
                match Receipt::read(&keg) {
                    Ok(r) => {
                        let bytes = keg_bytes(&keg, &r.files);
                        let files = crate::cellar::count_files(&keg, &r.files);
                        ready.push((m, r.bin, r.link, files, bytes));
                    }
                    Err(e) => {
                        failure.get_or_insert(e.into());
                    }
                }
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // 2. PREFIX/lib/ld.so for relocated bottles, then links, dependencies first; a failure
    // puts every switched link back (and takes away a loader link this unit made).
    if let Some(m) = loader {
        tx.loader().map_err(|source| ApplyError::Link {
            name: m.name().to_owned(),
            version: crate::version::show(&m.step.version),
            source: Box::new(source),
        })?;
    }
    let mut switched = Vec::new();
    for (m, bins, dirs, _, _) in &ready {
        if !m.link {
            switched.push(None);
            continue;
        }
        let (before, taken) = tx
            .link(m.name(), &m.step.version, bins, dirs, target.overwrite)
            .map_err(|source| ApplyError::Link {
                name: m.name().to_owned(),
                version: crate::version::show(&m.step.version),
                source: Box::new(source),
            })?;
        switched.push(Some((before, taken)));
    }
    tx.commit();
    // 3. Committed: marks, old kegs, and what the user is told.
    for ((m, _, _, files, bytes), switch) in ready.into_iter().zip(switched) {
        let (name, version) = (m.name(), &m.step.version);
        let (before, taken) = switch.unzip();
        for (link, from) in taken.iter().flatten() {
            target.reporter.event(Event::TookOver {
                link: link.strip_prefix(target.prefix).unwrap_or(link),
                from,
                by: name,
            });
        }
        if m.link && m.step.on_request {
            target.records.set(Mark::Unlinked, name, false)?;
        }
        if let Some(prev) = &m.from
            && m.remove_old
            && prev != version
        {
            target.cellar.remove(name, prev)?;
        }
        report(target, kind, m, files, bytes, before.flatten());
    }
    Ok(())
}

fn report(
    target: &Target,
    kind: UnitKind,
    m: &Move,
    files: usize,
    bytes: u64,
    linked_before: Option<Version>,
) {
    let (name, version) = (m.name(), &m.step.version);
    let keg = target.cellar.keg(name, version);
    let how = match (kind, &m.from) {
        (UnitKind::Upgrade, Some(from)) => Some(Arrival::Upgraded {
            from,
            down: m.action() == crate::plan::Action::Downgrade,
        }),
        (UnitKind::Upgrade, None) => Some(Arrival::NewDependency),
        (UnitKind::Install, _) if m.pour => Some(Arrival::Installed { keg: &keg }),
        (UnitKind::Install, _) => None,
        (UnitKind::Reinstall, _) => Some(Arrival::Reinstalled { keg: &keg }),
    };
    if let Some(how) = how {
        target.reporter.event(Event::Poured {
            how,
            name,
            version,
            files,
            bytes,
        });
    }
    // A switch of the linked version is said, for installs (an upgrade says it above).
    if kind == UnitKind::Install && m.link {
        match linked_before.filter(|b| b != version) {
            Some(was) => target.reporter.event(Event::Switched {
                name,
                version,
                how: switch(target, name, &was, version),
                was: &was,
            }),
            None if !m.pour => target.reporter.event(Event::Linked { name, version }),
            None => {}
        }
    }
}

/// What linking `version` in place of `before` amounts to.
fn switch(target: &Target, name: &str, before: &Version, version: &Version) -> Switch {
    // The same image under another version (a channel beside a version tag) is no downgrade,
    // whatever the versions' order.
    let digest = |v: &Version| {
        crate::cellar::receipt::Receipt::read(&target.cellar.keg(name, v))
            .ok()
            .map(|r| r.manifest_digest)
    };
    if digest(before).is_some() && digest(before) == digest(version) {
        Switch::SameContent
    } else if crate::references::channel(before).is_some()
        || crate::references::channel(version).is_some()
    {
        // A channel is never ordered against release versions.
        Switch::Other
    } else if before > version {
        Switch::Downgrade
    } else {
        Switch::Other
    }
}

/// Bytes in the regular files a receipt lists (for a keg this run did not pour).
fn keg_bytes(keg: &Path, files: &[String]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(keg.join(f)).ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}
