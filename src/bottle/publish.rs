//! Pushing what a layout's tag points to (a manifest, or an index of platform manifests) to a
//! registry, in the order that never leaves a tag half-made: every blob first (skipped when the
//! registry has it, mounted from a sibling repository when one is named, uploaded whole when small
//! and in chunks when large), then the manifests by digest, and the tag last. A tag that already
//! holds other platforms gets an index with theirs and ours ([`super::merge`]).

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use url::Url;

use super::{BottleError, Current, MAX_CONFIG_BYTES, Merged};
use crate::digest::{Digest, HashingReader};
use crate::platform::Platform;
use crate::registry::manifest::{self, Descriptor, Document, ImageManifest};
use crate::registry::push::{Chunk, Mount};
use crate::registry::{Client, RegistryError, Repository};
use crate::report::{Event, Reporter};
use crate::source::layout::{Layout, LayoutError, REF_NAME, SizeCheck};

pub const DEFAULT_CHUNK_THRESHOLD: u64 = 32 * 1024 * 1024;
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// How many times a chunked upload re-synchronizes with the registry (416) before giving up.
const MAX_RESYNC: u32 = 3;

#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Blobs larger than this go up in chunks (POST, PATCH…, PUT); smaller ones in one PUT.
    pub chunk_threshold: u64,
    pub chunk_size: u64,
    /// Repositories of the same registry that may hold our blobs already (cross-repo mount).
    pub mount_from: Vec<Repository>,
    /// Move a version tag that already points at other content (`--force`).
    pub force: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            chunk_threshold: DEFAULT_CHUNK_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            mount_from: Vec::new(),
            force: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("pushing {what} to {repository} failed")]
    Registry {
        repository: Repository,
        what: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Bottle(#[from] Box<BottleError>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{repository}:{tag} is a released version, and it already points at other content ({}): pkg does not move a version tag silently. Push to a new version (or a channel tag such as `latest`), or pass --force to move it",
        .moves.iter().map(|(from, to)| format!("{from} would become {to}")).collect::<Vec<_>>().join(", ")
    )]
    MovesVersion {
        repository: Repository,
        tag: String,
        /// (what the tag's platform pointed at, what it would point at)
        moves: Vec<(Digest, Digest)>,
    },
    #[error("{layout}: {digest} is an index inside an index; pkg pushes one level of platforms")]
    NestedIndex { layout: PathBuf, digest: Digest },
    #[error("{path}: the blob has {actual} bytes but its descriptor says {expected}")]
    Size {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "chunked upload of {digest} to {repository}: the registry lost track of the upload {times} times"
    )]
    Resync {
        repository: Repository,
        digest: Digest,
        times: u32,
    },
}

const AUTH_HINT: &str = "The registry refused the credentials (or their absence). Pushing needs an account with push access: set PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD, run `pkg login REGISTRY`, or log in with docker/podman; for GHCR use a personal access token with write:packages";

/// A registry error of a push, its credential hint the push's (one hint: the pull's, about
/// read:packages, said beside it contradicted it).
pub(super) fn for_push(source: RegistryError) -> RegistryError {
    match source {
        RegistryError::Unauthorized {
            repository, detail, ..
        } => RegistryError::Unauthorized {
            repository,
            detail,
            hint: AUTH_HINT.into(),
        },
        RegistryError::Denied {
            repository, detail, ..
        } => RegistryError::Denied {
            repository,
            detail,
            hint: AUTH_HINT.into(),
        },
        other => other,
    }
}

fn registry_err(
    repo: &Repository,
    what: impl Into<String>,
) -> impl FnOnce(RegistryError) -> PublishError {
    let repository = repo.clone();
    let what = what.into();
    move |source| PublishError::Registry {
        repository,
        what,
        source: Box::new(for_push(source)),
    }
}

/// How a blob got to the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// It was there already (HEAD 200).
    Existed,
    /// Linked from another repository of the registry.
    Mounted(Repository),
    /// One PUT.
    Uploaded,
    /// POST, PATCH × chunks, PUT.
    Chunked { chunks: u32 },
}

