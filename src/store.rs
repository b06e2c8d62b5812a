//! The content-addressed cache shared by every prefix: verified blobs and manifests by digest,
//! tag → digest records for offline use, and in-flight downloads that become visible only once verified.
//!
//! Layout (versioned, so a future change can migrate instead of break):
//! ```text
//! CACHE/CACHEDIR.TAG
//! CACHE/v1/blobs/{sha256,sha512}/<hex>   verified content (layers, manifests)
//! CACHE/v1/refs/<registry>/<repo>/<tag>  digest a tag pointed to when last fetched
//! CACHE/v1/tmp/                          temporary files, each locked by its live run
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::registry::blob::BlobStream;
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

    /// Removes the temporary files of runs that died (SIGKILL, power loss) and returns them with
    /// their sizes; with `dry_run`, only lists them. A live run holds an exclusive lock on each
    /// of its temporary files (see [`Store::temp_file`]), so a file that can be locked belongs
    /// to no one. It is removed while locked, so its creator notices if it was brand new.
    pub fn sweep(&self, dry_run: bool) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        for (path, meta) in self.temporary_files() {
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
        use std::os::unix::fs::MetadataExt as _;
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
    /// else from `open` (the network), teeing the bytes into a temporary file that joins the
    /// cache only when [`BlobReader::finish`] has checked size and digest.
    pub fn reader(
        &self,
        digest: &Digest,
        size: u64,
        open: impl FnOnce() -> Result<BlobStream, RegistryError>,
    ) -> Result<BlobReader, StoreError> {
        if let Some(path) = self.cached(digest) {
            let file = File::open(&path).map_err(io_err(&path))?;
            return Ok(BlobReader {
                inner: HashingReader::with(
                    digest.kind(),
                    Tee {
                        inner: Box::new(file),
                        copy: None,
                    },
                    size,
                ),
                digest: digest.clone(),
                size,
                from: path.display().to_string(),
                cached: Some(path),
                dest: self.blob_path(digest),
                _interrupted: None,
            });
        }
        let tmp = self.temp_file()?;
        let guard = crate::interrupt::guard(tmp.path());
        let stream = open()?;
        Ok(BlobReader {
            inner: HashingReader::with(
                digest.kind(),
                Tee {
                    inner: stream.reader,
                    copy: Some(io::BufWriter::with_capacity(256 * 1024, tmp)),
                },
                size,
            ),
            digest: digest.clone(),
            size,
            from: stream.url,
            cached: None,
            dest: self.blob_path(digest),
            _interrupted: Some(guard),
        })
    }
}

/// Copies everything read into a file.
struct Tee {
    inner: Box<dyn Read + Send>,
    copy: Option<io::BufWriter<tempfile::NamedTempFile>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&buf[..n])?;
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
    _interrupted: Option<crate::interrupt::Guard>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl BlobReader {
    /// Drains what is left, checks size and digest, and publishes a downloaded blob into the cache.
    /// A cached blob that no longer verifies is removed, so the next run downloads it again.
    pub fn finish(self) -> Result<(), StoreError> {
        let BlobReader {
            inner,
            digest,
            size,
            from,
            cached,
            dest,
            _interrupted,
        } = self;
        let mut inner = inner;
        let (actual, count) = inner.finish().map_err(|source| StoreError::Io {
            path: PathBuf::from(&from),
            source,
        })?;
        let tee = inner.into_inner();
        let bad = if count != size {
            Some(StoreError::Size {
                digest: digest.clone(),
                expected: size,
                actual: count,
                from: from.clone(),
            })
        } else if actual != digest {
            Some(StoreError::Mismatch {
                digest: digest.clone(),
                actual,
                from: from.clone(),
            })
        } else {
            None
        };
        if let Some(err) = bad {
            if let Some(path) = cached {
                let _ = std::fs::remove_file(path);
            }
            return Err(err);
        }
        if let Some(copy) = tee.copy {
            let file = copy.into_inner().map_err(|e| StoreError::Io {
                path: dest.clone(),
                source: e.into_error(),
            })?;
            file.persist(&dest).map_err(|e| StoreError::Io {
                path: dest.clone(),
                source: e.error,
            })?;
        }
        Ok(())
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
}
