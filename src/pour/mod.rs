//! Pouring a keg: tag → manifest (pinned, cached or fetched) → layers streamed through the verified
//! cache → safe unpack into a staging dir → the keg shaped (bottle strip and relocation, its
//! commands found, `cellar::bins`) → receipt → renamed into the Cellar. Nothing here touches the
//! prefix outside the Cellar: links and the loader are the transaction's (`apply/`).

use std::collections::BTreeMap;

use semver::Version;

mod layer_failure;
mod pinned;
mod pipeline;
pub mod prefetch;
mod shape;
mod signed;
mod stage;

use crate::cellar::receipt::ReceiptError;
use crate::cellar::unpack::{Limits, Stats, UnpackError};
use crate::cellar::{Cellar, CellarError};
use crate::digest::Digest;
use crate::formula::{Formula, Source, VersionSpec};
use crate::platform::Platform;
use crate::registry::manifest::{
    self, Document, ImageManifest, LayerFormat, LayerFormatError, ManifestError,
};
use crate::registry::{Client, FetchedManifest, RegistryError};
use crate::report::{Event, Reporter};
use crate::source::SourceError;
use crate::store::{BlobStream, ReaderError, RepoName, Store, StoreError, Unopened};

#[derive(Debug, thiserror::Error)]
pub enum PourError {
    #[error(
        "{name} {version} is not installed: its formula wants {wanted}, and none was found ({found})"
    )]
    Unsigned {
        name: String,
        version: String,
        wanted: String,
        found: String,
    },
    #[error(
        "{name} has no [verify] policy in its formula, and --require-signatures (PKG_REQUIRE_SIGNATURES) needs one to install anything"
    )]
    NoPolicy { name: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layout(#[from] crate::source::layout::LayoutError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cellar(#[from] CellarError),
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error(transparent)]
    Bins(#[from] crate::cellar::bins::BinError),
    #[error("unpacking layer {digest} of {repository}: {source}")]
    Unpack {
        repository: Source,
        digest: Digest,
        #[source]
        source: Box<UnpackError>,
    },
    #[error(
        "{repository}:{tag} resolves to manifest\n  {actual}\nbut the formula pins\n  {pinned}\nThe tag was moved or the formula is wrong."
    )]
    PinMismatch {
        repository: Source,
        tag: String,
        pinned: Digest,
        actual: Digest,
    },
    #[error(
        "{repository}:{tag} is an image with no layers: there is nothing to install (a signature or attestation, or a broken push)"
    )]
    NoLayers { repository: Source, tag: String },
    #[error(
        "layer {digest} of {repository} is described as 0 bytes long, but that digest is not the empty blob's: the manifest is wrong (ask its publisher to push it again)"
    )]
    ZeroSize { repository: Source, digest: Digest },
    #[error(
        "{repository}@{digest} is an image index inside an image index; pkg installs manifests only"
    )]
    NestedIndex { repository: Source, digest: Digest },
    #[error(
        "layer {digest} of {repository} has media type `{media_type}`, which pkg cannot unpack (tar, tar+gzip and tar+zstd are supported, and files named by an `org.opencontainers.image.title`)"
    )]
    LayerType {
        repository: Source,
        digest: Digest,
        media_type: String,
    },
    #[error(
        "layer {digest} of {repository} is a file titled `{title}`, which is not a path inside the package (absolute, climbing out with `..`, or empty); the artifact must be pushed with a relative file name"
    )]
    UnsafeTitle {
        repository: Source,
        digest: Digest,
        title: String,
    },
    #[error(transparent)]
    Brew(#[from] crate::cellar::brew::BrewError),
    #[error(transparent)]
    Pinned(#[from] pinned::PinnedError),
    #[error("{second}\n(It was the second try: the first download failed too: {first})")]
    BadTwice {
        first: Box<PourError>,
        second: Box<PourError>,
    },
    #[error("layer {digest} of {repository}: cannot place `{name}`: {reason}")]
    Place {
        repository: Source,
        digest: Digest,
        name: String,
        reason: String,
    },
    #[error("{repository}: {source}")]
    Manifest {
        repository: Source,
        #[source]
        source: Box<ManifestError>,
    },
}

impl From<ReaderError<SourceError>> for PourError {
    fn from(e: ReaderError<SourceError>) -> Self {
        match e {
            ReaderError::Store(e) => PourError::Store(e),
            ReaderError::Source(SourceError::Registry(e)) => PourError::Registry(e),
            ReaderError::Source(SourceError::Layout(e)) => PourError::Layout(e),
        }
    }
}

/// A registry repository as the store files what came from it.
fn filed(repo: &crate::registry::Repository) -> RepoName<'_> {
    RepoName {
        registry: &repo.registry,
        name: &repo.name,
    }
}

