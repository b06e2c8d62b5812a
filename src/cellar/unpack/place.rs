//! One file layer (ORAS) placed in a staging keg: its bytes as they are, at its cleaned title,
//! beneath the root by descriptor and under the same limits as a tar's entries.

use super::{Limits, Stats};

/// What placing a file fails with.
#[derive(Debug)]
pub enum PlaceError {
    Io(std::path::PathBuf, std::io::Error),
    /// The layer was refused: its name, and why.
    Refused {
        name: String,
        reason: String,
    },
}

/// Writes an ORAS file layer at `root/name`: parents are created as real directories (never
/// through a link an earlier layer made), a previous file there is replaced, the unpack limits
/// apply, and the mode is 0644 (under the umask).
pub fn place_file(
    root: &std::path::Path,
    name: &str,
    reader: impl std::io::Read,
    limits: &Limits,
    stats: &mut Stats,
) -> Result<(), PlaceError> {
    let refused = |reason: &str| PlaceError::Refused {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if stats.entries + 1 > limits.max_entries {
        return Err(refused("too many entries (PKG_MAX_UNPACK_ENTRIES)"));
    }
    let rel = std::path::Path::new(name);
    let mut beneath =
        super::beneath::Root::open(root).map_err(|e| PlaceError::Io(root.to_owned(), e))?;
    let mut file = beneath
        .create_file(rel, 0o644)
        .map_err(|e| refused(&e.to_string()))?;
    let room = limits.max_bytes.saturating_sub(stats.bytes);
    let dest = root.join(rel);
    let written = std::io::copy(&mut std::io::Read::take(reader, room + 1), &mut file)
        .map_err(|e| PlaceError::Io(dest.clone(), e))?;
    if written > room {
        return Err(refused(&format!(
            "larger than the {} bytes left under the unpack limit; set PKG_MAX_UNPACK_BYTES to raise it",
            room
        )));
    }
    stats.entries += 1;
    stats.bytes += written;
    Ok(())
}
