//! The content-addressed cache shared by every prefix: verified blobs and manifests by digest,
//! tag → digest records for offline use, and in-flight downloads that become visible only once verified.
//!
//! Layout (versioned, so a future change can migrate instead of break):
//! ```text
//! CACHE/CACHEDIR.TAG
//! CACHE/lock                             shared by runs that add blobs, exclusive for cleanup
//! CACHE/v1/prefixes/<id>.toml            the prefixes using this cache (schema 1; see prefixes.rs)
//! CACHE/v1/blobs/{sha256,sha512}/<hex>   verified content (layers, manifests)
//! CACHE/v1/refs/<registry>/<repo>/<tag>  digest a tag pointed to when last fetched
//! CACHE/v1/signatures/<alg>-<hex>        the Sigstore bundles found attached to a manifest,
//!                                        a digest a line (the bundles are blobs)
//! CACHE/v1/unpacked/<chain>/tree/        a layer chain's unpacked tree (by the link mode: where
//!                                        reflinks work, or hard links or copies when asked)
//! CACHE/v1/unpacked/<chain>/layers       its layers, one digest a line (see unpacked.rs)
//! CACHE/v1/unpacked/<chain>/manifest     each entry as stored, checked before use (tree_manifest.rs)
//! CACHE/v1/unpacked/<chain>/marked       the files holding a Homebrew placeholder (hex paths)
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
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

const LAYOUT: &str = "v1";

/// A registry repository as the store files what came from it (tags, manifests' origins): its
/// host and path, validated names that are safe as path components; shown as `HOST/PATH`.
#[derive(Clone, Copy, Debug)]
pub struct RepoName<'a> {
    pub registry: &'a str,
    pub name: &'a str,
}

