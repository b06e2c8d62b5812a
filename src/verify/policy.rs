//! A formula's `[verify]` table: whose signature an install of it needs.
//!
//! ```toml
//! [verify]
//! github = "acme/tool"                       # a GitHub Actions workflow of acme/tool
//! workflow = ".github/workflows/release.yml" # optional: exactly this one
//! # or: identity = "you@example.com" and issuer = "https://accounts.google.com"
//! #     (identity alone: a certificate naming no issuer, as GitHub's release attestations)
//! # or: key = "cosign.pub"                   # a PEM public key next to the formula
//! predicate_types = ["https://slsa.dev/provenance/v1"]  # optional
//! trust_root = "trusted_root.json"           # optional, next to the formula
//! insecure_ignore_tlog = true                # `key` only: accept a signature no log saw
//! ```

use std::path::{Path, PathBuf};

use super::{Policy, Signer};

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    github: Option<String>,
    workflow: Option<String>,
    identity: Option<String>,
    issuer: Option<String>,
    key: Option<PathBuf>,
    #[serde(default)]
    predicate_types: Vec<String>,
    trust_root: Option<PathBuf>,
    #[serde(default)]
    insecure_ignore_tlog: bool,
}

/// The policy of a `[verify]` table; relative paths are next to `file` (the formula's file;
/// `None` for a formula built into pkg, which may name none). The message says what is wrong.
pub fn from_raw(raw: RawVerify, file: Option<&Path>) -> Result<Policy, String> {
    let near = |p: &Path, what: &str| -> Result<PathBuf, String> {
        if p.is_absolute() {
            return Ok(p.to_owned());
        }
        match file.and_then(Path::parent) {
            Some(dir) => Ok(dir.join(p)),
            None => Err(format!(
                "[verify] {what} `{}` is relative, and a formula built into pkg has no directory",
                p.display()
            )),
        }
    };
    let signer = match (raw.github, raw.identity, raw.issuer, raw.key) {
        (Some(repository), None, None, None) => {
            let parts: Vec<&str> = repository.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "[verify] github = \"{repository}\" is not OWNER/REPO"
                ));
            }
            Signer::GitHub {
                repository,
                workflow: raw.workflow,
            }
        }
        (None, Some(identity), issuer, None) if raw.workflow.is_none() => {
            Signer::Identity { identity, issuer }
        }
        (None, None, None, Some(key)) if raw.workflow.is_none() => {
            let path = near(&key, "key")?;
            let pem = super::read_regular(&path, super::MAX_KEY_BYTES)
                .map_err(|e| format!("[verify] key {}: {e}", path.display()))?;
            Signer::Key { pem, path }
        }
        _ => {
            return Err(
                "[verify] names one signer: `github` (with an optional `workflow`), `identity` (with its `issuer`), or `key`"
                    .into(),
            );
        }
    };
    if raw.insecure_ignore_tlog && !matches!(signer, Signer::Key { .. }) {
        return Err(
            "[verify] insecure_ignore_tlog is for a `key` signer: a certificate's identity needs a log or timestamp to be trusted"
                .into(),
        );
    }
    let trust_root = raw.trust_root.map(|p| near(&p, "trust_root")).transpose()?;
    Ok(Policy {
        signer,
        predicate_types: raw.predicate_types,
        trust_root,
        insecure_ignore_tlog: raw.insecure_ignore_tlog,
    })
}
