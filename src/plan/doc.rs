//! The `--json` documents of install, upgrade and outdated: typed, with a `schema`. A dry run
//! prints the document of the plan; the run the document of what it did — the same, `dry_run`
//! aside, when nothing fails.

use semver::Version;

use super::{Action, Note, Plan, UnitKind};

/// Version of these documents; bump when a field changes meaning.
pub const SCHEMA: u32 = 1;

fn show(v: &Version) -> String {
    crate::version::show(v)
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameVersion {
    pub name: String,
    pub version: String,
}

/// One package moved: installed, upgraded or downgraded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub name: String,
    pub from: Option<String>,
    pub to: String,
    pub action: Action,
}

/// A package an upgrade asked for, from and to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upgraded {
    pub name: String,
    pub from: Option<String>,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldBack {
    pub name: String,
    /// Where it stays (or goes to).
    pub version: String,
    /// The newest version held back.
    pub latest: String,
    pub by: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotUpgraded {
    pub name: String,
    pub version: String,
    pub latest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub name: String,
    pub version: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failed {
    pub name: String,
    pub error: String,
}

/// What `pkg install --json` and `pkg upgrade --json` print.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    pub schema: u32,
    pub dry_run: bool,
    /// Every package put at a new version, dependencies first.
    pub moved: Vec<Change>,
    /// The packages an upgrade was asked for that moved.
    pub upgraded: Vec<Upgraded>,
    pub up_to_date: Vec<NameVersion>,
    /// Asked for and installed already.
    pub unchanged: Vec<NameVersion>,
    /// `pkg install NAME` of an outdated package, without `--upgrade`.
    pub not_upgraded: Vec<NotUpgraded>,
    pub pinned: Vec<NameVersion>,
    pub held_back: Vec<HeldBack>,
    /// Installed packages whose formula is gone.
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
}

impl Document {
    /// The document of `plan`; `failures` (unit index, message) for what the run could not do
    /// (none for a dry run).
    /// Long: one arm per kind of unit and note, each filling its list of the document.
    pub fn new(plan: &Plan, dry_run: bool, failures: &[(usize, String)]) -> Document {
        let failed_unit = |i: usize| failures.iter().any(|(f, _)| *f == i);
        let mut d = Document {
            schema: SCHEMA,
            dry_run,
            moved: Vec::new(),
            upgraded: Vec::new(),
            up_to_date: Vec::new(),
            unchanged: Vec::new(),
            not_upgraded: Vec::new(),
            pinned: Vec::new(),
            held_back: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
        };
        for note in &plan.notes {
            let nv = |name: &str, version: &Version| NameVersion {
                name: name.to_owned(),
                version: show(version),
            };
            match note {
                Note::Unchanged { name, version } | Note::Unlinked { name, version } => {
                    if !d.unchanged.iter().any(|u| u.name == *name) {
                        d.unchanged.push(nv(name, version));
                    }
                }
                Note::NotUpgraded {
                    name,
                    version,
                    latest,
                } => d.not_upgraded.push(NotUpgraded {
                    name: name.clone(),
                    version: show(version),
                    latest: show(latest),
                }),
                Note::UpToDate { name, version } => d.up_to_date.push(nv(name, version)),
                Note::Pinned { name, version } => d.pinned.push(nv(name, version)),
                Note::Held {
                    name,
                    version,
                    hold,
                } => d.held_back.push(HeldBack {
                    name: name.clone(),
                    version: show(version),
                    latest: show(&hold.version),
                    by: hold.by.clone(),
                    reason: hold.reason.clone(),
                }),
                Note::Vanished {
                    name,
                    version,
                    reason,
                } => d.skipped.push(Skipped {
                    name: name.clone(),
                    version: show(version),
                    reason: reason.clone(),
                }),
                Note::Failed { name, error } => d.failed.push(Failed {
                    name: name.clone(),
                    error: error.clone(),
                }),
            }
        }
        for (i, unit) in plan.units.iter().enumerate() {
            if let Some(hold) = &unit.hold {
                d.held_back.push(HeldBack {
                    name: unit.package.clone(),
                    version: show(&unit.to),
                    latest: show(&hold.version),
                    by: hold.by.clone(),
                    reason: hold.reason.clone(),
                });
            }
            if let Some((_, error)) = failures.iter().find(|(f, _)| *f == i) {
                d.failed.push(Failed {
                    name: unit.package.clone(),
                    error: error.clone(),
                });
                continue;
            }
            if failed_unit(i) {
                continue;
            }
            if unit.kind == UnitKind::Upgrade {
                d.upgraded.push(Upgraded {
                    name: unit.package.clone(),
                    from: unit.from.as_ref().map(show),
                    to: show(&unit.to),
                });
            }
            d.moved.extend(unit.moves.iter().map(|m| Change {
                name: m.name().to_owned(),
                from: m.from.as_ref().map(show),
                to: show(&m.step.version),
                action: m.action(),
            }));
        }
        d
    }
}
