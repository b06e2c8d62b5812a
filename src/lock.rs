//! Locks: one `pkg` at a time changes a prefix (a second one waits, saying so); a shared cache is
//! locked shared by every run that adds blobs to it and exclusively by `cleanup`, so a blob is
//! never removed between its download and the receipt that references it.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::report::{Event, Reporter};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("locking {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another pkg is changing {prefix}; try again when it has finished, or leave out --no-wait to wait for it"
    )]
    Busy { prefix: PathBuf },
    /// The prefix (or a directory on its way) is a file: input to fix, not a failure.
    #[error(
        "the prefix {prefix} cannot be used: {blocker} is not a directory; choose another prefix (--prefix, PKG_PREFIX) or move that file out of the way"
    )]
    NotADirectory { prefix: PathBuf, blocker: PathBuf },
    #[error(
        "another pkg is using the cache {cache}; try again when it has finished, or leave out --no-wait to wait for it"
    )]
    BusyCache { cache: PathBuf },
}

/// Held for as long as the prefix is being changed; released on drop (or when the process dies).
pub struct PrefixLock {
    _file: File,
}

/// Held while a run may add blobs to the cache (shared) or removes them (exclusive).
pub struct CacheLock {
    _file: File,
}

/// Takes the prefix lock, waiting (and saying so) while another pkg holds it, unless `wait` is
/// false.
pub fn acquire(
    prefix: &Path,
    wait: bool,
    reporter: &dyn Reporter,
) -> Result<PrefixLock, LockError> {
    let busy = || LockError::Busy {
        prefix: prefix.to_owned(),
    };
    // A file where the prefix or one of its parents should be: said as such (exit 2).
    if let Some(blocker) = prefix.join("var/pkg").ancestors().find(|p| {
        p.symlink_metadata()
            .is_ok_and(|m| !m.is_dir() && !m.file_type().is_symlink())
    }) {
        return Err(LockError::NotADirectory {
            prefix: prefix.to_owned(),
            blocker: blocker.to_owned(),
        });
    }
    let waiting = Event::WaitingForPrefix { prefix };
    let file = take(
        &prefix.join("var/pkg"),
        false,
        wait,
        reporter,
        busy,
        waiting,
    )?;
    Ok(PrefixLock { _file: file })
}

/// Locks the cache at `cache`: `exclusive` for `cleanup`, shared otherwise.
pub fn cache(
    cache: &Path,
    exclusive: bool,
    wait: bool,
    reporter: &dyn Reporter,
) -> Result<CacheLock, LockError> {
    let busy = || LockError::BusyCache {
        cache: cache.to_owned(),
    };
    let waiting = Event::WaitingForCache { cache };
    let file = take(cache, !exclusive, wait, reporter, busy, waiting)?;
    Ok(CacheLock { _file: file })
}

fn take(
    dir: &Path,
    shared: bool,
    wait: bool,
    reporter: &dyn Reporter,
    busy: impl FnOnce() -> LockError,
    waiting: Event<'_>,
) -> Result<File, LockError> {
    let path = dir.join("lock");
    let err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    fs_err::create_dir_all(dir).map_err(err)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    let tried = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match tried {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) if !wait => return Err(busy()),
        Err(TryLockError::WouldBlock) => {
            reporter.event(waiting);
            if shared {
                file.lock_shared().map_err(err)?;
            } else {
                file.lock().map_err(err)?;
            }
        }
        Err(TryLockError::Error(e)) => return Err(err(e)),
    }
    Ok(file)
}

impl crate::report::Classify for LockError {
    /// A prefix that is a file, or lies under one, is a `--prefix` to fix.
    fn bad_input(&self) -> bool {
        matches!(self, LockError::NotADirectory { .. })
    }
}
