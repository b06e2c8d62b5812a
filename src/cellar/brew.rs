//! Homebrew bottles poured as kegs: the `NAME/VERSION[_REVISION]/` top directory is stripped, and the
//! `@@HOMEBREW_…@@` placeholders are replaced with pkg's paths: in text files everywhere, in ELF
//! files in the interpreter and RUNPATH/RPATH (`elf.rs`) and elsewhere where the new string fits.
//! A binary whose placeholder cannot be replaced that way is refused.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::cellar::unpack::beneath::{Root, WalkError};

pub mod check;
pub mod elf;

#[derive(Debug, thiserror::Error)]
pub enum BrewError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the bottle's binary file `{file}` holds the placeholder {placeholder} and cannot be relocated: {source}. Use a bottle built with `cellar :any_skip_relocation`, or build the package for pkg."
    )]
    Binary {
        file: String,
        placeholder: String,
        #[source]
        source: elf::ElfError,
    },
    #[error("{}: {error}", root.display())]
    Walk {
        root: PathBuf,
        #[source]
        error: WalkError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BrewError + '_ {
    move |source| BrewError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `dir` is the directory a bottle of `version` is packed in: `VERSION` or
/// `VERSION_REVISION` (`1.0.0_1`).
fn is_version_dir(dir: &OsStr, version: &str) -> bool {
    let Some(rest) = dir.as_bytes().strip_prefix(version.as_bytes()) else {
        return false;
    };
    match rest.strip_prefix(b"_") {
        None => rest.is_empty(),
        Some(revision) => !revision.is_empty() && revision.iter().all(u8::is_ascii_digit),
    }
}

/// If `root` holds exactly `NAME/VERSION[_REVISION]/` for the version being installed (both
/// real directories, nothing beside them), moves that directory's contents up to `root`.
/// Returns whether it did. Every step is by descriptor beneath `root`: no link is followed, and
/// links move as they are (where they point is checked by whoever uses them, in their final
/// place).
pub fn strip_bottle_prefix(root: &Path, name: &str, version: &str) -> Result<bool, BrewError> {
    let mut beneath = Root::open(root).map_err(io_err(root))?;
    let walk = |error| BrewError::Walk {
        root: root.to_owned(),
        error,
    };
    let top = beneath.list(Path::new("")).map_err(walk)?;
    let [(only, kind)] = top.as_slice() else {
        return Ok(false);
    };
    if only.as_bytes() != name.as_bytes() || *kind != FileType::Directory {
        return Ok(false);
    }
    let inner = beneath.list(Path::new(only)).map_err(walk)?;
    let [(version_dir, kind)] = inner.as_slice() else {
        return Ok(false);
    };
    if *kind != FileType::Directory || !is_version_dir(version_dir, version) {
        return Ok(false);
    }
    // Move NAME/ aside first, so a file called NAME inside the version dir cannot collide.
    let aside = Path::new(".pkg-bottle-top");
    beneath.rename(Path::new(only), aside).map_err(walk)?;
    let version_rel = aside.join(version_dir);
    for (entry, _) in beneath.list(&version_rel).map_err(walk)? {
        beneath
            .rename(&version_rel.join(&entry), Path::new(&entry))
            .map_err(walk)?;
    }
    beneath.remove(aside).map_err(walk)?;
    Ok(true)
}

/// Replaces Homebrew's placeholders in every text file under `root`; returns the files changed.
/// The tree is walked by descriptor: links are never followed, only regular files are read, and
/// each changed file is replaced whole (same mode) by a rename in its own directory.
#[cfg(test)]
pub fn relocate(root: &Path, prefix: &Path) -> Result<Relocation, BrewError> {
    relocate_files(root, prefix, None)
}

/// [`relocate`], opening only `marked` (root-relative files the unpack saw a placeholder in)
/// when given: no walk, no second read of the rest of the keg.
pub fn relocate_files(
    root: &Path,
    prefix: &Path,
    marked: Option<&[PathBuf]>,
) -> Result<Relocation, BrewError> {
    let prefix_s = prefix.to_string_lossy().into_owned();
    let replacements = [
        ("@@HOMEBREW_PREFIX@@", prefix_s.clone()),
        (
            "@@HOMEBREW_CELLAR@@",
            prefix.join("Cellar").to_string_lossy().into_owned(),
        ),
        ("@@HOMEBREW_REPOSITORY@@", prefix_s.clone()),
        (
            "@@HOMEBREW_LIBRARY@@",
            prefix.join("Library").to_string_lossy().into_owned(),
        ),
        ("@@HOMEBREW_PERL@@", "/usr/bin/perl".to_owned()),
        (
            "@@HOMEBREW_JAVA@@",
            prefix
                .join("opt/openjdk/libexec")
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    let mut beneath = Root::open(root).map_err(io_err(root))?;
    let walk = |error| BrewError::Walk {
        root: root.to_owned(),
        error,
    };
    // The files to look at: those marked, or every regular file of the tree.
    let files: Vec<PathBuf> = match marked {
        Some(marked) => {
            let mut files: Vec<PathBuf> = marked.to_vec();
            files.sort();
            files.dedup();
            files
        }
        None => {
            let mut files = Vec::new();
            let mut stack = vec![PathBuf::new()];
            while let Some(dir) = stack.pop() {
                for (name, kind) in beneath.list(&dir).map_err(walk)? {
                    let rel = dir.join(name);
                    if kind == FileType::Directory {
                        stack.push(rel);
                    } else if kind == FileType::RegularFile {
                        files.push(rel);
                    }
                }
            }
            files
        }
    };
    // Each file once (a marked file a later layer removed or replaced by something else is
    // passed over), shared among threads by inode: every name of one file is relocated by the
    // same thread, in order, so no thread reads a file another is rewriting in place.
    let mut stated = Vec::new();
    for rel in files {
        match beneath.stat(&rel) {
            Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                stated.push((st.st_ino, rel));
            }
            Ok(_) | Err(WalkError::Missing(_) | WalkError::NotADirectory(_)) => continue,
            Err(e) => return Err(walk(e)),
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(stated.len() / 16)
        .max(1);
    let mut lanes: Vec<Vec<PathBuf>> = vec![Vec::new(); threads];
    for (ino, rel) in stated {
        lanes[(ino % threads as u64) as usize].push(rel);
    }
    let replacements = &replacements;
    let done = crate::spread::on_threads(lanes, |lane| relocate_lane(root, replacements, lane));
    let mut all = Relocation::default();
    for lane in done {
        let lane = lane?;
        all.changed.extend(lane.changed);
        all.interpreters += lane.interpreters;
        all.sums.extend(lane.sums);
    }
    all.changed.sort();
    Ok(all)
}

/// Relocates `files` (root-relative regular files) with its own descriptor walk beneath `root`.
fn relocate_lane(
    root: &Path,
    replacements: &[(&str, String)],
    files: Vec<PathBuf>,
) -> Result<Relocation, BrewError> {
    let mut beneath = Root::open(root).map_err(io_err(root))?;
    let walk = |error| BrewError::Walk {
        root: root.to_owned(),
        error,
    };
    let mut changed = Vec::new();
    let mut sums = std::collections::BTreeMap::new();
    let mut interpreters = 0;
    for rel in files {
        let mut file = beneath.open_file(&rel, false).map_err(walk)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_err(&root.join(&rel)))?;
        let shown = rel.to_string_lossy().into_owned();
        let Some(found) = elf::first_placeholder(&bytes, replacements) else {
            sums.insert(shown, crc32fast::hash(&bytes));
            continue;
        };
        if bytes.contains(&0) {
            // A binary: an ELF file's interpreter and search paths are rewritten by an ELF
            // editor, other strings in place where they fit; else the bottle is refused.
            drop(file);
            let result = if bytes.starts_with(elf::MAGIC) {
                elf::relocate(bytes, replacements)
            } else if elf::is_mach_o(&bytes) {
                // Rewriting a Mach-O file takes install_name_tool's rules and a new code
                // signature (docs/homebrew.md); until pkg does both, it refuses.
                Err(elf::ElfError::MachO)
            } else {
                let mut bytes = bytes;
                elf::in_place(&mut bytes, replacements).map(|n| {
                    let done = elf::Relocated {
                        in_place: n,
                        ..Default::default()
                    };
                    (done, bytes)
                })
            };
            let (done, edited) = result.map_err(|source| BrewError::Binary {
                file: shown.clone(),
                placeholder: found.to_owned(),
                source,
            })?;
            // Written in place, once: a hard link to the file in the keg stays one.
            let mut file = beneath.open_file(&rel, true).map_err(walk)?;
            write_whole(&mut file, &edited).map_err(io_err(&root.join(&rel)))?;
            interpreters += usize::from(done.interpreter);
            sums.insert(shown.clone(), crc32fast::hash(&edited));
            changed.push(shown);
            continue;
        }
        // Text: every placeholder replaced, every other byte kept (whatever its encoding).
        let Some(text) = elf::replaced(&bytes, replacements) else {
            sums.insert(shown, crc32fast::hash(&bytes));
            continue;
        };
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .map_err(io_err(&root.join(&rel)))?
            .permissions()
            .mode();
        beneath.replace(&rel, &text, mode & 0o7777).map_err(walk)?;
        sums.insert(shown.clone(), crc32fast::hash(&text));
        changed.push(shown);
    }
    Ok(Relocation {
        changed,
        interpreters,
        sums,
    })
}

/// Replaces the contents of `file` (open for writing) with `bytes`.
fn write_whole(file: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    file.write_all_at(bytes, 0)?;
    file.set_len(bytes.len() as u64)
}

/// What [`relocate`] changed.
#[derive(Debug, Default)]
pub struct Relocation {
    /// Keg-relative files rewritten, sorted.
    pub changed: Vec<String>,
    /// ELF files whose interpreter is now `PREFIX/lib/ld.so` (which must then exist).
    pub interpreters: usize,
    /// The CRC-32 of every file read, keg-relative, as it is once relocation is done (what the
    /// receipt's stamps need, without reading the files again).
    pub sums: std::collections::BTreeMap<String, u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_name_version_and_relocates_text_only() {
        let d = tempfile::tempdir().unwrap();
        let v = d.path().join("hello/1.2.3_1");
        std::fs::create_dir_all(v.join("bin")).unwrap();
        std::fs::write(
            v.join("bin/hello"),
            "#!/bin/sh\nexec @@HOMEBREW_PREFIX@@/libexec/x\n",
        )
        .unwrap();
        std::fs::write(v.join("INSTALL_RECEIPT.json"), "{}").unwrap();
        std::fs::write(v.join("hello"), "a file named like the package").unwrap();
        assert!(strip_bottle_prefix(d.path(), "hello", "1.2.3").unwrap());
        assert!(d.path().join("bin/hello").is_file());
        assert!(d.path().join("hello").is_file());
        assert!(!d.path().join(".pkg-bottle-top").exists());
        let changed = relocate(d.path(), Path::new("/opt/pkg")).unwrap().changed;
        assert_eq!(changed, ["bin/hello"]);
        assert_eq!(
            std::fs::read_to_string(d.path().join("bin/hello")).unwrap(),
            "#!/bin/sh\nexec /opt/pkg/libexec/x\n"
        );
        // Not a bottle layout: left alone.
        assert!(!strip_bottle_prefix(d.path(), "hello", "1.2.3").unwrap());
    }

    #[test]
    fn the_strip_needs_exactly_name_and_this_version() {
        let strip = |dirs: &[&str], version: &str| {
            let d = tempfile::tempdir().unwrap();
            for dir in dirs {
                std::fs::create_dir_all(d.path().join(dir)).unwrap();
            }
            let stripped = strip_bottle_prefix(d.path(), "tool", version).unwrap();
            (stripped, d)
        };
        assert!(strip(&["tool/1.0.0/bin"], "1.0.0").0);
        assert!(strip(&["tool/1.0.0_1/bin"], "1.0.0").0);
        // `NAME/SUBDIR/` is a tarball with a top directory, not a bottle.
        let (stripped, d) = strip(&["tool/bin"], "1.0.0");
        assert!(!stripped && d.path().join("tool/bin").is_dir());
        assert!(!strip(&["tool/2.0.0/bin"], "1.0.0").0);
        assert!(!strip(&["tool/1.0.0_x/bin"], "1.0.0").0);
        assert!(!strip(&["tool/1.0.0/bin", "tool/extra"], "1.0.0").0);
        assert!(!strip(&["other/1.0.0/bin"], "1.0.0").0);
        // A link named like the version is not the version directory.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tool")).unwrap();
        std::os::unix::fs::symlink("/", d.path().join("tool/1.0.0")).unwrap();
        assert!(!strip_bottle_prefix(d.path(), "tool", "1.0.0").unwrap());
    }

    #[test]
    fn relocation_never_follows_a_link() {
        let d = tempfile::tempdir().unwrap();
        let (keg, outside) = (d.path().join("keg"), d.path().join("outside"));
        std::fs::create_dir_all(keg.join("share")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("conf"), "p=@@HOMEBREW_PREFIX@@\n").unwrap();
        std::os::unix::fs::symlink(&outside, keg.join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.join("conf"), keg.join("share/conf")).unwrap();
        std::fs::write(keg.join("share/own"), "p=@@HOMEBREW_PREFIX@@\n").unwrap();
        let changed = relocate(&keg, Path::new("/opt/pkg")).unwrap().changed;
        assert_eq!(changed, ["share/own"]);
        assert_eq!(
            std::fs::read_to_string(outside.join("conf")).unwrap(),
            "p=@@HOMEBREW_PREFIX@@\n"
        );
    }

    #[test]
    fn strings_in_binaries_are_replaced_in_place_only_when_they_fit() {
        let d = tempfile::tempdir().unwrap();
        let data = b"\0\x01\x02@@HOMEBREW_PREFIX@@/share/x\0tail\0";
        std::fs::write(d.path().join("data.bin"), data).unwrap();
        // `/p` is shorter than the placeholder: rewritten and padded with NULs.
        let done = relocate(d.path(), Path::new("/p")).unwrap();
        assert_eq!(done.changed, ["data.bin"]);
        let bytes = std::fs::read(d.path().join("data.bin")).unwrap();
        assert_eq!(bytes.len(), data.len());
        assert!(bytes.starts_with(b"\0\x01\x02/p/share/x\0"));
        assert!(bytes.ends_with(b"\0tail\0"));
        // A longer prefix does not fit: refused, saying so.
        std::fs::write(d.path().join("data.bin"), data).unwrap();
        let long = Path::new("/a/much/longer/prefix/than/the/placeholder");
        let err = relocate(d.path(), long).unwrap_err().to_string();
        assert!(err.contains("data.bin") && err.contains("longer"), "{err}");
    }

    #[test]
    fn relocation_keeps_every_byte_that_is_not_a_placeholder() {
        let d = tempfile::tempdir().unwrap();
        // ISO-8859-1 text: `café` is 63 61 66 E9, not UTF-8.
        let latin1 = b"caf\xe9 @@HOMEBREW_PREFIX@@/share \xff\xfe\n@@HOMEBREW_UNKNOWN@@\n";
        std::fs::write(d.path().join("notes.txt"), latin1).unwrap();
        // A binary (it holds NUL): a 0xff byte right beside the placeholder.
        let binary = b"\0\x01\xff@@HOMEBREW_PREFIX@@/lib\0\xff\xfe\0";
        std::fs::write(d.path().join("data.bin"), binary).unwrap();
        let done = relocate(d.path(), Path::new("/p")).unwrap();
        assert_eq!(done.changed, ["data.bin", "notes.txt"]);
        assert_eq!(
            std::fs::read(d.path().join("notes.txt")).unwrap(),
            b"caf\xe9 /p/share \xff\xfe\n@@HOMEBREW_UNKNOWN@@\n"
        );
        // The string from the byte after the last NUL is rewritten: the 0xff is part of it.
        let mut want = b"\0\x01\xff/p/lib".to_vec();
        want.resize(1 + b"\x01\xff@@HOMEBREW_PREFIX@@/lib".len(), 0);
        want.extend_from_slice(b"\0\xff\xfe\0");
        assert_eq!(std::fs::read(d.path().join("data.bin")).unwrap(), want);
    }

    /// The host's `/bin/sh` with a placeholder appended, so relocation hands it to the ELF
    /// editor, and one header field set to `value`.
    fn hostile_elf(dir: &Path, at: usize, value: u64, size: usize) -> Vec<u8> {
        let mut bytes = std::fs::read("/bin/sh").unwrap();
        bytes[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
        bytes.extend_from_slice(b"@@HOMEBREW_PREFIX@@/lib\0");
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/tool"), &bytes).unwrap();
        bytes
    }

    #[test]
    fn hostile_elf_headers_are_refused_naming_the_file_not_panicking() {
        for (at, value, size) in [(58, 0, 2), (54, 0, 2), (60, 0x7fff, 2)] {
            let d = tempfile::tempdir().unwrap();
            let bytes = hostile_elf(d.path(), at, value, size);
            let err = relocate(d.path(), Path::new("/p")).unwrap_err().to_string();
            assert!(err.contains("bin/tool") && err.contains("entr"), "{err}");
            assert_eq!(std::fs::read(d.path().join("bin/tool")).unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_elf_headers_never_panic_the_editor() {
        // Every byte of the ELF header and of the first program and section headers, set to
        // each of a few hostile values: an error or a relocation, never a panic or an abort.
        let sh = std::fs::read("/bin/sh").unwrap();
        let phoff = u64::from_le_bytes(sh[32..40].try_into().unwrap()) as usize;
        let shoff = u64::from_le_bytes(sh[40..48].try_into().unwrap()) as usize;
        let offsets = (16..64)
            .chain(phoff..phoff + 3 * 56)
            .chain(shoff..shoff + 2 * 64)
            .chain(shoff + sh.len().saturating_sub(shoff) / 2..)
            .take(64 + 3 * 56 + 2 * 64);
        let d = tempfile::tempdir().unwrap();
        for at in offsets.filter(|at| *at < sh.len()) {
            for value in [0u64, 0xff, 0x7f] {
                hostile_elf(d.path(), at, value, 1);
                let _ = relocate(d.path(), Path::new("/p"));
            }
        }
    }

    #[test]
    fn a_mach_o_file_with_a_placeholder_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = vec![0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1, 0];
        bytes.extend_from_slice(b"@@HOMEBREW_PREFIX@@/lib/libx.dylib\0");
        std::fs::write(d.path().join("libx.dylib"), &bytes).unwrap();
        let err = relocate(d.path(), Path::new("/p")).unwrap_err().to_string();
        assert!(
            err.contains("libx.dylib") && err.contains("Mach-O"),
            "{err}"
        );
        assert_eq!(std::fs::read(d.path().join("libx.dylib")).unwrap(), bytes);
    }

    #[test]
    fn a_binary_with_a_placeholder_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("lib.so"),
            b"\x7fELF\0\0@@HOMEBREW_CELLAR@@/x\0",
        )
        .unwrap();
        let err = relocate(d.path(), Path::new("/opt/pkg"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lib.so") && err.contains("@@HOMEBREW_CELLAR@@"),
            "{err}"
        );
    }
}
