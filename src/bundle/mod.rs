//! A project's packages: the `Pkgfile` (what it asks for) and the `Pkgfile.lock` (exactly the
//! versions, repositories and digests that resolved to, per platform), so that every machine
//! installs the same bytes. Locking resolves with the same resolver as `pkg install`, against no
//! installed state (a lock is the project's, not the machine's); installing from a lock pins each
//! formula to its locked version and digest, so a moved tag or a newer release changes nothing.

pub mod lockfile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};

use crate::formula::{Formula, Formulary, Source, Tag, VersionSpec};
use crate::platform::Platform;
use crate::resolve::{self, Request, ResolveError};
pub use lockfile::{Lock, Locked};
use lockfile::{LockedLayer, LockedPlatform};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "no Pkgfile at {}: write one (`[packages]`, one `NAME = \"REQUIREMENT\"` a line; `pkg bundle dump > Pkgfile` writes what this prefix has), or name another with --file",
        path.display()
    )]
    NoPkgfile { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: `{name}`: {source}", path.display())]
    Request {
        path: PathBuf,
        name: String,
        #[source]
        source: Box<ResolveError>,
    },
    #[error("{}: {source}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: Box<ResolveError>,
    },
    #[error(
        "{} has changed since {} was written ({what}); run `pkg bundle lock` (or leave out --locked)",
        pkgfile.display(),
        lock.display()
    )]
    Stale {
        pkgfile: PathBuf,
        lock: PathBuf,
        what: String,
    },
    #[error("{name} {version} for {platform}: {source}")]
    Image {
        name: String,
        version: String,
        platform: String,
        #[source]
        source: Box<crate::pour::PourError>,
    },
    #[error("{} is missing; `pkg bundle lock` writes it", path.display())]
    NoLock { path: PathBuf },
    /// A lock entry the formulae (or the Pkgfile) contradict: a lock is checked, not believed.
    #[error(
        "{}:{line}: {what}. pkg installs nothing from a lock that disagrees with the formulae; `pkg bundle lock` writes it again from them",
        path.display()
    )]
    Refused {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{}: written by a newer pkg (lock schema {schema}); upgrade pkg", path.display())]
    TooNew { path: PathBuf, schema: u32 },
}

/// One package a Pkgfile asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    /// As written (`^1.2`, `*`).
    pub version: String,
    /// Link it into the prefix (default) or leave it unlinked.
    pub link: bool,
    /// Only on these platforms (`linux/amd64`, `darwin`); `None`: everywhere.
    pub platforms: Option<Vec<String>>,
}

/// A parsed `Pkgfile`.
#[derive(Clone, Debug, Default)]
pub struct Pkgfile {
    pub path: PathBuf,
    pub packages: Vec<Wanted>,
    /// Taps: name → source (directory, git URL, or `api:URL`).
    pub taps: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    packages: BTreeMap<String, Entry>,
    #[serde(default)]
    taps: BTreeMap<String, String>,
}

/// A package line: `"REQUIREMENT"` or `{ version, link, platforms }`. Read by hand rather than
/// as an untagged enum, so a typo says what is wrong ("unknown field `verion`, expected one of
/// `version`, `link`, `platforms`") instead of "data did not match any variant".
enum Entry {
    Version(String),
    Table(Table),
}

impl<'de> serde::Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Entry, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Entry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a requirement like \"^1.2\" or \"*\", or a table like { version = \"^1.2\", link = false, platforms = [\"linux/amd64\"] }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry::Version(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Entry::Table)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default = "any")]
    version: String,
    #[serde(default = "yes")]
    link: bool,
    platforms: Option<Vec<String>>,
}

fn any() -> String {
    "*".into()
}
fn yes() -> bool {
    true
}

impl Pkgfile {
    pub fn read(path: &Path) -> Result<Pkgfile, BundleError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BundleError::NoPkgfile {
                    path: path.to_owned(),
                }
            } else {
                BundleError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Pkgfile::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Pkgfile, BundleError> {
        let file: File = toml::from_str(text).map_err(|e| BundleError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut packages = Vec::new();
        for (name, entry) in file.packages {
            let (version, link, platforms) = match entry {
                Entry::Version(v) => (v, true, None),
                Entry::Table(t) => (t.version, t.link, t.platforms),
            };
            let wanted = Wanted {
                name,
                version,
                link,
                platforms,
            };
            // Refused here, with the file and the name, rather than at install time.
            wanted.request().map_err(|source| BundleError::Request {
                path: path.to_owned(),
                name: wanted.name.clone(),
                source: Box::new(source),
            })?;
            packages.push(wanted);
        }
        Ok(Pkgfile {
            path: path.to_owned(),
            packages,
            taps: file.taps,
        })
    }

    /// Where its lock goes: `Pkgfile.lock` beside it.
    pub fn lock_path(&self) -> PathBuf {
        lock_path_for(&self.path)
    }

    /// The packages it installs but never links (`link = false`).
    pub fn kept_unlinked(&self) -> Vec<String> {
        self.packages
            .iter()
            .filter(|w| !w.link)
            .map(|w| w.plain_name().to_owned())
            .collect()
    }

    /// The packages meant for `host`.
    pub fn for_platform<'a>(&'a self, host: &'a Platform) -> impl Iterator<Item = &'a Wanted> {
        self.packages.iter().filter(move |w| {
            w.platforms
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| host.matches_pattern(p)))
        })
    }
}