impl PourError {
    /// The blob whose bytes failed their digest or size check, when that is the failure
    /// (another download may be sound).
    pub fn bad_blob(&self) -> Option<&Digest> {
        fn registry(e: &RegistryError) -> Option<&Digest> {
            match e {
                RegistryError::SizeMismatch { digest, .. } => Some(digest),
                _ => None,
            }
        }
        match self {
            PourError::Store(
                StoreError::Mismatch { digest, .. } | StoreError::Size { digest, .. },
            ) => Some(digest),
            PourError::Registry(e) => registry(e),
            _ => None,
        }
    }
}

/// The image a formula version resolves to on this host.
pub struct Image {
    /// What the tag points to (an index or a manifest).
    pub digest: Digest,
    /// The manifest picked from an index, if the tag is an index.
    pub platform_digest: Option<Digest>,
    pub manifest: ImageManifest,
    pub formats: Vec<LayerFormat>,
}

/// A keg put in place (not yet linked).
pub struct Poured {
    pub bins: Vec<String>,
    /// Keg directories linked file by file (see [`Formula::link`]).
    pub link: Vec<String>,
    pub stats: Stats,
    /// Files, links and directories in the keg (as its receipt lists them).
    pub files: usize,
    /// Relocated ELF files name `PREFIX/lib/ld.so` as their interpreter: the transaction that
    /// takes the keg in makes it.
    pub needs_loader: bool,
}

pub struct Pourer<'a> {
    store: Store,
    client: Client,
    host: Platform,
    reporter: &'a dyn Reporter,
    options: PourOptions,
    /// Downloads fetched ahead at once across every keg being poured (`--jobs`).
    ahead: prefetch::Budget,
    /// The cache, locked shared while this run may add blobs that receipts will reference.
    _cache_lock: crate::lock::CacheLock,
}

/// How kegs are poured: the settings that bear on it.
#[derive(Clone, Copy, Debug)]
pub struct PourOptions {
    /// Caps on what a keg's layers may unpack to, and the unpack's writers.
    pub limits: Limits,
    /// Helper threads per keg for the layers after the first, and downloads ahead (`--jobs`).
    pub jobs: usize,
    /// `--require-signatures`: a package whose formula has no `[verify]` policy is refused.
    pub require_signatures: bool,
    /// How warm installs take kegs from the unpacked store (`--link-mode`).
    pub link_mode: crate::store::tree_copy::LinkMode,
}

impl<'a> Pourer<'a> {
    /// A pourer for this host, reading and filling `store` (held shared by `cache_lock`)
    /// through `client`.
    pub fn new(
        store: Store,
        client: Client,
        reporter: &'a dyn Reporter,
        options: PourOptions,
        cache_lock: crate::lock::CacheLock,
    ) -> Pourer<'a> {
        Pourer {
            store,
            client,
            host: Platform::host(),
            reporter,
            options,
            ahead: prefetch::Budget::new(options.jobs),
            _cache_lock: cache_lock,
        }
    }
}

