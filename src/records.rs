//! The prefix's own records beside the kegs (`PREFIX/var/pkg/`): pins, links the user removed
//! on purpose (so an upgrade does not bring them back), and the version ranges users asked for
//! (`pkg install 'hello@^1.2'`, so upgrades stay within them).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct RecordsError {
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
    pub fn set(&self, mark: Mark, name: &str, on: bool) -> Result<bool, RecordsError> {
        let path = self.path(mark, name);
        let err = |source| RecordsError {
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

    /// The version range the user asked for when installing `name` (`^1.2`), if any.
    pub fn request(&self, name: &str) -> Option<semver::VersionReq> {
        let text = std::fs::read_to_string(self.request_path(name)).ok()?;
        let file: RequestFile = toml::from_str(&text).ok()?;
        (file.schema == REQUEST_SCHEMA)
            .then(|| file.requirement.parse().ok())
            .flatten()
    }

    /// What the user asked for when installing `name`, as they wrote it (`1.2`, `^1.2`,
    /// `1.2.3`), if anything; for a record written before the spelling was kept, its meaning.
    pub fn request_spelled(&self, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.request_path(name)).ok()?;
        let file: RequestFile = toml::from_str(&text).ok()?;
        (file.schema == REQUEST_SCHEMA).then(|| file.asked.unwrap_or(file.requirement))
    }

    /// Remembers what was asked for — its meaning and how it was written — or forgets it
    /// (`None`: the newest version is wanted).
    pub fn set_request(
        &self,
        name: &str,
        requirement: Option<(&semver::VersionReq, &str)>,
    ) -> Result<(), RecordsError> {
        let text = requirement.map(|(req, spelled)| {
            format!(
                "# What `pkg install {name}@…` asked for; upgrades stay within it.\nschema = {REQUEST_SCHEMA}\nrequirement = \"{req}\"\nasked = {}\n",
                toml::Value::String(spelled.to_owned())
            )
        });
        self.write_record(&self.request_path(name), text.as_deref())
    }

    /// Writes a record file whole (temp name + rename in its directory), or removes it (`None`).
    fn write_record(&self, path: &Path, text: Option<&str>) -> Result<(), RecordsError> {
        let err = |source| RecordsError {
            path: path.to_owned(),
            source,
        };
        match text {
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e)),
                _ => Ok(()),
            },
            Some(text) => {
                let dir = path.parent().unwrap_or(&self.root);
                fs_err::create_dir_all(dir).map_err(err)?;
                let mut tmp = crate::platform::temp_file_in(dir).map_err(err)?;
                std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
                tmp.persist(path).map_err(|e| err(e.error))?;
                Ok(())
            }
        }
    }

    fn request_path(&self, name: &str) -> PathBuf {
        self.root.join("requests").join(format!("{name}.toml"))
    }

    /// The platforms a Pkgfile keeps `name` to (`platforms = ["linux"]`), as the last
    /// `bundle install` that installed it read them; what `bundle dump` writes back.
    pub fn platforms(&self, name: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.platforms_path(name)).ok()?;
        let file: PlatformsFile = toml::from_str(&text).ok()?;
        (file.schema == PLATFORMS_SCHEMA).then_some(file.platforms)
    }

    /// Remembers the platforms a Pkgfile keeps `name` to, or forgets them (`None`).
    pub fn set_platforms(
        &self,
        name: &str,
        platforms: Option<&[String]>,
    ) -> Result<(), RecordsError> {
        let text = platforms.map(|list| {
            let listed: Vec<String> = list
                .iter()
                .map(|p| toml::Value::String(p.clone()).to_string())
                .collect();
            format!(
                "# The platforms the Pkgfile keeps {name} to (`bundle dump` writes them back).\nschema = {PLATFORMS_SCHEMA}\nplatforms = [{}]\n",
                listed.join(", ")
            )
        });
        self.write_record(&self.platforms_path(name), text.as_deref())
    }

    fn platforms_path(&self, name: &str) -> PathBuf {
        self.root.join("platforms").join(format!("{name}.toml"))
    }
}

/// The version of `var/pkg/platforms/NAME.toml`.
const PLATFORMS_SCHEMA: u32 = 1;

#[derive(serde::Deserialize)]
struct PlatformsFile {
    schema: u32,
    platforms: Vec<String>,
}

/// The version of `var/pkg/requests/NAME.toml`.
const REQUEST_SCHEMA: u32 = 1;

#[derive(serde::Deserialize)]
struct RequestFile {
    schema: u32,
    requirement: String,
    /// As the user wrote it; absent in records written before it was kept (an addition: the
    /// schema stays 1).
    #[serde(default)]
    asked: Option<String>,
}
