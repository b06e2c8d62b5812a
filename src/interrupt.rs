//! Ctrl-C and SIGTERM: remove this run's temporary files and directories, then exit 130.
//! Whatever the signal interrupts is also repaired by the next run (see `Cellar::recover`).
//! Partial downloads are not temporary files: they stay for the next run to resume (see
//! `Store::reader`), and are never guarded here.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static TEMPORARY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Exit code after an interruption (128 + SIGINT).
pub const EXIT_CODE: i32 = 130;

/// Installs the handler; call once at start-up.
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let paths = match TEMPORARY.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
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
