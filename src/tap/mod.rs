//! Taps: extra formula directories by name (`acme`, or `owner/repo` as brew names them), a
//! local directory (linked), a git repository (cloned with the `git` command), or a formula
//! JSON API (homebrew/core's; see [`api`]), kept under `PREFIX/var/pkg/taps/NAME`.

use std::path::{Path, PathBuf};

pub mod api;
mod git;

pub use git::git_remote;
use git::{git, head_commit, is_git_repository, looks_like_git_url};

use crate::platform::Platform;
use crate::registry::Client;
use crate::registry::web::{Document, Validators};

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error(
        "invalid tap name `{0}`: use lowercase letters, digits and `-_.`, or OWNER/NAME of those (like homebrew/core); `local`, `references` and `builtin` name pkg's own formula sources"
    )]
    BadName(String),
    #[error("a tap named `{0}` exists already; `pkg tap remove {0}` first")]
    Exists(String),
    #[error(
        "--offline: the formula API of tap `{name}` ({url}) is not in the cache; a tap added online keeps its document there, so add it once without --offline (a CI job: restore the cache that job saved)"
    )]
    OfflineDocument { name: String, url: String },
    #[error("no tap named `{0}`; `pkg tap list` shows them")]
    Unknown(String),
    #[error(
        "the tap URL `{shown}` carries a user name or password; pkg never keeps credentials in a tap (they would be shown and written to disk). Give the URL without them: for a formula API behind a login, `pkg login HOST`; for a git tap, git's credential helper"
    )]
    Credentials { shown: String },
    #[error("`{source_}` is neither a directory nor a git URL")]
    BadSource { source_: String },
    #[error("tap source `{source_}` starts with `-`; for a directory of that name use ./{source_}")]
    DashSource { source_: String },
    #[error("git {action} of tap `{name}` failed: {detail}")]
    Git {
        name: String,
        action: &'static str,
        detail: String,
    },
    #[error(
        "`{0}` is not a tap that reads a formula API; give it a directory or a git URL, or leave out --api"
    )]
    NotApi(String),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error("fetching the formula API of tap `{name}`: {source}")]
    Fetch {
        name: String,
        #[source]
        source: crate::registry::RegistryError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Tap {
    pub name: String,
    /// The directory holding the tap (a clone, or the linked directory).
    pub path: PathBuf,
    /// `git`, `dir` or `api`.
    pub kind: &'static str,
}

impl Tap {
    /// Where the tap comes from, as `pkg tap add NAME SOURCE` takes it back (what `pkg bundle
    /// dump` writes): a git remote without the credentials it may carry, the API document
    /// exactly (`api` alone for formulae.brew.sh), or the linked directory.
    pub fn source(&self) -> Option<String> {
        match self.kind {
            "git" => git_remote(&self.path).map(|r| shown_remote(&r)),
            "api" => api::Meta::read(&self.path).map(|m| {
                if m.url == api::DEFAULT_URL {
                    "api".to_owned()
                } else {
                    format!("api:{}", m.url)
                }
            }),
            _ => std::fs::read_link(&self.path)
                .ok()
                .map(|p| p.display().to_string()),
        }
    }
}

/// What adding or refreshing an API tap did.
pub struct Refreshed {
    /// `false` when the server said the document had not changed (304).
    pub changed: bool,
    pub meta: api::Meta,
}

pub struct Taps {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TapError + '_ {
    move |source| TapError::Io {
        path: path.to_owned(),
        source,
    }
}

fn valid_part(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// `acme`, or `owner/name` (one `/`, as brew names taps); never a name pkg's own formula
/// sources use (`local`, `references`, `builtin`).
fn valid(name: &str) -> bool {
    use crate::formula::{BUILTIN, LOCAL, REFERENCES};
    if [LOCAL, REFERENCES, BUILTIN].contains(&name) {
        return false;
    }
    match name.split_once('/') {
        Some((owner, rest)) => valid_part(owner) && valid_part(rest),
        None => valid_part(name),
    }
}

/// Is this directory entry a tap itself (rather than an `owner/` directory of taps)?
fn is_tap(path: &Path, linked: bool) -> bool {
    linked
        || path.join(".git").exists()
        || path.join(api::META_FILE).exists()
        || path.join("formulae").is_dir()
        || std::fs::read_dir(path).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".toml"))
        })
}

