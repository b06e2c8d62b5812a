//! The Cellar: versioned kegs at `PREFIX/Cellar/NAME/VERSION`, staged on the same filesystem
//! and renamed into place whole, each with its receipt.

pub mod bins;
pub mod brew;
pub mod receipt;
pub mod unpack;

use std::path::{Path, PathBuf};

use semver::Version;

#[derive(Debug, thiserror::Error)]
pub enum CellarError {
    #[error(transparent)]
    Receipt(Box<receipt::ReceiptError>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {error}", keg.display())]
    Walk {
        keg: PathBuf,
        #[source]
        error: unpack::beneath::WalkError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CellarError + '_ {
    move |source| CellarError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An installed keg.
#[derive(Clone, Debug)]
pub struct Keg {
    pub name: String,
    pub version: Version,
    pub path: PathBuf,
    pub receipt: receipt::Receipt,
}

#[derive(Clone, Debug)]
pub struct Cellar {
    root: PathBuf,
}

impl Cellar {
    pub fn new(prefix: &Path) -> Cellar {
        Cellar {
            root: prefix.join("Cellar"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn keg(&self, name: &str, version: &Version) -> PathBuf {
        self.root.join(name).join(crate::version::show(version))
    }

    /// A keg counts as installed only with its receipt (a keg appears whole, receipt included).
    pub fn is_installed(&self, name: &str, version: &Version) -> bool {
        receipt::path(&self.keg(name, version)).is_file()
    }

    /// Installed versions of `name`, oldest first.
    pub fn installed_versions(&self, name: &str) -> Vec<Version> {
        let Ok(entries) = std::fs::read_dir(self.root.join(name)) else {
            return Vec::new();
        };
        let mut versions: Vec<Version> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| crate::version::parse_brew(&n).ok())
            .filter(|v| self.is_installed(name, v))
            .collect();
        versions.sort();
        versions
    }

    /// Records that a keg was asked for by name (it may have come in as a dependency).
    pub fn mark_on_request(&self, name: &str, version: &Version) -> Result<(), CellarError> {
        let keg = self.keg(name, version);
        let mut r = receipt::Receipt::read(&keg).map_err(|e| CellarError::Receipt(Box::new(e)))?;
        if !r.installed_on_request {
            r.installed_on_request = true;
            r.write(&keg)
                .map_err(|e| CellarError::Receipt(Box::new(e)))?;
        }
        Ok(())
    }

    /// Names of the packages with at least one keg directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// Every installed keg with its receipt, by name then version.
    pub fn kegs(&self) -> Vec<Keg> {
        let mut out = Vec::new();
        for name in self.names() {
            for version in self.installed_versions(&name) {
                let path = self.keg(&name, &version);
                if let Ok(receipt) = receipt::Receipt::read(&path) {
                    out.push(Keg {
                        name: name.clone(),
                        version,
                        path,
                        receipt,
                    });
                }
            }
        }
        out
    }

    /// The formula source each installed package's newest keg recorded (name, source).
    pub fn recorded_sources(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in self.names() {
            let Some(version) = self.installed_versions(&name).pop() else {
                continue;
            };
            if let Ok(r) = receipt::Receipt::read(&self.keg(&name, &version))
                && let Some(source) = r.source
            {
                out.push((name, source));
            }
        }
        out
    }

    /// Takes a keg out of the Cellar: renamed away first (so it vanishes at once), then deleted.
    pub fn remove(&self, name: &str, version: &Version) -> Result<(), CellarError> {
        self.trash(&self.keg(name, version))?;
        // Best effort: an empty Cellar/NAME goes too.
        let _ = std::fs::remove_dir(self.root.join(name));
        Ok(())
    }

    /// Renames `path` into a fresh directory under `.staging` (one atomic step: it is gone from
    /// the Cellar at once), then deletes it. A run killed in between leaves it to `recover`.
    fn trash(&self, path: &Path) -> Result<(), CellarError> {
        let trash_dir = self.root.join(".staging");
        fs_err::create_dir_all(&trash_dir).map_err(io_err(&trash_dir))?;
        let trash = tempfile::Builder::new()
            .prefix("removed-")
            .tempdir_in(&trash_dir)
            .map_err(io_err(&trash_dir))?;
        fs_err::rename(path, trash.path().join("gone")).map_err(io_err(path))?;
        Ok(())
    }

    /// `Cellar/NAME`, where the kegs of every version of a package live.
    /// Bytes of the files of a keg (links counted as themselves, never followed).
    pub fn size(&self, name: &str, version: &Version) -> u64 {
        let mut total = 0;
        let mut stack = vec![self.keg(name, version)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                match e.path().symlink_metadata() {
                    Ok(meta) if meta.is_dir() => stack.push(e.path()),
                    Ok(meta) => total += meta.len(),
                    Err(_) => {}
                }
            }
        }
        total
    }

    pub fn keg_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn keg_dir_exists(&self, name: &str) -> bool {
        crate::formula::valid_name(name) && self.root.join(name).is_dir()
    }

    /// Removes `Cellar/NAME` entirely, kegs without receipts included (`uninstall --force`).
    /// Only ever a directory of the Cellar: a name that is not a package name is refused.
    pub fn remove_all(&self, name: &str) -> Result<(), CellarError> {
        if !crate::formula::valid_name(name) {
            return Err(CellarError::Io {
                path: self.root.join(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("`{name}` is not a package name"),
                ),
            });
        }
        let dir = self.root.join(name);
        if !dir.exists() {
            return Ok(());
        }
        self.trash(&dir)
    }

    /// Removes what a pkg that died mid-change left in `.staging` (half-unpacked kegs, kegs
    /// moved aside for removal). Run with the prefix lock held. Returns how many were removed.
    pub fn recover(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.root.join(".staging")) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let gone = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            removed += usize::from(gone.is_ok());
        }
        removed
    }

    /// A fresh staging directory inside the Cellar (same filesystem as the kegs, so publishing
    /// is a rename). Dot-named, so it never looks like a package; removed on drop.
    pub fn stage(&self) -> Result<tempfile::TempDir, CellarError> {
        let dir = self.root.join(".staging");
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        tempfile::Builder::new()
            .prefix("keg-")
            .tempdir_in(&dir)
            .map_err(io_err(&dir))
    }

    /// Moves a verified staging directory into place as `Cellar/NAME/VERSION`. A previous keg
    /// at that path (a reinstall) is moved aside first and removed after the switch.
    pub fn publish(
        &self,
        staging: tempfile::TempDir,
        name: &str,
        version: &Version,
    ) -> Result<PathBuf, CellarError> {
        let keg = self.keg(name, version);
        let parent = self.root.join(name);
        fs_err::create_dir_all(&parent).map_err(io_err(&parent))?;
        let staged = staging.keep();
        sync_dir(&staged);
        let old = if keg.exists() {
            let aside = self
                .root
                .join(".staging")
                .join(format!("old-{name}-{version}-{}", std::process::id()));
            fs_err::rename(&keg, &aside).map_err(io_err(&keg))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = fs_err::rename(&staged, &keg) {
            if let Some(old) = &old {
                let _ = std::fs::rename(old, &keg);
            }
            let _ = std::fs::remove_dir_all(&staged);
            return Err(io_err(&keg)(e));
        }
        sync_dir(&parent);
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(keg)
    }
}

/// Flushes a directory's entries to disk before it is published (one sync, not one per file).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// How many of a receipt's entries are not directories: the files and links a keg holds.
pub fn count_files(keg: &Path, files: &[String]) -> usize {
    files
        .iter()
        .filter(|f| std::fs::symlink_metadata(keg.join(f)).is_ok_and(|m| !m.is_dir()))
        .count()
}

/// What a keg holds, read in one walk: every path, sorted, each regular file's with its stamp,
/// and how many entries are not directories. One vector, each path held once: for a keg of
/// 53,000 files a list of paths beside a map of stamps keyed by the same paths was the largest
/// part of an install's peak memory.
#[derive(Default)]
pub struct Listing {
    pub entries: Vec<(String, Option<receipt::Stamp>)>,
    pub files: usize,
}

impl Listing {
    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(p, _)| p.as_str())
    }

    /// The stamp of the regular file at `path`.
    pub fn stamp(&self, path: &str) -> Option<&receipt::Stamp> {
        let i = (self.entries)
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()?;
        self.entries[i].1.as_ref()
    }

    /// The stamp of the regular file at `path`, to change.
    pub fn stamp_mut(&mut self, path: &str) -> Option<&mut receipt::Stamp> {
        let i = (self.entries)
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()?;
        self.entries[i].1.as_mut()
    }
}

/// Keg-relative paths of everything under `root` except pkg's own metadata (sorted), with
/// each regular file's size and modification time. A big keg's directories are read by a few
/// threads (a `statx` per file is most of the work): the walk goes breadth first until there
/// are a few directories per thread, then each thread walks its share of them.
///
/// `expected` is about how many entries there are (the unpack's count, a receipt's): the
/// listing is made at that size once and the threads add to it directory by directory (grown
/// by doubling and merged from the threads' own, a 53,000-entry listing was held up to three
/// times over).
pub fn list_entries(root: &Path, expected: usize) -> Result<Listing, CellarError> {
    let mut listing = Listing {
        entries: Vec::with_capacity(expected.min(1 << 20)),
        files: 0,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut frontier = vec![PathBuf::new()];
    while !frontier.is_empty() && frontier.len() < threads * 4 {
        let mut next = Vec::new();
        for rel in frontier {
            list_dir(root, &rel, &mut listing, &mut next)?;
        }
        frontier = next;
    }
    let n = threads.min(frontier.len()).max(1);
    let shares: Vec<Vec<PathBuf>> = (0..n)
        .map(|t| frontier.iter().skip(t).step_by(n).cloned().collect())
        .collect();
    let shared = std::sync::Mutex::new(&mut listing);
    for done in on_threads(shares, |share| list_subtrees(root, share, &shared)) {
        done?;
    }
    // Paths are unique: an unstable sort gives the one order, without a buffer of its own.
    listing.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(listing)
}

/// `work` on each of `shares`, one thread each (on this thread when there is one share); the
/// results in the order of `shares`. A thread that panics panics the caller.
pub(crate) fn on_threads<S: Send, T: Send>(shares: Vec<S>, work: impl Fn(S) -> T + Sync) -> Vec<T> {
    if shares.len() <= 1 {
        return shares.into_iter().map(work).collect();
    }
    let work = &work;
    std::thread::scope(|scope| {
        let running: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || work(share)))
            .collect();
        running
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Every entry under the keg-relative directories `dirs`, depth first.
fn list_subtrees(
    root: &Path,
    mut dirs: Vec<PathBuf>,
    into: &std::sync::Mutex<&mut Listing>,
) -> Result<(), CellarError> {
    let mut local = Listing::default();
    let flush = |local: &mut Listing| {
        let mut listing = into
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listing.entries.append(&mut local.entries);
        listing.files += std::mem::take(&mut local.files);
    };
    while let Some(rel) = dirs.pop() {
        list_dir(root, &rel, &mut local, &mut dirs)?;
        if local.entries.len() >= 1024 {
            flush(&mut local);
        }
    }
    flush(&mut local);
    Ok(())
}

/// The entries of one keg-relative directory into `listing`; its subdirectories onto `dirs`.
fn list_dir(
    root: &Path,
    rel: &Path,
    listing: &mut Listing,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), CellarError> {
    let dir = root.join(rel);
    for entry in fs_err::read_dir(&dir).map_err(io_err(&dir))? {
        let entry = entry.map_err(io_err(&dir))?;
        let rel_child = rel.join(entry.file_name());
        if rel_child == Path::new(receipt::META_DIR) {
            continue;
        }
        let kind = entry.file_type().map_err(io_err(&entry.path()))?;
        let shown = rel_child.to_string_lossy().into_owned();
        let mut stamp = None;
        if kind.is_dir() {
            dirs.push(rel_child);
        } else {
            listing.files += 1;
            if kind.is_file() {
                // `DirEntry::metadata` does not follow a link (none here: a regular file).
                let meta = entry.metadata().map_err(io_err(&entry.path()))?;
                stamp = Some(receipt::Stamp::of(&meta));
            }
        }
        listing.entries.push((shown, stamp));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing read by threads is the one a single depth-first walk reads: every path once,
    /// sorted, `.pkg/` left out, a stamp for each regular file, links counted as files.
    #[test]
    fn a_keg_listed_by_threads_is_listed_whole_and_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for a in 0..6 {
            for b in 0..5 {
                let dir = root.join(format!("share/d{a}/e{b}"));
                std::fs::create_dir_all(&dir).unwrap();
                for f in 0..3 {
                    std::fs::write(dir.join(format!("f{f}")), format!("{a}{b}{f}")).unwrap();
                }
                std::os::unix::fs::symlink("f0", dir.join("link")).unwrap();
            }
        }
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), "x").unwrap();
        std::fs::create_dir_all(root.join(".pkg")).unwrap();
        std::fs::write(root.join(".pkg/receipt.json"), "{}").unwrap();

        let listing = list_entries(root, 0).unwrap();
        let mut one = Listing::default();
        let mut dirs = vec![PathBuf::new()];
        while let Some(rel) = dirs.pop() {
            list_dir(root, &rel, &mut one, &mut dirs).unwrap();
        }
        one.entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listing.entries, one.entries);
        assert_eq!(listing.files, one.files);
        // 6 × 5 directories of 3 files and a link, bin/tool; no `.pkg/`.
        assert_eq!(listing.files, 6 * 5 * 4 + 1);
        let stamped = listing.entries.iter().filter(|(_, s)| s.is_some()).count();
        assert_eq!(stamped, 6 * 5 * 3 + 1);
        assert!(listing.stamp("bin/tool").is_some() && listing.stamp("share").is_none());
        assert!(listing.paths().all(|p| !p.starts_with(".pkg")));
        let mut unique: Vec<&str> = listing.paths().collect();
        unique.dedup();
        assert_eq!(unique.len(), listing.entries.len());
    }
}
