//! Unpacked layer chains, so a warm install is a clone of a tree instead of gunzip, hashing and
//! file creation: `CACHE/v1/unpacked/<chain>/` holds the tree the layers unpacked into (before a
//! bottle is stripped or relocated, and before the receipt), `<chain>` being the layers' chain
//! ID (containerd's and the OCI image spec's: the first layer's digest, then
//! `sha256(parent + " " + layer)` for each next one).
//!
//! **Only by reflink.** A keg is materialized from the store, and the store from a freshly
//! unpacked staging keg, with `FICLONE`: the two trees share extents and nothing else, so a
//! write into a keg copies the block it touches and can never change the store or another keg.
//! Where the filesystem cannot clone (ext4, tmpfs, or the cache and the prefix on different
//! filesystems), nothing is stored: hard links would share the inode itself, so one write into
//! one keg would change the store and every other prefix's keg at once (uv accepts that and
//! documents it; pkg does not), and a copy costs about what unpacking the verified blob again
//! does. See docs/performance.md.
//!
//! An entry is built in `CACHE/v1/tmp/` and renamed into place whole, so it is complete or
//! absent. `pkg cleanup` removes an entry once one of its layers is no longer referenced by any
//! prefix using the cache (and, with `--prune DAYS`, entries unused that long).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::tree_manifest::{self, Mismatch};
use crate::digest::Digest;
use crate::registry::manifest::LayerFormat;

