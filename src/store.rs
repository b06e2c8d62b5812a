//! The content-addressed cache shared by every prefix: verified blobs and manifests by digest,
//! tag → digest records for offline use, and in-flight downloads that become visible only once verified.
//!
//! Layout (versioned, so a future change can migrate instead of break):
//! ```text
//! CACHE/CACHEDIR.TAG
//! CACHE/v1/blobs/{sha256,sha512}/<hex>   verified content (layers, manifests)
//! CACHE/v1/refs/<registry>/<repo>/<tag>  digest a tag pointed to when last fetched
//! CACHE/v1/tmp/                          temporary files, each locked by its live run
//! CACHE/v1/tmp/<alg>-<hex>.partial       a download a killed or failed run left, resumed by
//!                                        the next run that wants that blob
//! ```
//!
//! A blob is downloaded into the partial file named by its digest (locked while in use, so two
//! runs never share one; the second downloads into a temporary file of its own). A partial that
//! outlives its run (killed, failed, or interrupted by Ctrl-C: it is resumable state, not a
//! temporary file) is read back, rehashed and fed downstream by the next run, which asks the
//! registry only for the rest (`Range: bytes=N-`). Nothing joins `blobs/` before size and digest
//! verify; a partial that fails them is deleted, so the try after it starts from zero. So is one
//! whose ranged answer the registry botches (then the blob is fetched whole, in the same run) and
//! one a write failed to extend (it would have a hole).

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::registry::blob::{BlobStream, refuses_range};
use crate::registry::{RegistryError, Repository};

