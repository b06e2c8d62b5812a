//! Blob downloads: an authenticated, redirect-safe GET whose body is handed out as a stream that
//! resumes itself with `Range: bytes=N-` when the connection breaks. Hashing and size checks
//! happen in the store as the bytes flow.

use std::io::{self, Read};

use super::{Call, Client, RegistryError, Repository, retry};
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
        let (url, body) = self.blob_from(repo, digest, size, 0)?;
        Ok(BlobStream {
            url: url.clone(),
            reader: Box::new(Resuming {
                client: self.clone(),
                repo: repo.clone(),
                digest: digest.clone(),
                size,
                url,
                inner: body,
                offset: 0,
                resumes_left: self.network().resumes,
                attempt: 0,
            }),
        })
    }

    /// GET the blob from byte `offset` on. A server that ignores the range (200) is read from
    /// the start and the first `offset` bytes are skipped.
    fn blob_from(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        offset: u64,
    ) -> Result<(String, Box<dyn Read + Send>), RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let mut call = Call::get(&url).header("Accept", "*/*");
        if offset > 0 {
            call = call.header("Range", format!("bytes={offset}-"));
        }
        let resp = self.request(repo, "pull", &call)?;
        let url = url.to_string();
        let status = resp.status().as_u16();
        let length = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match status {
            200 => {
                if let Some(len) = length
                    && len != size
                {
                    return Err(RegistryError::SizeMismatch {
                        url,
                        digest: digest.clone(),
                        expected: size,
                        actual: len,
                    });
                }
                let mut body = resp.into_body().into_reader();
                if offset > 0 {
                    let skipped = io::copy(&mut (&mut body).take(offset), &mut io::sink())
                        .map_err(|source| RegistryError::Read {
                            url: url.clone(),
                            source,
                        })?;
                    if skipped != offset {
                        return Err(RegistryError::Read {
                            url,
                            source: io::ErrorKind::UnexpectedEof.into(),
                        });
                    }
                }
                Ok((url, Box::new(body)))
            }
            206 if offset > 0 => {
                let range = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let expected = format!("bytes {offset}-{}/", size - 1);
                if !range.starts_with(&expected) {
                    return Err(RegistryError::Redirect {
                        url,
                        reason: format!(
                            "asked for bytes {offset}- of {digest} but the server sent Content-Range `{range}`"
                        ),
                    });
                }
                Ok((url, Box::new(resp.into_body().into_reader())))
            }
            _ => Err(self.status_error(repo, &url, resp, || format!("blob {digest}"))),
        }
    }
}

/// A blob body that reconnects at the current offset when the connection breaks or ends early.
struct Resuming {
    client: Client,
    repo: Repository,
    digest: Digest,
    size: u64,
    url: String,
    inner: Box<dyn Read + Send>,
    offset: u64,
    resumes_left: u32,
    attempt: u32,
}

impl Resuming {
    fn resume(&mut self, cause: io::Error) -> io::Result<()> {
        if self.resumes_left == 0 {
            return Err(cause);
        }
        self.resumes_left -= 1;
        std::thread::sleep(retry::delay(self.client.network(), self.attempt, None));
        self.attempt += 1;
        let (url, body) = self
            .client
            .blob_from(&self.repo, &self.digest, self.size, self.offset)
            .map_err(|e| io::Error::other(format!("{cause}; resuming {} failed: {e}", self.url)))?;
        self.url = url;
        self.inner = body;
        Ok(())
    }
}

impl Read for Resuming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.inner.read(buf) {
                Ok(0) if self.offset < self.size => {
                    self.resume(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} ended after {} of {} bytes",
                            self.url, self.offset, self.size
                        ),
                    ))?;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.attempt = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(e)?,
            }
        }
    }
}
