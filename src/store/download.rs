//! Downloads into the cache: a blob streamed from the registry, hashed as it flows, teed to
//! its partial file (resumed from where a killed run left it) and published only once size and
//! digest verify.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::{Store, StoreError, io_err};
use crate::digest::{Digest, HashingReader};

/// An open stream of a blob's bytes from the offset asked for, as a source (a registry, an OCI
/// layout) hands it to the store: the store hashes, tees and checks what it reads.
pub struct BlobStream {
    /// Where the bytes come from, for messages.
    pub url: String,
    pub reader: Box<dyn Read + Send>,
}

/// Why a source gave no stream for a blob from an offset: the source's own error, and whether
/// it refused the range (its ranged answers are broken, so the store asks for the whole blob).
#[derive(Debug)]
pub enum Unopened<E> {
    /// The answer to a ranged request contradicted the range (a wrong `Content-Range`, a 416):
    /// asking for the rest again would fail alike.
    RangeRefused(E),
    /// Anything else.
    Failed(E),
}

impl<E> Unopened<E> {
    pub fn into_inner(self) -> E {
        match self {
            Unopened::RangeRefused(e) | Unopened::Failed(e) => e,
        }
    }
}

/// A failure of [`Store::reader`]: the store's own, or the source's, handed back as it is.
#[derive(Debug)]
pub enum ReaderError<E> {
    Store(StoreError),
    Source(E),
}

impl<E> From<StoreError> for ReaderError<E> {
    fn from(e: StoreError) -> Self {
        ReaderError::Store(e)
    }
}

impl Store {
    /// A reader over a blob's bytes that verifies them as they flow: from the cache when present,
    /// else downloaded into the blob's partial file, which joins the cache only when
    /// [`BlobReader::finish`] has checked size and digest. When an earlier run left part of the
    /// blob there, those bytes are read back first (rehashed and handed on like the rest) and
    /// `open` is asked for the rest only: it gets the offset to start from (0 for a fresh
    /// download), and is not called at all when the partial already holds the whole blob. When
    /// the source refuses the range ([`Unopened::RangeRefused`]), the kept bytes are dropped
    /// and `open` is called again for the whole blob, from 0.
    /// Long: resuming a partial download has three outcomes (whole, resumed, refused range and
    /// restarted) that share the partial's lock, its hasher and the Ctrl-C guard.
    pub fn reader<E>(
        &self,
        digest: &Digest,
        size: u64,
        mut open: impl FnMut(u64) -> Result<BlobStream, Unopened<E>>,
    ) -> Result<BlobReader, ReaderError<E>> {
        if let Some(path) = self.cached(digest) {
            self.drop_stale_partial(digest);
            let file = File::open(&path).map_err(io_err(&path))?;
            return Ok(BlobReader {
                inner: HashingReader::with(
                    digest.kind(),
                    Tee {
                        kept: None,
                        inner: Box::new(file),
                        copy: None,
                        room: 0,
                        spoilt: None,
                    },
                    size,
                ),
                digest: digest.clone(),
                size,
                from: path.display().to_string(),
                cached: Some(path),
                dest: self.blob_path(digest),
                resumed: 0,
                _interrupted: None,
                _empty: None,
            });
        }
        let (mut download, mut kept) = match self.lock_partial(digest)? {
            Some(mut file) => {
                let path = self.partial_path(digest);
                let mut kept = file.metadata().map_err(io_err(&path))?.len();
                if kept > size {
                    // Longer than the blob: not a prefix of it.
                    file.set_len(0).map_err(io_err(&path))?;
                    kept = 0;
                }
                file.seek(io::SeekFrom::Start(kept))
                    .map_err(io_err(&path))?;
                (Download::Partial { path, file }, kept)
            }
            None => (Download::Temp(self.temp_file()?), 0),
        };
        // Ctrl-C removes this run's own temporary file, never the partial: that is a locked,
        // verified-size prefix of the blob named by its digest, which the next run resumes (and
        // by the time the guard would be dropped, another run may have a new partial there).
        let guard = match &download {
            Download::Temp(tmp) => Some(crate::interrupt::guard(tmp.path())),
            Download::Partial { .. } => None,
        };
        // An empty partial resumes nothing: an interruption before its first byte removes it.
        let empty_guard = match &download {
            Download::Partial { path, .. } if kept == 0 => {
                Some(crate::interrupt::guard_if_empty(path))
            }
            _ => None,
        };
        let stream = if kept == size {
            BlobStream {
                url: download.path().display().to_string(),
                reader: Box::new(io::empty()),
            }
        } else {
            let mut answer = open(kept);
            if kept > 0 && matches!(answer, Err(Unopened::RangeRefused(_))) {
                // The registry's ranges are broken: asking for the rest again would fail the
                // same way in every later run. Nothing has been handed out yet, so the kept
                // bytes go and the whole blob is fetched, without a range.
                if let Err(e) = download.truncate() {
                    download.discard();
                    return Err(e.into());
                }
                kept = 0;
                answer = open(0);
            }
            match answer {
                Ok(stream) => stream,
                Err(e) => {
                    download.abandon();
                    return Err(ReaderError::Source(e.into_inner()));
                }
            }
        };
        let kept_reader = match &download {
            Download::Partial { path, file } if kept > 0 => Some(Kept {
                file: file.try_clone().map_err(io_err(path))?,
                path: path.clone(),
                pos: 0,
                end: kept,
            }),
            _ => None,
        };
        Ok(BlobReader {
            inner: HashingReader::with(
                digest.kind(),
                Tee {
                    kept: kept_reader,
                    inner: stream.reader,
                    copy: Some(io::BufWriter::with_capacity(256 * 1024, download)),
                    room: size - kept,
                    spoilt: None,
                },
                size,
            ),
            digest: digest.clone(),
            size,
            from: stream.url,
            cached: None,
            dest: self.blob_path(digest),
            resumed: kept,
            _interrupted: guard,
            _empty: empty_guard,
        })
    }
}

