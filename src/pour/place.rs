//! Placing one ORAS file layer in a staging keg (its bytes as they are, at its cleaned title),
//! and what placing or unpacking a layer fails with before the repository is known.

use crate::cellar::CellarError;
use crate::cellar::unpack::{self, Limits, Stats, UnpackError};
use crate::digest::Digest;
use crate::formula::Source;

use super::PourError;

/// What placing one layer can fail with, before the repository and digest are known.
pub(super) enum Placed {
    Unpack(UnpackError),
    Io(std::path::PathBuf, std::io::Error),
    Refused { name: String, reason: String },
}

impl Placed {
    pub(super) fn into_pour_error(self, repository: &Source, digest: &Digest) -> PourError {
        match self {
            Placed::Unpack(source) => PourError::Unpack {
                repository: repository.clone(),
                digest: digest.clone(),
                source: Box::new(source),
            },
            Placed::Io(path, source) => PourError::Cellar(CellarError::Io { path, source }),
            Placed::Refused { name, reason } => PourError::Place {
                repository: repository.clone(),
                digest: digest.clone(),
                name,
                reason,
            },
        }
    }
}

/// Writes an ORAS file layer at `root/name`: parents are created as real directories (never
/// through a link an earlier layer made), a previous file there is replaced, the unpack limits
/// apply, and the mode is 0644 (under the umask).
pub(super) fn place_file(
    root: &std::path::Path,
    name: &str,
    reader: impl std::io::Read,
    limits: &Limits,
    stats: &mut Stats,
) -> Result<(), Placed> {
    let refused = |reason: &str| Placed::Refused {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if stats.entries + 1 > limits.max_entries {
        return Err(refused("too many entries (PKG_MAX_UNPACK_ENTRIES)"));
    }
    let rel = std::path::Path::new(name);
    let mut beneath =
        unpack::beneath::Root::open(root).map_err(|e| Placed::Io(root.to_owned(), e))?;
    let mut file = beneath
        .create_file(rel, 0o644)
        .map_err(|e| refused(&e.to_string()))?;
    let room = limits.max_bytes.saturating_sub(stats.bytes);
    let dest = root.join(rel);
    let written = std::io::copy(&mut std::io::Read::take(reader, room + 1), &mut file)
        .map_err(|e| Placed::Io(dest.clone(), e))?;
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
