//! The checkup behind `pkg doctor`: PATH, the prefix, links, kegs, locks, downloads and
//! registries; every finding comes with the command or step that fixes it. What is worth
//! knowing but no problem (partial downloads kept for resuming) is a note.

use std::collections::BTreeMap;
use std::fs::TryLockError;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cellar::{Cellar, receipt};
use crate::formula::Formulary;
use crate::registry::auth::CredentialSource;
use crate::registry::{Client, RegistryError, Repository};
use crate::store::Store;

/// One problem and how to fix it.
#[derive(serde::Serialize)]
pub struct Finding {
    pub problem: String,
    pub fix: String,
}

/// What the checkup found.
pub struct Checkup {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// What is examined.
pub struct Subject<'a> {
    pub prefix: &'a Path,
    pub cache: &'a Path,
    pub cellar: &'a Cellar,
    pub formulary: &'a Formulary,
    pub client: Client,
    pub credentials: &'a CredentialSource,
}

pub fn examine(s: &Subject) -> Checkup {
    let mut c = Checkup {
        findings: Vec::new(),
        notes: Vec::new(),
    };
    path(s, &mut c);
    prefix_writable(s, &mut c);
    broken_links(s, &mut c);
    kegs_without_receipts(s, &mut c);
    formulae_gone(s, &mut c);
    let kegs = s.cellar.kegs();
    let keg_notes = kegs_against_receipts(&kegs, &mut c);
    missing_dependencies(&kegs, &mut c);
    leftovers(s, &mut c);
    let link_notes = links(s, &mut c);
    c.notes.extend(link_notes);
    c.notes.extend(keg_notes);
    downloads(s, &mut c);
    proxies(&mut c);
    registries(s, &mut c);
    c
}

impl Checkup {
    fn add(&mut self, problem: String, fix: String) {
        self.findings.push(Finding { problem, fix });
    }
}

/// `PREFIX/bin` on PATH.
fn path(s: &Subject, c: &mut Checkup) {
    let prefix = s.prefix;
    // PATH
    let bin = prefix.join("bin");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d == bin))
        .unwrap_or(false);
    if !on_path {
        c.add(
            format!(
                "{} is not on your PATH, so installed commands cannot be run by name",
                bin.display()
            ),
            format!(
                "add `export PATH=\"{}:$PATH\"` to your shell profile",
                bin.display()
            ),
        );
    }
}

/// The prefix is a directory pkg can write in (or can be made).
fn prefix_writable(s: &Subject, c: &mut Checkup) {
    let prefix = s.prefix;
    // Prefix permissions: the prefix, or the nearest existing directory it would be made in.
    if prefix.exists() {
        if !prefix.is_dir() {
            c.add(
                format!("the prefix {} is not a directory", prefix.display()),
                "move it out of the way, or choose another prefix with PKG_PREFIX or --prefix"
                    .into(),
            );
        } else if tempfile::tempfile_in(prefix).is_err() {
            c.add(
                format!("the prefix {} is not writable by you", prefix.display()),
                format!(
                    "fix its ownership (e.g. `sudo chown -R $USER {}`) or choose another with PKG_PREFIX",
                    prefix.display()
                ),
            );
        }
    } else if let Some(ancestor) = prefix.ancestors().skip(1).find(|p| p.exists()) {
        let why = if !ancestor.is_dir() {
            Some("is not a directory")
        } else if tempfile::tempfile_in(ancestor).is_err() {
            Some("is not writable by you")
        } else {
            None
        };
        if let Some(why) = why {
            c.add(
                format!(
                    "the prefix {} cannot be created: {} {why}",
                    prefix.display(),
                    ancestor.display()
                ),
                "choose a prefix you can create with PKG_PREFIX or --prefix (or fix that path)"
                    .into(),
            );
        }
    }
}

/// Links in `bin/` and `opt/` that lead nowhere.
fn broken_links(s: &Subject, c: &mut Checkup) {
    let prefix = s.prefix;
    // Broken links
    for dir in ["bin", "opt"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if std::fs::read_link(&path).is_ok() && std::fs::metadata(&path).is_err() {
                c.add(
                    format!("{} is a broken link", path.display()),
                    format!(
                        "remove it (`rm {}`), or reinstall the package it belonged to",
                        path.display()
                    ),
                );
            }
        }
    }
}

