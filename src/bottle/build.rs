//! Reproducible bottles: a directory packed into a tar.gz (or tar.zst) whose bytes depend only on the names,
//! kinds, contents, executable bits and symlink targets of what is in it — never on who owns the
//! files, when they were touched, the umask, the order `readdir` returns them in, or the machine.
//!
//! - entries sorted by their path bytes; every directory below the root has its own entry;
//! - GNU headers, uid/gid 0, no user or group names, mtime fixed (`SOURCE_DATE_EPOCH` or 1);
//! - modes normalized: directories 0755, files 0755 when any execute bit is set else 0644,
//!   symlinks 0777; symlinks are kept as links with their targets as they are (absolute,
//!   climbing or dangling: a link's target is data, and pkg install restores it the same);
//! - hard links become separate regular files; sockets, fifos and devices are refused;
//! - gzip header fixed: mtime 0, no file name or comment, OS byte 255 ("unknown"), level 6;
//! - or zstd (`--compression zstd[:LEVEL]`, level 3 by default): one thread, no dictionary, the
//!   frame carrying its checksum but not the content size, so the bytes depend on the level only.
//!
//! The same pkg build gives the same bytes for the same tree on any machine; a different
//! compressor version could compress differently, so a bottle's identity is its digest as built.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The gzip OS byte pkg writes: 255, "unknown", the same on every platform.
pub const GZIP_OS: u8 = 255;
/// The deflate level: fixed, because the level changes the bytes.
pub const GZIP_LEVEL: u32 = 6;
/// The tar mtime when `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_MTIME: u64 = 1;
/// The zstd level when `--compression zstd` names none.
pub const ZSTD_LEVEL: i32 = 3;

/// How the layer's tar is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// `tar+gzip` (level 6): what every OCI tool and Homebrew's brew read.
    #[default]
    Gzip,
    /// `tar+zstd` at this level (1–19): several times faster to unpack; brew cannot read it.
    Zstd(i32),
}

impl Compression {
    /// The layer's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => crate::registry::manifest::LAYER_TYPE,
            Compression::Zstd(_) => crate::registry::manifest::LAYER_ZSTD_TYPE,
        }
    }

    /// The file name's extension after `.tar`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd(_) => "zst",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    /// `gzip`, `zstd` or `zstd:LEVEL`.
    fn from_str(s: &str) -> Result<Compression, String> {
        let bad = || {
            format!("--compression {s}: expected gzip, zstd or zstd:LEVEL with LEVEL from 1 to 19")
        };
        match s.trim().split_once(':') {
            None if s.trim() == "gzip" => Ok(Compression::Gzip),
            None if s.trim() == "zstd" => Ok(Compression::Zstd(ZSTD_LEVEL)),
            Some(("zstd", level)) => match level.parse::<i32>() {
                Ok(l) if (1..=19).contains(&l) => Ok(Compression::Zstd(l)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// The compressing end of the layer: gzip or zstd over the hashing writer.
enum Compressor<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn new(compression: Compression, out: W) -> io::Result<Compressor<W>> {
        Ok(match compression {
            Compression::Gzip => Compressor::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(GZIP_OS)
                    .write(out, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::Zstd(level) => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
                encoder.include_checksum(true)?;
                encoder.include_contentsize(false)?;
                encoder.include_dictid(false)?;
                Compressor::Zstd(encoder)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a directory; `pkg bottle` packs a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "{path} is a {kind}; bottles hold only directories, regular files and symlinks. Remove it or bottle another directory"
    )]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("{path} changed size while it was being packed ({expected} bytes, then {actual})")]
    Changed {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("writing the bottle: {source}")]
    Write {
        #[source]
        source: io::Error,
    },
}

/// How to pack.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// mtime of every entry (seconds since the epoch).
    pub mtime: u64,
    /// Top-level names left out (an installed keg's `.pkg/`).
    pub exclude: Vec<String>,
    pub compression: Compression,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            mtime: DEFAULT_MTIME,
            exclude: Vec::new(),
            compression: Compression::Gzip,
        }
    }
}

/// What was packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the compressed tar: the layer's digest (what a formula's manifest points at).
    pub digest: Digest,
    /// Bytes of the compressed tar.
    pub size: u64,
    /// How the tar is compressed (its media type).
    pub compression: Compression,
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Entries in the tar (directories, files, symlinks).
    pub entries: u64,
    /// Bytes of file contents (what the keg will take once unpacked, roughly).
    pub installed_size: u64,
}

