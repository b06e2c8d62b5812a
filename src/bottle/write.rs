//! Formula write-back: adds or updates one `[versions."X"]` entry (repository, tag, digest) of a
//! formula file with `toml_edit`, so comments, formatting, other versions and other keys of the
//! entry (`depends_on`) stay as they were. The result is parsed as a formula before it replaces
//! the file (temp file + rename), so a write never leaves a formula pkg cannot read.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, Value};

use crate::formula::{Formula, Origin};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {reason}")]
    Toml { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Shape { path: PathBuf, reason: String },
    #[error(
        "{path} is the formula of `{formula}`, but the bottle is `{bottle}` (the file needs `name = \"{bottle}\"`)"
    )]
    OtherName {
        path: PathBuf,
        formula: String,
        bottle: String,
    },
    #[error(
        "{path}: the updated formula would not be valid ({reason}); the file was left unchanged"
    )]
    Invalid { path: PathBuf, reason: String },
}

/// The entry to write.
#[derive(Clone, Debug)]
pub struct Entry {
    pub version: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

impl Entry {
    /// The entry as a TOML snippet (printed when there is no formula to write to).
    pub fn snippet(&self) -> String {
        let mut doc = DocumentMut::new();
        let mut versions = Table::new();
        versions.set_implicit(true);
        versions.insert(&self.version, Item::Table(self.table()));
        doc.insert("versions", Item::Table(versions));
        doc.to_string()
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.insert("repository", toml_edit::value(&self.repository));
        t.insert("tag", toml_edit::value(&self.tag));
        t.insert("digest", toml_edit::value(&self.digest));
        t
    }
}

/// Sets `key` in a table, keeping the comments and spacing around the old value.
fn set_keep_decor(table: &mut dyn toml_edit::TableLike, key: &str, value: &str) {
    let mut new = Value::from(value);
    if let Some(old) = table.get(key).and_then(Item::as_value) {
        *new.decor_mut() = old.decor().clone();
    }
    table.insert(key, Item::Value(new));
}

/// `text` with the entry added or updated.
pub fn update_text(text: &str, entry: &Entry, path: &Path) -> Result<String, WriteError> {
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| WriteError::Toml {
                path: path.to_owned(),
                reason: e.to_string().trim_end().to_owned(),
            })?;
    let shape = |reason: &str| WriteError::Shape {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !doc.contains_key("versions") {
        let mut versions = Table::new();
        versions.set_implicit(true);
        doc.insert("versions", Item::Table(versions));
    }
    let versions = doc["versions"]
        .as_table_like_mut()
        .ok_or_else(|| shape("`versions` is not a table"))?;
    match versions.get_mut(&entry.version) {
        Some(existing) => {
            let table = existing.as_table_like_mut().ok_or_else(|| {
                shape(&format!("`versions.\"{}\"` is not a table", entry.version))
            })?;
            set_keep_decor(table, "repository", &entry.repository);
            set_keep_decor(table, "tag", &entry.tag);
            set_keep_decor(table, "digest", &entry.digest);
        }
        None => {
            if let Some(inline) = doc["versions"].as_inline_table_mut() {
                inline.insert(
                    &entry.version,
                    Value::InlineTable(entry.table().into_inline_table()),
                );
            } else if let Some(table) = doc["versions"].as_table_mut() {
                table.insert(&entry.version, Item::Table(entry.table()));
            }
        }
    }
    Ok(doc.to_string())
}

/// Updates the formula file at `path` for the bottle named `name`.
pub fn update_file(path: &Path, name: &str, entry: &Entry) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    let text = fs_err::read_to_string(path).map_err(io)?;
    // The file may have no version yet (a new package): only its name is checked before the
    // update; the whole formula is checked after it.
    let doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| WriteError::Toml {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
    let current = doc.get("name").and_then(Item::as_str).unwrap_or_default();
    if current != name {
        return Err(WriteError::OtherName {
            path: path.to_owned(),
            formula: current.to_owned(),
            bottle: name.to_owned(),
        });
    }
    let updated = update_text(&text, entry, path)?;
    Formula::parse(&updated, Origin::File(path.to_owned()), None).map_err(|e| {
        WriteError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pkg-formula-")
        .tempfile_in(&dir)
        .map_err(|source| WriteError::Io {
            path: dir.clone(),
            source,
        })?;
    tmp.write_all(updated.as_bytes()).map_err(io)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = tmp.as_file().set_permissions(meta.permissions());
    }
    tmp.persist(path).map_err(|e| WriteError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMULA: &str = r#"# hello: says hello
name = "hello"
desc = "Says hello"   # shown by pkg info
homepage = "https://example.com"

# the first release
[versions."1.0.0"]
repository = "ghcr.io/acme/hello"
tag = "1.0.0"

[versions."1.2.0"]
repository = "ghcr.io/acme/old"  # moved
tag = "1.2.0"
digest = "sha256:aa986f18e5556f9ce7ce265242ec6457ea2802030d92e5dc4c3c807a495db1e4"
depends_on = { libfoo = "^2" }
"#;

    fn entry(version: &str) -> Entry {
        Entry {
            version: version.into(),
            repository: "127.0.0.1:5000/acme/hello".into(),
            tag: version.into(),
            digest: format!("sha256:{}", "b".repeat(64)),
        }
    }

    #[test]
    fn adds_a_version_keeping_everything_else() {
        let out = update_text(FORMULA, &entry("2.0.0"), Path::new("hello.toml")).unwrap();
        assert!(out.starts_with(FORMULA), "{out}");
        assert!(out.contains("[versions.\"2.0.0\"]\nrepository = \"127.0.0.1:5000/acme/hello\"\ntag = \"2.0.0\"\ndigest = \"sha256:bbbb"), "{out}");
        let f = Formula::parse(&out, Origin::File("hello.toml".into()), Some("hello")).unwrap();
        assert_eq!(f.versions.len(), 3);
    }

    #[test]
    fn updates_a_version_keeping_comments_and_dependencies() {
        let out = update_text(FORMULA, &entry("1.2.0"), Path::new("hello.toml")).unwrap();
        assert!(
            out.contains("repository = \"127.0.0.1:5000/acme/hello\"  # moved"),
            "{out}"
        );
        assert!(out.contains("depends_on = { libfoo = \"^2\" }"), "{out}");
        assert!(
            out.contains(
                "# the first release\n[versions.\"1.0.0\"]\nrepository = \"ghcr.io/acme/hello\""
            ),
            "{out}"
        );
        assert!(
            out.contains("desc = \"Says hello\"   # shown by pkg info"),
            "{out}"
        );
        assert!(!out.contains("aa986f18"), "{out}");
        assert_eq!(out.matches("[versions.").count(), 2);
    }

    #[test]
    fn snippet_is_a_versions_table() {
        let s = entry("1.0.0").snippet();
        assert!(s.starts_with("[versions.\"1.0.0\"]\nrepository = "), "{s}");
    }

    #[test]
    fn file_update_refuses_other_formulae_and_keeps_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.toml");
        std::fs::write(&path, FORMULA).unwrap();
        let fresh = dir.path().join("new.toml");
        std::fs::write(&fresh, "name = \"new\"\ndesc = \"d\"\nhomepage = \"h\"\n").unwrap();
        update_file(&fresh, "new", &entry("0.1.0")).unwrap();
        let text = std::fs::read_to_string(&fresh).unwrap();
        Formula::parse(&text, Origin::File(fresh.clone()), Some("new")).unwrap();
        let err = update_file(&path, "other", &entry("2.0.0")).unwrap_err();
        assert!(matches!(err, WriteError::OtherName { .. }), "{err}");
        let mut bad = entry("2.0.0");
        bad.tag = ".bad tag".into();
        let err = update_file(&path, "hello", &bad).unwrap_err();
        assert!(matches!(err, WriteError::Invalid { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FORMULA);
        update_file(&path, "hello", &entry("2.0.0")).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("2.0.0"));
    }
}
