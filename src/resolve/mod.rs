//! Version selection and dependency order: turns `NAME[@REQ]` requests into a plan of
//! (formula, version) steps, dependencies first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use semver::{Comparator, Op, Version, VersionReq};

use crate::formula::{Formula, FormulaError, Formulary};
use crate::platform::Platform;

/// One `NAME[@REQ]` from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub req: VersionReq,
    /// What the user typed after `@`, for messages.
    pub spelled: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("invalid version requirement `{spec}` in `{arg}`: {reason}")]
    BadRequirement {
        arg: String,
        spec: String,
        reason: String,
    },
    #[error(transparent)]
    Formula(#[from] FormulaError),
    /// A dependency's formula could not be loaded: says who needs it.
    #[error("{needed_by} needs `{name}`: {source}")]
    Dependency {
        name: String,
        /// `app 1.0.0`, or several joined with `, `.
        needed_by: String,
        source: FormulaError,
    },
    #[error("`{arg}` names no package before `@`; write NAME@VERSION, e.g. hello@1.2.0")]
    NoName { arg: String },
    #[error("no version of `{name}` matches `{req}` (required by {by}); available: {available}")]
    NoMatch {
        name: String,
        req: String,
        by: String,
        available: String,
    },
    #[error("conflicting requirements on `{name}`: {requirements}; available: {available}")]
    Conflict {
        name: String,
        requirements: String,
        available: String,
    },
    #[error("dependency cycle: {0}")]
    Cycle(String),
    #[error("`{name}` does not install on {host}; its formula allows only: {allowed}")]
    Platform {
        name: String,
        host: String,
        allowed: String,
    },
    #[error("the dependency requirements of the requested packages do not settle; involved: {0}")]
    NoFixpoint(String),
    /// A pinned package would have to change version.
    #[error("{wanted} but {name} is pinned at {}; `pkg unpin {name}` to allow it", crate::version::Shown(.version))]
    Pinned {
        name: String,
        version: Version,
        /// `app 2.0.0 needs lib ^2`.
        wanted: String,
    },
    /// A pinned package's version is no longer in its formula, so nothing can be planned with it.
    #[error(
        "{name} is pinned at {}, which its formula no longer lists; `pkg unpin {name}` to allow another version",
        crate::version::Shown(.version)
    )]
    PinnedUnavailable { name: String, version: Version },
    /// The plan needs a version that installed packages outside it do not accept.
    #[error("{wanted} but {held}")]
    HeldBack {
        name: String,
        /// `app 2.0.0 needs lib ^2`.
        wanted: String,
        /// `the installed tool 1.0.0 requires lib ^1`.
        held: String,
        /// `tool 1.0.0`: the installed packages that hold it back.
        holders: Vec<String>,
    },
}

impl ResolveError {
    /// What holds the plan back when it failed only because of a pin or of installed packages
    /// outside the plan (`the pin on lib`, `tool 1.0.0`); `None` for every other failure.
    pub fn held_by(&self) -> Option<String> {
        match self {
            ResolveError::Pinned { name, .. } | ResolveError::PinnedUnavailable { name, .. } => {
                Some(format!("the pin on {name}"))
            }
            ResolveError::HeldBack { holders, .. } => Some(holders.join(", ")),
            _ => None,
        }
    }
}

impl Request {
    fn newest(name: &str) -> Request {
        Request {
            name: name.to_owned(),
            req: VersionReq::STAR,
            spelled: None,
        }
    }

    /// What was asked for, to be remembered until the user asks otherwise: `None` for the
    /// newest (`NAME`); a range (`NAME@^1.2`, `NAME@1.2` — the 1.2 series) or one exact version
    /// (`NAME@1.2.3`), which upgrades stay within.
    pub fn range(&self) -> Option<&VersionReq> {
        self.spelled.as_ref().map(|_| &self.req)
    }

    /// [`Request::parse`] knowing the formulae: an argument that is itself a formula's name
    /// (Homebrew-style `openssl@3`) means that formula's newest version.
    pub fn parse_in(arg: &str, formulary: &Formulary) -> Result<Request, ResolveError> {
        if arg.contains('@') && formulary.has(arg) {
            return Ok(Request::newest(arg));
        }
        Request::parse(arg)
    }

