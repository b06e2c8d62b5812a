//! Where an image's manifests and layers come from — a registry repository or an OCI image
//! layout on disk (`oci:PATH`) — behind one trait, so the install path reads both alike and
//! never reaches into `bottle/`.

pub mod layout;

use std::path::PathBuf;

use crate::digest::Digest;
use crate::formula::Source;
use crate::registry::blob::skip_exact;
use crate::registry::manifest::Descriptor;
use crate::registry::{Client, FetchedManifest, RegistryError, Repository};
use crate::report::Reporter;
use crate::store::{BlobStream, Unopened};
use layout::{Layout, LayoutError, SizeCheck};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Manifests by tag or descriptor, and layers from an offset, from one place.
pub trait ContentSource {
    /// The registry repository, for what is cached by tag (none for a layout on disk).
    fn repository(&self) -> Option<&Repository>;
    /// The manifest (or index) a tag points to.
    fn manifest_by_tag(
        &self,
        tag: &str,
        reporter: &dyn Reporter,
    ) -> Result<FetchedManifest, SourceError>;
    /// The manifest a descriptor names, size and digest exact.
    fn manifest(&self, descriptor: &Descriptor) -> Result<FetchedManifest, SourceError>;
    /// A blob's bytes from byte `offset` on; a refused range is said as such.
    fn open_blob(
        &self,
        digest: &Digest,
        size: u64,
        offset: u64,
    ) -> Result<BlobStream, Unopened<SourceError>>;
}

/// A repository of a registry, through the one client (mirrors, auth, retries).
pub struct Remote<'a> {
    pub client: &'a Client,
    pub repository: &'a Repository,
}

impl ContentSource for Remote<'_> {
    fn repository(&self) -> Option<&Repository> {
        Some(self.repository)
    }

    fn manifest_by_tag(&self, tag: &str, _: &dyn Reporter) -> Result<FetchedManifest, SourceError> {
        Ok(self.client.fetch_manifest(self.repository, tag)?)
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<FetchedManifest, SourceError> {
        Ok(self
            .client
            .fetch_manifest(self.repository, &descriptor.digest.to_string())?)
    }

    fn open_blob(
        &self,
        digest: &Digest,
        size: u64,
        offset: u64,
    ) -> Result<BlobStream, Unopened<SourceError>> {
        match self
            .client
            .open_blob_from(self.repository, digest, size, offset)
            .map_err(crate::registry::blob::unopened)
        {
            Ok(stream) => Ok(stream),
            Err(Unopened::RangeRefused(e)) => Err(Unopened::RangeRefused(e.into())),
            Err(Unopened::Failed(e)) => Err(Unopened::Failed(e.into())),
        }
    }
}

/// An OCI image layout on disk; every blob read is checked against its digest.
pub struct OnDisk {
    dir: PathBuf,
}

impl OnDisk {
    fn layout(&self) -> Result<Layout, LayoutError> {
        Layout::open(&self.dir)
    }
}

impl ContentSource for OnDisk {
    fn repository(&self) -> Option<&Repository> {
        None
    }

    fn manifest_by_tag(
        &self,
        tag: &str,
        reporter: &dyn Reporter,
    ) -> Result<FetchedManifest, SourceError> {
        Ok(self.layout()?.fetch_tag(tag, reporter)?)
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<FetchedManifest, SourceError> {
        Ok(self.layout()?.read_manifest(descriptor, SizeCheck::Exact)?)
    }

    fn open_blob(
        &self,
        digest: &Digest,
        _size: u64,
        offset: u64,
    ) -> Result<BlobStream, Unopened<SourceError>> {
        let failed = |e: LayoutError| Unopened::Failed(SourceError::Layout(e));
        let layout = self.layout().map_err(failed)?;
        let mut stream = layout.blob_stream(digest).map_err(failed)?;
        // A local file: the bytes before `offset` are skipped by reading them.
        skip_exact(&mut stream.reader, offset).map_err(|source| {
            failed(LayoutError::Io {
                path: layout.blob_path(digest),
                source,
            })
        })?;
        Ok(stream)
    }
}

/// The content source a formula's version names.
pub fn open<'a>(source: &'a Source, client: &'a Client) -> Box<dyn ContentSource + 'a> {
    match source {
        Source::Registry(repository) => Box::new(Remote { client, repository }),
        Source::Layout(dir) => Box::new(OnDisk { dir: dir.clone() }),
    }
}