/// Kegs without a receipt (not counted as installed).
fn kegs_without_receipts(s: &Subject, c: &mut Checkup) {
    // Kegs without receipts
    for name in s.cellar.names() {
        let Ok(entries) = std::fs::read_dir(s.cellar.keg_dir(&name)) else {
            continue;
        };
        for e in entries.flatten() {
            if !receipt::path(&e.path()).is_file() {
                c.add(
                    format!(
                        "{} has no receipt, so pkg does not count it as installed",
                        e.path().display()
                    ),
                    format!("`pkg uninstall --force {name}` and install it again"),
                );
            }
        }
    }
}

/// Installed packages whose formula is gone (its tap removed): upgrade skips them.
fn formulae_gone(s: &Subject, c: &mut Checkup) {
    // Installed packages whose formula is gone (its tap removed): upgrade skips them.
    let installed: std::collections::BTreeSet<String> =
        s.cellar.kegs().into_iter().map(|k| k.name).collect();
    for name in installed {
        if let Err(e) = s.formulary.load(&name) {
            c.add(
                format!(
                    "{name} is installed but its formula is gone ({e}), so it is never upgraded"
                ),
                format!("add its tap again (`pkg tap add`), or `pkg uninstall {name}`"),
            );
        }
    }
}

/// Kegs against their receipts; returns the notes (files added).
fn kegs_against_receipts(kegs: &[crate::cellar::Keg], c: &mut Checkup) -> Vec<String> {
    // Kegs against their receipts: files changed or missing since the install are problems;
    // files added are noted (programs write caches into their kegs: __pycache__, …).
    let mut keg_notes = Vec::new();
    for keg in kegs {
        let drift = drift(keg);
        let shown = format!("{} {}", keg.name, crate::version::show(&keg.version));
        if !drift.changed.is_empty() || !drift.missing.is_empty() {
            let mut what = Vec::new();
            if !drift.changed.is_empty() {
                what.push(format!(
                    "{} changed ({})",
                    crate::report::count(drift.changed.len(), "file"),
                    some(&drift.changed)
                ));
            }
            if !drift.missing.is_empty() {
                what.push(format!(
                    "{} missing ({})",
                    drift.missing.len(),
                    some(&drift.missing)
                ));
            }
            c.add(
                format!("{shown}: {} since it was installed", what.join(", ")),
                format!("`pkg reinstall {}` puts back what was installed", keg.name),
            );
        }
        if !drift.added.is_empty() {
            keg_notes.push(format!(
                "{shown} holds {} it was not installed with ({}); programs write caches into their kegs, `pkg reinstall {}` removes them",
                crate::report::count(drift.added.len(), "entry"),
                some(&drift.added),
                keg.name
            ));
        }
    }

    keg_notes
}

/// Dependencies a package was installed with that are no longer installed (`brew missing`).
fn missing_dependencies(kegs: &[crate::cellar::Keg], c: &mut Checkup) {
    // Dependencies a package was installed with that are no longer installed (`brew missing`).
    let names: std::collections::BTreeSet<&str> = kegs.iter().map(|k| k.name.as_str()).collect();
    for keg in kegs {
        for (dep, version) in &keg.receipt.dependencies {
            if !names.contains(dep.as_str()) {
                c.add(
                    format!(
                        "{} {} needs {dep} (it was installed with {dep} {version}), which is not installed",
                        keg.name,
                        crate::version::show(&keg.version)
                    ),
                    format!("`pkg install {dep}`"),
                );
            }
        }
    }
}

/// The prefix lock held, and staging leftovers of interrupted runs.
fn leftovers(s: &Subject, c: &mut Checkup) {
    let prefix = s.prefix;
    // Locks and leftovers of interrupted runs
    if let Ok(lock) = std::fs::File::open(prefix.join("var/pkg/lock"))
        && let Err(TryLockError::WouldBlock) = lock.try_lock()
    {
        c.add(
            "another pkg is changing the prefix right now (the prefix lock is held)".into(),
            "wait for it to finish; if none is running, the lock is released when that process exits (`pgrep -a pkg`)".into(),
        );
    }
    let staging = s.cellar.root().join(".staging");
    if std::fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_some()) {
        c.add(
            format!(
                "{} holds leftovers of an interrupted run",
                staging.display()
            ),
            "run `pkg cleanup`: every command that changes the prefix clears them first".into(),
        );
    }
}

