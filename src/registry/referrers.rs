//! Referrers (OCI 1.1) and small blobs read whole: what finding a manifest's signatures needs
//! (`verify/discover.rs`), through the same client, mirrors and retries as everything else.

use super::{Client, Digest, RegistryError, Repository, manifest, read_limited};

impl Client {
    /// The OCI 1.1 referrers API's index for `digest`; `None` where the registry has no such
    /// API (distribution 2.8 and GHCR answer 404): then the fallback tag `sha256-<hex>` is it.
    pub fn referrers(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let (url, resp) = self.get(
            repo,
            &format!("referrers/{digest}"),
            "application/vnd.oci.image.index.v1+json",
        )?;
        match resp.status().as_u16() {
            200 => read_limited(resp, &url, manifest::MAX_MANIFEST_BYTES).map(Some),
            404 | 405 => Ok(None),
            _ => Err(self.status_error(repo, &url, resp, || format!("the referrers of {digest}"))),
        }
    }

    /// A small blob (a signature bundle), whole and digest-checked.
    pub fn read_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut bytes = Vec::new();
        let stream = self.open_blob(repo, digest, size)?;
        let url = stream.url.clone();
        std::io::Read::read_to_end(&mut std::io::Read::take(stream.reader, size), &mut bytes)
            .map_err(|source| RegistryError::Read {
                url: url.clone(),
                source,
            })?;
        if !digest.matches(&bytes) {
            return Err(RegistryError::DigestMismatch {
                what: "blob".into(),
                expected: digest.to_string(),
                actual: Digest::of_bytes_with(digest.kind(), &bytes).to_string(),
                url,
            });
        }
        Ok(bytes)
    }
}
