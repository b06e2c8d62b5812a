//! What unpacking can fail with: each variant names the entry, and the path or limit involved.

use std::io;
use std::path::Path;

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
        "tar entry `{entry}` is a {kind}; pkg does not create device files (a package has no use for them). Rebuild the package without it"
    )]
    Device { entry: Box<str>, kind: &'static str },
    #[error(
        "tar entry `{entry}` has entry type `{}` (byte {code:#04x}), which pkg does not know how to restore; rebuild the layer with GNU tar or bsdtar", char::from(*.code).escape_default()
    )]
    UnknownType { entry: Box<str>, code: u8 },
    #[error("tar entry `{entry}` is a sparse file pkg cannot restore: {reason}")]
    Sparse { entry: Box<str>, reason: Box<str> },
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
    #[error(
        "tar entry `{entry}` would take the layer past {ratio} times its {compressed}-byte blob: it expands like a decompression bomb. If the package really compresses that well, set PKG_MAX_UNPACK_RATIO to a larger number (0 turns the check off)"
    )]
    TooExpanded {
        entry: Box<str>,
        ratio: u64,
        compressed: u64,
    },
    #[error(
        "tar entry `{entry}` is past {limit} entries, more than a {compressed}-byte layer holds unless it is a tar bomb; if the package really has that many files, set PKG_MAX_UNPACK_ENTRIES to a larger number"
    )]
    TooManyEntriesForSize {
        entry: Box<str>,
        limit: u64,
        compressed: u64,
    },
    /// The filesystem refused something pkg tried for `entry`.
    #[error("tar entry `{entry}`: cannot {op} {}: {source}", path.display())]
    Io {
        entry: Box<str>,
        op: Op,
        path: Box<Path>,
        #[source]
        source: io::Error,
    },
    /// `PKG_MAX_UNPACK_*` or `PKG_UNPACK_WRITERS` is not a number.
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
    /// A hard link to something not (yet) in the layers.
    Missing,
    /// A hard link to a directory.
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
            Reason::Missing => "does not exist in the layers so far",
            Reason::NotAFile => "is a directory",
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