enum Kind {
    Dir,
    File { size: u64, executable: bool },
    Symlink(PathBuf),
}

struct Entry {
    /// Path inside the bottle, `/`-separated, no leading `./`.
    rel: Vec<u8>,
    abs: PathBuf,
    kind: Kind,
}

/// Packs `dir` into `out` as a reproducible tar.gz; returns the layer's description and `out`.
/// `reporter` gets a progress bar over the bytes of the files packed.
/// Long: one pass from the directory's walk through the tar, the compressor and both digests to the
/// layer's description; each writer wraps the one before, so they live in one scope.
pub fn build_layer<W: Write>(
    dir: &Path,
    options: &BuildOptions,
    out: W,
    reporter: &dyn crate::report::Reporter,
) -> Result<(LayerInfo, W), BuildError> {
    let meta = fs_err::metadata(dir).map_err(|source| BuildError::Io {
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(BuildError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let mut entries = Vec::new();
    collect(dir, &[], options, &mut entries)?;
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    let total = entries
        .iter()
        .map(|e| match e.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    let progress = reporter.progress("Compressing", total);

    let compressed = HashWriter::new(out);
    let write = |source| BuildError::Write { source };
    let compressor = Compressor::new(options.compression, compressed).map_err(write)?;
    let mut tar = tar::Builder::new(HashWriter::new(compressor));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut installed_size = 0;
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(options.mtime);
        header.set_uid(0);
        header.set_gid(0);
        let path = Path::new(OsStr::from_bytes(&entry.rel));
        match &entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, path, io::empty())
                    .map_err(write)?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, path, target).map_err(write)?;
            }
            Kind::File { size, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                let file = fs_err::File::open(&entry.abs).map_err(|source| BuildError::Io {
                    path: entry.abs.clone(),
                    source,
                })?;
                let mut reader = Counted {
                    inner: file.take(*size),
                    count: 0,
                    progress: Some(&*progress),
                };
                tar.append_data(&mut header, path, &mut reader)
                    .map_err(write)?;
                if reader.count != *size {
                    return Err(BuildError::Changed {
                        path: entry.abs.clone(),
                        expected: *size,
                        actual: reader.count,
                    });
                }
                installed_size += size;
            }
        }
    }
    progress.finish();
    let uncompressed = tar.into_inner().map_err(write)?;
    let diff_id = uncompressed.digest().map_err(write)?;
    let compressed = uncompressed.inner.finish().map_err(write)?;
    let digest = compressed.digest().map_err(write)?;
    let size = compressed.count;
    Ok((
        LayerInfo {
            digest,
            size,
            diff_id,
            compression: options.compression,
            entries: entries.len() as u64,
            installed_size,
        },
        compressed.inner,
    ))
}

/// Walks `dir` without following symlinks.
fn collect(
    dir: &Path,
    rel: &[u8],
    options: &BuildOptions,
    out: &mut Vec<Entry>,
) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let listing = fs_err::read_dir(dir).map_err(io(dir))?;
    for item in listing {
        let item = item.map_err(io(dir))?;
        let name = item.file_name();
        if rel.is_empty()
            && options
                .exclude
                .iter()
                .any(|e| e.as_bytes() == name.as_bytes())
        {
            continue;
        }
        let abs = item.path();
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(name.as_bytes());
        let meta = fs_err::symlink_metadata(&abs).map_err(io(&abs))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                size: meta.len(),
                executable: meta.permissions().mode() & 0o111 != 0,
            }
        } else if ft.is_symlink() {
            Kind::Symlink(fs_err::read_link(&abs).map_err(io(&abs))?)
        } else {
            use std::os::unix::fs::FileTypeExt as _;
            let kind = if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "device"
            } else {
                "special file"
            };
            return Err(BuildError::Unsupported { path: abs, kind });
        };
        let is_dir = matches!(kind, Kind::Dir);
        out.push(Entry {
            rel: child.clone(),
            abs: abs.clone(),
            kind,
        });
        if is_dir {
            collect(&abs, &child, options, out)?;
        }
    }
    Ok(())
}