/// The links of linked packages; returns the notes (links taken over).
fn links(s: &Subject, c: &mut Checkup) -> Vec<String> {
    let prefix = s.prefix;
    // Links of linked packages: each one there, pointing into the package or taken over.
    let mut link_notes = Vec::new();
    for keg in s.cellar.kegs() {
        let shown = crate::version::show(&keg.version);
        if crate::link::linked_version(prefix, &keg.name).as_deref() != Some(shown.as_str()) {
            continue;
        }
        let Ok((planned, _)) = crate::link::plan(
            prefix,
            &keg.name,
            &shown,
            &keg.receipt.bin,
            &keg.receipt.link,
            true,
        ) else {
            continue;
        };
        for p in planned {
            let rel = p
                .dest
                .strip_prefix(prefix)
                .unwrap_or(&p.dest)
                .display()
                .to_string();
            let owner = std::fs::read_link(&p.dest)
                .ok()
                .and_then(|t| crate::link::owner(prefix, &p.dest, &t));
            match owner {
                Some(o) if o == keg.name => {}
                Some(o) => link_notes.push(format!(
                    "{rel} of {} belongs to {o} (installed with --overwrite); uninstalling {o} gives it back",
                    keg.name
                )),
                None if std::fs::symlink_metadata(&p.dest).is_err() => c.add(
                    format!("{} is linked but its link {rel} is missing", keg.name),
                    format!("`pkg link {}`", keg.name),
                ),
                None => {}
            }
        }
    }

    link_notes
}

/// Downloads left in the cache, and the prefixes sharing it.
fn downloads(s: &Subject, c: &mut Checkup) {
    // Downloads left in the cache: temporary files of runs that died are a problem (only
    // `pkg cleanup` removes them for good); partial downloads named by their blob's digest are
    // not, they are resumed by the next run that wants that blob.
    if let Ok(store) = Store::open(s.cache) {
        let hour = Duration::from_secs(3600);
        let (partials, temporary): (Vec<_>, Vec<_>) = store
            .temporary_files()
            .into_iter()
            .partition(|(path, _)| Store::is_partial(path));
        let dead = temporary
            .iter()
            .filter(|(path, m)| {
                m.modified()
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > hour)
                    && !Store::in_use(path)
            })
            .count();
        if dead > 0 {
            c.add(
                format!(
                    "{dead} temporary file(s) of runs that died in {}",
                    store.temporary_dir().display()
                ),
                "run `pkg cleanup`".into(),
            );
        }
        if !partials.is_empty() {
            let bytes = partials.iter().map(|(_, m)| m.len()).sum();
            c.notes.push(format!(
                "{} partial download(s) ({}) in {}, kept for the next run that wants them to resume; `pkg cleanup` drops them",
                partials.len(),
                crate::report::human_bytes(bytes),
                store.temporary_dir().display()
            ));
        }
        // Other prefixes sharing this cache: cleanup keeps what they use; gone ones are stale.
        let registered = store.registrations();
        let stale: Vec<String> = registered
            .iter()
            .filter(|r| r.is_stale())
            .map(|r| r.prefix.display().to_string())
            .collect();
        if !stale.is_empty() {
            c.notes.push(format!(
                "the cache {} is registered to {} that no longer exist ({}); `pkg cleanup --cache-only` forgets them and frees what only they used",
                s.cache.display(),
                crate::report::count(stale.len(), "prefix"),
                stale.join(", ")
            ));
        }
        if registered.len() > 1 {
            c.notes.push(format!(
                "the cache {} is shared by {}; `pkg cleanup` in any of them keeps what the others use",
                s.cache.display(),
                crate::report::count(registered.len() - stale.len(), "prefix"),
            ));
        }
    }
}

/// Proxies from the environment, said.
fn proxies(c: &mut Checkup) {
    // Proxies, as curl reads them: requests go through them, so say which.
    if let Ok(proxies) = crate::registry::network::Proxies::from_env()
        && proxies != Default::default()
    {
        c.notes.push(format!(
            "requests go through proxies from the environment ({})",
            proxies.describe()
        ));
    }
}

