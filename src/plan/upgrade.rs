//! Upgrade planning: each package's newest version that its installed dependents accept and
//! that moves no pinned package, planned dependents first, each on top of the units before.

use std::collections::{BTreeMap, BTreeSet};

use semver::{Version, VersionReq};

use super::{Move, Note, Plan, PlanError, State, Unit, UnitKind, deps_of, versions_of};
use crate::formula::Formula;
use crate::platform::Platform;
use crate::records::Mark;
use crate::resolve::{self, Installed as _, Request};

/// Why a package does not go to the newest version its formula has.
#[derive(Clone, Debug)]
pub struct Hold {
    /// The version held back (the newest one that is).
    pub version: Version,
    /// Who holds it back: `app 1.0.0`, `the pin on lib`.
    pub by: String,
    /// A sentence for the user, naming what holds it back.
    pub reason: String,
}

/// Where one package can go.
enum Choice {
    UpToDate,
    /// Every newer version is held back.
    Held(Hold),
    Upgrade {
        to: Version,
        plan: resolve::Resolution,
        hold: Option<Hold>,
    },
}

/// Long: units are planned on top of the ones before (the state overlays each), with who moved what
/// kept for ordering and for the notes; the loop shares that state.
pub(super) fn plan(state: &mut State, names: &[String], named: bool, keep_old: bool) -> Plan {
    let mut plan = Plan::default();
    // Who moved each package, so a later unit that builds on it runs only after it.
    let mut moved_by: BTreeMap<String, usize> = BTreeMap::new();
    let ordered = dependents_first(state, names);
    for name in &ordered {
        let Some(current) = state.current(name) else {
            plan.notes.push(Note::Failed {
                name: name.clone(),
                error: PlanError::NotInstalled {
                    name: name.clone(),
                    similar: super::similar_installed(state.cellar, name),
                }
                .to_string(),
            });
            continue;
        };
        if state.records.has(Mark::Pinned, name) {
            plan.notes.push(Note::Pinned {
                name: name.clone(),
                version: current,
            });
            continue;
        }
        let formula = match state.formulary.load(name) {
            Ok(f) => f,
            Err(e) => {
                let reason = format!(
                    "{name} {} is installed but its formula is gone ({e}); add its tap again (`pkg tap add`), or `pkg uninstall {name}`",
                    crate::version::Shown(&current)
                );
                plan.notes.push(if named {
                    Note::Failed {
                        name: name.clone(),
                        error: reason,
                    }
                } else {
                    Note::Vanished {
                        name: name.clone(),
                        version: current,
                        reason,
                    }
                });
                continue;
            }
        };
        let was_moved = state.is_moved(name);
        match choose(state, name, &current, &formula) {
            Ok(Choice::UpToDate) if was_moved => {}
            Ok(Choice::UpToDate) => plan.notes.push(Note::UpToDate {
                name: name.clone(),
                version: current,
            }),
            Ok(Choice::Held(hold)) => plan.notes.push(Note::Held {
                name: name.clone(),
                version: current,
                hold,
            }),
            Ok(Choice::Upgrade {
                to,
                plan: steps,
                hold,
            }) => {
                let versions = versions_of(&steps.steps);
                let mut after = BTreeSet::new();
                let mut moves = Vec::new();
                for step in &steps.steps {
                    let sname = &step.formula.name;
                    if let Some(&u) = moved_by.get(sname) {
                        after.insert(u);
                    }
                    let from = state.current(sname);
                    if from.as_ref() == Some(&step.version) {
                        continue;
                    }
                    let on_request = if sname == name {
                        on_request(state, name, &current)
                    } else {
                        false
                    };
                    let mut step = step.clone();
                    step.on_request = on_request;
                    moves.push(Move {
                        pour: !state.has_keg(sname, &step.version),
                        link: !state.records.has(Mark::Unlinked, sname),
                        remove_old: !keep_old,
                        deps: deps_of(&step, &versions),
                        from,
                        step,
                    });
                }
                for m in &moves {
                    state.apply(m.name(), &m.step.version, m.remove_old);
                    moved_by.insert(m.name().to_owned(), plan.units.len());
                }
                plan.units.push(Unit {
                    kind: UnitKind::Upgrade,
                    package: name.clone(),
                    from: Some(current),
                    to,
                    moves,
                    after: after.into_iter().collect(),
                    hold,
                });
            }
            Err(e) => plan.notes.push(Note::Failed {
                name: name.clone(),
                error: e.to_string(),
            }),
        }
    }
    // A package listed as up to date or held back that a later unit moved is said as moved.
    plan.notes.retain(|n| match n {
        Note::UpToDate { name, .. } | Note::Held { name, .. } => !moved_by.contains_key(name),
        _ => true,
    });
    plan
}

