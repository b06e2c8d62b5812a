//! Owns making one tree from another the way the link mode says — a reflink clone, hard links or
//! a plain copy of each file — for the unpacked store (store ⇄ staging keg). Directories and
//! fifos are always made anew; regular files are shared only as the mode allows, and symlinks
//! only by hard links (`hardlink`: a symlink cannot be written through).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::tree_manifest::{Checker, Seen};

/// What a clone made: entries and the bytes of the files, as an unpack counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cloned {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The filesystem cannot make this mode's files between these two places: nothing is
    /// stored or taken.
    #[error("{} cannot be taken into {} by {mode} here", .from.display(), .to.display())]
    Unsupported {
        mode: LinkMode,
        from: PathBuf,
        to: PathBuf,
    },
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

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How a warm install takes a keg's files from the unpacked store (`--link-mode`,
/// `PKG_LINK_MODE`, config `link_mode`), as uv's `UV_LINK_MODE` does. What each risks is in
/// docs/performance.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Reflinks (`FICLONE`): the keg and the store share extents only, so a write into one
    /// copies the block it touches. Where the filesystem cannot, nothing is stored and warm
    /// installs unpack the verified blobs again.
    #[default]
    Clone,
    /// Hard links: the keg's files *are* the store's (one inode), so a warm install costs a
    /// link per file on any filesystem — and a write into a keg changes the store and every
    /// other keg made from it (doctor finds it; `reinstall` mends it). Files the pour rewrites
    /// (relocation, `chmod +x`) are copied, never written through a link.
    Hardlink,
    /// Plain copies (`copy_file_range`): nothing shared, on any filesystem; costs the writes.
    Copy,
}

impl LinkMode {
    pub const NAMES: [&'static str; 3] = ["clone", "hardlink", "copy"];
}

impl fmt::Display for LinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkMode::Clone => "clone",
            LinkMode::Hardlink => "hardlink",
            LinkMode::Copy => "copy",
        })
    }
}

impl std::str::FromStr for LinkMode {
    type Err = ();
    fn from_str(s: &str) -> Result<LinkMode, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "clone" | "reflink" => Ok(LinkMode::Clone),
            "hardlink" | "hard-link" => Ok(LinkMode::Hardlink),
            "copy" => Ok(LinkMode::Copy),
            _ => Err(()),
        }
    }
}

/// How [`copy_tree`] takes each regular file.
#[derive(Clone, Copy, Debug)]
pub enum Take<'a> {
    Clone,
    Copy,
    /// Hard links, except the tree-relative files in `copied` (those the pour will rewrite),
    /// which are copied; their own hard links among themselves are kept.
    Link {
        copied: &'a HashSet<PathBuf>,
    },
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

/// Whether a file in `from_dir` can be hard-linked into `to_dir` (one filesystem, and one that
/// has hard links).
pub fn can_link(from_dir: &Path, to_dir: &Path) -> bool {
    let Ok(src) = tempfile::NamedTempFile::new_in(from_dir) else {
        return false;
    };
    let Ok(dst) = tempfile::Builder::new()
        .prefix("link-probe")
        .tempdir_in(to_dir)
    else {
        return false;
    };
    std::fs::hard_link(src.path(), dst.path().join("probe")).is_ok()
}