/// Refuses a URL with a password, or (for `any_user`, and for http(s)) with any user name: a
/// token in the user name is a password. An ssh user without a password (`git@host:…`,
/// `ssh://git@host/…`) is not a secret.
fn refuse_credentials(source: &str, any_user: bool) -> Result<(), TapError> {
    let Ok(url) = url::Url::parse(source) else {
        return Ok(());
    };
    let http = matches!(url.scheme(), "http" | "https");
    if url.password().is_some() || ((any_user || http) && !url.username().is_empty()) {
        return Err(TapError::Credentials {
            shown: crate::registry::redact(&url),
        });
    }
    Ok(())
}

/// The formulae of a tap directory that do not load, each with why.
pub fn broken_formulae(dir: &std::path::Path) -> Vec<String> {
    let dir = if dir.join("formulae").is_dir() {
        dir.join("formulae")
    } else {
        dir.to_owned()
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let formulary = crate::formula::Formulary::new(vec![dir.clone()]);
    let mut broken: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(".toml")?;
            formulary.load(name).err().map(|err| err.to_string())
        })
        .collect();
    broken.sort();
    broken
}

/// How many formula files a tap directory holds.
pub fn formula_count(dir: &std::path::Path) -> usize {
    let dir = if dir.join("formulae").is_dir() {
        dir.join("formulae")
    } else {
        dir.to_owned()
    };
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".toml"))
                .count()
        })
        .unwrap_or(0)
}

/// A git remote as pkg shows or writes it: without a password or an http(s) user name.
pub fn shown_remote(remote: &str) -> String {
    match url::Url::parse(remote) {
        Ok(url) if refuse_credentials(remote, false).is_err() => crate::registry::redact(&url),
        _ => remote.to_owned(),
    }
}

impl Taps {
    pub fn new(prefix: &Path) -> Taps {
        Taps {
            root: prefix.join("var/pkg/taps"),
        }
    }

    pub fn list(&self) -> Vec<Tap> {
        let mut taps = Vec::new();
        list_in(&self.root, None, &mut taps);
        taps.sort_by(|a, b| a.name.cmp(&b.name));
        taps
    }

