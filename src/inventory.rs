//! What is installed, as `pkg list` and `pkg info` report it: kegs, the linked version, marks
//! and the links taken over with `--overwrite`, as typed documents for text and `--json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cellar::Cellar;
use crate::cellar::receipt::Receipt;
use crate::formula::Formula;
use crate::link::{self, owners::Takeover};
use crate::records::{Mark, Records};
use crate::version::show;

/// Version of the `pkg list --json` and `pkg info --json` documents.
pub const SCHEMA: u32 = 1;

/// What `list` and `info` read: the Cellar, the user's marks and the prefix's links.
pub struct Inventory<'a> {
    pub cellar: &'a Cellar,
    pub records: &'a Records,
    pub prefix: &'a Path,
}

/// One installed package (`pkg list --json`).
#[derive(Debug, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub versions: Vec<String>,
    pub linked: Option<String>,
    pub pinned: bool,
    pub unlinked: bool,
    pub installed_on_request: bool,
    /// Links of this package that another took with `--overwrite`.
    pub taken_over_by_others: Vec<Takeover>,
    /// Links this package took from others with `--overwrite`.
    pub taken_over_from_others: Vec<Takeover>,
}

/// `pkg list --json`.
#[derive(Debug, serde::Serialize)]
pub struct List {
    pub schema: u32,
    pub packages: Vec<Package>,
}

/// `pkg info --json`: a formula and what is installed of it.
#[derive(Debug, serde::Serialize)]
pub struct Info {
    pub schema: u32,
    /// `null` when the formula can no longer be found but kegs are installed.
    pub formula: Option<FormulaDoc>,
    pub installed: Vec<Installed>,
    #[serde(flatten)]
    pub package: Package,
}

#[derive(Debug, serde::Serialize)]
pub struct FormulaDoc {
    pub desc: String,
    pub homepage: String,
    pub license: Option<String>,
    pub bin: Option<Vec<String>>,
    pub source: String,
    pub newest: Option<String>,
    pub versions: Vec<VersionDoc>,
}

#[derive(Debug, serde::Serialize)]
pub struct VersionDoc {
    pub version: String,
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
    pub depends_on: BTreeMap<String, String>,
}

/// One keg of `pkg info --json`.
#[derive(Debug, serde::Serialize)]
pub struct Installed {
    pub version: String,
    #[serde(serialize_with = "display")]
    pub path: PathBuf,
    pub linked: bool,
    pub receipt: Receipt,
}

fn display<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&path.display())
}

impl Inventory<'_> {
    /// Every installed package, by name.
    pub fn list(&self) -> List {
        let takeovers = link::owners::list(self.prefix);
        let packages = self
            .cellar
            .names()
            .into_iter()
            .filter(|name| !self.cellar.installed_versions(name).is_empty())
            .map(|name| self.package(&name, &takeovers))
            .collect();
        List {
            schema: SCHEMA,
            packages,
        }
    }

    /// A formula (when it was found) and what is installed of it.
    pub fn info(&self, name: &str, formula: Option<&Formula>) -> Info {
        let package = self.package(name, &link::owners::list(self.prefix));
        let installed = self
            .cellar
            .kegs()
            .into_iter()
            .filter(|k| k.name == name)
            .map(|k| Installed {
                linked: package.linked.as_deref() == Some(show(&k.version).as_str()),
                version: show(&k.version),
                path: k.path,
                receipt: k.receipt,
            })
            .collect();
        Info {
            schema: SCHEMA,
            formula: formula.map(formula_doc),
            installed,
            package,
        }
    }

    fn package(&self, name: &str, takeovers: &[Takeover]) -> Package {
        let versions = self.cellar.installed_versions(name);
        let of = |pick: fn(&Takeover) -> &str| {
            takeovers
                .iter()
                .filter(|t| pick(t) == name)
                .cloned()
                .collect()
        };
        Package {
            name: name.to_owned(),
            installed_on_request: versions.iter().any(|v| {
                Receipt::read(&self.cellar.keg(name, v)).is_ok_and(|r| r.installed_on_request)
            }),
            versions: versions.iter().map(show).collect(),
            linked: link::linked_version(self.prefix, name),
            pinned: self.records.has(Mark::Pinned, name),
            unlinked: self.records.has(Mark::Unlinked, name),
            taken_over_by_others: of(|t| &t.from),
            taken_over_from_others: of(|t| &t.by),
        }
    }
}

fn formula_doc(f: &Formula) -> FormulaDoc {
    FormulaDoc {
        desc: f.desc.clone(),
        homepage: f.homepage.clone(),
        license: f.license.clone(),
        bin: f.bin.clone(),
        source: f.origin.to_string(),
        newest: f.newest().map(show),
        versions: f
            .versions
            .iter()
            .map(|(v, spec)| VersionDoc {
                version: show(v),
                repository: spec.repository.to_string(),
                tag: spec.tag.to_string(),
                digest: spec.digest.as_ref().map(ToString::to_string),
                depends_on: spec
                    .depends_on
                    .iter()
                    .map(|(d, r)| (d.clone(), r.to_string()))
                    .collect(),
            })
            .collect(),
    }
}