/// The registries of what is installed: reachable, and the credentials accepted.
fn registries(s: &Subject, c: &mut Checkup) {
    // Registries of what is installed: reachable, and the credentials (if any) accepted.
    let mut registries: BTreeMap<String, (Repository, String)> = BTreeMap::new();
    for keg in s.cellar.kegs() {
        if let Ok(repo) = keg.receipt.repository.parse::<Repository>() {
            registries
                .entry(repo.registry.clone())
                .or_insert((repo, keg.receipt.tag.clone()));
        }
    }
    let client = &s.client;
    if client.network().offline && !registries.is_empty() {
        // Offline, nothing is asked: saying so is not a problem with the registries.
        c.notes.push(format!(
            "--offline: {} of installed packages not checked ({})",
            crate::report::count(registries.len(), "registry"),
            registries.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        registries.clear();
    }
    for (registry, (repo, tag)) in &registries {
        match client.fetch_manifest(repo, tag) {
            Ok(_) => {}
            Err(e @ RegistryError::Unreachable { .. }) => c.add(
                format!("registry {registry} is unreachable ({e})"),
                "check your network or the mirrors (PKG_REGISTRY_MIRRORS); installed packages keep working, and cached ones reinstall offline".into(),
            ),
            Err(e @ RegistryError::Transport { .. }) => c.add(
                format!(
                    "registry {registry} is unreachable ({e}: {})",
                    std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default()
                ),
                "check your network or PKG_REGISTRY_MIRRORS; installed packages keep working, and cached ones reinstall offline".into(),
            ),
            Err(e @ (RegistryError::Unauthorized { .. } | RegistryError::Denied { .. })) => {
                let credentials = s.credentials;
                let fix = if credentials.env.is_some() {
                    "the credentials in PKG_REGISTRY_USERNAME/PKG_REGISTRY_PASSWORD were refused: correct them (for GHCR, a token with read:packages), or unset both to use `pkg login`".to_owned()
                } else if credentials.lookup(registry).is_some() {
                    format!("the stored login was refused: `pkg login {registry}` again (or renew your docker/podman login)")
                } else {
                    format!("the package may be private: `pkg login {registry}`, or set PKG_REGISTRY_USERNAME/PKG_REGISTRY_PASSWORD")
                };
                c.add(format!("registry {registry} refuses pkg: {e}"), fix);
            }
            Err(RegistryError::NotFound { .. }) => c.add(
                format!("{repo}:{tag} is no longer in its registry"),
                format!("it stays installed; `pkg info {}` shows where it came from", repo.name.rsplit('/').next().unwrap_or(&repo.name)),
            ),
            Err(e) => c.add(format!("registry {registry}: {e}"), "try again later; run with --verbose to see the requests".into()),
        }
    }
}

/// How a keg differs from its receipt.
#[derive(Debug, Default)]
struct Drift {
    changed: Vec<String>,
    missing: Vec<String>,
    added: Vec<String>,
}

fn drift(keg: &crate::cellar::Keg) -> Drift {
    let Ok(now) = crate::cellar::list_entries(&keg.path, keg.receipt.files.len()) else {
        return Drift::default();
    };
    let recorded: std::collections::BTreeSet<&str> =
        keg.receipt.files.iter().map(String::as_str).collect();
    let present: std::collections::BTreeSet<&str> = now.paths().collect();
    // Changed: its size or mtime moved, or (where the receipt has its CRC-32) its bytes did
    // with both kept.
    let changed = keg
        .receipt
        .stamps
        .iter()
        .filter(|(path, stamp)| {
            present.contains(path.as_str())
                && (!now.stamp(path).is_some_and(|n| n.same_size_and_time(stamp))
                    || stamp.sum.is_some_and(|sum| {
                        let file = named(&keg.path, path);
                        file.and_then(|file| crc32_of(&file)) != Some(sum)
                    }))
        })
        .map(|(path, _)| path.clone())
        .collect();
    Drift {
        changed,
        missing: recorded
            .difference(&present)
            .map(|p| (*p).to_owned())
            .collect(),
        added: present
            .difference(&recorded)
            .map(|p| (*p).to_owned())
            .collect(),
    }
}

/// The keg file a receipt names `rel`. A receipt holds names that are not UTF-8 in their lossy
/// form (U+FFFD for each byte that is not): such a name is found among its directory's
/// entries by that form, when exactly one has it.
fn named(keg: &std::path::Path, rel: &str) -> Option<std::path::PathBuf> {
    let whole = keg.join(rel);
    if !rel.contains('\u{fffd}') || std::fs::symlink_metadata(&whole).is_ok() {
        return Some(whole);
    }
    let mut at = keg.to_owned();
    for part in rel.split('/') {
        let plain = at.join(part);
        if std::fs::symlink_metadata(&plain).is_ok() {
            at = plain;
            continue;
        }
        let mut same = std::fs::read_dir(&at)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy() == part);
        let (Some(only), None) = (same.next(), same.next()) else {
            return None;
        };
        at = only.path();
    }
    Some(at)
}

/// The CRC-32 of a keg file's bytes (never through a link).
fn crc32_of(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut sum = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match std::io::Read::read(&mut file, &mut buf) {
            Ok(0) => return Some(sum.finalize()),
            Ok(n) => sum.update(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// The first few of `paths`, and how many more.
fn some(paths: &[String]) -> String {
    let shown: Vec<&str> = paths.iter().take(3).map(String::as_str).collect();
    match paths.len().saturating_sub(3) {
        0 => shown.join(", "),
        more => format!("{}, and {more} more", shown.join(", ")),
    }
}
