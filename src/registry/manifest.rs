//! Manifest and index documents: media types, parsing with checks, and picking the host's entry of an index.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::platform::{Platform, macos_release};

// Media types and annotations: every one pkg reads or writes, in one block.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd-compressed tar layer (what `pkg bottle --compression zstd` writes).
pub const LAYER_ZSTD_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The tag of an image layout's `index.json` entry; Homebrew writes `VERSION.BOTTLE_TAG` there.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const TITLE: &str = "org.opencontainers.image.title";
pub const VERSION: &str = "org.opencontainers.image.version";
pub const CREATED: &str = "org.opencontainers.image.created";
pub const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";
/// The annotation Homebrew writes with the glibc version a Linux bottle was built against.
pub const GLIBC_VERSION: &str = "sh.brew.bottle.glibc.version";
/// The annotation Homebrew writes with the sha256 (hex) of an index entry's bottle file.
pub const BOTTLE_DIGEST: &str = "sh.brew.bottle.digest";

/// Everything pkg can read, for the `Accept` header of a manifest request.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or index accepted (as skopeo and oras do).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Clone, Debug)]
pub enum Document {
    Manifest(ImageManifest),
    Index(ImageIndex),
}

impl ManifestError {
    /// JSON that ends before the document does: a body cut short, which another try may mend.
    pub fn is_not_json(&self) -> bool {
        matches!(self, ManifestError::Json { source, .. } if source.is_eof())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid JSON for {media_type}: {source}")]
    Json {
        media_type: String,
        source: serde_json::Error,
    },
    #[error("unsupported manifest media type `{0}`")]
    UnsupportedMediaType(String),
    #[error(
        "the manifest says its media type is `{body}` but the registry sent Content-Type `{header}`"
    )]
    MediaTypeMismatch { body: String, header: String },
    #[error("no entry of the image index fits {host}; it has: {available}")]
    NoPlatform { host: String, available: String },
    #[error(
        "the bottle for this platform needs glibc {needs}, and this machine has glibc {has}; install a newer system, or ask for a bottle built against an older glibc"
    )]
    Glibc { needs: String, has: String },
    #[error(
        "the oldest bottle for this platform is built for macOS {needs}, and this machine runs macOS {has}; update macOS, or ask for a bottle built for an older release"
    )]
    MacOs { needs: String, has: String },
    #[error(
        "the document has both `layers` and `manifests`, so it is neither a manifest nor an index; pkg refuses to guess which it is"
    )]
    Ambiguous,
}

/// At most this many items of a list that came from the registry are quoted in a message.
pub const QUOTED_ITEMS: usize = 12;

/// `a, b, c, … and N more`: a list from input, cut to [`QUOTED_ITEMS`] distinct items.
pub fn quote_list(items: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut more = 0usize;
    for item in items {
        if seen.contains(&item) {
            continue;
        }
        if seen.len() < QUOTED_ITEMS {
            seen.push(item.chars().take(80).collect());
        } else {
            more += 1;
        }
    }
    let mut out = seen.join(", ");
    if more > 0 {
        out.push_str(&format!(", … and {more} more"));
    }
    out
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

/// Parses a manifest or index. The type comes from the body's `mediaType`, else from the
/// Content-Type, else from its shape; a body whose `mediaType` contradicts the Content-Type is refused.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document, ManifestError> {
    let json = |e| ManifestError::Json {
        media_type: content_type.unwrap_or("a manifest").to_owned(),
        source: e,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(json)?;
    let header: Option<String> = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| is_known(c));
    if let (Some(body), Some(header)) = (probe.media_type.as_deref(), header.as_deref())
        && body != header
    {
        return Err(ManifestError::MediaTypeMismatch {
            body: body.to_owned(),
            header: header.to_owned(),
        });
    }
    if probe.manifests.is_some() && probe.layers.is_some() {
        return Err(ManifestError::Ambiguous);
    }
    let declared = probe.media_type.or(header);
    let (kind, media_type) = match declared.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => (Kind::Index, declared.clone().unwrap_or_default()),
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => {
            (Kind::Manifest, declared.clone().unwrap_or_default())
        }
        Some(other) => return Err(ManifestError::UnsupportedMediaType(other.to_owned())),
        None if probe.manifests.is_some() => (Kind::Index, OCI_INDEX.to_owned()),
        None if probe.layers.is_some() => (Kind::Manifest, OCI_MANIFEST.to_owned()),
        None => {
            return Err(ManifestError::UnsupportedMediaType(
                "(none given, and the body is neither a manifest nor an index)".into(),
            ));
        }
    };
    let json_as = |source| ManifestError::Json {
        media_type: media_type.clone(),
        source,
    };
    Ok(match kind {
        Kind::Index => Document::Index(serde_json::from_slice(bytes).map_err(json_as)?),
        Kind::Manifest => Document::Manifest(serde_json::from_slice(bytes).map_err(json_as)?),
    })
}

