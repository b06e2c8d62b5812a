//! `PKG_REGISTRY_MIRRORS`: which endpoint answers for a registry host.

use url::Url;

use super::RegistryError;

/// Maps a registry host to another endpoint (`PKG_REGISTRY_MIRRORS`).
#[derive(Clone, Debug, Default)]
pub struct Mirrors {
    entries: Vec<(String, Url)>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid PKG_REGISTRY_MIRRORS entry `{entry}`: {reason}; expected `HOST=URL[,HOST=URL…]`, e.g. `ghcr.io=http://127.0.0.1:5000`"
)]
pub struct MirrorError {
    entry: String,
    reason: String,
}

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
    /// Parses `ghcr.io=http://127.0.0.1:5000,other.io=https://mirror.example`.
    pub fn parse(spec: &str) -> Result<Mirrors, MirrorError> {
        let mut entries = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err = |reason: &str| MirrorError {
                entry: without_userinfo(entry),
                reason: reason.to_owned(),
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
        Ok(Mirrors { entries })
    }

    /// The base URL (scheme://host[:port]) requests for `registry` go to.
    pub fn endpoint(&self, registry: &str) -> Result<Url, RegistryError> {
        if let Some((_, url)) = self.entries.iter().find(|(h, _)| h == registry) {
            return Ok(url.clone());
        }
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
}
