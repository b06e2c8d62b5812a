//! Ctrl-C and SIGTERM: remove this run's temporary files and directories, then exit 130.
//! Whatever the signal interrupts is also repaired by the next run (see `Cellar::recover`).
//! Partial downloads are not temporary files: they stay for the next run to resume (see
//! `Store::reader`); only one this run created and has not yet written a byte to (it holds its
//! lock, so no other run can be writing it) is removed, as an empty one resumes nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static TEMPORARY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Partial downloads of this run: removed on an interruption only while still empty.
static IF_EMPTY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Exit code after an interruption (128 + SIGINT).
pub const EXIT_CODE: i32 = 130;

/// Installs the handler; call once at start-up.
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let paths = match TEMPORARY.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let empty = match IF_EMPTY.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for path in empty {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0) {
                let _ = std::fs::remove_file(&path);
            }
        }
        for path in paths {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir_all(&path);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(_) => {}
            }
        }
        eprintln!(
            "\ninterrupted; temporary files removed (partial downloads stay, for the next run to resume), nothing half-installed is left"
        );
        std::process::exit(EXIT_CODE);
    })
}

/// Keeps `path` on the list of things to delete if the run is interrupted, until dropped.
pub struct Guard {
    path: PathBuf,
}

pub fn guard(path: &Path) -> Guard {
    if let Ok(mut p) = TEMPORARY.lock() {
        p.push(path.to_owned());
    }
    Guard {
        path: path.to_owned(),
    }
}

/// Keeps the partial download `path` (locked by this run) on the list of files an
/// interruption removes if they are still empty, until dropped.
pub struct EmptyGuard {
    path: PathBuf,
}

pub fn guard_if_empty(path: &Path) -> EmptyGuard {
    if let Ok(mut p) = IF_EMPTY.lock() {
        p.push(path.to_owned());
    }
    EmptyGuard {
        path: path.to_owned(),
    }
}

impl Drop for EmptyGuard {
    fn drop(&mut self) {
        if let Ok(mut p) = IF_EMPTY.lock()
            && let Some(i) = p.iter().rposition(|x| *x == self.path)
        {
            p.swap_remove(i);
        }
    }
}

/// The paths an interruption would remove now.
#[cfg(test)]
pub fn guarded() -> Vec<PathBuf> {
    TEMPORARY.lock().map(|p| p.clone()).unwrap_or_default()
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut p) = TEMPORARY.lock()
            && let Some(i) = p.iter().rposition(|x| *x == self.path)
        {
            p.swap_remove(i);
        }
    }
}
