//! What placing (cellar/unpack/place.rs) or unpacking one layer fails with, before the repository
//! is known.

use crate::cellar::CellarError;
use crate::cellar::unpack::{PlaceError, UnpackError};
use crate::digest::Digest;
use crate::formula::Source;

use super::PourError;

/// What placing one layer can fail with, before the repository and digest are known.
pub(super) enum LayerFailure {
    Unpack(UnpackError),
    Io(std::path::PathBuf, std::io::Error),
    Refused { name: String, reason: String },
}

impl LayerFailure {
    pub(super) fn into_pour_error(self, repository: &Source, digest: &Digest) -> PourError {
        match self {
            LayerFailure::Unpack(source) => PourError::Unpack {
                repository: repository.clone(),
                digest: digest.clone(),
                source: Box::new(source),
            },
            LayerFailure::Io(path, source) => PourError::Cellar(CellarError::Io { path, source }),
            LayerFailure::Refused { name, reason } => PourError::Place {
                repository: repository.clone(),
                digest: digest.clone(),
                name,
                reason,
            },
        }
    }
}

impl From<PlaceError> for LayerFailure {
    fn from(e: PlaceError) -> LayerFailure {
        match e {
            PlaceError::Io(path, source) => LayerFailure::Io(path, source),
            PlaceError::Refused { name, reason } => LayerFailure::Refused { name, reason },
        }
    }
}
