//! The prefix's own records beside the kegs (`PREFIX/var/pkg/`): pins, and links the user removed
//! on purpose (so an upgrade does not bring them back).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PrefixError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// `pkg pin`: upgrades skip the package.
    Pinned,
    /// `pkg unlink`: upgrades and installs leave it unlinked until `pkg link`.
    Unlinked,
}

impl Mark {
    fn dir(self) -> &'static str {
        match self {
            Mark::Pinned => "pinned",
            Mark::Unlinked => "unlinked",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Records {
    root: PathBuf,
}

impl Records {
    pub fn new(prefix: &Path) -> Records {
        Records {
            root: prefix.join("var/pkg"),
        }
    }

    fn path(&self, mark: Mark, name: &str) -> PathBuf {
        self.root.join(mark.dir()).join(name)
    }

    pub fn has(&self, mark: Mark, name: &str) -> bool {
        self.path(mark, name).exists()
    }

    /// Sets or clears a mark; returns whether anything changed.
    pub fn set(&self, mark: Mark, name: &str, on: bool) -> Result<bool, PrefixError> {
        let path = self.path(mark, name);
        let err = |source| PrefixError {
            path: path.clone(),
            source,
        };
        if on == path.exists() {
            return Ok(false);
        }
        if on {
            let dir = self.root.join(mark.dir());
            fs_err::create_dir_all(&dir).map_err(err)?;
            fs_err::write(&path, b"").map_err(err)?;
        } else {
            fs_err::remove_file(&path).map_err(err)?;
        }
        Ok(true)
    }
}