enum Kind {
    Index,
    Manifest,
}

fn is_known(t: &str) -> bool {
    matches!(t, OCI_INDEX | OCI_MANIFEST | DOCKER_LIST | DOCKER_MANIFEST)
}

/// `2.35` < `2.36` < `2.36.1`: numeric components compared in turn.
fn version_parts(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}

/// The glibc this machine runs, where it is a glibc system.
pub fn host_glibc() -> Option<String> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: gnu_get_libc_version returns a pointer to a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        return v.to_str().ok().map(str::to_owned);
    }
    #[allow(unreachable_code)]
    None
}

impl ImageIndex {
    /// The entry for `host`, else an entry without a platform; attestation manifests
    /// (`unknown/unknown`) never count. A Linux bottle built against a newer glibc than this
    /// machine's is passed over, and when that leaves nothing the error names both versions.
    pub fn pick(&self, host: &Platform) -> Result<&Descriptor, ManifestError> {
        self.pick_with(host, host_glibc().as_deref())
    }

    /// [`ImageIndex::pick`] for a host with this glibc (`None`: not a glibc host, or unknown).
    pub fn pick_with(
        &self,
        host: &Platform,
        glibc: Option<&str>,
    ) -> Result<&Descriptor, ManifestError> {
        let manifests = || {
            self.manifests
                .iter()
                .filter(|d| d.media_type.is_empty() || is_known(&d.media_type))
        };
        let too_new = |d: &Descriptor| match (d.annotations.get(GLIBC_VERSION), glibc) {
            (Some(needs), Some(has)) => version_parts(needs) > version_parts(has),
            _ => false,
        };
        let fitting = || manifests().filter(|d| platform_of(d).is_some_and(|p| host.accepts(&p)));
        // On macOS: the newest release not newer than the host's (brew's rule); a bottle for
        // a newer macOS is passed over, and when that leaves nothing the error names both.
        if let Some(has) = host.os_version.as_deref().and_then(macos_release)
            && host.os == "darwin"
        {
            let release = |d: &Descriptor| macos_of(d);
            let runs = |d: &&Descriptor| release(d).is_none_or(|r| r <= has);
            let best = fitting()
                .filter(|d| !too_new(d))
                .filter(runs)
                .max_by(|a, b| release(a).cmp(&release(b)));
            if let Some(d) = best {
                return Ok(d);
            }
            if let Some(needs) = fitting().filter_map(release).min() {
                return Err(ManifestError::MacOs {
                    needs: join_release(&needs),
                    has: join_release(&has),
                });
            }
        }
        if let Some(d) = fitting().find(|d| !too_new(d)) {
            return Ok(d);
        }
        if let Some(d) = fitting().next()
            && let (Some(needs), Some(has)) = (d.annotations.get(GLIBC_VERSION), glibc)
        {
            return Err(ManifestError::Glibc {
                needs: needs.chars().take(32).collect(),
                has: has.to_owned(),
            });
        }
        manifests()
            .find(|d| platform_of(d).is_none())
            .ok_or_else(|| ManifestError::NoPlatform {
                host: host.to_string(),
                available: {
                    let list = quote_list(
                        self.manifests
                            .iter()
                            .filter_map(|d| platform_of(d).map(|p| p.to_string())),
                    );
                    if list.is_empty() {
                        "no platforms".to_owned()
                    } else {
                        list
                    }
                },
            })
    }
}

/// The macOS release an entry is built for: its `os.version` (`macOS 14`), else the one its
/// bottle tag names (`arm64_sonoma` → 14).
fn macos_of(d: &Descriptor) -> Option<Vec<u64>> {
    if let Some(r) = d
        .platform
        .as_ref()
        .and_then(|p| p.os_version.as_deref())
        .and_then(macos_release)
    {
        return Some(r);
    }
    let tag = bottle_tag_of(d.annotations.get(REF_NAME)?)?;
    let release = tag.strip_prefix("arm64_").unwrap_or(tag);
    crate::platform::MACOS_RELEASES
        .iter()
        .find(|(name, _)| *name == release)
        .map(|(_, numbers)| numbers.to_vec())
}

