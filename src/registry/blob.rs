//! Blob downloads: an authenticated, redirect-safe GET whose body is handed out as a stream;
//! hashing and size checks happen in the store as the bytes flow.

use std::io::Read;

use super::{Client, RegistryError, Repository};
use crate::digest::Digest;

/// An open blob download.
pub struct BlobStream {
    pub url: String,
    pub reader: Box<dyn Read + Send>,
}

impl Client {
    /// Starts downloading `digest` from `repo`. A `Content-Length` that differs from the
    /// descriptor's `size` is refused before a byte is read.
    pub fn open_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, RegistryError> {
        let (url, resp) = self.get(repo, &format!("blobs/{digest}"), "*/*")?;
        if resp.status() != 200 {
            return Err(self.status_error(repo, &url, resp, || format!("blob {digest}")));
        }
        if let Some(len) = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len != size
        {
            return Err(RegistryError::SizeMismatch {
                url,
                digest: digest.clone(),
                expected: size,
                actual: len,
            });
        }
        Ok(BlobStream {
            url,
            reader: Box::new(resp.into_body().into_reader()),
        })
    }
}