    /// Checks a new tap's name and that it is free; returns where it goes.
    fn new_dest(&self, name: &str) -> Result<PathBuf, TapError> {
        if !valid(name) {
            return Err(TapError::BadName(name.to_owned()));
        }
        let dest = self.root.join(name);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(TapError::Exists(name.to_owned()));
        }
        let parent = dest.parent().unwrap_or(&self.root);
        fs_err::create_dir_all(parent).map_err(io_err(parent))?;
        Ok(dest)
    }

    fn find(&self, name: &str) -> Result<Tap, TapError> {
        self.list()
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| TapError::Unknown(name.to_owned()))
    }

    /// Adds a tap from a local directory (linked, so edits show at once) or a git URL (cloned).
    pub fn add(&self, name: &str, source: &str) -> Result<Tap, TapError> {
        if !valid(name) {
            return Err(TapError::BadName(name.to_owned()));
        }
        // Never let a source reach git as an option (`--upload-pack=…` runs a command).
        if source.starts_with('-') {
            return Err(TapError::DashSource {
                source_: source.to_owned(),
            });
        }
        let local = Path::new(source);
        if !local.is_dir() {
            refuse_credentials(source, false)?;
        }
        if !local.is_dir() && !looks_like_git_url(source) {
            return Err(TapError::BadSource {
                source_: source.to_owned(),
            });
        }
        // A local git repository (bare, or with a work tree) is cloned as a remote one is: its
        // committed formulae, not whatever its directory holds (a bare one holds none).
        let repository = local.is_dir() && is_git_repository(local);
        let source = if repository {
            let target = std::fs::canonicalize(local).map_err(io_err(local))?;
            format!("file://{}", target.display())
        } else {
            source.to_owned()
        };
        let source = source.as_str();
        let dest = self.new_dest(name)?;
        if local.is_dir() && !repository {
            let target = std::fs::canonicalize(local).map_err(io_err(local))?;
            std::os::unix::fs::symlink(&target, &dest).map_err(io_err(&dest))?;
        } else {
            // Clone beside the destination, then rename: a failed clone leaves nothing behind.
            let tmp = tempfile::Builder::new()
                .prefix(".clone-")
                .tempdir_in(&self.root)
                .map_err(io_err(&self.root))?;
            let checkout = tmp.path().join("tap");
            git(
                name,
                "clone",
                &["clone", "--depth", "1", "--quiet", "--", source],
                Some(&checkout),
            )?;
            fs_err::rename(&checkout, &dest).map_err(io_err(&dest))?;
        }
        self.find(name)
    }

    /// Adds a tap whose formulae come from a formula JSON API at `url` (homebrew/core's shape),
    /// written for bottles poured into `cellar` on `host`. Nothing appears unless it all worked.
    pub fn add_api(
        &self,
        name: &str,
        url: &str,
        client: &Client,
        cellar: &Path,
        host: &Platform,
        store: Option<&crate::store::Store>,
    ) -> Result<(Tap, Refreshed), TapError> {
        refuse_credentials(url, true)?;
        let doc_url = api::document_url(url)?;
        let dest = self.new_dest(name)?;
        // Offline, the document as last fetched into the cache (a restored CI cache) stands in.
        let fetched = match fetch(client, name, &doc_url, &Validators::default()) {
            Err(TapError::Fetch {
                source: crate::registry::RegistryError::Offline { .. },
                ..
            }) if store.and_then(|s| s.document(doc_url.as_str())).is_some() => {
                let bytes = store
                    .and_then(|s| s.document(doc_url.as_str()))
                    .unwrap_or_default();
                Document::Fresh {
                    bytes,
                    etag: None,
                    last_modified: None,
                }
            }
            Err(TapError::Fetch {
                source: crate::registry::RegistryError::Offline { .. },
                ..
            }) => {
                return Err(TapError::OfflineDocument {
                    name: name.to_owned(),
                    url: doc_url.to_string(),
                });
            }
            other => {
                let fetched = other?;
                if let (Some(store), Document::Fresh { bytes, .. }) = (store, &fetched) {
                    // Kept for offline taps; a cache that cannot keep it only costs that.
                    let _ = store.put_document(doc_url.as_str(), bytes);
                }
                fetched
            }
        };
        let Document::Fresh {
            bytes,
            etag,
            last_modified,
        } = fetched
        else {
            return Err(TapError::NotApi(name.to_owned()));
        };
        let meta = api::Meta {
            schema: api::SCHEMA,
            url: url.to_owned(),
            etag,
            last_modified,
            ..Default::default()
        };
        let (staged, meta) = self.stage_api(meta, &bytes, cellar, host)?;
        fs_err::rename(staged.path().join("tap"), &dest).map_err(io_err(&dest))?;
        Ok((
            self.find(name)?,
            Refreshed {
                changed: true,
                meta,
            },
        ))
    }

    /// Asks the API tap's server whether its document changed (ETag / Last-Modified) and, when
    /// it did, writes its formulae again and swaps them in at once.
    pub fn refresh_api(
        &self,
        tap: &Tap,
        client: &Client,
        cellar: &Path,
        host: &Platform,
        store: Option<&crate::store::Store>,
    ) -> Result<Refreshed, TapError> {
        let old = api::Meta::read(&tap.path).ok_or_else(|| TapError::NotApi(tap.name.clone()))?;
        let doc_url = api::document_url(&old.url)?;
        // Formulae written by another version of pkg are written again, whatever the server says.
        let current = old.schema == api::SCHEMA;
        let validators = Validators {
            etag: old.etag.as_deref().filter(|_| current),
            last_modified: old.last_modified.as_deref().filter(|_| current),
        };
        let (bytes, etag, last_modified) = match fetch(client, &tap.name, &doc_url, &validators)? {
            Document::NotModified => {
                return Ok(Refreshed {
                    changed: false,
                    meta: old,
                });
            }
            Document::Fresh {
                bytes,
                etag,
                last_modified,
            } => (bytes, etag, last_modified),
        };
        if let Some(store) = store {
            // The cache's copy follows the tap, so a prefix tapped offline from a restored
            // cache gets what this one has now.
            let _ = store.put_document(doc_url.as_str(), &bytes);
        }
        let meta = api::Meta {
            schema: api::SCHEMA,
            url: old.url.clone(),
            etag,
            last_modified,
            ..Default::default()
        };
        let (staged, meta) = self.stage_api(meta, &bytes, cellar, host)?;
        swap(&staged.path().join("tap"), &tap.path)?;
        Ok(Refreshed {
            changed: true,
            meta,
        })
    }

    /// The API tap in a staging directory beside the taps: `tap/api.toml` and `tap/formulae/`.
    fn stage_api(
        &self,
        mut meta: api::Meta,
        bytes: &[u8],
        cellar: &Path,
        host: &Platform,
    ) -> Result<(tempfile::TempDir, api::Meta), TapError> {
        let converted = api::convert(bytes, &meta.url, cellar, host)?;
        fs_err::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let tmp = tempfile::Builder::new()
            .prefix(".api-")
            .tempdir_in(&self.root)
            .map_err(io_err(&self.root))?;
        let formulae = tmp.path().join("tap/formulae");
        fs_err::create_dir_all(&formulae).map_err(io_err(&formulae))?;
        for (name, text) in &converted.formulae {
            let path = formulae.join(format!("{name}.toml"));
            fs_err::write(&path, text).map_err(io_err(&path))?;
        }
        meta.formulae = converted.formulae.len();
        meta.skipped = converted.skipped;
        let path = tmp.path().join("tap").join(api::META_FILE);
        let text = toml::to_string(&meta).unwrap_or_default();
        fs_err::write(&path, text).map_err(io_err(&path))?;
        Ok((tmp, meta))
    }

    /// Whether a formula read from `origin` came from the tap `name`.
    pub fn provides(&self, name: &str, origin: &crate::formula::Origin) -> bool {
        match (self.find(name), origin) {
            (Ok(tap), crate::formula::Origin::File(path)) => path.starts_with(&tap.path),
            _ => false,
        }
    }

    pub fn remove(&self, name: &str) -> Result<(), TapError> {
        let tap = self.find(name)?;
        let dest = &tap.path;
        let meta = std::fs::symlink_metadata(dest).map_err(io_err(dest))?;
        if meta.file_type().is_symlink() {
            fs_err::remove_file(dest).map_err(io_err(dest))?;
        } else {
            fs_err::remove_dir_all(dest).map_err(io_err(dest))?;
        }
        // An `owner/` directory goes with its last tap.
        if let Some((owner, _)) = name.split_once('/') {
            let _ = std::fs::remove_dir(self.root.join(owner));
        }
        Ok(())
    }

    /// Refreshes one tap: `git pull --ff-only` in a git tap, a conditional GET for an API tap;
    /// linked directories need nothing.
    pub fn update(
        &self,
        tap: &Tap,
        client: &Client,
        cellar: &Path,
        host: &Platform,
        store: Option<&crate::store::Store>,
    ) -> Result<Updated, TapError> {
        match tap.kind {
            "git" => {
                let dir = tap.path.to_string_lossy().into_owned();
                let head = || head_commit(&tap.path);
                let before = head();
                git(
                    &tap.name,
                    "pull",
                    &["-C", &dir, "pull", "--ff-only", "--quiet"],
                    None,
                )?;
                Ok(Updated::Pulled {
                    changed: before.is_none() || head() != before,
                })
            }
            "api" => Ok(Updated::Api(
                self.refresh_api(tap, client, cellar, host, store)?,
            )),
            _ => Ok(Updated::Local),
        }
    }
}

