//! Homebrew bottles poured as kegs: the `NAME/VERSION/` top directory is stripped, and the
//! `@@HOMEBREW_…@@` placeholders in text files are replaced with pkg's paths. A binary file that
//! holds a placeholder cannot be relocated safely, so such a bottle is refused.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BrewError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the bottle's binary file `{file}` holds the placeholder {placeholder}; it was built for one prefix and pkg cannot relocate binaries. Use a bottle built with `cellar :any_skip_relocation`, or build the package for pkg."
    )]
    BinaryNeedsRelocation { file: String, placeholder: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BrewError + '_ {
    move |source| BrewError::Io {
        path: path.to_owned(),
        source,
    }
}

/// If `root` holds exactly one directory `NAME` that holds exactly one directory (the version),
/// moves that directory's contents up to `root`. Returns whether it did.
pub fn strip_bottle_prefix(root: &Path, name: &str) -> Result<bool, BrewError> {
    let entries = |dir: &Path| -> Result<Vec<std::fs::DirEntry>, BrewError> {
        std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err(dir))
    };
    let top = entries(root)?;
    let [only] = top.as_slice() else {
        return Ok(false);
    };
    let name_dir = only.path();
    if only.file_name() != name || !only.file_type().map_err(io_err(&name_dir))?.is_dir() {
        return Ok(false);
    }
    let inner = entries(&name_dir)?;
    let [version] = inner.as_slice() else {
        return Ok(false);
    };
    if !version.file_type().map_err(io_err(&name_dir))?.is_dir() {
        return Ok(false);
    }
    // Move NAME/ aside first, so a file called NAME inside the version dir cannot collide.
    let aside = root.join(".pkg-bottle-top");
    fs_err::rename(&name_dir, &aside).map_err(io_err(&name_dir))?;
    let version_dir = aside.join(version.file_name());
    for e in entries(&version_dir)? {
        let to = root.join(e.file_name());
        fs_err::rename(e.path(), &to).map_err(io_err(&to))?;
    }
    fs_err::remove_dir_all(&aside).map_err(io_err(&aside))?;
    Ok(true)
}

/// Replaces Homebrew's placeholders in every text file under `root`; returns the files changed.
pub fn relocate(root: &Path, prefix: &Path) -> Result<Vec<String>, BrewError> {
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
    let mut changed = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let path = e.path();
            let kind = e.file_type().map_err(io_err(&path))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let bytes = fs_err::read(&path).map_err(io_err(&path))?;
            let Some(found) = replacements
                .iter()
                .find(|(p, _)| contains(&bytes, p.as_bytes()))
            else {
                continue;
            };
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if bytes.contains(&0) {
                return Err(BrewError::BinaryNeedsRelocation {
                    file: rel,
                    placeholder: found.0.to_owned(),
                });
            }
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            for (placeholder, value) in &replacements {
                text = text.replace(placeholder, value);
            }
            // Same directory, then rename: the file is never half-written; its mode is kept.
            let perms = e.metadata().map_err(io_err(&path))?.permissions();
            let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
            std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io_err(&path))?;
            fs_err::set_permissions(tmp.path(), perms).map_err(io_err(&path))?;
            tmp.persist(&path).map_err(|e| BrewError::Io {
                path: path.clone(),
                source: e.error,
            })?;
            changed.push(rel);
        }
    }
    changed.sort();
    Ok(changed)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
        assert!(strip_bottle_prefix(d.path(), "hello").unwrap());
        assert!(d.path().join("bin/hello").is_file());
        assert!(d.path().join("hello").is_file());
        assert!(!d.path().join(".pkg-bottle-top").exists());
        let changed = relocate(d.path(), Path::new("/opt/pkg")).unwrap();
        assert_eq!(changed, ["bin/hello"]);
        assert_eq!(
            std::fs::read_to_string(d.path().join("bin/hello")).unwrap(),
            "#!/bin/sh\nexec /opt/pkg/libexec/x\n"
        );
        // Not a bottle layout: left alone.
        assert!(!strip_bottle_prefix(d.path(), "hello").unwrap());
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