/// Whether `take` can make files from `from_dir` in `to_dir`.
pub fn can_take(take: Take<'_>, from_dir: &Path, to_dir: &Path) -> bool {
    match take {
        Take::Clone => can_clone(from_dir, to_dir),
        Take::Link { .. } => can_link(from_dir, to_dir),
        Take::Copy => true,
    }
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

/// Makes the tree `from` in `to` (created, or there already and empty): directories and fifos
/// made anew, regular files taken as `take` says (the first that cannot be is
/// [`TreeError::Unsupported`]), symlinks hard-linked where files are and made anew otherwise, hard links within the tree kept as hard links, modes and mtimes
/// kept, and `user.*` extended attributes when `xattrs`. Nothing is followed: both trees are
/// pkg's own. Directories are shared out between a few threads (this is metadata work for the
/// filesystem, which spreads over the cores).
///
/// A clone or a copy is made under this process's umask, as a cold install is; a hard link
/// shares the stored file's mode, so the caller links only a tree stored under the same umask.
///
/// `names`, when given, are the only inodes with more than one name within `from` (for a tree
/// whose link counts also count kegs' links to it); without it a link count above one says so.
///
/// `check`, when given, meets every entry of `from` (the tree itself first) with the `lstat`
/// the copy reads it by, before it is copied: the copy stops at the first one found changed,
/// and the caller asks the checker whether every line was met.
pub fn copy_tree(
    from: &Path,
    to: &Path,
    xattrs: bool,
    take: Take<'_>,
    names: Option<&HashSet<u64>>,
    check: Option<&Checker<'_>>,
) -> Result<Cloned, TreeError> {
    let empty = std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_none());
    let root = std::fs::symlink_metadata(from).map_err(io_err(from))?;
    if let Some(check) = check
        && !check.meet(Path::new(""), &Seen::from(&root), &mut String::new())
    {
        return Err(changed(from));
    }
    let root_mode = root.mode() & 0o7777;
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
        root: from.to_owned(),
        first_links: Mutex::new(HashMap::new()),
        names,
        check,
        xattrs,
        umask: crate::platform::process_umask(),
        take,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let first = vec![(from.to_owned(), to.to_owned())];
    // A copy thread that panics fails the copy with an error, as before the walk was spread.
    let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::spread::spread(first, threads, Done::default, |done, (src, dst), found| {
            walk.dir(&src, &dst, done, found)
        })
    }))
    .unwrap_or_else(|_| Err(panicked(to)))?;
    let mut cloned = Cloned::default();
    let mut dirs = vec![(to.to_owned(), root_mode)];
    let mut later = Vec::new();
    for done in results {
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

fn panicked(to: &Path) -> TreeError {
    io_err(to)(io::Error::other("a tree copy thread panicked"))
}

/// The copy stopped at `path`, not what the tree's manifest lists (the checker names it).
fn changed(path: &Path) -> TreeError {
    io_err(path)(io::Error::other("changed since the tree was stored"))
}

/// What the threads of one [`copy_tree`] share (its directories are `spread` between them).
struct Walk<'a> {
    /// The tree being copied (for tree-relative paths).
    root: PathBuf,
    /// The first name given to each hard-linked inode that is cloned or copied.
    first_links: Mutex<HashMap<(u64, u64), PathBuf>>,
    /// The inodes with more than one name in the tree, when link counts cannot say it.
    names: Option<&'a HashSet<u64>>,
    /// Meets each entry against the tree's manifest before it is copied.
    check: Option<&'a Checker<'a>>,
    xattrs: bool,
    umask: u32,
    take: Take<'a>,
}

/// A directory being copied and its copy, open for the `*at` calls made by entry name; the
/// directory being copied is read through the same descriptor.
struct Dirs {
    src: std::os::fd::OwnedFd,
    dst: std::os::fd::OwnedFd,
}

impl Dirs {
    fn open(src: &Path, dst: &Path) -> Result<Dirs, TreeError> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = |dir: &Path, flags| {
            rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| io_err(dir)(e.into()))
        };
        Ok(Dirs {
            src: open(src, flags | OFlags::RDONLY)?,
            dst: open(dst, flags | OFlags::PATH)?,
        })
    }

    /// The `lstat` of `name` in the directory being copied.
    fn stat(&self, name: &std::ffi::CStr) -> io::Result<Seen> {
        let st = rustix::fs::statat(&self.src, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(Seen::from(&st))
    }

    /// `name` in the copy as a hard link to `name` in the tree (never following a link).
    fn link(&self, name: &std::ffi::OsStr) -> io::Result<()> {
        rustix::fs::linkat(
            &self.src,
            name,
            &self.dst,
            name,
            rustix::fs::AtFlags::empty(),
        )
        .map_err(io::Error::from)
    }
}

/// What one thread made.
#[derive(Default)]
struct Done {
    cloned: Cloned,
    dirs: Vec<(PathBuf, u32)>,
    /// (first name, second name) of hard links, made at the end.
    links: Vec<(PathBuf, PathBuf)>,
}