/// What a clone made: entries and the bytes of the files, as an unpack counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cloned {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// The filesystem cannot clone between these two places: nothing is stored or taken.
    #[error("{} cannot be cloned to {} (no reflinks there)", .from.display(), .to.display())]
    NoReflink { from: PathBuf, to: PathBuf },
    /// The stored tree no longer matches its manifest (`tree_manifest.rs`).
    #[error(
        "the unpacked tree {} in the cache was changed after it was stored (at `{}`); it is not used, and the layers are unpacked again from the verified blobs",
        .entry.display(),
        .path.display()
    )]
    Changed { entry: PathBuf, path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CloneError + '_ {
    move |source| CloneError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What names an unpacked tree: how each layer, in order, was read — its digest and whether it
/// was unpacked as a tar stream or placed as one file at a path (an ORAS title). The same blob
/// read two ways makes two trees, so an image never gets the tree another image made of the
/// same bytes read another way. Not OCI's chain ID (that hashes uncompressed DiffIDs); the
/// `pkg-tree-v2` tag keeps these names apart from the digest-only names of earlier versions,
/// whose trees are never used again and go with their layers at `pkg cleanup`.
pub fn tree_key(layers: &[(&Digest, &LayerFormat)]) -> Option<String> {
    if layers.is_empty() {
        return None;
    }
    let mut text = String::from("pkg-tree-v2\n");
    for (digest, format) in layers {
        match format {
            LayerFormat::Tar(_) => text.push_str(&format!("{digest} tar\n")),
            LayerFormat::File(title) => text.push_str(&format!("{digest} file {title:?}\n")),
        }
    }
    Some(
        Digest::of_bytes(text.as_bytes())
            .to_string()
            .replace(':', "-"),
    )
}

/// The file beside `tree/` that describes it as it was stored.
const MANIFEST: &str = "manifest";

/// The unpacked trees of one cache.
pub struct Unpacked {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Unpacked {
    /// `v1` is the cache's own directory (`CACHE/v1`).
    pub fn new(v1: &Path) -> Unpacked {
        Unpacked {
            dir: v1.join("unpacked"),
            tmp: v1.join("tmp"),
        }
    }

    /// The tree of `chain`, when the store has it.
    pub fn get(&self, chain: &str) -> Option<PathBuf> {
        let tree = self.dir.join(chain).join("tree");
        tree.is_dir().then_some(tree)
    }

    /// Clones the store's tree of `chain` into the empty directory `into` (a staging keg);
    /// marks the entry used (for `cleanup --prune`).
    ///
    /// The tree is checked against its manifest first: one changed since it was stored is
    /// [`CloneError::Changed`]; one whose modes were made under a umask that took bits the
    /// caller's keeps is not used (`Ok(None)`: unpacking gives what this umask gives).
    pub fn materialize(&self, chain: &str, into: &Path) -> Result<Option<Cloned>, CloneError> {
        let Some(tree) = self.get(chain) else {
            return Ok(None);
        };
        match self.verify(chain, &tree) {
            Ok(()) => {}
            Err(Mismatch::Umask { .. }) => return Ok(None),
            Err(Mismatch::Unreadable) => {
                return Err(CloneError::Changed {
                    entry: self.dir.join(chain),
                    path: PathBuf::from(MANIFEST),
                });
            }
            Err(Mismatch::Changed(path)) => {
                return Err(CloneError::Changed {
                    entry: self.dir.join(chain),
                    path,
                });
            }
        }
        let xattrs = self.dir.join(chain).join("xattrs").exists();
        let cloned = clone_tree(&tree, into, xattrs)?;
        let _ = File::open(self.dir.join(chain).join("layers"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Ok(Some(cloned))
    }

    /// Stores `tree` (a staging keg just unpacked from `layers`) as `chain`: cloned into a
    /// temporary directory beside the store, then renamed into place. `Ok(false)` when the
    /// filesystem cannot clone (nothing is kept) or another run stored it first.
    ///
    /// A stored tree that no longer matches its manifest is replaced.
    pub fn put(&self, chain: &str, layers: &[Digest], tree: &Path) -> Result<bool, CloneError> {
        if let Some(stored) = self.get(chain) {
            if matches!(
                self.verify(chain, &stored),
                Ok(()) | Err(Mismatch::Umask { .. })
            ) {
                return Ok(false);
            }
            self.remove(&self.dir.join(chain))?;
        }
        std::fs::create_dir_all(&self.tmp).map_err(io_err(&self.tmp))?;
        // Nothing is made where the clone could not be (ext4, tmpfs, another filesystem).
        if !can_clone(tree.parent().unwrap_or(tree), &self.tmp) {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let building = tempfile::Builder::new()
            .prefix("unpacked-")
            .tempdir_in(&self.tmp)
            .map_err(io_err(&self.tmp))?;
        // Locked while it is built, so a sweep by another run leaves it alone (and removes it
        // once this run is gone).
        let lock = File::open(building.path()).map_err(io_err(building.path()))?;
        lock.lock().map_err(io_err(building.path()))?;
        let listed: String = layers.iter().map(|l| format!("{l}\n")).collect();
        let layers_file = building.path().join("layers");
        std::fs::write(&layers_file, listed).map_err(io_err(&layers_file))?;
        let xattrs = has_xattrs(tree);
        if xattrs {
            let flag = building.path().join("xattrs");
            std::fs::write(&flag, "").map_err(io_err(&flag))?;
        }
        let stored = building.path().join("tree");
        match clone_tree(tree, &stored, xattrs) {
            Ok(_) => {}
            Err(CloneError::NoReflink { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        // What every entry is now, checked before each use (tree_manifest.rs).
        let manifest = tree_manifest::write(&stored, crate::cellar::unpack::process_umask())
            .map_err(io_err(&stored))?;
        let manifest_file = building.path().join(MANIFEST);
        std::fs::write(&manifest_file, manifest).map_err(io_err(&manifest_file))?;
        let dest = self.dir.join(chain);
        match std::fs::rename(building.path(), &dest) {
            Ok(()) => {
                // Renamed: nothing left for the guard to remove.
                let _ = building.keep();
                Ok(true)
            }
            // Another run stored the same chain meanwhile: theirs stays, ours goes.
            Err(_) if dest.is_dir() => Ok(false),
            Err(e) => Err(io_err(&dest)(e)),
        }
    }

    /// Whether the stored tree of `chain` still matches its manifest, for this process's umask.
    fn verify(&self, chain: &str, tree: &Path) -> Result<(), Mismatch> {
        let manifest = std::fs::read_to_string(self.dir.join(chain).join(MANIFEST))
            .map_err(|_| Mismatch::Unreadable)?;
        tree_manifest::check(tree, &manifest, crate::cellar::unpack::process_umask())
    }

    /// Every entry with the layers it was unpacked from and when it was last used.
    pub fn entries(&self) -> Vec<(PathBuf, Vec<Digest>, std::time::SystemTime)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| {
                let layers_file = e.path().join("layers");
                let used = std::fs::metadata(&layers_file).ok()?.modified().ok()?;
                let text = std::fs::read_to_string(&layers_file).ok()?;
                let layers = text.lines().filter_map(|l| l.parse().ok()).collect();
                Some((e.path(), layers, used))
            })
            .collect()
    }

    /// Removes an entry whole: renamed away first, so it is never seen half-deleted.
    pub fn remove(&self, entry: &Path) -> Result<u64, CloneError> {
        let size = tree_size(entry);
        std::fs::create_dir_all(&self.tmp).map_err(io_err(&self.tmp))?;
        let aside = tempfile::Builder::new()
            .prefix("unpacked-gone-")
            .tempdir_in(&self.tmp)
            .map_err(io_err(&self.tmp))?;
        std::fs::rename(entry, aside.path().join("gone")).map_err(io_err(entry))?;
        drop(aside);
        Ok(size)
    }
}

/// Whether a file in `from_dir` can be cloned into `to_dir`: tried on two temporary files.
pub fn can_clone(from_dir: &Path, to_dir: &Path) -> bool {
    let (Ok(mut src), Ok(dst)) = (
        tempfile::NamedTempFile::new_in(from_dir),
        tempfile::NamedTempFile::new_in(to_dir),
    ) else {
        return false;
    };
    std::io::Write::write_all(&mut src, b"probe").is_ok()
        && rustix::fs::ioctl_ficlone(dst.as_file(), src.as_file()).is_ok()
}

/// Bytes of the regular files under `dir` (not following links).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Clones the tree `from` into `to` (created, or there already and empty): directories,
/// symlinks and fifos made anew, regular files cloned with `FICLONE` (the first one that cannot
/// be is [`CloneError::NoReflink`]), hard links kept as hard links, modes and mtimes kept, and
/// `user.*` extended attributes when `xattrs`. Nothing is followed: both trees are pkg's own.
/// Directories are shared out between a few threads (a clone is metadata work for the
/// filesystem, which spreads over the cores).
pub fn clone_tree(from: &Path, to: &Path, xattrs: bool) -> Result<Cloned, CloneError> {
    let empty = std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_none());
    let root_mode = std::fs::symlink_metadata(from)
        .map_err(io_err(from))?
        .mode()
        & 0o7777;
    if !empty {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(to)
            .map_err(io_err(to))?;
    }
    if xattrs {
        copy_xattrs(from, to);
    }
    let walk = Walk {
        queue: Mutex::new((vec![(from.to_owned(), to.to_owned())], 0)),
        more: Condvar::new(),
        first_links: Mutex::new(HashMap::new()),
        xattrs,
        umask: crate::cellar::unpack::process_umask(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let results: Vec<Result<Done, CloneError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| walk.work())).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked(to))))
            .collect()
    });
    let mut cloned = Cloned::default();
    let mut dirs = vec![(to.to_owned(), root_mode)];
    let mut later = Vec::new();
    for r in results {
        let done = r?;
        cloned.entries += done.cloned.entries;
        cloned.bytes += done.cloned.bytes;
        dirs.extend(done.dirs);
        later.extend(done.links);
    }
    // Second names of hard-linked files, once every first name is there.
    for (first, dst) in later {
        std::fs::hard_link(&first, &dst).map_err(io_err(&dst))?;
    }
    // Directory modes last (a read-only directory is filled first), deepest first.
    dirs.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    for (dir, mode) in dirs {
        // Under this process's umask, as a cold install's directories are.
        let mode = mode & !walk.umask;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
    }
    Ok(cloned)
}

