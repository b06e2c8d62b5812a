//! Owns the manifest of a tree kept in the unpacked store: every entry's type, mode, size, inode
//! and ctime when the tree was stored, and the umask its modes were made under. A tree is used
//! for a warm install only when it still matches, so an edit made in `CACHE/v1/unpacked/` after
//! the fact (a write, a chmod, an entry added, removed or swapped) is never installed.
//!
//! Why ctime and not hashes: the kernel sets an inode's ctime on every change to its data or its
//! metadata, and no system call sets it back (only the clock could), so a write, a truncate, a
//! chmod or a rename shows, while checking costs one `lstat` per entry instead of reading every
//! byte (a hash of each file on every warm install would cost what the clone saves). What it does
//! not stop is someone who can write the cache rewriting the manifest too: the cache's blobs are
//! held to digests from outside it; a tree is as trustworthy as the directory it sits in
//! (docs/hardening.md).

use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

const HEADER: &str = "pkg-unpacked-manifest 1";

/// One line per entry of `tree` (the tree itself first, then every entry, sorted by path):
/// `TYPE MODE SIZE INODE CTIME PATH-HEX`. Links are described, never followed.
pub fn describe(tree: &Path) -> io::Result<String> {
    let mut lines = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = tree.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        let letter = if kind.is_dir() {
            'd'
        } else if kind.is_symlink() {
            'l'
        } else if kind.is_file() {
            'f'
        } else {
            'o'
        };
        lines.push(format!(
            "{letter} {:o} {} {} {}.{:09} {}",
            meta.mode() & 0o7777,
            if kind.is_dir() { 0 } else { meta.len() },
            meta.ino(),
            meta.ctime(),
            meta.ctime_nsec(),
            hex::encode(rel.as_os_str().as_bytes())
        ));
        if kind.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(rel.join(entry?.file_name()));
            }
        }
    }
    lines.sort_by(|a, b| a.rsplit(' ').next().cmp(&b.rsplit(' ').next()));
    Ok(lines.join("\n"))
}

/// The manifest file's text for `tree`, stored with its modes made under `umask`.
pub fn write(tree: &Path, umask: u32) -> io::Result<String> {
    let mut text = String::new();
    let _ = writeln!(text, "{HEADER} umask {umask:o}");
    text.push_str(&describe(tree)?);
    text.push('\n');
    Ok(text)
}

/// Why a stored tree may not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No manifest, or one pkg cannot read.
    Unreadable,
    /// Its modes were made under a umask that took bits the caller's keeps: unpacking again
    /// gives what this umask gives.
    Umask { stored: u32, now: u32 },
    /// This entry (tree-relative) was changed, added or removed since the tree was stored.
    Changed(PathBuf),
}

/// Checks `tree` against `manifest` (the text [`write`] made) for a caller under `umask`.
pub fn check(tree: &Path, manifest: &str, umask: u32) -> Result<(), Mismatch> {
    let (first, body) = manifest.split_once('\n').ok_or(Mismatch::Unreadable)?;
    let stored = first
        .strip_prefix(HEADER)
        .and_then(|r| r.trim().strip_prefix("umask "))
        .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
        .ok_or(Mismatch::Unreadable)?;
    // A stricter umask now is applied while cloning; a looser one needs bits the tree lacks.
    if stored & !umask != 0 {
        return Err(Mismatch::Umask { stored, now: umask });
    }
    let now = describe(tree).map_err(|_| Mismatch::Changed(PathBuf::new()))?;
    let (mut want, mut got) = (body.lines(), now.lines());
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Ok(()),
            (a, b) if a == b => {}
            (a, b) => {
                let line = match (a, b) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(x), None) | (None, Some(x)) => x,
                    (None, None) => "",
                };
                let hexed = line.rsplit(' ').next().unwrap_or("");
                let rel = hex::decode(hexed).unwrap_or_default();
                return Err(Mismatch::Changed(PathBuf::from(
                    std::ffi::OsStr::from_bytes(&rel),
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_to_a_stored_tree_is_found_and_named() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("share")).unwrap();
        std::fs::write(tree.join("share/data"), "published").unwrap();
        std::fs::write(tree.join("bin"), "tool").unwrap();
        std::os::unix::fs::symlink("share/data", tree.join("link")).unwrap();
        let manifest = write(&tree, 0o022).unwrap();
        assert_eq!(check(&tree, &manifest, 0o022), Ok(()));
        assert_eq!(check(&tree, &manifest, 0o077), Ok(()), "stricter is fine");
        assert_eq!(
            check(&tree, &manifest, 0o002),
            Err(Mismatch::Umask {
                stored: 0o022,
                now: 0o002
            })
        );
        assert_eq!(check(&tree, "nonsense", 0o022), Err(Mismatch::Unreadable));
        // The same size, the same mtime put back: the ctime still shows the write.
        let mtime = std::fs::metadata(tree.join("share/data"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::write(tree.join("share/data"), "tampered!").unwrap();
        std::fs::File::options()
            .write(true)
            .open(tree.join("share/data"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            check(&tree, &manifest, 0o022),
            Err(Mismatch::Changed("share/data".into()))
        );
        let manifest = write(&tree, 0o022).unwrap();
        std::fs::write(tree.join("share/extra"), "").unwrap();
        assert!(matches!(
            check(&tree, &manifest, 0o022),
            Err(Mismatch::Changed(_))
        ));
    }
}
