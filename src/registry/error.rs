//! What goes wrong talking to a registry, and how it is said: the error type, the hints that
//! tell a user what to do, URLs shown without their credentials, and registry error bodies.

use ureq::http::Response;
use url::Url;

use crate::digest::Digest;

use super::manifest;
use super::safety::host_port;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("could not reach {url}{}{}{}{}", mirror_note(.mirror_of), tries_note(*.tries), timeout_hint(.source), tls_hint(.source))]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
        /// The registry this endpoint is a mirror of, and where the mirror was given
        /// (`PKG_REGISTRY_MIRRORS`).
        mirror_of: Option<Box<(String, String)>>,
        /// Tries made before giving up (0: not counted).
        tries: u32,
    },
    /// Every endpoint of a registry's chain failed a request, after its tries.
    #[error("no endpoint for {registry} answered: {}", describe(.tried))]
    Unreachable { registry: String, tried: Vec<Tried> },
    /// The answer's headers came, its body broke off (reset, cut short, stalled, too long).
    #[error("reading the answer from {url}: {source}{}", timeout_hint(.source))]
    Body {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("{url}: the answer ended before the {what} did (the body was cut short)")]
    CutShort { url: String, what: &'static str },
    #[error("{url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{repository}: authentication failed ({detail}). {hint}")]
    Unauthorized {
        repository: String,
        detail: String,
        hint: std::borrow::Cow<'static, str>,
    },
    #[error("{repository}: access denied ({detail}). {hint}")]
    Denied {
        repository: String,
        detail: String,
        hint: std::borrow::Cow<'static, str>,
    },
    #[error("{repository}: {what} not found in the registry{detail}")]
    NotFound {
        repository: String,
        what: String,
        detail: String,
    },
    #[error("{url}: the registry answered {status}{detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url}: the response is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: {reason}")]
    Redirect { url: String, reason: String },
    #[error("token service {realm}: {reason}")]
    Realm { realm: String, reason: String },
    #[error(
        "{what} digest mismatch\n  Expected: {expected}\n  Actual:   {actual}\n  From:     {url}"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
        url: String,
    },
    #[error(
        "{url}: the registry sends {actual} bytes for {digest}, but its descriptor says {expected}"
    )]
    SizeMismatch {
        url: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: {source}")]
    Manifest {
        url: String,
        #[source]
        source: manifest::ManifestError,
    },
    #[error(
        "--offline: {what} is not in the cache, and nothing is fetched offline; run without --offline (PKG_OFFLINE) to fetch it, or `pkg fetch` it while online"
    )]
    Offline { what: String },
    #[error("reading from {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// A ranged answer that contradicts the range asked for: the server's ranges are broken,
    /// and asking again without `Range` is the way on.
    #[error("reading from {url}: {reason}")]
    RangeRefused { url: String, reason: String },
}

impl RegistryError {
    /// A failure another try of the same request may not repeat: a body that broke off, bytes
    /// that do not hash to the digest named for them, or a document cut short (not JSON).
    pub fn another_try_may_mend(&self) -> bool {
        match self {
            RegistryError::Body { .. }
            | RegistryError::CutShort { .. }
            | RegistryError::DigestMismatch { .. } => true,
            RegistryError::Manifest { source, .. } => source.is_not_json(),
            _ => false,
        }
    }
}

fn mirror_note(mirror_of: &Option<Box<(String, String)>>) -> String {
    match mirror_of.as_deref() {
        Some((registry, setting)) => format!(" (the mirror of {registry} in {setting})"),
        None => String::new(),
    }
}

fn tries_note(tries: u32) -> String {
    if tries > 1 {
        format!(" after {}", self::tries(tries))
    } else {
        String::new()
    }
}

/// The first line of an error's message, without its causes.
pub(crate) fn first_line(e: &dyn std::error::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

impl super::Client {
    /// What to tell a user refused at `base`: as [`hint_for`], except when the environment's
    /// credentials are for other hosts (PKG_REGISTRY_HOST) — typically ghcr.io while its
    /// requests go to a mirror — where it says so and how to give this endpoint its own.
    pub(super) fn credential_hint(
        &self,
        base: &url::Url,
        repo: &super::Repository,
        sent: bool,
    ) -> std::borrow::Cow<'static, str> {
        let endpoint = host_port(base);
        if sent || self.credentials.env.is_none() {
            return hint_for(sent).into();
        }
        let mirror = if endpoint != repo.registry {
            format!(", which stands in for {}", repo.registry)
        } else {
            String::new()
        };
        format!(
            "PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD are set, but for {} (PKG_REGISTRY_HOST), so they were not sent to {endpoint}{mirror}: log in to it (`pkg login {endpoint}`), or add it to PKG_REGISTRY_HOST if the same credentials are good there",
            self.credentials.env_hosts.join(", ")
        )
        .into()
    }
}

/// What to do when a certificate is not trusted.
fn tls_hint(error: &ureq::Error) -> &'static str {
    let text = error.to_string();
    if text.contains("certificate") || text.contains("UnknownIssuer") {
        ": its TLS certificate is not trusted. If it comes from a private CA (a company mirror), trust that CA: SSL_CERT_FILE=ca.pem (replaces the system's store), or PKG_CA_FILE / the ca_file setting (added to it)"
    } else {
        ""
    }
}