impl Wanted {
    /// The package's name without a formula source (`zz/signed/sigtool` → `sigtool`): what the
    /// Cellar, links and the lock's entries are named by.
    pub fn plain_name(&self) -> &str {
        plain(&self.name)
    }

    /// The request for the package itself (its source, if named, is chosen in the formulary).
    pub fn request(&self) -> Result<Request, ResolveError> {
        let v = self.version.trim();
        let name = self.plain_name();
        if v.is_empty() || v == "*" {
            Request::parse(name)
        } else {
            Request::parse(&format!("{name}@{v}"))
        }
    }
}

/// Where the lock of the Pkgfile at `path` goes: `NAME.lock` beside it.
pub fn lock_path_for(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "Pkgfile".into());
    name.push(".lock");
    path.with_file_name(name)
}

/// The lock at `lock_path` as `--frozen` installs it: as it is, without reading the Pkgfile at
/// `pkgfile` for anything but its taps — the lock adds no tap the Pkgfile does not name unless
/// it is among `known` (the taps already added; without a Pkgfile, only those).
pub fn frozen_lock(
    pkgfile: &Path,
    lock_path: &Path,
    known: &[String],
) -> Result<Lock, BundleError> {
    let lock = Lock::read(lock_path)?;
    let named = Pkgfile::read(pkgfile).map(|p| p.taps).unwrap_or_default();
    if let Some((tap, source)) = lock
        .taps
        .iter()
        .find(|(n, s)| named.get(*n) != Some(*s) && !known.contains(n))
    {
        let text = std::fs::read_to_string(lock_path).unwrap_or_default();
        return Err(BundleError::Refused {
            line: line_of(&text, "[taps]"),
            path: lock_path.to_owned(),
            what: format!("its [taps] add `{tap}` from {source}, which the Pkgfile does not name"),
        });
    }
    Ok(lock)
}

/// What a lock installs on the platform `here`: a request at its locked version for each
/// package the Pkgfile asks for that is locked for `here`, and those asked for but locked only
/// for other platforms (said, never skipped in silence).
pub fn requests_for<'a>(
    lock: &'a Lock,
    here: &str,
) -> Result<(Vec<Request>, Vec<&'a Locked>), ResolveError> {
    let asked = lock
        .packages
        .iter()
        .filter(|p| lock.requested.keys().any(|r| plain(r) == p.name));
    let (here_too, elsewhere): (Vec<&Locked>, Vec<&Locked>) =
        asked.partition(|p| p.platforms.iter().any(|pl| pl.platform == here));
    let requests = here_too
        .iter()
        .map(|p| Request::parse(&format!("{}@{}", p.name, p.version)))
        .collect::<Result<_, _>>()?;
    Ok((requests, elsewhere))
}

/// What is remembered for a package's later upgrades: what the Pkgfile asks for (`^1`, `1.2`),
/// not the exact version the lock pinned; nothing for `*` or no requirement.
pub fn remembered_request(lock: &Lock, name: &str) -> Option<crate::plan::Asked> {
    let spelled = lock
        .requested
        .iter()
        .find(|(r, _)| plain(r) == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v != "*")?;
    let request = Request::parse(&format!("{name}@{spelled}")).ok()?;
    let requirement = request.range()?.clone();
    Some(crate::plan::Asked {
        requirement,
        spelled,
    })
}

/// A Pkgfile name without its formula source (`SOURCE/NAME` → `NAME`).
pub fn plain(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(_, n)| n)
}

/// Nothing installed: what a lock resolves against.
struct Nothing;

impl resolve::Installed for Nothing {
    fn versions(&self, _: &str) -> Vec<Version> {
        Vec::new()
    }
}