fn join_release(r: &[u64]) -> String {
    r.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// The bottle tag of a ref name: `1.2.3.arm64_sonoma` or, with a rebuild, `1.2.3.arm64_sonoma.1`.
fn bottle_tag_of(name: &str) -> Option<&str> {
    let (rest, last) = name.rsplit_once('.')?;
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return rest.rsplit_once('.').map(|(_, tag)| tag);
    }
    Some(last)
}

/// An index entry's platform: its `platform`, else the one its Homebrew bottle tag names
/// (`org.opencontainers.image.ref.name` = `1.2.3.x86_64_linux`, `1.2.3.arm64_sonoma`).
pub fn platform_of(d: &Descriptor) -> Option<Platform> {
    if let Some(p) = &d.platform {
        return Some(p.clone());
    }
    bottle_tag_platform(bottle_tag_of(d.annotations.get(REF_NAME)?)?)
}

/// Homebrew bottle tag → platform: `x86_64_linux`, `arm64_linux`, `arm64_sonoma`, `sonoma`, ….
pub fn bottle_tag_platform(tag: &str) -> Option<Platform> {
    if !tag
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        || tag.is_empty()
    {
        return None;
    }
    let (os, arch) = if let Some(arch) = tag.strip_suffix("_linux") {
        let arch = match arch {
            "x86_64" => "amd64",
            "arm64" | "aarch64" => "arm64",
            _ => return None,
        };
        ("linux", arch)
    } else {
        let known = |t: &str| {
            crate::platform::MACOS_RELEASES
                .iter()
                .any(|(name, _)| *name == t)
        };
        match tag.strip_prefix("arm64_") {
            Some(release) if known(release) => ("darwin", "arm64"),
            None if known(tag) => ("darwin", "amd64"),
            _ => return None,
        }
    };
    Some(Platform {
        os: os.to_owned(),
        architecture: arch.to_owned(),
        variant: None,
        os_version: None,
    })
}

/// How a layer's bytes are to be unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerFormat {
    /// A tar stream, compressed as its media type says.
    Tar(Compression),
    /// An ORAS file: the bytes are one file, placed at this keg-relative path (its title,
    /// cleaned), whatever they hold.
    File(String),
}

/// The compression a layer's media type names; checked against the bytes' magic when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The first bytes every stream of this compression starts with.
    pub fn magic(self) -> &'static [u8] {
        match self {
            Compression::None => b"",
            Compression::Gzip => &[0x1f, 0x8b],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        }
    }

    /// The compression these first bytes show, if any.
    pub fn sniff(head: &[u8]) -> Compression {
        [Compression::Gzip, Compression::Zstd]
            .into_iter()
            .find(|c| head.starts_with(c.magic()))
            .unwrap_or(Compression::None)
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "tar",
            Compression::Gzip => "tar+gzip",
            Compression::Zstd => "tar+zstd",
        })
    }
}

/// Why a layer cannot be installed as it is described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerFormatError {
    /// Neither an archive media type nor a titled file.
    MediaType,
    /// An ORAS file whose title is not a path inside the package.
    UnsafeTitle(String),
}

impl LayerFormat {
    /// The format of one layer, from its media type and ORAS annotations. A titled layer without
    /// the unpack annotation is a file (ORAS labels plain files `…layer.v1.tar`), never unpacked
    /// whatever its bytes; compressed tars (Homebrew bottles carry a title too) are unpacked.
    pub fn for_layer(d: &Descriptor) -> Result<LayerFormat, LayerFormatError> {
        let title = d.annotations.get(TITLE);
        let unpack = d.annotations.get(ORAS_UNPACK).is_some_and(|v| v == "true");
        let file = |t: &String| {
            clean_title(t)
                .map(LayerFormat::File)
                .ok_or_else(|| LayerFormatError::UnsafeTitle(t.clone()))
        };
        match (LayerFormat::of(&d.media_type), title) {
            (Some(LayerFormat::Tar(Compression::None)), Some(t)) if !unpack => file(t),
            (Some(f), _) => Ok(f),
            (None, Some(t)) if !unpack => file(t),
            (None, _) => Err(LayerFormatError::MediaType),
        }
    }

    pub fn of(media_type: &str) -> Option<LayerFormat> {
        let compression = match media_type {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            _ => return None,
        };
        Some(LayerFormat::Tar(compression))
    }
}

