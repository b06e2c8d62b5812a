//! Unpacked layer chains, so a warm install takes a tree instead of gunzip, hashing and file
//! creation: `CACHE/v1/unpacked/<chain>/` holds the tree the layers unpacked into (before a
//! bottle is stripped or relocated, and before the receipt), `<chain>` naming how each layer
//! was read ([`tree_key`]).
//!
//! **How a keg takes the tree is the link mode's** ([`LinkMode`], `tree_copy.rs`):
//! - `clone` (the default): the store is made from a freshly unpacked staging keg, and kegs
//!   from the store, with `FICLONE`. The trees share extents and nothing else, so a write into
//!   a keg copies the block it touches and can never change the store or another keg. Where the
//!   filesystem cannot clone (ext4, tmpfs, another filesystem), nothing is stored and a warm
//!   install unpacks the verified blobs again.
//! - `hardlink` (opt-in): the store and the kegs share inodes. A warm install is a link per
//!   file on any filesystem; a write into a keg is a write into the store and every keg linked
//!   to it (uv's trade, documented in docs/performance.md). The files the pour rewrites — those
//!   the unpack saw a Homebrew placeholder in (recorded beside the tree as `marked`) — are
//!   copied, never linked, so relocating one prefix's keg never writes another's.
//! - `copy` (opt-in): the store is kept on any filesystem and kegs are copies of it.
//!
//! An entry is built in `CACHE/v1/tmp/` and renamed into place whole, so it is complete or
//! absent. It is checked against its manifest before each use (`tree_manifest.rs`); a tree
//! shared by hard links is checked by mtime instead of ctime (a link made or removed changes
//! every shared inode's ctime). `pkg cleanup` removes an entry once one of its layers is no
//! longer referenced by any prefix using the cache (and, with `--prune DAYS`, entries unused
//! that long).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::tree_copy::{self, LinkMode, Take, io_err};
pub use super::tree_copy::{Cloned, TreeError};
pub use super::tree_manifest::Listed;
use super::tree_manifest::{self, Mismatch};
use crate::digest::Digest;

/// What [`Unpacked::materialize`] made in a staging keg.
#[derive(Debug)]
pub struct Taken {
    pub made: Cloned,
    /// The tree-relative files the unpack saw a Homebrew placeholder in, when the store knows
    /// them (entries stored before pkg recorded them do not).
    pub marked: Option<Vec<PathBuf>>,
    /// Each file's CRC-32 as unpacked, when the store knows them.
    pub sums: Option<HashMap<PathBuf, u32>>,
    /// Every entry made, and the sums, were handed to the caller's [`KegSink`] (a keg of hard
    /// links to a shared tree: what the tree's manifest lists, checked); `false`: none or only
    /// part were, and the keg must be listed by walking it.
    pub listed: bool,
}

/// How a layer was read into a tree: unpacked as a tar stream (whatever its compression, which
/// the bytes are checked against), or placed as one file at a path (an ORAS title).
#[derive(Clone, Copy, Debug)]
pub enum ReadAs<'a> {
    Tar,
    File(&'a str),
}

