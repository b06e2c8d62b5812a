//! The install receipt each keg carries at `.pkg/receipt.json`: what was installed, from where, and why.

use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Bump when the meaning of a field changes; readers migrate older schemas.
pub const SCHEMA: u32 = 1;

/// Keg-relative directory of pkg's own metadata.
pub const META_DIR: &str = ".pkg";
pub const FILE: &str = "receipt.json";

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    pub schema: u32,
    pub name: String,
    pub version: String,
    pub repository: String,
    pub tag: String,
    /// Digest of what the tag resolved to (an index or a manifest).
    pub manifest_digest: Digest,
    /// Digest of the platform manifest chosen from an index, when the tag is an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_manifest_digest: Option<Digest>,
    pub layers: Vec<Digest>,
    /// Keg-relative paths of the files, links and directories the layers created.
    pub files: Vec<String>,
    /// Each regular file's size and modification time as installed, by keg-relative path:
    /// `pkg doctor` finds the files changed since. Absent in receipts written before it
    /// existed (an addition, which older readers ignore: the schema stays 1), where doctor
    /// looks only for missing and added files.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, Stamp>,
    /// Keg-relative paths linked into `PREFIX/bin`.
    pub bin: Vec<String>,
    /// Keg directories linked file by file into the prefix (Homebrew-style linking); absent in
    /// receipts written before it existed, which means none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<String>,
    pub installed_on_request: bool,
    /// Dependencies as resolved at install time (name → version).
    #[serde(default)]
    pub dependencies: std::collections::BTreeMap<String, String>,
    /// The formula source it came from (a tap's name, `local`, `references`, `builtin`): later
    /// lookups of the name use it. Absent in receipts written before sources were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub pkg_version: String,
}

/// A keg's entries as a receipt writes them: `files` (every path) and `stamps` (each regular
/// file's), from the receipt's own lists or from one listing holding each path once.
#[derive(Clone, Copy)]
enum Entries<'a> {
    Lists {
        files: &'a [String],
        stamps: &'a std::collections::BTreeMap<String, Stamp>,
    },
    Listed(&'a [(String, Option<Stamp>)]),
}

/// `files` of [`Entries`], written as a JSON array.
struct FilesOf<'a>(Entries<'a>);

impl serde::Serialize for FilesOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Entries::Lists { files, .. } => s.collect_seq(files),
            Entries::Listed(listed) => s.collect_seq(listed.iter().map(|(p, _)| p)),
        }
    }
}

/// `stamps` of [`Entries`], written as a JSON object, path → stamp.
struct StampsOf<'a>(Entries<'a>);

impl StampsOf<'_> {
    fn is_empty(&self) -> bool {
        match self.0 {
            Entries::Lists { stamps, .. } => stamps.is_empty(),
            Entries::Listed(listed) => listed.iter().all(|(_, s)| s.is_none()),
        }
    }
}

impl serde::Serialize for StampsOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Entries::Lists { stamps, .. } => s.collect_map(stamps),
            Entries::Listed(listed) => s.collect_map(
                (listed.iter()).filter_map(|(p, stamp)| stamp.as_ref().map(|stamp| (p, stamp))),
            ),
        }
    }
}

/// A [`Receipt`] as written: its fields borrowed, in its order and with its rules for what is
/// left out (`receipt_as_written_is_the_receipt_serialized` holds the two together), its
/// entries from [`Entries`].
#[derive(serde::Serialize)]
struct Written<'a> {
    schema: u32,
    name: &'a str,
    version: &'a str,
    repository: &'a str,
    tag: &'a str,
    manifest_digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_manifest_digest: Option<&'a Digest>,
    layers: &'a [Digest],
    files: FilesOf<'a>,
    #[serde(skip_serializing_if = "StampsOf::is_empty")]
    stamps: StampsOf<'a>,
    bin: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    link: &'a [String],
    installed_on_request: bool,
    dependencies: &'a std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    time: u64,
    pkg_version: &'a str,
}

