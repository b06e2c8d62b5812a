//! Taps that are git repositories: whether a directory or a source looks like one, and git run
//! without a terminal to ask for credentials (clone, fetch, the commit and remote of a tap).

use std::path::Path;
use std::process::Command;

use super::TapError;

/// A git repository: a work tree's `.git`, or a bare repository's `HEAD`, `objects/` and `refs/`.
pub(super) fn is_git_repository(dir: &Path) -> bool {
    dir.join(".git").exists()
        || (dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir())
}

pub(super) fn looks_like_git_url(s: &str) -> bool {
    s.starts_with("https://")
        || s.starts_with("http://")
        || s.starts_with("ssh://")
        || s.starts_with("git@")
        || s.starts_with("file://")
        || s.ends_with(".git")
}

/// What `git -C DIR ARGS…` prints, trimmed (`None` when git cannot say).
fn git_stdout(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit a git tap is at.
pub(super) fn head_commit(dir: &Path) -> Option<String> {
    git_stdout(dir, &["rev-parse", "HEAD"])
}

/// Where a git tap was cloned from (its `origin`).
pub fn git_remote(dir: &Path) -> Option<String> {
    git_stdout(dir, &["remote", "get-url", "origin"])
}

pub(super) fn git(
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
