//! Links into the prefix: `PREFIX/bin/*` and `PREFIX/opt/NAME`, relative symlinks swapped in by
//! temp name + rename, never over a file pkg does not own, rolled back as a whole on failure.

pub mod owners;
mod rules;
mod tree;

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::cellar::unpack::beneath::{Resolved, Root, WalkError};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the formula lists `{entry}` in `bin`, but the package has no such file")]
    MissingBin { entry: String },
    #[error(
        "{} is needed by a relocated Homebrew bottle, but this machine's dynamic loader was not found (the interpreter of /bin/sh)",
        dest.display()
    )]
    NoLoader { dest: PathBuf },
    #[error("{}: {error}", keg.display())]
    Walk {
        keg: PathBuf,
        #[source]
        error: WalkError,
    },
    #[error("{} file(s) in the way, not linked:\n{}\n{}", .0.len(), list(.0), hint(.0))]
    Conflicts(Vec<Conflict>),
}

#[derive(Debug, Clone)]
pub struct Conflict {
    pub path: PathBuf,
    pub reason: String,
    /// A directory (or the reserved `lib/ld.so`): `--overwrite` does not replace it either.
    pub directory: bool,
}

/// What to do about conflicts: `--overwrite` replaces files and links, never directories.
fn hint(conflicts: &[Conflict]) -> &'static str {
    if conflicts.iter().all(|c| c.directory) {
        "Move them out of the way and run again (pkg never replaces a directory, nor its own lib/ld.so, even with --overwrite)."
    } else {
        "To replace them, run again with --overwrite."
    }
}

