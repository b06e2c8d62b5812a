//! Settings: command-line flags, the environment, the config file and defaults, resolved once
//! into one value (precedence: flag > environment > file > default), remembering where each
//! value came from for `pkg config`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::registry::Mirrors;
use crate::registry::auth::{CredentialSource, Credentials};
use crate::registry::retry::NetworkOptions;
use crate::store::tree_copy::LinkMode;

mod network;
use network::{env_credentials, mirrors, network};

#[derive(Clone, Debug)]
pub struct Settings {
    /// Kegs in `Cellar/`, links in `bin/` and `opt/`.
    pub prefix: PathBuf,
    /// The content-addressed download cache.
    pub cache: PathBuf,
    /// Formula directories searched before taps and the built-in formulae.
    pub formula_dirs: Vec<PathBuf>,
    pub mirrors: Mirrors,
    pub credentials: CredentialSource,
    pub network: NetworkOptions,
    /// Downloads at once.
    pub jobs: usize,
    /// Every package installed needs a signature meeting its formula's `[verify]` policy.
    pub require_signatures: bool,
    /// How warm installs take kegs from the unpacked store.
    pub link_mode: LinkMode,
    /// Caps on what a keg's layers may unpack to, and the unpack's writers
    /// (`PKG_MAX_UNPACK_BYTES`, `…_ENTRIES`, `…_RATIO`, `PKG_UNPACK_WRITERS`).
    pub limits: crate::cellar::unpack::Limits,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// What `pkg config` shows: key → its value and where it came from.
    pub shown: BTreeMap<&'static str, Shown>,
}

/// One setting as `pkg config` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shown {
    /// As text (`2s`, `ghcr.io=http://…`).
    #[serde(skip)]
    pub text: String,
    /// As JSON: numbers as numbers (seconds for timeouts), lists as lists, unset as null.
    pub value: serde_json::Value,
    pub source: SetBy,
}

fn entry(text: impl Into<String>, value: serde_json::Value, source: SetBy) -> Shown {
    Shown {
        text: text.into(),
        value,
        source,
    }
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SetBy {
    Flag,
    Env,
    File,
    Default,
}

impl fmt::Display for SetBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetBy::Flag => "flag",
            SetBy::Env => "env",
            SetBy::File => "file",
            SetBy::Default => "default",
        })
    }
}

/// Values given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub prefix: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    pub jobs: Option<usize>,
    /// `--offline` (absent: the environment and the config file decide).
    pub offline: Option<bool>,
    pub require_signatures: Option<bool>,
    /// `--link-mode`, as given (checked here, as the environment's and the file's are).
    pub link_mode: Option<String>,
}

