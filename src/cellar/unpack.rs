//! Owns safe extraction of layer tarballs into a staging directory: nothing an archive says can
//! make pkg write, link or delete outside that directory.
//!
//! Every entry is written by this module itself (never `tar::Entry::unpack*`), so each rule below
//! is enforced in one place:
//!
//! - Names: absolute paths, `..` components, NUL bytes and empty names are refused; `./` and `.`
//!   components are dropped. GNU long names and pax `path`/`linkpath` are merged by the `tar`
//!   crate (`entry.path_bytes()`); other pax records (`SCHILY.xattr.*`, `LIBARCHIVE.xattr.*`, …)
//!   are ignored, so no xattrs are ever set.
//! - Symlinks: never written through. Before anything is created, each parent component inside
//!   the root is checked with `symlink_metadata`; a symlink (made by an earlier entry or layer)
//!   makes the entry an error. Missing parents are created as plain directories.
//! - Symlink targets must stay inside the root, resolved lexically from the link's own directory:
//!   no absolute targets, no climbing above the root, and `..` only at the start of the target
//!   (`a/b/../c` is refused: with `a/b` a symlink it could resolve anywhere, and pkg does not
//!   follow links to find out).
//! - Hard links: the target is checked like an entry name, its parents like an entry's, and it
//!   must already be a regular file (not a symlink) inside the root. Created with
//!   `std::fs::hard_link`, or copied (counted against the byte limit) when that fails.
//! - An entry that replaces an existing path removes it first (a symlink is removed, never
//!   followed); files are created with `create_new`, which refuses to open through a link (the
//!   removal happens when that creation finds something in the way).
//! - Device nodes, fifos, unknown entry types and unmerged metadata headers are skipped: counted
//!   as entries, not created. macOS AppleDouble files (`._NAME` holding the AppleDouble magic) are
//!   skipped too: they carry extended attributes and resource forks, not package content.
//! - Modes: regular files become 0o755 if the header has any execute bit, else 0o644 (setuid,
//!   setgid and sticky dropped); directories are 0o755; nothing is chowned. Regular files get the
//!   header's mtime (best effort); directories and symlinks do not.
//! - OCI whiteouts: `.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory, both only
//!   for what earlier layers (earlier calls) put there. Other `.wh..wh.*` markers are ignored.
//! - Limits: the entry count and the bytes written are capped across all layers of one keg
//!   (`Stats` accumulates); the errors name the limit and the variable that raises it.
//!
//! Speed (this is the inner loop of an install; see docs/performance.md): directories already
//! checked or created by this call are remembered, so a parent is inspected once, not once per
//! entry; the memory is dropped whenever a directory is removed, as that is the only way a
//! checked directory could stop being one. Creation is tried first and an existing path is
//! inspected only when it is in the way. `chmod` after creation is skipped when the umask cannot
//! have changed the mode. No file is synced: the keg gets one directory sync when it is published.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

/// Raises [`Limits::max_bytes`] (see [`Limits::from_env`]).
pub const MAX_BYTES_VAR: &str = "PKG_MAX_UNPACK_BYTES";
/// Raises [`Limits::max_entries`] (see [`Limits::from_env`]).
pub const MAX_ENTRIES_VAR: &str = "PKG_MAX_UNPACK_ENTRIES";

/// Caps on what the layers of one keg may unpack to (decompression and tar bombs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes written to files, across all layers.
    pub max_bytes: u64,
    /// Total tar entries, across all layers.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 8 GiB and 1,000,000 entries.
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `PKG_MAX_UNPACK_BYTES` and `PKG_MAX_UNPACK_ENTRIES` when set
    /// (whole numbers; empty means unset).
    pub fn from_env() -> Result<Limits, UnpackError> {
        let mut limits = Limits::default();
        if let Some(n) = parse_limit(MAX_BYTES_VAR, std::env::var_os(MAX_BYTES_VAR))? {
            limits.max_bytes = n;
        }
        if let Some(n) = parse_limit(MAX_ENTRIES_VAR, std::env::var_os(MAX_ENTRIES_VAR))? {
            limits.max_entries = n;
        }
        Ok(limits)
    }
}

fn parse_limit(var: &'static str, value: Option<OsString>) -> Result<Option<u64>, UnpackError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    value
        .to_str()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| UnpackError::Limit {
            var,
            value: value.to_string_lossy().into(),
        })
}

/// What has been unpacked so far into one root; pass the same value for every layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries seen, skipped ones (devices, fifos, metadata) included.
    pub entries: u64,
    /// Bytes written to files.
    pub bytes: u64,
}

/// Why unpacking stopped. Text fields are boxed to keep the error small (it travels inside other
/// errors by value).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The tar (or gzip) stream itself is unreadable; `context` says where.
    #[error("reading the layer tarball{context}: {source}")]
    Read {
        /// Empty, or " in `ENTRY`" / " after `ENTRY`".
        context: Box<str>,
        #[source]
        source: io::Error,
    },
    /// A bad entry name (absolute, `..`, NUL, empty, …).
    #[error("tar entry `{entry}` is refused: its name {reason}")]
    Path { entry: Box<str>, reason: Reason },
    /// A symlink or hard link whose target is not allowed.
    #[error("tar entry `{entry}` is refused: its link target `{target}` {reason}")]
    LinkTarget {
        entry: Box<str>,
        target: Box<str>,
        reason: Reason,
    },
    #[error(
        "tar entry `{entry}` is refused: `{symlink}` is a symlink (made by an earlier entry), and pkg never writes through one"
    )]
    ThroughSymlink { entry: Box<str>, symlink: Box<str> },
    #[error("tar entry `{entry}` is refused: `{parent}` is not a directory")]
    NotADirectory { entry: Box<str>, parent: Box<str> },
    #[error(
        "tar entry `{entry}` is truncated: its header promises {expected} bytes, the stream held {actual}"
    )]
    Truncated {
        entry: Box<str>,
        expected: u64,
        actual: u64,
    },
    #[error(
        "tar entry `{entry}` would take the unpacked size past the limit of {limit} bytes; if the package really is that large, set PKG_MAX_UNPACK_BYTES to a larger number of bytes"
    )]
    TooManyBytes { entry: Box<str>, limit: u64 },
    #[error(
        "tar entry `{entry}` is past the limit of {limit} entries; if the package really has that many files, set PKG_MAX_UNPACK_ENTRIES to a larger number"
    )]
    TooManyEntries { entry: Box<str>, limit: u64 },
    /// The filesystem refused something pkg tried for `entry`.
    #[error("tar entry `{entry}`: cannot {op} {}: {source}", path.display())]
    Io {
        entry: Box<str>,
        op: Op,
        path: Box<Path>,
        #[source]
        source: io::Error,
    },
    /// `PKG_MAX_UNPACK_BYTES` / `PKG_MAX_UNPACK_ENTRIES` is not a number.
    #[error("{var}=`{value}` is not a whole number")]
    Limit { var: &'static str, value: Box<str> },
}

