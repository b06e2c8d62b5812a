//! `PKG_REGISTRY_MIRRORS`: which endpoints answer for a registry host — its mirrors in the order
//! given, then the registry itself unless the host is mirror-only (`PKG_REGISTRY_MIRROR_ONLY`),
//! as containerd's `hosts.toml` and Docker's `registry-mirrors` do.

use url::Url;

use super::RegistryError;

/// Maps a registry host to the endpoints tried for it (`PKG_REGISTRY_MIRRORS`).
#[derive(Clone, Debug, Default)]
pub struct Mirrors {
    /// (host, mirror), in the order given; a host may have several.
    entries: Vec<(String, Url)>,
    /// Hosts whose registry itself is never asked (`*`: every mirrored host).
    only: Vec<String>,
    /// Where the mirrors were given, as the user spelt it (`PKG_REGISTRY_MIRRORS`, or the
    /// config file's `mirrors`): messages name it.
    setting: Option<String>,
}

/// The environment variable that maps hosts to mirrors.
pub const MIRRORS_VAR: &str = "PKG_REGISTRY_MIRRORS";
/// The environment variable that makes hosts mirror-only.
pub const MIRROR_ONLY_VAR: &str = "PKG_REGISTRY_MIRROR_ONLY";

#[derive(Debug, thiserror::Error)]
#[error("invalid {setting} entry `{entry}`: {reason}; expected {expected}")]
pub struct MirrorError {
    setting: String,
    entry: String,
    reason: String,
    expected: &'static str,
}

const EXPECTED_MIRRORS: &str = "`HOST=URL[,HOST=URL…]`, e.g. `ghcr.io=http://127.0.0.1:5000`";
const EXPECTED_ONLY: &str =
    "`HOST[,HOST…]` (each a host that has a mirror), or `*` for every mirrored host";

/// A mirror entry as an error may show it: userinfo masked (`HOST=SCHEME://***@REST`). An
/// endpoint that does not parse has its whole authority masked, since a password holding a `,`
/// or `@` splits the entry where a host or port would be expected; a piece without a scheme
/// that holds an `@` (the rest of such a password) is masked up to it.
pub(super) fn without_userinfo(entry: &str) -> String {
    let Some(scheme) = entry.find("://") else {
        return match entry.rfind('@') {
            Some(at) => format!("***{}", &entry[at..]),
            None => entry.to_owned(),
        };
    };
    let (head, rest) = entry.split_at(scheme + 3);
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let target = entry.split_once('=').map_or(entry, |(_, t)| t.trim());
    if let Some(at) = authority.rfind('@') {
        format!("{head}***{}{path}", &authority[at..])
    } else if Url::parse(target).is_err() {
        format!("{head}***{path}")
    } else {
        entry.to_owned()
    }
}

impl Mirrors {
    /// Parses `ghcr.io=http://127.0.0.1:5000,other.io=https://mirror.example`, given in
    /// `PKG_REGISTRY_MIRRORS`.
    pub fn parse(spec: &str) -> Result<Mirrors, MirrorError> {
        Mirrors::parse_named(spec, MIRRORS_VAR)
    }

