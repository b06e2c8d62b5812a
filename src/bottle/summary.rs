//! What `pkg bottle --json` prints: the layer, config, manifest and layout tag made, what a push
//! did blob by blob, and the formula entry — one typed document with its `schema`.

use std::path::Path;

use super::publish::{How, PushReport};
use super::write::Entry;
use super::{BottleSpec, Bottled};
use crate::digest::Digest;

/// The version of this document.
pub const SCHEMA: u32 = 1;

#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub schema: u32,
    pub name: String,
    pub version: String,
    pub platform: String,
    pub layout: String,
    pub tag: String,
    pub layer: Layer,
    pub config: Blob,
    pub manifest: Manifest,
    pub layout_tag: LayoutTag,
    /// `null` without `--push`.
    pub push: Option<Push>,
    pub formula: FormulaEntry,
    /// The formula file written (`--write`), else `null`.
    pub written: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub entries: u64,
    pub installed_size: u64,
    pub filename: String,
    /// `application/vnd.oci.image.layer.v1.tar+gzip` or `…tar+zstd`.
    pub media_type: &'static str,
}

#[derive(Debug, serde::Serialize)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Manifest {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, serde::Serialize)]
pub struct LayoutTag {
    pub digest: Digest,
    pub media_type: String,
    pub platforms: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Push {
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    pub platforms: Vec<String>,
    pub tag_changed: bool,
    /// `created`, `unchanged`, `moved` (released content replaced) or `extended` (a platform
    /// added to what the tag held).
    pub tag_state: &'static str,
    /// What the tag pointed at before, when it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<Digest>,
    pub bytes_uploaded: u64,
    pub blobs: Vec<PushedBlob>,
}

/// One blob of a push: `how` is `existed`, `mounted` (with `from`), `uploaded` or `chunked`
/// (with `chunks`).
#[derive(Debug, serde::Serialize)]
pub struct PushedBlob {
    pub digest: Digest,
    pub size: u64,
    pub how: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
}

#[derive(Debug, serde::Serialize)]
pub struct FormulaEntry {
    pub version: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

impl Summary {
    pub fn new(
        spec: &BottleSpec,
        bottled: &Bottled,
        pushed: Option<&PushReport>,
        entry: &Entry,
        written: Option<&Path>,
    ) -> Summary {
        let platforms =
            |p: &[crate::platform::Platform]| p.iter().map(ToString::to_string).collect();
        Summary {
            schema: SCHEMA,
            name: spec.name.clone(),
            version: spec.version.clone(),
            platform: spec.platform.to_string(),
            layout: bottled.layout.display().to_string(),
            tag: bottled.tag.clone(),
            layer: Layer {
                digest: bottled.layer.digest.clone(),
                size: bottled.layer.size,
                diff_id: bottled.layer.diff_id.clone(),
                entries: bottled.layer.entries,
                installed_size: bottled.layer.installed_size,
                filename: spec.filename(bottled.layer.compression.extension()),
                media_type: bottled.layer.compression.media_type(),
            },
            config: Blob {
                digest: bottled.config.digest.clone(),
                size: bottled.config.size,
            },
            manifest: Manifest {
                digest: bottled.manifest.digest.clone(),
                size: bottled.manifest.size,
                media_type: bottled.manifest.media_type.clone(),
            },
            layout_tag: LayoutTag {
                digest: bottled.top.digest.clone(),
                media_type: bottled.top.media_type.clone(),
                platforms: platforms(&bottled.platforms),
            },
            push: pushed.map(|r| Push {
                repository: r.repository.to_string(),
                tag: r.tag.clone(),
                digest: r.digest.clone(),
                media_type: r.media_type.clone(),
                platforms: platforms(&r.platforms),
                tag_changed: r.tag_changed,
                tag_state: match (&r.previous, r.tag_changed) {
                    (_, false) => "unchanged",
                    (None, true) => "created",
                    (Some(_), true) if !r.moved.is_empty() => "moved",
                    (Some(_), true) => "extended",
                },
                previous_digest: r.previous.clone(),
                bytes_uploaded: r.bytes_uploaded(),
                blobs: r
                    .blobs
                    .iter()
                    .map(|b| {
                        let (how, from, chunks) = match &b.how {
                            How::Existed => ("existed", None, None),
                            How::Mounted(from) => ("mounted", Some(from.to_string()), None),
                            How::Uploaded => ("uploaded", None, None),
                            How::Chunked { chunks } => ("chunked", None, Some(*chunks)),
                        };
                        PushedBlob {
                            digest: b.digest.clone(),
                            size: b.size,
                            how,
                            from,
                            chunks,
                        }
                    })
                    .collect(),
            }),
            formula: FormulaEntry {
                version: entry.version.clone(),
                repository: entry.repository.clone(),
                tag: entry.tag.clone(),
                digest: entry.digest.clone(),
            },
            written: written.map(|p| p.display().to_string()),
        }
    }
}
