//! Owns the manifest of a tree kept in the unpacked store: every entry's type, mode, size, inode
//! and ctime when the tree was stored, and the umask its modes were made under. A tree is used
//! for a warm install only when it still matches, so an edit made in `CACHE/v1/unpacked/` after
//! the fact (a write, a chmod, an entry added, removed or swapped) is never installed.
//!
//! Why ctime and not hashes: the kernel sets an inode's ctime on every change to its data or its
//! metadata, and no system call sets it back (only the clock could), so a write, a truncate, a
//! chmod or a rename shows, while checking costs one `lstat` per entry instead of reading every
//! byte (a hash of each file on every warm install would cost what the clone saves). What it does
//! not stop is someone who can write the cache rewriting the manifest too: the cache's blobs are
//! held to digests from outside it; a tree is as trustworthy as the directory it sits in
//! (docs/hardening.md).
//!
//! A tree whose files are hard-linked into kegs (`--link-mode hardlink`) is *shared*: every link
//! made or removed changes its inodes' ctime, so its manifest (marked `shared` in its first line)
//! records and compares the mtime instead. A write still shows (the kernel sets the mtime);
//! putting the mtime back by hand does not, which is the hard-link mode's documented limit.

use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

const HEADER: &str = "pkg-unpacked-manifest 1";

