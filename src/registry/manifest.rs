//! Manifest and index documents: media types, parsing with checks, and picking the host's entry of an index.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

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
    NoPlatform { host: Platform, available: String },
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

impl ImageIndex {
    /// The entry for `host`, else an entry without a platform; attestation manifests
    /// (`unknown/unknown`) never count.
    pub fn pick(&self, host: &Platform) -> Result<&Descriptor, ManifestError> {
        let manifests = || {
            self.manifests
                .iter()
                .filter(|d| d.media_type.is_empty() || is_known(&d.media_type))
        };
        manifests()
            .find(|d| platform_of(d).is_some_and(|p| host.accepts(&p)))
            .or_else(|| manifests().find(|d| platform_of(d).is_none()))
            .ok_or_else(|| ManifestError::NoPlatform {
                host: host.clone(),
                available: {
                    let list: Vec<String> = self
                        .manifests
                        .iter()
                        .filter_map(|d| platform_of(d).map(|p| p.to_string()))
                        .collect();
                    if list.is_empty() {
                        "no platforms".to_owned()
                    } else {
                        list.join(", ")
                    }
                },
            })
    }
}

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const TITLE: &str = "org.opencontainers.image.title";
pub const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";

/// An index entry's platform: its `platform`, else the one its Homebrew bottle tag names
/// (`org.opencontainers.image.ref.name` = `1.2.3.x86_64_linux`, `1.2.3.arm64_sonoma`).
pub fn platform_of(d: &Descriptor) -> Option<Platform> {
    if let Some(p) = &d.platform {
        return Some(p.clone());
    }
    let (_version, tag) = d.annotations.get(REF_NAME)?.rsplit_once('.')?;
    bottle_tag_platform(tag)
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
        const MACOS: [&str; 11] = [
            "tahoe",
            "sequoia",
            "sonoma",
            "ventura",
            "monterey",
            "big_sur",
            "catalina",
            "mojave",
            "high_sierra",
            "sierra",
            "el_capitan",
        ];
        match tag.strip_prefix("arm64_") {
            Some(release) if MACOS.contains(&release) => ("darwin", "arm64"),
            None if MACOS.contains(&tag) => ("darwin", "amd64"),
            _ => return None,
        }
    };
    Some(Platform {
        os: os.to_owned(),
        architecture: arch.to_owned(),
        variant: None,
    })
}

/// How a layer's bytes are to be unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerFormat {
    TarGzip,
    Tar,
    /// An ORAS file: the bytes are one file, placed at this keg-relative path (its title).
    File(String),
    /// Media type `…layer.v1.tar` with a title and no unpack annotation: ORAS labels plain files
    /// this way, so the content decides (a tar header → tar, else a file named by the title).
    TarOrFile(String),
}

impl LayerFormat {
    /// The format of one layer, from its media type and ORAS annotations.
    pub fn for_layer(d: &Descriptor) -> Option<LayerFormat> {
        let title = d
            .annotations
            .get(TITLE)
            .filter(|t| safe_relative(t))
            .cloned();
        let unpack = d.annotations.get(ORAS_UNPACK).is_some_and(|v| v == "true");
        match (LayerFormat::of(&d.media_type), title) {
            (Some(LayerFormat::Tar), Some(t)) if !unpack => Some(LayerFormat::TarOrFile(t)),
            (Some(f), _) => Some(f),
            (None, Some(t)) if !unpack => Some(LayerFormat::File(t)),
            (None, _) => None,
        }
    }

    pub fn of(media_type: &str) -> Option<LayerFormat> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(LayerFormat::TarGzip),
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(LayerFormat::Tar),
            _ => None,
        }
    }
}

/// A keg-relative path for a file a layer names: relative, no `..`, no empty parts, no NUL.
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
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
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn oras_layers_and_bottle_tags() {
        let mut d = desc(None, 'a');
        d.media_type = "application/vnd.oci.image.layer.v1.tar".into();
        assert_eq!(LayerFormat::for_layer(&d), Some(LayerFormat::Tar));
        d.annotations.insert(TITLE.into(), "tool".into());
        assert_eq!(
            LayerFormat::for_layer(&d),
            Some(LayerFormat::TarOrFile("tool".into()))
        );
        d.annotations.insert(ORAS_UNPACK.into(), "true".into());
        assert_eq!(LayerFormat::for_layer(&d), Some(LayerFormat::Tar));
        d.annotations.clear();
        d.media_type = "application/vnd.acme.thing".into();
        assert_eq!(LayerFormat::for_layer(&d), None);
        d.annotations.insert(TITLE.into(), "docs/readme.md".into());
        assert_eq!(
            LayerFormat::for_layer(&d),
            Some(LayerFormat::File("docs/readme.md".into()))
        );
        d.annotations.insert(TITLE.into(), "../evil".into());
        assert_eq!(LayerFormat::for_layer(&d), None);

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
}
