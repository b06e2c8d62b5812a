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
    /// What the user asked for with `pkg install NAME@…` (or a Pkgfile), as written (`1.2`,
    /// `1.2.0`, `^1`); `null` when the newest is wanted.
    pub requested: Option<String>,
    /// What that means, which upgrades stay within (`~1.2`, `=1.2.0`, `^1`).
    pub requirement: Option<String>,
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

/// `pkg info --json`: one document whatever the number of names.
#[derive(Debug, serde::Serialize)]
pub struct InfoDoc {
    pub schema: u32,
    /// One per name found, in the order given.
    pub packages: Vec<Info>,
    /// The names that are neither a formula nor installed (the run exits 1).
    pub errors: Vec<NameError>,
}

/// A name `pkg info` found nothing for.
#[derive(Debug, serde::Serialize)]
pub struct NameError {
    pub name: String,
    pub message: String,
}

/// One name of `pkg info --json`: a formula and what is installed of it.
#[derive(Debug, serde::Serialize)]
pub struct Info {
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

/// `pkg leaves --json`: installed on request, needed by no other installed package.
#[derive(Debug, serde::Serialize)]
pub struct Leaves {
    pub schema: u32,
    pub leaves: Vec<Leaf>,
}

#[derive(Debug, serde::Serialize)]
pub struct Leaf {
    pub name: String,
    pub version: String,
}

/// `pkg which BIN… --json`.
#[derive(Debug, serde::Serialize)]
pub struct Owners {
    pub schema: u32,
    pub commands: Vec<Owner>,
}

/// The package a command in `PREFIX/bin` belongs to.
#[derive(Debug, serde::Serialize)]
pub struct Owner {
    pub command: String,
    #[serde(serialize_with = "display")]
    pub path: PathBuf,
    pub package: String,
    pub version: String,
    /// The file in the keg the link leads to.
    #[serde(serialize_with = "display")]
    pub target: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("there is no `{command}` in {}; `pkg list` shows what is installed", .dir.display())]
    NoCommand { command: String, dir: PathBuf },
    #[error("{} is not a link, so no package of pkg's owns it (it was put there by something else)", .path.display())]
    NotALink { path: PathBuf },
    #[error("{} leads to {}, outside this prefix's Cellar: no package of pkg's owns it", .path.display(), .target.display())]
    NotPkgs { path: PathBuf, target: PathBuf },
    #[error("reading {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
            formula: formula.map(formula_doc),
            installed,
            package,
        }
    }

    /// The packages installed on request (at the version in use) that no other installed
    /// package depends on: what the user chose, and could uninstall without breaking another.
    pub fn leaves(&self, in_use: impl Fn(&str) -> Option<semver::Version>) -> Leaves {
        let kegs = self.cellar.kegs();
        let needed: std::collections::BTreeSet<&str> = kegs
            .iter()
            .flat_map(|k| k.receipt.dependencies.keys().map(String::as_str))
            .collect();
        let leaves = kegs
            .iter()
            .filter(|k| k.receipt.installed_on_request && !needed.contains(k.name.as_str()))
            .filter(|k| in_use(&k.name).as_ref() == Some(&k.version))
            .map(|k| Leaf {
                name: k.name.clone(),
                version: show(&k.version),
            })
            .collect();
        Leaves {
            schema: SCHEMA,
            leaves,
        }
    }

    /// The package `command` (a name in `PREFIX/bin`, or a path to a link) belongs to, read
    /// off its link without following it.
    pub fn owner_of(&self, command: &str) -> Result<Owner, InventoryError> {
        let bin = self.prefix.join("bin");
        let path = if command.contains('/') {
            PathBuf::from(command)
        } else {
            bin.join(command)
        };
        let meta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => InventoryError::NoCommand {
                command: command.to_owned(),
                dir: path.parent().map_or(bin.clone(), Path::to_owned),
            },
            _ => InventoryError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        if !meta.file_type().is_symlink() {
            return Err(InventoryError::NotALink { path });
        }
        let target = std::fs::read_link(&path).map_err(|source| InventoryError::Io {
            path: path.clone(),
            source,
        })?;
        let link_dir = path.parent().unwrap_or(Path::new("."));
        let in_cellar = link::normalize(&link_dir.join(&target));
        let owner = link::owner(self.prefix, &path, &target);
        let version = in_cellar
            .strip_prefix(link::normalize(self.cellar.root()))
            .ok()
            .and_then(|rest| rest.components().nth(1))
            .and_then(|c| c.as_os_str().to_str())
            .map(str::to_owned);
        let (Some(package), Some(version)) = (owner, version) else {
            return Err(InventoryError::NotPkgs { path, target });
        };
        Ok(Owner {
            command: command.to_owned(),
            path,
            package,
            version,
            target: in_cellar,
        })
    }

    /// The files and links of a keg (not its directories, nor its `.pkg/` receipt), as paths.
    pub fn files(
        &self,
        name: &str,
        version: &semver::Version,
    ) -> Result<Vec<PathBuf>, crate::cellar::receipt::ReceiptError> {
        let keg = self.cellar.keg(name, version);
        let receipt = Receipt::read(&keg)?;
        let mut files: Vec<PathBuf> = receipt
            .files
            .iter()
            .map(|f| keg.join(f))
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
            .collect();
        files.sort();
        Ok(files)
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
            requested: self.records.request_spelled(name),
            requirement: self.records.request(name).map(|r| r.to_string()),
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
