//! Owns what a keg holds as its receipt records it: every keg-relative path, sorted, with each
//! regular file's stamp — read by walking the keg, or handed over by the step that made it and
//! brought up to date with what shaping changed since.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::unpack::beneath::Root;
use super::{CellarError, io_err, receipt};
use crate::store::unpacked::{KegSink, Listed};

/// What a keg holds, read in one walk: every path, sorted, each regular file's with its stamp,
/// and how many entries are not directories. One vector, each path held once: for a keg of
/// 53,000 files a list of paths beside a map of stamps keyed by the same paths was the largest
/// part of an install's peak memory.
#[derive(Default)]
pub struct Listing {
    pub entries: Vec<(String, Option<receipt::Stamp>)>,
    pub files: usize,
}

impl Listing {
    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(p, _)| p.as_str())
    }

    /// The stamp of the regular file at `path`.
    pub fn stamp(&self, path: &str) -> Option<&receipt::Stamp> {
        let i = (self.entries)
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()?;
        self.entries[i].1.as_ref()
    }

    /// The stamp of the regular file at `path`, to change.
    pub fn stamp_mut(&mut self, path: &str) -> Option<&mut receipt::Stamp> {
        let i = (self.entries)
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()?;
        self.entries[i].1.as_mut()
    }

    /// Adds the keg-relative entry `rel` (unsorted until [`Listing::sort`]): a directory, a
    /// regular file with its stamp, or another entry (a link, a fifo). pkg's own `.pkg/` and
    /// what is under it are never listed.
    pub fn push(&mut self, rel: &Path, dir: bool, stamp: Option<receipt::Stamp>) {
        // (By its bytes: a `Path` compares component by component, for every entry.)
        let meta = receipt::META_DIR.as_bytes();
        if let Some(rest) = rel.as_os_str().as_bytes().strip_prefix(meta)
            && (rest.is_empty() || rest[0] == b'/')
        {
            return;
        }
        if !dir {
            self.files += 1;
        }
        self.entries
            .push((rel.to_string_lossy().into_owned(), stamp));
    }

    /// Sorted by path (paths are unique: an unstable sort gives the one order, without a buffer
    /// of its own).
    pub fn sort(&mut self) {
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }

    /// A Homebrew bottle's `NAME/VERSION/` taken off every path, as
    /// `brew::strip_bottle_prefix` moved the entries beneath it up to the keg itself. `false`,
    /// the listing unchanged, unless it holds exactly NAME, NAME/VERSION and what is beneath
    /// them, and nothing beneath them lands in `.pkg/` (then the keg is walked instead).
    pub fn strip_bottle_prefix(&mut self) -> bool {
        let [(top, _), (version, _), ..] = self.entries.as_slice() else {
            return false;
        };
        let inner = format!("{version}/");
        let single = |p: &str| !p.is_empty() && !p.contains('/');
        if !single(top)
            || version
                .strip_prefix(&format!("{top}/"))
                .is_none_or(|v| !single(v))
        {
            return false;
        }
        let beneath = &self.entries[2..];
        if !beneath.iter().all(|(p, _)| {
            p.strip_prefix(&inner)
                .is_some_and(|rel| !Path::new(rel).starts_with(receipt::META_DIR))
        }) {
            return false;
        }
        self.entries.drain(..2);
        for (path, _) in &mut self.entries {
            path.drain(..inner.len());
        }
        true
    }

    /// The stamps of the keg-relative regular files `changed` (rewritten or replaced by shaping)
    /// read again from the keg, by descriptor beneath it. `false` when one is not a regular file
    /// the listing has (then the keg is walked instead).
    pub fn restamp<'a>(&mut self, keg: &Path, changed: impl IntoIterator<Item = &'a str>) -> bool {
        let Ok(mut root) = Root::open(keg) else {
            return false;
        };
        for rel in changed {
            let Ok(Some(st)) = root.stat(Path::new(rel)) else {
                return false;
            };
            let Some(stamp) = self.stamp_mut(rel) else {
                return false;
            };
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            {
                return false;
            }
            stamp.size = u64::try_from(st.st_size).unwrap_or(0);
            stamp.secs = st.st_mtime;
            stamp.nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
        }
        true
    }
}

/// A keg of links to a shared tree, listed as the store hands its checked manifest over.
impl KegSink for Listing {
    fn reserve(&mut self, entries: usize) {
        // A count read from the store: never more room than a million entries at once.
        self.entries.reserve_exact(entries.min(1 << 20));
    }

    fn entry(&mut self, rel: &Path, listed: Listed) {
        match listed {
            Listed::Dir => self.push(rel, true, None),
            Listed::File { size, secs, nanos } => {
                let stamp = receipt::Stamp {
                    size,
                    secs,
                    nanos,
                    sum: None,
                };
                self.push(rel, false, Some(stamp));
            }
            Listed::Other => self.push(rel, false, None),
        }
    }

