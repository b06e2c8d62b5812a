//! The caps on what one keg's layers may unpack to, and the running count against them.

use std::ffi::OsString;

use super::error::UnpackError;

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

pub(super) fn parse_limit(
    var: &'static str,
    value: Option<OsString>,
) -> Result<Option<u64>, UnpackError> {
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
    /// Entries seen, skipped ones (metadata, AppleDouble files) included.
    pub entries: u64,
    /// Bytes written to files (a sparse file counts its real size).
    pub bytes: u64,
    /// `user.*` extended attributes the filesystem refused.
    pub xattrs_skipped: u64,
}