/// What names an unpacked tree: how each layer, in order, was read — its digest and whether it
/// was unpacked as a tar stream or placed as one file at a path (an ORAS title). The same blob
/// read two ways makes two trees, so an image never gets the tree another image made of the
/// same bytes read another way. Not OCI's chain ID (that hashes uncompressed DiffIDs); the
/// `pkg-tree-v2` tag keeps these names apart from the digest-only names of earlier versions,
/// whose trees are never used again and go with their layers at `pkg cleanup`.
pub fn tree_key(layers: &[(&Digest, ReadAs<'_>)]) -> Option<String> {
    if layers.is_empty() {
        return None;
    }
    let mut text = String::from("pkg-tree-v2\n");
    for (digest, read) in layers {
        match read {
            ReadAs::Tar => text.push_str(&format!("{digest} tar\n")),
            ReadAs::File(title) => text.push_str(&format!("{digest} file {title:?}\n")),
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
/// The file beside `tree/` listing the files the unpack saw a Homebrew placeholder in, one
/// hex-encoded tree-relative path a line (absent: not known).
const MARKED: &str = "marked";
/// The file beside `tree/` with each regular file's CRC-32 as unpacked: `HEX-PATH CRC` a line
/// (absent: not known); what a warm install's receipt records.
const SUMS: &str = "sums";

/// The sums file written into `file`, its lines sorted by path (the hex of a path sorts as its
/// bytes do), each formatted as it is written: a string a line, sorted and joined, was 19 MB at
/// a cold install's peak for 58,000 files.
fn write_sums(sums: &HashMap<PathBuf, u32>, file: &Path) -> Result<(), TreeError> {
    use std::io::Write as _;
    let mut sorted: Vec<(&[u8], u32)> = (sums.iter())
        .map(|(path, sum)| (path.as_os_str().as_bytes(), *sum))
        .collect();
    sorted.sort_unstable();
    let mut out = std::io::BufWriter::new(File::create(file).map_err(io_err(file))?);
    for (path, sum) in sorted {
        writeln!(out, "{} {sum:08x}", hex::encode(path)).map_err(io_err(file))?;
    }
    out.flush().map_err(io_err(file))
}

/// The check of a stored `tree` against its `manifest` and its copy into `into` in one pass:
/// the threads copying the tree meet each entry against the manifest with the `lstat` they read
/// it by (neither changes what the check compares: a clone or a copy reads the tree, a link to
/// a shared tree moves only ctimes, which its manifest does not compare). The staging keg of a
/// tree found changed is dropped by the caller, never published; one made under a umask that
/// took bits the caller's keeps is not copied at all.
fn check_while_copying(
    tree: &Path,
    manifest: &str,
    umask: u32,
    into: &Path,
    xattrs: bool,
    take: Take<'_>,
) -> (Result<(), Mismatch>, Result<Cloned, TreeError>) {
    let checker = match tree_manifest::Checker::new(manifest, umask) {
        Ok(checker) => checker,
        Err(mismatch) => return (Err(mismatch), Ok(Cloned::default())),
    };
    // A shared tree's link counts include the kegs' links: its manifest names the inodes with
    // more than one name in it (for what is copied or cloned; a link keeps every name itself).
    let names = (checker.shared && !matches!(take, Take::Link { .. }))
        .then(|| tree_manifest::multi_named(manifest));
    let made = tree_copy::copy_tree(tree, into, xattrs, take, names.as_ref(), Some(&checker));
    (checker.finish(), made)
}

/// The manifest of `tree` (tree_manifest.rs) written into `file`, through a buffer.
fn write_manifest(tree: &Path, umask: u32, shared: bool, file: &Path) -> Result<(), TreeError> {
    use std::io::Write as _;
    let mut out =
        std::io::BufWriter::with_capacity(64 * 1024, File::create(file).map_err(io_err(file))?);
    tree_manifest::write_to(tree, umask, shared, &mut out).map_err(io_err(tree))?;
    out.flush().map_err(io_err(file))
}

/// Hands `sink` the entries of a shared tree's `manifest` (one entry a line but the first):
/// the bytes of its files when it is a shared one and every line was read.
fn hand_over(manifest: &str, sink: &mut dyn KegSink) -> Option<u64> {
    if !tree_manifest::stored(manifest).is_some_and(|s| s.shared) {
        return None;
    }
    let lines = memchr::memchr_iter(b'\n', manifest.as_bytes()).count();
    sink.reserve(lines.saturating_sub(1));
    tree_manifest::list_shared(manifest, &mut |rel, listed| sink.entry(rel, listed))
}

/// The sums `file`, handed to the sink where it has the listing (`listed`: no map of 53,000
/// paths beside it), else read into a map.
fn sums_for(file: &Path, listed: bool, sink: &mut dyn KegSink) -> Option<HashMap<PathBuf, u32>> {
    // Everything made at its size once: the lines counted first (a read of the file from the
    // page cache), nothing grown by doubling beside what it replaces (this runs next to a
    // warm install's peak of memory).
    let lines = count_lines(file)?;
    if !listed {
        let mut map = HashMap::with_capacity(lines);
        let whole = each_sum(file, &mut |path, sum| {
            map.insert(PathBuf::from(OsStr::from_bytes(path)), sum);
        })?;
        return whole.then_some(map);
    }
    let mut sums = Sums {
        paths: Vec::with_capacity(lines.saturating_mul(64).min(1 << 26)),
        at: Vec::with_capacity(lines.min(1 << 20)),
    };
    each_sum(file, &mut |path, sum| {
        let start = sums.paths.len();
        sums.paths.extend_from_slice(path);
        if let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(sums.paths.len())) {
            sums.at.push((start, end, sum));
        }
    })?;
    sink.sums(&mut sums.iter());
    None
}

/// How many lines `file` has (its newlines), read in blocks.
fn count_lines(file: &Path) -> Option<usize> {
    use std::io::Read as _;
    let mut file = File::open(file).ok()?;
    let mut block = vec![0; 64 * 1024];
    let mut lines = 0;
    loop {
        match file.read(&mut block) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += memchr::memchr_iter(b'\n', &block[..n]).count(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Each line of the sums `file` as it is read, handed to `each` (the path decoded into one
/// buffer, reused): whether every line was read (else they end at the first that cannot be).
fn each_sum(file: &Path, each: &mut dyn FnMut(&[u8], u32)) -> Option<bool> {
    use std::io::BufRead as _;
    let mut reader = std::io::BufReader::new(File::open(file).ok()?);
    let (mut line, mut path) = (String::new(), Vec::new());
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Some(true),
            Ok(_) => {}
            Err(_) => return Some(false),
        }
        let Some((hexed, sum)) = line.trim_end_matches('\n').split_once(' ') else {
            return Some(false);
        };
        let (Some(()), Ok(sum)) = (
            super::hexed::decode(hexed, &mut path),
            u32::from_str_radix(sum, 16),
        ) else {
            return Some(false);
        };
        each(&path, sum);
    }
}

/// A sums file as read: the paths decoded into one buffer, each found by where it starts and
/// ends there beside its CRC-32 (a `String`, a `Vec` and a `PathBuf` a line took a warm
/// install 26 ms for 58,000 files).
struct Sums {
    paths: Vec<u8>,
    at: Vec<(u32, u32, u32)>,
}

impl Sums {
    /// Each path (its bytes) and its CRC-32, in the file's order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], u32)> {
        (self.at.iter()).map(|&(start, end, sum)| (&self.paths[start as usize..end as usize], sum))
    }
}

/// The sums file read into a map (tests).
#[cfg(test)]
fn read_sums(file: &Path) -> Option<HashMap<PathBuf, u32>> {
    struct Nowhere;
    impl KegSink for Nowhere {
        fn reserve(&mut self, _: usize) {}
        fn entry(&mut self, _: &Path, _: Listed) {}
        fn sums(&mut self, _: &mut dyn Iterator<Item = (&[u8], u32)>) {}
    }
    sums_for(file, false, &mut Nowhere)
}

/// Where [`Unpacked::materialize`] hands over what a keg of links to a shared tree holds, as
/// the manifest the tree is checked against lists it: the keg need not be walked. It is handed
/// over while the tree is checked; what a sink holds after a `materialize` that did not return
/// a [`Taken`] whose `listed` is true is not a listing of anything, and is dropped.
pub trait KegSink {
    /// How many entries follow (to make room once).
    fn reserve(&mut self, entries: usize);
    /// One entry, tree-relative (the tree itself is not one), in the manifest's order.
    fn entry(&mut self, rel: &Path, listed: Listed);
    /// Once every entry was handed over: regular files' CRC-32s as unpacked, each path
    /// tree-relative (its bytes). They end at a line of the sums file that cannot be read (the
    /// files after it have none).
    fn sums(&mut self, sums: &mut dyn Iterator<Item = (&[u8], u32)>);
}

fn write_marked(marked: &[PathBuf]) -> String {
    marked
        .iter()
        .map(|p| format!("{}\n", hex::encode(p.as_os_str().as_bytes())))
        .collect()
}

fn read_marked(file: &Path) -> Option<Vec<PathBuf>> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(|l| {
            hex::decode(l.trim())
                .ok()
                .map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(&b)))
        })
        .collect()
}

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

    /// Makes the store's tree of `chain` in the empty directory `into` (a staging keg) as
    /// `mode` says; marks the entry used (for `cleanup --prune`).
    ///
    /// The tree is checked against its manifest first: one changed since it was stored is
    /// [`TreeError::Changed`]; one whose modes were made under a umask that took bits the
    /// caller's keeps is not used (`Ok(None)`: unpacking gives what this umask gives). A tree
    /// stored under another umask, or without its record of marked files, is copied where
    /// `hardlink` is asked (a link would keep the stored modes, or share a file the pour may
    /// rewrite).
    ///
    /// Where the keg's files are links to a shared tree, `sink` is handed each entry as the
    /// manifest the tree was checked against lists it, and the sums ([`Taken::listed`]).
    pub fn materialize(
        &self,
        chain: &str,
        into: &Path,
        mode: LinkMode,
        sink: &mut dyn KegSink,
    ) -> Result<Option<Taken>, TreeError> {
        let Some(tree) = self.get(chain) else {
            return Ok(None);
        };
        let unsupported = || TreeError::Unsupported {
            mode,
            from: tree.clone(),
            to: into.to_owned(),
        };
        // A clone where the filesystem has none (ext4): said before the tree is read at all.
        if mode == LinkMode::Clone && !tree_copy::can_clone(tree.parent().unwrap_or(&tree), into) {
            return Err(unsupported());
        }
        let entry = self.dir.join(chain);
        let changed = |path: PathBuf| TreeError::Changed {
            entry: entry.clone(),
            path,
        };
        let manifest = std::fs::read_to_string(entry.join(MANIFEST))
            .map_err(|_| changed(PathBuf::from(MANIFEST)))?;
        let umask = crate::platform::process_umask();
        let stored = tree_manifest::stored(&manifest);
        let verdict = |result: Result<(), Mismatch>| match result {
            Ok(()) => Ok(true),
            Err(Mismatch::Umask { .. }) => Ok(false),
            Err(Mismatch::Unreadable) => Err(changed(PathBuf::from(MANIFEST))),
            Err(Mismatch::Changed(path)) => Err(changed(path)),
        };
        let marked = read_marked(&entry.join(MARKED));
        let copied: HashSet<PathBuf> = marked.iter().flatten().cloned().collect();
        let take = match mode {
            LinkMode::Clone => Take::Clone,
            LinkMode::Copy => Take::Copy,
            LinkMode::Hardlink if marked.is_some() && stored.map(|s| s.umask) == Some(umask) => {
                Take::Link { copied: &copied }
            }
            LinkMode::Hardlink => Take::Copy,
        };
        if !tree_copy::can_take(take, tree.parent().unwrap_or(&tree), into) {
            return Err(unsupported());
        }
        let xattrs = entry.join("xattrs").exists();
        let converting = matches!(take, Take::Link { .. }) && stored.is_some_and(|s| !s.shared);
        // The keg shares the checked tree's inodes: what the manifest lists is what it holds (a
        // tree converted below is described by the manifest rewritten, not this one).
        let shares = matches!(take, Take::Link { .. }) && !converting;
        let (made, handed) = if converting || stored.is_none() {
            if !verdict(tree_manifest::check(&tree, &manifest, umask))? {
                return Ok(None);
            }
            if let Some(stored) = stored.filter(|_| converting) {
                // From now on the tree's inodes are shared: checked by mtime, since every link
                // made or removed changes their ctime.
                self.rewrite_manifest(&entry, &tree, stored.umask, true)?;
            }
            (
                tree_copy::copy_tree(&tree, into, xattrs, take, None, None)?,
                None,
            )
        } else {
            let copy = || check_while_copying(&tree, &manifest, umask, into, xattrs, take);
            // A keg of links is listed on this thread while the copy's threads link it (they
            // are in the kernel, and this thread would wait for them): a tree found changed
            // leaves the sink with a listing its caller drops with the staging keg.
            let ((checked, made), handed) = if shares {
                std::thread::scope(|scope| {
                    let copying = scope.spawn(copy);
                    let handed = hand_over(&manifest, sink);
                    let copied = copying.join();
                    (
                        copied.unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        handed,
                    )
                })
            } else {
                (copy(), None)
            };
            if !verdict(checked)? {
                return Ok(None);
            }
            (made?, handed)
        };
        let listed = handed.is_some();
        let made = match take {
            // Links were not stat'ed: the stored tree's own sizes (read while handing it over).
            Take::Link { .. } => Cloned {
                entries: made.entries,
                bytes: handed.unwrap_or_else(|| tree_manifest::file_bytes(&manifest)),
            },
            _ => made,
        };
        // The manifest (9 MB for a tree of 53,000 entries) is not held while the sums are read.
        drop(manifest);
        let _ = File::open(entry.join("layers"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        let sums = sums_for(&entry.join(SUMS), listed, sink);
        Ok(Some(Taken {
            made,
            marked,
            sums,
            listed,
        }))
    }

    /// The manifest of `entry` written anew for `tree` as it is now (temp name + rename).
    fn rewrite_manifest(
        &self,
        entry: &Path,
        tree: &Path,
        umask: u32,
        shared: bool,
    ) -> Result<(), TreeError> {
        let file = tempfile::NamedTempFile::new_in(entry).map_err(io_err(entry))?;
        write_manifest(tree, umask, shared, file.path())?;
        file.persist(entry.join(MANIFEST))
            .map_err(|e| io_err(entry)(e.error))?;
        Ok(())
    }

    /// Stores `tree` (a staging keg just unpacked from `layers`) as `chain`, as `mode` says:
    /// made in a temporary directory beside the store, then renamed into place. `marked`: the
    /// tree-relative files the unpack saw a placeholder in, when it saw every file (those are
    /// copied, never hard-linked: the pour rewrites them). `Ok(false)` when the filesystem
    /// cannot (nothing is kept) or another run stored it first.
    ///
    /// A stored tree that no longer matches its manifest is replaced.
    pub fn put(
        &self,
        chain: &str,
        layers: &[Digest],
        tree: &Path,
        mode: LinkMode,
        marked: Option<&[PathBuf]>,
        sums: &HashMap<PathBuf, u32>,
    ) -> Result<bool, TreeError> {
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
        let copied: HashSet<PathBuf> = marked.into_iter().flatten().cloned().collect();
        let take = match (mode, marked) {
            (LinkMode::Clone, _) => Take::Clone,
            (LinkMode::Hardlink, Some(_)) => Take::Link { copied: &copied },
            // Which files the pour rewrites is not known: nothing of it is shared.
            (LinkMode::Hardlink, None) | (LinkMode::Copy, _) => Take::Copy,
        };
        // Nothing is made where the filesystem cannot (a clone on ext4 or tmpfs, a link to
        // another filesystem).
        if !tree_copy::can_take(take, tree.parent().unwrap_or(tree), &self.tmp) {
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
        let xattrs = tree_copy::has_xattrs(tree);
        if xattrs {
            let flag = building.path().join("xattrs");
            std::fs::write(&flag, "").map_err(io_err(&flag))?;
        }
        if let Some(marked) = marked {
            let file = building.path().join(MARKED);
            std::fs::write(&file, write_marked(marked)).map_err(io_err(&file))?;
            let file = building.path().join(SUMS);
            write_sums(sums, &file)?;
        }
        let stored = building.path().join("tree");
        match tree_copy::copy_tree(tree, &stored, xattrs, take, None, None) {
            Ok(_) => {}
            Err(TreeError::Unsupported { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        // What every entry is now, checked before each use (tree_manifest.rs).
        let shared = matches!(take, Take::Link { .. });
        let manifest_file = building.path().join(MANIFEST);
        let umask = crate::platform::process_umask();
        write_manifest(&stored, umask, shared, &manifest_file)?;
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
        tree_manifest::check(tree, &manifest, crate::platform::process_umask())
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
    pub fn remove(&self, entry: &Path) -> Result<u64, TreeError> {
        let size = tree_copy::tree_size(entry);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_named_by_how_each_layer_was_read() {
        let a: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let tar = ReadAs::Tar;
        let file = ReadAs::File("payload.tar");
        let other = ReadAs::File("other.tar");
        assert_eq!(tree_key(&[]), None);
        let key = |l: &[(&Digest, ReadAs)]| tree_key(l).unwrap();
        // The same blob unpacked as a tar and placed as an ORAS file: two trees.
        assert_ne!(key(&[(&a, tar)]), key(&[(&a, file)]));
        assert_ne!(key(&[(&a, file)]), key(&[(&a, other)]));
        assert_ne!(key(&[(&a, tar), (&b, tar)]), key(&[(&b, tar), (&a, tar)]));
        // Never the digest-only name of earlier versions.
        assert_ne!(key(&[(&a, tar)]), format!("sha256-{}", "a".repeat(64)));
    }

    #[test]
    fn sums_are_written_sorted_by_path_and_read_back_whole() {
        let d = tempfile::tempdir().unwrap();
        let names: [&[u8]; 5] = [b"b", b"a/b", b"a", b"a-c", b"caf\xe9"];
        let sums: HashMap<PathBuf, u32> = (names.iter().enumerate())
            .map(|(i, n)| (PathBuf::from(std::ffi::OsStr::from_bytes(n)), i as u32))
            .collect();
        let file = d.path().join(SUMS);
        write_sums(&sums, &file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut sorted = lines.clone();
        sorted.sort_unstable();
        assert_eq!(lines, sorted, "the lines sort as the paths' bytes do");
        assert_eq!(lines[0], format!("{} 00000002", hex::encode("a")));
        assert_eq!(read_sums(&file).unwrap(), sums);
    }

    /// A sums file with a line that cannot be read: no map of it at all, and where the keg's
    /// listing is handed over, the sums before that line only (the files after it get none).
    #[test]
    fn a_sums_line_that_cannot_be_read_ends_the_sums() {
        struct Got(Vec<(Vec<u8>, u32)>);
        impl KegSink for Got {
            fn reserve(&mut self, _: usize) {}
            fn entry(&mut self, _: &Path, _: Listed) {}
            fn sums(&mut self, sums: &mut dyn Iterator<Item = (&[u8], u32)>) {
                self.0.extend(sums.map(|(p, s)| (p.to_vec(), s)));
            }
        }
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(SUMS);
        let good = format!(
            "{} 0000000a\n{} 0000000b\n",
            hex::encode("a"),
            hex::encode(b"caf\xe9")
        );
        for bad in ["6 0000000c", "zz 0000000c", "63 nothex", "63", "63 1 2"] {
            std::fs::write(
                &file,
                format!("{good}{bad}\n{} 0000000d\n", hex::encode("e")),
            )
            .unwrap();
            assert_eq!(read_sums(&file), None, "{bad:?}");
            let mut got = Got(Vec::new());
            assert_eq!(sums_for(&file, true, &mut got), None);
            assert_eq!(
                got.0,
                [(b"a".to_vec(), 10), (b"caf\xe9".to_vec(), 11)],
                "{bad:?}"
            );
        }
        std::fs::write(&file, &good).unwrap();
        assert_eq!(
            sums_for(&file, false, &mut Got(Vec::new())).unwrap().len(),
            2
        );
        // A last line without its newline is read as well.
        std::fs::write(&file, good.trim_end()).unwrap();
        assert_eq!(read_sums(&file).unwrap().len(), 2);
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
        assert!(!tree_copy::can_clone(&tree, &v1.join("tmp")));
        assert!(
            !store
                .put(
                    "sha256-c",
                    &[digest],
                    &tree,
                    LinkMode::Clone,
                    Some(&[]),
                    &HashMap::new()
                )
                .unwrap()
        );
        assert!(store.get("sha256-c").is_none());
        assert_eq!(std::fs::read_dir(v1.join("tmp")).unwrap().count(), 0);
        assert!(!v1.join("unpacked").exists());
    }
}