    /// `NAME` (newest), `NAME@1.2.3` (exactly that version, as `cargo install` reads it),
    /// `NAME@1.2` (the 1.2 series: `~1.2`, as Homebrew's versioned names read), `NAME@1` (the 1
    /// series) or `NAME@REQ` for a semver range (`^1.2`, `~1.2`, `>=1, <2`). A requirement never
    /// holds an `@`, so the last one separates it: `openssl@3@^3.1` is `openssl@3` at `^3.1`.
    pub fn parse(arg: &str) -> Result<Request, ResolveError> {
        let Some((name, spec)) = arg.rsplit_once('@') else {
            return Ok(Request::newest(arg));
        };
        if name.is_empty() {
            return Err(ResolveError::NoName {
                arg: arg.to_owned(),
            });
        }
        let bad = |reason: String| ResolveError::BadRequirement {
            arg: arg.to_owned(),
            spec: spec.to_owned(),
            reason,
        };
        let spec_trim = spec.trim();
        // A full version is exact (its Homebrew revision too: see `Constraint::exact`).
        let series = spec_trim.split('.').count() == 2
            && spec_trim
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let req = match exact_of(spec_trim) {
            Some(v) => exactly(&v),
            // `1.2` is the 1.2 series (1.2.0, 1.2.7), never 1.3.0.
            None if series => {
                VersionReq::parse(&format!("~{spec_trim}")).map_err(|e| bad(e.to_string()))?
            }
            None => VersionReq::parse(spec_trim).map_err(|e| bad(e.to_string()))?,
        };
        Ok(Request {
            name: name.to_owned(),
            req,
            spelled: Some(spec_trim.to_owned()),
        })
    }
}

/// One package to put in place.
#[derive(Clone, Debug)]
pub struct Step {
    pub formula: Formula,
    pub version: Version,
    pub on_request: bool,
}

#[derive(Debug, Default)]
pub struct Resolution {
    /// Dependencies before their dependents.
    pub steps: Vec<Step>,
}

/// Where a requirement on a package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequiredBy {
    /// `NAME@REQ` on the command line.
    Request,
    /// A version selected for the plan depends on it.
    Dependency,
    /// An installed package outside the plan depends on it.
    Installed,
    /// The package is pinned at its current version.
    Pin,
}

#[derive(Clone)]
struct Constraint {
    /// `app 2.0.0` (the package and version that requires it), or the command line.
    by: String,
    req: VersionReq,
    source: RequiredBy,
    /// A full version asked for (`NAME@1.0.0_1`, a pin): the Homebrew revision must match
    /// too, which a `VersionReq` cannot say.
    exact: Option<Version>,
}

impl Constraint {
    /// `app 2.0.0 needs lib ^2`, `the installed tool 1.0.0 requires lib ^1`.
    fn describe(&self, name: &str) -> String {
        match self.source {
            RequiredBy::Request => format!("you asked for {name} {}", self.req),
            RequiredBy::Dependency => format!("{} needs {name} {}", self.by, self.req),
            RequiredBy::Installed => {
                format!("the installed {} requires {name} {}", self.by, self.req)
            }
            RequiredBy::Pin => format!("{name} is pinned ({})", self.req),
        }
    }

    /// Who requires it, as the conflict message names them.
    fn who(&self) -> String {
        match self.source {
            RequiredBy::Installed => format!("{} (installed)", self.by),
            _ => self.by.clone(),
        }
    }
}

/// What is installed: versions to keep when they still fit, the requirements installed
/// packages (outside the plan) place on their dependencies, so a plan never breaks them, and
/// pins, so a plan never moves a pinned package.
pub trait Installed {
    fn versions(&self, name: &str) -> Vec<Version>;
    /// `(dependency, requirement, "who requires it")`.
    fn requirements(&self) -> Vec<(String, VersionReq, String)> {
        Vec::new()
    }
    /// The version a pinned package is held at; `None` when it is not pinned.
    fn pinned(&self, _name: &str) -> Option<Version> {
        None
    }
}

