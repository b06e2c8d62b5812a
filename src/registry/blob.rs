//! Blob downloads: an authenticated, redirect-safe GET whose body is handed out as a stream that
//! resumes itself with `Range: bytes=N-` when the connection breaks, and that can start at an
//! offset (the rest of a partial download an earlier run left). Hashing and size checks happen
//! in the store as the bytes flow.
//!
//! A ranged answer that contradicts what was asked (a 206 whose `Content-Range` or
//! `Content-Length` is not that of the rest of the blob, or a 416 for a range inside it) says the
//! server's range support is broken, not the network: it is refused with an error
//! [`RegistryError::RangeRefused`], and the body is then asked for again without `Range` (the store
//! drops a partial it was resuming and starts from 0; a stream that broke off midway reads the
//! whole blob again and skips the bytes already handed out), so the same bad answer is never
//! asked for again.

use std::io::{self, Read};

use super::{Call, Client, RegistryError, Repository, retry};
use crate::digest::Digest;

pub use crate::store::BlobStream;
use crate::store::Unopened;

impl Client {
    /// Starts downloading `digest` from `repo`. A `Content-Length` that differs from the
    /// descriptor's `size` is refused before a byte is read.
    pub fn open_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, RegistryError> {
        self.open_blob_from(repo, digest, size, 0)
    }

    /// Downloads `digest` from byte `offset` on (a partial download an earlier run left holds
    /// the bytes before it): `Range: bytes=OFFSET-`, a 206 whose `Content-Range` must match, or
    /// a 200 from a server that ignores ranges, read from the start with the first `offset`
    /// bytes skipped. A ranged answer that contradicts the range is an error [`refuses_range`]
    /// recognises (the caller then starts over from 0).
    pub fn open_blob_from(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let (url, body) = self.blob_from(repo, digest, size, offset, true)?;
        Ok(BlobStream {
            url: url.clone(),
            reader: Box::new(Resuming {
                client: self.clone(),
                repo: repo.clone(),
                digest: digest.clone(),
                size,
                url,
                inner: body,
                offset,
                resumes_left: self.network().resumes,
                attempt: 0,
                ranges: true,
            }),
        })
    }

    /// GET the blob from byte `offset` on, with `Range: bytes=OFFSET-` when `ranged`. A 200
    /// (a server that ignores the range, or no range asked for) is read from the start and the
    /// first `offset` bytes are skipped.
    fn blob_from(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        offset: u64,
        ranged: bool,
    ) -> Result<(String, Box<dyn Read + Send>), RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let mut call = Call::get(&url).header("Accept", "*/*");
        let ranged = ranged && offset > 0;
        if ranged {
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
                skip_exact(&mut body, offset).map_err(|source| RegistryError::Read {
                    url: url.clone(),
                    source,
                })?;
                Ok((url, Box::new(body)))
            }
            206 | 416 if ranged => {
                let refused = |reason: String| {
                    range_refused(
                        &url,
                        format!("asked for bytes {offset}- of {digest} ({size} bytes): {reason}"),
                    )
                };
                if status == 416 {
                    return Err(refused(
                        "the server answered 416 (Range Not Satisfiable) for a range inside the blob"
                            .into(),
                    ));
                }
                let range = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok());
                check_content_range(range, offset, size).map_err(refused)?;
                if let Some(len) = length
                    && len != size - offset
                {
                    return Err(refused(format!(
                        "the answer's Content-Length is {len}, not the {} bytes left",
                        size - offset
                    )));
                }
                Ok((url, Box::new(resp.into_body().into_reader())))
            }
            _ => Err(self.status_error(repo, &url, resp, || format!("blob {digest}"))),
        }
    }
}

/// The error that refuses a ranged answer from `url`, for `reason`.
pub(crate) fn range_refused(url: &str, reason: String) -> RegistryError {
    RegistryError::RangeRefused {
        url: url.to_owned(),
        reason,
    }
}

/// Whether `error` is the refusal of a ranged answer that contradicts the range asked for (a
/// wrong `Content-Range` or `Content-Length` on a 206, a 416): the server's ranges are broken,
/// and asking again without `Range` is the way on. Network errors and timeouts are not.
pub fn refuses_range(error: &RegistryError) -> bool {
    matches!(error, RegistryError::RangeRefused { .. })
}

