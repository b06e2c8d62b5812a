//! Settings: the environment (and defaults from `directories`) resolved once into one value.

use std::path::PathBuf;

use std::time::Duration;

use crate::registry::Mirrors;
use crate::registry::auth::{CredentialSource, Credentials};
use crate::registry::retry::NetworkOptions;

#[derive(Clone, Debug)]
pub struct Settings {
    /// `PKG_PREFIX`: kegs in `Cellar/`, links in `bin/` and `opt/`.
    pub prefix: PathBuf,
    /// `PKG_CACHE`: the content-addressed download cache.
    pub cache: PathBuf,
    /// `PKG_FORMULAE`: colon-separated formula directories, searched before the built-in ones.
    pub formula_dirs: Vec<PathBuf>,
    /// `PKG_REGISTRY_MIRRORS`.
    pub mirrors: Mirrors,
    pub credentials: CredentialSource,
    /// `PKG_CONNECT_TIMEOUT`, `PKG_READ_TIMEOUT` (seconds), `PKG_RETRIES` (tries per request).
    pub network: NetworkOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Mirrors(#[from] crate::registry::MirrorError),
    #[error("cannot find a home directory for the default {what}; set {var}")]
    NoHome {
        what: &'static str,
        var: &'static str,
    },
    #[error("{set} is set but {unset} is not; set both or neither")]
    HalfCredentials {
        set: &'static str,
        unset: &'static str,
    },
    #[error("{var} must be a whole number{unit}, got `{value}`")]
    Number {
        var: &'static str,
        unit: &'static str,
        value: String,
    },
    #[error("{var} must be an absolute path, got `{value}`")]
    Relative { var: &'static str, value: String },
}

fn env_path(var: &'static str) -> Result<Option<PathBuf>, SettingsError> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let p = PathBuf::from(&v);
            if p.is_absolute() {
                Ok(Some(p))
            } else {
                Err(SettingsError::Relative {
                    var,
                    value: p.display().to_string(),
                })
            }
        }
    }
}

fn env_number(var: &'static str, unit: &'static str) -> Result<Option<u64>, SettingsError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| SettingsError::Number {
                    var,
                    unit,
                    value: v,
                })
        }
        _ => Ok(None),
    }
}

fn network_from_env() -> Result<NetworkOptions, SettingsError> {
    let mut net = NetworkOptions::default();
    if let Some(s) = env_number("PKG_CONNECT_TIMEOUT", " of seconds")? {
        net.connect_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(s) = env_number("PKG_READ_TIMEOUT", " of seconds")? {
        net.read_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(n) = env_number("PKG_RETRIES", "")? {
        net.tries = u32::try_from(n.clamp(1, 100)).unwrap_or(5);
    }
    Ok(net)
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        let base = directories::BaseDirs::new();
        let prefix = match env_path("PKG_PREFIX")? {
            Some(p) => p,
            None => base
                .as_ref()
                .map(|b| b.data_local_dir().join("pkg"))
                .ok_or(SettingsError::NoHome {
                    what: "prefix",
                    var: "PKG_PREFIX",
                })?,
        };
        let cache = match env_path("PKG_CACHE")? {
            Some(p) => p,
            None => directories::ProjectDirs::from("", "", "pkg")
                .map(|d| d.cache_dir().to_owned())
                .ok_or(SettingsError::NoHome {
                    what: "cache",
                    var: "PKG_CACHE",
                })?,
        };
        let formula_dirs = std::env::var_os("PKG_FORMULAE")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mirrors = Mirrors::parse(&std::env::var("PKG_REGISTRY_MIRRORS").unwrap_or_default())?;
        let user = std::env::var("PKG_REGISTRY_USERNAME")
            .ok()
            .filter(|v| !v.is_empty());
        let pass = std::env::var("PKG_REGISTRY_PASSWORD")
            .ok()
            .filter(|v| !v.is_empty());
        let env = match (user, pass) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingsError::HalfCredentials {
                    set: "PKG_REGISTRY_USERNAME",
                    unset: "PKG_REGISTRY_PASSWORD",
                });
            }
            (None, Some(_)) => {
                return Err(SettingsError::HalfCredentials {
                    set: "PKG_REGISTRY_PASSWORD",
                    unset: "PKG_REGISTRY_USERNAME",
                });
            }
        };
        Ok(Settings {
            prefix,
            cache,
            formula_dirs,
            mirrors,
            credentials: CredentialSource {
                env,
                auth_files: auth_files(base.as_ref()),
            },
            network: network_from_env()?,
        })
    }
}

/// docker's `config.json` and podman's `auth.json`, in the order those tools read them.
fn auth_files(base: Option<&directories::BaseDirs>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(p));
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(run).join("containers/auth.json"));
    }
    if let Some(b) = base {
        files.push(b.config_dir().join("containers/auth.json"));
    }
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => files.push(PathBuf::from(dir).join("config.json")),
        None => {
            if let Some(b) = base {
                files.push(b.home_dir().join(".docker/config.json"));
            }
        }
    }
    files
}