    fn sums(&mut self, sums: &mut dyn Iterator<Item = (&[u8], u32)>) {
        self.sort();
        // The sums come in the listing's order (both sorted by path): each is looked for among
        // the few entries after the last one found, and searched for only when not there (a
        // name that is not UTF-8 is listed in its lossy form, and found by it).
        let mut at = 0;
        for (rel, sum) in sums {
            let near = &self.entries[at..self.entries.len().min(at + 64)];
            let found = match near.iter().position(|(p, _)| p.as_bytes() == rel) {
                Some(i) => Some(at + i),
                None => {
                    let rel = String::from_utf8_lossy(rel);
                    (self.entries.binary_search_by(|(p, _)| p.as_str().cmp(&rel))).ok()
                }
            };
            if let Some(i) = found {
                at = i;
                if let Some(stamp) = &mut self.entries[i].1 {
                    stamp.sum = Some(sum);
                }
            }
        }
    }
}

/// Keg-relative paths of everything under `root` except pkg's own metadata (sorted), with
/// each regular file's size and modification time. A big keg's directories are read by a few
/// threads (a `statx` per file is most of the work), each directory by whichever is free
/// (`spread`).
///
/// `expected` is about how many entries there are (the unpack's count, a receipt's): the
/// listing is made at that size once and the threads add to it a thousand entries at a time
/// (grown by doubling and merged from the threads' own, a 53,000-entry listing was held up to
/// three times over).
pub fn list_entries(root: &Path, expected: usize) -> Result<Listing, CellarError> {
    let listing = Mutex::new(Listing {
        entries: Vec::with_capacity(expected.min(1 << 20)),
        files: 0,
    });
    let flush = |local: &mut Listing| {
        let mut listing = listing.lock().unwrap_or_else(PoisonError::into_inner);
        listing.entries.append(&mut local.entries);
        listing.files += std::mem::take(&mut local.files);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let first = vec![PathBuf::new()];
    let left = crate::spread::spread(first, threads, Listing::default, |local, rel, found| {
        list_dir(root, &rel, local, found)?;
        if local.entries.len() >= 1024 {
            flush(local);
        }
        Ok(())
    })?;
    for mut local in left {
        flush(&mut local);
    }
    let mut listing = listing.into_inner().unwrap_or_else(PoisonError::into_inner);
    listing.sort();
    Ok(listing)
}

/// The entries of one keg-relative directory into `listing`; its subdirectories onto `dirs`.
fn list_dir(
    root: &Path,
    rel: &Path,
    listing: &mut Listing,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), CellarError> {
    let dir = root.join(rel);
    for entry in fs_err::read_dir(&dir).map_err(io_err(&dir))? {
        let entry = entry.map_err(io_err(&dir))?;
        let rel_child = rel.join(entry.file_name());
        if rel_child == Path::new(receipt::META_DIR) {
            continue;
        }
        let kind = entry.file_type().map_err(io_err(&entry.path()))?;
        let stamp = if kind.is_file() {
            // `DirEntry::metadata` does not follow a link (none here: a regular file).
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            Some(receipt::Stamp::of(&meta))
        } else {
            None
        };
        listing.push(&rel_child, kind.is_dir(), stamp);
        if kind.is_dir() {
            dirs.push(rel_child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing read by threads is the one a single depth-first walk reads: every path once,
    /// sorted, `.pkg/` left out, a stamp for each regular file, links counted as files.
    #[test]
    fn a_keg_listed_by_threads_is_listed_whole_and_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for a in 0..6 {
            for b in 0..5 {
                let dir = root.join(format!("share/d{a}/e{b}"));
                std::fs::create_dir_all(&dir).unwrap();
                for f in 0..3 {
                    std::fs::write(dir.join(format!("f{f}")), format!("{a}{b}{f}")).unwrap();
                }
                std::os::unix::fs::symlink("f0", dir.join("link")).unwrap();
            }
        }
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), "x").unwrap();
        std::fs::create_dir_all(root.join(".pkg")).unwrap();
        std::fs::write(root.join(".pkg/receipt.json"), "{}").unwrap();

        let listing = list_entries(root, 0).unwrap();
        let mut one = Listing::default();
        let mut dirs = vec![PathBuf::new()];
        while let Some(rel) = dirs.pop() {
            list_dir(root, &rel, &mut one, &mut dirs).unwrap();
        }
        one.entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listing.entries, one.entries);
        assert_eq!(listing.files, one.files);
        // 6 × 5 directories of 3 files and a link, bin/tool; no `.pkg/`.
        assert_eq!(listing.files, 6 * 5 * 4 + 1);
        let stamped = listing.entries.iter().filter(|(_, s)| s.is_some()).count();
        assert_eq!(stamped, 6 * 5 * 3 + 1);
        assert!(listing.stamp("bin/tool").is_some() && listing.stamp("share").is_none());
        assert!(listing.paths().all(|p| !p.starts_with(".pkg")));
        let mut unique: Vec<&str> = listing.paths().collect();
        unique.dedup();
        assert_eq!(unique.len(), listing.entries.len());
    }

    /// A listing handed over for a bottle's tree becomes the keg's as `strip_bottle_prefix`
    /// makes it, and files shaping replaced are stamped again from the keg; anything else that
    /// does not fit leaves it to the walk.
    #[test]
    fn a_listing_handed_over_follows_the_bottle_strip_and_the_files_shaping_replaced() {
        let d = tempfile::tempdir().unwrap();
        let keg = d.path();
        let stamp = |size| {
            Some(receipt::Stamp {
                size,
                secs: 1,
                nanos: 2,
                sum: Some(3),
            })
        };
        let mut made = Listing::default();
        for (rel, dir, st) in [
            ("hello", true, None),
            ("hello/1.0", true, None),
            ("hello/1.0/bin", true, None),
            ("hello/1.0/bin/hello", false, stamp(5)),
            ("hello/1.0/README", false, stamp(7)),
        ] {
            made.push(Path::new(rel), dir, st);
        }
        made.sort();
        let mut stripped = Listing {
            entries: made.entries.clone(),
            files: made.files,
        };
        assert!(stripped.strip_bottle_prefix());
        let paths: Vec<&str> = stripped.paths().collect();
        assert_eq!(paths, ["README", "bin", "bin/hello"]);
        assert_eq!(
            (stripped.files, stripped.stamp("bin/hello")),
            (2, stamp(5).as_ref())
        );

        // Another entry at the top, a second version, or a file landing in `.pkg/`: not a
        // bottle's shape.
        for extra in ["other", "hello/2.0", "hello/1.0/.pkg/receipt.json"] {
            let mut odd = Listing {
                entries: made.entries.clone(),
                files: made.files,
            };
            odd.push(Path::new(extra), false, None);
            odd.sort();
            let before = odd.entries.clone();
            assert!(!odd.strip_bottle_prefix(), "{extra}");
            assert_eq!(odd.entries, before, "{extra}");
        }

        // bin/hello replaced by shaping: its stamp is read again; the rest keep theirs.
        std::fs::create_dir_all(keg.join("bin")).unwrap();
        std::fs::write(keg.join("bin/hello"), "rewritten").unwrap();
        assert!(stripped.restamp(keg, ["bin/hello"]));
        let now = std::fs::metadata(keg.join("bin/hello")).unwrap();
        let restamped = stripped.stamp("bin/hello").unwrap();
        assert_eq!(
            (restamped.size, Some(restamped.secs)),
            (9, Some(std::os::unix::fs::MetadataExt::mtime(&now)))
        );
        assert_eq!(stripped.stamp("README"), stamp(7).as_ref());
        // One the keg lacks, or a directory: walked instead.
        assert!(!stripped.restamp(keg, ["README"]));
        assert!(!stripped.restamp(keg, ["bin"]));
    }

    /// Sums handed over reach their files whatever their order; one for a directory or for a
    /// path the listing lacks changes nothing.
    #[test]
    fn sums_handed_over_in_any_order_reach_their_files_and_nothing_else() {
        let mut listing = Listing::default();
        let file = Some(receipt::Stamp {
            size: 1,
            secs: 2,
            nanos: 3,
            sum: None,
        });
        for i in 0..200 {
            listing.entry(Path::new(&format!("d{i:03}")), Listed::Dir);
            listing.push(Path::new(&format!("d{i:03}/f")), false, file);
        }
        let mut sums: Vec<(String, u32)> = (0..200).map(|i| (format!("d{i:03}/f"), i)).collect();
        sums.swap(3, 150);
        sums.reverse();
        sums.push(("d007".into(), 7));
        sums.push(("nowhere".into(), 9));
        // A name that is not UTF-8 is listed by its lossy form; its sum comes by its bytes.
        let latin1 = std::ffi::OsStr::from_bytes(b"d100/caf\xe9");
        listing.push(Path::new(latin1), false, file);
        let mut sums: Vec<(&[u8], u32)> = sums.iter().map(|(p, s)| (p.as_bytes(), *s)).collect();
        sums.push((latin1.as_bytes(), 1000));
        listing.sums(&mut sums.into_iter());
        for i in 0..200 {
            assert_eq!(listing.stamp(&format!("d{i:03}/f")).unwrap().sum, Some(i));
            assert_eq!(listing.stamp(&format!("d{i:03}")), None);
        }
        assert_eq!(listing.stamp("d100/caf\u{fffd}").unwrap().sum, Some(1000));
        assert_eq!(listing.entries.len(), 401);
    }
}