/// Resolves a Pkgfile's packages for `host`: each with its formula and version, dependencies
/// before dependents.
pub fn resolve(
    pkgfile: &Pkgfile,
    formulary: &Formulary,
    host: &Platform,
) -> Result<resolve::Resolution, BundleError> {
    // `SOURCE/NAME` entries take NAME from that source.
    let mut formulary = formulary.clone();
    for w in pkgfile.for_platform(host) {
        formulary
            .choose(&w.name)
            .map_err(|source| BundleError::Resolve {
                path: pkgfile.path.clone(),
                source: Box::new(ResolveError::Formula(source)),
            })?;
    }
    let requests: Vec<Request> = pkgfile
        .for_platform(host)
        .map(|w| w.request())
        .collect::<Result<_, _>>()
        .map_err(|source| BundleError::Resolve {
            path: pkgfile.path.clone(),
            source: Box::new(source),
        })?;
    resolve::resolve(&requests, &formulary, &Nothing, host).map_err(|source| BundleError::Resolve {
        path: pkgfile.path.clone(),
        source: Box::new(source),
    })
}

/// The formulary with each locked package's formula pinned to its locked version: that version
/// only, from the locked repository and tag, with the locked digest and exactly the locked
/// dependencies. A formula that can no longer be found is made from the lock alone.
pub fn pinned_formulary(lock: &Lock, formulary: &Formulary) -> Formulary {
    let mut out = formulary.clone();
    for p in &lock.packages {
        let Ok(version) = crate::version::parse_brew(&p.version) else {
            continue;
        };
        // The formula from the source the lock recorded; made from the lock alone only when
        // no source has it (an ambiguous name is never replaced by one without a policy).
        let mut formula = match load_locked(formulary, p) {
            Ok(f) => f,
            Err(crate::formula::FormulaError::NotFound { .. }) => Formula {
                name: p.name.clone(),
                desc: format!("{} (from a Pkgfile.lock)", p.name),
                homepage: String::new(),
                license: None,
                bin: None,
                link: Vec::new(),
                keg_only: false,
                platforms: None,
                versions: BTreeMap::new(),
                origin: crate::formula::Origin::Embedded,
                source: None,
                verify: None,
            },
            Err(_) => continue,
        };
        let bottles = formula
            .versions
            .get(&version)
            .map(|s| s.bottles.clone())
            .unwrap_or_default();
        let Ok(repository) = p.repository.parse::<crate::registry::Repository>() else {
            continue;
        };
        let depends_on = p
            .depends_on
            .iter()
            .filter_map(|(d, v)| {
                let v = crate::version::parse_brew(v).ok()?;
                Some((d.clone(), VersionReq::parse(&format!("={v}")).ok()?))
            })
            .collect();
        formula.versions = BTreeMap::from([(
            version,
            VersionSpec {
                repository: Source::Registry(repository),
                tag: Tag(p.tag.clone()),
                digest: Some(p.digest.clone()),
                depends_on,
                bottles,
            },
        )]);
        out = out.with(formula);
    }
    out
}

/// The formula source a lock entry's `formula` names (`tap acme` → `acme`).
fn source_of(formula: &str) -> Option<&str> {
    if let Some(tap) = formula.strip_prefix("tap ") {
        return Some(tap);
    }
    match formula {
        "install by reference" => Some(crate::formula::REFERENCES),
        "built into pkg" => Some(crate::formula::BUILTIN),
        f if f.starts_with("formula file ") => Some(crate::formula::LOCAL),
        _ => None,
    }
}

/// The formula of a lock entry: from the source the lock recorded when that source has it,
/// else by name.
fn load_locked(formulary: &Formulary, p: &Locked) -> Result<Formula, crate::formula::FormulaError> {
    match source_of(&p.formula).map(|s| format!("{s}/{}", p.name)) {
        Some(q) if formulary.has(&q) => formulary.load(&q),
        _ => formulary.load(&p.name),
    }
}

/// The 1-based line of `lock_text` where the entry of package `name` starts (its `name =`
/// line), else 1.
pub fn line_of(lock_text: &str, needle: &str) -> usize {
    lock_text
        .lines()
        .position(|l| l.trim() == needle)
        .map_or(1, |i| i + 1)
}

