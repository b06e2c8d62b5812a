//! Owns safe extraction of layer tarballs into a staging directory: an archive is restored as GNU
//! tar restores it for a normal user, and nothing it says can make pkg write, link, change or
//! delete anything outside that directory.
//!
//! Where each entry's data starts and ends is decided as GNU tar decides it, before the `tar`
//! crate parses a header (`frame.rs`: no data after a header-only entry, signed checksums, `X`
//! headers, pax headers that readers could read apart refused).
//!
//! Every entry is written by this module itself (never `tar::Entry::unpack*`), through
//! [`beneath::Root`], so the containment rule is enforced in one place:
//!
//! - **A link's target is data.** Symlinks are created with the target the archive gives —
//!   absolute, climbing or dangling — as GNU tar, bsdtar, umoci and containerd do. No path is ever
//!   resolved through a symlink: parents are opened beneath the root with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or a no-follow walk), the last component is
//!   created with `O_EXCL`/`O_NOFOLLOW` on that directory's descriptor, and modes, times and
//!   xattrs are set on the new file's own descriptor. A later entry whose path crosses a symlink
//!   is refused with an error naming the link.
//! - Names: absolute paths, `..` components, NUL bytes and empty names are refused; `./` and `.`
//!   components are dropped. GNU long names and links and pax `path`/`linkpath` are merged by the
//!   `tar` crate; a pax sparse file's `GNU.sparse.name` is its name.
//! - Hard links: the target is checked like an entry name and must already be in the root, a file
//!   or a symlink (a hard link to a symlink links the symlink itself: `linkat` never follows).
//!   Where the filesystem has no hard links, the file is copied (counted against the byte limit).
//! - An entry that replaces an existing path removes it first (a symlink is removed, never
//!   followed; a directory by descriptor).
//! - Sparse files (old GNU `S` entries and pax formats 0.0, 0.1 and 1.0): the real size and bytes,
//!   holes kept as holes; a map that does not fit the entry is an error.
//! - Fifos are created. Device nodes and unknown entry types are refused with an error naming the
//!   entry and its type (pkg never makes device files; a package has no use for them). macOS
//!   AppleDouble files (`._NAME` holding the AppleDouble magic) are skipped: they carry extended
//!   attributes and resource forks, not package content.
//! - Modes: the archive's permission bits, masked by the umask (as tar does for a normal user);
//!   setuid, setgid and sticky are dropped, nothing is chowned. Directories keep their bits plus
//!   `u+rwx`, so pkg can always fill, upgrade and remove a keg. Regular files get the header's
//!   mtime (best effort).
//! - Extended attributes: `user.*` from pax `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` records are
//!   set on files and directories; where the filesystem refuses them they are counted in
//!   [`Stats::xattrs_skipped`] for the caller to mention once. Other namespaces are ignored.
//! - OCI whiteouts: `.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory, both only
//!   for what earlier layers (earlier calls) put there. Other `.wh..wh.*` markers are ignored.
//! - Limits: the entry count and the bytes written (a sparse file's real size) are capped across
//!   all layers of one keg (`Stats` accumulates); the errors name the limit and the variable that
//!   raises it.
//!
//! Speed (this is the inner loop of an install; see docs/performance.md): the last parent
//! directory opened is kept, so a directory's entries cost one `openat2` between them, not one per
//! entry; creation is tried first and an existing path is inspected only when it is in the way.
//! No file is synced: the keg gets one directory sync when it is published.

pub mod beneath;
mod error;
mod frame;
mod limits;
mod pax;
mod place;
mod pool;
mod sparse;
mod write;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use tar::EntryType;

use beneath::{Root, WalkError};

pub use error::{Op, Reason, UnpackError};
#[cfg(test)]
use limits::{LayerCaps, MAX_BYTES_VAR};
pub use limits::{Limits, Stats};
use pax::{Pax, read_pax};
pub use place::{PlaceError, place_file};

/// Unpack one uncompressed tar stream into `root` (an existing staging dir on the target
/// filesystem). Layers are unpacked in order into the same root with the same `stats`; later
/// layers replace earlier files, and their whiteouts remove them.
pub fn unpack_tar<R: Read>(
    reader: R,
    root: &Path,
    limits: &Limits,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    stats.scanned = true;
    let writers = pool::count(limits.writers);
    if writers == 0 {
        return unpack_entries(reader, root, limits, stats, None);
    }
    std::thread::scope(|scope| {
        let writers = pool::start(scope, writers);
        let unpacked = unpack_entries(reader, root, limits, stats, Some(&writers));
        // Every chunk is written before the layer counts as unpacked; the first write that
        // failed is the error when the entries themselves went well.
        let written = writers.finish();
        unpacked.and(written)
    })
}