/// Which setting a timeout comes from, for the message that reports it.
fn timeout_hint(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            " (no connection within the connect timeout, PKG_CONNECT_TIMEOUT)"
        }
        ureq::Error::Timeout(
            ureq::Timeout::RecvResponse | ureq::Timeout::PerRead | ureq::Timeout::RecvBody,
        ) => " (silent for longer than the read timeout, PKG_READ_TIMEOUT)",
        _ => "",
    }
}

const MAX_ERROR_BYTES: u64 = 64 * 1024;

const REFUSED_CREDENTIAL_HINT: &str = "The credentials pkg sent were refused: check PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD, or the login stored for this registry (`pkg login`, `docker login`, `podman login`); for GHCR the token needs read:packages (write:packages to push)";

/// When the registry refuses, again and again, anonymous tokens its own token service issued:
/// nothing a user's credentials would change for a public package.
pub(super) const REFUSED_TOKEN_HINT: &str = "pkg asked anonymously, the token service gave a token each time, and the registry refused it each time: the registry's token service and the registry disagree (a registry-side fault, or clocks far apart). Try again later; only if the package is private do credentials help (PKG_REGISTRY_USERNAME/PKG_REGISTRY_PASSWORD, or `pkg login`)";

/// What to tell a user refused access: to give credentials, or that the ones given failed.
pub(super) fn hint_for(sent_credentials: bool) -> &'static str {
    if sent_credentials {
        REFUSED_CREDENTIAL_HINT
    } else {
        CREDENTIAL_HINT
    }
}

pub(super) const CREDENTIAL_HINT: &str = "If the package is private, set PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD (for GHCR: a personal access token with read:packages), or log in with `docker login`";

/// What a request offline wanted, as the user knows it: `the manifest 1.0.0 of
/// 127.0.0.1:5000/acme/hello`, `the blob sha256:… of …`, else the URL.
pub(super) fn offline_what(url: &Url) -> String {
    let host = host_port(url);
    let path = url.path().strip_prefix("/v2/").unwrap_or_default();
    for (part, what) in [
        ("/manifests/", "the manifest"),
        ("/blobs/", "the blob"),
        ("/referrers/", "the referrers of"),
    ] {
        if let Some((name, reference)) = path.rsplit_once(part) {
            return format!("{what} {reference} of {host}/{name}");
        }
    }
    if let Some(name) = path.strip_suffix("/tags/list") {
        return format!("the tags of {host}/{name}");
    }
    redact(url)
}

/// A URL for messages: no userinfo, no query (pre-signed CDN URLs carry credentials there).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    // The query may carry a pre-signed URL's credentials: it is left out, and said to be.
    let had_query = u.query().is_some();
    u.set_query(None);
    let mut shown = u.to_string();
    if had_query {
        shown.push_str("?…");
    }
    shown
}

pub(crate) fn read_limited(
    resp: Response<ureq::Body>,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    resp.into_body()
        .into_with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => RegistryError::TooLarge {
                url: url.to_owned(),
                limit,
            },
            source => RegistryError::Body {
                url: url.to_owned(),
                source,
            },
        })
}

/// The `errors[].code: message` of a registry error body, or its first line when not JSON.
pub fn error_detail(resp: Response<ureq::Body>) -> String {
    let status = resp.status();
    let body = resp
        .into_body()
        .into_with_config()
        .limit(MAX_ERROR_BYTES)
        .read_to_vec()
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body)
        && !e.errors.is_empty()
    {
        return e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(&body);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() || line.starts_with('<') {
        format!("HTTP {status}")
    } else {
        line.chars().take(200).collect()
    }
}

/// One endpoint a request tried, and how it failed.
#[derive(Debug, Clone)]
pub struct Tried {
    /// `scheme://host[:port]`.
    pub endpoint: String,
    /// The registry it is a mirror of, and where the mirror was given (`PKG_REGISTRY_MIRRORS`).
    pub mirror_of: Option<(String, String)>,
    /// What went wrong, in a few words: `connection refused`, `answered 429`, `timed out …`.
    pub cause: String,
    pub tries: u32,
    /// Tries stopped because the run's waiting budget (`PKG_MAX_WAIT`) was spent.
    pub out_of_time: bool,
}

impl std::fmt::Display for Tried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.endpoint)?;
        if let Some((registry, setting)) = &self.mirror_of {
            write!(f, " (the mirror of {registry} in {setting})")?;
        }
        write!(f, ": {}, {}", self.cause, tries(self.tries))?;
        if self.out_of_time {
            write!(f, " (no more: the run had waited PKG_MAX_WAIT in all)")?;
        }
        Ok(())
    }
}

/// `1 try`, `5 tries`.
pub fn tries(n: u32) -> String {
    if n == 1 {
        "1 try".to_owned()
    } else {
        format!("{n} tries")
    }
}

/// The endpoints of a chain a request tried, each with its cause, for [`RegistryError::Unreachable`].
pub fn describe(tried: &[Tried]) -> String {
    tried
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