impl Walk<'_> {
    /// `path` (beneath the tree) relative to it: by its bytes, as every path here is the tree's
    /// joined with names (`Path::strip_prefix` compares component by component, per entry).
    fn rel<'p>(&self, path: &'p Path) -> &'p Path {
        use std::os::unix::ffi::OsStrExt as _;
        let root = self.root.as_os_str().as_bytes();
        match path.as_os_str().as_bytes().strip_prefix(root) {
            Some(rest) if root.is_empty() || rest.first() == Some(&b'/') || rest.is_empty() => {
                let rest = rest.strip_prefix(b"/").unwrap_or(rest);
                Path::new(std::ffi::OsStr::from_bytes(rest))
            }
            _ => path.strip_prefix(&self.root).unwrap_or(path),
        }
    }

    /// Copies the entries of one directory; its subdirectories go onto `found`.
    fn dir(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
        done: &mut Done,
        found: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<(), TreeError> {
        use rustix::fs::FileType;
        use std::os::unix::ffi::OsStrExt as _;
        // One descriptor of the directory is read and named beside (`getdents64` on it, then
        // `fstatat` and `linkat` by entry name): the kernel looks up one component, not the
        // whole path from the root again for every entry, nor for a second opening.
        let dirs = Dirs::open(src_dir, dst_dir)?;
        let rel_dir = self.rel(src_dir);
        let mut line = String::new();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
        let mut entries = rustix::fs::RawDir::new(&dirs.src, &mut buf);
        while let Some(e) = entries.next() {
            let e = e.map_err(|e| io_err(src_dir)(e.into()))?;
            let c_name = e.file_name();
            if matches!(c_name.to_bytes(), b"." | b"..") {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(c_name.to_bytes());
            // Whole paths only where one is needed (a directory's, an error's): most entries
            // are made by name beside the two descriptors.
            let (src, dst) = (|| src_dir.join(name), || dst_dir.join(name));
            let stat = || dirs.stat(c_name).map_err(|e| io_err(&src())(e));
            // One `lstat` for the check and the copy.
            let checked = match self.check {
                Some(check) => {
                    let seen = stat()?;
                    if !check.meet_in((rel_dir, name), &seen, &mut line) {
                        return Err(changed(&src()));
                    }
                    Some(seen)
                }
                None => None,
            };
            let seen = || match checked {
                Some(seen) => Ok(seen),
                None => stat(),
            };
            // The kind the `lstat` saw, else the directory's (a filesystem that does not say
            // it there is asked).
            let kind = match (checked, e.file_type()) {
                (Some(seen), _) => seen.kind,
                (None, FileType::Unknown) => seen()?.kind,
                (None, kind) => kind,
            };
            done.cloned.entries += 1;
            match kind {
                FileType::Directory => {
                    let (src, dst) = (src(), dst());
                    self.subdir((&dirs, name), seen()?.mode, (&src, &dst), done)?;
                    found.push((src, dst));
                }
                // Linked where files are: a symlink is never written through (it can only be
                // replaced, which leaves the stored one alone), and a link costs the kernel
                // less than a new symlink and reads nothing first. linkat(2) never follows the
                // link it names.
                FileType::Symlink if matches!(self.take, Take::Link { .. }) => {
                    dirs.link(name).map_err(|e| io_err(&dst())(e))?;
                }
                FileType::Symlink => self.symlink((&dirs, name), &seen()?, (&src, &dst), done)?,
                FileType::Fifo => {
                    let mode = seen()?.mode & 0o777;
                    rustix::fs::mknodat(
                        &dirs.dst,
                        name,
                        FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(mode),
                        0,
                    )
                    .map_err(|e| io_err(&dst())(e.into()))?;
                }
                FileType::RegularFile => {
                    self.file((&src, &dst), (&dirs, name), checked.as_ref(), done)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes the directory `name` (of `mode`) in the copy; `src` and `dst` are its paths.
    fn subdir(
        &self,
        (dirs, name): (&Dirs, &std::ffi::OsStr),
        mode: u32,
        (src, dst): (&Path, &Path),
        done: &mut Done,
    ) -> Result<(), TreeError> {
        // A directory its owner can fill (nearly all) is made with its mode at once, under this
        // process's umask as a cold install's are; any other gets it last.
        let now = mode & !self.umask;
        let at_once = now & 0o700 == 0o700 && now & 0o7000 == 0;
        let made = if at_once { now } else { 0o700 };
        rustix::fs::mkdirat(&dirs.dst, name, rustix::fs::Mode::from_raw_mode(made))
            .map_err(|e| io_err(dst)(e.into()))?;
        if self.xattrs {
            copy_xattrs(src, dst);
        }
        if !at_once {
            done.dirs.push((dst.to_owned(), mode));
        }
        Ok(())
    }

    /// Makes the symlink `name` anew in the copy (`seen`: its `lstat`), or as a second name of
    /// one the copy made: a symlink with hard links of its own (`ln sym other`, as GNU tar
    /// extracts it) keeps them.
    fn symlink(
        &self,
        (dirs, name): (&Dirs, &std::ffi::OsStr),
        seen: &Seen,
        paths: (&dyn Fn() -> PathBuf, &dyn Fn() -> PathBuf),
        done: &mut Done,
    ) -> Result<(), TreeError> {
        if seen.nlink > 1 && self.second_name(seen, &paths.1(), done) {
            return Ok(());
        }
        let target = rustix::fs::readlinkat(&dirs.src, name, Vec::new())
            .map_err(|e| io_err(&paths.0())(e.into()))?;
        rustix::fs::symlinkat(target.as_c_str(), &dirs.dst, name)
            .map_err(|e| io_err(&paths.1())(e.into()))
    }

    /// Whether `dst` is a second name of an inode (hard-linked within the tree) whose first
    /// name this copy already gave: then it is linked to that name at the end.
    fn second_name(&self, seen: &Seen, dst: &Path, done: &mut Done) -> bool {
        if self.names.is_some_and(|names| !names.contains(&seen.ino)) {
            return false;
        }
        let Ok(mut first) = self.first_links.lock() else {
            return false;
        };
        match first.entry((seen.dev, seen.ino)) {
            std::collections::hash_map::Entry::Occupied(o) => {
                done.links.push((o.get().clone(), dst.to_owned()));
                true
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(dst.to_owned());
                false
            }
        }
    }

    /// Takes the regular file `name` as the mode says; `paths` make its whole source and
    /// destination paths where one is needed (a link needs neither). `checked`: its `lstat`,
    /// met against the tree's manifest, when the copy checks the tree (no second `stat`).
    fn file(
        &self,
        paths: (&dyn Fn() -> PathBuf, &dyn Fn() -> PathBuf),
        (dirs, name): (&Dirs, &std::ffi::OsStr),
        checked: Option<&Seen>,
        done: &mut Done,
    ) -> Result<(), TreeError> {
        let copy_this = match self.take {
            Take::Link { copied } => {
                // (Hashing a path is not free: most trees copy nothing.)
                let copy = !copied.is_empty() && copied.contains(self.rel(&paths.0()));
                if !copy {
                    // The stored inode itself: its mode, mtime and attributes come with it.
                    // (Its bytes are counted by the caller, from the tree's manifest.)
                    return match dirs.link(name) {
                        Ok(()) => Ok(()),
                        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                            Err(unsupported(LinkMode::Hardlink, &paths.0(), &paths.1()))
                        }
                        Err(e) => Err(io_err(&paths.1())(e)),
                    };
                }
                true
            }
            Take::Copy => true,
            Take::Clone => false,
        };
        let (src, dst) = (&paths.0(), &paths.1());
        // Both opened by name beside their directories' descriptors (the kernel looks up one
        // component, not the whole path again), neither through a link.
        use rustix::fs::{Mode, OFlags};
        let from = rustix::fs::openat(
            &dirs.src,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let from = File::from(from.map_err(|e| io_err(src)(e.into()))?);
        let seen = match checked {
            Some(seen) => *seen,
            None => Seen::from(&rustix::fs::fstat(&from).map_err(|e| io_err(src)(e.into()))?),
        };
        if seen.nlink > 1 && self.second_name(&seen, dst, done) {
            return Ok(());
        }
        let mode = seen.mode;
        let to = rustix::fs::openat(
            &dirs.dst,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        );
        let mut to = File::from(to.map_err(|e| io_err(dst)(e.into()))?);
        if copy_this {
            // copy_file_range(2) underneath: the kernel moves the bytes.
            let mut from = &from;
            io::copy(&mut from, &mut to).map_err(io_err(dst))?;
        } else if rustix::fs::ioctl_ficlone(&to, &from).is_err() {
            drop(to);
            let _ = std::fs::remove_file(dst);
            return Err(unsupported(LinkMode::Clone, src, dst));
        }
        // The file was created under this process's umask, as a cold install creates it; bits
        // past 0o777 (none in a tree pkg unpacked) go the same way.
        if mode & !0o777 != 0 {
            to.set_permissions(std::fs::Permissions::from_mode(mode & !self.umask))
                .map_err(io_err(dst))?;
        }
        let (secs, nanos) = seen.mtime;
        let _ = rustix::fs::futimens(
            &to,
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: secs,
                    tv_nsec: nanos as _,
                },
            },
        );
        if self.xattrs {
            copy_xattrs(src, dst);
        }
        done.cloned.bytes += seen.size;
        Ok(())
    }
}

fn unsupported(mode: LinkMode, from: &Path, to: &Path) -> TreeError {
    TreeError::Unsupported {
        mode,
        from: from.to_owned(),
        to: to.to_owned(),
    }
}

/// Whether anything under `dir` has a `user.*` extended attribute (checked once, when a tree is
/// stored, so materializing one without any costs no xattr calls).
pub fn has_xattrs(dir: &Path) -> bool {
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