/// Why a name or link target in [`UnpackError::Path`] / [`UnpackError::LinkTarget`] was refused;
/// displayed as a predicate ("is an absolute path").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Empty,
    Nul,
    Absolute,
    DotDot,
    /// `./` on something other than a directory, or as a hard link target.
    Root,
    /// A symlink target climbing above the root.
    Escapes,
    /// A symlink target like `a/b/../c`.
    DotDotAfterName,
    /// A hard link to something not (yet) in the layers.
    Missing,
    /// A hard link to a directory, symlink, ….
    NotAFile,
    /// `.wh.` alone.
    EmptyWhiteout,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Empty => "is empty",
            Reason::Nul => "contains a NUL byte",
            Reason::Absolute => "is an absolute path",
            Reason::DotDot => "has a `..` component",
            Reason::Root => "is the root of the package",
            Reason::Escapes => "points outside the package",
            Reason::DotDotAfterName => {
                "has `..` after a directory name, which pkg cannot check without following links"
            }
            Reason::Missing => "does not exist in the layers so far",
            Reason::NotAFile => "is not a regular file",
            Reason::EmptyWhiteout => "is a whiteout that names no file",
        })
    }
}

/// The filesystem operation in an [`UnpackError::Io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Inspect,
    CreateDir,
    Create,
    Write,
    SetPermissions,
    Remove,
    Symlink,
    CopyTo,
    List,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Inspect => "inspect",
            Op::CreateDir => "create directory",
            Op::Create => "create",
            Op::Write => "write",
            Op::SetPermissions => "set permissions on",
            Op::Remove => "remove",
            Op::Symlink => "create symlink",
            Op::CopyTo => "copy to",
            Op::List => "list",
        })
    }
}

/// Unpack one uncompressed tar stream into `root` (an existing staging dir on the target
/// filesystem). Layers are unpacked in order into the same root with the same `stats`; later
/// layers replace earlier files, and their whiteouts remove them.
pub fn unpack_tar<R: Read>(
    reader: R,
    root: &Path,
    limits: &Limits,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut layer = Layer {
        root,
        limits,
        first: fs::read_dir(root).is_ok_and(|mut d| d.next().is_none()),
        created: HashSet::new(),
        dirs: HashSet::new(),
        exact_modes: umask().is_some_and(|m| m & 0o755 == 0),
        last: None,
        buf: vec![0; COPY_BUF],
    };
    let entries = archive.entries().map_err(|source| UnpackError::Read {
        context: "".into(),
        source,
    })?;
    for entry in entries {
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
    root: &'a Path,
    limits: &'a Limits,
    /// The root was empty when this layer started: everything in it is this layer's, so its
    /// whiteouts have nothing to remove and `created` is not kept (a first layer is most layers).
    first: bool,
    /// Root-relative paths this layer created, with their ancestors: whiteouts leave them alone.
    created: HashSet<PathBuf>,
    /// Root-relative directories known to be real directories (checked or created by this call),
    /// all their ancestors included. Cleared when [`remove_existing`] removes a directory.
    dirs: HashSet<PathBuf>,
    /// The umask leaves 0o755 and 0o644 alone, so creation already gives the exact mode.
    exact_modes: bool,
    /// The last entry seen, for errors between entries.
    last: Option<String>,
    buf: Vec<u8>,
}

/// The process umask, read from `/proc/self/status` (reading it with `umask(2)` would mean
/// changing it); `None` where that is not available, and then every mode is set explicitly.
fn umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

impl Layer<'_> {
    fn record(&mut self, rel: &Path) {
        if self.first {
            return;
        }
        for p in rel.ancestors() {
            if p.as_os_str().is_empty() || !self.created.insert(p.to_path_buf()) {
                break;
            }
        }
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

/// Checks a symlink target: relative, and lexically inside the root when resolved from the
/// directory holding `rel`, with `..` only at the start (see the module docs).
fn check_symlink_target(rel: &Path, target: &[u8]) -> Result<(), Reason> {
    if target.is_empty() {
        return Err(Reason::Empty);
    }
    if target.contains(&0) {
        return Err(Reason::Nul);
    }
    if target.starts_with(b"/") {
        return Err(Reason::Absolute);
    }
    // Directories between the root and the link.
    let mut depth = rel.components().count().saturating_sub(1);
    let mut descended = false;
    for component in target.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if descended => return Err(Reason::DotDotAfterName),
            b".." if depth == 0 => return Err(Reason::Escapes),
            b".." => depth -= 1,
            _ => descended = true,
        }
    }
    Ok(())
}

/// Whether the parents of an entry are looked at only, or created when missing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parents {
    Create,
    MustExist,
}

