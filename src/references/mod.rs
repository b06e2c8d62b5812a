//! Installing by reference, without a formula: `pkg install ghcr.io/owner/repo:tag` (or
//! `…@sha256:…`) records a formula for it under `PREFIX/var/pkg/references/`, named after the
//! repository's last component, so list, info, upgrade and uninstall treat it like any other.

pub mod layout;
pub mod moved;
pub mod newer;

use std::path::{Path, PathBuf};

use semver::Version;

use crate::digest::Digest;
use crate::formula::{Formula, Origin, valid_name};
use crate::registry::Repository;
use crate::registry::repository::valid_tag;

#[derive(Debug, thiserror::Error)]
pub enum ReferencesError {
    #[error("invalid reference `{arg}`: {reason}")]
    Invalid { arg: String, reason: String },
    #[error(
        "`{arg}` would be installed as `{name}`, but a formula named `{name}` already exists ({origin}) for {other}; install that one with `pkg install {name}`"
    )]
    Collides {
        arg: String,
        name: String,
        origin: String,
        other: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Formula(#[from] crate::formula::FormulaError),
}

/// A parsed `REGISTRY/REPO:TAG` or `REGISTRY/REPO@DIGEST`.
#[derive(Clone, Debug)]
pub struct Reference {
    pub repository: Repository,
    /// A tag, or a digest's text.
    pub tag: String,
    pub digest: Option<Digest>,
}

/// Is this command-line argument a reference rather than `NAME[@REQ]`? (Formula names never hold `/`.)
pub fn is_reference(arg: &str) -> bool {
    arg.contains('/')
}

pub fn parse(arg: &str) -> Result<Reference, ReferencesError> {
    let bad = |reason: &str| ReferencesError::Invalid {
        arg: arg.to_owned(),
        reason: reason.to_owned(),
    };
    if arg.starts_with('.') || arg.starts_with('/') || arg.starts_with('~') {
        return Err(bad(
            "that is a path; pkg installs packages by NAME[@VERSION] or by REGISTRY/REPOSITORY[:TAG] (to install a directory, `pkg bottle` it first)",
        ));
    }
    if let Some((repo, digest)) = arg.split_once('@') {
        let digest: Digest = digest.parse().map_err(|e| bad(&format!("{e}")))?;
        let repository: Repository = repo.parse().map_err(|e| bad(&format!("{e}")))?;
        return Ok(Reference {
            repository,
            tag: digest.to_string(),
            digest: Some(digest),
        });
    }
    // The tag follows the last `:` after the last `/` (a registry may have a `:port`).
    let slash = arg.rfind('/').unwrap_or(0);
    let (repo, tag) = match arg[slash..].find(':') {
        Some(i) => (&arg[..slash + i], &arg[slash + i + 1..]),
        None => (arg, "latest"),
    };
    if !valid_tag(tag) {
        return Err(bad(&format!("`{tag}` is not a valid tag")));
    }
    let repository: Repository = repo.parse().map_err(|e| bad(&format!("{e}")))?;
    Ok(Reference {
        repository,
        tag: tag.to_owned(),
        digest: None,
    })
}

impl Reference {
    /// The package name: the repository's last path component; in a Homebrew tap's repository
    /// (`homebrew/core/NAME/N`), the formula name Homebrew's `github_packages.rb` made it from
    /// (`NAME@N`: `@` became `/`).
    pub fn name(&self) -> Result<String, ReferencesError> {
        let last = homebrew_formula_name(&self.repository.name).unwrap_or_else(|| {
            self.repository
                .name
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        if valid_name(&last) {
            Ok(last)
        } else {
            Err(ReferencesError::Invalid {
                arg: self.repository.to_string(),
                reason: format!("`{last}` cannot be a package name"),
            })
        }
    }

    /// [`Reference::name`], unless the image is named as Homebrew's `github_packages.rb` names
    /// one (`@` became `/`, `+` became `x`) for exactly one formula among `known`: then that
    /// formula (`…/gtkx3` → `gtk+3`, `acme/tap/openssl/3` → `openssl@3`).
    pub fn name_among(
        &self,
        known: impl FnOnce() -> Vec<String>,
    ) -> Result<String, ReferencesError> {
        let name = self.name()?;
        let repo = self.repository.name.as_str();
        // Only a name with `@` or `+` is spelled otherwise in its image.
        let named_for = |n: &str| {
            let image = image_name(n);
            image != n && (repo == image || repo.ends_with(&format!("/{image}")))
        };
        let mut matching = known().into_iter().filter(|n| n != &name && named_for(n));
        match (matching.next(), matching.next()) {
            (Some(only), None) => Ok(only),
            _ => Ok(name),
        }
    }

    /// The keg version: the tag when it is semver (a leading `v` allowed), else `0.0.0+tag.TAG`
    /// (`0.0.0+sha256.HEX12` for a digest): build metadata, not a pre-release, so that a plain
    /// `pkg install NAME` later resolves it like any version (a pre-release needs asking for).
    pub fn version(&self) -> Version {
        match &self.digest {
            Some(d) => {
                let label = format!("{}.{}", d.algorithm(), &d.hex()[..12]);
                Version::parse(&format!("0.0.0+{label}")).unwrap_or_else(|_| Version::new(0, 0, 0))
            }
            None => tag_version(&self.repository.name, &self.tag),
        }
    }
}

/// The version a tag of repository `repo` stands for: the tag when it is a version (a leading
/// `v` allowed), else `0.0.0+tag.TAG`.
pub fn tag_version(repo: &str, tag: &str) -> Version {
    // A Homebrew bottle's rebuild is the tag's `-N` (`1.0.0_1-2`): the same version, not a
    // pre-release.
    if homebrew_formula_name(repo).is_some()
        && let Some((version, rebuild)) = tag.rsplit_once('-')
        && !rebuild.is_empty()
        && rebuild.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = crate::version::parse_brew(version)
    {
        return v;
    }
    if let Ok(v) = crate::version::parse_brew(tag.strip_prefix('v').unwrap_or(tag)) {
        return v;
    }
    let ident = tag.replace('_', "-");
    Version::parse(&format!("0.0.0+tag.{ident}")).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// `REPOSITORY:TAG`, or `REPOSITORY@sha256:…` when the "tag" is a digest: a reference as the
/// user writes it (and as `pkg install` takes it back).
pub fn shown(repository: &impl std::fmt::Display, tag: &str) -> String {
    if tag.parse::<Digest>().is_ok() {
        format!("{repository}@{tag}")
    } else {
        format!("{repository}:{tag}")
    }
}

/// The channel a version was recorded for, when it came from a tag that is not a version
/// (`0.0.0+tag.latest`, `0.0.0+tag.latest.moved.3` → `latest`): such versions follow their tag
/// and are never ordered against release versions.
pub fn channel(v: &Version) -> Option<&str> {
    if (v.major, v.minor, v.patch) != (0, 0, 0) {
        return None;
    }
    let tag = v.build.as_str().strip_prefix("tag.")?;
    Some(match tag.rsplit_once(".moved.") {
        Some((head, n)) if n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => tag,
    })
}

/// A formula name as Homebrew's `github_packages.rb` names its image: `@` → `/`, `+` → `x`
/// (`openssl@3` → `openssl/3`, `gtk+3` → `gtkx3`).
pub fn image_name(formula: &str) -> String {
    formula.replace('@', "/").replace('+', "x")
}

/// `homebrew/TAP/NAME/N` → `NAME@N`, as Homebrew names the image of a versioned formula
/// (`openssl@3` → `homebrew/core/openssl/3`); `None` for any other repository.
pub fn homebrew_formula_name(repository: &str) -> Option<String> {
    let rest = repository.strip_prefix("homebrew/")?;
    let (_tap, image) = rest.split_once('/')?;
    match image.split_once('/') {
        Some((name, n)) if !n.contains('/') && !n.is_empty() => Some(format!("{name}@{n}")),
        Some(_) => None,
        None => Some(image.to_owned()),
    }
}

pub struct References {
    dir: PathBuf,
}

/// The formulae one run recorded for references, each with what was there before: when the
/// run is over ([`Recorded::finish`]) — or stops early, when this is dropped — every one whose
/// package did not get installed is put back as it was, so a failed or refused run leaves the
/// references as it found them.
pub struct Recorded<'a> {
    refs: References,
    cellar: &'a crate::cellar::Cellar,
    /// (name, version recorded, the file's text before).
    entries: Vec<(String, Version, Option<String>)>,
}

impl<'a> Recorded<'a> {
    pub fn new(prefix: &Path, cellar: &'a crate::cellar::Cellar) -> Recorded<'a> {
        Recorded {
            refs: References::new(prefix),
            cellar,
            entries: Vec::new(),
        }
    }

    /// `name` was recorded at `version`; `before` is what its file held (none: no file).
    pub fn push(&mut self, name: &str, version: Version, before: Option<String>) {
        self.entries.push((name.to_owned(), version, before));
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _, _)| n == name)
    }

    /// Puts back each record whose package is not installed now.
    pub fn finish(mut self) -> Result<(), ReferencesError> {
        self.put_back()
    }

    fn put_back(&mut self) -> Result<(), ReferencesError> {
        let mut first = Ok(());
        for (name, version, before) in std::mem::take(&mut self.entries) {
            if !self.cellar.is_installed(&name, &version)
                && let Err(e) = self.refs.restore(&name, before.as_deref())
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

impl Drop for Recorded<'_> {
    fn drop(&mut self) {
        let _ = self.put_back();
    }
}

impl References {
    pub fn new(prefix: &Path) -> References {
        References {
            dir: prefix.join("var/pkg/references"),
        }
    }

    /// What is recorded for `name` now (to put back if the install that records more fails).
    pub fn snapshot(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(format!("{name}.toml"))).ok()
    }

    /// Puts back what [`References::snapshot`] saw: the earlier formula, or none.
    pub fn restore(&self, name: &str, snapshot: Option<&str>) -> Result<(), ReferencesError> {
        let path = self.dir.join(format!("{name}.toml"));
        let io = |source| ReferencesError::Io {
            path: path.clone(),
            source,
        };
        match snapshot {
            Some(text) => {
                std::fs::create_dir_all(&self.dir).map_err(io)?;
                let mut tmp = crate::platform::temp_file_in(&self.dir).map_err(io)?;
                std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io)?;
                tmp.persist(&path).map_err(|e| io(e.error))?;
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            },
        }
        Ok(())
    }

    /// Forgets the formula recorded for `name` (its last keg was uninstalled); whether there
    /// was one.
    pub fn forget(&self, name: &str) -> Result<bool, ReferencesError> {
        let had = self.snapshot(name).is_some();
        self.restore(name, None)?;
        Ok(had)
    }

    /// The directory to search for recorded formulae.
    /// The names recorded here, sorted.
    pub fn names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                n.strip_suffix(".toml").map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    /// The formula recorded for `name`, with its file and text; `None` when there is none or
    /// it does not parse.
    pub(crate) fn recorded(&self, name: &str) -> Option<(PathBuf, String, Formula)> {
        let path = self.dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).ok()?;
        let formula = Formula::parse(&text, Origin::File(path.clone()), Some(name)).ok()?;
        Some((path, text, formula))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records `reference` as a version of its package's formula (creating it), refusing a name
    /// taken by a formula from elsewhere for another repository. Returns the name and version.
    pub fn record(
        &self,
        arg: &str,
        name: &str,
        reference: &Reference,
        existing: Option<Formula>,
    ) -> Result<(String, Version), ReferencesError> {
        self.record_or_check(arg, name, reference, existing, true)
    }

    /// What [`References::record`] would do, refusing what it refuses, writing nothing (for
    /// `pkg install --dry-run REFERENCE`).
    pub fn check(
        &self,
        arg: &str,
        name: &str,
        reference: &Reference,
        existing: Option<Formula>,
    ) -> Result<(String, Version), ReferencesError> {
        self.record_or_check(arg, name, reference, existing, false)
    }

    fn record_or_check(
        &self,
        arg: &str,
        name: &str,
        reference: &Reference,
        existing: Option<Formula>,
        write: bool,
    ) -> Result<(String, Version), ReferencesError> {
        let name = name.to_owned();
        let version = reference.version();
        let path = self.dir.join(format!("{name}.toml"));
        // A formula that already has this repository and tag is simply used.
        if let Some(f) = &existing
            && let Some((v, _)) = f.versions.iter().rev().find(|(_, spec)| {
                spec.repository.to_string() == reference.repository.to_string()
                    && spec.tag.0 == reference.tag
            })
        {
            return Ok((name, v.clone()));
        }
        if let Some(f) = &existing
            && f.origin != Origin::File(path.clone())
        {
            let other = f
                .versions
                .values()
                .next()
                .map(|s| s.repository.to_string())
                .unwrap_or_default();
            return Err(ReferencesError::Collides {
                arg: arg.to_owned(),
                name,
                origin: f.origin.to_string(),
                other,
            });
        }
        let io = |source| ReferencesError::Io {
            path: path.clone(),
            source,
        };
        let mut text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                "# Recorded by `pkg install {repo}…`; pkg keeps this file.\nname = \"{name}\"\ndesc = \"{repo}, installed by reference\"\nhomepage = \"https://{repo}\"\n",
                repo = reference.repository
            ),
            Err(e) => return Err(io(e)),
        };
        let header = format!("[versions.\"{version}\"]");
        if !text.contains(&header) {
            text.push_str(&format!(
                "\n{header}\nrepository = \"{}\"\ntag = \"{}\"\n",
                reference.repository, reference.tag
            ));
            if let Some(d) = &reference.digest {
                text.push_str(&format!("digest = \"{d}\"\n"));
            }
        }
        // Parse before writing: a recorded formula is always a valid one.
        Formula::parse(&text, Origin::File(path.clone()), Some(&name))?;
        if !write {
            return Ok((name, version));
        }
        fs_err::create_dir_all(&self.dir).map_err(io)?;
        let mut tmp = crate::platform::temp_file_in(&self.dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok((name, version))
    }
}

impl crate::report::Classify for ReferencesError {
    fn bad_input(&self) -> bool {
        matches!(self, ReferencesError::Invalid { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_its_tag_whatever_it_moved_to() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(channel(&v("0.0.0+tag.latest")), Some("latest"));
        assert_eq!(channel(&v("0.0.0+tag.latest.moved.12")), Some("latest"));
        assert_eq!(channel(&v("0.0.0+tag.2024.01")), Some("2024.01"));
        assert_eq!(channel(&v("1.5.0")), None);
        assert_eq!(channel(&v("0.0.0+sha256.0123456789ab")), None);
        assert_eq!(channel(&v("1.0.0+tag.x")), None);
    }

    #[test]
    fn homebrew_image_names_give_the_formula_name() {
        assert_eq!(
            homebrew_formula_name("homebrew/core/openssl/3").as_deref(),
            Some("openssl@3")
        );
        assert_eq!(
            homebrew_formula_name("homebrew/core/wget").as_deref(),
            Some("wget")
        );
        assert_eq!(homebrew_formula_name("acme/tools/hello"), None);
        assert_eq!(homebrew_formula_name("homebrew/core/a/b/c"), None);
        let r = parse("ghcr.io/homebrew/core/gtkx3:3.24.43-1").unwrap();
        assert_eq!(
            crate::version::show(&r.version()),
            "3.24.43",
            "-1 is a rebuild"
        );
        let known = || vec!["gtk+3".to_owned(), "libxml2".to_owned()];
        assert_eq!(r.name_among(known).unwrap(), "gtk+3");
        let r = parse("ghcr.io/homebrew/core/libxml2:2.13.5").unwrap();
        assert_eq!(r.name_among(known).unwrap(), "libxml2");
        let r = parse("ghcr.io/acme/tap/openssl/3:3.4.0").unwrap();
        assert_eq!(
            r.name_among(|| vec!["openssl@3".into()]).unwrap(),
            "openssl@3"
        );
        assert_eq!(r.name_among(Vec::new).unwrap(), "3");
        assert_eq!(image_name("openssl@3"), "openssl/3");
        let r = parse("ghcr.io/homebrew/core/tool/2:2.1.0").unwrap();
        assert_eq!(r.name().unwrap(), "tool@2");
    }

    #[test]
    fn references_and_their_names_and_versions() {
        let r = parse("ghcr.io/acme/tools/hello:1.2.3").unwrap();
        assert_eq!(r.repository.name, "acme/tools/hello");
        assert_eq!(
            (r.name().unwrap(), r.version().to_string()),
            ("hello".into(), "1.2.3".into())
        );
        let r = parse("127.0.0.1:5000/acme/hello").unwrap();
        assert_eq!(r.repository.registry, "127.0.0.1:5000");
        assert_eq!(r.tag, "latest");
        assert_eq!(r.version().to_string(), "0.0.0+tag.latest");
        assert!(
            semver::VersionReq::STAR.matches(&r.version()),
            "a plain request takes it"
        );
        assert_eq!(
            parse("ghcr.io/a/b:v2.0.1").unwrap().version().to_string(),
            "2.0.1"
        );
        // A tag Homebrew would read as a version is one (issue 28): it orders with releases.
        assert_eq!(
            crate::version::show(&parse("ghcr.io/a/b:2024.01").unwrap().version()),
            "2024.01"
        );
        let d = "sha256:aa986f18e5556f9ce7ce265242ec6457ea2802030d92e5dc4c3c807a495db1e4";
        let r = parse(&format!("ghcr.io/a/b@{d}")).unwrap();
        assert_eq!(r.tag, d);
        assert_eq!(r.version().to_string(), "0.0.0+sha256.aa986f18e555");
        for bad in [
            "ghcr.io/a/b:",
            "ghcr.io/a/b@sha256:zz",
            "ghcr.io/A/b:1",
            "nohost/x:1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(!is_reference("hello@^1"));
        assert!(is_reference("ghcr.io/a/b"));
    }

    #[test]
    fn recording_builds_a_valid_formula_and_refuses_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path());
        let r = parse("ghcr.io/acme/hello:1.0.0").unwrap();
        assert_eq!(
            refs.record("x", &r.name().unwrap(), &r, None).unwrap(),
            ("hello".into(), Version::new(1, 0, 0))
        );
        let r2 = parse("ghcr.io/acme/hello:2.0.0").unwrap();
        let existing = crate::formula::Formulary::new(vec![refs.dir().to_owned()])
            .load("hello")
            .ok();
        refs.record("x", &r2.name().unwrap(), &r2, existing)
            .unwrap();
        let f = crate::formula::Formulary::new(vec![refs.dir().to_owned()])
            .load("hello")
            .unwrap();
        assert_eq!(f.versions.len(), 2);
        let embedded = crate::formula::Formulary::default().load("anakin").unwrap();
        let r3 = parse("ghcr.io/other/anakin:1.0.0").unwrap();
        let err = refs
            .record(
                "ghcr.io/other/anakin:1.0.0",
                &r3.name().unwrap(),
                &r3,
                Some(embedded),
            )
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