/// Whether the keg in use was installed on request (its upgrade keeps that).
fn on_request(state: &State, name: &str, current: &Version) -> bool {
    crate::cellar::receipt::Receipt::read(&state.cellar.keg(name, current))
        .map_or(true, |r| r.installed_on_request)
}

/// `names` with every package before the installed packages it depends on, so a dependency is
/// planned knowing where its dependents go; otherwise in name order.
fn dependents_first(state: &State, names: &[String]) -> Vec<String> {
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    // dependency → the wanted packages that depend on it.
    let mut needed_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (dep, _, by) in state.requirements() {
        let by = by.split(' ').next().unwrap_or_default().to_owned();
        if wanted.contains(dep.as_str()) && wanted.contains(by.as_str()) && by != dep {
            needed_by.entry(dep).or_default().insert(by);
        }
    }
    let mut sorted: Vec<String> = names.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut out = Vec::new();
    let mut placed = BTreeSet::new();
    while out.len() < sorted.len() {
        let next = sorted
            .iter()
            .find(|n| {
                !placed.contains(*n)
                    && needed_by
                        .get(*n)
                        .is_none_or(|by| by.iter().all(|b| placed.contains(b)))
            })
            // A cycle: take the first left, in name order.
            .or_else(|| sorted.iter().find(|n| !placed.contains(*n)))
            .cloned();
        let Some(next) = next else { break };
        placed.insert(next.clone());
        out.push(next);
    }
    out
}

/// The newest version of `name` its formula allows that every installed dependent accepts and
/// that needs no pinned package to move, with its plan; versions above it are held back.
/// Long: the candidate versions are filtered by the lane (channel or releases), by what installed
/// dependents accept and by pins, then each is planned; what holds a version back is gathered for
/// the note.
fn choose(
    state: &State,
    name: &str,
    current: &Version,
    formula: &Formula,
) -> Result<Choice, PlanError> {
    // A channel (`latest`) follows its own tag, never release versions, and a release never
    // moves to a channel.
    let lane = crate::references::channel(current);
    let newer: Vec<&Version> = formula
        .versions
        .keys()
        .rev()
        .filter(|v| *v > current && crate::references::channel(v) == lane)
        .collect();
    if newer.is_empty() {
        return Ok(Choice::UpToDate);
    }
    // What installed dependents (other than the package's own kegs) require of it.
    let dependents: Vec<(String, VersionReq)> = state
        .requirements()
        .into_iter()
        .filter(|(dep, _, by)| dep == name && by.split(' ').next() != Some(name))
        .map(|(_, req, by)| (by, req))
        .collect();
    let mut hold: Option<Hold> = None;
    let asked = state.request(name);
    for version in newer {
        if let Some(req) = asked.as_ref().filter(|r| !r.matches(version)) {
            hold.get_or_insert_with(|| Hold {
                version: version.clone(),
                by: format!("your request {name}@{req}"),
                reason: format!(
                    "{name} {} is outside {name}@{req}, which you asked for; `pkg install {name}` to follow the newest",
                    crate::version::Shown(version)
                ),
            });
            continue;
        }
        let against: Vec<&(String, VersionReq)> = dependents
            .iter()
            .filter(|(_, req)| !req.matches(version))
            .collect();
        if !against.is_empty() {
            hold.get_or_insert_with(|| Hold {
                version: version.clone(),
                by: against
                    .iter()
                    .map(|(by, _)| by.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: format!(
                    "{name} {} is held back by {}",
                    crate::version::Shown(version),
                    against
                        .iter()
                        .map(|(by, req)| format!("{by} (requires {name} {req})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            continue;
        }
        let request = Request::parse(&format!("{name}@{version}")).map_err(Box::new)?;
        match resolve::resolve(&[request], state.formulary, state, &Platform::host()) {
            Ok(plan) => {
                return Ok(Choice::Upgrade {
                    to: version.clone(),
                    plan,
                    hold,
                });
            }
            Err(e) => match e.held_by() {
                Some(by) => {
                    hold.get_or_insert_with(|| Hold {
                        version: version.clone(),
                        by,
                        reason: e.to_string(),
                    });
                }
                None => {
                    return Err(PlanError::Planning {
                        name: name.to_owned(),
                        version: crate::version::show(version),
                        source: Box::new(e),
                    });
                }
            },
        }
    }
    Ok(match hold {
        Some(hold) => Choice::Held(hold),
        None => Choice::UpToDate,
    })
}