/// Walks the parent directories of `rel` inside the root without following anything: each must be
/// a real directory, never a symlink. With `Parents::Create`, missing ones are created (0o755) and
/// the result is always `true`; with `Parents::MustExist` a missing one gives `false`.
fn check_parents(
    layer: &mut Layer<'_>,
    entry: &str,
    rel: &Path,
    parents: Parents,
) -> Result<bool, UnpackError> {
    let Some(parent) = rel.parent() else {
        return Ok(true);
    };
    if parent.as_os_str().is_empty() || layer.dirs.contains(parent) {
        return Ok(true);
    }
    let mut dir = layer.root.to_path_buf();
    let mut dir_rel = PathBuf::new();
    for component in parent.components() {
        dir.push(component);
        dir_rel.push(component);
        if layer.dirs.contains(&dir_rel) {
            continue;
        }
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    entry: entry.into(),
                    symlink: dir_rel.display().to_string().into(),
                });
            }
            Ok(meta) if meta.is_dir() => {
                layer.dirs.insert(dir_rel.clone());
            }
            Ok(_) => {
                return Err(UnpackError::NotADirectory {
                    entry: entry.into(),
                    parent: dir_rel.display().to_string().into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if parents == Parents::MustExist {
                    return Ok(false);
                }
                create_dir(layer.exact_modes, entry, &dir)?;
                layer.record(&dir_rel);
                layer.dirs.insert(dir_rel.clone());
            }
            Err(source) => return Err(io_error(entry, Op::Inspect, &dir, source)),
        }
    }
    Ok(true)
}

fn io_error(entry: &str, op: Op, path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        entry: entry.into(),
        op,
        path: path.into(),
        source,
    }
}

/// Creates a directory whose parents were checked, mode 0o755 whatever the umask (`exact_modes`:
/// the umask is known to leave 0o755 alone).
fn create_dir(exact_modes: bool, entry: &str, path: &Path) -> Result<(), UnpackError> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(|e| io_error(entry, Op::CreateDir, path, e))?;
    if exact_modes {
        return Ok(());
    }
    fs::set_permissions(path, Permissions::from_mode(0o755))
        .map_err(|e| io_error(entry, Op::SetPermissions, path, e))
}

/// Removes whatever is at `path` (whose parents were checked) without following it: a symlink
/// is removed itself, a directory with its contents (which forgets every checked directory).
fn remove_existing(layer: &mut Layer<'_>, entry: &str, path: &Path) -> Result<(), UnpackError> {
    let removed = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(entry, Op::Inspect, path, e)),
        // `remove_dir_all` does not follow symlinks inside the tree either.
        Ok(meta) if meta.is_dir() => {
            layer.dirs.clear();
            fs::remove_dir_all(path)
        }
        Ok(_) => fs::remove_file(path),
    };
    removed.map_err(|e| io_error(entry, Op::Remove, path, e))
}

/// Files keep "executable or not" from the header, nothing more.
fn file_mode(header_mode: u32) -> u32 {
    if header_mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// Applies one entry of the archive to the root, after the limit and name checks.
fn apply_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &mut Layer<'_>,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let raw = entry.path_bytes().into_owned();
    let name = display_name(&raw);
    layer.last = Some(name.clone());

    stats.entries += 1;
    if stats.entries > layer.limits.max_entries {
        return Err(UnpackError::TooManyEntries {
            entry: name.into(),
            limit: layer.limits.max_entries,
        });
    }

    let kind = entry.header().entry_type();
    // Headers the tar crate merges into the next entry reach here only in pre-POSIX archives.
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) {
        return Ok(());
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

    match kind {
        // Pre-POSIX archives mark directories with a trailing slash on a regular entry.
        EntryType::Regular if raw.ends_with(b"/") => make_dir(layer, &name, &rel),
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            write_file(entry, layer, &name, &rel, stats)
        }
        EntryType::Directory => make_dir(layer, &name, &rel),
        EntryType::Symlink => {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            make_symlink(layer, &name, &rel, target.as_deref().unwrap_or_default())
        }
        EntryType::Link => {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            make_hardlink(
                layer,
                &name,
                &rel,
                target.as_deref().unwrap_or_default(),
                stats,
            )
        }
        // Device nodes, fifos and anything unknown: counted, not created.
        _ => Ok(()),
    }
}

fn make_dir(layer: &mut Layer<'_>, name: &str, rel: &Path) -> Result<(), UnpackError> {
    check_parents(layer, name, rel, Parents::Create)?;
    let path = layer.root.join(rel);
    match create_dir(layer.exact_modes, name, &path) {
        Ok(()) => {}
        Err(UnpackError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    fs::set_permissions(&path, Permissions::from_mode(0o755))
                        .map_err(|e| io_error(name, Op::SetPermissions, &path, e))?
                }
                Ok(_) => {
                    remove_existing(layer, name, &path)?;
                    create_dir(layer.exact_modes, name, &path)?;
                }
                Err(e) => return Err(io_error(name, Op::Inspect, &path, e)),
            }
        }
        Err(e) => return Err(e),
    }
    layer.record(rel);
    layer.dirs.insert(rel.to_path_buf());
    Ok(())
}

/// Reads into `buf` until it is full or the reader ends.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    // The logical size (pax `size` and sparse maps applied); the copy never goes past it.
    let size = entry.size();
    let read_error = |source| UnpackError::Read {
        context: format!(" in `{name}`").into(),
        source,
    };
    if stats
        .bytes
        .checked_add(size)
        .is_none_or(|total| total > layer.limits.max_bytes)
    {
        return Err(UnpackError::TooManyBytes {
            entry: name.into(),
            limit: layer.limits.max_bytes,
        });
    }

    let mut head = [0u8; APPLE_DOUBLE_MAGIC.len()];
    let mut head_len = 0;
    if rel
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"._"))
    {
        head_len = read_up_to(entry, &mut head[..size.min(4) as usize]).map_err(read_error)?;
        if head[..head_len] == APPLE_DOUBLE_MAGIC {
            return Ok(());
        }
    }

    check_parents(layer, name, rel, Parents::Create)?;
    let path = layer.root.join(rel);
    let mode = file_mode(entry.header().mode().unwrap_or(0o644));
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
    };
    let mut file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_existing(layer, name, &path)?;
            create()
        }
        other => other,
    }
    .map_err(|e| io_error(name, Op::Create, &path, e))?;
    layer.record(rel);
    let write_error = |e| io_error(name, Op::Write, &path, e);

    file.write_all(&head[..head_len]).map_err(write_error)?;
    let mut written = head_len as u64;
    while written < size {
        let want = (size - written).min(layer.buf.len() as u64) as usize;
        let n = match entry.read(&mut layer.buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        file.write_all(&layer.buf[..n]).map_err(write_error)?;
        written += n as u64;
    }
    stats.bytes += written;
    if written < size {
        return Err(UnpackError::Truncated {
            entry: name.into(),
            expected: size,
            actual: written,
        });
    }

    // The umask applied at creation; the mode is exactly 0o755 or 0o644.
    if !layer.exact_modes {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| io_error(name, Op::SetPermissions, &path, e))?;
    }
    set_mtime(&file, entry.header());
    Ok(())
}

