//! Bottling: the install flow walked in reverse. A directory becomes a reproducible tar.gz layer
//! (build.rs), a config and a manifest in an OCI image layout (source/layout.rs), which can be pushed to
//! any registry (publish.rs) and written back into a formula (write.rs).
//!
//! Several platforms under one tag: adding a platform to a tag that already points at another
//! platform's manifest (or at an index) gives an image index holding both — in a layout and in a
//! registry alike — and re-bottling a platform replaces only that platform's entry ([`merge`]).

pub mod attach;
pub mod build;
pub mod inputs;
pub mod make;
pub mod publish;
pub mod summary;
pub mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::platform::Platform;
use crate::registry::manifest::{self, Descriptor};
use crate::source::layout::{Layout, LayoutError, SizeCheck};
use build::{BuildError, BuildOptions, LayerInfo};

pub use crate::registry::manifest::{CONFIG_TYPE, CREATED, TITLE, VERSION};
/// Largest config blob read back (to learn the platform of an existing manifest).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BottleError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("writing the bottle into {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid platform `{value}`: expected OS/ARCH or OS/ARCH/VARIANT, like linux/amd64 or linux/arm64/v8"
    )]
    Platform { value: String },
    #[error("{what}: {reason}")]
    Document { what: String, reason: String },
}

/// What to bottle and how to label it.
#[derive(Clone, Debug)]
pub struct BottleSpec {
    pub name: String,
    pub version: String,
    pub platform: Platform,
    /// The tag in the layout (and, by default, in the registry).
    pub tag: String,
    /// Manifest annotations (version, source, licenses, description, created…).
    pub annotations: BTreeMap<String, String>,
    /// `created` in the config, only when asked for (RFC 3339).
    pub created: Option<String>,
}

impl BottleSpec {
    /// The bottle's file name, as the layer's `org.opencontainers.image.title` (`ext`: `gz`
    /// or `zst`).
    pub fn filename(&self, ext: &str) -> String {
        let p = &self.platform;
        let variant = p
            .variant
            .as_deref()
            .map(|v| format!("_{v}"))
            .unwrap_or_default();
        format!(
            "{}--{}.{}_{}{variant}.bottle.tar.{ext}",
            self.name, self.version, p.os, p.architecture
        )
    }
}

/// What `bottle` wrote.
#[derive(Clone, Debug)]
pub struct Bottled {
    pub layout: PathBuf,
    pub tag: String,
    pub layer: LayerInfo,
    pub config: Descriptor,
    /// The manifest, with its platform.
    pub manifest: Descriptor,
    /// What the tag points to now: the manifest, or an index holding it and other platforms.
    pub top: Descriptor,
    /// Platforms under the tag.
    pub platforms: Vec<Platform>,
}

#[derive(serde::Serialize)]
struct Config<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<&'a str>,
    config: serde_json::Map<String, serde_json::Value>,
    rootfs: RootFs<'a>,
}

#[derive(serde::Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: [&'a Digest; 1],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 1],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// Packs `dir` and adds it to the layout at `layout_dir` under `spec.tag`.
///
/// A new layout is built in a staging directory beside `layout_dir` and renamed into place only
/// once complete, so a failure leaves nothing; a platform added to an existing layout writes
/// its blobs (content-addressed) and then the index, each atomically.
pub fn bottle(
    dir: &Path,
    layout_dir: &Path,
    spec: &BottleSpec,
    options: &BuildOptions,
    reporter: &dyn crate::report::Reporter,
) -> Result<Bottled, BottleError> {
    if layout_dir.join(crate::source::layout::LAYOUT_FILE).exists() {
        return build_into(dir, layout_dir, layout_dir, spec, options, reporter);
    }
    // Refused as a layout would refuse it, before anything is written.
    Layout::check_free(layout_dir)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BottleError::Io { path, source }
    };
    let parent = match layout_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    fs_err::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".pkg-bottle-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let bottled = build_into(dir, staging.path(), layout_dir, spec, options, reporter)?;
    // An empty directory in the way is replaced by the rename; anything else was refused above.
    std::fs::rename(staging.path(), layout_dir).map_err(io(layout_dir))?;
    let _ = staging.keep();
    Ok(bottled)
}