/// What `update` did for one tap.
pub enum Updated {
    /// `git pull`: whether it brought new commits.
    Pulled {
        changed: bool,
    },
    Api(Refreshed),
    /// A linked directory: nothing to do.
    Local,
}

/// The API document at `url`: from the file for `file://`, else by a (conditional) GET.
fn fetch(
    client: &Client,
    name: &str,
    url: &url::Url,
    validators: &Validators<'_>,
) -> Result<Document, TapError> {
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|()| api::ApiError::BadUrl {
            url: url.to_string(),
            reason: "not a local file path".into(),
        })?;
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, api::MAX_BYTES), &mut bytes)
            })
            .map_err(io_err(&path))?;
        return Ok(Document::Fresh {
            bytes,
            etag: None,
            last_modified: None,
        });
    }
    client
        .get_document(url, validators, api::MAX_BYTES)
        .map_err(|source| TapError::Fetch {
            name: name.to_owned(),
            source,
        })
}

/// Puts `new` where `old` is in one step (`renameat2(RENAME_EXCHANGE)`), leaving the old
/// tree at `new`'s path for its staging directory to remove; two renames where the kernel or
/// filesystem cannot exchange.
fn swap(new: &Path, old: &Path) -> Result<(), TapError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if renameat_with(CWD, new, CWD, old, RenameFlags::EXCHANGE).is_ok() {
        return Ok(());
    }
    let aside = new.with_extension("old");
    fs_err::rename(old, &aside).map_err(io_err(old))?;
    fs_err::rename(new, old).map_err(io_err(old))?;
    fs_err::rename(&aside, new).map_err(io_err(new))
}

