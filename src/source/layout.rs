//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/HEX`): written by
//! `pkg bottle` (blobs and `index.json` through a temp file + rename, so a reader never sees half
//! of one) and read by `pkg install` for formulae whose repository is `oci:PATH`.
//!
//! Tags are the `org.opencontainers.image.ref.name` annotations of `index.json` entries; a bare
//! tag (`1.0.0`) and a full reference ending in `:1.0.0` (what crane writes) both match.
//!
//! Every blob read is checked against its digest. A descriptor *in `index.json`* whose size is
//! wrong while the digest verifies is accepted with a warning: `index.json` is the one mutable,
//! unaddressed file of a layout (hand-edited, or written by tools that got it wrong — the seed's
//! anakin layout says 548 bytes for a 504-byte manifest), the digest is the content's identity,
//! and manifests are read with a 4 MiB cap whatever the size says. Descriptors inside manifests
//! and indexes are content-addressed and must be exact, as registries require.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::registry::FetchedManifest;
use crate::registry::manifest::{self, Descriptor, ManifestError};
use crate::report::{Event, Reporter};
use crate::store::BlobStream;

pub const LAYOUT_FILE: &str = "oci-layout";
pub const INDEX_FILE: &str = "index.json";
pub use crate::registry::manifest::REF_NAME;
const LAYOUT_VERSION: &str = "1.0.0";
/// Largest `index.json` read.
const MAX_INDEX_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("the OCI layout {layout} has no tag `{tag}`; it has: {available}")]
    UnknownTag {
        layout: PathBuf,
        tag: String,
        available: String,
    },
    #[error("the OCI layout {layout} lacks blob {digest} (expected at {path})")]
    Missing {
        layout: PathBuf,
        digest: Digest,
        path: PathBuf,
    },
    #[error(
        "SHA-256 mismatch in an OCI layout\n  Expected: {expected}\n  Actual:   {actual}\n  File:     {path}"
    )]
    Mismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: {digest} is {actual} bytes, but the manifest that names it says {expected}")]
    Size {
        path: PathBuf,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: larger than the {limit}-byte limit")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether a descriptor's stated size must match the blob.
#[derive(Clone, Copy)]
pub enum SizeCheck<'a> {
    /// Content-addressed descriptors (inside manifests and indexes).
    Exact,
    /// Descriptors from `index.json`: a wrong size is reported here and the blob is used when
    /// its digest verifies.
    Warn(&'a dyn Reporter),
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens the layout at `root`, creating it (directories and `oci-layout`) when missing.
    /// Refuses a directory a new layout cannot go to: one that exists, is not empty and is not
    /// a layout (a layout is never scattered over something else), or a file.
    pub fn check_free(root: &Path) -> Result<(), LayoutError> {
        let refuse = |reason: String| LayoutError::NotALayout {
            path: root.to_owned(),
            reason,
        };
        if root.join(LAYOUT_FILE).exists() {
            return Ok(());
        }
        if root.exists() && !root.is_dir() {
            return Err(refuse(
                "it is a file; choose a new or empty directory".into(),
            ));
        }
        if let Ok(mut entries) = std::fs::read_dir(root)
            && entries.next().is_some()
        {
            return Err(refuse(format!(
                "the directory exists, is not empty and has no {LAYOUT_FILE}; choose a new or empty directory"
            )));
        }
        Ok(())
    }

    pub fn create(root: &Path) -> Result<Layout, LayoutError> {
        Self::check_free(root)?;
        let blobs = root.join("blobs/sha256");
        fs_err::create_dir_all(&blobs).map_err(io_at(&blobs))?;
        let layout = Layout {
            root: root.to_owned(),
        };
        let marker = root.join(LAYOUT_FILE);
        if marker.exists() {
            layout.check_marker()?;
        } else {
            let text = format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#);
            layout.write_atomically(&marker, text.as_bytes())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout.
    pub fn open(root: &Path) -> Result<Layout, LayoutError> {
        let layout = Layout {
            root: root.to_owned(),
        };
        layout.check_marker()?;
        Ok(layout)
    }

    fn check_marker(&self) -> Result<(), LayoutError> {
        let marker = self.root.join(LAYOUT_FILE);
        let not = |reason: String| LayoutError::NotALayout {
            path: self.root.clone(),
            reason,
        };
        let text = match std::fs::read(&marker) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not(format!("{LAYOUT_FILE} is missing")));
            }
            Err(source) => {
                return Err(LayoutError::Io {
                    path: marker,
                    source,
                });
            }
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let m: Marker = serde_json::from_slice(&text)
            .map_err(|e| not(format!("{LAYOUT_FILE} is not valid: {e}")))?;
        if !m.image_layout_version.starts_with("1.") {
            return Err(not(format!(
                "unsupported imageLayoutVersion `{}` (pkg reads 1.x)",
                m.image_layout_version
            )));
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A temporary file inside the layout (same filesystem as the blobs, so it can be renamed in).
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, LayoutError> {
        tempfile::Builder::new()
            .prefix(".pkg-tmp-")
            .tempfile_in(&self.root)
            .map_err(io_at(&self.root))
    }

    /// Moves a finished temporary file into place as the blob `digest` (the caller hashed it).
    pub fn put_file(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: &Digest,
    ) -> Result<(), LayoutError> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            return Ok(());
        }
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_at(tmp.path()))?;
        tmp.persist(&dest).map_err(|e| LayoutError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of_bytes(bytes);
        if !self.has_blob(&digest) {
            let mut tmp = self.temp_file()?;
            tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
            self.put_file(tmp, &digest)?;
        }
        Ok(digest)
    }

    fn write_atomically(&self, dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_at(tmp.path()))?;
        tmp.persist(dest).map_err(|e| LayoutError::Io {
            path: dest.to_owned(),
            source: e.error,
        })?;
        Ok(())
    }

    /// `index.json` as JSON (an empty index when the file does not exist yet).
    fn index_value(&self) -> Result<serde_json::Value, LayoutError> {
        let path = self.root.join(INDEX_FILE);
        let bytes = match read_capped(&path, MAX_INDEX_BYTES) {
            Ok(b) => b,
            Err(LayoutError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": manifest::OCI_INDEX,
                    "manifests": [],
                }));
            }
            Err(e) => return Err(e),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                path: path.clone(),
                reason: format!("not valid JSON: {e}"),
            })?;
        if !value.get("manifests").is_some_and(|m| m.is_array()) {
            return Err(LayoutError::Invalid {
                path,
                reason: "no `manifests` array".into(),
            });
        }
        Ok(value)
    }

    /// The entries of `index.json`.
    pub fn entries(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let path = self.root.join(INDEX_FILE);
        let value = match std::fs::metadata(&path) {
            Ok(_) => self.index_value()?,
            Err(source) => return Err(LayoutError::Io { path, source }),
        };
        let manifests = value
            .get("manifests")
            .cloned()
            .unwrap_or(serde_json::Value::Array(Vec::new()));
        serde_json::from_value(manifests).map_err(|e| LayoutError::Invalid {
            path,
            reason: format!("an entry of `manifests` is not a valid descriptor: {e}"),
        })
    }

    /// Points `tag` at `descriptor` in `index.json` (replacing what the tag pointed to, keeping
    /// every other entry and field), written through a temp file + rename.
    pub fn set_tag(&self, tag: &str, descriptor: &Descriptor) -> Result<(), LayoutError> {
        let path = self.root.join(INDEX_FILE);
        let mut index = self.index_value()?;
        let mut entry = descriptor.clone();
        entry
            .annotations
            .insert(REF_NAME.to_owned(), tag.to_owned());
        let entry = serde_json::to_value(&entry).map_err(|e| LayoutError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) {
            let position = list.iter().position(|e| tag_matches(ref_name(e), tag));
            list.retain(|e| !tag_matches(ref_name(e), tag));
            match position {
                Some(i) if i <= list.len() => list.insert(i, entry),
                _ => list.push(entry),
            }
        }
        if let Some(obj) = index.as_object_mut() {
            obj.insert("schemaVersion".into(), 2.into());
            obj.entry("mediaType")
                .or_insert_with(|| manifest::OCI_INDEX.into());
        }
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| LayoutError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.write_atomically(&path, &bytes)
    }

    /// The `index.json` entry for `tag`, if any.
    pub fn find(&self, tag: &str) -> Result<Option<Descriptor>, LayoutError> {
        if !self.root.join(INDEX_FILE).exists() {
            return Ok(None);
        }
        let entries = self.entries()?;
        let exact = entries
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag));
        Ok(exact
            .or_else(|| {
                entries
                    .iter()
                    .find(|d| tag_matches(d.annotations.get(REF_NAME).map(String::as_str), tag))
            })
            .cloned())
    }

    /// The `index.json` entry for `tag`, or an error listing the tags there are.
    pub fn resolve(&self, tag: &str) -> Result<Descriptor, LayoutError> {
        if let Some(d) = self.find(tag)? {
            return Ok(d);
        }
        let tags: Vec<String> = self
            .entries()?
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).cloned())
            .collect();
        Err(LayoutError::UnknownTag {
            layout: self.root.clone(),
            tag: tag.to_owned(),
            available: if tags.is_empty() {
                "no tagged entries".into()
            } else {
                tags.join(", ")
            },
        })
    }

    /// Reads a blob of at most `limit` bytes and checks its digest and size.
    pub fn read_blob(
        &self,
        descriptor: &Descriptor,
        limit: u64,
        check: SizeCheck<'_>,
    ) -> Result<Vec<u8>, LayoutError> {
        let digest = &descriptor.digest;
        let path = self.blob_path(digest);
        if !path.is_file() {
            return Err(LayoutError::Missing {
                layout: self.root.clone(),
                digest: digest.clone(),
                path,
            });
        }
        let bytes = read_capped(&path, limit)?;
        if !digest.matches(&bytes) {
            return Err(LayoutError::Mismatch {
                path,
                expected: digest.clone(),
                actual: Digest::of_bytes_with(digest.kind(), &bytes),
            });
        }
        let size = bytes.len() as u64;
        if size != descriptor.size {
            match check {
                SizeCheck::Exact => {
                    return Err(LayoutError::Size {
                        path,
                        digest: digest.clone(),
                        expected: descriptor.size,
                        actual: size,
                    });
                }
                SizeCheck::Warn(reporter) => reporter.event(Event::LayoutSizeDiffers {
                    index: &self.root.join(INDEX_FILE),
                    digest,
                    said: descriptor.size,
                    size,
                }),
            }
        }
        Ok(bytes)
    }

    /// Reads and parses a manifest or index (at most 4 MiB), verified against its digest.
    pub fn read_manifest(
        &self,
        descriptor: &Descriptor,
        check: SizeCheck<'_>,
    ) -> Result<FetchedManifest, LayoutError> {
        let bytes = self.read_blob(descriptor, manifest::MAX_MANIFEST_BYTES, check)?;
        let path = self.blob_path(&descriptor.digest);
        let media_type = Some(descriptor.media_type.as_str()).filter(|m| !m.is_empty());
        let document =
            manifest::parse(&bytes, media_type).map_err(|source| LayoutError::Manifest {
                path: path.clone(),
                source,
            })?;
        Ok(FetchedManifest {
            digest: descriptor.digest.clone(),
            bytes,
            document,
            url: path.display().to_string(),
        })
    }

    /// The manifest (or index) `tag` points to; a mis-stated size is warned about (see the
    /// module docs).
    pub fn fetch_tag(
        &self,
        tag: &str,
        reporter: &dyn Reporter,
    ) -> Result<FetchedManifest, LayoutError> {
        let descriptor = self.resolve(tag)?;
        self.read_manifest(&descriptor, SizeCheck::Warn(reporter))
    }

    /// Opens a blob for streaming (the reader of the cache verifies digest and size).
    pub fn open_blob(&self, digest: &Digest) -> Result<(File, u64), LayoutError> {
        let path = self.blob_path(digest);
        if !path.is_file() {
            return Err(LayoutError::Missing {
                layout: self.root.clone(),
                digest: digest.clone(),
                path,
            });
        }
        let file = File::open(&path).map_err(io_at(&path))?;
        let len = file.metadata().map_err(io_at(&path))?.len();
        Ok((file, len))
    }

    /// A blob as a [`BlobStream`], the shape the verified cache reads downloads in.
    pub fn blob_stream(&self, digest: &Digest) -> Result<BlobStream, LayoutError> {
        let (file, _) = self.open_blob(digest)?;
        Ok(BlobStream {
            url: self.blob_path(digest).display().to_string(),
            reader: Box::new(file),
        })
    }
}

