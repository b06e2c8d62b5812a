//! The prefix as the planner sees it — installed versions, what installed packages require of
//! their dependencies, pins, the version in use — and as it will be once the units planned
//! before have run (an overlay), so each package is planned on top of the ones before it.

use std::collections::BTreeMap;
use std::path::Path;

use semver::{Version, VersionReq};

use crate::cellar::Cellar;
use crate::formula::Formulary;
use crate::records::{Mark, Records};
use crate::resolve::Installed;

/// An argument that should name an installed package, perhaps with `@VERSION`.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("`{0}` names no package before `@`; write NAME@VERSION, e.g. hello@1.2.0")]
    NoName(String),
    #[error(
        "invalid version in `{arg}`: {reason}; expected NAME@X.Y.Z (and `{arg}` is neither installed nor a formula)"
    )]
    BadVersion { arg: String, reason: String },
}

/// What the planner reads: the Cellar, the formulae, the user's marks and links.
pub struct State<'a> {
    pub cellar: &'a Cellar,
    pub formulary: &'a Formulary,
    pub records: &'a Records,
    pub prefix: &'a Path,
    /// The version each package will be in use at after the units planned so far.
    moved: BTreeMap<String, Version>,
    /// Installed kegs, read once: (name, version).
    kegs: Vec<(String, Version)>,
    /// Requests this run makes before it records them (a dry run's `pkg upgrade NAME@REQ`
    /// plans with them and writes nothing).
    requests: BTreeMap<String, semver::VersionReq>,
}

impl<'a> State<'a> {
    pub fn new(
        cellar: &'a Cellar,
        formulary: &'a Formulary,
        records: &'a Records,
        prefix: &'a Path,
    ) -> State<'a> {
        let kegs = cellar
            .names()
            .into_iter()
            .flat_map(|name| {
                cellar
                    .installed_versions(&name)
                    .into_iter()
                    .map(move |v| (name.clone(), v))
            })
            .collect();
        State {
            cellar,
            formulary,
            records,
            prefix,
            moved: BTreeMap::new(),
            kegs,
            requests: BTreeMap::new(),
        }
    }

    /// Plans as if `name` were held to `requirement` (what `pkg upgrade NAME@REQ` asks for).
    pub fn hold(&mut self, name: &str, requirement: semver::VersionReq) {
        self.requests.insert(name.to_owned(), requirement);
    }

    /// What `name` is held to: this run's request, else the recorded one.
    pub fn request(&self, name: &str) -> Option<semver::VersionReq> {
        match self.requests.get(name) {
            Some(r) => Some(r.clone()),
            None => self.records.request(name),
        }
    }

    /// The version linked now (`opt/NAME`), when that keg is installed.
    pub fn linked(&self, name: &str) -> Option<Version> {
        crate::link::linked_version(self.prefix, name)
            .and_then(|v| crate::version::parse_brew(&v).ok())
            .filter(|v| self.cellar.is_installed(name, v))
    }

    /// The version in use now: the linked one, else the newest installed.
    pub fn in_use(&self, name: &str) -> Option<Version> {
        self.linked(name)
            .or_else(|| self.cellar.installed_versions(name).pop())
    }

    /// The version in use once the units planned so far have run.
    pub fn current(&self, name: &str) -> Option<Version> {
        self.moved.get(name).cloned().or_else(|| self.in_use(name))
    }

    /// Whether an earlier unit of the plan moves `name`.
    pub fn is_moved(&self, name: &str) -> bool {
        self.moved.contains_key(name)
    }

    /// Whether the keg is in the Cellar now or will be after the units planned so far.
    pub fn has_keg(&self, name: &str, version: &Version) -> bool {
        self.moved.get(name) == Some(version) || self.cellar.is_installed(name, version)
    }

    /// The version in use, or an error saying the package is not installed.
    pub fn require_installed(&self, name: &str) -> Result<Version, super::PlanError> {
        self.in_use(name)
            .ok_or_else(|| super::PlanError::NotInstalled {
                name: name.to_owned(),
                similar: super::similar_installed(self.cellar, name),
            })
    }

    /// Splits `NAME@VERSION` for commands that name one installed version. Names may hold an
    /// `@` (Homebrew-style `openssl@3`) and a version never does, so the last `@` separates
    /// them (`openssl@3@3.1.0`); an argument that is itself an installed package's or a
    /// formula's name is that name (`openssl@3`).
    pub fn name_and_version(&self, arg: &str) -> Result<(String, Option<Version>), ArgError> {
        let is_name = |name: &str| self.cellar.keg_dir_exists(name) || self.formulary.has(name);
        let Some((name, v)) = arg.rsplit_once('@').filter(|_| !is_name(arg)) else {
            return Ok((arg.to_owned(), None));
        };
        if name.is_empty() {
            return Err(ArgError::NoName(arg.to_owned()));
        }
        if !is_name(name) && !name.contains('@') && !name.contains('/') {
            // `tool@2` where neither `tool@2` nor `tool` is known: whatever it means, it is the
            // whole name that is not installed (a Homebrew version may be as short as `2`).
            return Ok((arg.to_owned(), None));
        }
        match crate::version::parse_brew(v) {
            Ok(v) => Ok((name.to_owned(), Some(v))),
            Err(e) => Err(ArgError::BadVersion {
                arg: arg.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Records that a unit moves `name` to `version`, taking the old keg away when `remove_old`.
    pub fn apply(&mut self, name: &str, version: &Version, remove_old: bool) {
        if remove_old && let Some(old) = self.current(name) {
            self.kegs.retain(|(n, v)| !(n == name && *v == old));
        }
        if !self.kegs.iter().any(|(n, v)| n == name && v == version) {
            self.kegs.push((name.to_owned(), version.clone()));
        }
        self.moved.insert(name.to_owned(), version.clone());
    }
}

impl Installed for State<'_> {
    fn versions(&self, name: &str) -> Vec<Version> {
        let mut v: Vec<Version> = self
            .kegs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect();
        v.sort();
        v
    }

    fn requirements(&self) -> Vec<(String, VersionReq, String)> {
        let mut out = Vec::new();
        for (name, version) in &self.kegs {
            let Ok(formula) = self.formulary.load(name) else {
                continue;
            };
            if let Some(spec) = formula.versions.get(version) {
                for (dep, req) in &spec.depends_on {
                    out.push((
                        dep.clone(),
                        req.clone(),
                        format!("{name} {}", crate::version::Shown(version)),
                    ));
                }
            }
        }
        out
    }

    fn pinned(&self, name: &str) -> Option<Version> {
        if self.records.has(Mark::Pinned, name) {
            self.current(name)
        } else {
            None
        }
    }
}

impl crate::report::Classify for ArgError {
    /// Every ArgError is about what the user gave.
    fn bad_input(&self) -> bool {
        true
    }
}
