//! The caps on what one keg's layers may unpack to, and the running count against them.

use std::ffi::OsString;

use super::error::UnpackError;

/// Raises [`Limits::max_bytes`] (see [`Limits::from_vars`]).
pub const MAX_BYTES_VAR: &str = "PKG_MAX_UNPACK_BYTES";
/// Raises [`Limits::max_entries`] (see [`Limits::from_vars`]).
pub const MAX_ENTRIES_VAR: &str = "PKG_MAX_UNPACK_ENTRIES";
/// Raises [`Limits::max_ratio`] (`0` turns the check off).
pub const MAX_RATIO_VAR: &str = "PKG_MAX_UNPACK_RATIO";
/// Sets [`Limits::writers`] (`0`: the unpack thread writes every file itself).
pub const WRITERS_VAR: &str = "PKG_UNPACK_WRITERS";

/// A layer may always write this much, whatever its compressed size.
pub const RATIO_FLOOR_BYTES: u64 = 64 << 20;
/// A layer may always hold this many entries, whatever its compressed size.
pub const ENTRY_FLOOR: u64 = 100_000;
/// Past [`ENTRY_FLOOR`], one entry per this many compressed bytes (a real tree takes a few
/// KiB of gzip per entry; a tar of empty files, some 30 bytes).
pub const COMPRESSED_BYTES_PER_ENTRY: u64 = 256;

/// Caps on what the layers of one keg may unpack to (decompression and tar bombs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes written to files, across all layers.
    pub max_bytes: u64,
    /// Total tar entries, across all layers.
    pub max_entries: u64,
    /// Data one layer may write per byte of its blob (past [`RATIO_FLOOR_BYTES`]); 0: no check.
    pub max_ratio: u64,
    /// `PKG_MAX_UNPACK_ENTRIES` was given: the count is the user's, not tied to the layer size.
    pub entries_set: bool,
    /// The layer being unpacked, once [`Limits::for_layer`] tied the caps to it.
    pub layer: Option<LayerCaps>,
    /// Threads writing file bytes beside the unpack thread; `None`: as this machine suits.
    pub writers: Option<usize>,
}

/// The caps of one layer, from its compressed size and what earlier layers wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerCaps {
    /// The blob's size.
    pub compressed: u64,
    /// `Stats::written` may reach this before the layer is refused.
    pub written_until: u64,
    /// `Stats::entries` may reach this before the layer is refused.
    pub entries_until: u64,
}

impl Default for Limits {
    /// 8 GiB, 1,000,000 entries, and 200 times the compressed size.
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
            max_ratio: 200,
            entries_set: false,
            layer: None,
            writers: None,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `PKG_MAX_UNPACK_BYTES`, `PKG_MAX_UNPACK_ENTRIES`,
    /// `PKG_MAX_UNPACK_RATIO` and `PKG_UNPACK_WRITERS` as `var` reads them (whole numbers;
    /// empty means unset). `Settings` reads them from the environment.
    pub fn from_vars(
        var: impl Fn(&'static str) -> Option<OsString>,
    ) -> Result<Limits, UnpackError> {
        let mut limits = Limits::default();
        if let Some(n) = parse_limit(MAX_BYTES_VAR, var(MAX_BYTES_VAR))? {
            limits.max_bytes = n;
        }
        if let Some(n) = parse_limit(MAX_ENTRIES_VAR, var(MAX_ENTRIES_VAR))? {
            limits.max_entries = n;
            limits.entries_set = true;
        }
        if let Some(n) = parse_limit(MAX_RATIO_VAR, var(MAX_RATIO_VAR))? {
            limits.max_ratio = n;
        }
        if let Some(n) = parse_limit(WRITERS_VAR, var(WRITERS_VAR))? {
            limits.writers = Some(n.min(16) as usize);
        }
        Ok(limits)
    }

    /// These limits for one compressed layer of `compressed` bytes, after `stats`: it may write
    /// `max_ratio` times its size (at least [`RATIO_FLOOR_BYTES`]) and hold an entry per
    /// [`COMPRESSED_BYTES_PER_ENTRY`] (at least [`ENTRY_FLOOR`]), so a bomb stops in seconds.
    pub fn for_layer(&self, compressed: u64, stats: &Stats) -> Limits {
        let written = if self.max_ratio == 0 {
            u64::MAX
        } else {
            (compressed.saturating_mul(self.max_ratio)).max(RATIO_FLOOR_BYTES)
        };
        let entries = if self.entries_set {
            u64::MAX
        } else {
            (compressed / COMPRESSED_BYTES_PER_ENTRY).max(ENTRY_FLOOR)
        };
        Limits {
            layer: Some(LayerCaps {
                compressed,
                written_until: stats.written.saturating_add(written),
                entries_until: stats.entries.saturating_add(entries),
            }),
            ..*self
        }
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries seen, skipped ones (metadata, AppleDouble files) included.
    pub entries: u64,
    /// Bytes written to files (a sparse file counts its real size).
    pub bytes: u64,
    /// Bytes of data the layers held for files (a sparse file's holes not counted): what a
    /// layer's compression ratio is measured by.
    pub written: u64,
    /// `user.*` extended attributes the filesystem refused.
    pub xattrs_skipped: u64,
    /// Root-relative regular files whose bytes hold Homebrew's placeholder prefix
    /// (`@@HOMEBREW_`), seen as they were written: the only files relocation opens.
    pub marked: Vec<std::path::PathBuf>,
    /// Every layer was unpacked here (not cloned from the store), so `marked` is complete.
    pub scanned: bool,
    /// The CRC-32 of each root-relative regular file's bytes, taken as they were written (a
    /// pax sparse file, whose holes are never read, has none): what a receipt records for
    /// `pkg doctor` to find a file changed with its size and mtime kept.
    pub sums: std::collections::HashMap<std::path::PathBuf, u32>,
}