/// A registry error as the store takes it: a refused range said as such.
pub fn unopened(error: RegistryError) -> Unopened<RegistryError> {
    if refuses_range(&error) {
        Unopened::RangeRefused(error)
    } else {
        Unopened::Failed(error)
    }
}

/// The `Content-Range` of a 206 answer to `Range: bytes=OFFSET-` must be exactly
/// `bytes OFFSET-LAST/SIZE`, LAST being the blob's last byte; the total may be `*` (unknown to
/// the server), but when given it must be the descriptor's size.
fn check_content_range(value: Option<&str>, offset: u64, size: u64) -> Result<(), String> {
    let Some(value) = value else {
        return Err("the server sent no Content-Range".into());
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let parsed = value
        .trim()
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(range, total)| {
            let (first, last) = range.trim().split_once('-')?;
            let total = match total.trim() {
                "*" => None,
                t => Some(number(t)?),
            };
            Some((number(first)?, number(last)?, total))
        });
    let wrong = |what: &str| Err(format!("the server sent Content-Range `{value}` ({what})"));
    match parsed {
        None => wrong("not `bytes FIRST-LAST/TOTAL`"),
        Some((first, _, _)) if first != offset => wrong("another start"),
        Some((_, last, _)) if Some(last) != size.checked_sub(1) => {
            wrong("another end than the blob's last byte")
        }
        Some((_, _, Some(total))) if total != size => wrong("another total size"),
        Some(_) => Ok(()),
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
    /// Whether resuming asks for `Range: bytes=OFFSET-`: false once the server answered a range
    /// with something that contradicts it (then the whole blob is read again, the bytes already
    /// handed out skipped).
    ranges: bool,
}

impl Resuming {
    fn resume(&mut self, cause: io::Error) -> io::Result<()> {
        if self.resumes_left == 0 {
            return Err(cause);
        }
        self.resumes_left -= 1;
        std::thread::sleep(retry::delay(self.client.network(), self.attempt, None));
        self.attempt += 1;
        let (client, repo, digest) = (&self.client, &self.repo, &self.digest);
        let from = |ranged| client.blob_from(repo, digest, self.size, self.offset, ranged);
        let answer = match from(self.ranges) {
            Err(refused) if refuses_range(&refused) => from(false)
                .map(|answer| (answer, false))
                .map_err(|e| {
                    format!(
                        "{cause}; resuming {} was refused ({refused}), and reading it again from the start failed: {e}",
                        self.url
                    )
                }),
            other => other
                .map(|answer| (answer, self.ranges))
                .map_err(|e| format!("{cause}; resuming {} failed: {e}", self.url)),
        };
        let ((url, body), ranges) = answer.map_err(io::Error::other)?;
        self.ranges = ranges;
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

/// Reads and drops the first `n` bytes of `reader` (a source that cannot seek, or a server that
/// sent the whole blob when asked for the rest); fewer than `n` is an `UnexpectedEof`.
pub fn skip_exact(reader: &mut impl Read, n: u64) -> io::Result<()> {
    let skipped = io::copy(&mut reader.take(n), &mut io::sink())?;
    if skipped == n {
        Ok(())
    } else {
        Err(io::ErrorKind::UnexpectedEof.into())
    }
}

#[cfg(test)]
mod tests {
    use super::check_content_range;

    #[test]
    fn a_content_range_must_match_the_range_asked_for_and_the_blob_size() {
        // bytes=100- of a 1000-byte blob.
        for good in [
            "bytes 100-999/1000",
            "bytes 100-999/*",
            " bytes 100-999/1000 ",
        ] {
            assert_eq!(check_content_range(Some(good), 100, 1000), Ok(()), "{good}");
        }
        for bad in [
            "bytes 0-999/1000",
            "bytes 101-999/1000",
            "bytes 100-998/1000",
            "bytes 100-1000/1000",
            "bytes 100-999/1001",
            "bytes 100-999/999",
            "bytes 100-999/",
            "bytes 100-999",
            "bytes +100-999/1000",
            "bytes 100-999/+1000",
            "items 100-999/1000",
            "bytes */1000",
            "bytes 100-/1000",
            "",
            "bytes 18446744073709551616-999/1000",
        ] {
            let err = check_content_range(Some(bad), 100, 1000);
            assert!(err.is_err(), "{bad:?} accepted");
        }
        assert!(check_content_range(None, 100, 1000).is_err());
    }
}
