//! Taps: extra formula directories by name, a local directory (linked) or a git repository
//! (cloned with the `git` command), kept under `PREFIX/var/pkg/taps/NAME`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("invalid tap name `{0}`: use lowercase letters, digits and `-_.`")]
    BadName(String),
    #[error("a tap named `{0}` exists already; `pkg tap remove {0}` first")]
    Exists(String),
    #[error("no tap named `{0}`; `pkg tap list` shows them")]
    Unknown(String),
    #[error("`{source_}` is neither a directory nor a git URL")]
    BadSource { source_: String },
    #[error("tap source `{source_}` starts with `-`; for a directory of that name use ./{source_}")]
    DashSource { source_: String },
    #[error("git {action} of tap `{name}` failed: {detail}")]
    Git {
        name: String,
        action: &'static str,
        detail: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Tap {
    pub name: String,
    /// The directory holding the tap (a clone, or the linked directory).
    pub path: PathBuf,
    /// `git` or `dir`.
    pub kind: &'static str,
}

pub struct Taps {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TapError + '_ {
    move |source| TapError::Io {
        path: path.to_owned(),
        source,
    }
}

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn looks_like_git_url(s: &str) -> bool {
    s.starts_with("https://")
        || s.starts_with("http://")
        || s.starts_with("ssh://")
        || s.starts_with("git@")
        || s.starts_with("file://")
        || s.ends_with(".git")
}

impl Taps {
    pub fn new(prefix: &Path) -> Taps {
        Taps {
            root: prefix.join("var/pkg/taps"),
        }
    }

    pub fn list(&self) -> Vec<Tap> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut taps: Vec<Tap> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if name.starts_with('.') {
                    return None;
                }
                let path = e.path();
                // How the tap was added decides: `add` links a directory and clones a URL. A
                // linked directory may well be a git repository of the user's own; pkg never
                // runs git in it.
                let linked = e.file_type().is_ok_and(|t| t.is_symlink());
                let kind = if !linked && path.join(".git").is_dir() {
                    "git"
                } else {
                    "dir"
                };
                Some(Tap { name, path, kind })
            })
            .collect();
        taps.sort_by(|a, b| a.name.cmp(&b.name));
        taps
    }

    /// Where each tap keeps its formulae: its `formulae/` directory if it has one, else its root.
    pub fn formula_dirs(&self) -> Vec<PathBuf> {
        self.list()
            .into_iter()
            .map(|t| {
                let sub = t.path.join("formulae");
                if sub.is_dir() { sub } else { t.path }
            })
            .collect()
    }

    /// Adds a tap from a local directory (linked, so edits show at once) or a git URL (cloned).
    pub fn add(&self, name: &str, source: &str) -> Result<Tap, TapError> {
        if !valid(name) {
            return Err(TapError::BadName(name.to_owned()));
        }
        let dest = self.root.join(name);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(TapError::Exists(name.to_owned()));
        }
        // Never let a source reach git as an option (`--upload-pack=…` runs a command).
        if source.starts_with('-') {
            return Err(TapError::DashSource {
                source_: source.to_owned(),
            });
        }
        fs_err::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let local = Path::new(source);
        if local.is_dir() {
            let target = std::fs::canonicalize(local).map_err(io_err(local))?;
            std::os::unix::fs::symlink(&target, &dest).map_err(io_err(&dest))?;
        } else if looks_like_git_url(source) {
            // Clone beside the destination, then rename: a failed clone leaves nothing behind.
            let tmp = tempfile::Builder::new()
                .prefix(".clone-")
                .tempdir_in(&self.root)
                .map_err(io_err(&self.root))?;
            let checkout = tmp.path().join("tap");
            git(
                name,
                "clone",
                &["clone", "--depth", "1", "--quiet", "--", source],
                Some(&checkout),
            )?;
            fs_err::rename(&checkout, &dest).map_err(io_err(&dest))?;
        } else {
            return Err(TapError::BadSource {
                source_: source.to_owned(),
            });
        }
        self.list()
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| TapError::Unknown(name.to_owned()))
    }

    pub fn remove(&self, name: &str) -> Result<(), TapError> {
        let dest = self.root.join(name);
        let meta =
            std::fs::symlink_metadata(&dest).map_err(|_| TapError::Unknown(name.to_owned()))?;
        if meta.file_type().is_symlink() {
            fs_err::remove_file(&dest).map_err(io_err(&dest))
        } else {
            fs_err::remove_dir_all(&dest).map_err(io_err(&dest))
        }
    }

    /// `git pull --ff-only` in every git tap; linked directories need nothing.
    pub fn update(&self, tap: &Tap) -> Result<bool, TapError> {
        if tap.kind != "git" {
            return Ok(false);
        }
        let dir = tap.path.to_string_lossy().into_owned();
        git(
            &tap.name,
            "pull",
            &["-C", &dir, "pull", "--ff-only", "--quiet"],
            None,
        )?;
        Ok(true)
    }
}

fn git(
    name: &str,
    action: &'static str,
    args: &[&str],
    dest: Option<&Path>,
) -> Result<(), TapError> {
    let mut cmd = Command::new("git");
    cmd.args(args);
    if let Some(d) = dest {
        cmd.arg(d);
    }
    let out = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| TapError::Git {
            name: name.to_owned(),
            action,
            detail: format!("cannot run git ({e}); install git"),
        })?;
    if !out.status.success() {
        return Err(TapError::Git {
            name: name.to_owned(),
            action,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
