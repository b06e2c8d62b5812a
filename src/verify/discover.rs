//! Finding the Sigstore bundles attached to a manifest: the OCI 1.1 referrers API where the
//! registry has one, else the fallback tag `sha256-<hex>` (GHCR and distribution 2.8 have no
//! API); every listed manifest is fetched and read (cosign's fallback index may leave out
//! `artifactType`), and a bundle layer's blob is fetched and digest-checked; then legacy
//! cosign's `sha256-<hex>.sig` tag, each simple-signing layer kept as a record (legacy.rs). All
//! through the same registry client (mirrors, retries, credentials) as installs.

use crate::digest::Digest;
use crate::registry::{Client, RegistryError, Repository};

use super::BUNDLE_MEDIA_TYPE;
use super::legacy::{Record, SIMPLE_SIGNING};

/// A bundle attached to the subject.
pub struct Attached {
    /// The referrer manifest that carries it.
    pub manifest: Digest,
    pub bundle: Vec<u8>,
}

/// What was found for `subject`, and what was looked at (for a message when nothing fits).
pub struct Found {
    pub bundles: Vec<Attached>,
    pub looked_at: Vec<String>,
}

/// Referrers read per subject: more are passed over (and counted in what was looked at).
pub const MAX_REFERRERS: usize = 32;
/// Bundle (or simple-signing) layers read per referrer manifest.
const MAX_LAYERS: usize = 4;
/// Bundle bytes read per subject, all referrers together.
const MAX_BUNDLE_BYTES: u64 = 16 << 20;

pub fn bundles(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
) -> Result<Found, RegistryError> {
    let mut looked_at = Vec::new();
    let index = match client.referrers(repo, subject)? {
        Some(bytes) => {
            looked_at.push(format!("the referrers API of {repo} for {subject}"));
            Some(bytes)
        }
        None => {
            let tag = format!("{}-{}", subject.algorithm(), subject.hex());
            looked_at.push(format!("the referrers tag {repo}:{tag}"));
            match client.fetch_manifest(repo, &tag) {
                Ok(m) => Some(m.bytes),
                Err(RegistryError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            }
        }
    };
    let mut bundles = Vec::new();
    let mut listed: Vec<(Digest, String)> = index
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            let digest = d.get("digest")?.as_str()?.parse().ok()?;
            let kind = d.get("artifactType").and_then(|t| t.as_str()).unwrap_or("");
            Some((digest, kind.to_owned()))
        })
        .collect();
    // Each referrer once, and only so many: a list naming one manifest 3,000 times costs one
    // request, a list of 3,000 costs MAX_REFERRERS.
    let mut seen = std::collections::HashSet::new();
    listed.retain(|(d, _)| seen.insert(d.clone()));
    if listed.len() > MAX_REFERRERS {
        looked_at.push(format!(
            "{} more referrers (pkg reads the first {MAX_REFERRERS})",
            listed.len() - MAX_REFERRERS
        ));
        listed.truncate(MAX_REFERRERS);
    }
    let mut budget = MAX_BUNDLE_BYTES;
    let mut blobs_read = std::collections::HashSet::new();
    for (digest, kind) in listed {
        if !kind.is_empty() && kind != BUNDLE_MEDIA_TYPE {
            looked_at.push(format!("{digest} ({kind}, not a Sigstore bundle)"));
            continue;
        }
        let manifest = client.fetch_manifest(repo, &digest.to_string())?;
        let doc: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
        // It must say it is about this subject, when it says anything.
        let about = doc.pointer("/subject/digest").and_then(|d| d.as_str());
        if about.is_some_and(|d| d != subject.to_string()) {
            looked_at.push(format!(
                "{digest} (its subject is {})",
                about.unwrap_or_default()
            ));
            continue;
        }
        let mut any = false;
        for (_, blob, size) in small_layers(&doc, BUNDLE_MEDIA_TYPE, 4 << 20).take(MAX_LAYERS) {
            // The same blob is read once per subject, and all of them within the budget.
            if !blobs_read.insert(blob.clone()) {
                any = true;
                continue;
            }
            if size > budget {
                looked_at.push(format!(
                    "{digest} (its bundles are past the {MAX_BUNDLE_BYTES} bytes pkg reads per package)"
                ));
                break;
            }
            budget -= size;
            bundles.push(Attached {
                manifest: digest.clone(),
                bundle: client.read_blob(repo, &blob, size)?,
            });
            any = true;
        }
        if !any {
            looked_at.push(format!("{digest} (no bundle layer)"));
        }
    }
    legacy(client, repo, subject, &mut bundles, &mut looked_at)?;
    Ok(Found { bundles, looked_at })
}

/// Legacy cosign signatures under the tag `sha256-<hex>.sig`.
fn legacy(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    bundles: &mut Vec<Attached>,
    looked_at: &mut Vec<String>,
) -> Result<(), RegistryError> {
    let tag = format!("{}-{}.sig", subject.algorithm(), subject.hex());
    looked_at.push(format!("the cosign signature tag {repo}:{tag}"));
    let manifest = match client.fetch_manifest(repo, &tag) {
        Ok(m) => m,
        Err(RegistryError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let doc: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for (layer, blob, size) in small_layers(&doc, SIMPLE_SIGNING, 1 << 20)
        .filter(|(_, blob, _)| seen.insert(blob.clone()))
        .take(MAX_REFERRERS)
    {
        let payload = client.read_blob(repo, &blob, size)?;
        let annotations = layer.get("annotations").cloned().unwrap_or_default();
        match Record::from_layer(&payload, &annotations) {
            Some(record) => bundles.push(Attached {
                manifest: manifest.digest.clone(),
                bundle: serde_json::to_vec(&record).unwrap_or_default(),
            }),
            None => looked_at.push(format!("{blob} (a payload without a signature)")),
        }
    }
    Ok(())
}

/// The layers of a manifest `doc` of media type `media` and at most `limit` bytes: each with
/// its digest and size (a layer without them is passed over).
fn small_layers<'a>(
    doc: &'a serde_json::Value,
    media: &'a str,
    limit: u64,
) -> impl Iterator<Item = (&'a serde_json::Value, Digest, u64)> + 'a {
    doc.get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter(move |l| l.get("mediaType").and_then(|m| m.as_str()) == Some(media))
        .filter_map(move |l| {
            let blob = l.get("digest")?.as_str()?.parse::<Digest>().ok()?;
            let size = l.get("size")?.as_u64().filter(|s| *s <= limit)?;
            Some((l, blob, size))
        })
}
