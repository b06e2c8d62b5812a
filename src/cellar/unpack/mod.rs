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
mod tests;
