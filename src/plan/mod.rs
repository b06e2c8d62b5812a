//! The planner: from the request, the installed state, pins and formulae, one [`Plan`] of what
//! install and upgrade will do — the plan `--dry-run` prints, the run executes (`apply`), and
//! `outdated`, `fetch` and `deps` read.

pub mod doc;
pub mod removal;
pub mod state;
mod upgrade;

use std::collections::BTreeMap;

use semver::Version;

use crate::formula::FormulaError;
use crate::platform::Platform;
use crate::records::Mark;
use crate::resolve::{self, Request, ResolveError, Step};
pub use state::State;
pub use upgrade::Hold;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Resolve(#[from] Box<ResolveError>),
    #[error(transparent)]
    Formula(#[from] FormulaError),
    #[error("planning {name} {version}: {source}")]
    Planning {
        name: String,
        version: String,
        #[source]
        source: Box<ResolveError>,
    },
    #[error("`{name}` is not installed{}", installed_hint(.similar))]
    NotInstalled {
        name: String,
        /// Installed names like it (a typo's likely meaning).
        similar: Vec<String>,
    },
    #[error(
        "{name} {version} is installed but its formula no longer has that version, so it cannot be poured again; `pkg upgrade {name}` moves it to one the formula has"
    )]
    NotInFormula { name: String, version: String },
}

/// What a move does to a package, as the user is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A package that was not installed.
    Install,
    /// To a newer version than the one in use.
    Upgrade,
    /// To an older version than the one in use.
    Downgrade,
    /// The version in use, poured again.
    Reinstall,
}

/// One package put at one version: poured unless its keg is in the Cellar, then linked.
#[derive(Clone, Debug)]
pub struct Move {
    pub step: Step,
    /// The version in use before (linked, else the newest installed).
    pub from: Option<Version>,
    /// The keg must be poured (it is not in the Cellar yet).
    pub pour: bool,
    /// Its links are switched to it (not for a dependency the user unlinked).
    pub link: bool,
    /// The keg `from` is removed once the links are switched (an upgrade).
    pub remove_old: bool,
    /// Its dependencies as the receipt records them (name → version).
    pub deps: BTreeMap<String, String>,
}

impl Move {
    pub fn name(&self) -> &str {
        &self.step.formula.name
    }

    pub fn action(&self) -> Action {
        match &self.from {
            None => Action::Install,
            Some(from) if *from == self.step.version => Action::Reinstall,
            Some(from) if *from > self.step.version => Action::Downgrade,
            Some(_) => Action::Upgrade,
        }
    }
}

/// Whether a unit installs what was asked for or upgrades an installed package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    Install,
    Upgrade,
    /// `pkg reinstall`: the version in use poured again and put in place of its keg.
    Reinstall,
}

/// Moves that succeed or fail together: one package of an install, or one package's upgrade
/// with the dependencies it takes along.
#[derive(Clone, Debug)]
pub struct Unit {
    pub kind: UnitKind,
    /// The package asked for.
    pub package: String,
    pub from: Option<Version>,
    pub to: Version,
    /// Dependencies first.
    pub moves: Vec<Move>,
    /// Earlier units this one was planned on top of: it does not run when one of them failed.
    pub after: Vec<usize>,
    /// Newer versions than `to` that are held back.
    pub hold: Option<Hold>,
}

/// What the plan says of a package it does not move.
#[derive(Clone, Debug)]
pub enum Note {
    /// Installed already at the version asked for (and linked).
    Unchanged {
        name: String,
        version: Version,
    },
    /// Installed at the version asked for, unlinked on purpose by the user.
    Unlinked {
        name: String,
        version: Version,
    },
    /// `pkg install NAME` of an installed package that has a newer version.
    NotUpgraded {
        name: String,
        version: Version,
        latest: Version,
    },
    UpToDate {
        name: String,
        version: Version,
    },
    Pinned {
        name: String,
        version: Version,
    },
    /// Stays at `version`: everything newer is held back.
    Held {
        name: String,
        version: Version,
        hold: Hold,
    },
    /// Its formula is gone: nothing can be planned for it.
    Vanished {
        name: String,
        version: Version,
        reason: String,
    },
    /// Planning it failed.
    Failed {
        name: String,
        error: String,
    },
}

/// A version asked for on the command line or in a Pkgfile: what it means, and how it was
/// written (`1.2` is `~1.2`), so `bundle dump` writes it back as it came.
#[derive(Clone, Debug)]
pub struct Asked {
    pub requirement: semver::VersionReq,
    pub spelled: String,
}

/// Everything one command will do, in order.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// Installed kegs asked for by name: recorded as installed on request.
    pub on_request: Vec<(String, Version)>,
    pub notes: Vec<Note>,
    /// What was asked for (`hello@^1.2`, `hello@1.2.0`), or none (`hello`): remembered for each
    /// package whose install did not fail, so upgrades stay within it.
    pub requests: Vec<(String, Option<Asked>)>,
}

impl Plan {
    pub fn moves(&self) -> impl Iterator<Item = &Move> {
        self.units.iter().flat_map(|u| u.moves.iter())
    }