/// One line per entry of `tree` (the tree itself first, then every entry, sorted by path):
/// `TYPE MODE SIZE INODE TIME PATH-HEX`, TIME being the ctime, or the mtime of a `shared`
/// tree (and of its directories, whose ctime a keg's links never touch, the ctime still).
/// Links are described, never followed. Written to `out` line by line in that order.
///
/// The lines are held in one text, each found by where it starts, where its path starts and
/// where it ends, and those sorted (not a string per line and a joined copy: 22 MB at a cold
/// install's peak on a 66,000-entry tree, against 9 for the text alone).
fn describe_to(tree: &Path, shared: bool, out: &mut dyn io::Write) -> io::Result<()> {
    let mut text = String::new();
    // Where each line starts, where its path starts, and where it ends (a text past 4 GiB, some
    // 30 million entries, is refused).
    let mut lines: Vec<[u32; 3]> = Vec::new();
    let at =
        |n: usize| u32::try_from(n).map_err(|_| io::Error::other("a tree too large to describe"));
    let mut too_large = None;
    walk(tree, shared, |line, path_at| {
        let start = text.len();
        text.push_str(line);
        match (at(start), at(start + path_at), at(text.len())) {
            (Ok(start), Ok(path), Ok(end)) => lines.push([start, path, end]),
            (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => too_large = Some(e),
        }
        too_large.is_none()
    })?;
    if let Some(e) = too_large {
        return Err(e);
    }
    let part = |from: u32, to: u32| &text.as_bytes()[from as usize..to as usize];
    // Paths are unique: an unstable sort gives the one order.
    lines.sort_unstable_by(|a, b| part(a[1], a[2]).cmp(part(b[1], b[2])));
    for [start, _, end] in lines {
        out.write_all(part(start, end))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Each entry of `tree` as its manifest line, depth first, handed to `each` with where its
/// path starts in the line (one buffer, reused); `each` returns false to stop the walk.
fn walk(tree: &Path, shared: bool, mut each: impl FnMut(&str, usize) -> bool) -> io::Result<()> {
    let mut line = String::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = tree.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        let path_at = line_of(&mut line, (&rel, None), &Seen::from(&meta), shared);
        if !each(&line, path_at) {
            return Ok(());
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(rel.join(entry?.file_name()));
            }
        }
    }
    Ok(())
}

/// An entry as one `lstat` saw it: what its manifest line holds, and what a copy of it needs.
/// Read by std (`Metadata`) or by `fstatat` beside a directory's descriptor (`Stat`): the
/// copy's threads read a directory by the descriptor they link and stat its entries beside.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub kind: rustix::fs::FileType,
    /// The permission bits, set-id and sticky bits (`& 0o7777`).
    pub mode: u32,
    pub size: u64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    /// Seconds and nanoseconds.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl From<&std::fs::Metadata> for Seen {
    fn from(meta: &std::fs::Metadata) -> Seen {
        Seen {
            kind: rustix::fs::FileType::from_raw_mode(meta.mode()),
            mode: meta.mode() & 0o7777,
            size: meta.len(),
            ino: meta.ino(),
            dev: meta.dev(),
            nlink: meta.nlink(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl From<&rustix::fs::Stat> for Seen {
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // (the types differ by arch)
    fn from(st: &rustix::fs::Stat) -> Seen {
        Seen {
            kind: rustix::fs::FileType::from_raw_mode(st.st_mode as _),
            mode: (st.st_mode as u32) & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            nlink: st.st_nlink as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

/// The manifest line of the entry at tree-relative `rel` (a directory and, when given, a name
/// in it) described by `seen` into `line`; returns where its path starts.
fn line_of(
    line: &mut String,
    (rel, name): (&Path, Option<&std::ffi::OsStr>),
    seen: &Seen,
    shared: bool,
) -> usize {
    use rustix::fs::FileType;
    let dir = seen.kind == FileType::Directory;
    let letter = match seen.kind {
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::RegularFile => 'f',
        _ => 'o',
    };
    let (secs, nanos) = if shared && !dir {
        seen.mtime
    } else {
        seen.ctime
    };
    line.clear();
    let _ = write!(
        line,
        "{letter} {:o} {} {} {}.{:09} ",
        seen.mode,
        if dir { 0 } else { seen.size },
        seen.ino,
        secs,
        nanos,
    );
    let path_at = line.len();
    super::hexed::push(line, rel.as_os_str().as_bytes());
    if let Some(name) = name {
        if !rel.as_os_str().is_empty() {
            super::hexed::push(line, b"/");
        }
        super::hexed::push(line, name.as_bytes());
    }
    path_at
}

/// The manifest of `tree` written to `out`, stored with its modes made under `umask`; `shared`
/// when its files are hard-linked into kegs.
pub fn write_to(tree: &Path, umask: u32, shared: bool, out: &mut dyn io::Write) -> io::Result<()> {
    let mut header = format!("{HEADER} umask {umask:o}");
    if shared {
        header.push_str(" shared");
    }
    header.push('\n');
    out.write_all(header.as_bytes())?;
    describe_to(tree, shared, out)
}

/// [`write_to`]'s text, whole.
#[cfg(test)]
pub fn write(tree: &Path, umask: u32, shared: bool) -> io::Result<String> {
    let mut text = Vec::new();
    write_to(tree, umask, shared, &mut text)?;
    String::from_utf8(text).map_err(io::Error::other)
}

/// The bytes of the regular files a manifest lists, each inode once (what a tree's files hold,
/// without a `stat` per file).
pub fn file_bytes(manifest: &str) -> u64 {
    let files: Vec<(u64, u64)> = manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let [kind, _mode, size, inode, _time, _path] = fields(line)?;
            (kind == "f").then(|| Some((inode.parse().ok()?, size.parse().ok()?)))?
        })
        .collect();
    bytes_once(files)
}

/// The sizes of `files` (inode, size) summed, each inode once.
fn bytes_once(mut files: Vec<(u64, u64)>) -> u64 {
    // Sorted by inode, a hard link's second name is next to its first (no hash of 53,000
    // inodes).
    files.sort_unstable();
    files.dedup_by_key(|(inode, _)| *inode);
    files.iter().map(|(_, size)| size).sum()
}

/// The inodes a manifest lists under more than one name (hard links within its tree): in a
/// tree shared with kegs every file's link count includes the kegs' links, so only these are
/// hard links a copy of it keeps.
pub fn multi_named(manifest: &str) -> std::collections::HashSet<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut again = std::collections::HashSet::new();
    for line in manifest.lines().skip(1) {
        let mut words = line.split(' ');
        let (Some(kind), _, _, Some(inode)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        if let (false, Ok(inode)) = (kind == "d", inode.parse::<u64>())
            && !seen.insert(inode)
        {
            again.insert(inode);
        }
    }
    again
}

/// An entry of a tree as its manifest describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    Dir,
    /// A regular file: its size and mtime (seconds and nanoseconds since the epoch).
    File {
        size: u64,
        secs: i64,
        nanos: u32,
    },
    /// A symlink, a fifo.
    Other,
}

/// Hands `each` every entry of a *shared* tree (not the tree itself) as its manifest lists it:
/// the tree-relative path and what it is. A keg whose files are hard links to the tree holds
/// exactly this (the same inodes: the same sizes and mtimes), so its listing needs no walk
/// once the tree was checked against this manifest. Returns the bytes of its files, each inode
/// once ([`file_bytes`], read in the same pass); `None`, having handed `each` nothing or only
/// part, when the manifest is not a shared one (it records ctimes, not mtimes) or a line cannot
/// be read.
pub fn list_shared(manifest: &str, each: &mut dyn FnMut(&Path, Listed)) -> Option<u64> {
    if !stored(manifest).is_some_and(|s| s.shared) {
        return None;
    }
    // Each path decoded into the one buffer (no allocation a line).
    let mut path = Vec::new();
    let mut files = Vec::new();
    for line in manifest.lines().skip(1) {
        let (listed, inode) = match listed_line(line, &mut path)? {
            None => continue,
            Some(entry) => entry,
        };
        if let Listed::File { size, .. } = listed {
            files.push((inode, size));
        }
        each(Path::new(std::ffi::OsStr::from_bytes(&path)), listed);
    }
    Some(bytes_once(files))
}

/// One line of a shared manifest, its path decoded into `path_buf`: what it is and its inode
/// (`None` for the tree itself), or `None` for a line that cannot be read.
fn listed_line(line: &str, path_buf: &mut Vec<u8>) -> Option<Option<(Listed, u64)>> {
    let [kind, _mode, size, inode, time, path] = fields(line)?;
    super::hexed::decode(path, path_buf)?;
    if path_buf.is_empty() {
        return Some(None);
    }
    let listed = match kind {
        "d" => Listed::Dir,
        "f" => {
            let (secs, nanos) = time.split_once('.')?;
            Listed::File {
                size: size.parse().ok()?,
                secs: secs.parse().ok()?,
                nanos: nanos.parse().ok()?,
            }
        }
        _ => Listed::Other,
    };
    Some(Some((listed, inode.parse().ok()?)))
}

/// The path of a manifest line, hex-encoded as written: its last word.
fn path_of(line: &str) -> &str {
    line.rfind(' ').map_or(line, |space| &line[space + 1..])
}

/// The `N` words of a manifest line, each after one space (`None` for more or fewer): split by
/// bytes (`str::split` searched each short word through its general pattern matcher).
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut words = [""; N];
    let mut rest = line;
    for (i, word) in words.iter_mut().enumerate() {
        let end = if i + 1 == N {
            (!rest.as_bytes().contains(&b' ')).then_some(rest.len())?
        } else {
            rest.as_bytes().iter().position(|b| *b == b' ')?
        };
        *word = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    Some(words)
}

/// What a manifest's first line says of its tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The umask its modes were made under.
    pub umask: u32,
    /// Its files are hard-linked into kegs.
    pub shared: bool,
}

/// The first line of `manifest`, read (`None`: not one pkg wrote).
pub fn stored(manifest: &str) -> Option<Stored> {
    let first = manifest.lines().next()?;
    let mut words = first.strip_prefix(HEADER)?.split_whitespace();
    if words.next()? != "umask" {
        return None;
    }
    let umask = u32::from_str_radix(words.next()?, 8).ok()?;
    let shared = match words.next() {
        None => false,
        Some("shared") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some(Stored { umask, shared })
}

/// Why a stored tree may not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No manifest, or one pkg cannot read.
    Unreadable,
    /// Its modes were made under a umask that took bits the caller's keeps: unpacking again
    /// gives what this umask gives.
    Umask { stored: u32, now: u32 },
    /// This entry (tree-relative) was changed, added or removed since the tree was stored.
    Changed(PathBuf),
}

/// Checks `tree` against `manifest` (the text [`write`] made) for a caller under `umask`.
pub fn check(tree: &Path, manifest: &str, umask: u32) -> Result<(), Mismatch> {
    let checker = Checker::new(manifest, umask)?;
    // The walk stops at the first entry found changed, which `finish` names.
    walk(tree, checker.shared, |line, path_at| {
        checker.meet_line(line, path_at)
    })
    .map_err(|_| Mismatch::Changed(PathBuf::new()))?;
    checker.finish()
}

/// A tree's entries met one by one against its manifest, by whoever reads them (a walk of its
/// own, or the threads copying the tree, each entry's `lstat` made once for both), in any order
/// and from any thread; [`Checker::finish`] then says whether every line was met.
///
/// Each entry is looked up in the manifest by its path (the manifest's lines indexed, not the
/// tree's lines gathered and sorted: for a tree of 53,000 entries those were 14 MB beside the
/// manifest's 9), and every line must be met once. The index is a hash table: a binary search
/// among 66,000 lines compared paths in a 9 MB text at every step (5 % of a warm install's
/// samples, a cache miss each). It holds line numbers only (4 bytes a line, found by their
/// paths' hashes), the lines where they are in the manifest: a std map holding each path's
/// `&str` beside its line was 3.3 MB at its size, for 66,000 lines.
pub struct Checker<'m> {
    body: &'m str,
    /// Where each line (the first aside) starts and ends in `body`, in the manifest's order.
    spans: Vec<(u32, u32)>,
    /// Line numbers, found by their paths' hashes (`keys`). A path listed twice is found at
    /// one of its lines only: the other is never met, so the tree is never taken.
    index: hashbrown::HashTable<u32>,
    keys: std::hash::RandomState,
    met: Vec<std::sync::atomic::AtomicBool>,
    /// The tree's files are hard-linked into kegs: their mtimes are compared, not ctimes.
    pub shared: bool,
    /// The first entry found changed (its path hex-encoded).
    changed: std::sync::Mutex<Option<String>>,
}

impl<'m> Checker<'m> {
    /// A checker of `manifest` for a caller under `umask`: a manifest pkg cannot read, or one
    /// made under a umask that took bits the caller's keeps, is refused at once.
    pub fn new(manifest: &'m str, umask: u32) -> Result<Checker<'m>, Mismatch> {
        let (_, body) = manifest.split_once('\n').ok_or(Mismatch::Unreadable)?;
        let Stored {
            umask: stored,
            shared,
        } = self::stored(manifest).ok_or(Mismatch::Unreadable)?;
        // A stricter umask now is applied while cloning; a looser one needs bits the tree lacks.
        if stored & !umask != 0 {
            return Err(Mismatch::Umask { stored, now: umask });
        }
        // A manifest past 4 GiB is not one pkg wrote.
        let at = |n: usize| u32::try_from(n).map_err(|_| Mismatch::Unreadable);
        let base = body.as_ptr() as usize;
        let spans = (body.lines())
            .map(|line| {
                let start = line.as_ptr() as usize - base;
                Ok((at(start)?, at(start + line.len())?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys = std::hash::RandomState::new();
        let mut index = hashbrown::HashTable::with_capacity(spans.len());
        let hash_of = |i: u32| {
            let (start, end) = spans[i as usize];
            keys.hash_one(path_of(&body[start as usize..end as usize]))
        };
        for i in 0..at(spans.len())? {
            // (Made at its size: no line is hashed again to grow it.)
            index.insert_unique(hash_of(i), i, |&j| hash_of(j));
        }
        let met = spans.iter().map(|_| Default::default()).collect();
        Ok(Checker {
            body,
            spans,
            index,
            keys,
            met,
            shared,
            changed: std::sync::Mutex::new(None),
        })
    }

    /// Whether the entry at tree-relative `rel`, as `meta` (its `lstat`) describes it, is the
    /// one the manifest lists, met for the first time. `line` is the caller's buffer.
    pub fn meet(&self, rel: &Path, seen: &Seen, line: &mut String) -> bool {
        let path_at = line_of(line, (rel, None), seen, self.shared);
        self.meet_line(line, path_at)
    }

    /// [`Checker::meet`] for the entry `name` in the tree-relative directory `dir` (no path of
    /// the two joined is made).
    pub fn meet_in(
        &self,
        (dir, name): (&Path, &std::ffi::OsStr),
        seen: &Seen,
        line: &mut String,
    ) -> bool {
        let path_at = line_of(line, (dir, Some(name)), seen, self.shared);
        self.meet_line(line, path_at)
    }

    fn meet_line(&self, line: &str, path_at: usize) -> bool {
        use std::sync::atomic::Ordering;
        let key = &line[path_at..];
        let found = (self.index).find(self.keys.hash_one(key), |&i| path_of(self.line(i)) == key);
        if let Some(&i) = found
            && self.line(i) == line
            && !self.met[i as usize].swap(true, Ordering::Relaxed)
        {
            return true;
        }
        if let Ok(mut changed) = self.changed.lock() {
            changed.get_or_insert_with(|| key.to_owned());
        }
        false
    }

    /// Line `i` of the manifest (the first aside).
    fn line(&self, i: u32) -> &'m str {
        let (start, end) = self.spans[i as usize];
        &self.body[start as usize..end as usize]
    }

    fn changed(&self) -> Option<String> {
        self.changed.lock().ok().and_then(|c| c.clone())
    }

    /// Every entry was met and matched, and every line of the manifest was met: the tree is
    /// as it was stored. Else the first entry found changed, or a line no entry met, is named.
    pub fn finish(self) -> Result<(), Mismatch> {
        use std::sync::atomic::Ordering;
        let hexed = self.changed().or_else(|| {
            let unmet = (0..)
                .zip(&self.met)
                .find(|(_, m)| !m.load(Ordering::Relaxed))?
                .0;
            Some(path_of(self.line(unmet)).to_owned())
        });
        match hexed {
            None => Ok(()),
            Some(hexed) => {
                let rel = hex::decode(hexed).unwrap_or_default();
                Err(Mismatch::Changed(PathBuf::from(
                    std::ffi::OsStr::from_bytes(&rel),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inodes_named_twice_in_the_tree_are_multi_named() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("a")).unwrap();
        std::fs::write(tree.join("a/one"), "1").unwrap();
        std::fs::hard_link(tree.join("a/one"), tree.join("two")).unwrap();
        std::fs::write(tree.join("alone"), "x").unwrap();
        // A link from outside the tree (a keg's) counts for nothing.
        std::fs::hard_link(tree.join("alone"), d.path().join("keg-link")).unwrap();
        let manifest = write(&tree, 0o022, true).unwrap();
        let ino = |p: &str| std::fs::metadata(tree.join(p)).unwrap().ino();
        assert_eq!(multi_named(&manifest), [ino("a/one")].into());
    }

    #[test]
    fn a_shared_manifest_lists_every_entry_as_the_tree_has_it_and_a_private_one_nothing() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("share/doc")).unwrap();
        std::fs::write(tree.join("share/doc/readme"), "hello").unwrap();
        std::fs::write(tree.join("bin"), "tool!").unwrap();
        std::os::unix::fs::symlink("bin", tree.join("link")).unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"odd \xff name");
        std::fs::write(tree.join(odd), "").unwrap();
        // A second name of `bin`: its bytes are counted once.
        std::fs::hard_link(tree.join("bin"), tree.join("share/bin-again")).unwrap();
        let mut listed = Vec::new();
        let shared = write(&tree, 0o022, true).unwrap();
        let bytes = list_shared(&shared, &mut |rel, l| listed.push((rel.to_owned(), l)));
        assert_eq!(bytes, Some(5 + 5));
        assert_eq!(bytes, Some(file_bytes(&shared)));
        let file = |rel: &Path| {
            let m = std::fs::symlink_metadata(tree.join(rel)).unwrap();
            Listed::File {
                size: m.len(),
                secs: m.mtime(),
                nanos: u32::try_from(m.mtime_nsec()).unwrap(),
            }
        };
        let mut want: Vec<(PathBuf, Listed)> = [
            ("bin", None),
            ("link", Some(Listed::Other)),
            ("share", Some(Listed::Dir)),
            ("share/doc", Some(Listed::Dir)),
            ("share/bin-again", None),
            ("share/doc/readme", None),
        ]
        .into_iter()
        .map(|(rel, kind)| {
            (
                PathBuf::from(rel),
                kind.unwrap_or_else(|| file(rel.as_ref())),
            )
        })
        .collect();
        want.push((PathBuf::from(odd), file(odd.as_ref())));
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed, want);
        // A private tree's manifest records ctimes: nothing is listed from it.
        let private = write(&tree, 0o022, false).unwrap();
        assert_eq!(list_shared(&private, &mut |_, _| panic!("listed")), None);
        // A line that cannot be read ends the listing as not listed.
        let broken = shared.replacen("\nd ", "\nd x ", 1);
        assert_eq!(list_shared(&broken, &mut |_, _| {}), None);
    }

    #[test]
    fn any_change_to_a_stored_tree_is_found_and_named() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("share")).unwrap();
        std::fs::write(tree.join("share/data"), "published").unwrap();
        std::fs::write(tree.join("bin"), "tool").unwrap();
        std::os::unix::fs::symlink("share/data", tree.join("link")).unwrap();
        let manifest = write(&tree, 0o022, false).unwrap();
        assert_eq!(check(&tree, &manifest, 0o022), Ok(()));
        assert_eq!(check(&tree, &manifest, 0o077), Ok(()), "stricter is fine");
        assert_eq!(
            check(&tree, &manifest, 0o002),
            Err(Mismatch::Umask {
                stored: 0o022,
                now: 0o002
            })
        );
        assert_eq!(check(&tree, "nonsense", 0o022), Err(Mismatch::Unreadable));
        // The same size, the same mtime put back: the ctime still shows the write.
        let mtime = std::fs::metadata(tree.join("share/data"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::write(tree.join("share/data"), "tampered!").unwrap();
        std::fs::File::options()
            .write(true)
            .open(tree.join("share/data"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            check(&tree, &manifest, 0o022),
            Err(Mismatch::Changed("share/data".into()))
        );
        let manifest = write(&tree, 0o022, false).unwrap();
        // A line of the manifest no entry of the tree meets: named.
        let ghost = format!("{manifest}f 644 1 1 0.000000000 {}\n", hex::encode("ghost"));
        assert_eq!(
            check(&tree, &ghost, 0o022),
            Err(Mismatch::Changed("ghost".into()))
        );
        std::fs::write(tree.join("share/extra"), "").unwrap();
        assert!(matches!(
            check(&tree, &manifest, 0o022),
            Err(Mismatch::Changed(_))
        ));
    }

    /// A path the manifest lists twice (an edit, or a line copied) can be met once only: the
    /// tree is never taken, and that path is named.
    #[test]
    fn a_path_listed_twice_in_a_manifest_is_named_and_the_tree_not_taken() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("share")).unwrap();
        std::fs::write(tree.join("share/data"), "published").unwrap();
        std::fs::write(tree.join("bin"), "tool").unwrap();
        for shared in [false, true] {
            let manifest = write(&tree, 0o022, shared).unwrap();
            assert_eq!(check(&tree, &manifest, 0o022), Ok(()));
            let line = (manifest.lines())
                .find(|l| l.ends_with(&format!(" {}", hex::encode("bin"))))
                .unwrap();
            let twice = format!("{manifest}{line}\n");
            assert_eq!(
                check(&tree, &twice, 0o022),
                Err(Mismatch::Changed("bin".into())),
                "shared: {shared}"
            );
        }
    }

    #[test]
    fn a_shared_tree_is_checked_by_mtime_so_links_made_to_it_are_not_changes() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("data"), "published").unwrap();
        std::os::unix::fs::symlink("data", tree.join("sym")).unwrap();
        std::fs::hard_link(tree.join("sym"), tree.join("sym-again")).unwrap();
        let private = write(&tree, 0o022, false).unwrap();
        let shared = write(&tree, 0o022, true).unwrap();
        assert_eq!(
            stored(&shared),
            Some(Stored {
                umask: 0o022,
                shared: true
            })
        );
        assert_eq!(stored(&private).map(|s| s.shared), Some(false));
        assert_eq!(stored("pkg-unpacked-manifest 1 umask 22 other\n"), None);
        // A keg links to the file and the symlink: their ctimes move, their mtimes do not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let keg = d.path().join("keg");
        std::fs::create_dir_all(&keg).unwrap();
        std::fs::hard_link(tree.join("data"), keg.join("data")).unwrap();
        std::fs::hard_link(tree.join("sym"), keg.join("sym")).unwrap();
        assert!(matches!(
            check(&tree, &private, 0o022),
            Err(Mismatch::Changed(_))
        ));
        assert_eq!(check(&tree, &shared, 0o022), Ok(()));
        // A write through the keg's name still shows.
        std::fs::write(keg.join("data"), "scribbled").unwrap();
        assert_eq!(
            check(&tree, &shared, 0o022),
            Err(Mismatch::Changed("data".into()))
        );
    }
}
