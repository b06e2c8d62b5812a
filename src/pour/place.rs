//! What placing (cellar/unpack/place.rs) or unpacking a layer fails with before the repository
//! is known.

use crate::cellar::CellarError;
use crate::cellar::unpack::{PlaceError, UnpackError};
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

impl From<PlaceError> for Placed {
    fn from(e: PlaceError) -> Placed {
        match e {
            PlaceError::Io(path, source) => Placed::Io(path, source),
            PlaceError::Refused { name, reason } => Placed::Refused { name, reason },
        }
    }
}