fn unpack_entries<R: Read>(
    reader: R,
    root: &Path,
    limits: &Limits,
    stats: &mut Stats,
    writers: Option<&pool::Writers<'_>>,
) -> Result<(), UnpackError> {
    // Where each entry's data starts and ends is decided as GNU tar decides it (frame.rs).
    let mut archive = tar::Archive::new(frame::Framing::new(reader));
    let open_error = |source| UnpackError::Io {
        entry: "".into(),
        op: Op::Inspect,
        path: root.into(),
        source,
    };
    let mut layer = Layer {
        root: Root::open(root).map_err(open_error)?,
        root_path: root.to_owned(),
        limits,
        first: std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none()),
        created: HashSet::new(),
        umask: crate::platform::process_umask(),
        last: None,
        buf: vec![0; COPY_BUF],
        writers,
    };
    let entries = archive.entries().map_err(|source| UnpackError::Read {
        context: "".into(),
        source,
    })?;
    for entry in entries {
        if writers.is_some_and(pool::Writers::failed) {
            // A write failed: `finish` reports it.
            break;
        }
        let mut entry = entry.map_err(|source| UnpackError::Read {
            context: layer
                .last
                .as_deref()
                .map(|e| format!(" after `{e}`"))
                .unwrap_or_default()
                .into(),
            source,
        })?;
        apply_entry(&mut entry, &mut layer, stats)?;
    }
    Ok(())
}

const COPY_BUF: usize = 256 * 1024;

/// The first bytes of an AppleDouble file.
const APPLE_DOUBLE_MAGIC: [u8; 4] = [0x00, 0x05, 0x16, 0x07];

/// State for one layer (one call of [`unpack_tar`]).
struct Layer<'a> {
    root: Root,
    root_path: PathBuf,
    limits: &'a Limits,
    /// The root was empty when this layer started: everything in it is this layer's, so its
    /// whiteouts have nothing to remove and `created` is not kept (a first layer is most layers).
    first: bool,
    /// Root-relative paths this layer created, with their ancestors: whiteouts leave them alone.
    created: HashSet<PathBuf>,
    umask: u32,
    /// The last entry seen, for errors between entries.
    last: Option<String>,
    buf: Vec<u8>,
    /// Where file contents go when they are written by the pool (pool.rs), not this thread.
    writers: Option<&'a pool::Writers<'a>>,
}

fn record(first: bool, created: &mut HashSet<PathBuf>, rel: &Path) {
    if first {
        return;
    }
    for p in rel.ancestors() {
        if p.as_os_str().is_empty() || !created.insert(p.to_path_buf()) {
            break;
        }
    }
}

impl Layer<'_> {
    fn record(&mut self, rel: &Path) {
        record(self.first, &mut self.created, rel);
    }

    /// The directory holding `rel`, opened beneath the root without following anything; missing
    /// parents are created (0o777 before the umask, as tar does).
    fn parent(&mut self, entry: &str, rel: &Path) -> Result<BorrowedFd<'_>, UnpackError> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let (first, created) = (self.first, &mut self.created);
        let root_path = &self.root_path;
        self.root
            .dir(parent, Some(0o777), &mut |p| record(first, created, p))
            .map_err(|e| walk_error(root_path, entry, Op::CreateDir, e))
    }

    /// Creates `rel` with `make` in its parent directory; whatever is in the way (never
    /// followed) is removed first.
    fn create<T>(
        &mut self,
        entry: &str,
        rel: &Path,
        op: Op,
        make: impl Fn(BorrowedFd<'_>, &OsStr) -> rustix::io::Result<T>,
    ) -> Result<T, UnpackError> {
        let name = file_name(rel);
        let made = make(self.parent(entry, rel)?, name);
        let made = match made {
            Err(Errno::EXIST) => {
                self.remove(entry, rel)?;
                make(self.parent(entry, rel)?, name)
            }
            other => other,
        };
        let made = made.map_err(|e| io_error(entry, op, &self.root_path.join(rel), e.into()))?;
        self.record(rel);
        Ok(made)
    }

    /// Removes whatever is at `rel` (not followed; a directory with its contents).
    fn remove(&mut self, entry: &str, rel: &Path) -> Result<(), UnpackError> {
        let root_path = &self.root_path;
        self.root
            .remove(rel)
            .map_err(|e| walk_error(root_path, entry, Op::Remove, e))
    }
}

fn file_name(rel: &Path) -> &OsStr {
    rel.file_name().unwrap_or(OsStr::new("."))
}