    /// Installs `names` without linking them (a Pkgfile's `link = false`): nothing of theirs
    /// is linked, not even for a moment.
    pub fn keep_unlinked(&mut self, names: &[String]) {
        for unit in &mut self.units {
            for m in &mut unit.moves {
                if names.contains(&m.step.formula.name) {
                    m.link = false;
                }
            }
        }
    }

    /// Whether anything has to be fetched.
    pub fn pours(&self) -> bool {
        self.moves().any(|m| m.pour)
    }

    /// The plan as a dry run prints it, a line a package: `install hello 1.2`,
    /// `upgrade lib 1.0 -> 2.0`, `downgrade hello 2.0 -> 1.3`, `already installed hello 1.2`
    /// (asked for, already there).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for note in &self.notes {
            if let Note::Unchanged { name, version } | Note::Unlinked { name, version } = note
                && !self.moves().any(|m| m.name() == name)
            {
                out.push(format!(
                    "already installed {name} {}",
                    crate::version::Shown(version)
                ));
            }
        }
        for m in self.moves() {
            let to = crate::version::Shown(&m.step.version);
            out.push(match (&m.from, m.action()) {
                (Some(from), Action::Upgrade) => {
                    format!(
                        "upgrade {} {} -> {to}",
                        m.name(),
                        crate::version::Shown(from)
                    )
                }
                (Some(from), Action::Downgrade) => {
                    format!(
                        "downgrade {} {} -> {to}",
                        m.name(),
                        crate::version::Shown(from)
                    )
                }
                _ => format!("install {} {to}", m.name()),
            });
        }
        out
    }
}

/// Plans `pkg install REQUEST…` (and, with `upgrade`, upgrades the requested packages that are
/// installed at an older version).
/// Long: a request's cases (not installed, installed and outdated, pinned, a channel) each decide a
/// unit or a note, against the state the units before it left.
pub fn install(state: &mut State, requests: &[Request], upgrade: bool) -> Result<Plan, PlanError> {
    let mut plan = Plan {
        requests: requests
            .iter()
            .map(|r| {
                let asked = r.range().cloned().map(|requirement| Asked {
                    requirement,
                    spelled: r.spelled.clone().unwrap_or_default(),
                });
                (r.name.clone(), asked)
            })
            .collect(),
        ..Plan::default()
    };
    let mut wanted = Vec::new();
    let mut to_upgrade = Vec::new();
    for request in requests {
        // `pkg install NAME` of an outdated package says so; it upgrades only with --upgrade.
        if request.spelled.is_none()
            && let Some(current) = state.in_use(&request.name)
        {
            let formula = state.formulary.load(&request.name)?;
            // (A newest version already in the Cellar is simply linked again.) The newest of
            // its lane: a channel's own tag, or the releases.
            let lane = crate::references::channel(&current);
            if let Some(newest) = formula
                .versions
                .keys()
                .rev()
                .find(|n| **n > current && crate::references::channel(n) == lane)
                .filter(|n| !state.has_keg(&request.name, n))
            {
                if upgrade {
                    to_upgrade.push(request.name.clone());
                } else {
                    plan.notes.push(Note::NotUpgraded {
                        name: request.name.clone(),
                        version: current,
                        latest: newest.clone(),
                    });
                }
                continue;
            }
        }
        wanted.push(request.clone());
    }
    // Pins hold here as in upgrades: a plan that would move a pinned package is refused.
    let resolved =
        resolve::resolve(&wanted, state.formulary, &*state, &Platform::host()).map_err(Box::new)?;
    let versions = versions_of(&resolved.steps);
    let mut unit_of: BTreeMap<String, usize> = BTreeMap::new();
    for step in &resolved.steps {
        let (name, version) = (step.formula.name.clone(), step.version.clone());
        let linked = state.linked(&name);
        let from = state.current(&name);
        let unlinked = state.records.has(Mark::Unlinked, &name);
        let mv = if state.has_keg(&name, &version) {
            if !step.on_request {
                continue;
            }
            plan.on_request.push((name.clone(), version.clone()));
            if unlinked {
                plan.notes.push(Note::Unlinked { name, version });
                continue;
            }
            if linked.as_ref() == Some(&version) {
                plan.notes.push(Note::Unchanged { name, version });
                continue;
            }
            plan.notes.push(Note::Unchanged {
                name: name.clone(),
                version: version.clone(),
            });
            Move {
                step: step.clone(),
                from: linked,
                pour: false,
                link: true,
                remove_old: false,
                deps: deps_of(step, &versions),
            }
        } else {
            Move {
                step: step.clone(),
                from,
                pour: true,
                link: step.on_request || !unlinked,
                remove_old: false,
                deps: deps_of(step, &versions),
            }
        };
        let after = step.formula.versions[&version]
            .depends_on
            .keys()
            .filter_map(|d| unit_of.get(d).copied())
            .collect();
        unit_of.insert(name.clone(), plan.units.len());
        state.apply(&name, &version, false);
        plan.units.push(Unit {
            kind: UnitKind::Install,
            package: name,
            from: mv.from.clone(),
            to: version,
            moves: vec![mv],
            after,
            hold: None,
        });
    }
    if !to_upgrade.is_empty() {
        let more = upgrade::plan(state, &to_upgrade, true, false);
        let base = plan.units.len();
        for mut unit in more.units {
            unit.after.iter_mut().for_each(|a| *a += base);
            plan.units.push(unit);
        }
        plan.notes.extend(more.notes);
    }
    Ok(plan)
}