/// The mtime for bottles: `SOURCE_DATE_EPOCH` when it is a whole number, else 1.
pub fn mtime_from(source_date_epoch: Option<&str>) -> u64 {
    source_date_epoch
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_MTIME)
}

/// Hashes and counts what goes through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn digest(&self) -> io::Result<Digest> {
        let hex = hex::encode(self.hasher.clone().finalize());
        format!("sha256:{hex}").parse().map_err(io::Error::other)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Counted<'a, R> {
    inner: R,
    count: u64,
    progress: Option<&'a dyn crate::report::Progress>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if let Some(p) = self.progress {
            p.advance(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(root: &Path, mode: u32) {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("share/doc/empty")).unwrap();
        std::fs::write(root.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
        std::fs::set_permissions(
            root.join("bin/hello"),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
        std::fs::write(root.join("share/doc/README"), "read me\n").unwrap();
        std::fs::write(root.join("a-b"), "sorts before a/").unwrap();
        symlink("../bin/hello", root.join("share/hello")).unwrap();
    }

    fn pack(root: &Path, options: &BuildOptions) -> (LayerInfo, Vec<u8>) {
        build_layer(root, options, Vec::new(), &crate::report::Silent).unwrap()
    }

    fn set_mtime(path: &Path, secs: u64) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn same_tree_gives_same_bytes_whatever_the_mtimes_and_umask() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path(), 0o755);
        tree(b.path(), 0o700); // other permission bits, still executable
        set_mtime(&b.path().join("bin/hello"), 1_000_000);
        set_mtime(&b.path().join("share/doc/README"), 2_000_000);
        std::fs::set_permissions(
            b.path().join("share/doc/README"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let (ia, ba) = pack(a.path(), &BuildOptions::default());
        let (ib, bb) = pack(b.path(), &BuildOptions::default());
        assert_eq!(ia, ib);
        assert_eq!(ba, bb);
        assert_eq!(ia.digest, Digest::of_bytes(&ba));
        assert_eq!(ia.size, ba.len() as u64);
        // A changed executable bit or content changes the digest.
        std::fs::set_permissions(
            b.path().join("bin/hello"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert_ne!(pack(b.path(), &BuildOptions::default()).0.digest, ia.digest);
    }

    #[test]
    fn entries_are_sorted_and_normalized() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), 0o700);
        let options = BuildOptions {
            mtime: 1_700_000_000,
            ..BuildOptions::default()
        };
        let (info, bytes) = pack(dir.path(), &options);
        let mut diff = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut diff)
            .unwrap();
        assert_eq!(info.diff_id, Digest::of_bytes(&diff));
        let mut archive = tar::Archive::new(&diff[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.gid().unwrap(), 0);
            assert_eq!(h.mtime().unwrap(), 1_700_000_000);
            assert_eq!(h.username_bytes().unwrap_or_default(), b"");
            assert_eq!(h.groupname_bytes().unwrap_or_default(), b"");
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            seen.push((path, h.mode().unwrap(), h.entry_type(), link));
        }
        use tar::EntryType::*;
        let expected = vec![
            ("a-b", 0o644, Regular, None),
            ("bin", 0o755, Directory, None),
            ("bin/hello", 0o755, Regular, None),
            ("share", 0o755, Directory, None),
            ("share/doc", 0o755, Directory, None),
            ("share/doc/README", 0o644, Regular, None),
            ("share/doc/empty", 0o755, Directory, None),
            ("share/hello", 0o777, Symlink, Some("../bin/hello")),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(p, m, t, l)| (p.to_owned(), m, t, l.map(str::to_owned)))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(info.entries, 8);
        assert_eq!(
            info.installed_size,
            ("#!/bin/sh\necho hello\n".len() + "read me\n".len() + "sorts before a/".len()) as u64
        );
    }

    #[test]
    fn gzip_header_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), 0o755);
        let (_, bytes) = pack(dir.path(), &BuildOptions::default());
        // magic, deflate, no flags (no name/comment/extra), mtime 0, xfl 0 (level 6), OS 255
        assert_eq!(&bytes[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, GZIP_OS]);
    }

    #[test]
    fn long_names_and_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let long = "d".repeat(120);
        std::fs::create_dir_all(dir.path().join(&long)).unwrap();
        std::fs::write(dir.path().join(&long).join("f".repeat(120)), "x").unwrap();
        std::fs::create_dir_all(dir.path().join(".pkg")).unwrap();
        std::fs::write(dir.path().join(".pkg/receipt.json"), "{}").unwrap();
        let options = BuildOptions {
            exclude: vec![".pkg".into()],
            ..BuildOptions::default()
        };
        let (info, bytes) = pack(dir.path(), &options);
        assert_eq!(info.entries, 2);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect();
        assert_eq!(
            names,
            vec![long.clone(), format!("{long}/{}", "f".repeat(120))]
        );
    }

    #[test]
    fn links_are_packed_as_they_are_and_special_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        symlink("/usr/bin/python3.11", dir.path().join("python3")).unwrap();
        symlink(
            "../../../etc/ssl/cert.pem",
            dir.path().join("sub/cacert.pem"),
        )
        .unwrap();
        symlink("nowhere", dir.path().join("sub/dangling")).unwrap();
        let (_, tar_gz) = build_layer(
            dir.path(),
            &BuildOptions::default(),
            Vec::new(),
            &crate::report::Silent,
        )
        .unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz.as_slice()));
        let links: Vec<(String, String)> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type() == tar::EntryType::Symlink)
            .map(|e| {
                let path = e.path().unwrap().display().to_string();
                (path, e.link_name().unwrap().unwrap().display().to_string())
            })
            .collect();
        assert_eq!(
            links,
            [
                ("python3".to_owned(), "/usr/bin/python3.11".to_owned()),
                ("sub/cacert.pem".into(), "../../../etc/ssl/cert.pem".into()),
                ("sub/dangling".into(), "nowhere".into()),
            ]
        );
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = build_layer(
            dir.path(),
            &BuildOptions::default(),
            Vec::new(),
            &crate::report::Silent,
        )
        .unwrap_err();
        assert!(
            matches!(err, BuildError::Unsupported { kind: "fifo", .. }),
            "{err}"
        );
    }

    #[test]
    fn source_date_epoch() {
        assert_eq!(mtime_from(None), 1);
        assert_eq!(mtime_from(Some("1700000000")), 1_700_000_000);
        assert_eq!(mtime_from(Some("yesterday")), 1);
    }

    #[test]
    fn compression_is_gzip_zstd_or_zstd_at_a_level() {
        assert_eq!("gzip".parse(), Ok(Compression::Gzip));
        assert_eq!("zstd".parse(), Ok(Compression::Zstd(ZSTD_LEVEL)));
        assert_eq!("zstd:19".parse(), Ok(Compression::Zstd(19)));
        for bad in ["zstd:0", "zstd:20", "zstd:", "gzip:9", "xz", ""] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_zstd_layer_holds_the_same_tar_as_the_gzip_one() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), 0o755);
        let gz = pack(dir.path(), &BuildOptions::default());
        let options = BuildOptions {
            compression: Compression::Zstd(3),
            ..BuildOptions::default()
        };
        let zst = pack(dir.path(), &options);
        assert_eq!(gz.0.diff_id, zst.0.diff_id);
        assert_ne!(gz.0.digest, zst.0.digest);
        let mut tar = Vec::new();
        zstd::stream::read::Decoder::new(&zst.1[..])
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of_bytes(&tar), zst.0.diff_id);
        assert_eq!(pack(dir.path(), &options).1, zst.1, "reproducible");
    }
}
