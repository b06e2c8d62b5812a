//! Links into the prefix: `PREFIX/bin/*` and `PREFIX/opt/NAME`, relative symlinks swapped in by
//! temp name + rename, never over a file pkg does not own, rolled back as a whole on failure.

pub mod owners;

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
        "the formula lists `{entry}` in `bin`, but `{}` in the package is a link that leads out of it (to `{}`); pkg never follows a link out of a keg. Fix the formula's `bin` entry or the package",
        link.display(),
        target.display()
    )]
    BinLeavesKeg {
        entry: String,
        link: PathBuf,
        target: PathBuf,
    },
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
    /// A directory: `--overwrite` does not replace it either.
    pub directory: bool,
}

/// What to do about conflicts: `--overwrite` replaces files and links, never directories.
fn hint(conflicts: &[Conflict]) -> &'static str {
    if conflicts.iter().all(|c| c.directory) {
        "Move them out of the way and run again (pkg never replaces a directory, even with --overwrite)."
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

/// The keg-relative files to link into `bin`: the formula's list, checked to exist, or by
/// default every executable file (or link to one) directly in the keg's `bin/`.
///
/// Nothing is followed to find out: links inside the keg are resolved lexically beneath it
/// ([`Root::resolve`]). A listed entry that passes through a link leading out of the keg, or is
/// a link climbing out of it, is an error; one that is a link to an absolute path (a
/// virtualenv's `bin/python3 -> /usr/bin/python3.11`) is linked as it is, and so is such a link
/// found in `bin/`.
pub fn bins_for(keg: &Path, listed: Option<&[String]>) -> Result<Vec<String>, LinkError> {
    let mut root = Root::open(keg).map_err(io_err(keg))?;
    let walk = |error| LinkError::Walk {
        keg: keg.to_owned(),
        error,
    };
    if let Some(listed) = listed {
        for entry in listed {
            match root.resolve(Path::new(entry), false).map_err(walk)? {
                // The entry itself may be a link: one to an absolute path (a venv's python) is
                // the package's business; one climbing out of the keg (into another keg) is not.
                Resolved::Inside(real) => match root.resolve(&real, true).map_err(walk)? {
                    Resolved::Outside { link, target } if !target.is_absolute() => {
                        return Err(LinkError::BinLeavesKeg {
                            entry: entry.clone(),
                            link,
                            target,
                        });
                    }
                    _ => {}
                },
                Resolved::Missing(_) => {
                    return Err(LinkError::MissingBin {
                        entry: entry.clone(),
                    });
                }
                Resolved::Outside { link, target } => {
                    return Err(LinkError::BinLeavesKeg {
                        entry: entry.clone(),
                        link,
                        target,
                    });
                }
            }
        }
        return Ok(listed.to_vec());
    }
    let dir = match root.resolve(Path::new("bin"), true).map_err(walk)? {
        Resolved::Inside(dir) => dir,
        Resolved::Missing(_) | Resolved::Outside { .. } => return Ok(Vec::new()),
    };
    let entries = match root.list(&dir) {
        Ok(entries) => entries,
        Err(WalkError::NotADirectory(_) | WalkError::Missing(_)) => return Ok(Vec::new()),
        Err(e) => return Err(walk(e)),
    };
    let mut bins = Vec::new();
    for (name, kind) in entries {
        let Some(name) = name.to_str() else {
            continue;
        };
        let rel = dir.join(name);
        let target = match kind {
            FileType::RegularFile => rel,
            FileType::Symlink => match root.resolve(&rel, true).map_err(walk)? {
                Resolved::Inside(target) => target,
                // A link to an absolute path: where it leads is not pkg's to look at, and it
                // is linked as it is. One climbing out of the keg is not linked.
                Resolved::Outside { target, .. } => {
                    if target.is_absolute() {
                        bins.push(format!("bin/{name}"));
                    }
                    continue;
                }
                // Dangling: not linked.
                Resolved::Missing(_) => continue,
            },
            _ => continue,
        };
        if let Some(st) = root.stat(&target).map_err(walk)?
            && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_mode & 0o111 != 0
        {
            bins.push(format!("bin/{name}"));
        }
    }
    bins.sort();
    Ok(bins)
}

/// Files the formula lists in `bin` are executables, whatever mode the layer gave them (ORAS
/// files arrive as plain bytes): each regular file without an execute bit gets one wherever it
/// can be read (0644 becomes 0755, 0600 becomes 0700). Links are left as they are; the file is
/// changed by descriptor, after [`bins_for`] checked that no link on the way leads out.
pub fn make_executable(keg: &Path, listed: &[String]) -> Result<(), LinkError> {
    let mut root = Root::open(keg).map_err(io_err(keg))?;
    let walk = |error| LinkError::Walk {
        keg: keg.to_owned(),
        error,
    };
    for entry in listed {
        let Resolved::Inside(real) = root.resolve(Path::new(entry), false).map_err(walk)? else {
            continue;
        };
        let Some(st) = root.stat(&real).map_err(walk)? else {
            continue;
        };
        let mode = st.st_mode & 0o7777;
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && mode & 0o111 == 0 {
            root.chmod(&real, mode | (mode & 0o444) >> 2)
                .map_err(walk)?;
        }
    }
    Ok(())
}

/// `PREFIX/lib/ld.so`, which relocated Homebrew bottles name as their interpreter: a link to this
/// machine's dynamic loader, made (temp name + rename) when missing; one already there is left.
pub fn ensure_loader(prefix: &Path) -> Result<(), LinkError> {
    let dest = prefix.join("lib/ld.so");
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(());
    }
    let Some(loader) = crate::cellar::brew::elf::host_loader() else {
        return Err(LinkError::NoLoader { dest });
    };
    let dir = prefix.join("lib");
    fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tmp = dir.join(format!(".ld.so.pkg-new-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&loader, &tmp).map_err(io_err(&tmp))?;
    fs_err::rename(&tmp, &dest).map_err(io_err(&dest))
}

/// Keg-relative paths of every file and link under the keg's `dirs` (walked by descriptor, links
/// not followed; a directory that is a link is linked itself, as a file would be).
fn keg_files(keg: &Path, dirs: &[String]) -> Result<Vec<PathBuf>, LinkError> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let mut root = Root::open(keg).map_err(io_err(keg))?;
    let walk = |error| LinkError::Walk {
        keg: keg.to_owned(),
        error,
    };
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        match root.stat(Path::new(dir)).map_err(walk)? {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                stack.push(PathBuf::from(dir))
            }
            _ => {}
        }
    }
    while let Some(dir) = stack.pop() {
        for (child, kind) in root.list(&dir).map_err(walk)? {
            let rel = dir.join(child);
            if kind == FileType::Directory {
                stack.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One link to put in place: `dest` → `target` (relative to `dest`'s directory).
#[derive(Clone, Debug)]
pub struct Planned {
    pub dest: PathBuf,
    pub target: PathBuf,
}

/// What a link replaced, to undo it.
enum Undo {
    Remove(PathBuf),
    Restore { dest: PathBuf, backup: PathBuf },
}

/// The links for keg `Cellar/NAME/VERSION`: each of `bins` as `bin/<file name>`, every file
/// (or link) under the keg directories `dirs` at the same place in the prefix (as brew links:
/// directories are shared between kegs and never linked themselves), and `opt/NAME`; with
/// every conflict found. Changes nothing (this is `pkg link --dry-run`).
pub fn plan(
    prefix: &Path,
    name: &str,
    version: &str,
    bins: &[String],
    dirs: &[String],
    overwrite: bool,
) -> Result<(Vec<Planned>, Vec<Conflict>), LinkError> {
    let keg_rel = Path::new("Cellar").join(name).join(version);
    let mut plan = Vec::new();
    for rel in keg_files(&prefix.join(&keg_rel), dirs)? {
        let up: PathBuf = rel
            .parent()
            .map(|p| p.components().map(|_| "..").collect())
            .unwrap_or_default();
        plan.push(Planned {
            dest: prefix.join(&rel),
            target: up.join(&keg_rel).join(&rel),
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
    // A `bin` entry and the walk of `bin/` name the same link once.
    let mut seen = std::collections::HashSet::new();
    plan.retain(|p| seen.insert(p.dest.clone()));
    let conflicts = plan
        .iter()
        .filter_map(|p| conflict(prefix, name, &p.dest, overwrite))
        .collect();
    Ok((plan, conflicts))
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
    let (plan, conflicts) = plan(prefix, name, version, bins, dirs, overwrite)?;
    if !conflicts.is_empty() {
        return Err(LinkError::Conflicts(conflicts));
    }
    let planned: Vec<PathBuf> = plan.iter().map(|p| p.dest.clone()).collect();
    let taken = owners::taken_by(prefix, name, &planned);
    let mut done: Vec<Undo> = Vec::new();
    for p in &plan {
        if let Err(e) = put(p, &mut done) {
            rollback(done);
            return Err(e);
        }
    }
    // Commit: drop the backups of overwritten files.
    for undo in done {
        if let Undo::Restore { backup, .. } = undo {
            let _ = std::fs::remove_file(backup);
        }
    }
    let dests: Vec<PathBuf> = plan.into_iter().map(|p| p.dest).collect();
    for stale in links_of(prefix, name) {
        if !dests.contains(&stale) {
            let _ = std::fs::remove_file(stale);
        }
    }
    owners::record(prefix, name, &taken).map_err(io_err(prefix))?;
    Ok((dests, taken))
}

/// Every link under the prefix's linked directories (`bin/`, `lib/`, `share/`, …, walked
/// without following links) that points into a keg of `name`, and `opt/NAME` if it is a link.
pub fn links_of(prefix: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = crate::formula::BREW_LINK_DIRS
        .iter()
        .map(|d| prefix.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink()
                && let Ok(target) = std::fs::read_link(&path)
                && owner(prefix, &path, &target).as_deref() == Some(name)
            {
                out.push(path);
            }
        }
    }
    let opt = prefix.join("opt").join(name);
    if std::fs::read_link(&opt).is_ok() {
        out.push(opt);
    }
    out.sort();
    out
}

/// Removes every link of `name` (see [`links_of`]); returns what was removed.
pub fn unlink(prefix: &Path, name: &str) -> Result<Vec<PathBuf>, LinkError> {
    let links = links_of(prefix, name);
    for l in &links {
        fs_err::remove_file(l).map_err(io_err(l))?;
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

/// Why `dest` may not be replaced, if it may not.
fn conflict(prefix: &Path, name: &str, dest: &Path, overwrite: bool) -> Option<Conflict> {
    let meta = std::fs::symlink_metadata(dest).ok()?;
    let c = |reason: String| {
        Some(Conflict {
            path: dest.to_owned(),
            reason,
            directory: meta.is_dir(),
        })
    };
    if meta.is_dir() {
        return c("a directory; pkg never replaces directories".into());
    }
    if overwrite {
        return None;
    }
    if meta.file_type().is_symlink()
        && let Ok(target) = std::fs::read_link(dest)
    {
        match owner(prefix, dest, &target) {
            Some(owner) if owner == name => return None,
            Some(owner) => return c(format!("belongs to the installed package `{owner}`")),
            None => {
                return c(format!(
                    "a link to {} that pkg did not make",
                    target.display()
                ));
            }
        }
    }
    c("a file that pkg did not install".into())
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

fn temp_name(dest: &Path, what: &str) -> PathBuf {
    let file = dest
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    dest.with_file_name(format!(".{file}.pkg-{what}-{}", std::process::id()))
}

/// Creates one link: new link under a temp name, the old file (if not a link) moved to a
/// backup, then an atomic rename over `dest`.
fn put(p: &Planned, done: &mut Vec<Undo>) -> Result<(), LinkError> {
    let dir = p.dest.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = temp_name(&p.dest, "new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&p.target, &tmp).map_err(io_err(&tmp))?;
    let undo = match std::fs::symlink_metadata(&p.dest) {
        Ok(meta) => {
            // Keep what was there (file or link) so a failure later can put it back: a copy of
            // the link, or a hard link to the file, so that `dest` itself is never missing —
            // the rename below replaces it in one step.
            let backup = temp_name(&p.dest, "old");
            let _ = std::fs::remove_file(&backup);
            let kept = if meta.file_type().is_symlink() {
                std::fs::read_link(&p.dest)
                    .and_then(|target| std::os::unix::fs::symlink(target, &backup))
            } else {
                std::fs::hard_link(&p.dest, &backup)
            };
            if let Err(e) = kept {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_err(&p.dest)(e));
            }
            Undo::Restore {
                dest: p.dest.clone(),
                backup,
            }
        }
        Err(_) => Undo::Remove(p.dest.clone()),
    };
    if let Err(e) = std::fs::rename(&tmp, &p.dest) {
        let _ = std::fs::remove_file(&tmp);
        rollback(vec![undo]);
        return Err(io_err(&p.dest)(e));
    }
    done.push(undo);
    Ok(())
}

fn rollback(done: Vec<Undo>) {
    for undo in done.into_iter().rev() {
        match undo {
            Undo::Remove(dest) => {
                let _ = std::fs::remove_file(dest);
            }
            Undo::Restore { dest, backup } => {
                let _ = std::fs::rename(backup, dest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn keg(prefix: &Path, name: &str, version: &str, bins: &[&str]) {
        let k = prefix.join("Cellar").join(name).join(version).join("bin");
        std::fs::create_dir_all(&k).unwrap();
        for b in bins {
            std::fs::write(k.join(b), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(k.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(k.join("README"), "not executable").unwrap();
    }

    #[test]
    fn links_are_relative_and_default_to_executables() {
        let d = tempfile::tempdir().unwrap();
        keg(d.path(), "hello", "1.0.0", &["hello"]);
        let bins = bins_for(&d.path().join("Cellar/hello/1.0.0"), None).unwrap();
        assert_eq!(bins, ["bin/hello"]);
        link(d.path(), "hello", "1.0.0", &bins, &[], false).unwrap();
        assert_eq!(
            std::fs::read_link(d.path().join("bin/hello")).unwrap(),
            Path::new("../Cellar/hello/1.0.0/bin/hello")
        );
        assert_eq!(
            std::fs::read_link(d.path().join("opt/hello")).unwrap(),
            Path::new("../Cellar/hello/1.0.0")
        );
        // A newer version of the same package takes the links over.
        keg(d.path(), "hello", "2.0.0", &["hello"]);
        link(d.path(), "hello", "2.0.0", &bins, &[], false).unwrap();
        assert_eq!(
            std::fs::read_link(d.path().join("bin/hello")).unwrap(),
            Path::new("../Cellar/hello/2.0.0/bin/hello")
        );
        assert_eq!(linked_version(d.path(), "hello").as_deref(), Some("2.0.0"));
        assert_eq!(links_of(d.path(), "hello").len(), 2);
        assert_eq!(unlink(d.path(), "hello").unwrap().len(), 2);
        assert!(links_of(d.path(), "hello").is_empty());
        assert_eq!(linked_version(d.path(), "hello"), None);
    }

    #[test]
    fn links_the_new_keg_does_not_provide_are_removed() {
        let d = tempfile::tempdir().unwrap();
        keg(d.path(), "hello", "1.0.0", &["hello", "old-tool"]);
        keg(d.path(), "hello", "2.0.0", &["hello"]);
        link(
            d.path(),
            "hello",
            "1.0.0",
            &["bin/hello".into(), "bin/old-tool".into()],
            &[],
            false,
        )
        .unwrap();
        link(
            d.path(),
            "hello",
            "2.0.0",
            &["bin/hello".into()],
            &[],
            false,
        )
        .unwrap();
        assert!(std::fs::symlink_metadata(d.path().join("bin/old-tool")).is_err());
    }

    #[test]
    fn unowned_files_and_other_packages_links_are_conflicts_and_nothing_changes() {
        let d = tempfile::tempdir().unwrap();
        keg(d.path(), "hello", "1.0.0", &["hello", "greet"]);
        keg(d.path(), "other", "1.0.0", &["greet"]);
        link(
            d.path(),
            "other",
            "1.0.0",
            &["bin/greet".into()],
            &[],
            false,
        )
        .unwrap();
        std::fs::write(d.path().join("bin/hello"), "mine").unwrap();
        let bins = vec!["bin/greet".to_string(), "bin/hello".to_string()];
        let err = link(d.path(), "hello", "1.0.0", &bins, &[], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 file(s) in the way")
                && err.contains("`other`")
                && err.contains("--overwrite"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("bin/hello")).unwrap(),
            "mine"
        );
        assert!(!d.path().join("opt/hello").exists());
        link(d.path(), "hello", "1.0.0", &bins, &[], true).unwrap();
        assert!(std::fs::read_link(d.path().join("bin/hello")).is_ok());
        let leftovers: Vec<_> = std::fs::read_dir(d.path().join("bin"))
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().into_string().unwrap();
                n.starts_with('.').then_some(n)
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn failure_midway_restores_previous_links() {
        let d = tempfile::tempdir().unwrap();
        keg(d.path(), "hello", "1.0.0", &["a", "b"]);
        link(d.path(), "hello", "1.0.0", &["bin/a".into()], &[], false).unwrap();
        // opt/hello cannot be created: opt is a file.
        std::fs::remove_dir_all(d.path().join("opt")).unwrap();
        std::fs::write(d.path().join("opt"), "x").unwrap();
        keg(d.path(), "hello", "2.0.0", &["a", "b"]);
        assert!(
            link(
                d.path(),
                "hello",
                "2.0.0",
                &["bin/a".into(), "bin/b".into()],
                &[],
                false
            )
            .is_err()
        );
        assert_eq!(
            std::fs::read_link(d.path().join("bin/a")).unwrap(),
            Path::new("../Cellar/hello/1.0.0/bin/a")
        );
        assert!(std::fs::symlink_metadata(d.path().join("bin/b")).is_err());
    }

    #[test]
    fn recovery_restores_a_backup_and_drops_a_half_made_link() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // Died after moving the user's file aside, before the new link took its place.
        std::fs::write(bin.join(".tool.pkg-old-4242"), "user's").unwrap();
        // Died after making the new link under its temp name.
        std::os::unix::fs::symlink("../Cellar/x/1.0.0/bin/x", bin.join(".x.pkg-new-4242")).unwrap();
        // A backup whose destination was already replaced is just dropped.
        std::fs::write(bin.join("y"), "new").unwrap();
        std::fs::write(bin.join(".y.pkg-old-17"), "old").unwrap();
        std::fs::write(bin.join(".hidden-but-not-ours"), "keep").unwrap();
        let repaired = recover(d.path());
        assert_eq!(repaired.len(), 3, "{repaired:?}");
        assert_eq!(std::fs::read_to_string(bin.join("tool")).unwrap(), "user's");
        assert!(std::fs::symlink_metadata(bin.join(".x.pkg-new-4242")).is_err());
        assert!(std::fs::symlink_metadata(bin.join("x")).is_err());
        assert_eq!(std::fs::read_to_string(bin.join("y")).unwrap(), "new");
        assert!(!bin.join(".y.pkg-old-17").exists());
        assert!(bin.join(".hidden-but-not-ours").exists());
    }

    #[test]
    fn listed_bin_must_exist() {
        let d = tempfile::tempdir().unwrap();
        keg(d.path(), "hello", "1.0.0", &["hello"]);
        let err = bins_for(
            &d.path().join("Cellar/hello/1.0.0"),
            Some(&["bin/nope".into()]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bin/nope"));
    }
}