/// Plans `pkg reinstall NAME…`: the version of each in use poured again from its formula, as
/// it was asked for (on request or not) and with the dependencies its receipt records; its
/// links stay as they are, unless the user unlinked it. Every name must be installed and its
/// version still in its formula, or nothing is planned.
pub fn reinstall(state: &mut State, names: &[String]) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    for name in names {
        let version = state.require_installed(name)?;
        let formula = state.formulary.load(name)?;
        if !formula.versions.contains_key(&version) {
            return Err(PlanError::NotInFormula {
                name: name.clone(),
                version: crate::version::show(&version),
            });
        }
        let receipt = crate::cellar::receipt::Receipt::read(&state.cellar.keg(name, &version));
        let (on_request, deps) = receipt
            .map(|r| (r.installed_on_request, r.dependencies))
            .unwrap_or((true, BTreeMap::new()));
        let linked = state.linked(name).as_ref() == Some(&version);
        plan.units.push(Unit {
            kind: UnitKind::Reinstall,
            package: name.clone(),
            from: Some(version.clone()),
            to: version.clone(),
            moves: vec![Move {
                step: Step {
                    formula,
                    version: version.clone(),
                    on_request,
                },
                from: Some(version),
                pour: true,
                link: linked,
                remove_old: false,
                deps,
            }],
            after: Vec::new(),
            hold: None,
        });
    }
    Ok(plan)
}

/// Plans `pkg upgrade [NAME…]`: every package its newest allowed version, dependents before
/// their dependencies, each on top of the ones before. `named`: the user named them (a
/// vanished formula is then a failure, not a skip).
pub fn upgrade(state: &mut State, names: &[String], named: bool, keep_old: bool) -> Plan {
    upgrade::plan(state, names, named, keep_old)
}

fn versions_of(steps: &[Step]) -> BTreeMap<String, String> {
    steps
        .iter()
        .map(|s| (s.formula.name.clone(), crate::version::show(&s.version)))
        .collect()
}

fn deps_of(step: &Step, versions: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    step.formula.versions[&step.version]
        .depends_on
        .keys()
        .filter_map(|d| Some((d.clone(), versions.get(d)?.clone())))
        .collect()
}

/// One installed package with a newer version in its formula.
#[derive(Clone, Debug)]
pub struct Outdated {
    pub name: String,
    pub current: Version,
    pub newest: Version,
    pub pinned: bool,
    /// What `pkg upgrade` would move it to; `None` when pinned or everything newer is held.
    pub allowed: Option<Version>,
    pub hold: Option<Hold>,
}

/// `pkg outdated`: the packages of `names` with a newer version, read off the very plan
/// `pkg upgrade` of the same names makes (returned too, for its notes).
pub fn outdated(state: &mut State, names: &[String], named: bool) -> (Vec<Outdated>, Plan) {
    let plan = upgrade::plan(state, names, named, false);
    let mut rows = Vec::new();
    for name in names {
        let Some(current) = state.in_use(name) else {
            continue;
        };
        let Ok(formula) = state.formulary.load(name) else {
            continue;
        };
        // The newest of its lane: a channel's own tag, or the releases (see `upgrade::choose`).
        let lane = crate::references::channel(&current);
        let Some(newest) = formula
            .versions
            .keys()
            .rev()
            .find(|v| **v > current && crate::references::channel(v) == lane)
            .cloned()
        else {
            continue;
        };
        let allowed = plan
            .moves()
            .find(|m| m.name() == name)
            .map(|m| m.step.version.clone());
        let hold = plan
            .notes
            .iter()
            .find_map(|n| match n {
                Note::Held { name: n, hold, .. } if n == name => Some(hold.clone()),
                _ => None,
            })
            .or_else(|| {
                plan.units
                    .iter()
                    .find(|u| u.package == *name)
                    .and_then(|u| u.hold.clone())
            });
        rows.push(Outdated {
            name: name.clone(),
            current,
            newest,
            pinned: state.records.has(Mark::Pinned, name),
            allowed,
            hold,
        });
    }
    (rows, plan)
}

fn installed_hint(similar: &[String]) -> String {
    match similar {
        [] => "; `pkg list` shows what is".into(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!("; did you mean one of: {}?", many.join(", ")),
    }
}

/// The installed names most like `name` (at most three), for "did you mean".
pub fn similar_installed(cellar: &crate::cellar::Cellar, name: &str) -> Vec<String> {
    crate::report::similar(name, cellar.names())
}

impl crate::report::Classify for PlanError {
    fn bad_input(&self) -> bool {
        match self {
            PlanError::Resolve(r) => r.bad_input(),
            PlanError::Formula(f) => f.bad_input(),
            _ => false,
        }
    }
}
