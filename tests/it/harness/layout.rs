//! Builds OCI image layouts (as skopeo reads them with `oci:DIR:TAG`) from files given in code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Clone, Debug)]
pub struct FileEntry {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// One platform image: a config naming os/architecture and a single tar+gzip layer whose contents
/// become the keg root.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub os: String,
    pub architecture: String,
    pub files: Vec<FileEntry>,
    /// Whether an index entry for this image carries a `platform` (the config always does).
    pub platform_in_index: bool,
    /// Layers given as bytes (blob, media type), after the one built from `files` (which is left
    /// out when there are no files).
    pub raw_layers: Vec<(Vec<u8>, String)>,
    /// Annotations on every layer descriptor (an ORAS file's `org.opencontainers.image.title`).
    pub layer_annotations: Vec<(String, String)>,
}

impl ImageSpec {
    pub fn new(os: &str, architecture: &str) -> ImageSpec {
        ImageSpec {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            files: Vec::new(),
            platform_in_index: true,
            raw_layers: Vec::new(),
            layer_annotations: Vec::new(),
        }
    }

    /// In an index, list this image without a `platform` (the generic fallback entry).
    pub fn without_index_platform(mut self) -> ImageSpec {
        self.platform_in_index = false;
        self
    }

    /// Adds a layer blob exactly as given (a hand-made, possibly hostile tarball).
    pub fn raw_layer(mut self, blob: Vec<u8>, media_type: &str) -> ImageSpec {
        self.raw_layers.push((blob, media_type.to_owned()));
        self
    }

    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>, mode: u32) -> ImageSpec {
        self.files.push(FileEntry {
            path: path.to_owned(),
            contents: contents.as_ref().to_vec(),
            mode,
        });
        self
    }
}

/// What to push under one tag.
#[derive(Clone, Debug)]
pub enum Fixture {
    Image(ImageSpec),
    /// An image index with one manifest per spec, each with its platform.
    Index(Vec<ImageSpec>),
}

/// One image manifest as written.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub os: String,
    pub architecture: String,
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    platform_in_index: bool,
}

/// What a layout's tag points at.
#[derive(Clone, Debug)]
pub struct Built {
    /// sha256 of the top-level manifest (or index) bytes: what the tag resolves to.
    pub digest: String,
    pub media_type: &'static str,
    pub images: Vec<BuiltImage>,
}

impl Built {
    pub fn image(&self) -> &BuiltImage {
        assert_eq!(self.images.len(), 1, "not a single-image fixture");
        &self.images[0]
    }

    pub fn layer_digest(&self) -> &str {
        let image = self.image();
        assert_eq!(image.layer_digests.len(), 1);
        &image.layer_digests[0]
    }
}

/// An OCI image layout directory being written.
pub struct OciLayout {
    dir: PathBuf,
    entries: Vec<serde_json::Value>,
}

impl OciLayout {
    pub fn create(dir: &Path) -> OciLayout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("create layout dirs");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write oci-layout");
        OciLayout {
            dir: dir.to_owned(),
            entries: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn add_blob(&self, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).expect("write blob");
        digest
    }

    fn add_image(&self, spec: &ImageSpec) -> BuiltImage {
        // (blob, media type, diff_id)
        let mut layers: Vec<(Vec<u8>, String, String)> = Vec::new();
        if !spec.files.is_empty() || spec.raw_layers.is_empty() {
            let tar = tar_bytes(&spec.files);
            let diff_id = sha256_digest(&tar);
            layers.push((gzip(&tar), LAYER_TYPE.to_owned(), diff_id));
        }
        for (blob, media_type) in &spec.raw_layers {
            layers.push((blob.clone(), media_type.clone(), sha256_digest(blob)));
        }
        let mut layer_digests = Vec::new();
        let mut descriptors = Vec::new();
        for (blob, media_type, _) in &layers {
            let digest = self.add_blob(blob);
            let mut descriptor =
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": blob.len()});
            if !spec.layer_annotations.is_empty() {
                let annotations: serde_json::Map<String, serde_json::Value> =
                    (spec.layer_annotations.iter())
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                        .collect();
                descriptor["annotations"] = annotations.into();
            }
            descriptors.push(descriptor);
            layer_digests.push(digest);
        }
        let diff_ids: Vec<&String> = layers.iter().map(|(_, _, d)| d).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": spec.architecture,
            "os": spec.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = self.add_blob(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let manifest_digest = self.add_blob(&manifest);
        BuiltImage {
            os: spec.os.clone(),
            architecture: spec.architecture.clone(),
            manifest_digest,
            manifest,
            config_digest,
            layer_digests,
            platform_in_index: spec.platform_in_index,
        }
    }

    /// Writes the fixture's blobs and records `tag` for `index.json`.
    pub fn add(&mut self, tag: &str, fixture: &Fixture) -> Built {
        let built = match fixture {
            Fixture::Image(spec) => {
                let image = self.add_image(spec);
                Built {
                    digest: image.manifest_digest.clone(),
                    media_type: MANIFEST_TYPE,
                    images: vec![image],
                }
            }
            Fixture::Index(specs) => {
                let images: Vec<BuiltImage> = specs.iter().map(|s| self.add_image(s)).collect();
                let manifests: Vec<_> = images
                    .iter()
                    .map(|i| {
                        let mut entry = serde_json::json!({
                            "mediaType": MANIFEST_TYPE,
                            "digest": i.manifest_digest,
                            "size": i.manifest.len(),
                        });
                        if i.platform_in_index {
                            entry["platform"] =
                                serde_json::json!({"architecture": i.architecture, "os": i.os});
                        }
                        entry
                    })
                    .collect();
                let index = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": INDEX_TYPE,
                    "manifests": manifests,
                }))
                .unwrap();
                let digest = self.add_blob(&index);
                Built {
                    digest,
                    media_type: INDEX_TYPE,
                    images,
                }
            }
        };
        let size = std::fs::metadata(
            self.dir
                .join("blobs/sha256")
                .join(built.digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
        .len();
        self.entries.push(serde_json::json!({
            "mediaType": built.media_type,
            "digest": built.digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        built
    }

    fn write_index(&self) {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": self.entries,
        });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .expect("write index.json");
    }
}

/// A deterministic tar: parent directories first (0755), then the files, all owned by 0:0 with
/// mtime 0.
pub fn tar_bytes(files: &[FileEntry]) -> Vec<u8> {
    let mut dirs = BTreeSet::new();
    for f in files {
        let mut parent = Path::new(&f.path).parent();
        while let Some(p) = parent {
            if p.as_os_str().is_empty() {
                break;
            }
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for d in &dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path(format!("{d}/")).unwrap();
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        builder.append(&h, std::io::empty()).unwrap();
    }
    for f in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path(&f.path).unwrap();
        h.set_mode(f.mode);
        h.set_size(f.contents.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        builder.append(&h, &f.contents[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}