const LAYOUT: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "SHA-256 mismatch for {digest}\n  Expected: {digest}\n  Actual:   {actual}\n  From:     {from}\nNothing was installed. If this repeats, the registry serves corrupted or tampered content."
    )]
    Mismatch {
        digest: Digest,
        actual: Digest,
        from: String,
    },
    #[error(
        "size mismatch for {digest} from {from}: the descriptor says {expected} bytes, {actual} arrived"
    )]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
        from: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (and creates when missing) the cache at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let base = root.join(LAYOUT);
        for dir in [
            base.join("blobs/sha256"),
            base.join("blobs/sha512"),
            base.join("tmp"),
            base.join("refs"),
        ] {
            fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = std::fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# This is pkg's download cache; see https://bford.info/cachedir/\n",
            );
        }
        Ok(Store { root: base })
    }

    /// Removes the temporary files of runs that died (SIGKILL, power loss), partial downloads
    /// included, and returns them with their sizes; with `dry_run`, only lists them. A live run
    /// holds an exclusive lock on each of its temporary files (see [`Store::temp_file`]), so a
    /// file that can be locked belongs to no one. It is removed while locked, so its creator
    /// notices if it was brand new.
    pub fn sweep(&self, dry_run: bool) -> Vec<(PathBuf, u64)> {
        self.sweep_where(dry_run, |_| true)
    }

    /// [`Store::sweep`], except for the partial downloads named by their digest: those are kept
    /// for the next run that wants their blob to resume (`pkg cleanup` still removes them).
    pub fn sweep_keeping_partials(&self) -> Vec<(PathBuf, u64)> {
        self.sweep_where(false, |path| partial_digest(path).is_none())
    }

    fn sweep_where(&self, dry_run: bool, wanted: impl Fn(&Path) -> bool) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        for (path, meta) in self.temporary_files() {
            if !wanted(&path) {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if file.try_lock().is_ok() && (dry_run || std::fs::remove_file(&path).is_ok()) {
                out.push((path, meta.len()));
            }
        }
        out
    }

    /// A new temporary file in `tmp/`, locked for as long as it is open so that [`Store::sweep`]
    /// in another process leaves it alone. A sweep that removed the file between its creation
    /// and the lock is noticed (the name no longer leads to this file) and another is made.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.root.join("tmp");
        loop {
            let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
            if tmp.as_file().try_lock().is_err() {
                continue;
            }
            let ours = tmp.as_file().metadata().map_err(io_err(tmp.path()))?;
            match std::fs::metadata(tmp.path()) {
                Ok(named) if named.ino() == ours.ino() && named.dev() == ours.dev() => {
                    return Ok(tmp);
                }
                _ => continue,
            }
        }
    }

    /// Whether `path` (a file in `tmp/`) is a partial download named by its blob's digest:
    /// resumable state, kept by the sweep at the start of a run, unlike the `.tmp*` files of runs
    /// that died.
    pub fn is_partial(path: &Path) -> bool {
        partial_digest(path).is_some()
    }

    /// Whether a live run holds the lock of `path` (a file in `tmp/`).
    pub fn in_use(path: &Path) -> bool {
        File::open(path).is_ok_and(|f| f.try_lock().is_err())
    }

    /// Where the partial download of `digest` lives: `tmp/sha256-HEX.partial`.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}-{}.partial", digest.algorithm(), digest.hex()))
    }

    /// Opens (creating it when missing) the partial download of `digest` and takes its lock.
    /// `None` when another run or thread holds the lock (it is downloading the same blob) or the
    /// filesystem cannot lock. A sweep that removed the file between the open and the lock is
    /// noticed (the name no longer leads to this file) and the file is opened again.
    fn lock_partial(&self, digest: &Digest) -> Result<Option<File>, StoreError> {
        let path = self.partial_path(digest);
        loop {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock | TryLockError::Error(_)) => return Ok(None),
            }
            let ours = file.metadata().map_err(io_err(&path))?;
            match std::fs::metadata(&path) {
                Ok(named) if named.ino() == ours.ino() && named.dev() == ours.dev() => {
                    return Ok(Some(file));
                }
                _ => continue,
            }
        }
    }

    /// Removes the partial download of a blob that is already cached, unless a live run holds it.
    fn drop_stale_partial(&self, digest: &Digest) {
        let path = self.partial_path(digest);
        if let Ok(file) = File::open(&path)
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Every file in the blob directory whose name is a valid digest, with its metadata.
    pub fn blobs(&self) -> Vec<(Digest, PathBuf, std::fs::Metadata)> {
        let mut out = Vec::new();
        for algorithm in ["sha256", "sha512"] {
            let Ok(entries) = std::fs::read_dir(self.root.join("blobs").join(algorithm)) else {
                continue;
            };
            out.extend(entries.filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let digest: Digest = format!("{algorithm}:{name}").parse().ok()?;
                Some((digest, e.path(), e.metadata().ok()?))
            }));
        }
        out
    }

    /// Where downloads in progress, and partial ones kept for resuming, live.
    pub fn temporary_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Downloads in progress or left behind by a run that died.
    pub fn temporary_files(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.ok()?;
                Some((e.path(), e.metadata().ok()?))
            })
            .collect()
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// The cached blob, if present.
    pub fn cached(&self, digest: &Digest) -> Option<PathBuf> {
        let p = self.blob_path(digest);
        p.is_file().then_some(p)
    }

    /// Stores bytes already verified by the caller (a manifest whose digest was just computed).
    pub fn put_verified(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            return Ok(());
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Reads a cached blob, checking it still hashes to its name.
    pub fn read_verified(&self, digest: &Digest) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.cached(digest)?).ok()?;
        digest.matches(&bytes).then_some(bytes)
    }

    fn ref_path(&self, repo: &Repository, tag: &str) -> PathBuf {
        // Registry, repository and tag are validated names: safe as path components.
        self.root
            .join("refs")
            .join(&repo.registry)
            .join(&repo.name)
            .join(format!("{tag}.digest"))
    }

    /// Remembers which digest a tag pointed to, for installs with the registry out of reach.
    pub fn put_ref(&self, repo: &Repository, tag: &str, digest: &Digest) -> Result<(), StoreError> {
        let path = self.ref_path(repo, tag);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut tmp = self.temp_file()?;
        tmp.write_all(digest.to_string().as_bytes())
            .map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    pub fn get_ref(&self, repo: &Repository, tag: &str) -> Option<Digest> {
        std::fs::read_to_string(self.ref_path(repo, tag))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A reader over a blob's bytes that verifies them as they flow: from the cache when present,
    /// else downloaded into the blob's partial file, which joins the cache only when
    /// [`BlobReader::finish`] has checked size and digest. When an earlier run left part of the
    /// blob there, those bytes are read back first (rehashed and handed on like the rest) and
    /// `open` is asked for the rest only: it gets the offset to start from (0 for a fresh
    /// download), and is not called at all when the partial already holds the whole blob. When
    /// the registry botches the ranged answer (see [`refuses_range`]), the kept bytes are dropped
    /// and `open` is called again for the whole blob, from 0.
    pub fn reader(
        &self,
        digest: &Digest,
        size: u64,
        mut open: impl FnMut(u64) -> Result<BlobStream, RegistryError>,
    ) -> Result<BlobReader, StoreError> {
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
            if kept > 0
                && let Err(e) = &answer
                && refuses_range(e)
            {
                // The registry's ranges are broken: asking for the rest again would fail the
                // same way in every later run. Nothing has been handed out yet, so the kept
                // bytes go and the whole blob is fetched, without a range.
                if let Err(e) = download.truncate() {
                    download.discard();
                    return Err(e);
                }
                kept = 0;
                answer = open(0);
            }
            match answer {
                Ok(stream) => stream,
                Err(e) => {
                    download.abandon();
                    return Err(e.into());
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

/// The digest a partial download's file name stands for (`sha256-HEX.partial`).
fn partial_digest(path: &Path) -> Option<Digest> {
    let name = path.file_name()?.to_str()?.strip_suffix(".partial")?;
    let (algorithm, hex) = name.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
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
    static FAIL_WRITE_AT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_of_dead_runs_are_swept_and_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let tmp = root.path().join("v1/tmp");
        // A dead run's download: nobody holds its lock.
        std::fs::write(tmp.join(".tmpDEAD"), b"partial").unwrap();
        // A live run's: its lock is held.
        let live = store.temp_file().unwrap();
        let before = store.temporary_files().len();
        assert_eq!(before, 2);

        let other = Store::open(root.path()).unwrap();
        assert_eq!(
            other.sweep(true).len(),
            1,
            "a dry run lists the dead run's file"
        );
        assert!(tmp.join(".tmpDEAD").exists(), "a dry run removed it");
        let swept = other.sweep(false);
        assert_eq!(swept, [(tmp.join(".tmpDEAD"), 7)]);
        assert!(!tmp.join(".tmpDEAD").exists(), "a dead run's file stayed");
        assert!(live.path().exists(), "a live run's file was removed");
        assert!(other.sweep(false).is_empty());
        // The live run dies: its file stays, its lock goes.
        let (file, _path) = live.keep().unwrap();
        drop(file);
        assert_eq!(other.sweep(false).len(), 1);
        assert!(other.temporary_files().is_empty());
    }

    /// `len` bytes that differ from position to position.
    fn blob_bytes(len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect()
    }

    /// A stream of `bytes`, then (when `fail`) a connection reset instead of the end.
    fn stream(bytes: Vec<u8>, fail: bool) -> Result<BlobStream, RegistryError> {
        struct Breaking(io::Cursor<Vec<u8>>, bool);
        impl Read for Breaking {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 if self.1 => Err(io::ErrorKind::ConnectionReset.into()),
                    n => Ok(n),
                }
            }
        }
        Ok(BlobStream {
            url: "http://registry.test/blob".into(),
            reader: Box::new(Breaking(io::Cursor::new(bytes), fail)),
        })
    }

    /// Reads the blob through `store` with `open`, returning what was read and the verdict.
    fn read_blob(
        store: &Store,
        digest: &Digest,
        size: usize,
        open: impl FnMut(u64) -> Result<BlobStream, RegistryError>,
    ) -> (Vec<u8>, Result<(), StoreError>) {
        let mut reader = store.reader(digest, size as u64, open).unwrap();
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        (out, reader.finish())
    }

    #[test]
    fn a_download_that_breaks_off_keeps_its_partial_and_the_next_one_resumes_from_it() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(300_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);
        assert_eq!(
            partial,
            root.path()
                .join(format!("v1/tmp/sha256-{}.partial", digest.hex()))
        );

        // The first run gets 100 000 bytes, then the connection breaks for good.
        let first = bytes[..100_000].to_vec();
        let (_, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            assert_eq!(offset, 0);
            stream(first.clone(), true)
        });
        assert!(matches!(verdict, Err(StoreError::Io { .. })), "{verdict:?}");
        assert!(
            store.cached(&digest).is_none(),
            "an unverified blob was cached"
        );
        assert_eq!(std::fs::read(&partial).unwrap(), &bytes[..100_000]);
        // The start-of-run sweep keeps it (nobody holds its lock, but it is resumable).
        assert!(store.sweep_keeping_partials().is_empty());

        // The next one asks only for the rest, and reads the whole blob, kept bytes first.
        let mut asked = None;
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            asked = Some(offset);
            stream(bytes[offset as usize..].to_vec(), false)
        });
        verdict.unwrap();
        assert_eq!(asked, Some(100_000));
        assert!(out == bytes, "the reader did not hand out the whole blob");
        assert_eq!(
            std::fs::read(store.cached(&digest).unwrap()).unwrap(),
            bytes
        );
        assert!(
            !partial.exists(),
            "the partial stayed after joining the cache"
        );
        assert!(store.temporary_files().is_empty());
    }

    #[test]
    fn a_partial_that_turns_out_corrupt_is_deleted_and_never_cached() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(50_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);
        let mut bad = bytes[..20_000].to_vec();
        bad[1234] ^= 1;
        std::fs::write(&partial, &bad).unwrap();

        let (_, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            stream(bytes[offset as usize..].to_vec(), false)
        });
        match verdict {
            Err(StoreError::Mismatch { from, .. }) => {
                assert!(from.contains("20000 bytes kept"), "{from}")
            }
            other => panic!("{other:?}"),
        }
        assert!(store.cached(&digest).is_none());
        assert!(!partial.exists(), "a corrupt partial was kept");

        // The next try starts from zero.
        let (_, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            assert_eq!(offset, 0);
            stream(bytes.clone(), false)
        });
        verdict.unwrap();
        assert!(store.cached(&digest).is_some());
    }

    #[test]
    fn a_partial_never_grows_past_the_blob_and_one_too_long_starts_over() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(10_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);

        // Longer than the blob: it cannot be a prefix of it.
        std::fs::write(&partial, blob_bytes(10_001)).unwrap();
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            assert_eq!(offset, 0);
            stream(bytes.clone(), false)
        });
        verdict.unwrap();
        assert!(out == bytes);

        // A stream longer than the descriptor: the partial is capped at the size (the extra
        // byte that proves the stream too long never reaches it), then deleted.
        let other = blob_bytes(5_000);
        let digest = Digest::of_bytes(&other);
        let partial = store.partial_path(&digest);
        let mut reader = store
            .reader(&digest, other.len() as u64, |_| {
                let mut longer = other.clone();
                longer.extend_from_slice(b"more");
                stream(longer, true)
            })
            .unwrap();
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert!(matches!(reader.finish(), Err(StoreError::Size { .. })));
        assert!(!partial.exists());
        assert!(store.cached(&digest).is_none());
    }

    #[test]
    fn a_partial_holding_the_whole_blob_needs_no_network() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(7_000);
        let digest = Digest::of_bytes(&bytes);
        std::fs::write(store.partial_path(&digest), &bytes).unwrap();
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |_| {
            panic!("asked the network for a blob already on disk")
        });
        verdict.unwrap();
        assert!(out == bytes);
        assert!(store.cached(&digest).is_some());
        assert!(store.temporary_files().is_empty());
    }

    #[test]
    fn a_partial_another_run_holds_is_left_alone_and_this_run_downloads_on_its_own() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(40_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);
        std::fs::write(&partial, &bytes[..1000]).unwrap();
        let owner = File::open(&partial).unwrap();
        owner.lock().unwrap();

        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            assert_eq!(offset, 0, "resumed from a partial another run holds");
            stream(bytes.clone(), false)
        });
        verdict.unwrap();
        assert!(out == bytes);
        assert_eq!(std::fs::read(&partial).unwrap(), &bytes[..1000]);
        // Neither sweep removes a partial whose run is alive; once it is dead, cleanup's does.
        assert!(store.sweep_keeping_partials().is_empty());
        assert!(store.sweep(false).is_empty());
        drop(owner);
        assert!(store.sweep_keeping_partials().is_empty());
        assert_eq!(store.sweep(false), [(partial.clone(), 1000)]);
    }

    #[test]
    fn a_download_that_fails_to_start_leaves_no_empty_partial_and_keeps_a_started_one() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(3_000);
        let digest = Digest::of_bytes(&bytes);
        let refused = |_| {
            Err(RegistryError::Status {
                url: "http://registry.test/blob".into(),
                status: 503,
                detail: String::new(),
            })
        };
        assert!(store.reader(&digest, 3_000, refused).is_err());
        assert!(store.temporary_files().is_empty());
        std::fs::write(store.partial_path(&digest), &bytes[..10]).unwrap();
        assert!(store.reader(&digest, 3_000, refused).is_err());
        assert_eq!(
            std::fs::read(store.partial_path(&digest)).unwrap(),
            &bytes[..10]
        );
        // Once the blob is cached some other way, a partial of it is dropped when it is read.
        store.put_verified(&digest, &bytes).unwrap();
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |_| unreachable!());
        verdict.unwrap();
        assert!(out == bytes);
        assert!(store.temporary_files().is_empty());
    }

    #[test]
    fn a_ranged_answer_the_registry_botches_drops_the_partial_and_fetches_the_blob_from_0() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(50_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);
        // The kept bytes are even wrong: fetched whole, the blob verifies all the same.
        let mut kept = bytes[..20_000].to_vec();
        kept[10] ^= 1;
        std::fs::write(&partial, &kept).unwrap();

        let mut asked = Vec::new();
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            asked.push(offset);
            if offset > 0 {
                return Err(crate::registry::blob::range_refused(
                    "http://registry.test/blob",
                    "the server sent Content-Range `bytes 0-49999/50000`".into(),
                ));
            }
            stream(bytes.clone(), false)
        });
        verdict.unwrap();
        assert_eq!(asked, [20_000, 0]);
        assert!(out == bytes, "the reader did not hand out the blob from 0");
        assert!(store.cached(&digest).is_some());
        assert!(!partial.exists());

        // When the try from 0 fails too, no partial is left to be asked for by range again.
        let other = blob_bytes(30_000);
        let digest = Digest::of_bytes(&other);
        let partial = store.partial_path(&digest);
        std::fs::write(&partial, &other[..5_000]).unwrap();
        let mut asked = Vec::new();
        let opened = store.reader(&digest, other.len() as u64, |offset| {
            asked.push(offset);
            if offset > 0 {
                return Err(crate::registry::blob::range_refused(
                    "http://registry.test/blob",
                    "the server answered 416".into(),
                ));
            }
            Err(RegistryError::Status {
                url: "http://registry.test/blob".into(),
                status: 503,
                detail: String::new(),
            })
        });
        assert!(matches!(opened, Err(StoreError::Registry(_))));
        assert_eq!(asked, [5_000, 0]);
        assert!(
            !partial.exists(),
            "a partial whose range was refused was kept"
        );
    }

    #[test]
    fn a_write_that_fails_spoils_the_partial_which_is_deleted_not_kept_nor_published() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(1_000_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);

        // The disk fills once 256 KiB are on it (the write after that fails, later ones would
        // not), then the connection breaks for good.
        FAIL_WRITE_AT.set(Some(256 * 1024));
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            assert_eq!(offset, 0);
            stream(bytes[..700_000].to_vec(), true)
        });
        assert_eq!(FAIL_WRITE_AT.get(), None, "no write failed");
        assert!(!partial.exists(), "a partial with a hole in it was kept");
        match verdict {
            Err(StoreError::Io { path, source }) => {
                assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{source}");
                assert_eq!(path, partial);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            out.len() < 700_000,
            "bytes were handed out after the failed write"
        );
        assert!(bytes.starts_with(&out));
        assert!(store.cached(&digest).is_none());
        assert!(store.temporary_files().is_empty());

        // The next try starts from 0.
        let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
            assert_eq!(offset, 0, "resumed from a spoilt partial");
            stream(bytes.clone(), false)
        });
        verdict.unwrap();
        assert!(out == bytes);
        assert!(store.cached(&digest).is_some());
    }

    #[test]
    fn an_interruption_would_remove_a_temporary_download_but_never_a_partial() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let bytes = blob_bytes(4_000);
        let digest = Digest::of_bytes(&bytes);
        let partial = store.partial_path(&digest);
        let open = |_| stream(bytes.clone(), false);

        let reader = store.reader(&digest, bytes.len() as u64, open).unwrap();
        assert!(partial.exists());
        assert!(
            !crate::interrupt::guarded().contains(&partial),
            "Ctrl-C would delete the resumable partial"
        );
        drop(reader);

        // Held by another run: this one's own temporary file is what Ctrl-C removes.
        let owner = File::open(&partial).unwrap();
        owner.lock().unwrap();
        let reader = store.reader(&digest, bytes.len() as u64, open).unwrap();
        let temporary: Vec<_> = store
            .temporary_files()
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| *p != partial)
            .collect();
        assert_eq!(temporary.len(), 1);
        assert!(crate::interrupt::guarded().contains(&temporary[0]));
        drop(reader);
        assert!(!crate::interrupt::guarded().contains(&temporary[0]));
    }

    #[test]
    fn partial_names_are_digests() {
        let digest = Digest::of_bytes(b"x");
        let name = format!("/c/v1/tmp/sha256-{}.partial", digest.hex());
        assert_eq!(partial_digest(Path::new(&name)), Some(digest));
        for other in [
            "/c/v1/tmp/.tmpAbC123",
            "/c/v1/tmp/stale.partial",
            "/c/v1/tmp/sha256-abc.partial",
            "/c/v1/tmp/md5-d41d8cd98f00b204e9800998ecf8427e.partial",
        ] {
            assert_eq!(partial_digest(Path::new(other)), None, "{other}");
            assert!(!Store::is_partial(Path::new(other)));
        }
        assert!(Store::is_partial(Path::new(&name)));
    }
}