fn panicked(to: &Path) -> CloneError {
    io_err(to)(io::Error::other("a clone thread panicked"))
}

/// The directories still to clone, shared by the threads of one [`clone_tree`].
struct Walk {
    /// Directories to do, and how many threads are doing one now.
    queue: Mutex<(Vec<(PathBuf, PathBuf)>, usize)>,
    more: Condvar,
    /// The first name given to each hard-linked inode.
    first_links: Mutex<HashMap<(u64, u64), PathBuf>>,
    xattrs: bool,
    umask: u32,
}

/// What one thread made.
#[derive(Default)]
struct Done {
    cloned: Cloned,
    dirs: Vec<(PathBuf, u32)>,
    /// (first name, second name) of hard links, made at the end.
    links: Vec<(PathBuf, PathBuf)>,
}

impl Walk {
    fn work(&self) -> Result<Done, CloneError> {
        let mut done = Done::default();
        loop {
            let next = {
                let Ok(mut q) = self.queue.lock() else {
                    return Ok(done);
                };
                loop {
                    if let Some(dir) = q.0.pop() {
                        q.1 += 1;
                        break Some(dir);
                    }
                    if q.1 == 0 {
                        break None;
                    }
                    q = match self.more.wait(q) {
                        Ok(q) => q,
                        Err(_) => return Ok(done),
                    };
                }
            };
            let Some((src, dst)) = next else {
                self.more.notify_all();
                return Ok(done);
            };
            let result = self.dir(&src, &dst, &mut done);
            if let Ok(mut q) = self.queue.lock() {
                q.1 -= 1;
                if result.is_err() {
                    // Everything stops: the first error is the clone's.
                    q.0.clear();
                }
            }
            self.more.notify_all();
            result?;
        }
    }

