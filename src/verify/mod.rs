//! Who published what: Sigstore bundles (cosign v3, GitHub artifact attestations) verified
//! offline against a trust root, and the signer checked against a policy. The cryptography —
//! certificate chain, SCT, transparency-log inclusion proof and checkpoint, RFC 3161 timestamps,
//! DSSE — is `sigstore-verify`'s; pkg decides what it is asked to trust: the subject must be the
//! very digest pkg installs, the identity and issuer (or key) are the policy's, and the
//! predicate type, when the policy names some, one of them. Discovery on a registry is
//! discover.rs.

pub mod discover;
pub mod legacy;
pub mod policy;
mod profile;

use std::path::{Path, PathBuf};

use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::types::{Artifact, Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

use crate::digest::Digest;

/// The OIDC issuer of GitHub Actions' tokens.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The media type of a Sigstore bundle (v0.3) as an OCI artifact or layer.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// What a signature must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A certificate for exactly this identity, from this OIDC issuer (`None`: a certificate
    /// that names no issuer, as GitHub's own release attestations, from GitHub's instance).
    Identity {
        identity: String,
        issuer: Option<String>,
    },
    /// A GitHub Actions workflow of `OWNER/REPO` (optionally exactly `workflow`, a path like
    /// `.github/workflows/release.yml`), from GitHub's issuer.
    GitHub {
        repository: String,
        workflow: Option<String>,
    },
    /// A managed key (PEM public key).
    Key { pem: String, path: PathBuf },
}

/// A signer, the predicate types accepted (empty: any) and the trust root (none: Sigstore's
/// public-good production root, embedded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub signer: Signer,
    pub predicate_types: Vec<String>,
    pub trust_root: Option<PathBuf>,
    /// A key signature with no transparency-log entry is accepted (cosign's
    /// `--insecure-ignore-tlog`): only with a `key` signer.
    pub insecure_ignore_tlog: bool,
}

