//! The Cellar: versioned kegs at `PREFIX/Cellar/NAME/VERSION`, staged on the same filesystem
//! and renamed into place whole, each with its receipt.

pub mod bins;
pub mod brew;
mod listing;
pub mod receipt;
pub mod unpack;

pub use listing::{Listing, list_entries};

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