/// The taps in `dir`: each entry a tap, or (at the top) an `owner/` directory of taps.
fn list_in(dir: &Path, owner: Option<&str>, taps: &mut Vec<Tap>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(file) = e.file_name().into_string() else {
            continue;
        };
        if file.starts_with('.') || !valid_part(&file) {
            continue;
        }
        let path = e.path();
        // How the tap was added decides: `add` links a directory and clones a URL. A linked
        // directory may well be a git repository of the user's own; pkg never runs git in it.
        let linked = e.file_type().is_ok_and(|t| t.is_symlink());
        if !is_tap(&path, linked) {
            if owner.is_none() && path.is_dir() {
                list_in(&path, Some(&file), taps);
            }
            continue;
        }
        let kind = if linked {
            "dir"
        } else if path.join(api::META_FILE).exists() {
            "api"
        } else if path.join(".git").is_dir() {
            "git"
        } else {
            "dir"
        };
        let name = match owner {
            Some(o) => format!("{o}/{file}"),
            None => file,
        };
        taps.push(Tap { name, path, kind });
    }
}

/// The formulae a prefix sees, each source under its name: PKG_FORMULAE / config directories
/// (`local`), formulae recorded by installs by reference (`references`), each tap (its name),
/// then the formulae built into pkg (`builtin`). The source each installed package came from
/// (its receipt) is the one its name is taken from.
pub fn formulary(settings: &crate::settings::Settings) -> crate::formula::Formulary {
    use crate::formula::{FormulaSource, LOCAL, REFERENCES};
    let mut sources: Vec<FormulaSource> = settings
        .formula_dirs
        .iter()
        .map(|dir| FormulaSource {
            id: LOCAL.to_owned(),
            dir: dir.clone(),
            ..FormulaSource::default()
        })
        .collect();
    sources.push(FormulaSource {
        id: REFERENCES.to_owned(),
        dir: crate::references::References::new(&settings.prefix)
            .dir()
            .to_owned(),
        ..FormulaSource::default()
    });
    // Each tap keeps its formulae in its `formulae/` directory if it has one, else its root;
    // an API tap also says which formulae it left out, and why.
    for tap in Taps::new(&settings.prefix).list() {
        let sub = tap.path.join("formulae");
        let left_out = match tap.kind {
            "api" => api::Meta::read(&tap.path)
                .map(|m| m.skipped)
                .unwrap_or_default(),
            _ => Default::default(),
        };
        sources.push(FormulaSource {
            id: tap.name,
            dir: if sub.is_dir() { sub } else { tap.path },
            left_out,
        });
    }
    let mut formulary = crate::formula::Formulary::from_sources(sources);
    let cellar = crate::cellar::Cellar::new(&settings.prefix);
    for (name, source) in cellar.recorded_sources() {
        formulary.record(&name, &source);
    }
    formulary
}

impl crate::report::Classify for TapError {
    fn bad_input(&self) -> bool {
        matches!(
            self,
            TapError::BadName(_)
                | TapError::BadSource { .. }
                | TapError::DashSource { .. }
                | TapError::Credentials { .. }
        )
    }
}
