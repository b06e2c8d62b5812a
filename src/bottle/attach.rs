//! `pkg bottle --push … --attach-bundle FILE`: a Sigstore bundle made by a signer in CI (cosign,
//! GitHub's attestations) published as an OCI 1.1 referrer of the pushed image — an artifact
//! manifest with the image as its `subject` — and listed in the fallback tag `sha256-<hex>`'s
//! index, which is how clients find referrers on registries without the referrers API (GHCR,
//! distribution 2.8). What `pkg verify` and `[verify]` policies read back.

use crate::digest::Digest;
use crate::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::registry::{Client, RegistryError, Repository};
use crate::verify::BUNDLE_MEDIA_TYPE;

use super::publish::PublishError;

/// The pushed image a bundle is attached to.
pub struct Subject<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub size: u64,
}

/// Checks that `bytes` are a Sigstore bundle, before anything is pushed: the message says what
/// is wrong.
pub fn check_bundle(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 JSON: {e}"))?;
    sigstore_verify::types::Bundle::from_json(text)
        .map(drop)
        .map_err(|e| format!("not a Sigstore bundle: {e}"))
}

/// Pushes `bundle` as a referrer of `subject`; returns the referrer manifest's digest.
pub fn attach(
    client: &Client,
    repo: &Repository,
    subject: &Subject<'_>,
    bundle: &[u8],
) -> Result<Digest, PublishError> {
    let err = |what: String| {
        move |source: RegistryError| PublishError::Registry {
            repository: repo.clone(),
            what,
            source: Box::new(super::publish::for_push(source)),
        }
    };
    let empty = b"{}";
    for blob in [&empty[..], bundle] {
        let digest = Digest::of_bytes(blob);
        if !client
            .blob_exists(repo, &digest)
            .map_err(err(format!("blob {digest}")))?
        {
            let session = client
                .start_upload(repo)
                .map_err(err(format!("blob {digest}")))?;
            client
                .upload_whole(repo, &session, &digest, blob)
                .map_err(err(format!("blob {digest}")))?;
        }
    }
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": Digest::of_bytes(empty).to_string(),
            "size": empty.len(),
        },
        "layers": [{
            "mediaType": BUNDLE_MEDIA_TYPE,
            "digest": Digest::of_bytes(bundle).to_string(),
            "size": bundle.len(),
        }],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest.to_string(),
            "size": subject.size,
        },
    })
    .to_string();
    let digest = Digest::of_bytes(referrer.as_bytes());
    client
        .put_manifest(repo, &digest.to_string(), OCI_MANIFEST, referrer.as_bytes())
        .map_err(err(format!("the referrer {digest}")))?;
    // The fallback tag's index, with this referrer added to what it lists already.
    let tag = format!("{}-{}", subject.digest.algorithm(), subject.digest.hex());
    let mut listed: Vec<serde_json::Value> = match client.fetch_manifest(repo, &tag) {
        Ok(m) => serde_json::from_slice::<serde_json::Value>(&m.bytes)
            .ok()
            .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
            .unwrap_or_default(),
        Err(RegistryError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(err(format!("the referrers tag {tag}"))(e)),
    };
    let ours = digest.to_string();
    if !listed
        .iter()
        .any(|d| d.get("digest").and_then(|x| x.as_str()) == Some(&ours))
    {
        listed.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": ours,
            "size": referrer.len(),
            "artifactType": BUNDLE_MEDIA_TYPE,
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": listed,
    })
    .to_string();
    client
        .put_manifest(repo, &tag, OCI_INDEX, index.as_bytes())
        .map_err(err(format!("the referrers tag {tag}")))?;
    Ok(digest)
}