/// A mirror or, in order, several (`"ghcr.io" = ["http://a:5000", "http://b:5000"]`).
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `config.toml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    prefix: Option<PathBuf>,
    cache: Option<PathBuf>,
    formula_dirs: Option<Vec<PathBuf>>,
    mirrors: Option<BTreeMap<String, OneOrMany>>,
    mirror_only: Option<Vec<String>>,
    ca_file: Option<PathBuf>,
    jobs: Option<usize>,
    connect_timeout: Option<u64>,
    read_timeout: Option<u64>,
    retries: Option<u32>,
    max_wait: Option<u64>,
    mirror_cooldown: Option<u64>,
    offline: Option<bool>,
    require_signatures: Option<bool>,
    link_mode: Option<String>,
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
    #[error(
        "PKG_REGISTRY_HOST names `{value}`, which is not a registry host (`ghcr.io`, `registry.example.com:5000`); it says which registries PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD are for"
    )]
    CredentialsHost { value: String },
    #[error("{set} is set but {unset} is not; set both or neither")]
    HalfCredentials {
        set: &'static str,
        unset: &'static str,
    },
    #[error(
        "{var} must be one of clone, hardlink or copy, got `{value}` (docs/performance.md says what each risks)"
    )]
    LinkMode { var: &'static str, value: String },
    #[error("{var} must be 1, true or yes to turn it on, or 0, false, no or empty, got `{value}`")]
    Bool { var: &'static str, value: String },
    #[error("{var} must be a whole number{unit}, at least 1, got `{value}`")]
    Number {
        var: &'static str,
        unit: &'static str,
        value: String,
    },
    #[error("{var} must be an absolute path, got `{value}`")]
    Relative { var: &'static str, value: String },
    #[error(transparent)]
    Network(#[from] crate::registry::network::NetworkError),
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Limits(#[from] crate::cellar::unpack::UnpackError),
}

fn env_path(var: &'static str) -> Result<Option<PathBuf>, SettingsError> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => absolute(var, PathBuf::from(v)).map(Some),
    }
}

fn absolute(var: &'static str, p: PathBuf) -> Result<PathBuf, SettingsError> {
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(SettingsError::Relative {
            var,
            value: p.display().to_string(),
        })
    }
}

/// A whole number of at least 1 from the environment (0 counts nothing: refused, not rounded).
fn env_number(var: &'static str, unit: &'static str) -> Result<Option<u64>, SettingsError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(SettingsError::Number {
                var,
                unit,
                value: v,
            }),
        },
        _ => Ok(None),
    }
}

/// The first value present, flag before env before file, else the default, with its source.
fn pick<T>(
    flag: Option<T>,
    env: Option<T>,
    file: Option<T>,
    default: impl FnOnce() -> T,
) -> (T, SetBy) {
    match (flag, env, file) {
        (Some(v), _, _) => (v, SetBy::Flag),
        (None, Some(v), _) => (v, SetBy::Env),
        (None, None, Some(v)) => (v, SetBy::File),
        (None, None, None) => (default(), SetBy::Default),
    }
}

/// A switch from the environment: unset or empty is no opinion.
fn env_bool(var: &'static str) -> Result<Option<bool>, SettingsError> {
    let Ok(value) = std::env::var(var) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(SettingsError::Bool { var, value }),
    }
}

/// `PKG_CONFIG`, else `~/.config/pkg/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    match std::env::var_os("PKG_CONFIG").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => directories::ProjectDirs::from("", "", "pkg")
            .map(|d| d.config_dir().join("config.toml")),
    }
}

/// pkg's own credentials file, written by `pkg login`.
pub fn auth_file_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "pkg").map(|d| d.config_dir().join("auth.json"))
}