    fn dir(&self, src_dir: &Path, dst_dir: &Path, done: &mut Done) -> Result<(), CloneError> {
        let entries = std::fs::read_dir(src_dir).map_err(io_err(src_dir))?;
        let mut subdirs = Vec::new();
        for e in entries {
            let e = e.map_err(io_err(src_dir))?;
            let (src, dst) = (e.path(), dst_dir.join(e.file_name()));
            let kind = e.file_type().map_err(io_err(&src))?;
            done.cloned.entries += 1;
            if kind.is_dir() {
                let mode = e.metadata().map_err(io_err(&src))?.mode() & 0o7777;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dst)
                    .map_err(io_err(&dst))?;
                if self.xattrs {
                    copy_xattrs(&src, &dst);
                }
                done.dirs.push((dst.clone(), mode));
                subdirs.push((src, dst));
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&src).map_err(io_err(&src))?;
                std::os::unix::fs::symlink(&target, &dst).map_err(io_err(&dst))?;
            } else if kind.is_fifo() {
                let mode = e.metadata().map_err(io_err(&src))?.mode() & 0o777;
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &dst,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(mode),
                    0,
                )
                .map_err(|e| io_err(&dst)(e.into()))?;
            } else if kind.is_file() {
                self.file(&src, &dst, done)?;
            }
        }
        if !subdirs.is_empty() {
            if let Ok(mut q) = self.queue.lock() {
                q.0.extend(subdirs);
            }
            self.more.notify_all();
        }
        Ok(())
    }

    fn file(&self, src: &Path, dst: &Path, done: &mut Done) -> Result<(), CloneError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let from = File::open(src).map_err(io_err(src))?;
        let meta = from.metadata().map_err(io_err(src))?;
        if meta.nlink() > 1
            && let Ok(mut first) = self.first_links.lock()
        {
            match first.entry((meta.dev(), meta.ino())) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    done.links.push((o.get().clone(), dst.to_owned()));
                    return Ok(());
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(dst.to_owned());
                }
            }
        }
        let mode = meta.mode() & 0o7777;
        let to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(dst)
            .map_err(io_err(dst))?;
        if rustix::fs::ioctl_ficlone(&to, &from).is_err() {
            drop(to);
            let _ = std::fs::remove_file(dst);
            return Err(CloneError::NoReflink {
                from: src.to_owned(),
                to: dst.to_owned(),
            });
        }
        // The file was created under this process's umask, as a cold install creates it; bits
        // past 0o777 (none in a tree pkg unpacked) go the same way.
        if mode & !0o777 != 0 {
            to.set_permissions(std::fs::Permissions::from_mode(mode & !self.umask))
                .map_err(io_err(dst))?;
        }
        if let Ok(mtime) = meta.modified() {
            let _ = to.set_modified(mtime);
        }
        if self.xattrs {
            copy_xattrs(src, dst);
        }
        done.cloned.bytes += meta.len();
        Ok(())
    }
}

