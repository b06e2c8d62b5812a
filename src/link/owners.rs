//! Who owns a link: the keg it points into. When `--overwrite` replaces a link of another
//! package, the takeover is recorded in `PREFIX/var/pkg/takeovers.toml` (schema 1), so `info`
//! and `doctor` say it and uninstalling the package that took the link gives it back.

use std::path::{Path, PathBuf};

/// Links taken from other packages: (link, the package that owned it).
pub type Taken = Vec<(PathBuf, String)>;

/// The version of `takeovers.toml`.
pub const SCHEMA: u32 = 1;

/// One link that a package took from another.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Takeover {
    /// Relative to the prefix: `bin/hello`.
    pub path: String,
    /// The package that owns the link now.
    pub by: String,
    /// The package that owned it before.
    pub from: String,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct File {
    schema: u32,
    #[serde(default, rename = "takeover")]
    takeovers: Vec<Takeover>,
}

fn path(prefix: &Path) -> PathBuf {
    prefix.join("var/pkg/takeovers.toml")
}

fn read(prefix: &Path) -> Vec<Takeover> {
    std::fs::read_to_string(path(prefix))
        .ok()
        .and_then(|t| toml::from_str::<File>(&t).ok())
        .filter(|f| f.schema == SCHEMA)
        .map(|f| f.takeovers)
        .unwrap_or_default()
}

fn write(prefix: &Path, takeovers: Vec<Takeover>) -> std::io::Result<()> {
    let file = path(prefix);
    if takeovers.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let dir = file.parent().unwrap_or(prefix);
    std::fs::create_dir_all(dir)?;
    let text = toml::to_string(&File {
        schema: SCHEMA,
        takeovers,
    })
    .map_err(std::io::Error::other)?;
    let mut tmp = crate::platform::temp_file_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(&file).map_err(|e| e.error)?;
    Ok(())
}

/// Records that `by` took `taken` over (replacing older records of the same links).
pub fn record(prefix: &Path, by: &str, taken: &[(PathBuf, String)]) -> std::io::Result<()> {
    if taken.is_empty() {
        return Ok(());
    }
    let mut all = read(prefix);
    for (link, from) in taken {
        let rel = link
            .strip_prefix(prefix)
            .unwrap_or(link)
            .to_string_lossy()
            .into_owned();
        all.retain(|t| t.path != rel);
        all.push(Takeover {
            path: rel,
            by: by.to_owned(),
            from: from.clone(),
        });
    }
    write(prefix, all)
}

/// Forgets that `by` took `taken` (a link change undone): the records of those links go.
pub fn forget(prefix: &Path, by: &str, taken: &[(PathBuf, String)]) -> std::io::Result<()> {
    let rels: Vec<String> = taken
        .iter()
        .map(|(link, _)| {
            let rel = link.strip_prefix(prefix).unwrap_or(link);
            rel.to_string_lossy().into_owned()
        })
        .collect();
    let all = read(prefix);
    let before = all.len();
    let rest: Vec<Takeover> = all
        .into_iter()
        .filter(|t| !(t.by == by && rels.contains(&t.path)))
        .collect();
    if rest.len() == before {
        return Ok(());
    }
    write(prefix, rest)
}

/// The takeovers that still hold: the link exists and points into the package that took it.
pub fn list(prefix: &Path) -> Vec<Takeover> {
    read(prefix)
        .into_iter()
        .filter(|t| {
            let link = prefix.join(&t.path);
            std::fs::read_link(&link)
                .ok()
                .and_then(|target| super::owner(prefix, &link, &target))
                .is_some_and(|owner| owner == t.by)
        })
        .collect()
}

/// Forgets what `by` took (it is being unlinked or removed) and returns the packages that had
/// those links, in order, each once: they are linked again by the caller.
pub fn give_back(prefix: &Path, by: &str) -> std::io::Result<Vec<String>> {
    let (theirs, rest): (Vec<Takeover>, Vec<Takeover>) =
        read(prefix).into_iter().partition(|t| t.by == by);
    if theirs.is_empty() {
        return Ok(Vec::new());
    }
    write(prefix, rest)?;
    let mut from: Vec<String> = Vec::new();
    for t in theirs {
        if !from.contains(&t.from) {
            from.push(t.from);
        }
    }
    Ok(from)
}