fn ref_name(entry: &serde_json::Value) -> Option<&str> {
    entry
        .get("annotations")
        .and_then(|a| a.get(REF_NAME))
        .and_then(|r| r.as_str())
}

/// A ref name matches a tag when it is the tag, or a reference ending in `:tag`.
pub fn tag_matches(ref_name: Option<&str>, tag: &str) -> bool {
    match ref_name {
        Some(r) if r == tag => true,
        Some(r) => r
            .rsplit_once(':')
            .is_some_and(|(head, t)| t == tag && !head.is_empty() && !t.contains('/')),
        None => false,
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let file = File::open(path).map_err(io_at(path))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_at(path))?;
    if bytes.len() as u64 > limit {
        return Err(LayoutError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::report::Collect;

    fn descriptor(digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: manifest::OCI_MANIFEST.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

    #[test]
    fn tags_match_bare_or_as_reference_suffix() {
        assert!(tag_matches(Some("1.0.0"), "1.0.0"));
        assert!(tag_matches(Some("ghcr.io/a/b:1.0.0"), "1.0.0"));
        assert!(tag_matches(Some("127.0.0.1:5000/a/b:1.0.0"), "1.0.0"));
        assert!(!tag_matches(Some("127.0.0.1:5000/a/b"), "5000"));
        assert!(!tag_matches(Some("1.0.0"), "1.0"));
        assert!(!tag_matches(None, "1.0.0"));
    }

    #[test]
    fn set_tag_replaces_only_that_tag_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let a = layout.put_bytes(MANIFEST.as_bytes()).unwrap();
        let b = layout
            .put_bytes(b"{\"layers\":[],\"config\":null}")
            .unwrap();
        layout
            .set_tag("1.0.0", &descriptor(a.clone(), MANIFEST.len() as u64))
            .unwrap();
        layout.set_tag("2.0.0", &descriptor(b.clone(), 26)).unwrap();
        layout.set_tag("1.0.0", &descriptor(b.clone(), 26)).unwrap();
        let entries = layout.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(layout.resolve("1.0.0").unwrap().digest, b);
        assert_eq!(layout.resolve("2.0.0").unwrap().digest, b);
        let err = layout.resolve("3.0.0").unwrap_err().to_string();
        assert!(err.contains("1.0.0, 2.0.0"), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".pkg-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        Layout::open(dir.path()).unwrap();
    }

    #[test]
    fn misstated_size_in_index_json_warns_but_inside_a_manifest_fails() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let digest = layout.put_bytes(MANIFEST.as_bytes()).unwrap();
        let wrong = descriptor(digest.clone(), MANIFEST.len() as u64 + 44);
        layout.set_tag("1.0.0", &wrong).unwrap();
        let reporter = Collect::default();
        let fetched = layout.fetch_tag("1.0.0", &reporter).unwrap();
        assert_eq!(fetched.digest, digest);
        let said = reporter.events();
        assert_eq!(said.len(), 1);
        assert!(said[0].starts_with("LayoutSizeDiffers"), "{said:?}");
        let Err(err) = layout.read_manifest(&wrong, SizeCheck::Exact) else {
            panic!("a wrong size inside a manifest was accepted")
        };
        assert!(matches!(err, LayoutError::Size { .. }), "{err}");
    }

    #[test]
    fn a_non_empty_directory_is_not_turned_into_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = Layout::create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert!(!dir.path().join("blobs").exists());
        let empty = tempfile::tempdir().unwrap();
        Layout::create(empty.path()).unwrap();
        Layout::create(empty.path()).unwrap();
    }

    #[test]
    fn tampered_blobs_and_non_layouts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Layout::open(dir.path()).unwrap_err(),
            LayoutError::NotALayout { .. }
        ));
        let layout = Layout::create(dir.path()).unwrap();
        let digest = layout.put_bytes(MANIFEST.as_bytes()).unwrap();
        std::fs::write(layout.blob_path(&digest), MANIFEST.replace("2,", "3,")).unwrap();
        let d = descriptor(digest, MANIFEST.len() as u64);
        let Err(err) = layout.read_manifest(&d, SizeCheck::Exact) else {
            panic!("a tampered blob was accepted")
        };
        assert!(matches!(err, LayoutError::Mismatch { .. }), "{err}");
    }
}