fn list(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("  {} ({})", c.path.display(), c.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LinkError + '_ {
    move |source| LinkError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `PREFIX/lib/ld.so`, relative to the prefix: reserved for pkg's own link to this machine's
/// dynamic loader, which relocated Homebrew bottles name as their interpreter. No keg links it.
pub const LOADER: &str = "lib/ld.so";

/// Makes `PREFIX/lib/ld.so` pkg's link to this machine's dynamic loader: created when missing,
/// and replaced (temp name + rename, by descriptor beneath the prefix) when anything else is
/// there — a link a keg made before the name was reserved, or a file. Returns whether it was
/// missing (and is now made).
pub fn ensure_loader(prefix: &Path) -> Result<bool, LinkError> {
    let dest = prefix.join(LOADER);
    let Some(loader) = crate::cellar::brew::elf::host_loader() else {
        return Err(LinkError::NoLoader { dest });
    };
    let mut root = Root::open(prefix).map_err(io_err(prefix))?;
    if root.read_link(Path::new(LOADER)).ok().as_deref() == Some(loader.as_path()) {
        return Ok(false);
    }
    let missing = matches!(root.stat(Path::new(LOADER)), Ok(None));
    let planned = Planned {
        dest,
        target: loader,
    };
    let done = tree::apply(prefix, &[], std::slice::from_ref(&planned))?;
    tree::commit(prefix, done);
    Ok(missing)
}

/// Removes `PREFIX/lib/ld.so` (by descriptor, not followed): a transaction that made it and
/// did not commit.
pub fn remove_loader(prefix: &Path) {
    if let Ok(mut root) = Root::open(prefix) {
        let _ = root.remove(Path::new(LOADER));
    }
}

/// Keg-relative paths of the entries directly inside the keg's link directories `dirs` (read
/// by descriptor, links not followed), with their types.
fn keg_tops(
    root: &mut Root,
    keg: &Path,
    dirs: &[String],
) -> Result<Vec<(PathBuf, FileType)>, LinkError> {
    let walk = |error| LinkError::Walk {
        keg: keg.to_owned(),
        error,
    };
    let mut out = Vec::new();
    for dir in dirs {
        match root.stat(Path::new(dir)).map_err(walk)? {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                for (child, kind) in root.list(Path::new(dir)).map_err(walk)? {
                    out.push((Path::new(dir).join(child), kind));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// One link to put in place: `dest` → `target` (relative to `dest`'s directory).
#[derive(Clone, Debug)]
pub struct Planned {
    pub dest: PathBuf,
    pub target: PathBuf,
}

/// Everything linking a keg would do, found before anything changes.
pub struct LinkPlan {
    pub links: Vec<Planned>,
    /// Directories that are links today and become real ones first (see `tree.rs`).
    pub reshapes: Vec<tree::Reshape>,
    pub conflicts: Vec<Conflict>,
    /// Links of other packages `--overwrite` replaces: (link, owner).
    pub taken: owners::Taken,
}

/// The links for keg `Cellar/NAME/VERSION`: each of `bins` as `bin/<file name>`, every file
/// (or link) under the keg directories `dirs` at the same place in the prefix, and `opt/NAME`;
/// with every conflict found. As brew links, a keg directory the prefix has no room for yet is
/// one link to it unless packages share it by rule ([`rules`]), and a second package's files in
/// such a directory split it into entry links (`tree.rs`). Changes nothing (this is `pkg link --dry-run`).
pub fn plan(
    prefix: &Path,
    name: &str,
    version: &str,
    bins: &[String],
    dirs: &[String],
    overwrite: bool,
) -> Result<(Vec<Planned>, Vec<Conflict>), LinkError> {
    let plan = plan_all(prefix, name, version, bins, dirs, overwrite)?;
    Ok((plan.links, plan.conflicts))
}

/// [`plan`], with the directories to reshape and the links taken over.
/// Long: one walk of the keg decides, per entry, a whole-directory link, a split of what the prefix
/// has, or entry links; the walk's stack and the survey of the prefix are shared by every case.
pub fn plan_all(
    prefix: &Path,
    name: &str,
    version: &str,
    bins: &[String],
    dirs: &[String],
    overwrite: bool,
) -> Result<LinkPlan, LinkError> {
    let keg_rel = Path::new("Cellar").join(name).join(version);
    let keg = prefix.join(&keg_rel);
    let mut survey = tree::Survey::new(prefix, name, overwrite);
    let mut plan = Vec::new();
    let walk = |error| LinkError::Walk {
        keg: keg.clone(),
        error,
    };
    // (prefix-relative destination, keg-relative source, its type in the keg)
    let mut work: Vec<(PathBuf, PathBuf, FileType)> = Vec::new();
    let mut keg_root = None;
    if !dirs.is_empty() {
        let root = keg_root.insert(Root::open(&keg).map_err(io_err(&keg))?);
        work = keg_tops(root, &keg, dirs)?
            .into_iter()
            .map(|(rel, kind)| (rel.clone(), rel, kind))
            .collect();
    }
    while let Some((rel, source, kind)) = work.pop() {
        let descend = if kind == FileType::Directory {
            // As Homebrew links: a directory the prefix has no room for yet is one link, unless
            // packages share it by rule (`share/man/man1`, `lib/pkgconfig`, …); one that is
            // there (a real directory, another package's link to split) gets entry links.
            match rules::dir_rule(&rel) {
                rules::DirRule::Skip => continue,
                rules::DirRule::Link if survey.can_link_whole(&rel) => false,
                _ => true,
            }
        } else {
            // The keg's link to a directory inside the keg (or a directory reached through
            // one), meeting a real directory in the prefix: its entries are linked one by one
            // inside it. Files are checked once, below.
            kind != FileType::RegularFile && survey.is_real_dir(&rel)
        };
        if descend && let Some(root) = keg_root.as_mut() {
            let real = if kind == FileType::Directory {
                Some(source.clone())
            } else {
                match root.resolve(&source, true) {
                    Ok(Resolved::Inside(real)) => Some(real),
                    _ => None,
                }
            };
            if let Some(real) = real {
                match root.list(&real) {
                    Ok(children) => {
                        for (child, kind) in children {
                            work.push((rel.join(&child), real.join(&child), kind));
                        }
                        continue;
                    }
                    Err(e) if kind == FileType::Directory => return Err(walk(e)),
                    // A link whose directory cannot be listed is linked as the link it is.
                    Err(_) => {}
                }
            }
        }
        plan.push(Planned {
            dest: prefix.join(&rel),
            target: tree::relative_target(&rel, &keg_rel.join(&source)),
        });
    }
    for entry in bins {
        let file_name = Path::new(entry)
            .file_name()
            .map(ToOwned::to_owned)
            .ok_or_else(|| LinkError::MissingBin {
                entry: entry.clone(),
            })?;
        plan.push(Planned {
            dest: prefix.join("bin").join(file_name),
            target: Path::new("..").join(&keg_rel).join(entry),
        });
    }
    plan.push(Planned {
        dest: prefix.join("opt").join(name),
        target: Path::new("..").join(&keg_rel),
    });
    plan.sort_by(|a, b| a.dest.cmp(&b.dest));
    // A `bin` entry and the walk of `bin/` name the same link once.
    plan.dedup_by(|a, b| a.dest == b.dest);
    let loader = prefix.join(LOADER);
    let mut reserved = Vec::new();
    for p in &plan {
        if p.dest == loader {
            reserved.push(Conflict {
                path: loader.clone(),
                reason: "reserved for pkg's link to this machine's dynamic loader (relocated Homebrew bottles name it as their interpreter); no package links it".into(),
                directory: true,
            });
        } else {
            survey.check(p);
        }
    }
    let mut conflicts = reserved;
    conflicts.append(&mut survey.conflicts);
    Ok(LinkPlan {
        links: plan,
        reshapes: survey.reshapes,
        conflicts,
        taken: survey.taken,
    })
}

/// Links the keg `Cellar/NAME/VERSION` into the prefix (see [`plan`]). Conflicts are all found
/// before anything changes; a failure midway undoes every change made. Links owned by pkg for
/// the same package are replaced, and its links to other versions that the new keg does not
/// provide are removed; anything else needs `overwrite`.
pub fn link(
    prefix: &Path,
    name: &str,
    version: &str,
    bins: &[String],
    dirs: &[String],
    overwrite: bool,
) -> Result<Vec<PathBuf>, LinkError> {
    Ok(link_taking(prefix, name, version, bins, dirs, overwrite)?.0)
}

/// [`link`], also returning the links it took from other packages (`overwrite`), as (link,
/// previous owner); those takeovers are recorded ([`owners`]).
pub fn link_taking(
    prefix: &Path,
    name: &str,
    version: &str,
    bins: &[String],
    dirs: &[String],
    overwrite: bool,
) -> Result<(Vec<PathBuf>, owners::Taken), LinkError> {
    let plan = plan_all(prefix, name, version, bins, dirs, overwrite)?;
    if !plan.conflicts.is_empty() {
        return Err(LinkError::Conflicts(plan.conflicts));
    }
    let done = tree::apply(prefix, &plan.reshapes, &plan.links)?;
    tree::commit(prefix, done);
    let dests: Vec<PathBuf> = plan.links.into_iter().map(|p| p.dest).collect();
    // A set: a bottle links thousands of files, and a list lookup per link is quadratic.
    let linked: std::collections::HashSet<&PathBuf> = dests.iter().collect();
    let stale: Vec<PathBuf> = links_of(prefix, name)
        .into_iter()
        .filter(|l| !linked.contains(l))
        .collect();
    remove_links(prefix, &stale);
    owners::record(prefix, name, &plan.taken).map_err(io_err(prefix))?;
    Ok((dests, plan.taken))
}

/// Removes `links` (absolute, under the prefix) by descriptor, never through a link, then the
/// directories they leave empty below the top-level link directories; a directory left holding
/// only one package's split links becomes that package's single link again (`tree::collapse`).
fn remove_links(prefix: &Path, links: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(mut root) = Root::open(prefix) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    let mut parents = std::collections::BTreeSet::new();
    for l in links {
        let rel = l.strip_prefix(prefix).unwrap_or(l);
        if root.remove(rel).is_ok() {
            removed.push(l.clone());
            if let Some(parent) = rel.parent() {
                parents.insert(parent.to_owned());
            }
        }
    }
    // Deepest first, so a directory emptied by its children's removal goes too, and one left
    // holding only another package's split links becomes that package's link again.
    let mut todo: Vec<PathBuf> = parents.into_iter().collect();
    while let Some(dir) = todo.pop() {
        if dir.components().count() < 2 {
            continue;
        }
        if tree::collapse(prefix, &mut root, &dir) {
            // Its parent may now hold only that package's links too (a split inside a split).
            if let Some(parent) = dir.parent()
                && !todo.contains(&parent.to_owned())
            {
                todo.insert(0, parent.to_owned());
            }
            continue;
        }
        if root.list(&dir).is_ok_and(|e| e.is_empty()) && root.remove(&dir).is_ok() {
            root.forget();
            if let Some(parent) = dir.parent()
                && !todo.contains(&parent.to_owned())
            {
                todo.insert(0, parent.to_owned());
            }
        }
    }
    removed
}

/// Every link under the prefix's linked directories (`bin/`, `lib/`, `share/`, …, walked by
/// descriptor beneath the prefix, never through a link) that points into a keg of `name`, and
/// `opt/NAME` if it is a link.
pub fn links_of(prefix: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(mut root) = Root::open(prefix) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = crate::formula::BREW_LINK_DIRS
        .iter()
        .map(PathBuf::from)
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = root.list(&dir) else {
            continue;
        };
        for (child, kind) in entries {
            let rel = dir.join(child);
            if kind == FileType::Directory {
                stack.push(rel);
            } else if kind == FileType::Symlink
                && let Ok(target) = root.read_link(&rel)
                && owner(prefix, &prefix.join(&rel), &target).as_deref() == Some(name)
            {
                out.push(prefix.join(rel));
            }
        }
    }
    let opt = Path::new("opt").join(name);
    if root.read_link(&opt).is_ok() {
        out.push(prefix.join(opt));
    }
    out.sort();
    out
}

/// Removes every link of `name` (see [`links_of`]) and the directories that leaves empty;
/// returns the links removed.
pub fn unlink(prefix: &Path, name: &str) -> Result<Vec<PathBuf>, LinkError> {
    let links = links_of(prefix, name);
    let removed = remove_links(prefix, &links);
    if let Some(left) = links.iter().find(|l| !removed.contains(l)) {
        return Err(LinkError::Io {
            path: left.clone(),
            source: std::io::Error::other("could not be removed"),
        });
    }
    Ok(links)
}

/// The version `opt/NAME` points to, if it is linked.
pub fn linked_version(prefix: &Path, name: &str) -> Option<String> {
    let opt = prefix.join("opt").join(name);
    let target = std::fs::read_link(&opt).ok()?;
    let resolved = normalize(&opt.parent()?.join(target));
    let rest = resolved
        .strip_prefix(normalize(&prefix.join("Cellar").join(name)))
        .ok()?;
    let mut comps = rest.components();
    let version = comps.next()?.as_os_str().to_str()?.to_owned();
    comps.next().is_none().then_some(version)
}

/// The package a link points into (`…/Cellar/NAME/…`), if it points into this prefix's Cellar.
pub fn owner(prefix: &Path, link: &Path, target: &Path) -> Option<String> {
    let dir = link.parent()?;
    let resolved = normalize(&dir.join(target));
    let cellar = normalize(&prefix.join("Cellar"));
    let rest = resolved.strip_prefix(&cellar).ok()?;
    rest.components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .map(str::to_owned)
}

/// Lexical normalization (no filesystem access): resolves `.` and `..`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Finishes what a pkg that died while linking left behind: a new link under its temp name is
/// dropped, and a file moved aside as a backup goes back if nothing took its place. Run with the
/// prefix lock held. Returns the paths it repaired.
pub fn recover(prefix: &Path) -> Vec<PathBuf> {
    let mut repaired = Vec::new();
    let mut dirs: Vec<PathBuf> = crate::formula::BREW_LINK_DIRS
        .iter()
        .map(|d| prefix.join(d))
        .collect();
    dirs.push(prefix.join("opt"));
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) && dir != prefix.join("opt") {
                dirs.push(entry.path());
                continue;
            }
            let Ok(file) = entry.file_name().into_string() else {
                continue;
            };
            let Some((original, kind)) = parse_temp_name(&file) else {
                continue;
            };
            let path = entry.path();
            let dest = dir.join(original);
            let done = match kind {
                "new" => std::fs::remove_file(&path),
                _ if std::fs::symlink_metadata(&dest).is_err() => std::fs::rename(&path, &dest),
                _ => std::fs::remove_file(&path),
            };
            if done.is_ok() {
                repaired.push(dest);
            }
        }
    }
    repaired
}

/// `.NAME.pkg-(new|old)-PID` → (NAME, kind).
fn parse_temp_name(file: &str) -> Option<(&str, &str)> {
    let rest = file.strip_prefix('.')?;
    let (name, tail) = rest.rsplit_once(".pkg-")?;
    let (kind, pid) = tail.split_once('-')?;
    (matches!(kind, "new" | "old") && !name.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then_some((name, kind))
}

/// `.NAME.pkg-(new|old)-PID`: a link being made, or what it replaced, kept until the commit.
fn temp_file_name(leaf: &std::ffi::OsStr, what: &str) -> std::ffi::OsString {
    let mut out = std::ffi::OsString::from(".");
    out.push(leaf);
    out.push(format!(".pkg-{what}-{}", std::process::id()));
    out
}

#[cfg(test)]
mod tests;
