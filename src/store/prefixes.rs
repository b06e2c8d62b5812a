//! The prefixes that use a cache, like Nix's gc roots: each registers itself under
//! `CACHE/v1/prefixes/<id>.toml` (schema 1) when it installs, so `cleanup` in any of them keeps
//! every blob another one's receipts reference; a registration whose prefix is gone is stale.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::{Store, StoreError, io_err};

/// The version of a registration file.
pub const SCHEMA: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct File {
    schema: u32,
    prefix: PathBuf,
}

/// A prefix registered in the cache.
#[derive(Clone, Debug)]
pub struct Registration {
    pub prefix: PathBuf,
    /// The registration file.
    pub file: PathBuf,
}

impl Registration {
    /// The prefix is gone: nothing in it can need a blob any more.
    pub fn is_stale(&self) -> bool {
        !self.prefix.is_dir()
    }
}

impl Store {
    fn prefixes_dir(&self) -> PathBuf {
        self.root.join("prefixes")
    }

    /// Registers `prefix` as a user of this cache (once; later calls change nothing).
    pub fn register(&self, prefix: &Path) -> Result<(), StoreError> {
        let prefix = std::path::absolute(prefix).map_err(io_err(prefix))?;
        let id = hex::encode(&sha2::Sha256::digest(prefix.as_os_str().as_encoded_bytes())[..8]);
        let dir = self.prefixes_dir();
        let file = dir.join(format!("{id}.toml"));
        if file.is_file() {
            return Ok(());
        }
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        let text = toml::to_string(&File {
            schema: SCHEMA,
            prefix,
        })
        .unwrap_or_default();
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io_err(&file))?;
        tmp.persist(&file).map_err(|e| StoreError::Io {
            path: file.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Every registered prefix (files of another schema are left alone and not listed).
    pub fn registrations(&self) -> Vec<Registration> {
        let Ok(entries) = std::fs::read_dir(self.prefixes_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<Registration> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                let f: File = toml::from_str(&text).ok()?;
                (f.schema == SCHEMA).then(|| Registration {
                    prefix: f.prefix,
                    file: e.path(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        out
    }

    /// Forgets a registration (its prefix is gone).
    pub fn unregister(&self, registration: &Registration) -> Result<(), StoreError> {
        match std::fs::remove_file(&registration.file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                path: registration.file.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}