/// Checks every entry of `lock` against the formulae before anything is installed from it:
/// the repository must be the one the formula gives for that version (or, for a version the
/// formula no longer lists, one of the formula's repositories), and a digest the formula pins
/// must be the lock's. A package whose formula cannot be found anywhere is installed from the
/// lock alone; its content is still taken from the cache only for the locked repository.
pub fn check_lock(lock: &Lock, path: &Path, formulary: &Formulary) -> Result<(), BundleError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for p in &lock.packages {
        let refuse = |what: String| BundleError::Refused {
            path: path.to_owned(),
            line: line_of(&text, &format!("name = \"{}\"", p.name)),
            what,
        };
        let formula = match load_locked(formulary, p) {
            Ok(f) => f,
            Err(crate::formula::FormulaError::NotFound { .. }) => continue,
            Err(e) => return Err(refuse(format!("`{}`: {e}", p.name))),
        };
        let version = crate::version::parse_brew(&p.version)
            .map_err(|e| refuse(format!("`{}`: version `{}`: {e}", p.name, p.version)))?;
        match formula.versions.get(&version) {
            Some(spec) => {
                if spec.repository.to_string() != p.repository {
                    return Err(refuse(format!(
                        "`{}` {} is locked at {}, but its formula ({}) gives {}",
                        p.name, p.version, p.repository, formula.origin, spec.repository
                    )));
                }
                if let Some(pinned) = &spec.digest
                    && *pinned != p.digest
                {
                    return Err(refuse(format!(
                        "`{}` {} is locked to {}, but its formula ({}) pins {pinned}",
                        p.name, p.version, p.digest, formula.origin
                    )));
                }
            }
            None => {
                if !formula
                    .versions
                    .values()
                    .any(|s| s.repository.to_string() == p.repository)
                {
                    return Err(refuse(format!(
                        "`{}` is locked at {}, a repository its formula ({}) never names",
                        p.name, p.repository, formula.origin
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Where a formula came from, the same on every machine: `tap acme`, `install by reference`,
/// `formula file hello.toml`, `built into pkg`.
pub fn describe_origin(origin: &crate::formula::Origin, prefix: &Path) -> String {
    let crate::formula::Origin::File(path) = origin else {
        return "built into pkg".into();
    };
    if let Ok(rel) = path.strip_prefix(prefix.join("var/pkg/taps")) {
        let parts: Vec<String> = rel
            .parent()
            .map(|p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .filter(|c| c != "formulae")
                    .collect()
            })
            .unwrap_or_default();
        return format!("tap {}", parts.join("/"));
    }
    if path.starts_with(prefix.join("var/pkg/references")) {
        return "install by reference".into();
    }
    format!(
        "formula file {}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    )
}

/// Locks a Pkgfile: resolves it for each platform (the host first), then records what each
/// package's tag points to now, and for each platform its manifest and layers.
pub fn lock(
    pkgfile: &Pkgfile,
    formulary: &Formulary,
    pourer: &crate::pour::Pourer,
    platforms: &[Platform],
    prefix: &Path,
) -> Result<Lock, BundleError> {
    // name → (formula, version, the platforms it is for)
    let mut chosen: BTreeMap<String, (Formula, Version, Vec<Platform>)> = BTreeMap::new();
    for platform in platforms {
        for step in resolve(pkgfile, formulary, platform)?.steps {
            let entry = chosen
                .entry(step.formula.name.clone())
                .or_insert_with(|| (step.formula.clone(), step.version.clone(), Vec::new()));
            entry.2.push(platform.clone());
        }
    }
    let versions: BTreeMap<String, String> = chosen
        .iter()
        .map(|(n, (_, v, _))| (n.clone(), crate::version::show(v)))
        .collect();
    let mut packages = Vec::new();
    for (name, (formula, version, on)) in &chosen {
        let spec = &formula.versions[version];
        let shown = crate::version::show(version);
        let mut locked_platforms = Vec::new();
        let mut top = None;
        for platform in on {
            let image = pourer
                .image_for(spec, platform)
                .map_err(|source| BundleError::Image {
                    name: name.clone(),
                    version: shown.clone(),
                    platform: platform.to_string(),
                    source: Box::new(source),
                })?;
            top.get_or_insert(image.digest.clone());
            locked_platforms.push(LockedPlatform {
                platform: platform.to_string(),
                manifest: image.platform_digest.clone(),
                layers: image
                    .manifest
                    .layers
                    .iter()
                    .map(|l| LockedLayer {
                        digest: l.digest.clone(),
                        size: l.size,
                    })
                    .collect(),
            });
        }
        let Some(digest) = top else { continue };
        packages.push(Locked {
            name: name.clone(),
            version: shown,
            repository: spec.repository.to_string(),
            tag: spec.tag.0.clone(),
            digest,
            formula: describe_origin(&formula.origin, prefix),
            depends_on: spec
                .depends_on
                .keys()
                .filter_map(|d| Some((d.clone(), versions.get(d)?.clone())))
                .collect(),
            platforms: locked_platforms,
        });
    }
    Ok(Lock {
        schema: lockfile::SCHEMA,
        platforms: platforms.iter().map(ToString::to_string).collect(),
        requested: pkgfile
            .packages
            .iter()
            .map(|w| (w.name.clone(), w.version.clone()))
            .collect(),
        taps: pkgfile.taps.clone(),
        packages,
    })
}

impl crate::report::Classify for BundleError {
    fn bad_input(&self) -> bool {
        match self {
            BundleError::Parse { .. }
            | BundleError::NoPkgfile { .. }
            | BundleError::Request { .. } => true,
            BundleError::Resolve { source, .. } => crate::report::Classify::bad_input(&**source),
            _ => false,
        }
    }
}