/// A requirement matching exactly `version` (build metadata aside).
/// The exact version a request spells: a full version (`1.2.0`, `1.2.0_1`), or a Homebrew one
/// that is no requirement (`10.44_1`); `@1.2` stays the requirement `^1.2`.
fn exact_of(spelled: &str) -> Option<Version> {
    crate::version::parse(spelled).ok().or_else(|| {
        VersionReq::parse(spelled)
            .is_err()
            .then(|| crate::version::parse_brew(spelled).ok())
            .flatten()
    })
}

fn exactly(version: &Version) -> VersionReq {
    VersionReq {
        comparators: vec![Comparator {
            op: Op::Exact,
            major: version.major,
            minor: Some(version.minor),
            patch: Some(version.patch),
            pre: version.pre.clone(),
        }],
    }
}

/// The versions to install for `requests`, dependencies first.
///
/// A plan that fails on a pin blames the pin only when unpinning would let it through: if the
/// plan fails without that pin too, that failure (a miss, a conflict, an installed package
/// holding it back) is the one reported, since `pkg unpin` would not help.
pub fn resolve(
    requests: &[Request],
    formulary: &Formulary,
    installed: &dyn Installed,
    host: &Platform,
) -> Result<Resolution, ResolveError> {
    let err = match resolve_with_pins(requests, formulary, installed, host) {
        Ok(plan) => return Ok(plan),
        Err(e) => e,
    };
    let (ResolveError::Pinned { name, .. } | ResolveError::PinnedUnavailable { name, .. }) = &err
    else {
        return Err(err);
    };
    let unpinned = Unpinned {
        inner: installed,
        name,
    };
    match resolve(requests, formulary, &unpinned, host) {
        // Without the pin the plan fails for another reason: that is the one to say.
        Err(other)
            if !matches!(
                other,
                ResolveError::Pinned { .. } | ResolveError::PinnedUnavailable { .. }
            ) =>
        {
            Err(other)
        }
        // Unpinning it helps (or another pin stands in the way as well): the pin is the cause.
        _ => Err(err),
    }
}

/// What is installed, with one package's pin taken away.
struct Unpinned<'a> {
    inner: &'a dyn Installed,
    name: &'a str,
}

impl Installed for Unpinned<'_> {
    fn versions(&self, name: &str) -> Vec<Version> {
        self.inner.versions(name)
    }
    fn requirements(&self) -> Vec<(String, VersionReq, String)> {
        self.inner.requirements()
    }
    fn pinned(&self, name: &str) -> Option<Version> {
        if name == self.name {
            None
        } else {
            self.inner.pinned(name)
        }
    }
}