impl Policy {
    /// What is looked for, as a sentence part: `a signature by … from …`.
    pub fn describe(&self) -> String {
        let who = match &self.signer {
            Signer::Identity {
                identity,
                issuer: Some(issuer),
            } => format!("a signature by {identity} (issuer {issuer})"),
            Signer::Identity { identity, .. } => format!("a signature by {identity}"),
            Signer::GitHub {
                repository,
                workflow: Some(w),
            } => format!("a GitHub Actions signature by {repository}'s {w}"),
            Signer::GitHub { repository, .. } => {
                format!("a GitHub Actions signature by a workflow of {repository}")
            }
            Signer::Key { path, .. } => format!("a signature by the key {}", path.display()),
        };
        match self.predicate_types.as_slice() {
            [] => who,
            types => format!("{who} with predicate type {}", types.join(" or ")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("trust root {}: {reason}", .path.display())]
    TrustRoot { path: PathBuf, reason: String },
    #[error("the key {}: {reason}", .path.display())]
    Key { path: PathBuf, reason: String },
    #[error("not a Sigstore bundle: {0}")]
    Bundle(String),
    #[error("{0}")]
    Rejected(String),
    #[error("signed by {found}, but the policy wants {wanted}")]
    Signer { found: String, wanted: String },
    /// No bundle met the policy: where pkg looked, and why each found was refused.
    #[error("{0}")]
    NoneMeets(String),
    #[error("the attestation's predicate type is {found}, but the policy accepts {wanted}")]
    Predicate { found: String, wanted: String },
}

/// What a verified bundle says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Signed {
    /// The certificate's identity (an email or a URI), or the key's file.
    pub signer: String,
    pub issuer: Option<String>,
    /// A DSSE attestation's predicate type; none for a plain signature.
    pub predicate_type: Option<String>,
    /// When the transparency log (or a timestamp authority) saw it, RFC 3339.
    pub time: Option<String>,
}

/// The largest trust root read (real ones are tens of KiB).
const MAX_TRUST_ROOT_BYTES: u64 = 1 << 20;
/// The largest public key file read.
pub const MAX_KEY_BYTES: u64 = 64 << 10;

/// The text of `path`, which must be a regular file (after links) of at most `cap` bytes: a
/// device (`/dev/zero`), a FIFO or a directory is refused without reading it, and a file that
/// grows past the cap while read is refused too.
pub fn read_regular(path: &Path, cap: u64) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Non-blocking, so opening a FIFO never waits for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file (pkg reads trust material only from files)".into());
    }
    if meta.len() > cap {
        return Err(format!(
            "it is {} bytes, more than the {cap} bytes pkg reads",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(cap + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > cap {
        return Err(format!("it grew past {cap} bytes while being read"));
    }
    Ok(text)
}

/// The trust root of `policy`: its file, else the embedded production root.
/// Each certificate of its authorities' chains must be a CA ([`profile::check_authority`]).
pub fn trust_root(path: Option<&Path>) -> Result<TrustedRoot, VerifyError> {
    let shown = || path.map_or_else(|| "(embedded production root)".into(), Path::to_owned);
    let refused = |reason: String| VerifyError::TrustRoot {
        path: shown(),
        reason,
    };
    let root = match path {
        Some(p) => {
            let text = read_regular(p, MAX_TRUST_ROOT_BYTES).map_err(refused)?;
            TrustedRoot::from_json(&text)
        }
        None => TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT),
    }
    .map_err(|e| refused(e.to_string()))?;
    for (n, authority) in root.certificate_authorities.iter().enumerate() {
        for cert in &authority.cert_chain.certificates {
            profile::check_authority(cert.raw_bytes.as_bytes()).map_err(|why| {
                refused(format!(
                    "certificate authority {} ({}): a certificate {why}",
                    n + 1,
                    authority.uri
                ))
            })?;
        }
    }
    Ok(root)
}

/// What a bundle signs: the exact bytes, or (an OCI manifest) their sha256.
pub enum Subject<'a> {
    /// The conformance suite signs files; what pkg installs is named by digest.
    #[allow(dead_code)]
    Bytes(&'a [u8]),
    Digest(&'a Digest),
}

/// A policy's trust root, read and prepared once for every bundle checked against it.
struct Prepared {
    verifier: Verifier,
    /// A trust root without transparency logs (GitHub's own instance) vouches through its
    /// certificate authorities and timestamp authorities alone; any other needs the log entry.
    no_logs: bool,
    /// Likewise a root without certificate-transparency logs has no SCTs to check.
    no_ct: bool,
}

impl Prepared {
    fn new(policy: &Policy) -> Result<Prepared, VerifyError> {
        let root = trust_root(policy.trust_root.as_deref())?;
        Ok(Prepared {
            verifier: Verifier::new(&root).map_err(|e| VerifyError::Rejected(e.to_string()))?,
            no_logs: root.tlogs.is_empty(),
            no_ct: root.ctlogs.is_empty(),
        })
    }

    /// A certificate policy asking only for what this trust root can vouch for.
    fn keyless(&self, mut wanted: VerificationPolicy) -> VerificationPolicy {
        if self.no_logs {
            wanted = wanted.skip_tlog_unsafe();
        }
        if self.no_ct {
            wanted = wanted.skip_sct();
        }
        wanted
    }
}

/// When the log (or, without one, a timestamp authority) saw it.
fn logged_at(result: &sigstore_verify::VerificationResult) -> Option<String> {
    result
        .integrated_time()
        .or_else(|| result.verified_timestamps().first().copied())
        .map(|t| t.to_string())
}

/// Every bundle of `found` checked against `policy` over `subject` (the trust root prepared
/// once): the signatures that meet it, or [`VerifyError::NoneMeets`] saying where pkg looked
/// and why each bundle was refused.
pub fn check(
    found: &discover::Found,
    subject: &Digest,
    policy: &Policy,
) -> Result<Vec<Signed>, VerifyError> {
    let prepared = Prepared::new(policy)?;
    let mut signed = Vec::new();
    let mut why = vec![format!("looked at {}", bounded(&found.looked_at, 8, ", "))];
    if found.bundles.is_empty() {
        why.push(format!("no Sigstore bundle is attached to {subject}"));
    }
    for attached in &found.bundles {
        match verify_with(
            &prepared,
            &attached.bundle,
            Subject::Digest(subject),
            policy,
        ) {
            Ok(s) => signed.push(s),
            Err(e) => why.push(format!("{}: {e}", attached.manifest)),
        }
    }
    match signed.is_empty() {
        true => Err(VerifyError::NoneMeets(bounded(&why, 12, "; "))),
        false => Ok(signed),
    }
}

/// The first `keep` of `items` joined with `sep`, and how many more there were.
fn bounded(items: &[String], keep: usize, sep: &str) -> String {
    let mut out: Vec<String> = items
        .iter()
        .take(keep)
        .map(|i| i.chars().take(600).collect())
        .collect();
    if items.len() > keep {
        out.push(format!("and {} more", items.len() - keep));
    }
    out.join(sep)
}

/// Verifies one `bundle` (its JSON) over `subject` under `policy` (the conformance suite's
/// shape; pkg's own callers check what discovery found, with [`check`]).
#[cfg(test)]
pub fn verify(bundle: &[u8], subject: Subject<'_>, policy: &Policy) -> Result<Signed, VerifyError> {
    verify_with(&Prepared::new(policy)?, bundle, subject, policy)
}

fn verify_with(
    prepared: &Prepared,
    bundle: &[u8],
    subject: Subject<'_>,
    policy: &Policy,
) -> Result<Signed, VerifyError> {
    if let Some(record) = legacy::Record::parse(bundle) {
        return verify_legacy(prepared, &record, subject, policy);
    }
    let text = std::str::from_utf8(bundle).map_err(|e| VerifyError::Bundle(e.to_string()))?;
    let parsed = Bundle::from_json(text).map_err(|e| VerifyError::Bundle(e.to_string()))?;
    let verifier = &prepared.verifier;
    let artifact = match subject {
        Subject::Bytes(b) => Artifact::from_blob(b),
        Subject::Digest(d) => {
            let hash =
                Sha256Hash::from_hex(d.hex()).map_err(|e| VerifyError::Bundle(e.to_string()))?;
            Artifact::from_digest(hash)
        }
    };
    let rejected = |e: sigstore_verify::Error| VerifyError::Rejected(e.to_string());
    // A certificate's key usage is pkg's to check (before the identity, which a bad leaf may
    // have as well as any).
    if !matches!(policy.signer, Signer::Key { .. })
        && let Some(leaf) = parsed.signing_certificate()
    {
        profile::check_leaf(leaf.as_bytes())
            .map_err(|why| VerifyError::Rejected(format!("the signing certificate {why}")))?;
    }
    let (signer, issuer, time) = match &policy.signer {
        Signer::Key { pem, path } => {
            let key = DerPublicKey::from_pem(pem).map_err(|e| VerifyError::Key {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut wanted = PublicKeyVerificationPolicy::new(key);
            if prepared.no_logs || policy.insecure_ignore_tlog {
                wanted = wanted.skip_tlog_unsafe();
            }
            let result = verifier
                .verify(artifact, &parsed, &wanted)
                .map_err(rejected)?;
            (path.display().to_string(), None, logged_at(&result))
        }
        Signer::Identity { identity, issuer } => {
            let wanted = prepared.keyless(match issuer {
                Some(issuer) => VerificationPolicy::new(identity.as_str(), issuer.as_str()),
                None => VerificationPolicy::any_identity().require_identity(identity.as_str()),
            });
            let result = verifier
                .verify(artifact, &parsed, &wanted)
                .map_err(rejected)?;
            // Without an issuer in the policy, a certificate that names one is not this signer's.
            if issuer.is_none()
                && let Some(found) = result.issuer()
            {
                return Err(VerifyError::Signer {
                    found: format!("{identity} (issuer {found})"),
                    wanted: policy.describe(),
                });
            }
            (identity.clone(), issuer.clone(), logged_at(&result))
        }
        Signer::GitHub {
            repository,
            workflow,
        } => {
            let wanted =
                prepared.keyless(VerificationPolicy::any_identity().require_issuer(GITHUB_ISSUER));
            let result = verifier
                .verify(artifact, &parsed, &wanted)
                .map_err(rejected)?;
            let found = result
                .identity()
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default();
            // `https://github.com/OWNER/REPO/.github/workflows/FILE@REF`
            let base = format!("https://github.com/{repository}/");
            let fits = found
                .strip_prefix(&base)
                .is_some_and(|rest| match workflow {
                    Some(w) => rest
                        .split_once('@')
                        .is_some_and(|(path, _)| path == w.trim_start_matches('/')),
                    None => rest.starts_with(".github/workflows/"),
                });
            if !fits {
                return Err(VerifyError::Signer {
                    found,
                    wanted: policy.describe(),
                });
            }
            (found, Some(GITHUB_ISSUER.to_owned()), logged_at(&result))
        }
    };
    let predicate_type = predicate_type(text);
    if !policy.predicate_types.is_empty()
        && !predicate_type
            .as_ref()
            .is_some_and(|p| policy.predicate_types.contains(p))
    {
        return Err(VerifyError::Predicate {
            found: predicate_type.unwrap_or_else(|| "none (a plain signature)".into()),
            wanted: policy.predicate_types.join(" or "),
        });
    }
    Ok(Signed {
        signer,
        issuer,
        predicate_type,
        time,
    })
}

/// A legacy cosign signature: its payload must name `subject`; a logged one is verified as the
/// bundle cosign reads from it, an unlogged one against the policy's key when the policy
/// accepts signatures without a log entry.
fn verify_legacy(
    prepared: &Prepared,
    record: &legacy::Record,
    subject: Subject<'_>,
    policy: &Policy,
) -> Result<Signed, VerifyError> {
    if let Subject::Digest(d) = subject {
        record.check_subject(d)?;
    }
    let payload = record.payload()?;
    if record.logged() {
        let bundle = record.to_bundle()?;
        return verify_with(
            prepared,
            bundle.as_bytes(),
            Subject::Bytes(&payload),
            policy,
        );
    }
    let Signer::Key { pem, path } = &policy.signer else {
        return Err(VerifyError::Rejected(
            "a legacy cosign signature without a certificate or a transparency-log entry can only be checked against a key".into(),
        ));
    };
    if !policy.insecure_ignore_tlog {
        return Err(VerifyError::Rejected(format!(
            "a legacy cosign signature with no transparency-log entry (as `cosign sign --tlog-upload=false` writes); to trust the key {} alone, set `insecure_ignore_tlog = true` in the formula's [verify] table (pkg verify: --insecure-ignore-tlog)",
            path.display()
        )));
    }
    let key = DerPublicKey::from_pem(pem).map_err(|e| VerifyError::Key {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let scheme = sigstore_verify::crypto::KeyAlgorithm::from_spki(&key)
        .map_err(|e| VerifyError::Key {
            path: path.clone(),
            reason: e.to_string(),
        })?
        .default_signing_scheme();
    let signature = sigstore_verify::types::SignatureBytes::from_bytes(&record.signature_bytes()?);
    sigstore_verify::crypto::verify_signature(&key, &payload, &signature, scheme).map_err(|e| {
        VerifyError::Rejected(format!(
            "the signature does not verify with the key {}: {e}",
            path.display()
        ))
    })?;
    if !policy.predicate_types.is_empty() {
        return Err(VerifyError::Predicate {
            found: "none (a plain signature)".into(),
            wanted: policy.predicate_types.join(" or "),
        });
    }
    Ok(Signed {
        signer: path.display().to_string(),
        issuer: None,
        predicate_type: None,
        time: None,
    })
}

/// The in-toto predicate type of a DSSE bundle (read after the signature verified).
fn predicate_type(bundle: &str) -> Option<String> {
    use base64::Engine as _;
    let doc: serde_json::Value = serde_json::from_str(bundle).ok()?;
    let payload = doc.pointer("/dsseEnvelope/payload")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let statement: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(statement.get("predicateType")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests;