impl Pourer<'_> {
    /// Resolves a formula version to the manifest for this host, checking the pin.
    pub fn image(&self, spec: &VersionSpec) -> Result<Image, PourError> {
        self.image_for(spec, &self.host)
    }

    /// [`Pourer::image`] for another platform (what `pkg bundle lock --platform` records).
    /// Long: tag, pin, platform and the formula API's bottle pins are checked in order on the same
    /// manifest, and each refusal names what was asked.
    pub fn image_for(&self, spec: &VersionSpec, host: &Platform) -> Result<Image, PourError> {
        let repo = &spec.repository;
        let tag = &spec.tag.0;
        let mut top = self.fetch_tag(repo, tag, spec.digest.as_ref())?;
        if let Some(pinned) = &spec.digest
            && !pinned.matches(&top.bytes)
        {
            // The tag moved on; the pinned manifest may still be there by its digest (what a
            // Pkgfile.lock installs): those bytes, and no other, are installed.
            let by_digest = crate::source::open(repo, &self.client)
                .manifest_by_tag(&pinned.to_string(), self.reporter)
                .ok()
                .filter(|m| pinned.matches(&m.bytes));
            if let Some(m) = by_digest {
                self.reporter.event(Event::PinnedManifest {
                    repository: &repo.to_string(),
                    tag,
                    pinned,
                });
                top = m;
            }
        }
        if let Some(pinned) = &spec.digest {
            if !pinned.matches(&top.bytes) {
                return Err(PourError::PinMismatch {
                    repository: repo.clone(),
                    tag: tag.clone(),
                    pinned: pinned.clone(),
                    actual: Digest::of_bytes_with(pinned.kind(), &top.bytes),
                });
            }
            // Cached under the pin too, so the next install needs no registry.
            self.store.put_verified(pinned, &top.bytes)?;
            if let Source::Registry(r) = repo {
                self.store.add_origin(pinned, filed(r))?;
            }
        }
        // Bottles pinned by homebrew/core's formula API: the host's, and no other, is poured.
        let bottle = match spec.bottles.is_empty() {
            true => None,
            false => Some(pinned::pick(&spec.bottles, host, repo)?),
        };
        let (manifest, platform_digest) = match top.document {
            Document::Manifest(m) => (m, None),
            Document::Index(index) => {
                let entry = match bottle {
                    Some((_, file)) => pinned::entry(&index, file, host),
                    None => index.pick(host),
                }
                .map_err(|source| PourError::Manifest {
                    repository: repo.clone(),
                    source: Box::new(source),
                })?;
                let child = self.fetch_digest(repo, entry)?;
                match child.document {
                    Document::Manifest(m) => (m, Some(entry.digest.clone())),
                    Document::Index(_) => {
                        return Err(PourError::NestedIndex {
                            repository: repo.clone(),
                            digest: entry.digest.clone(),
                        });
                    }
                }
            }
        };
        if let Some((bottle_tag, file)) = bottle {
            pinned::check(&manifest, bottle_tag, file, repo)?;
        }
        if manifest.layers.is_empty() {
            return Err(PourError::NoLayers {
                repository: repo.clone(),
                tag: tag.clone(),
            });
        }
        // A size of 0 can only be right for the empty blob: anything else is a wrong manifest,
        // which no download could satisfy (it would read as a digest mismatch).
        if let Some(l) = manifest
            .layers
            .iter()
            .find(|l| l.size == 0 && l.digest != Digest::of_bytes_with(l.digest.kind(), b""))
        {
            return Err(PourError::ZeroSize {
                repository: repo.clone(),
                digest: l.digest.clone(),
            });
        }
        let formats = manifest
            .layers
            .iter()
            .map(|l| {
                LayerFormat::for_layer(l).map_err(|e| match e {
                    LayerFormatError::MediaType => PourError::LayerType {
                        repository: repo.clone(),
                        digest: l.digest.clone(),
                        media_type: l.media_type.clone(),
                    },
                    LayerFormatError::UnsafeTitle(title) => PourError::UnsafeTitle {
                        repository: repo.clone(),
                        digest: l.digest.clone(),
                        title,
                    },
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Image {
            digest: top.digest,
            platform_digest,
            manifest,
            formats,
        })
    }

    /// Downloads and verifies every layer into the cache without unpacking. Returns the bytes
    /// downloaded (0 when everything was cached).
    /// `label` names the download on the progress bar.
    pub fn fetch(&self, spec: &VersionSpec, label: &str) -> Result<u64, PourError> {
        let image = self.image(spec)?;
        let missing: Vec<_> = (image.manifest.layers.iter())
            .filter(|l| self.store.cached(&l.digest).is_none())
            .collect();
        let total = missing.iter().map(|l| l.size).sum();
        if total == 0 {
            return Ok(0);
        }
        let progress = self.reporter.progress(label, total);
        let mut downloaded = 0;
        for layer in missing {
            if self.fetch_layer(&spec.repository, layer, &|| false, &*progress)? {
                downloaded += layer.size;
            }
        }
        progress.finish();
        Ok(downloaded)
    }

    /// Downloads one layer into the cache, verified; `false` when it was cached already. Stops
    /// early (keeping the partial download for later) once `give_up` says so.
    fn fetch_layer(
        &self,
        repo: &Source,
        layer: &manifest::Descriptor,
        give_up: &dyn Fn() -> bool,
        progress: &dyn crate::report::Progress,
    ) -> Result<bool, PourError> {
        if self.store.cached(&layer.digest).is_some() {
            return Ok(false);
        }
        let mut reader = self.store.reader(&layer.digest, layer.size, |offset| {
            self.open_blob(repo, &layer.digest, layer.size, offset)
        })?;
        let io = |source| StoreError::Io {
            path: self.store.blob_path(&layer.digest),
            source,
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if give_up() {
                return Ok(false);
            }
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => break,
                Ok(n) => progress.advance(n as u64),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The digest verdict, when there is one, says more than the read error.
                    reader.finish()?;
                    return Err(io(e).into());
                }
            }
        }
        reader.finish()?;
        Ok(true)
    }

    /// Pours `formula` at `version` into the Cellar: nothing appears there unless every layer
    /// verified and unpacked. The keg is not linked. `fresh` (a reinstall): the layers are
    /// unpacked from the verified blobs, never cloned from the unpacked store.
    pub fn pour(
        &self,
        cellar: &Cellar,
        formula: &Formula,
        version: &Version,
        on_request: bool,
        dependencies: BTreeMap<String, String>,
        fresh: bool,
    ) -> Result<Poured, PourError> {
        let spec = &formula.versions[version];
        // The digest a signature was verified for is the one installed: pinned to it, the tag is
        // not asked again (its manifest is in the cache).
        let verified = self.check_signature(formula, spec, &crate::version::show(version))?;
        let pinned;
        let spec = match verified {
            Some(digest) if spec.digest.is_none() => {
                pinned = VersionSpec {
                    digest: Some(digest),
                    ..spec.clone()
                };
                &pinned
            }
            _ => spec,
        };
        let image = self.image(spec)?;
        // A blob that fails its digest or size check is fetched once more, from nothing, into a
        // fresh staging directory — each blob of the image once, so two blobs cut in one pour
        // are both mended; a blob that fails twice names both failures.
        let mut refetched: Vec<(Digest, PourError)> = Vec::new();
        let staged = loop {
            match self.stage(cellar, formula, version, &image, fresh) {
                Err(e) if e.bad_blob().is_some() => {
                    let digest = e
                        .bad_blob()
                        .cloned()
                        .unwrap_or_else(|| image.digest.clone());
                    if let Some(i) = refetched.iter().position(|(d, _)| *d == digest) {
                        let (_, first) = refetched.swap_remove(i);
                        return Err(PourError::BadTwice {
                            first: Box::new(first),
                            second: Box::new(e),
                        });
                    }
                    if refetched.len() >= image.manifest.layers.len() {
                        return Err(e);
                    }
                    self.reporter.event(Event::Refetching { error: &e });
                    refetched.push((digest, e));
                }
                other => break other?,
            }
        };

        let stage::Staged {
            dir: staging,
            _interrupted,
            stats,
            listing,
        } = staged;
        let shaped = self.shape(
            staging.path(),
            cellar,
            formula,
            version,
            spec,
            image,
            (&stats, listing),
            on_request,
            dependencies,
        )?;
        cellar.publish(staging, &formula.name, version)?;
        Ok(Poured {
            bins: shaped.bins,
            link: shaped.link,
            stats,
            files: shaped.files,
            needs_loader: shaped.needs_loader,
        })
    }

    /// The manifest a tag points to. A pinned digest already in the cache needs no network; when
    /// the registry cannot be reached, the digest the tag had last time is used from the cache.
    fn fetch_tag(
        &self,
        source: &Source,
        tag: &str,
        pin: Option<&Digest>,
    ) -> Result<FetchedManifest, PourError> {
        if let Some(pin) = pin
            && let Some(cached) = self.cached_manifest(source, pin)?
        {
            return Ok(cached);
        }
        let content = crate::source::open(source, &self.client);
        let fetched = content.manifest_by_tag(tag, self.reporter);
        let Some(repo) = content.repository() else {
            return Ok(fetched?);
        };
        match fetched {
            Ok(m) => {
                self.store.put_verified(&m.digest, &m.bytes)?;
                self.store.add_origin(&m.digest, filed(repo))?;
                self.store.put_ref(filed(repo), tag, &m.digest)?;
                Ok(m)
            }
            Err(SourceError::Registry(
                err @ (RegistryError::Transport { .. }
                | RegistryError::Unreachable { .. }
                | RegistryError::Body { .. }
                | RegistryError::Offline { .. }),
            )) => {
                if let Some(digest) = self.store.get_ref(filed(repo), tag)
                    && let Some(cached) = self.cached_manifest(source, &digest)?
                {
                    // Offline, the cache is what was asked for: nothing to warn about.
                    if !matches!(err, RegistryError::Offline { .. }) {
                        self.reporter.event(Event::CachedManifest {
                            error: &err,
                            digest: &digest,
                            repository: &repo.to_string(),
                            tag,
                        });
                    }
                    return Ok(cached);
                }
                Err(err.into())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// A manifest by digest: from the cache when there, else from the registry (verified, then cached).
    fn fetch_digest(
        &self,
        source: &Source,
        descriptor: &manifest::Descriptor,
    ) -> Result<FetchedManifest, PourError> {
        let digest = &descriptor.digest;
        if let Some(cached) = self.cached_manifest(source, digest)? {
            return Ok(cached);
        }
        let content = crate::source::open(source, &self.client);
        let m = content.manifest(descriptor)?;
        if let Some(repo) = content.repository() {
            self.store.put_verified(&m.digest, &m.bytes)?;
            self.store.add_origin(&m.digest, filed(repo))?;
        }
        Ok(m)
    }

    /// A layer's bytes from byte `offset` on: from the registry, or from the OCI layout on disk
    /// (`oci:PATH`).
    fn open_blob(
        &self,
        source: &Source,
        digest: &Digest,
        size: u64,
        offset: u64,
    ) -> Result<BlobStream, Unopened<SourceError>> {
        crate::source::open(source, &self.client).open_blob(digest, size, offset)
    }

    fn cached_manifest(
        &self,
        repo: &Source,
        digest: &Digest,
    ) -> Result<Option<FetchedManifest>, PourError> {
        // A manifest is taken from the cache for a repository only when it came from it.
        if let Source::Registry(r) = repo
            && !self.store.has_origin(digest, filed(r))
        {
            return Ok(None);
        }
        let Some(bytes) = self.store.read_verified(digest) else {
            return Ok(None);
        };
        let document = manifest::parse(&bytes, None).map_err(|source| PourError::Manifest {
            repository: repo.clone(),
            source: Box::new(source),
        })?;
        Ok(Some(FetchedManifest {
            digest: digest.clone(),
            bytes,
            document,
            url: self.store.blob_path(digest).display().to_string(),
        }))
    }
}

impl From<SourceError> for PourError {
    fn from(e: SourceError) -> PourError {
        match e {
            SourceError::Registry(e) => PourError::Registry(e),
            SourceError::Layout(e) => PourError::Layout(e),
        }
    }
}