fn read_file(path: &Path) -> Result<Option<File>, SettingsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // A file the user named (PKG_CONFIG) must exist; the default one may not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("PKG_CONFIG").is_some_and(|v| !v.is_empty()) {
                return Err(SettingsError::File {
                    path: path.to_owned(),
                    message: "PKG_CONFIG names this file, and there is none: create it, or unset PKG_CONFIG to use ~/.config/pkg/config.toml".into(),
                });
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(SettingsError::File {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| SettingsError::File {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
}

impl Settings {
    /// Settings from the environment and the config file alone.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::load(&Flags::default())
    }

    /// Long: one setting after another, each from flag, environment, config file or default,
    /// remembering where it came from; reading them in one place keeps the order of precedence
    /// visible.
    pub fn load(flags: &Flags) -> Result<Settings, SettingsError> {
        let config_file = config_path();
        let file = match &config_file {
            Some(p) => read_file(p)?,
            None => None,
        };
        let config_file = config_file.filter(|_| file.is_some());
        let file = file.unwrap_or_default();
        let file_path =
            |var: &'static str, p: Option<PathBuf>| p.map(|p| absolute(var, p)).transpose();
        let mut shown = BTreeMap::new();
        let base = directories::BaseDirs::new();

        let (prefix, src) = pick(
            flags.prefix.clone().map(Some),
            env_path("PKG_PREFIX")?.map(Some),
            file_path("prefix (config file)", file.prefix.clone())?.map(Some),
            || base.as_ref().map(|b| b.data_local_dir().join("pkg")),
        );
        let prefix = prefix.ok_or(SettingsError::NoHome {
            what: "prefix",
            var: "PKG_PREFIX",
        })?;
        shown.insert(
            "prefix",
            entry(prefix.display().to_string(), json!(prefix), src),
        );

        let (cache, src) = pick(
            flags.cache.clone().map(Some),
            env_path("PKG_CACHE")?.map(Some),
            file_path("cache (config file)", file.cache.clone())?.map(Some),
            || directories::ProjectDirs::from("", "", "pkg").map(|d| d.cache_dir().to_owned()),
        );
        let cache = cache.ok_or(SettingsError::NoHome {
            what: "cache",
            var: "PKG_CACHE",
        })?;
        shown.insert(
            "cache",
            entry(cache.display().to_string(), json!(cache), src),
        );

        let env_dirs: Option<Vec<PathBuf>> = std::env::var_os("PKG_FORMULAE").map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        let (formula_dirs, src) = pick(None, env_dirs, file.formula_dirs.clone(), Vec::new);
        shown.insert(
            "formula_dirs",
            entry(
                std::env::join_paths(&formula_dirs)
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                json!(formula_dirs),
                src,
            ),
        );

        let mirrors = mirrors(&file, &mut shown)?;
        let mut network = network(&file, &mut shown)?;
        let (offline, src) = pick(
            flags.offline,
            env_bool("PKG_OFFLINE")?,
            file.offline,
            || false,
        );
        network.offline = offline;
        shown.insert("offline", entry(offline.to_string(), json!(offline), src));
        let (require_signatures, src) = pick(
            flags.require_signatures,
            env_bool("PKG_REQUIRE_SIGNATURES")?,
            file.require_signatures,
            || false,
        );
        shown.insert(
            "require_signatures",
            entry(
                require_signatures.to_string(),
                json!(require_signatures),
                src,
            ),
        );
        let mode = |var: &'static str, value: String| {
            value
                .parse::<LinkMode>()
                .map_err(|()| SettingsError::LinkMode { var, value })
        };
        let (link_mode, src) = pick(
            flags
                .link_mode
                .clone()
                .map(|v| mode("--link-mode", v))
                .transpose()?,
            std::env::var("PKG_LINK_MODE")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| mode("PKG_LINK_MODE", v))
                .transpose()?,
            file.link_mode
                .clone()
                .map(|v| mode("link_mode (in the config file)", v))
                .transpose()?,
            LinkMode::default,
        );
        shown.insert(
            "link_mode",
            entry(link_mode.to_string(), json!(link_mode), src),
        );

        let default_jobs = || {
            std::thread::available_parallelism()
                .map(|n| (n.get() * 2).clamp(4, 16))
                .unwrap_or(4)
        };
        let (jobs, src) = pick(
            flags.jobs,
            env_number("PKG_JOBS", "")?.map(|n| usize::try_from(n).unwrap_or(1)),
            file.jobs,
            default_jobs,
        );
        let jobs = jobs.clamp(1, 64);
        shown.insert("jobs", entry(jobs.to_string(), json!(jobs), src));

        let (env, env_hosts) = env_credentials(&mut shown)?;

        let limits = crate::cellar::unpack::Limits::from_vars(std::env::var_os)?;
        Ok(Settings {
            prefix,
            cache,
            formula_dirs,
            mirrors,
            credentials: CredentialSource {
                env,
                env_hosts,
                auth_files: auth_files(base.as_ref()),
            },
            network,
            jobs,
            require_signatures,
            link_mode,
            limits,
            config_file,
            shown,
        })
    }
}

/// pkg's own `auth.json` (from `pkg login`), then docker's `config.json` and podman's
/// `auth.json`, in the order those tools read them.
fn auth_files(base: Option<&directories::BaseDirs>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = auth_file_path().into_iter().collect();
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

impl crate::report::Classify for SettingsError {
    /// Every SettingsError is about what the user gave.
    fn bad_input(&self) -> bool {
        true
    }
}