fn io_error(entry: &str, op: Op, path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        entry: entry.into(),
        op,
        path: path.into(),
        source,
    }
}

fn walk_error(root: &Path, entry: &str, op: Op, e: WalkError) -> UnpackError {
    let shown = |p: &Path| p.display().to_string().into();
    match e {
        WalkError::Symlink(p) => UnpackError::ThroughSymlink {
            entry: entry.into(),
            symlink: shown(&p),
        },
        WalkError::NotADirectory(p) | WalkError::NotAFile(p) => UnpackError::NotADirectory {
            entry: entry.into(),
            parent: shown(&p),
        },
        WalkError::Missing(p) => io_error(
            entry,
            op,
            &root.join(p),
            io::Error::from(io::ErrorKind::NotFound),
        ),
        WalkError::Io(p, source) => io_error(entry, op, &root.join(p), source),
    }
}

/// An entry's name as shown in errors: lossy UTF-8, control characters (NUL included) escaped.
fn display_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in String::from_utf8_lossy(raw).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks an archive path and returns it relative to the root, `./` and `.` components dropped;
/// `None` for the root itself (`./`). Used for entry names and hard link targets.
fn sanitize_path(raw: &[u8]) -> Result<Option<PathBuf>, Reason> {
    if raw.is_empty() {
        return Err(Reason::Empty);
    }
    if raw.contains(&0) {
        return Err(Reason::Nul);
    }
    if raw.starts_with(b"/") {
        return Err(Reason::Absolute);
    }
    let mut out = PathBuf::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(Reason::DotDot),
            name => out.push(OsStr::from_bytes(name)),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Applies one entry of the archive to the root, after the limit and name checks.
fn apply_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &mut Layer<'_>,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let mut raw = entry.path_bytes().into_owned();
    let mut name = display_name(&raw);
    layer.last = Some(name.clone());

    stats.entries += 1;
    if stats.entries > layer.limits.max_entries {
        return Err(UnpackError::TooManyEntries {
            entry: name.into(),
            limit: layer.limits.max_entries,
        });
    }
    if let Some(caps) = layer.limits.layer
        && stats.entries > caps.entries_until
    {
        return Err(UnpackError::TooManyEntriesForSize {
            entry: name.into(),
            limit: caps.entries_until,
            compressed: caps.compressed,
        });
    }

    let kind = entry.header().entry_type();
    // Headers the tar crate merges into the next entry reach here only in pre-POSIX archives;
    // `V` is a GNU volume label, not content.
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) || kind.as_byte() == b'V'
    {
        return Ok(());
    }

    let pax = read_pax(entry, &name)?;
    if let Some(real) = pax.sparse.as_ref().and_then(|s| s.name.clone()) {
        raw = real;
        name = display_name(&raw);
        layer.last = Some(name.clone());
    }

    let rel = sanitize_path(&raw).map_err(|reason| UnpackError::Path {
        entry: name.as_str().into(),
        reason,
    })?;
    let Some(rel) = rel else {
        // `./`: the root itself, which exists.
        return if kind == EntryType::Directory {
            Ok(())
        } else {
            Err(UnpackError::Path {
                entry: name.into(),
                reason: Reason::Root,
            })
        };
    };

    if let Some(hidden) = rel
        .file_name()
        .and_then(|n| n.as_bytes().strip_prefix(b".wh."))
    {
        let hidden = hidden.to_vec();
        return whiteout(layer, &name, &rel, &hidden);
    }

    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    match kind {
        // Pre-POSIX archives mark directories with a trailing slash on a regular entry.
        EntryType::Regular if raw.ends_with(b"/") => {
            make_dir(layer, &name, &rel, mode, &pax, stats)
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            write::file(entry, layer, &name, &rel, mode, &pax, stats)
        }
        EntryType::Directory => make_dir(layer, &name, &rel, mode, &pax, stats),
        EntryType::Symlink => {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            make_symlink(layer, &name, &rel, target.as_deref().unwrap_or_default())
        }
        EntryType::Link => {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            write::hardlink(
                layer,
                &name,
                &rel,
                target.as_deref().unwrap_or_default(),
                stats,
            )
        }
        EntryType::Fifo => layer.create(&name, &rel, Op::Create, |dir, n| {
            rustix::fs::mknodat(dir, n, FileType::Fifo, Mode::from_raw_mode(mode), 0)
        }),
        EntryType::Char | EntryType::Block => Err(UnpackError::Device {
            entry: name.into(),
            kind: if kind == EntryType::Char {
                "character device"
            } else {
                "block device"
            },
        }),
        other => Err(UnpackError::UnknownType {
            entry: name.into(),
            code: other.as_byte(),
        }),
    }
}