/// An ORAS title cleaned as ORAS Go cleans it (`./x` → `x`, `a//b` → `a/b`, `a/../b` → `b`);
/// `None` when it is absolute, climbs out, holds a NUL or names nothing.
pub fn clean_title(title: &str) -> Option<String> {
    if title.starts_with('/') || title.contains('\0') || title.len() > 4096 {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in title.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANAKIN: &str = r#"{
  "schemaVersion": 2,
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "size": 217,
    "digest": "sha256:d7a38a28d7b1cf81b95ee50a4d011871378018ae5ee366acc5505273fee5a0b3"
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "size": 80411,
      "digest": "sha256:57b8eee16897b0bb1d00190e99fb722dbaa32ecd1eb70686012ecf814ce329ba"
    }
  ],
  "annotations": { "org.opencontainers.image.ref": "1.0.0" }
}"#;

    #[test]
    fn manifest_without_media_type_field_uses_content_type() {
        let doc = parse(ANAKIN.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        let Document::Manifest(m) = doc else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, 80411);
        // and from its shape when the registry sends no useful Content-Type
        assert!(matches!(
            parse(ANAKIN.as_bytes(), Some("application/octet-stream")).unwrap(),
            Document::Manifest(_)
        ));
    }

    #[test]
    fn body_media_type_must_agree_with_content_type() {
        let body = format!(r#"{{"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        let err = parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap_err();
        assert!(
            matches!(err, ManifestError::MediaTypeMismatch { .. }),
            "{err}"
        );
    }

    fn desc(platform: Option<(&str, &str)>, hex: char) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", hex.to_string().repeat(64))
                .parse()
                .unwrap(),
            size: 1,
            platform: platform.map(|(os, arch)| Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
                os_version: None,
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn oras_layers_and_bottle_tags() {
        let mut d = desc(None, 'a');
        d.media_type = "application/vnd.oci.image.layer.v1.tar".into();
        let tar = |c| Ok(LayerFormat::Tar(c));
        assert_eq!(LayerFormat::for_layer(&d), tar(Compression::None));
        // A titled `…layer.v1.tar` is an ORAS file, placed whatever its bytes.
        d.annotations.insert(TITLE.into(), "release.tar".into());
        assert_eq!(
            LayerFormat::for_layer(&d),
            Ok(LayerFormat::File("release.tar".into()))
        );
        d.annotations.insert(TITLE.into(), "./hello.sh".into());
        assert_eq!(
            LayerFormat::for_layer(&d),
            Ok(LayerFormat::File("hello.sh".into()))
        );
        d.annotations.insert(ORAS_UNPACK.into(), "true".into());
        assert_eq!(LayerFormat::for_layer(&d), tar(Compression::None));
        d.annotations.clear();
        for (media_type, c) in [
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
        ] {
            d.media_type = media_type.into();
            assert_eq!(LayerFormat::for_layer(&d), tar(c), "{media_type}");
        }
        // A bottle's title names its file; the layer is still unpacked.
        d.annotations.insert(
            TITLE.into(),
            "hello--1.0.0.x86_64_linux.bottle.tar.gz".into(),
        );
        assert_eq!(LayerFormat::for_layer(&d), tar(Compression::Gzip));
        d.annotations.clear();
        d.media_type = "application/vnd.acme.thing".into();
        assert_eq!(LayerFormat::for_layer(&d), Err(LayerFormatError::MediaType));
        d.annotations.insert(TITLE.into(), "docs/readme.md".into());
        assert_eq!(
            LayerFormat::for_layer(&d),
            Ok(LayerFormat::File("docs/readme.md".into()))
        );
        for evil in ["../evil", "/etc/passwd", "a/../../b", ".", "", "a/\0"] {
            d.annotations.insert(TITLE.into(), evil.into());
            assert_eq!(
                LayerFormat::for_layer(&d),
                Err(LayerFormatError::UnsafeTitle(evil.into())),
                "{evil:?}"
            );
        }
        assert_eq!(clean_title("a//b/./c/../d").as_deref(), Some("a/b/d"));
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"hello"), Compression::None);

        assert_eq!(
            bottle_tag_platform("x86_64_linux").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            bottle_tag_platform("arm64_linux").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            bottle_tag_platform("arm64_sonoma").unwrap().to_string(),
            "darwin/arm64"
        );
        assert_eq!(
            bottle_tag_platform("ventura").unwrap().to_string(),
            "darwin/amd64"
        );
        assert!(bottle_tag_platform("3").is_none());
        assert!(bottle_tag_platform("latest").is_none());
        let mut e = desc(None, 'b');
        e.annotations
            .insert(REF_NAME.into(), "1.2.3.x86_64_linux".into());
        assert_eq!(platform_of(&e).unwrap().to_string(), "linux/amd64");
    }

    #[test]
    fn index_picks_host_then_platformless_then_lists_what_exists() {
        let host = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            os_version: None,
        };
        let index = ImageIndex {
            media_type: None,
            manifests: vec![
                desc(Some(("darwin", "arm64")), 'a'),
                desc(Some(("linux", "amd64")), 'b'),
            ],
        };
        assert_eq!(index.pick(&host).unwrap().digest.hex(), "b".repeat(64));
        let index = ImageIndex {
            media_type: None,
            manifests: vec![desc(Some(("darwin", "arm64")), 'a'), desc(None, 'c')],
        };
        assert_eq!(index.pick(&host).unwrap().digest.hex(), "c".repeat(64));
        let index = ImageIndex {
            media_type: None,
            manifests: vec![
                desc(Some(("darwin", "arm64")), 'a'),
                desc(Some(("windows", "amd64")), 'd'),
            ],
        };
        let err = index.pick(&host).unwrap_err().to_string();
        assert!(err.contains("darwin/arm64, windows/amd64"), "{err}");
    }

    #[test]
    fn ambiguous_documents_are_refused_and_long_lists_are_cut() {
        let both = br#"{"schemaVersion":2,"layers":[],"manifests":[]}"#;
        assert!(matches!(parse(both, None), Err(ManifestError::Ambiguous)));
        let list = quote_list((0..10_000).map(|i| format!("linux/arch{i}")));
        assert!(list.len() < 400, "{}", list.len());
        assert!(list.ends_with(&format!("… and {} more", 10_000 - QUOTED_ITEMS)));
        assert_eq!(quote_list(["a".to_owned(), "a".to_owned()]), "a");
    }

    #[test]
    fn bottle_rebuilds_and_glibc_versions_pick_the_right_entry() {
        let entry = |ref_name: &str, glibc: Option<&str>, c: char| {
            let mut d = desc(None, c);
            d.annotations.insert(REF_NAME.into(), ref_name.into());
            if let Some(g) = glibc {
                d.annotations.insert(GLIBC_VERSION.into(), g.into());
            }
            d
        };
        let linux = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            os_version: None,
        };
        // No `platform`, rebuild suffixes: the Linux bottle, not the first (darwin) entry.
        let index = ImageIndex {
            manifests: vec![
                entry("1.0.0.arm64_sonoma.1", None, 'a'),
                entry("1.0.0.x86_64_linux.1", Some("2.35"), 'b'),
            ],
            media_type: None,
        };
        let picked = index.pick_with(&linux, Some("2.36")).unwrap();
        assert_eq!(picked.digest, index.manifests[1].digest);
        // Built against a newer glibc than the host's: refused, naming both.
        let err = index
            .pick_with(&linux, Some("2.31"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("glibc 2.35") && err.contains("glibc 2.31"),
            "{err}"
        );
        assert!(index.pick_with(&linux, None).is_ok());
    }

    #[test]
    fn on_macos_the_newest_bottle_not_newer_than_the_host_is_picked() {
        let entry = |ref_name: &str, os_version: Option<&str>, c: char| {
            let mut d = desc(Some(("darwin", "arm64")), c);
            if let Some(p) = d.platform.as_mut() {
                p.os_version = os_version.map(Into::into);
            }
            d.annotations.insert(REF_NAME.into(), ref_name.into());
            d
        };
        let index = ImageIndex {
            manifests: vec![
                entry("1.0.0.arm64_ventura", Some("macOS 13"), 'a'),
                entry("1.0.0.arm64_sequoia", Some("macOS 15"), 'b'),
                // No os.version: the tag says 14.
                entry("1.0.0.arm64_sonoma", None, 'c'),
                entry("1.0.0.arm64_tahoe", Some("macOS 26"), 'd'),
            ],
            media_type: None,
        };
        let mac = |release: &str| Platform {
            os: "darwin".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            os_version: Some(release.into()),
        };
        let pick = |release: &str| index.pick_with(&mac(release), None).map(|d| d.digest.hex());
        assert_eq!(pick("15.1").unwrap(), "b".repeat(64));
        assert_eq!(pick("14.6.1").unwrap(), "c".repeat(64));
        assert_eq!(pick("13.0").unwrap(), "a".repeat(64));
        assert_eq!(pick("27.0").unwrap(), "d".repeat(64));
        let err = pick("12.7").unwrap_err().to_string();
        assert!(
            err.contains("macOS 13") && err.contains("macOS 12.7"),
            "{err}"
        );
    }
}