#[derive(Clone, Debug)]
pub struct BlobPush {
    pub digest: Digest,
    pub size: u64,
    pub how: How,
}

/// What a push did.
#[derive(Clone, Debug)]
pub struct PushReport {
    pub repository: Repository,
    pub tag: String,
    /// What the tag points to now.
    pub digest: Digest,
    pub media_type: String,
    pub platforms: Vec<Platform>,
    pub blobs: Vec<BlobPush>,
    /// False when the tag already pointed at exactly this.
    pub tag_changed: bool,
    /// What the tag pointed at before, when it existed.
    pub previous: Option<Digest>,
    /// Released content replaced (with `--force`, or on a channel tag): (before, after).
    pub moved: Vec<(Digest, Digest)>,
}

impl PushReport {
    pub fn bytes_uploaded(&self) -> u64 {
        self.blobs
            .iter()
            .filter(|b| matches!(b.how, How::Uploaded | How::Chunked { .. }))
            .map(|b| b.size)
            .sum()
    }
}

struct Ours {
    descriptor: Descriptor,
    bytes: Vec<u8>,
    manifest: ImageManifest,
}

/// Pushes what `layout_tag` points to in `layout` as `repo:tag`.
/// Long: one publication in the order the registry must see it (what the tag holds now, the blobs,
/// the manifests, the tag moved last), each step refusing before the next begins.
pub fn push(
    client: &Client,
    reporter: &dyn Reporter,
    layout: &Layout,
    layout_tag: &str,
    repo: &Repository,
    tag: &str,
    options: &PushOptions,
) -> Result<PushReport, PublishError> {
    let ours = ours(layout, layout_tag, reporter)?;
    // What the tag holds now, before anything is uploaded: a version tag is not moved silently.
    let current = remote_current(client, repo, tag)?;
    let moved = replaced(&current, &ours);
    if !moved.is_empty() && is_version_tag(tag) && !options.force {
        return Err(PublishError::MovesVersion {
            repository: repo.clone(),
            tag: tag.to_owned(),
            moves: moved,
        });
    }
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for o in &ours {
        for blob in std::iter::once(&o.manifest.config).chain(&o.manifest.layers) {
            if seen.insert(blob.digest.clone()) {
                blobs.push(push_blob(client, reporter, layout, repo, blob, options)?);
            }
        }
    }

    let current_digest = match &current {
        Current::Nothing => None,
        Current::Manifest { descriptor, .. } => Some(descriptor.digest.clone()),
        Current::Index { digest, .. } => Some(digest.clone()),
    };
    let descriptors: Vec<Descriptor> = ours.iter().map(|o| o.descriptor.clone()).collect();
    let merged = super::merge(current, &descriptors).map_err(Box::new)?;
    let tag_changed = current_digest.as_ref() != Some(merged.digest());
    let media_type = match &merged {
        Merged::Manifest(d) => {
            if tag_changed {
                let o = ours.iter().find(|o| o.descriptor.digest == d.digest);
                if let Some(o) = o {
                    reporter.event(Event::Tagging {
                        repository: &repo.to_string(),
                        tag,
                        digest: &d.digest,
                        index: false,
                        was: current_digest.as_ref(),
                    });
                    client
                        .put_manifest(repo, tag, &o.descriptor.media_type, &o.bytes)
                        .map_err(registry_err(repo, format!("manifest {}", d.digest)))?;
                }
            }
            d.media_type.clone()
        }
        Merged::Index { bytes, digest, .. } => {
            for o in &ours {
                client
                    .put_manifest(
                        repo,
                        &o.descriptor.digest.to_string(),
                        &o.descriptor.media_type,
                        &o.bytes,
                    )
                    .map_err(registry_err(
                        repo,
                        format!("manifest {}", o.descriptor.digest),
                    ))?;
            }
            if tag_changed {
                reporter.event(Event::Tagging {
                    repository: &repo.to_string(),
                    tag,
                    digest,
                    index: true,
                    was: current_digest.as_ref(),
                });
                client
                    .put_manifest(repo, tag, manifest::OCI_INDEX, bytes)
                    .map_err(registry_err(repo, format!("index {digest}")))?;
            }
            manifest::OCI_INDEX.to_owned()
        }
    };
    Ok(PushReport {
        repository: repo.clone(),
        tag: tag.to_owned(),
        digest: merged.digest().clone(),
        media_type,
        platforms: merged.platforms(),
        blobs,
        tag_changed,
        previous: current_digest,
        moved,
    })
}