/// A directory's mode: the archive's bits plus `u+rwx` (pkg must be able to fill and remove it).
fn dir_mode(mode: u32) -> u32 {
    mode | 0o700
}

fn make_dir(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    mode: u32,
    pax: &Pax,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let mode = dir_mode(mode);
    let leaf = file_name(rel);
    let path = layer.root_path.join(rel);
    let dir = layer.parent(name, rel)?;
    match rustix::fs::mkdirat(dir, leaf, Mode::from_raw_mode(mode)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            let is_dir = rustix::fs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                .map_err(|e| io_error(name, Op::Inspect, &path, e.into()))?;
            if is_dir {
                // Already there (made as a parent, or a duplicate): the archive's mode wins.
                let umask = layer.umask;
                layer
                    .root
                    .chmod(rel, mode & !umask)
                    .map_err(|e| walk_error(&layer.root_path, name, Op::SetPermissions, e))?;
            } else {
                layer.remove(name, rel)?;
                let dir = layer.parent(name, rel)?;
                rustix::fs::mkdirat(dir, leaf, Mode::from_raw_mode(mode))
                    .map_err(|e| io_error(name, Op::CreateDir, &path, e.into()))?;
            }
        }
        Err(e) => return Err(io_error(name, Op::CreateDir, &path, e.into())),
    }
    layer.record(rel);
    if !pax.xattrs.is_empty() {
        let fd = (layer.root.open_any(rel))
            .map_err(|e| walk_error(&layer.root_path, name, Op::Inspect, e))?;
        set_xattrs(&fd, pax, stats);
    }
    Ok(())
}

/// Sets the entry's `user.*` attributes on `fd`; refusals are counted, never fatal.
fn set_xattrs(fd: &impl AsFd, pax: &Pax, stats: &mut Stats) {
    for (key, value) in &pax.xattrs {
        let key = OsStr::from_bytes(key);
        if rustix::fs::fsetxattr(fd, key, value, rustix::fs::XattrFlags::empty()).is_err() {
            stats.xattrs_skipped += 1;
        }
    }
}

fn make_symlink(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    target: &[u8],
) -> Result<(), UnpackError> {
    let refuse = |reason| UnpackError::LinkTarget {
        entry: name.into(),
        target: display_name(target).into(),
        reason,
    };
    if target.is_empty() {
        return Err(refuse(Reason::Empty));
    }
    if target.contains(&0) {
        return Err(refuse(Reason::Nul));
    }
    // The target is data: created as the archive says, never resolved.
    let target = OsStr::from_bytes(target);
    layer.create(name, rel, Op::Symlink, |dir, n| {
        rustix::fs::symlinkat(target, dir, n)
    })
}

/// `.wh.NAME` removes NAME, `.wh..wh..opq` empties the directory; both spare what this layer made.
fn whiteout(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    hidden: &[u8],
) -> Result<(), UnpackError> {
    let dir_rel = rel.parent().unwrap_or(Path::new("")).to_owned();
    if hidden == b".wh..opq" {
        layer.parent(name, rel)?;
        if layer.first {
            return Ok(());
        }
        layer.record(&dir_rel);
        let children = (layer.root.list(&dir_rel))
            .map_err(|e| walk_error(&layer.root_path, name, Op::List, e))?;
        for (child, _) in children {
            let child_rel = dir_rel.join(child);
            if !layer.created.contains(&child_rel) {
                layer.remove(name, &child_rel)?;
            }
        }
        return Ok(());
    }
    if hidden.starts_with(b".wh.") {
        // Other aufs bookkeeping (`.wh..wh.plnk`, …): nothing to apply.
        return Ok(());
    }
    if hidden.is_empty() || hidden == b"." || hidden == b".." {
        return Err(UnpackError::Path {
            entry: name.into(),
            reason: Reason::EmptyWhiteout,
        });
    }
    if layer.first {
        return Ok(());
    }
    let target_rel = dir_rel.join(OsStr::from_bytes(hidden));
    if layer.created.contains(&target_rel) {
        return Ok(());
    }
    match layer.root.stat(&target_rel) {
        // A parent that is missing, a file or a link: there is nothing beneath it to remove.
        Ok(None) | Err(WalkError::Missing(_) | WalkError::NotADirectory(_)) => Ok(()),
        Ok(Some(_)) => layer.remove(name, &target_rel),
        Err(e) => Err(walk_error(&layer.root_path, name, Op::Inspect, e)),
    }
}

#[cfg(test)]
mod tests;
