//! `Pkgfile.lock`, schema 1: sorted, without timestamps, so the same inputs give the same bytes.
//!
//! ```toml
//! schema = 1
//! platforms = ["linux/amd64"]
//! [requested]
//! hello = "^1.2"
//! [[package]]
//! name = "hello"
//! version = "1.2.0"
//! repository = "ghcr.io/acme/hello"
//! tag = "1.2.0"
//! digest = "sha256:…"            # what the tag pointed to: an index or a manifest
//! formula = "tap acme"
//! depends_on = { lib = "1.0.0" }
//! [[package.platform]]
//! platform = "linux/amd64"
//! manifest = "sha256:…"          # the platform's manifest in the index
//! layers = [{ digest = "sha256:…", size = 1234 }]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use crate::digest::Digest;

use super::{BundleError, Pkgfile};

/// The version of `Pkgfile.lock`.
pub const SCHEMA: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lock {
    pub schema: u32,
    /// The platforms every package was locked for.
    pub platforms: Vec<String>,
    /// What the Pkgfile asked for when the lock was written: name → requirement.
    pub requested: BTreeMap<String, String>,
    /// Taps the Pkgfile named: name → source.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub taps: BTreeMap<String, String>,
    #[serde(default, rename = "package")]
    pub packages: Vec<Locked>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Locked {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    /// Where its formula came from (`tap acme`, `formula directory`, `built into pkg`).
    pub formula: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, String>,
    #[serde(default, rename = "platform")]
    pub platforms: Vec<LockedPlatform>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedPlatform {
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    pub layers: Vec<LockedLayer>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedLayer {
    pub digest: Digest,
    pub size: u64,
}

impl Lock {
    pub fn read(path: &Path) -> Result<Lock, BundleError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::NoLock {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(BundleError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        #[derive(serde::Deserialize)]
        struct Probe {
            schema: u32,
        }
        let bad = |e: toml::de::Error| BundleError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        };
        let probe: Probe = toml::from_str(&text).map_err(bad)?;
        if probe.schema > SCHEMA {
            return Err(BundleError::TooNew {
                path: path.to_owned(),
                schema: probe.schema,
            });
        }
        toml::from_str(&text).map_err(bad)
    }

    /// The lock as written: a header, then the TOML (sorted: same lock, same bytes).
    pub fn to_text(&self) -> String {
        let mut lock = self.clone();
        lock.packages.sort_by(|a, b| a.name.cmp(&b.name));
        for p in &mut lock.packages {
            p.platforms.sort_by(|a, b| a.platform.cmp(&b.platform));
        }
        lock.platforms.sort();
        lock.platforms.dedup();
        let body = toml::to_string(&lock).unwrap_or_default();
        format!("# Written by `pkg bundle lock`: edit the Pkgfile, not this file.\n{body}")
    }

    /// Writes the lock whole (temp file beside it, then rename).
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let io = |source| BundleError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = crate::platform::temp_file_in(dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, self.to_text().as_bytes()).map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Why this lock no longer matches `pkgfile` (a package or requirement added, removed or
    /// changed, a tap changed, or a platform it does not cover); `None` when it matches.
    pub fn mismatch(&self, pkgfile: &Pkgfile, host: &str) -> Option<String> {
        let wanted: BTreeMap<String, String> = pkgfile
            .packages
            .iter()
            .map(|w| (w.name.clone(), w.version.clone()))
            .collect();
        for (name, req) in &wanted {
            match self.requested.get(name) {
                None => return Some(format!("`{name}` was added")),
                Some(r) if r != req => {
                    return Some(format!("`{name}` asks for `{req}`, the lock for `{r}`"));
                }
                _ => {}
            }
        }
        if let Some(name) = self.requested.keys().find(|n| !wanted.contains_key(*n)) {
            return Some(format!("`{name}` was removed"));
        }
        if self.taps != pkgfile.taps {
            return Some("its taps changed".into());
        }
        if !self.platforms.iter().any(|p| p == host) {
            return Some(format!(
                "the lock covers {}, not this machine's {host}",
                self.platforms.join(", ")
            ));
        }
        None
    }
}
