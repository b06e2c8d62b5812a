//! The prefix lock: one `pkg` at a time changes a prefix; a second one waits, saying so.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::report::Reporter;

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
}

/// Held for as long as the prefix is being changed; released on drop (or when the process dies).
pub struct PrefixLock {
    _file: File,
}

/// Takes the lock, waiting (and saying so) while another pkg holds it, unless `wait` is false.
pub fn acquire(
    prefix: &Path,
    wait: bool,
    reporter: &dyn Reporter,
) -> Result<PrefixLock, LockError> {
    let dir = prefix.join("var/pkg");
    let path = dir.join("lock");
    let err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    fs_err::create_dir_all(&dir).map_err(err)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) if !wait => {
            return Err(LockError::Busy {
                prefix: prefix.to_owned(),
            });
        }
        Err(TryLockError::WouldBlock) => {
            reporter.status(
                "Waiting",
                &format!("for another pkg to finish with {}", prefix.display()),
            );
            file.lock().map_err(err)?;
        }
        Err(TryLockError::Error(e)) => return Err(err(e)),
    }
    Ok(PrefixLock { _file: file })
}