/// A tag that reads as a version (`1.0.0`, `v2.1`, `1.7.1_1`, `2024.05.05`): a release, which
/// is not moved without `--force`. Any other tag (`latest`, `main`, `stable`) is a channel.
pub fn is_version_tag(tag: &str) -> bool {
    tag.strip_prefix('v')
        .unwrap_or(tag)
        .starts_with(|c: char| c.is_ascii_digit())
}

/// The content of `current` that pushing `ours` would replace: for each platform the tag
/// already has, a manifest of ours for the same platform with other bytes. A platform added to
/// an index is not a replacement.
fn replaced(current: &Current, ours: &[Ours]) -> Vec<(Digest, Digest)> {
    let same = |p: Option<&Platform>, o: &Ours| {
        p.zip(o.descriptor.platform.as_ref())
            .is_some_and(|(a, b)| super::same_platform(a, b))
    };
    let mut out = Vec::new();
    let mut check = |digest: &Digest, platform: Option<&Platform>| {
        if ours.iter().any(|o| &o.descriptor.digest == digest) {
            return;
        }
        if let Some(o) = ours.iter().find(|o| same(platform, o)) {
            out.push((digest.clone(), o.descriptor.digest.clone()));
        }
    };
    match current {
        Current::Nothing => {}
        Current::Manifest {
            descriptor,
            platform,
        } => check(&descriptor.digest, platform.as_ref()),
        Current::Index { document, .. } => {
            for entry in document
                .get("manifests")
                .and_then(|m| m.as_array())
                .into_iter()
                .flatten()
            {
                let digest = entry
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .and_then(|d| d.parse::<Digest>().ok());
                let platform = entry
                    .get("platform")
                    .and_then(|p| serde_json::from_value(p.clone()).ok());
                if let Some(d) = digest {
                    check(&d, platform.as_ref());
                }
            }
        }
    }
    out
}