    /// [`Mirrors::parse`] of mirrors given in `setting` (named by errors and messages).
    pub fn parse_named(spec: &str, setting: &str) -> Result<Mirrors, MirrorError> {
        let mut entries = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err = |reason: &str| MirrorError {
                setting: setting.to_owned(),
                entry: without_userinfo(entry),
                reason: reason.to_owned(),
                expected: EXPECTED_MIRRORS,
            };
            let (host, target) = entry.split_once('=').ok_or_else(|| err("missing `=`"))?;
            let url = Url::parse(target.trim()).map_err(|e| err(&e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(err(
                    "the endpoint must be an http:// or https:// URL with a host",
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(err(
                    "credentials do not belong in the mirror's URL: set PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD, or log in to the mirror's host",
                ));
            }
            if url.path() != "/" || url.query().is_some() {
                return Err(err(
                    "the endpoint must be a bare origin, without a path or query",
                ));
            }
            entries.push((host.trim().to_owned(), url));
        }
        Ok(Mirrors {
            entries,
            only: Vec::new(),
            setting: Some(setting.to_owned()),
        })
    }

    /// Where the mirrors were given (`PKG_REGISTRY_MIRRORS`, or the config file's `mirrors`).
    pub fn setting(&self) -> &str {
        self.setting.as_deref().unwrap_or(MIRRORS_VAR)
    }

    /// Makes `hosts` (comma-separated, or `*`) mirror-only: their registry itself is never
    /// asked. Given in `PKG_REGISTRY_MIRROR_ONLY`.
    pub fn mirror_only(self, hosts: &str) -> Result<Mirrors, MirrorError> {
        self.mirror_only_named(hosts, MIRROR_ONLY_VAR)
    }

    /// [`Mirrors::mirror_only`] of hosts given in `setting`.
    pub fn mirror_only_named(mut self, hosts: &str, setting: &str) -> Result<Mirrors, MirrorError> {
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if host != "*" && !self.entries.iter().any(|(h, _)| h == host) {
                let reason = if self.entries.is_empty() {
                    format!("no host has a mirror ({} is empty)", self.setting())
                } else {
                    format!("`{host}` has no mirror in {}", self.setting())
                };
                return Err(MirrorError {
                    setting: setting.to_owned(),
                    entry: host.to_owned(),
                    reason,
                    expected: EXPECTED_ONLY,
                });
            }
            self.only.push(host.to_owned());
        }
        Ok(self)
    }

    /// The endpoints (scheme://host[:port]) requests for `registry` go to, in order: its
    /// mirrors, then the registry itself unless it is mirror-only.
    pub fn chain(&self, registry: &str) -> Result<Vec<Url>, RegistryError> {
        let mut out: Vec<Url> = self
            .entries
            .iter()
            .filter(|(h, _)| h == registry)
            .map(|(_, u)| u.clone())
            .collect();
        if out.is_empty() || !self.is_mirror_only(registry) {
            out.push(origin(registry)?);
        }
        Ok(out)
    }

    /// The endpoint tried first for `registry`.
    pub fn endpoint(&self, registry: &str) -> Result<Url, RegistryError> {
        let mut chain = self.chain(registry)?;
        Ok(chain.remove(0))
    }

    fn is_mirror_only(&self, registry: &str) -> bool {
        self.only.iter().any(|h| h == "*" || h == registry)
    }

    /// Whether `endpoint` is a mirror of `registry` (not the registry itself).
    pub fn is_mirror(&self, registry: &str, endpoint: &Url) -> bool {
        self.entries
            .iter()
            .any(|(h, u)| h == registry && u == endpoint)
    }

    /// Every mirrored host with its chain, as `pkg config` shows it: `ghcr.io → http://a:5000,
    /// then https://ghcr.io`.
    pub fn describe(&self) -> Vec<String> {
        let mut hosts: Vec<&str> = Vec::new();
        for (h, _) in &self.entries {
            if !hosts.contains(&h.as_str()) {
                hosts.push(h);
            }
        }
        hosts
            .into_iter()
            .filter_map(|h| {
                let chain = self.chain(h).ok()?;
                let shown: Vec<String> = chain
                    .iter()
                    .map(|u| u.as_str().trim_end_matches('/').to_owned())
                    .collect();
                let tail = if self.is_mirror_only(h) {
                    " (mirror-only)"
                } else {
                    ""
                };
                Some(format!("{h} → {}{tail}", shown.join(", then ")))
            })
            .collect()
    }
}

/// The registry itself: https, except plain http on loopback.
fn origin(registry: &str) -> Result<Url, RegistryError> {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    let scheme = if host == "localhost" || host == "[::1]" || host.starts_with("127.") {
        "http"
    } else {
        "https"
    };
    Url::parse(&format!("{scheme}://{registry}/")).map_err(|e| RegistryError::BadUrl {
        url: registry.to_owned(),
        reason: e.to_string(),
    })
}

impl crate::report::Classify for MirrorError {
    /// Every MirrorError is about what the user gave.
    fn bad_input(&self) -> bool {
        true
    }
}
