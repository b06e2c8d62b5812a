//! What `pkg bottle` reads from its arguments: the directory to bottle, the `--push` target,
//! the hints in the `--write` formula, the `--attach-bundle` files, the layout as a formula
//! names it, `--created` timestamps.

use std::path::{Component, Path, PathBuf};

use crate::registry::Repository;
use crate::registry::repository::{ReferenceError, valid_tag};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("--push {value}: expected {expected}")]
    Push {
        value: String,
        expected: &'static str,
        #[source]
        source: ReferenceError,
    },
    #[error("--push {value}: `{tag}` is not a valid tag")]
    Tag { value: String, tag: String },
    #[error(
        "--write needs an existing formula file (name, desc, homepage); create {} first",
        path.display()
    )]
    NoFormula {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is the formula of `{formula}`, but the bottle is `{bottle}` (the file needs `name = \"{bottle}\"`); nothing was written",
        path.display()
    )]
    OtherName {
        path: PathBuf,
        formula: String,
        bottle: String,
    },
    #[error("{} is not valid TOML", path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "{} {what}: name the directory whose contents the bottle packs (its bin/, lib/, share/ …), or an installed package with --keg NAME",
        path.display()
    )]
    NotADirectory { path: PathBuf, what: &'static str },
    #[error("--attach-bundle {}: {message}", path.display())]
    Bundle { path: PathBuf, message: String },
}

/// The directory to bottle, which must be one (said before anything is written).
pub fn check_dir(dir: &Path) -> Result<(), InputError> {
    if dir.is_dir() {
        return Ok(());
    }
    let what = match std::fs::metadata(dir) {
        Ok(_) => "is not a directory",
        Err(_) => "does not exist",
    };
    Err(InputError::NotADirectory {
        path: dir.to_owned(),
        what,
    })
}

/// The `--attach-bundle` files, read and checked as Sigstore bundles before anything is pushed.
pub fn read_bundles(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>, InputError> {
    paths
        .iter()
        .map(|path| {
            let bad = |message: String| InputError::Bundle {
                path: path.clone(),
                message,
            };
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            super::attach::check_bundle(&bytes).map_err(bad)?;
            Ok((path.clone(), bytes))
        })
        .collect()
}

/// `--push REGISTRY/REPO[:TAG]`; `REGISTRY/NAMESPACE/` (a trailing `/`) names the image as
/// Homebrew's `github_packages.rb` does, under that namespace: `openssl@3` → `…/openssl/3`,
/// `gtk+3` → `…/gtkx3`.
pub fn parse_push(value: &str, name: &str) -> Result<(Repository, Option<String>), InputError> {
    if let Some(namespace) = value.strip_suffix('/') {
        let repo = format!("{namespace}/{}", crate::references::image_name(name));
        let repo: Repository = repo.parse().map_err(|source| InputError::Push {
            value: value.to_owned(),
            expected: "REGISTRY/NAMESPACE/ (the image is named for the package)",
            source,
        })?;
        return Ok((repo, None));
    }
    let (repo, tag) = match value.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((name, tag)) => (format!("{head}/{name}"), Some(tag.to_owned())),
            None => (value.to_owned(), None),
        },
        None => (value.to_owned(), None),
    };
    let repo: Repository = repo.parse().map_err(|source| InputError::Push {
        value: value.to_owned(),
        expected: "REGISTRY/REPOSITORY[:TAG]",
        source,
    })?;
    if let Some(t) = &tag
        && !valid_tag(t)
    {
        return Err(InputError::Tag {
            value: value.to_owned(),
            tag: t.clone(),
        });
    }
    Ok((repo, tag))
}

/// What `--write`'s formula says that the bottle can use: its other repositories (to mount
/// from). Nothing of it goes into the manifest, whose digest depends only on the bottle's inputs. Read loosely: a new formula has no
/// version yet; the file is checked as a whole when it is written.
pub struct FormulaHints {
    /// The formula's `name`, which must be the bottle's.
    pub name: Option<String>,
    pub repositories: Vec<Repository>,
}

/// The `--write` formula's hints, checked to be the formula of `name` before anything is built.
pub fn read_formula_of(path: &Path, name: &str) -> Result<FormulaHints, InputError> {
    let hints = read_formula(path)?;
    let formula = hints.name.clone().unwrap_or_default();
    if formula != name {
        return Err(InputError::OtherName {
            path: path.to_owned(),
            formula,
            bottle: name.to_owned(),
        });
    }
    Ok(hints)
}

pub fn read_formula(path: &Path) -> Result<FormulaHints, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::NoFormula {
        path: path.to_owned(),
        source,
    })?;
    let doc: toml::Table = toml::from_str(&text).map_err(|source| InputError::Toml {
        path: path.to_owned(),
        source,
    })?;
    let text_of = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let repositories = doc
        .get("versions")
        .and_then(|v| v.as_table())
        .map(|versions| {
            versions
                .values()
                .filter_map(|v| v.get("repository")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(FormulaHints {
        name: text_of("name"),
        repositories,
    })
}

/// The layout as a formula names it: relative to the formula file when there is one.
pub fn layout_reference(layout: &Path, formula: Option<&Path>) -> String {
    let relative = formula.and_then(|f| {
        let dir = std::path::absolute(f).ok()?.parent()?.to_owned();
        relative_path(&dir, layout)
    });
    relative
        .unwrap_or_else(|| layout.to_owned())
        .display()
        .to_string()
}

/// `to` relative to the directory `from` (both absolute), lexically.
fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    if from.first() != to.first() || from.iter().chain(&to).any(|c| *c == Component::ParentDir) {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    Some(if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    })
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl crate::report::Classify for InputError {
    /// Every InputError is about what the user gave.
    fn bad_input(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_references() {
        let (r, t) = parse_push("ghcr.io/acme/hello:1.2.0", "hello").unwrap();
        assert_eq!(
            (r.to_string().as_str(), t.as_deref()),
            ("ghcr.io/acme/hello", Some("1.2.0"))
        );
        let (r, t) = parse_push("127.0.0.1:5000/acme/hello", "hello").unwrap();
        assert_eq!(
            (r.to_string().as_str(), t),
            ("127.0.0.1:5000/acme/hello", None)
        );
        let (r, t) = parse_push("127.0.0.1:5000/acme/hello:v1", "hello").unwrap();
        assert_eq!(
            (r.registry.as_str(), t.as_deref()),
            ("127.0.0.1:5000", Some("v1"))
        );
        assert!(parse_push("hello:1", "hello").is_err());
        assert!(parse_push("ghcr.io/acme/hello:.bad", "hello").is_err());
        // A namespace: the image is named as Homebrew names it.
        for (name, repo) in [
            ("openssl@3", "ghcr.io/acme/tap/openssl/3"),
            ("gtk+3", "ghcr.io/acme/tap/gtkx3"),
            ("hello", "ghcr.io/acme/tap/hello"),
        ] {
            let (r, t) = parse_push("ghcr.io/acme/tap/", name).unwrap();
            assert_eq!((r.to_string().as_str(), t), (repo, None));
        }
    }

    #[test]
    fn relative_layout_paths() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            relative_path(&p("/a/formulae"), &p("/a/layouts/x")),
            Some(p("../layouts/x"))
        );
        assert_eq!(relative_path(&p("/a"), &p("/a/x.oci")), Some(p("x.oci")));
        assert_eq!(relative_path(&p("/a/../b"), &p("/a/x")), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
