//! Owns which files of a keg are the package's commands: the formula's `bin` list checked in
//! the keg's final shape (nothing followed out of it), or by default the executables in `bin/`;
//! and the listed files made executable. The pour calls it on the staging keg; linking only
//! puts what it found into `PREFIX/bin`.

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::unpack::beneath::{Resolved, Root, WalkError};

#[derive(Debug, thiserror::Error)]
pub enum BinError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the formula lists `{entry}` in `bin`, but the package has no such file")]
    Missing { entry: String },
    #[error(
        "the formula lists `{entry}` in `bin`, but `{}` in the package is a link that leads out of it (to `{}`); pkg never follows a link out of a keg. Fix the formula's `bin` entry or the package",
        link.display(),
        target.display()
    )]
    LeavesKeg {
        entry: String,
        link: PathBuf,
        target: PathBuf,
    },
    #[error("{}: {error}", keg.display())]
    Walk {
        keg: PathBuf,
        #[source]
        error: WalkError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BinError + '_ {
    move |source| BinError::Io {
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
pub fn bins_for(keg: &Path, listed: Option<&[String]>) -> Result<Vec<String>, BinError> {
    let mut root = Root::open(keg).map_err(io_err(keg))?;
    let walk = |error| BinError::Walk {
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
                        return Err(BinError::LeavesKeg {
                            entry: entry.clone(),
                            link,
                            target,
                        });
                    }
                    _ => {}
                },
                Resolved::Missing(_) => {
                    return Err(BinError::Missing {
                        entry: entry.clone(),
                    });
                }
                Resolved::Outside { link, target } => {
                    return Err(BinError::LeavesKeg {
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
/// Returns the keg-relative files replaced by new ones (a file shared by hard links becomes one
/// of its own): their size is kept, their mtime is now.
pub fn make_executable(keg: &Path, listed: &[String]) -> Result<Vec<PathBuf>, BinError> {
    let mut root = Root::open(keg).map_err(io_err(keg))?;
    let walk = |error| BinError::Walk {
        keg: keg.to_owned(),
        error,
    };
    let mut replaced = Vec::new();
    for entry in listed {
        let Resolved::Inside(real) = root.resolve(Path::new(entry), false).map_err(walk)? else {
            continue;
        };
        let Some(st) = root.stat(&real).map_err(walk)? else {
            continue;
        };
        let mode = st.st_mode & 0o7777;
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && mode & 0o111 == 0 {
            let executable = mode | (mode & 0o444) >> 2;
            if st.st_nlink > 1 {
                // A file with other names (a hard link into the unpacked store, with
                // `--link-mode hardlink`) is never changed through them: it becomes a file of
                // its own, then executable.
                let mut bytes = Vec::new();
                let mut file = root.open_file(&real, false).map_err(walk)?;
                let path = keg.join(&real);
                std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_err(&path))?;
                root.replace(&real, &bytes, executable).map_err(walk)?;
                replaced.push(real);
            } else {
                root.chmod(&real, executable).map_err(walk)?;
            }
        }
    }
    Ok(replaced)
}