impl std::fmt::Display for RepoName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
            // A directory is an unpacked tree being stored (unpacked.rs), locked by its run.
            let remove = |p: &Path| match meta.is_dir() {
                true => std::fs::remove_dir_all(p),
                false => std::fs::remove_file(p),
            };
            if file.try_lock().is_ok() && (dry_run || remove(&path).is_ok()) {
                let size = match meta.is_dir() {
                    true => tree_copy::tree_size(&path),
                    false => meta.len(),
                };
                out.push((path, size));
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
    /// Blobs not in `referenced`, and with `prune_days` also referenced ones unused (unmodified)
    /// that long: what `pkg cleanup` removes, as (path, size).
    pub fn unreferenced(
        &self,
        referenced: &std::collections::HashSet<Digest>,
        prune_days: Option<u64>,
    ) -> Vec<(PathBuf, u64)> {
        let now = std::time::SystemTime::now();
        let older_than = |meta: &std::fs::Metadata, days: u64| {
            meta.modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|a| a >= std::time::Duration::from_secs(days * 86_400))
        };
        self.blobs()
            .into_iter()
            .filter(|(digest, _, meta)| {
                !referenced.contains(digest) || prune_days.is_some_and(|d| older_than(meta, d))
            })
            .map(|(_, path, meta)| (path, meta.len()))
            .collect()
    }

    /// Removes a blob [`Store::unreferenced`] named (a path inside this store's blobs only).
    pub fn remove_blob(&self, path: &Path) -> Result<(), StoreError> {
        if !path.starts_with(self.root.join("blobs")) {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source: io::Error::other("not a blob of this cache"),
            });
        }
        std::fs::remove_file(path).map_err(io_err(path))
    }

    /// The unpacked trees (warm installs by the link mode).
    pub fn unpacked(&self) -> unpacked::Unpacked {
        unpacked::Unpacked::new(&self.root)
    }

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

    fn ref_path(&self, repo: RepoName<'_>, tag: &str) -> PathBuf {
        // Registry, repository and tag are validated names: safe as path components.
        self.root
            .join("refs")
            .join(repo.registry)
            .join(repo.name)
            .join(format!("{tag}.digest"))
    }

    fn origins_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("origins")
            .join(format!("{}-{}", digest.algorithm(), digest.hex()))
    }

    /// Records that the manifest `digest` was fetched from `repo` (one line per repository in
    /// `v1/origins/ALG-HEX`): a cached manifest is used for a repository only when it came from
    /// it, so a lock naming another package's digest never installs that package's content.
    pub fn add_origin(&self, digest: &Digest, repo: RepoName<'_>) -> Result<(), StoreError> {
        if self.has_origin(digest, repo) {
            return Ok(());
        }
        let path = self.origins_path(digest);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("{repo}\n"));
        let mut tmp = self.temp_file()?;
        tmp.write_all(text.as_bytes()).map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Whether the manifest `digest` was fetched from `repo`: recorded in `v1/origins/`, or (for
    /// caches written before origins were kept) a tag of `repo` cached as pointing to it.
    pub fn has_origin(&self, digest: &Digest, repo: RepoName<'_>) -> bool {
        let shown = repo.to_string();
        if std::fs::read_to_string(self.origins_path(digest))
            .is_ok_and(|t| t.lines().any(|l| l == shown))
        {
            return true;
        }
        let refs = self.root.join("refs").join(repo.registry).join(repo.name);
        let wanted = digest.to_string();
        std::fs::read_dir(&refs).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_type().is_ok_and(|t| t.is_file())
                    && std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim() == wanted)
            })
        })
    }

    /// Remembers which digest a tag pointed to, for installs with the registry out of reach.
    pub fn put_ref(
        &self,
        repo: RepoName<'_>,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), StoreError> {
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

    /// Keeps a formula API document fetched from `url` (`CACHE/v1/documents/sha256-HEX`, HEX
    /// the hash of the URL), so a prefix made from a restored cache taps it offline.
    pub fn put_document(&self, url: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.document_path(url);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// The document last fetched from `url` ([`Store::put_document`]), if any.
    pub fn document(&self, url: &str) -> Option<Vec<u8>> {
        std::fs::read(self.document_path(url)).ok()
    }

    fn document_path(&self, url: &str) -> PathBuf {
        let key = Digest::of_bytes(url.as_bytes());
        self.root
            .join("documents")
            .join(format!("{}-{}", key.algorithm(), key.hex()))
    }

    /// Remembers the bundles found attached to `subject` (each kept as a verified blob), so an
    /// offline install re-verifies them: `CACHE/v1/signatures/<alg>-<hex>`, a digest a line.
    pub fn put_signatures(&self, subject: &Digest, bundles: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut listed = String::new();
        for b in bundles {
            let digest = Digest::of_bytes(b);
            self.put_verified(&digest, b)?;
            listed.push_str(&format!("{digest}\n"));
        }
        let dir = self.root.join("signatures");
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{}-{}", subject.algorithm(), subject.hex()));
        let mut tmp = self.temp_file()?;
        tmp.write_all(listed.as_bytes()).map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// For `pkg cleanup`: the bundle blobs kept for manifests in `referenced` (which must stay
    /// too); the lists of manifests no longer referenced are removed.
    pub fn keep_signatures(
        &self,
        referenced: &std::collections::HashSet<Digest>,
        dry_run: bool,
    ) -> Vec<Digest> {
        let mut keep = Vec::new();
        let dir = self.root.join("signatures");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let subject = name
                .split_once('-')
                .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
            match subject {
                Some(s) if referenced.contains(&s) => {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    keep.extend(text.lines().filter_map(|l| l.parse().ok()));
                }
                _ if !dry_run => {
                    let _ = std::fs::remove_file(e.path());
                }
                _ => {}
            }
        }
        keep
    }

    /// The bundles [`Store::put_signatures`] kept for `subject`, when it did.
    pub fn signatures(&self, subject: &Digest) -> Option<Vec<Vec<u8>>> {
        let path =
            self.root
                .join("signatures")
                .join(format!("{}-{}", subject.algorithm(), subject.hex()));
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .map(|l| {
                l.parse::<Digest>()
                    .ok()
                    .and_then(|d| self.read_verified(&d))
            })
            .collect()
    }

    pub fn get_ref(&self, repo: RepoName<'_>, tag: &str) -> Option<Digest> {
        std::fs::read_to_string(self.ref_path(repo, tag))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// The digest a partial download's file name stands for (`sha256-HEX.partial`).
fn partial_digest(path: &Path) -> Option<Digest> {
    let name = path.file_name()?.to_str()?.strip_suffix(".partial")?;
    let (algorithm, hex) = name.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

mod download;
mod hexed;
pub mod prefixes;
#[cfg(test)]
mod tests;
pub mod tree_copy;
mod tree_manifest;
pub mod unpacked;

pub use download::{BlobReader, BlobStream, ReaderError, Unopened};