impl<'a> Written<'a> {
    fn of(r: &'a Receipt, entries: Entries<'a>) -> Written<'a> {
        Written {
            schema: r.schema,
            name: &r.name,
            version: &r.version,
            repository: &r.repository,
            tag: &r.tag,
            manifest_digest: &r.manifest_digest,
            platform_manifest_digest: r.platform_manifest_digest.as_ref(),
            layers: &r.layers,
            files: FilesOf(entries),
            stamps: StampsOf(entries),
            bin: &r.bin,
            link: &r.link,
            installed_on_request: r.installed_on_request,
            dependencies: &r.dependencies,
            source: r.source.as_deref(),
            time: r.time,
            pkg_version: &r.pkg_version,
        }
    }
}

/// A regular file as installed: size in bytes, its modification time (seconds and nanoseconds
/// since the Unix epoch), and the CRC-32 of its bytes where pkg saw them go by (none for a pax
/// sparse file, an ORAS file, and in receipts written before pkg kept it). Written as a JSON
/// array, `[size, secs, nanos]` or `[size, secs, nanos, crc32]` (an addition: schema 1 reads
/// both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub secs: i64,
    pub nanos: u32,
    pub sum: Option<u32>,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            size: meta.len(),
            secs: meta.mtime(),
            nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            sum: None,
        }
    }

    /// Whether `other` has this size and modification time (the sum aside).
    pub fn same_size_and_time(&self, other: &Stamp) -> bool {
        (self.size, self.secs, self.nanos) == (other.size, other.secs, other.nanos)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StampRepr {
    Summed(u64, i64, u32, u32),
    Plain(u64, i64, u32),
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.sum {
            Some(sum) => StampRepr::Summed(self.size, self.secs, self.nanos, sum),
            None => StampRepr::Plain(self.size, self.secs, self.nanos),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        Ok(match StampRepr::deserialize(d)? {
            StampRepr::Summed(size, secs, nanos, sum) => Stamp {
                size,
                secs,
                nanos,
                sum: Some(sum),
            },
            StampRepr::Plain(size, secs, nanos) => Stamp {
                size,
                secs,
                nanos,
                sum: None,
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("reading receipt {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("receipt {path} is not valid: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "receipt {path} has schema {schema}, newer than this pkg understands ({SCHEMA}); upgrade pkg"
    )]
    TooNew { path: PathBuf, schema: u32 },
}

pub fn path(keg: &Path) -> PathBuf {
    keg.join(META_DIR).join(FILE)
}

/// Seconds since the Unix epoch, for receipts.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Receipt {
    pub fn write(&self, keg: &Path) -> Result<(), ReceiptError> {
        self.write_entries(
            keg,
            Entries::Lists {
                files: &self.files,
                stamps: &self.stamps,
            },
        )
    }

    /// [`Receipt::write`] with the keg's entries taken from `listed` (each path once, with its
    /// stamp when it is a regular file, sorted: `cellar::Listing`), not from `files` and
    /// `stamps`, which are left out. The bytes are those [`Receipt::write`] writes for the same
    /// entries; a keg of 53,000 files is not held twice to write them.
    pub fn write_listed(
        &self,
        keg: &Path,
        listed: &[(String, Option<Stamp>)],
    ) -> Result<(), ReceiptError> {
        self.write_entries(keg, Entries::Listed(listed))
    }

    fn write_entries(&self, keg: &Path, entries: Entries<'_>) -> Result<(), ReceiptError> {
        let p = path(keg);
        let io = |source| ReceiptError::Io {
            path: p.clone(),
            source,
        };
        fs_err::create_dir_all(keg.join(META_DIR)).map_err(io)?;
        // Written whole or not at all: temp file in the same directory, then rename. Streamed
        // through a small buffer: a keg of 53,000 files has a receipt of 8 MB, which built in
        // memory first was the largest allocation of its install (17 MB with the vector's growth).
        let dir = keg.join(META_DIR);
        let tmp = crate::platform::temp_file_in(&dir).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, tmp);
        serde_json::to_writer_pretty(&mut out, &Written::of(self, entries)).map_err(|source| {
            match source.io_error_kind() {
                Some(kind) => ReceiptError::Io {
                    path: p.clone(),
                    source: std::io::Error::new(kind, source),
                },
                None => ReceiptError::Invalid {
                    path: p.clone(),
                    source,
                },
            }
        })?;
        std::io::Write::write_all(&mut out, b"\n").map_err(|source| ReceiptError::Io {
            path: p.clone(),
            source,
        })?;
        let tmp = out.into_inner().map_err(|e| ReceiptError::Io {
            path: p.clone(),
            source: e.into_error(),
        })?;
        tmp.persist(&p).map_err(|e| ReceiptError::Io {
            path: p.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    pub fn read(keg: &Path) -> Result<Receipt, ReceiptError> {
        let p = path(keg);
        let bytes = fs_err::read(&p).map_err(|source| ReceiptError::Io {
            path: p.clone(),
            source,
        })?;
        #[derive(serde::Deserialize)]
        struct Probe {
            schema: u32,
        }
        let probe: Probe =
            serde_json::from_slice(&bytes).map_err(|source| ReceiptError::Invalid {
                path: p.clone(),
                source,
            })?;
        if probe.schema > SCHEMA {
            return Err(ReceiptError::TooNew {
                path: p,
                schema: probe.schema,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| ReceiptError::Invalid { path: p, source })
    }
}

#[cfg(test)]
mod tests {
    use super::{Receipt, SCHEMA, Stamp};

    fn receipt(full: bool) -> Receipt {
        let digest: crate::digest::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let stamp = |size, sum| Stamp {
            size,
            secs: 1_700_000_000,
            nanos: 5,
            sum,
        };
        Receipt {
            schema: SCHEMA,
            name: "tool".into(),
            version: "1.0.0".into(),
            repository: "ghcr.io/acme/tool".into(),
            tag: "1.0.0".into(),
            manifest_digest: digest.clone(),
            platform_manifest_digest: full.then(|| digest.clone()),
            layers: vec![digest],
            files: vec!["bin".into(), "bin/tool".into(), "lib/a \"b\".so".into()],
            stamps: if full {
                [
                    ("bin/tool".into(), stamp(3, Some(7))),
                    ("lib/a \"b\".so".into(), stamp(0, None)),
                ]
                .into()
            } else {
                Default::default()
            },
            bin: vec!["bin/tool".into()],
            link: if full {
                vec!["share".into()]
            } else {
                Vec::new()
            },
            installed_on_request: full,
            dependencies: [("dep".to_owned(), "2.0.0".to_owned())].into(),
            source: full.then(|| "local".into()),
            time: 1,
            pkg_version: "0.1.0".into(),
        }
    }

    /// The written bytes are the derive's serialization of the receipt (field order, what is
    /// left out when empty), from its own lists or from a listing of the same entries.
    #[test]
    fn receipt_as_written_is_the_receipt_serialized() {
        for full in [true, false] {
            let r = receipt(full);
            let mut want = serde_json::to_vec_pretty(&r).unwrap();
            want.push(b'\n');
            let d = tempfile::tempdir().unwrap();
            r.write(d.path()).unwrap();
            assert_eq!(
                String::from_utf8(std::fs::read(super::path(d.path())).unwrap()).unwrap(),
                String::from_utf8(want.clone()).unwrap()
            );
            let listed: Vec<(String, Option<Stamp>)> = (r.files.iter())
                .map(|f| (f.clone(), r.stamps.get(f).copied()))
                .collect();
            let bare = Receipt {
                files: Vec::new(),
                stamps: Default::default(),
                ..r.clone()
            };
            let e = tempfile::tempdir().unwrap();
            bare.write_listed(e.path(), &listed).unwrap();
            assert_eq!(std::fs::read(super::path(e.path())).unwrap(), want);
            let back = Receipt::read(e.path()).unwrap();
            assert_eq!((back.files, back.stamps), (r.files, r.stamps));
        }
    }

    #[test]
    fn a_stamp_reads_with_or_without_its_sum_and_writes_as_it_read() {
        let old: Stamp = serde_json::from_str("[12, 1700000000, 5]").unwrap();
        assert_eq!(old.sum, None);
        assert_eq!(serde_json::to_string(&old).unwrap(), "[12,1700000000,5]");
        let new: Stamp = serde_json::from_str("[12, 1700000000, 5, 3735928559]").unwrap();
        assert_eq!(new.sum, Some(0xdead_beef));
        assert_eq!(
            serde_json::to_string(&new).unwrap(),
            "[12,1700000000,5,3735928559]"
        );
        assert!(old.same_size_and_time(&new));
        assert!(serde_json::from_str::<Stamp>("[12, 1700000000]").is_err());
    }
}