fn build_into(
    dir: &Path,
    root: &Path,
    layout_dir: &Path,
    spec: &BottleSpec,
    options: &BuildOptions,
    reporter: &dyn crate::report::Reporter,
) -> Result<Bottled, BottleError> {
    let layout = Layout::create(root)?;
    let tmp = layout.temp_file()?;
    let tmp_path = tmp.path().to_owned();
    let (layer, writer) = build::build_layer(dir, options, std::io::BufWriter::new(tmp), reporter)?;
    let tmp = writer.into_inner().map_err(|e| BottleError::Io {
        path: tmp_path.clone(),
        source: e.into_error(),
    })?;
    tmp.as_file().sync_all().map_err(|source| BottleError::Io {
        path: tmp_path,
        source,
    })?;
    layout.put_file(tmp, &layer.digest)?;

    let config = Config {
        architecture: &spec.platform.architecture,
        os: &spec.platform.os,
        variant: spec.platform.variant.as_deref(),
        created: spec.created.as_deref(),
        config: serde_json::Map::new(),
        rootfs: RootFs {
            kind: "layers",
            diff_ids: [&layer.diff_id],
        },
    };
    let config_bytes = to_json(&config, "the image config")?;
    let config_desc = descriptor(
        CONFIG_TYPE,
        layout.put_bytes(&config_bytes)?,
        config_bytes.len() as u64,
    );
    let mut layer_desc = descriptor(
        layer.compression.media_type(),
        layer.digest.clone(),
        layer.size,
    );
    layer_desc.annotations.insert(
        TITLE.to_owned(),
        spec.filename(layer.compression.extension()),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: manifest::OCI_MANIFEST,
        config: &config_desc,
        layers: [&layer_desc],
        annotations: &spec.annotations,
    };
    let manifest_bytes = to_json(&manifest, "the image manifest")?;
    let mut manifest_desc = descriptor(
        manifest::OCI_MANIFEST,
        layout.put_bytes(&manifest_bytes)?,
        manifest_bytes.len() as u64,
    );
    manifest_desc.platform = Some(spec.platform.clone());

    let current = layout_current(&layout, &spec.tag)?;
    let merged = merge(current, std::slice::from_ref(&manifest_desc))?;
    let top = match &merged {
        Merged::Manifest(d) => d.clone(),
        Merged::Index { bytes, .. } => descriptor(
            manifest::OCI_INDEX,
            layout.put_bytes(bytes)?,
            bytes.len() as u64,
        ),
    };
    layout.set_tag(&spec.tag, &top)?;
    Ok(Bottled {
        layout: layout_dir.to_owned(),
        tag: spec.tag.clone(),
        layer,
        config: config_desc,
        manifest: manifest_desc,
        top,
        platforms: merged.platforms(),
    })
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<Vec<u8>, BottleError> {
    serde_json::to_vec(value).map_err(|e| BottleError::Document {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// What a tag points to now, as far as merging platforms goes.
#[derive(Clone, Debug)]
pub enum Current {
    Nothing,
    /// A single manifest; `platform` from its config when it names one.
    Manifest {
        descriptor: Box<Descriptor>,
        platform: Option<Platform>,
    },
    /// An image index, as JSON (its other fields and annotations are kept).
    Index {
        digest: Digest,
        document: serde_json::Value,
    },
}

/// What a tag should point to after adding some platforms' manifests.
#[derive(Clone, Debug)]
pub enum Merged {
    Manifest(Descriptor),
    Index {
        bytes: Vec<u8>,
        digest: Digest,
        platforms: Vec<Option<Platform>>,
    },
}

impl Merged {
    pub fn digest(&self) -> &Digest {
        match self {
            Merged::Manifest(d) => &d.digest,
            Merged::Index { digest, .. } => digest,
        }
    }

    pub fn platforms(&self) -> Vec<Platform> {
        match self {
            Merged::Manifest(d) => d.platform.iter().cloned().collect(),
            Merged::Index { platforms, .. } => platforms.iter().flatten().cloned().collect(),
        }
    }
}

/// Same os and architecture, and the same variant (`arm64` without one counts as `v8`).
pub fn same_platform(a: &Platform, b: &Platform) -> bool {
    let variant = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8".to_owned()),
        (_, v) => v.map(str::to_owned),
    };
    a.os == b.os && a.architecture == b.architecture && variant(a) == variant(b)
}

/// Adds `ours` (manifest descriptors, each with its platform) to what a tag points to:
/// - nothing, or a manifest of one of our platforms → our manifest (one) or a new index;
/// - a manifest of another platform (or of none known) → an index with it and ours;
/// - an index → the same index with our platforms' entries replaced or appended.
pub fn merge(current: Current, ours: &[Descriptor]) -> Result<Merged, BottleError> {
    let replaced = |p: Option<&Platform>| {
        p.is_some_and(|p| {
            ours.iter()
                .any(|o| o.platform.as_ref().is_some_and(|q| same_platform(p, q)))
        })
    };
    let entry = |d: &Descriptor| serde_json::to_value(d).unwrap_or(serde_json::Value::Null);
    let (mut document, mut entries): (serde_json::Value, Vec<serde_json::Value>) = match current {
        Current::Nothing => (serde_json::Value::Null, Vec::new()),
        Current::Manifest {
            descriptor,
            platform,
        } => {
            if ours.iter().any(|o| o.digest == descriptor.digest) || replaced(platform.as_ref()) {
                (serde_json::Value::Null, Vec::new())
            } else {
                let mut d = *descriptor;
                d.platform = platform;
                d.annotations.remove(crate::source::layout::REF_NAME);
                (serde_json::Value::Null, vec![entry(&d)])
            }
        }
        Current::Index { document, .. } => {
            let entries = document
                .get("manifests")
                .and_then(|m| m.as_array())
                .cloned()
                .unwrap_or_default();
            (document, entries)
        }
    };
    if entries.is_empty() && ours.len() == 1 {
        return Ok(Merged::Manifest(ours[0].clone()));
    }
    let platform_of = |e: &serde_json::Value| -> Option<Platform> {
        e.get("platform")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
    };
    for o in ours {
        let new = entry(o);
        let at = entries.iter().position(|e| {
            e.get("digest").and_then(|d| d.as_str()) == Some(&o.digest.to_string())
                || o.platform
                    .as_ref()
                    .zip(platform_of(e))
                    .is_some_and(|(a, b)| same_platform(a, &b))
        });
        match at {
            Some(i) => entries[i] = new,
            None => entries.push(new),
        }
    }
    let platforms = entries.iter().map(platform_of).collect();
    if !document.is_object() {
        document = serde_json::json!({});
    }
    if let Some(obj) = document.as_object_mut() {
        obj.insert("schemaVersion".into(), 2.into());
        obj.insert("mediaType".into(), manifest::OCI_INDEX.into());
        obj.insert("manifests".into(), serde_json::Value::Array(entries));
    }
    let bytes = to_json(&document, "the image index")?;
    Ok(Merged::Index {
        digest: Digest::of_bytes(&bytes),
        bytes,
        platforms,
    })
}

/// What `tag` points to in a layout.
fn layout_current(layout: &Layout, tag: &str) -> Result<Current, BottleError> {
    let Some(top) = layout.find(tag)? else {
        return Ok(Current::Nothing);
    };
    let quiet = crate::report::Silent;
    let fetched = layout.read_manifest(&top, SizeCheck::Warn(&quiet))?;
    Ok(match fetched.document {
        manifest::Document::Index(_) => Current::Index {
            digest: top.digest.clone(),
            document: serde_json::from_slice(&fetched.bytes).map_err(|e| {
                BottleError::Document {
                    what: fetched.url.clone(),
                    reason: e.to_string(),
                }
            })?,
        },
        manifest::Document::Manifest(m) => {
            let platform = match &top.platform {
                Some(p) => Some(p.clone()),
                None => layout
                    .read_blob(&m.config, MAX_CONFIG_BYTES, SizeCheck::Exact)
                    .ok()
                    .and_then(|b| platform_of_config(&b)),
            };
            // The size `index.json` states may be wrong (the seed's anakin layout says 548 for a
            // 504-byte manifest); what goes into a new index is the size of the verified bytes.
            let mut descriptor = top;
            descriptor.size = fetched.bytes.len() as u64;
            Current::Manifest {
                descriptor: Box::new(descriptor),
                platform,
            }
        }
    })
}

/// The platform an image config names (`os`, `architecture`, `variant`), if it names one.
pub fn platform_of_config(bytes: &[u8]) -> Option<Platform> {
    #[derive(serde::Deserialize)]
    struct C {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let c: C = serde_json::from_slice(bytes).ok()?;
    Some(Platform {
        os: c.os.filter(|s| !s.is_empty())?,
        architecture: c.architecture.filter(|s| !s.is_empty())?,
        variant: c.variant.filter(|s| !s.is_empty()),
        os_version: None,
    })
}

/// Parses `os/arch[/variant]`.
pub fn parse_platform(value: &str) -> Result<Platform, BottleError> {
    let bad = || BottleError::Platform {
        value: value.to_owned(),
    };
    let parts: Vec<&str> = value.split('/').collect();
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Ok(Platform {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: None,
            os_version: None,
        }),
        [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
            os: (*os).to_owned(),
            architecture: (*arch).to_owned(),
            variant: Some((*variant).to_owned()),
            os_version: None,
        }),
        _ => Err(bad()),
    }
}

impl crate::report::Classify for BottleError {
    fn bad_input(&self) -> bool {
        matches!(self, BottleError::Platform { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: None,
            os_version: None,
        }
    }

    fn m(hex: char, platform: Option<Platform>) -> Descriptor {
        let mut d = descriptor(
            manifest::OCI_MANIFEST,
            format!("sha256:{}", hex.to_string().repeat(64))
                .parse()
                .unwrap(),
            100,
        );
        d.platform = platform;
        d
    }

    fn index_platforms(merged: &Merged) -> Vec<String> {
        merged.platforms().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn first_platform_is_a_plain_manifest_and_a_second_makes_an_index() {
        let linux = m('a', Some(p("linux", "amd64")));
        let merged = merge(Current::Nothing, std::slice::from_ref(&linux)).unwrap();
        assert!(matches!(&merged, Merged::Manifest(d) if d.digest == linux.digest));

        let darwin = m('b', Some(p("darwin", "arm64")));
        let current = Current::Manifest {
            descriptor: Box::new(m('a', None)),
            platform: Some(p("linux", "amd64")),
        };
        let merged = merge(current, std::slice::from_ref(&darwin)).unwrap();
        let Merged::Index { bytes, digest, .. } = &merged else {
            panic!("expected an index")
        };
        assert_eq!(*digest, Digest::of_bytes(bytes));
        assert_eq!(index_platforms(&merged), ["linux/amd64", "darwin/arm64"]);
        let parsed = manifest::parse(bytes, Some(manifest::OCI_INDEX)).unwrap();
        assert!(matches!(parsed, manifest::Document::Index(i) if i.manifests.len() == 2));
    }

    #[test]
    fn same_platform_replaces_and_index_keeps_other_entries_and_fields() {
        let current = Current::Manifest {
            descriptor: Box::new(m('a', None)),
            platform: Some(p("linux", "amd64")),
        };
        let rebuilt = m('c', Some(p("linux", "amd64")));
        let merged = merge(current, std::slice::from_ref(&rebuilt)).unwrap();
        assert!(matches!(merged, Merged::Manifest(d) if d.digest == rebuilt.digest));

        let document = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "annotations": {"com.github.package.type": "homebrew_bottle"},
            "manifests": [
                serde_json::to_value(m('a', Some(p("linux", "amd64")))).unwrap(),
                serde_json::to_value(m('b', Some(p("darwin", "arm64")))).unwrap(),
            ],
        });
        let current = Current::Index {
            digest: Digest::of_bytes(b"x"),
            document,
        };
        let merged = merge(current, std::slice::from_ref(&rebuilt)).unwrap();
        let Merged::Index { bytes, .. } = &merged else {
            panic!("expected an index")
        };
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(
            v["annotations"]["com.github.package.type"],
            "homebrew_bottle"
        );
        assert_eq!(v["manifests"][0]["digest"], rebuilt.digest.to_string());
        assert_eq!(index_platforms(&merged), ["linux/amd64", "darwin/arm64"]);
    }

    #[test]
    fn unknown_platform_is_kept_as_a_fallback_entry() {
        let current = Current::Manifest {
            descriptor: Box::new(m('a', None)),
            platform: None,
        };
        let merged = merge(current, &[m('b', Some(p("linux", "amd64")))]).unwrap();
        let Merged::Index { platforms, .. } = merged else {
            panic!("expected an index")
        };
        assert_eq!(platforms, vec![None, Some(p("linux", "amd64"))]);
    }

    #[test]
    fn platforms_parse() {
        assert_eq!(parse_platform("linux/amd64").unwrap(), p("linux", "amd64"));
        assert_eq!(
            parse_platform("linux/arm64/v8").unwrap().variant.as_deref(),
            Some("v8")
        );
        for bad in ["linux", "linux/", "Linux/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(parse_platform(bad).is_err(), "{bad}");
        }
        assert!(same_platform(
            &parse_platform("linux/arm64").unwrap(),
            &parse_platform("linux/arm64/v8").unwrap()
        ));
    }

    #[test]
    fn bottling_twice_gives_the_same_digests_and_two_platforms_an_index() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("bin")).unwrap();
        std::fs::write(src.path().join("bin/x"), "x").unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut spec = BottleSpec {
            name: "x".into(),
            version: "1.0.0".into(),
            platform: p("linux", "amd64"),
            tag: "1.0.0".into(),
            annotations: BTreeMap::new(),
            created: None,
        };
        let a = bottle(
            src.path(),
            &out.path().join("a"),
            &spec,
            &BuildOptions::default(),
            &crate::report::Silent,
        )
        .unwrap();
        let b = bottle(
            src.path(),
            &out.path().join("b"),
            &spec,
            &BuildOptions::default(),
            &crate::report::Silent,
        )
        .unwrap();
        assert_eq!(a.top.digest, b.top.digest);
        assert_eq!(a.top.digest, a.manifest.digest);
        spec.platform = p("darwin", "arm64");
        let c = bottle(
            src.path(),
            &out.path().join("a"),
            &spec,
            &BuildOptions::default(),
            &crate::report::Silent,
        )
        .unwrap();
        assert_eq!(c.top.media_type, manifest::OCI_INDEX);
        assert_eq!(c.platforms.len(), 2);
        assert_eq!(c.layer.digest, a.layer.digest, "same files, same layer");
        let layout = Layout::open(&out.path().join("a")).unwrap();
        assert_eq!(layout.resolve("1.0.0").unwrap().digest, c.top.digest);
    }
}