/// Whether anything under `dir` has a `user.*` extended attribute (checked once, when a tree is
/// stored, so materializing one without any costs no xattr calls).
fn has_xattrs(dir: &Path) -> bool {
    let mut stack = vec![dir.to_owned()];
    let mut names = vec![0u8; 4096];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if let Ok(n) = rustix::fs::llistxattr(&path, &mut names)
                && names[..n]
                    .split(|b| *b == 0)
                    .any(|n| n.starts_with(b"user."))
            {
                return true;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    false
}

/// Best effort, as the unpack sets them: the `user.*` attributes of `src` onto `dst`.
fn copy_xattrs(src: &Path, dst: &Path) {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names) else {
        return;
    };
    for name in names[..n]
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"user."))
    {
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name);
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(src, name, &mut value) {
            let _ =
                rustix::fs::lsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_named_by_how_each_layer_was_read() {
        use crate::registry::manifest::Compression;
        let a: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let (tar, zst) = (
            LayerFormat::Tar(Compression::Gzip),
            LayerFormat::Tar(Compression::Zstd),
        );
        let file = LayerFormat::File("payload.tar".into());
        let other = LayerFormat::File("other.tar".into());
        assert_eq!(tree_key(&[]), None);
        let key = |l: &[(&Digest, &LayerFormat)]| tree_key(l).unwrap();
        // The same blob unpacked as a tar and placed as an ORAS file: two trees.
        assert_ne!(key(&[(&a, &tar)]), key(&[(&a, &file)]));
        assert_ne!(key(&[(&a, &file)]), key(&[(&a, &other)]));
        // The compression is checked against the bytes; the tree is the same.
        assert_eq!(key(&[(&a, &tar)]), key(&[(&a, &zst)]));
        assert_ne!(
            key(&[(&a, &tar), (&b, &tar)]),
            key(&[(&b, &tar), (&a, &tar)])
        );
        // Never the digest-only name of earlier versions.
        assert_ne!(key(&[(&a, &tar)]), format!("sha256-{}", "a".repeat(64)));
    }

    #[test]
    fn where_nothing_clones_nothing_is_stored_and_nothing_is_left() {
        // tmpfs (/dev/shm) has no reflinks.
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let tree = root.path().join("staging/keg");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("file"), "x").unwrap();
        let v1 = root.path().join("cache/v1");
        let store = Unpacked::new(&v1);
        let digest: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        std::fs::create_dir_all(v1.join("tmp")).unwrap();
        assert!(!can_clone(&tree, &v1.join("tmp")));
        assert!(!store.put("sha256-c", &[digest], &tree).unwrap());
        assert!(store.get("sha256-c").is_none());
        assert_eq!(std::fs::read_dir(v1.join("tmp")).unwrap().count(), 0);
        assert!(!v1.join("unpacked").exists());
    }
}
