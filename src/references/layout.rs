//! Installing an OCI image layout on disk without a formula: `pkg install oci:DIR[:TAG]` (skopeo's
//! syntax) or the layout's directory itself (`./tool-1.0.0.oci`, what `pkg bottle` writes). The
//! formula recorded for it names `oci:ABSOLUTE-DIR`, as a hand-written one would.

use std::path::{Path, PathBuf};

use super::ReferencesError;
use crate::source::layout::{Layout, REF_NAME};

/// A layout and the tag in it to install.
#[derive(Debug)]
pub struct LayoutRef {
    pub dir: PathBuf,
    pub tag: String,
}

/// `oci:DIR[:TAG]`, or a path (`./x`, `/x`, `~/x`) to a directory holding an `oci-layout` file.
/// `None` for anything else.
pub fn parse(arg: &str) -> Result<Option<LayoutRef>, ReferencesError> {
    let bad = |reason: String| ReferencesError::Invalid {
        arg: arg.to_owned(),
        reason,
    };
    let (dir, tag) = if let Some(rest) = arg.strip_prefix("oci:") {
        // The tag follows the last `:` after the last `/` (skopeo's `oci:DIR:TAG`).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        }
    } else if arg.starts_with('.') || arg.starts_with('/') || arg.starts_with('~') {
        if !Path::new(&expand(arg))
            .join(crate::source::layout::LAYOUT_FILE)
            .exists()
        {
            return Ok(None);
        }
        (arg, None)
    } else {
        return Ok(None);
    };
    if dir.is_empty() {
        return Err(bad(
            "`oci:` needs a layout's directory, like `oci:./tool-1.0.0.oci`".into(),
        ));
    }
    let dir = std::path::absolute(expand(dir))
        .map_err(|e| bad(format!("cannot make the path absolute: {e}")))?;
    let layout = Layout::open(&dir).map_err(|e| bad(e.to_string()))?;
    let tag = match tag.filter(|t| !t.is_empty()) {
        Some(t) => t.to_owned(),
        None => {
            // The layout's one tag (what `pkg bottle` writes), else it must be named.
            let entries = layout.entries().map_err(|e| bad(e.to_string()))?;
            let mut tags: Vec<String> = entries
                .iter()
                .filter_map(|d| d.annotations.get(REF_NAME).cloned())
                .map(|t| t.rsplit(':').next().unwrap_or(&t).to_owned())
                .collect();
            tags.sort();
            tags.dedup();
            match tags.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(bad(
                        "the layout tags nothing; name a tag: `oci:DIR:TAG`".into()
                    ));
                }
                many => {
                    return Err(bad(format!(
                        "the layout has several tags ({}); name one: `oci:DIR:TAG`",
                        many.join(", ")
                    )));
                }
            }
        }
    };
    if !crate::registry::repository::valid_tag(&tag) {
        return Err(bad(format!(
            "`{tag}` is not a valid tag (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
        )));
    }
    Ok(Some(LayoutRef { dir, tag }))
}

fn expand(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None => PathBuf::from(path),
    }
}

impl LayoutRef {
    /// The package name: the directory's name without `.oci` and without a trailing
    /// `-VERSION` when that is the tag (`tool-1.0.0.oci` → `tool`).
    pub fn name(&self) -> Result<String, ReferencesError> {
        let file = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = file.strip_suffix(".oci").unwrap_or(&file);
        let stem = stem.strip_suffix(&format!("-{}", self.tag)).unwrap_or(stem);
        if crate::formula::valid_name(stem) {
            Ok(stem.to_owned())
        } else {
            Err(ReferencesError::Invalid {
                arg: self.dir.display().to_string(),
                reason: format!("`{stem}` cannot be a package name; name it with --as NAME"),
            })
        }
    }

    /// The version its tag stands for, as for a registry reference (`1.0.0`, or
    /// `0.0.0+tag.TAG` for a tag that is not a version).
    pub fn version(&self) -> semver::Version {
        super::tag_version("", &self.tag)
    }

    /// The formula text recorded for it.
    pub fn formula(&self, name: &str) -> String {
        let version = self.version();
        let repo = toml_edit::value(format!("oci:{}", self.dir.display()));
        let tag = toml_edit::value(&self.tag);
        format!(
            "# Recorded by `pkg install oci:{dir}`; pkg keeps this file.\nname = \"{name}\"\ndesc = \"{dir}, installed from an OCI layout\"\nhomepage = \"file://{dir}\"\n\n[versions.\"{version}\"]\nrepository = {repo}\ntag = {tag}\n",
            dir = self.dir.display(),
        )
    }
}