/// The manifests `layout_tag` stands for, each with its platform.
fn ours(layout: &Layout, tag: &str, reporter: &dyn Reporter) -> Result<Vec<Ours>, PublishError> {
    let top = layout.resolve(tag)?;
    let fetched = layout.read_manifest(&top, SizeCheck::Warn(reporter))?;
    let mut out = Vec::new();
    match fetched.document {
        Document::Manifest(m) => {
            let mut d = top;
            d.annotations.remove(REF_NAME);
            d.size = fetched.bytes.len() as u64;
            if d.media_type.is_empty() {
                d.media_type = m
                    .media_type
                    .clone()
                    .unwrap_or_else(|| manifest::OCI_MANIFEST.into());
            }
            if d.platform.is_none() {
                d.platform = layout
                    .read_blob(&m.config, MAX_CONFIG_BYTES, SizeCheck::Exact)
                    .ok()
                    .and_then(|b| super::platform_of_config(&b));
            }
            out.push(Ours {
                descriptor: d,
                bytes: fetched.bytes,
                manifest: m,
            });
        }
        Document::Index(index) => {
            for mut entry in index.manifests {
                let child = layout.read_manifest(&entry, SizeCheck::Exact)?;
                match child.document {
                    Document::Manifest(m) => {
                        if entry.media_type.is_empty() {
                            entry.media_type = manifest::OCI_MANIFEST.into();
                        }
                        out.push(Ours {
                            descriptor: entry,
                            bytes: child.bytes,
                            manifest: m,
                        });
                    }
                    Document::Index(_) => {
                        return Err(PublishError::NestedIndex {
                            layout: layout.root().to_owned(),
                            digest: entry.digest,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What `repo:tag` points to in the registry now.
fn remote_current(client: &Client, repo: &Repository, tag: &str) -> Result<Current, PublishError> {
    let fetched = match client.fetch_manifest(repo, tag) {
        Ok(m) => m,
        Err(RegistryError::NotFound { .. }) => return Ok(Current::Nothing),
        Err(e) => return Err(registry_err(repo, format!("(reading the tag `{tag}`)"))(e)),
    };
    Ok(match fetched.document {
        Document::Index(_) => Current::Index {
            digest: fetched.digest,
            document: serde_json::from_slice(&fetched.bytes).map_err(|e| {
                Box::new(BottleError::Document {
                    what: fetched.url.clone(),
                    reason: e.to_string(),
                })
            })?,
        },
        Document::Manifest(m) => {
            let platform = remote_config(client, repo, &m.config)
                .ok()
                .and_then(|b| super::platform_of_config(&b));
            Current::Manifest {
                descriptor: Box::new(Descriptor {
                    media_type: m
                        .media_type
                        .clone()
                        .unwrap_or_else(|| manifest::OCI_MANIFEST.into()),
                    digest: fetched.digest,
                    size: fetched.bytes.len() as u64,
                    platform: None,
                    annotations: Default::default(),
                }),
                platform,
            }
        }
    })
}

/// A remote config blob, verified.
fn remote_config(
    client: &Client,
    repo: &Repository,
    config: &Descriptor,
) -> Result<Vec<u8>, RegistryError> {
    if config.size > MAX_CONFIG_BYTES {
        return Err(RegistryError::TooLarge {
            url: config.digest.to_string(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    let stream = client.open_blob(repo, &config.digest, config.size)?;
    let mut reader = HashingReader::new(stream.reader, config.size);
    let mut bytes = Vec::new();
    let read = |source| RegistryError::Read {
        url: stream.url.clone(),
        source,
    };
    reader.read_to_end(&mut bytes).map_err(read)?;
    let (digest, count) = reader.finish().map_err(read)?;
    if digest != config.digest || count != config.size {
        return Err(RegistryError::DigestMismatch {
            what: "config".into(),
            expected: config.digest.to_string(),
            actual: digest.to_string(),
            url: stream.url.clone(),
        });
    }
    Ok(bytes)
}

fn push_blob(
    client: &Client,
    reporter: &dyn Reporter,
    layout: &Layout,
    repo: &Repository,
    blob: &Descriptor,
    options: &PushOptions,
) -> Result<BlobPush, PublishError> {
    let digest = &blob.digest;
    let done = |how| {
        Ok(BlobPush {
            digest: digest.clone(),
            size: blob.size,
            how,
        })
    };
    let exists = client
        .blob_exists(repo, digest)
        .map_err(registry_err(repo, format!("blob {digest}")))?;
    if exists {
        reporter.event(Event::BlobPresent {
            digest,
            repository: &repo.to_string(),
        });
        return done(How::Existed);
    }
    let (mut file, actual) = layout.open_blob(digest)?;
    let path = layout.blob_path(digest);
    if actual != blob.size {
        return Err(PublishError::Size {
            path,
            expected: blob.size,
            actual,
        });
    }
    let session = match mount_or_start(client, reporter, repo, digest, &options.mount_from)? {
        Ok(session) => session,
        Err(from) => return done(How::Mounted(from)),
    };
    let io = |source| PublishError::Io {
        path: path.clone(),
        source,
    };
    if blob.size <= options.chunk_threshold {
        reporter.event(Event::Uploading {
            digest,
            size: blob.size,
            chunk: None,
        });
        let progress = reporter.progress("Uploading", blob.size);
        let mut bytes = Vec::with_capacity(usize::try_from(blob.size).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(io)?;
        client
            .upload_whole(repo, &session, digest, &bytes)
            .map_err(registry_err(repo, format!("blob {digest}")))?;
        progress.advance(blob.size);
        progress.finish();
        return done(How::Uploaded);
    }
    let chunk_size = options.chunk_size.max(1);
    reporter.event(Event::Uploading {
        digest,
        size: blob.size,
        chunk: Some(chunk_size),
    });
    let progress = reporter.progress("Uploading", blob.size);
    let (location, chunks) = upload_chunks(
        client,
        repo,
        blob,
        (&mut file, &path),
        session,
        chunk_size,
        &*progress,
    )?;
    client
        .finish_upload(repo, &location, digest)
        .map_err(registry_err(repo, format!("blob {digest}")))?;
    progress.finish();
    done(How::Chunked { chunks })
}

/// An upload session for `digest`: opened by a mount from one of `mount_from` (on the same
/// registry) that the registry answered with a session, else started anew. `Err(from)` when
/// a mount took the blob whole from `from` (nothing to upload); a refused mount is said, and
/// the next is tried.
fn mount_or_start(
    client: &Client,
    reporter: &dyn Reporter,
    repo: &Repository,
    digest: &Digest,
    mount_from: &[Repository],
) -> Result<Result<Url, Repository>, PublishError> {
    for from in mount_from {
        if from.registry != repo.registry || from == repo {
            continue;
        }
        match client.mount_blob(repo, digest, from) {
            Ok(Mount::Mounted) => {
                reporter.event(Event::Mounted {
                    digest,
                    from: &from.to_string(),
                });
                return Ok(Err(from.clone()));
            }
            Ok(Mount::Opened(url)) => return Ok(Ok(url)),
            Err(e) => reporter.event(Event::MountFailed {
                digest,
                from: &from.to_string(),
                error: &e,
            }),
        }
    }
    client
        .start_upload(repo)
        .map(Ok)
        .map_err(registry_err(repo, format!("blob {digest}")))
}

/// Uploads `blob` from `file` in chunks of `chunk_size` through the session at `location`,
/// trusting the registry's count of what it holds over ours (a resync steps back, at most
/// [`MAX_RESYNC`] times). Returns where to finish the upload and the chunks sent.
fn upload_chunks(
    client: &Client,
    repo: &Repository,
    blob: &Descriptor,
    (file, path): (&mut std::fs::File, &std::path::Path),
    mut location: Url,
    chunk_size: u64,
    progress: &dyn crate::report::Progress,
) -> Result<(Url, u32), PublishError> {
    let digest = &blob.digest;
    let io = |source| PublishError::Io {
        path: path.to_owned(),
        source,
    };
    let resync = |resyncs: u32| {
        if resyncs > MAX_RESYNC {
            return Err(PublishError::Resync {
                repository: repo.clone(),
                digest: digest.clone(),
                times: resyncs,
            });
        }
        Ok(())
    };
    // The furthest the registry has acknowledged (a resync may step back; the bar does not).
    let mut shown = 0u64;
    let mut offset = 0u64;
    let mut chunks = 0u32;
    let mut resyncs = 0u32;
    let mut buf = vec![
        0u8;
        usize::try_from(chunk_size)
            .unwrap_or(usize::MAX)
            .min(1 << 30)
    ];
    while offset < blob.size {
        if offset > shown {
            progress.advance(offset - shown);
            shown = offset;
        }
        let want = usize::try_from((blob.size - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        file.read_exact(&mut buf[..want]).map_err(io)?;
        match client
            .upload_chunk(repo, &location, offset, &buf[..want])
            .map_err(registry_err(repo, format!("blob {digest}")))?
        {
            Chunk::Accepted { next, end } => {
                location = next;
                chunks += 1;
                let expected = offset + want as u64;
                offset = match end {
                    Some(end) if end + 1 < expected => {
                        resyncs += 1;
                        resync(resyncs)?;
                        end + 1
                    }
                    _ => expected,
                };
            }
            Chunk::RangeInvalid => {
                resyncs += 1;
                resync(resyncs)?;
                let (next, at) = client
                    .upload_offset(repo, &location)
                    .map_err(registry_err(repo, format!("blob {digest}")))?;
                location = next;
                offset = at.min(blob.size);
            }
        }
    }
    progress.advance(blob.size.saturating_sub(shown));
    Ok((location, chunks))
}