/// The selection as one fixpoint: rounds of a worklist over every name the selection reaches,
/// each name constrained by the requests, the selected versions' dependencies, installed
/// packages' requirements and pins, until a round changes nothing. Long (about 120 lines)
/// because a round's steps share its maps — the selection, this round's constraints and picks,
/// the worklist, the caches of installed versions and pins — and read in order as commented.
fn resolve_with_pins(
    requests: &[Request],
    formulary: &Formulary,
    installed: &dyn Installed,
    host: &Platform,
) -> Result<Resolution, ResolveError> {
    let mut formulae: BTreeMap<String, Formula> = BTreeMap::new();
    let requested: BTreeSet<&str> = requests.iter().map(|r| r.name.as_str()).collect();
    let mut selected: BTreeMap<String, Version> = BTreeMap::new();
    let held = installed.requirements();
    // What is installed of each name, read once (a round per level of a dependency chain would
    // read it again each time).
    let mut installed_versions: BTreeMap<String, Vec<Version>> = BTreeMap::new();
    let mut pins: BTreeMap<String, Option<Version>> = BTreeMap::new();

    // A round looks at every name the current selection reaches; a name it reaches for the first
    // time has its dependencies looked at in the same round (a worklist), so a chain of any depth
    // is found in one round and confirmed by the next. A round that changes nothing is the plan;
    // only requirements that keep chasing each other run into the bound.
    let mut round = 0;
    while round < 64 + 4 * formulae.len() {
        round += 1;
        let mut constraints = requested_and_selected(requests, &selected, &formulae);
        // The names this round starts with get their constraints from the last round's
        // selection only (as every round did before the worklist); a name first reached in this
        // round is looked at after the names that reach it.
        let initial: BTreeSet<String> = constraints.keys().cloned().collect();
        let mut queue: VecDeque<String> = initial.iter().cloned().collect();
        let mut next = BTreeMap::new();
        while let Some(name) = queue.pop_front() {
            if next.contains_key(&name) {
                continue;
            }
            let Some(cs) = constraints.get_mut(&name) else {
                continue;
            };
            let fresh = !initial.contains(&name);
            for (dep, req, by) in &held {
                // An installed package's requirement holds unless that package is being replaced:
                // it is in the last round's plan (or, for a name first reached in this round,
                // picked already in this one).
                let owner = by.split(' ').next().unwrap_or(by);
                let replaced = selected.contains_key(owner) || (fresh && next.contains_key(owner));
                if *dep == name && !replaced {
                    cs.push(Constraint {
                        by: by.clone(),
                        req: req.clone(),
                        source: RequiredBy::Installed,
                        exact: None,
                    });
                }
            }
            let pin = pins
                .entry(name.clone())
                .or_insert_with(|| installed.pinned(&name))
                .clone();
            if let Some(version) = pin {
                cs.push(Constraint {
                    by: format!("the pin on {name}"),
                    req: exactly(&version),
                    source: RequiredBy::Pin,
                    exact: Some(version),
                });
            }
            let cs = &constraints[&name];
            if !formulae.contains_key(&name) {
                formulae.insert(name.clone(), load(formulary, &name, cs)?);
            }
            let formula = &formulae[&name];
            let fits = |v: &Version| {
                cs.iter()
                    .all(|c| c.req.matches(v) && c.exact.as_ref().is_none_or(|e| e == v))
            };
            // A dependency already installed at a fitting version stays as it is.
            let keep = (!requested.contains(name.as_str()))
                .then(|| {
                    installed_versions
                        .entry(name.clone())
                        .or_insert_with(|| installed.versions(&name))
                        .iter()
                        .filter(|v| fits(v) && formula.versions.contains_key(v))
                        .max()
                        .cloned()
                })
                .flatten();
            let pick = keep.or_else(|| formula.versions.keys().rev().find(|v| fits(v)).cloned());
            let Some(pick) = pick else {
                return Err(no_version(&name, formula, cs, installed.pinned(&name)));
            };
            if !selected.contains_key(&name) {
                // Picked for the first time: what it needs that no one reached yet is looked at
                // in this round too (the rest next round, as before).
                for (dep, req) in &formula.versions[&pick].depends_on {
                    if initial.contains(dep) || next.contains_key(dep) {
                        continue;
                    }
                    constraints
                        .entry(dep.clone())
                        .or_default()
                        .push(Constraint {
                            by: format!("{name} {}", crate::version::Shown(&pick)),
                            req: req.clone(),
                            source: RequiredBy::Dependency,
                            exact: None,
                        });
                    queue.push_back(dep.clone());
                }
            }
            next.insert(name, pick);
        }
        if next == selected {
            return order::order(requests, &formulae, &selected, host);
        }
        selected = next;
    }
    Err(ResolveError::NoFixpoint(
        selected.keys().cloned().collect::<Vec<_>>().join(", "),
    ))
}

/// A round's first constraints: the command line's requests, and what the versions the last
/// round selected need.
fn requested_and_selected(
    requests: &[Request],
    selected: &BTreeMap<String, Version>,
    formulae: &BTreeMap<String, Formula>,
) -> BTreeMap<String, Vec<Constraint>> {
    let mut constraints: BTreeMap<String, Vec<Constraint>> = BTreeMap::new();
    for r in requests {
        constraints
            .entry(r.name.clone())
            .or_default()
            .push(Constraint {
                by: "the command line".into(),
                req: r.req.clone(),
                source: RequiredBy::Request,
                exact: r.spelled.as_deref().and_then(exact_of),
            });
    }
    for (name, version) in selected {
        add_dependencies(&mut constraints, name, version, &formulae[name]);
    }
    constraints
}