/// Best effort: a missing or odd mtime leaves the file's own.
fn set_mtime(file: &File, header: &tar::Header) {
    if let Some(time) = header
        .mtime()
        .ok()
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
    {
        let _ = file.set_modified(time);
    }
}

fn make_symlink(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    target: &[u8],
) -> Result<(), UnpackError> {
    check_symlink_target(rel, target).map_err(|reason| UnpackError::LinkTarget {
        entry: name.into(),
        target: display_name(target).into(),
        reason,
    })?;
    check_parents(layer, name, rel, Parents::Create)?;
    let path = layer.root.join(rel);
    let create = || std::os::unix::fs::symlink(OsStr::from_bytes(target), &path);
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_existing(layer, name, &path)?;
            create()
        }
        other => other,
    }
    .map_err(|e| io_error(name, Op::Symlink, &path, e))?;
    layer.record(rel);
    Ok(())
}

fn make_hardlink(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    target: &[u8],
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let refuse = |reason| UnpackError::LinkTarget {
        entry: name.into(),
        target: display_name(target).into(),
        reason,
    };
    let target_rel = sanitize_path(target)
        .map_err(refuse)?
        .ok_or_else(|| refuse(Reason::Root))?;
    if !check_parents(layer, name, &target_rel, Parents::MustExist)? {
        return Err(refuse(Reason::Missing));
    }
    let target_path = layer.root.join(&target_rel);
    match fs::symlink_metadata(&target_path) {
        Ok(meta) if meta.file_type().is_file() => {}
        Ok(_) => return Err(refuse(Reason::NotAFile)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(refuse(Reason::Missing)),
        Err(e) => return Err(io_error(name, Op::Inspect, &target_path, e)),
    }
    if target_rel == rel {
        return Ok(());
    }

    check_parents(layer, name, rel, Parents::Create)?;
    let path = layer.root.join(rel);
    remove_existing(layer, name, &path)?;
    if fs::hard_link(&target_path, &path).is_err() {
        // Filesystems without hard links: a copy, which costs space like any file.
        let len = fs::symlink_metadata(&target_path)
            .map_err(|e| io_error(name, Op::Inspect, &target_path, e))?
            .len();
        if stats
            .bytes
            .checked_add(len)
            .is_none_or(|total| total > layer.limits.max_bytes)
        {
            return Err(UnpackError::TooManyBytes {
                entry: name.into(),
                limit: layer.limits.max_bytes,
            });
        }
        let copied =
            fs::copy(&target_path, &path).map_err(|e| io_error(name, Op::CopyTo, &path, e))?;
        stats.bytes += copied;
    }
    layer.record(rel);
    Ok(())
}

/// `.wh.NAME` removes NAME, `.wh..wh..opq` empties the directory; both spare what this layer made.
fn whiteout(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    hidden: &[u8],
) -> Result<(), UnpackError> {
    let dir_rel = rel.parent().unwrap_or(Path::new(""));
    if hidden == b".wh..opq" {
        check_parents(layer, name, rel, Parents::Create)?;
        if layer.first {
            return Ok(());
        }
        layer.record(dir_rel);
        let dir = layer.root.join(dir_rel);
        let children = fs::read_dir(&dir).map_err(|e| io_error(name, Op::List, &dir, e))?;
        for child in children {
            let child = child.map_err(|e| io_error(name, Op::List, &dir, e))?;
            if !layer.created.contains(&dir_rel.join(child.file_name())) {
                remove_existing(layer, name, &child.path())?;
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
    if layer.created.contains(&target_rel)
        || !check_parents(layer, name, &target_rel, Parents::MustExist)?
    {
        return Ok(());
    }
    let path = layer.root.join(target_rel);
    remove_existing(layer, name, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use tar::Header;

    /// Builds archives from raw headers, so hostile names go in unchecked.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn raw(&mut self, name: &[u8], kind: EntryType, link: &[u8], mode: u32, data: &[u8]) {
            let mut h = Header::new_gnu();
            {
                let old = h.as_old_mut();
                old.name[..name.len()].copy_from_slice(name);
                old.linkname[..link.len()].copy_from_slice(link);
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(1_600_000_000);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
        }

        fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Tar {
            self.raw(name.as_bytes(), EntryType::Regular, b"", mode, data);
            self
        }

        fn dir(&mut self, name: &str) -> &mut Tar {
            self.raw(name.as_bytes(), EntryType::Directory, b"", 0o755, b"");
            self
        }

        fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
            let (n, t) = (name.as_bytes(), target.as_bytes());
            self.raw(n, EntryType::Symlink, t, 0o777, b"");
            self
        }

        fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
            let (n, t) = (name.as_bytes(), target.as_bytes());
            self.raw(n, EntryType::Link, t, 0o644, b"");
            self
        }

        /// A GNU long-name header for the next entry.
        fn long_name(&mut self, name: &[u8]) -> &mut Tar {
            let mut data = name.to_vec();
            data.push(0);
            self.raw(b"././@LongLink", EntryType::GNULongName, b"", 0o644, &data);
            self
        }

        /// A pax extended header for the next entry.
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
            let mut data = Vec::new();
            for (key, value) in records {
                let body = key.len() + value.len() + 3; // ' ', '=', '\n'
                let mut len = body + 1;
                while len != body + len.to_string().len() {
                    len = body + len.to_string().len();
                }
                data.extend_from_slice(format!("{len} {key}=").as_bytes());
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            self.raw(b"PaxHeaders/x", EntryType::XHeader, b"", 0o644, &data);
            self
        }

        fn bytes(&mut self) -> Vec<u8> {
            let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
            b.into_inner().unwrap()
        }
    }

    /// A scratch dir holding `root` (the staging root) and room beside it to detect escapes.
    struct Scratch {
        dir: tempfile::TempDir,
        stats: Stats,
        limits: Limits,
    }

    impl Scratch {
        fn new() -> Scratch {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("root")).unwrap();
            Scratch {
                dir,
                stats: Stats::default(),
                limits: Limits::default(),
            }
        }

        fn root(&self) -> PathBuf {
            self.dir.path().join("root")
        }

        fn outside(&self) -> &Path {
            self.dir.path()
        }

        fn unpack(&mut self, tar: &[u8]) -> Result<(), UnpackError> {
            let root = self.root();
            unpack_tar(tar, &root, &self.limits, &mut self.stats)
        }

        fn read(&self, rel: &str) -> String {
            fs::read_to_string(self.root().join(rel)).unwrap()
        }

        fn exists(&self, rel: &str) -> bool {
            fs::symlink_metadata(self.root().join(rel)).is_ok()
        }

        fn mode(&self, rel: &str) -> u32 {
            fs::symlink_metadata(self.root().join(rel)).unwrap().mode() & 0o7777
        }
    }

    fn refused_path(err: UnpackError, entry: &str) {
        match &err {
            UnpackError::Path { entry: e, .. } => assert_eq!(&**e, entry, "{err}"),
            other => panic!("expected a refused path for {entry}, got {other:?}"),
        }
        assert!(err.to_string().contains(entry), "{err}");
    }

    fn refused_link(err: UnpackError, entry: &str, reason: Reason) {
        match &err {
            UnpackError::LinkTarget {
                entry: e,
                reason: r,
                ..
            } => assert_eq!((&**e, *r), (entry, reason), "{err}"),
            other => panic!("expected a refused link for {entry}, got {other:?}"),
        }
    }

    #[test]
    fn normal_tar_gz_unpacks() {
        let tar = Tar::new()
            .dir("./")
            .dir("./bin/")
            .dir("./libexec/")
            .file("./libexec/tool", 0o775, b"#!/bin/sh\necho hi\n")
            .symlink("./bin/tool", "../libexec/tool")
            .dir("share/doc/pkg")
            .file("share/doc/pkg/README", 0o664, b"read me")
            .hardlink("share/doc/pkg/README.txt", "./share/doc/pkg/README")
            .file("lib/deep/nested/libx.a", 0o644, b"ar")
            .bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();

        let mut s = Scratch::new();
        let root = s.root();
        unpack_tar(
            flate2::read::GzDecoder::new(&gz[..]),
            &root,
            &s.limits,
            &mut s.stats,
        )
        .unwrap();

        assert_eq!(s.read("libexec/tool"), "#!/bin/sh\necho hi\n");
        assert_eq!(s.mode("libexec/tool"), 0o755);
        assert_eq!(
            fs::read_link(root.join("bin/tool")).unwrap(),
            Path::new("../libexec/tool")
        );
        assert_eq!(s.read("bin/tool"), "#!/bin/sh\necho hi\n");
        assert_eq!(s.read("share/doc/pkg/README.txt"), "read me");
        let a = fs::metadata(root.join("share/doc/pkg/README")).unwrap();
        let b = fs::metadata(root.join("share/doc/pkg/README.txt")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(s.mode("share/doc/pkg/README"), 0o644);
        assert_eq!(s.mode("lib/deep/nested"), 0o755);
        assert_eq!(s.read("lib/deep/nested/libx.a"), "ar");
        assert_eq!(a.mtime(), 1_600_000_000);
        assert_eq!(s.stats.entries, 9);
        assert_eq!(s.stats.bytes, 18 + 7 + 2);
    }

    #[test]
    fn refuses_absolute_paths() {
        for name in ["/etc/passwd", "//etc/x", "/"] {
            let mut s = Scratch::new();
            let err = s.unpack(&Tar::new().file(name, 0o644, b"x").bytes());
            refused_path(err.unwrap_err(), name);
        }
    }

    #[test]
    fn refuses_dotdot_components() {
        for name in [
            "../escaped",
            "a/../../escaped",
            "a/..",
            "./../escaped",
            "..",
        ] {
            let mut s = Scratch::new();
            let err = s.unpack(&Tar::new().file(name, 0o644, b"x").bytes());
            refused_path(err.unwrap_err(), name);
            assert!(!s.outside().join("escaped").exists());
        }
    }

    #[test]
    fn refuses_nul_bytes_and_empty_names() {
        let mut s = Scratch::new();
        let tar = Tar::new()
            .long_name(b"bin/ok\0/../../escaped")
            .file("ignored", 0o644, b"x")
            .bytes();
        let err = s.unpack(&tar).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Path { entry, .. } if &**entry == "bin/ok\\u{0}/../../escaped"),
            "{err:?}"
        );

        let mut s = Scratch::new();
        let tar = Tar::new()
            .pax(&[("path", b"a\0b")])
            .file("ignored", 0o644, b"x")
            .bytes();
        assert!(matches!(s.unpack(&tar), Err(UnpackError::Path { .. })));

        let mut s = Scratch::new();
        let err = s.unpack(&Tar::new().file("", 0o644, b"x").bytes());
        refused_path(err.unwrap_err(), "");

        // `./` as anything but a directory.
        let mut s = Scratch::new();
        let err = s.unpack(&Tar::new().file("./", 0o644, b"x").bytes());
        assert!(matches!(err, Err(UnpackError::Path { .. })));
        let mut s = Scratch::new();
        let err = s.unpack(&Tar::new().symlink(".", "..").bytes());
        assert!(matches!(err, Err(UnpackError::Path { .. })));
    }

    #[test]
    fn long_names_are_merged() {
        let long = format!("share/{}/file", "d".repeat(150));
        let mut s = Scratch::new();
        let tar = Tar::new()
            .long_name(long.as_bytes())
            .file("trunc", 0o644, b"long")
            .pax(&[("path", b"./from/pax")])
            .file("trunc2", 0o644, b"pax")
            .bytes();
        s.unpack(&tar).unwrap();
        assert_eq!(s.read(&long), "long");
        assert_eq!(s.read("from/pax"), "pax");
        assert!(!s.exists("trunc") && !s.exists("trunc2"));
    }

    #[test]
    fn never_writes_through_a_symlink() {
        // A symlink inside the root, then a file and a directory "inside" it.
        for second in ["file", "dir"] {
            let mut s = Scratch::new();
            let mut tar = Tar::new();
            tar.dir("sub").symlink("link", "sub");
            if second == "file" {
                tar.file("link/x", 0o644, b"x");
            } else {
                tar.dir("link/d/");
            }
            let err = s.unpack(&tar.bytes()).unwrap_err();
            assert!(
                matches!(&err, UnpackError::ThroughSymlink { symlink, .. } if &**symlink == "link"),
                "{err:?}"
            );
            assert!(!s.exists("sub/x") && !s.exists("sub/d"));
        }

        // Through a symlink made by an earlier layer.
        let mut s = Scratch::new();
        s.unpack(&Tar::new().dir("a").symlink("a/b", ".").bytes())
            .unwrap();
        let err = s.unpack(&Tar::new().file("a/b/c", 0o644, b"x").bytes());
        assert!(matches!(err, Err(UnpackError::ThroughSymlink { .. })));
        assert!(!s.exists("a/c"));
    }

    #[test]
    fn a_checked_directory_replaced_by_a_symlink_is_checked_again() {
        // `d` and `d/e` are checked (and remembered) while writing `d/e/x`; then `d` becomes a
        // symlink to `sub`, and a later entry under `d/e/` must not go through it.
        for replacement in ["symlink", "file then symlink"] {
            let mut s = Scratch::new();
            let mut tar = Tar::new();
            tar.dir("sub/e").file("d/e/x", 0o644, b"x");
            if replacement == "file then symlink" {
                tar.file("d", 0o644, b"now a file");
            }
            tar.symlink("d", "sub").file("d/e/y", 0o644, b"y");
            let err = s.unpack(&tar.bytes()).unwrap_err();
            assert!(
                matches!(&err, UnpackError::ThroughSymlink { symlink, .. } if &**symlink == "d"),
                "{replacement}: {err:?}"
            );
            assert!(!s.exists("sub/e/y"), "{replacement}");
        }

        // A whiteout of a checked directory, then the same path as a symlink.
        let mut s = Scratch::new();
        s.unpack(&Tar::new().dir("sub/e").file("d/e/x", 0o644, b"x").bytes())
            .unwrap();
        let tar = Tar::new()
            .file("d/e/z", 0o644, b"z")
            .file(".wh.d", 0o644, b"")
            .symlink("d", "sub")
            .file("d/e/y", 0o644, b"y")
            .bytes();
        // `d` was made by this layer, so the whiteout spares it and the symlink replaces it.
        let err = s.unpack(&tar).unwrap_err();
        assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}");
        assert!(!s.exists("sub/e/y"));
    }

    #[test]
    fn whiteouts_in_a_first_layer_remove_nothing() {
        let mut s = Scratch::new();
        let tar = Tar::new()
            .file("x", 0o644, b"x")
            .file(".wh.x", 0o644, b"")
            .file("d/f", 0o644, b"f")
            .file("d/.wh..wh..opq", 0o644, b"")
            .file("e/.wh..wh..opq", 0o644, b"")
            .file(".wh.missing", 0o644, b"")
            .bytes();
        s.unpack(&tar).unwrap();
        assert_eq!(s.read("x"), "x");
        assert_eq!(s.read("d/f"), "f");
        assert!(fs::symlink_metadata(s.root().join("e")).unwrap().is_dir());
        // A later layer's whiteout still removes what an earlier layer made.
        s.unpack(&Tar::new().file("y", 0o644, b"y").bytes())
            .unwrap();
        s.unpack(&Tar::new().file(".wh.y", 0o644, b"").bytes())
            .unwrap();
        assert!(!s.exists("y"));
        let err = Scratch::new()
            .unpack(&Tar::new().file(".wh.", 0o644, b"").bytes())
            .unwrap_err();
        refused_path(err, ".wh.");
    }

    #[test]
    fn refuses_escaping_symlinks() {
        let cases = [
            ("evil", "/etc/passwd", Reason::Absolute),
            ("evil", "..", Reason::Escapes),
            ("evil", "../root2", Reason::Escapes),
            ("a/evil", "../../x", Reason::Escapes),
            ("a/b/evil", "./../.././../x", Reason::Escapes),
            ("evil", "", Reason::Empty),
        ];
        for (name, target, reason) in cases {
            let mut s = Scratch::new();
            let err = s.unpack(&Tar::new().symlink(name, target).bytes());
            refused_link(err.unwrap_err(), name, reason);
            assert!(!s.exists(name));
        }

        // A NUL in a pax `linkpath`.
        let mut s = Scratch::new();
        let mut tar = Tar::new();
        tar.pax(&[("linkpath", b"ok\0/../../..")])
            .symlink("l", "ok");
        refused_link(s.unpack(&tar.bytes()).unwrap_err(), "l", Reason::Nul);

        // `up` resolves to the root, so `up/..` lexically stays inside but really escapes.
        let mut s = Scratch::new();
        let tar = Tar::new()
            .symlink("a/up", "..")
            .symlink("c", "a/up/..")
            .bytes();
        refused_link(s.unpack(&tar).unwrap_err(), "c", Reason::DotDotAfterName);
        assert!(s.exists("a/up"));

        // Allowed: inside the root, dangling or not.
        let mut s = Scratch::new();
        let tar = Tar::new()
            .symlink("a/b/up", "../..")
            .symlink("a/self", ".")
            .symlink("a/dangling", "../nowhere/x")
            .bytes();
        s.unpack(&tar).unwrap();
        assert_eq!(
            fs::read_link(s.root().join("a/b/up")).unwrap(),
            Path::new("../..")
        );
    }

    #[test]
    fn hardlinks_stay_inside_and_point_at_files() {
        // Each case: a symlink made first (or none), then `h` hard-linked to the target.
        let cases = [
            (None, "../secret", Some(Reason::DotDot)),
            (None, "/etc/passwd", Some(Reason::Absolute)),
            (None, "./", Some(Reason::Root)),
            (None, "missing", Some(Reason::Missing)),
            (None, "nodir/missing", Some(Reason::Missing)),
            (None, "d", Some(Reason::NotAFile)),
            (Some(("sym", "file")), "sym", Some(Reason::NotAFile)),
            // Parents of the target are checked like an entry's.
            (Some(("dsym", "d")), "dsym/f", None),
        ];
        for (symlink, target, reason) in cases {
            let mut s = Scratch::new();
            fs::write(s.outside().join("secret"), "secret").unwrap();
            let mut tar = Tar::new();
            tar.file("file", 0o644, b"data").file("d/f", 0o644, b"f");
            if let Some((name, to)) = symlink {
                tar.symlink(name, to);
            }
            tar.hardlink("h", target);
            let err = s.unpack(&tar.bytes()).unwrap_err();
            match reason {
                Some(reason) => refused_link(err, "h", reason),
                None => assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err:?}"),
            }
            assert!(!s.exists("h"));
            assert_eq!(
                fs::read_to_string(s.outside().join("secret")).unwrap(),
                "secret"
            );
        }
    }

    #[test]
    fn skips_devices_and_fifos() {
        let mut s = Scratch::new();
        let mut tar = Tar::new();
        tar.raw(b"dev/null", EntryType::Char, b"", 0o666, b"");
        tar.raw(b"dev/sda", EntryType::Block, b"", 0o660, b"");
        tar.raw(b"pipe", EntryType::Fifo, b"", 0o644, b"");
        tar.file("kept", 0o644, b"k");
        s.unpack(&tar.bytes()).unwrap();
        assert!(!s.exists("dev/null") && !s.exists("dev/sda") && !s.exists("pipe"));
        assert_eq!(s.read("kept"), "k");
        assert_eq!(s.stats.entries, 4);
    }

    #[test]
    fn xattr_headers_and_apple_double_files() {
        let mut apple_double = APPLE_DOUBLE_MAGIC.to_vec();
        apple_double.extend_from_slice(&[0, 2, 0, 0, b'M', b'a', b'c', b' ', b'O', b'S']);
        let mut s = Scratch::new();
        let tar = Tar::new()
            .pax(&[
                ("LIBARCHIVE.xattr.com.apple.quarantine", b"MDA4MTs1ZjAw"),
                ("SCHILY.xattr.trusted.evil", b"x"),
                ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
            ])
            .file("bin/tool", 0o755, b"tool")
            .file("bin/._tool", 0o644, &apple_double)
            .file("._notes", 0o644, b"not AppleDouble")
            .file("._", 0o644, b"")
            .bytes();
        s.unpack(&tar).unwrap();
        assert_eq!(s.read("bin/tool"), "tool");
        assert_eq!(s.mode("bin/tool"), 0o755);
        assert!(!s.exists("bin/._tool"));
        assert_eq!(s.read("._notes"), "not AppleDouble");
        assert_eq!(s.read("._"), "");
    }

    #[test]
    fn modes_are_normalized() {
        let mut s = Scratch::new();
        let mut tar = Tar::new();
        tar.file("suid", 0o4755, b"")
            .file("sgid", 0o2644, b"")
            .file("private-exec", 0o700, b"")
            .file("readonly", 0o400, b"")
            .file("world", 0o666, b"");
        tar.raw(b"sticky", EntryType::Directory, b"", 0o1777, b"");
        tar.raw(b"locked", EntryType::Directory, b"", 0o500, b"");
        tar.file("locked/inside", 0o644, b"");
        s.unpack(&tar.bytes()).unwrap();
        assert_eq!(s.mode("suid"), 0o755);
        assert_eq!(s.mode("sgid"), 0o644);
        assert_eq!(s.mode("private-exec"), 0o755);
        assert_eq!(s.mode("readonly"), 0o644);
        assert_eq!(s.mode("world"), 0o644);
        assert_eq!(s.mode("sticky"), 0o755);
        assert_eq!(s.mode("locked"), 0o755);
    }

    #[test]
    fn duplicates_replace_without_following() {
        let mut s = Scratch::new();
        let tar = Tar::new()
            .file("target", 0o644, b"original")
            .symlink("s", "target")
            .file("s", 0o644, b"replaced")
            .file("shared", 0o644, b"shared")
            .hardlink("other", "shared")
            .file("other", 0o644, b"new other")
            .file("thing", 0o644, b"was a file")
            .dir("thing")
            .file("thing/in", 0o644, b"in")
            .symlink("thing", "target")
            .bytes();
        s.unpack(&tar).unwrap();
        assert_eq!(s.read("target"), "original");
        assert!(fs::symlink_metadata(s.root().join("s")).unwrap().is_file());
        assert_eq!(s.read("s"), "replaced");
        assert_eq!(s.read("shared"), "shared");
        assert_eq!(s.read("other"), "new other");
        assert_eq!(
            fs::read_link(s.root().join("thing")).unwrap(),
            Path::new("target")
        );

        // Across layers too: the symlink is replaced, its target untouched.
        let mut s = Scratch::new();
        s.unpack(&Tar::new().file("f", 0o644, b"1").symlink("l", "f").bytes())
            .unwrap();
        s.unpack(&Tar::new().file("l", 0o644, b"2").bytes())
            .unwrap();
        assert_eq!(s.read("f"), "1");
        assert_eq!(s.read("l"), "2");
    }

    #[test]
    fn byte_limit() {
        let mut s = Scratch::new();
        s.limits.max_bytes = 10;
        s.unpack(&Tar::new().file("a", 0o644, b"12345").bytes())
            .unwrap();
        // Counted across layers: 5 + 6 > 10.
        let err = s
            .unpack(&Tar::new().file("big", 0o644, b"123456").bytes())
            .unwrap_err();
        assert!(
            matches!(&err, UnpackError::TooManyBytes { entry, limit: 10 } if &**entry == "big"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("10 bytes") && msg.contains("PKG_MAX_UNPACK_BYTES"),
            "{msg}"
        );
        assert!(!s.exists("big"));

        // A pax `size` cannot sneak past either (the tar crate reads that many bytes).
        let mut s = Scratch::new();
        s.limits.max_bytes = 1 << 20;
        let mut tar = Tar::new();
        tar.pax(&[("size", b"1099511627776")]);
        tar.file("huge", 0o644, b"");
        let err = s.unpack(&tar.bytes()).unwrap_err();
        assert!(matches!(err, UnpackError::TooManyBytes { .. }), "{err:?}");
    }

    #[test]
    fn entry_limit() {
        let mut s = Scratch::new();
        s.limits.max_entries = 3;
        s.unpack(&Tar::new().dir("d").file("d/a", 0o644, b"").bytes())
            .unwrap();
        let mut tar = Tar::new();
        tar.file("d/b", 0o644, b"");
        tar.raw(b"fifo", EntryType::Fifo, b"", 0o644, b"");
        let err = s.unpack(&tar.bytes()).unwrap_err();
        assert!(
            matches!(&err, UnpackError::TooManyEntries { entry, limit: 3 } if &**entry == "fifo"),
            "{err:?}"
        );
        assert!(err.to_string().contains("PKG_MAX_UNPACK_ENTRIES"));
        assert_eq!(s.stats.entries, 4);
    }

    #[test]
    fn truncated_entry_is_an_error() {
        let mut tar = Tar::new().file("f", 0o644, &[7; 2000]).bytes();
        tar.truncate(512 + 1024);
        let mut s = Scratch::new();
        let err = s.unpack(&tar).unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::Truncated {
                    expected: 2000,
                    actual: 1024,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn whiteouts_apply_to_earlier_layers() {
        let mut s = Scratch::new();
        let lower = Tar::new()
            .file("a/x", 0o644, b"x")
            .file("a/y", 0o644, b"y")
            .file("b", 0o644, b"b")
            .file("c/deep/f", 0o644, b"f")
            .file("keep", 0o644, b"k")
            .bytes();
        s.unpack(&lower).unwrap();
        let upper = Tar::new()
            .file("a/new-before", 0o644, b"n")
            .file("a/.wh..wh..opq", 0o644, b"")
            .file("a/new-after", 0o644, b"n")
            .file(".wh.b", 0o644, b"")
            .file(".wh.c", 0o644, b"")
            .file(".wh.missing", 0o644, b"")
            .file("gone/.wh.x", 0o644, b"")
            .file(".wh..wh.plnk", 0o644, b"")
            .file("fresh", 0o644, b"f")
            .file(".wh.fresh", 0o644, b"")
            .bytes();
        s.unpack(&upper).unwrap();
        let mut a: Vec<_> = fs::read_dir(s.root().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        a.sort();
        assert_eq!(a, ["new-after", "new-before"]);
        assert!(!s.exists("b") && !s.exists("c") && !s.exists("gone"));
        assert!(!s.exists(".wh.b") && !s.exists(".wh..wh.plnk"));
        assert_eq!(s.read("keep"), "k");
        assert_eq!(s.read("fresh"), "f");

        // A whiteout never reaches through a symlink.
        let mut s = Scratch::new();
        s.unpack(
            &Tar::new()
                .file("d/f", 0o644, b"f")
                .symlink("l", "d")
                .bytes(),
        )
        .unwrap();
        let err = s.unpack(&Tar::new().file("l/.wh.f", 0o644, b"").bytes());
        assert!(matches!(err, Err(UnpackError::ThroughSymlink { .. })));
        let err = s.unpack(&Tar::new().file("l/.wh..wh..opq", 0o644, b"").bytes());
        assert!(matches!(err, Err(UnpackError::ThroughSymlink { .. })));
        assert_eq!(s.read("d/f"), "f");

        let mut s = Scratch::new();
        let err = s.unpack(&Tar::new().file("a/.wh.", 0o644, b"").bytes());
        assert!(matches!(err, Err(UnpackError::Path { .. })));
    }

    #[test]
    fn file_over_a_file_parent_is_refused() {
        let mut s = Scratch::new();
        let tar = Tar::new()
            .file("a", 0o644, b"a")
            .file("a/b", 0o644, b"b")
            .bytes();
        let err = s.unpack(&tar).unwrap_err();
        assert!(
            matches!(&err, UnpackError::NotADirectory { parent, .. } if &**parent == "a"),
            "{err:?}"
        );
    }

    #[test]
    fn limits_from_env_values() {
        assert_eq!(parse_limit(MAX_BYTES_VAR, None).unwrap(), None);
        assert_eq!(parse_limit(MAX_BYTES_VAR, Some("".into())).unwrap(), None);
        assert_eq!(
            parse_limit(MAX_BYTES_VAR, Some(" 123 ".into())).unwrap(),
            Some(123)
        );
        let err = parse_limit(MAX_BYTES_VAR, Some("8G".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PKG_MAX_UNPACK_BYTES=`8G` is not a whole number"
        );
    }

    #[test]
    fn sanitize_path_rules() {
        assert_eq!(
            sanitize_path(b"./a//b/./c/").unwrap(),
            Some(PathBuf::from("a/b/c"))
        );
        assert_eq!(sanitize_path(b"./").unwrap(), None);
        assert_eq!(sanitize_path(b".").unwrap(), None);
        assert_eq!(sanitize_path(b""), Err(Reason::Empty));
        assert_eq!(sanitize_path(b"a/\0"), Err(Reason::Nul));
        assert_eq!(sanitize_path(b"/a"), Err(Reason::Absolute));
        assert_eq!(sanitize_path(b"a/../b"), Err(Reason::DotDot));
        assert_eq!(display_name(b"a\0b\n"), "a\\u{0}b\\n");
    }
}