/// Where a download goes: the blob's partial file (kept if the run fails), or, when another run
/// holds that, a temporary file of this run's own (deleted if it fails).
enum Download {
    Temp(tempfile::NamedTempFile),
    Partial { path: PathBuf, file: File },
}

impl Download {
    fn path(&self) -> &Path {
        match self {
            Download::Temp(tmp) => tmp.path(),
            Download::Partial { path, .. } => path,
        }
    }

    /// The download did not finish: a temporary file goes, a partial stays for the next run
    /// (unless it holds nothing).
    fn abandon(self) {
        match self {
            Download::Temp(tmp) => drop(tmp),
            Download::Partial { path, file } => {
                if file.metadata().is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    /// Empties the partial (its bytes are not to be resumed from), keeping its lock.
    fn truncate(&mut self) -> Result<(), StoreError> {
        if let Download::Partial { path, file } = self {
            file.set_len(0).map_err(io_err(path))?;
            file.seek(io::SeekFrom::Start(0)).map_err(io_err(path))?;
        }
        Ok(())
    }

    /// The bytes failed their check, or a write into the file failed (so it may have a hole):
    /// they go, whatever kind of file holds them.
    fn discard(self) {
        match self {
            Download::Temp(tmp) => drop(tmp),
            Download::Partial {
                path,
                file: _locked,
            } => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Size and digest verified: the file becomes the cached blob (renamed while still locked).
    fn publish(self, dest: &Path) -> Result<(), StoreError> {
        match self {
            Download::Temp(tmp) => tmp.persist(dest).map(drop).map_err(|e| StoreError::Io {
                path: dest.to_owned(),
                source: e.error,
            }),
            Download::Partial {
                path,
                file: _locked,
            } => std::fs::rename(&path, dest).map_err(io_err(dest)),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: the first write into a download on this thread that starts at or past this
    /// offset fails, as on a full disk (then this is cleared).
    pub(super) static FAIL_WRITE_AT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

impl Write for Download {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(at) = FAIL_WRITE_AT.get() {
            let file = match self {
                Download::Temp(tmp) => tmp.as_file(),
                Download::Partial { file, .. } => file,
            };
            if file.metadata()?.len() >= at {
                FAIL_WRITE_AT.set(None);
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device (test)",
                ));
            }
        }
        match self {
            Download::Temp(tmp) => tmp.write(buf),
            Download::Partial { file, .. } => file.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Download::Temp(tmp) => tmp.flush(),
            Download::Partial { file, .. } => file.flush(),
        }
    }
}

/// The bytes of a partial download an earlier run left, read back from the file's start (by
/// position, so the writer's offset at the file's end is untouched).
struct Kept {
    file: File,
    path: PathBuf,
    pos: u64,
    end: u64,
}

impl Read for Kept {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank to {} bytes while being read back",
                    self.path.display(),
                    self.pos
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The blob's bytes: those kept from an earlier run first, then the stream's, which are copied
/// into the download file (never more than `room` of them, so a partial never grows past the
/// blob's size, even by the byte that proves a stream too long).
///
/// A write that fails (a full disk) loses its chunk: the file would have a hole, and a partial
/// with a hole resumed from its length yields another blob. So the first failed write deletes
/// the file and stops the copy (`spoilt`), and every read after it fails: nothing downstream
/// sees more, nothing is kept for a later run, nothing is published.
struct Tee {
    kept: Option<Kept>,
    inner: Box<dyn Read + Send>,
    copy: Option<io::BufWriter<Download>>,
    room: u64,
    /// The file whose write failed (deleted), with the error.
    spoilt: Option<(PathBuf, io::Error)>,
}

impl Tee {
    /// The error every read returns once a write failed.
    fn spoilt_error(&self) -> Option<io::Error> {
        let (path, e) = self.spoilt.as_ref()?;
        Some(io::Error::new(
            e.kind(),
            format!("writing the download to {}: {e}", path.display()),
        ))
    }

    /// A write into the download failed: the file goes, and so does the copy.
    fn spoil(&mut self, e: io::Error) -> io::Error {
        if let Some(copy) = self.copy.take() {
            let (download, _unwritten) = copy.into_parts();
            let path = download.path().to_owned();
            download.discard();
            self.spoilt = Some((path, e));
        }
        self.spoilt_error()
            .unwrap_or_else(|| io::Error::other("the download was spoilt"))
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.spoilt_error() {
            return Err(e);
        }
        if let Some(kept) = self.kept.as_mut() {
            match kept.read(buf)? {
                0 => self.kept = None,
                n => return Ok(n),
            }
        }
        let n = self.inner.read(buf)?;
        if let Some(copy) = self.copy.as_mut() {
            let take = n.min(usize::try_from(self.room).unwrap_or(usize::MAX));
            if let Err(e) = copy.write_all(&buf[..take]) {
                return Err(self.spoil(e));
            }
            self.room -= take as u64;
        }
        Ok(n)
    }
}

/// See [`Store::reader`].
pub struct BlobReader {
    inner: HashingReader<Tee>,
    digest: Digest,
    size: u64,
    from: String,
    cached: Option<PathBuf>,
    dest: PathBuf,
    /// Bytes taken from a partial download an earlier run left.
    resumed: u64,
    _interrupted: Option<crate::interrupt::Guard>,
    _empty: Option<crate::interrupt::EmptyGuard>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl BlobReader {
    /// Drains what is left, checks size and digest, and publishes a downloaded blob into the cache.
    /// A cached blob or a partial download that does not verify is removed, so the next run
    /// downloads it from the start; so is a partial a write failed to extend (the error is that
    /// of the write). A download that breaks off keeps its partial file.
    pub fn finish(self) -> Result<(), StoreError> {
        let BlobReader {
            inner,
            digest,
            size,
            from,
            cached,
            dest,
            resumed,
            _interrupted,
            _empty,
        } = self;
        let mut inner = inner;
        let verdict = inner.finish();
        let tee = inner.into_inner();
        // A failed write is the verdict: the file it spoilt is gone, nothing is published.
        if let Some((path, source)) = tee.spoilt {
            return Err(StoreError::Io { path, source });
        }
        let download = match tee.copy.map(io::BufWriter::into_inner) {
            None => None,
            Some(Ok(download)) => Some(download),
            Some(Err(e)) => {
                let (source, writer) = e.into_parts();
                let download = writer.into_parts().0;
                let path = download.path().to_owned();
                download.discard();
                return Err(StoreError::Io { path, source });
            }
        };
        let (actual, count) = match verdict {
            Ok(v) => v,
            Err(source) => {
                if let Some(download) = download {
                    download.abandon();
                }
                return Err(StoreError::Io {
                    path: PathBuf::from(&from),
                    source,
                });
            }
        };
        let from = if resumed > 0 {
            format!(
                "{from}, after {resumed} bytes kept from an earlier run's partial download (deleted: the next try starts over)"
            )
        } else {
            from
        };
        let bad = if count != size {
            Some(StoreError::Size {
                digest: digest.clone(),
                expected: size,
                actual: count,
                from,
            })
        } else if actual != digest {
            Some(StoreError::Mismatch {
                digest: digest.clone(),
                actual,
                from,
            })
        } else {
            None
        };
        if let Some(err) = bad {
            if let Some(path) = cached {
                let _ = std::fs::remove_file(path);
            }
            if let Some(download) = download {
                download.discard();
            }
            return Err(err);
        }
        match download {
            Some(download) => download.publish(&dest),
            None => Ok(()),
        }
    }
}