/// The formula of `name`; one that cannot be loaded names the packages that need it (`cs`).
fn load(formulary: &Formulary, name: &str, cs: &[Constraint]) -> Result<Formula, ResolveError> {
    formulary.load(name).map_err(|source| {
        let by: Vec<&str> = cs
            .iter()
            .filter(|c| matches!(c.source, RequiredBy::Dependency | RequiredBy::Installed))
            .map(|c| c.by.as_str())
            .collect();
        if by.is_empty() {
            ResolveError::Formula(source)
        } else {
            ResolveError::Dependency {
                name: name.to_owned(),
                needed_by: by.join(", "),
                source,
            }
        }
    })
}

/// Adds what `name` at `version` needs to `constraints`.
fn add_dependencies(
    constraints: &mut BTreeMap<String, Vec<Constraint>>,
    name: &str,
    version: &Version,
    formula: &Formula,
) {
    for (dep, req) in &formula.versions[version].depends_on {
        constraints
            .entry(dep.clone())
            .or_default()
            .push(Constraint {
                by: format!("{name} {}", crate::version::Shown(version)),
                req: req.clone(),
                source: RequiredBy::Dependency,
                exact: None,
            });
    }
}

fn available(formula: &Formula) -> String {
    let v: Vec<String> = formula.versions.keys().map(ToString::to_string).collect();
    v.join(", ")
}

fn no_version(
    name: &str,
    formula: &Formula,
    cs: &[Constraint],
    pinned: Option<Version>,
) -> ResolveError {
    // The pin is not part of what the plan asks for: without it, would anything fit?
    let cs: Vec<Constraint> = cs
        .iter()
        .filter(|c| c.source != RequiredBy::Pin)
        .cloned()
        .collect();
    let cs = cs.as_slice();
    // A pin that stands in the way: name what wants the package to move. Only when a version
    // meets everything else, so that `pkg unpin` would help; otherwise the real miss or
    // conflict is said below, as if there were no pin.
    if let Some(version) = pinned
        && formula
            .versions
            .keys()
            .any(|v| cs.iter().all(|c| c.req.matches(v)))
    {
        return match cs.iter().find(|c| !c.req.matches(&version)) {
            Some(c) => ResolveError::Pinned {
                name: name.to_owned(),
                version,
                wanted: c.describe(name),
            },
            None => ResolveError::PinnedUnavailable {
                name: name.to_owned(),
                version,
            },
        };
    }
    // What the plan asks for can be had, but installed packages outside it do not accept it.
    let (fresh, held): (Vec<&Constraint>, Vec<&Constraint>) =
        cs.iter().partition(|c| c.source != RequiredBy::Installed);
    let wanted = formula
        .versions
        .keys()
        .rev()
        .find(|v| fresh.iter().all(|c| c.req.matches(v)));
    if let Some(wanted) = wanted
        && !held.is_empty()
    {
        let holders: Vec<&Constraint> = held
            .iter()
            .copied()
            .filter(|c| !c.req.matches(wanted))
            .collect();
        return ResolveError::HeldBack {
            name: name.to_owned(),
            wanted: join_and(fresh.iter().map(|c| c.describe(name))),
            held: join_and(holders.iter().map(|c| c.describe(name))),
            holders: holders.iter().map(|c| c.by.clone()).collect(),
        };
    }
    // A single requirement that nothing satisfies is a plain miss; several that
    // are each satisfiable but not together are a conflict.
    let unsatisfiable = cs
        .iter()
        .find(|c| !formula.versions.keys().any(|v| c.req.matches(v)));
    match (cs, unsatisfiable) {
        ([c], _) | (_, Some(c)) => ResolveError::NoMatch {
            name: name.to_owned(),
            req: c.req.to_string(),
            by: c.who(),
            available: available(formula),
        },
        _ => ResolveError::Conflict {
            name: name.to_owned(),
            requirements: cs
                .iter()
                .map(|c| format!("{} requires {}", c.who(), c.req))
                .collect::<Vec<_>>()
                .join(", "),
            available: available(formula),
        },
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{} {}", s.formula.name, s.version)?;
        }
        Ok(())
    }
}

mod order;

impl crate::report::Classify for ResolveError {
    fn bad_input(&self) -> bool {
        match self {
            ResolveError::BadRequirement { .. } | ResolveError::NoName { .. } => true,
            ResolveError::Formula(f) => crate::report::Classify::bad_input(f),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
