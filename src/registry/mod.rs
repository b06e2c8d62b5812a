//! The registry client: endpoints and mirrors, authenticated requests with redirects handled by
//! hand (so credentials never leave their origin), manifests and blob streams.

pub mod auth;
pub mod blob;
pub mod manifest;
pub mod push;
pub mod repository;
pub mod retry;
pub mod tags;
mod token;
pub mod web;

use std::sync::Arc;

use ureq::http::{self, Response};
use url::Url;

use crate::digest::Digest;
use auth::{Challenge, CredentialSource, TokenCache};
pub use repository::Repository;

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
fn without_userinfo(entry: &str) -> String {
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

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("could not reach {url}: {source}{}", timeout_hint(.source))]
    Transport {
        url: String,
        #[source]
        source: ureq::Error,
    },
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
        hint: &'static str,
    },
    #[error("{repository}: access denied ({detail}). {hint}")]
    Denied {
        repository: String,
        detail: String,
        hint: &'static str,
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
    #[error("reading from {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
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

const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
/// The longest token pkg sends back in an `Authorization` header (real ones are a few KiB).
const MAX_TOKEN_HEADER: usize = 64 * 1024;
const MAX_ERROR_BYTES: u64 = 64 * 1024;
const MAX_REDIRECTS: usize = 10;

/// A synchronous registry client; one per run, shared by reference between threads.
/// Cheap to clone: clones share the connection pool and the token cache.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    mirrors: Arc<Mirrors>,
    credentials: Arc<CredentialSource>,
    tokens: Arc<TokenCache>,
    net: Arc<retry::NetworkOptions>,
    log: Option<Log>,
}

/// Receives one line per HTTP exchange (`--verbose`); URLs are redacted, headers never logged.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A manifest as received: its exact bytes, their digest and the parsed document.
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub document: manifest::Document,
    pub url: String,
}

impl Client {
    pub fn new(
        mirrors: Mirrors,
        credentials: CredentialSource,
        net: retry::NetworkOptions,
    ) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(net.connect_timeout))
            .timeout_recv_response(Some(net.read_timeout))
            .timeout_per_read(Some(net.read_timeout))
            .user_agent(concat!("pkg/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            mirrors: Arc::new(mirrors),
            credentials: Arc::new(credentials),
            tokens: Arc::new(TokenCache::default()),
            net: Arc::new(net),
            log: None,
        }
    }

    /// Logs every exchange to `log`.
    pub fn with_log(mut self, log: Log) -> Client {
        self.log = Some(log);
        self
    }

    fn log(&self, line: impl FnOnce() -> String) {
        if let Some(log) = &self.log {
            log(&line());
        }
    }

    pub fn network(&self) -> &retry::NetworkOptions {
        &self.net
    }

    /// Runs `send` until it gives a response that is not worth retrying: connection errors and
    /// 408/429/5xx are tried again (up to the configured tries) after a backoff or `Retry-After`.
    fn with_retries(
        &self,
        idempotent: bool,
        mut send: impl FnMut() -> Result<Response<ureq::Body>, RegistryError>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let tries = if idempotent { self.net.tries.max(1) } else { 1 };
        let mut attempt = 0;
        loop {
            let last = attempt + 1 >= tries;
            match send() {
                Ok(resp) if !last && retry::retryable_status(resp.status().as_u16()) => {
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()));
                    drop(resp);
                    std::thread::sleep(retry::delay(&self.net, attempt, retry_after));
                }
                Err(RegistryError::Transport { .. }) if !last => {
                    std::thread::sleep(retry::delay(&self.net, attempt, None));
                }
                other => return other,
            }
            attempt += 1;
        }
    }

    /// Runs `attempt` (a whole request: send, status, body, checks) again after a backoff while
    /// it fails in a way another try can mend — a body that broke off, or bytes that do not
    /// match the digest the registry or the caller named — up to the configured tries.
    pub(crate) fn with_body_retries<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let tries = self.net.tries.max(1);
        let mut done = 0;
        loop {
            match attempt() {
                Err(e) if done + 1 < tries && e.another_try_may_mend() => {
                    self.log(|| format!("retrying after: {e}"));
                    std::thread::sleep(retry::delay(&self.net, done, None));
                }
                other => return other,
            }
            done += 1;
        }
    }

    /// GET a manifest by tag or digest, hash exactly the bytes received, and check them against
    /// `Docker-Content-Digest` and against the digest asked for. A body that breaks off or does
    /// not match is asked for again (see [`Client::with_body_retries`]).
    pub fn fetch_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        self.with_body_retries(|| self.fetch_manifest_once(repo, reference))
    }

    fn fetch_manifest_once(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let (url, resp) = self.get(repo, &format!("manifests/{reference}"), manifest::ACCEPT)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(self.status_error(repo, &url, resp, || format!("manifest `{reference}`")));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let docker_digest = header("docker-content-digest");
        let bytes = read_limited(resp, &url, manifest::MAX_MANIFEST_BYTES)?;
        // The manifest's identity is the hash of the bytes received, in the algorithm of the
        // digest asked for (sha256 for a tag).
        let asked: Option<Digest> = reference.parse().ok();
        let digest = match &asked {
            Some(d) => Digest::of_bytes_with(d.kind(), &bytes),
            None => Digest::of_bytes(&bytes),
        };
        if let Some(claimed) = docker_digest.and_then(|d| d.parse::<Digest>().ok())
            && !claimed.matches(&bytes)
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest (Docker-Content-Digest)".into(),
                expected: claimed.to_string(),
                actual: Digest::of_bytes_with(claimed.kind(), &bytes).to_string(),
                url,
            });
        }
        if let Some(asked) = asked
            && asked != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest".into(),
                expected: asked.to_string(),
                actual: digest.to_string(),
                url,
            });
        }
        let document = manifest::parse(&bytes, content_type.as_deref()).map_err(|source| {
            RegistryError::Manifest {
                url: url.clone(),
                source,
            }
        })?;
        Ok(FetchedManifest {
            bytes,
            digest,
            document,
            url,
        })
    }

    /// An authenticated GET of `/v2/<repo>/<path>` with pull scope, following redirects.
    fn get(
        &self,
        repo: &Repository,
        path: &str,
        accept: &str,
    ) -> Result<(String, Response<ureq::Body>), RegistryError> {
        let url = self.url(repo, path)?;
        let resp = self.request(repo, "pull", &Call::get(&url).header("Accept", accept))?;
        Ok((url.to_string(), resp))
    }

    /// `BASE/v2/<repo>/<path>` for a repository, on its (possibly mirrored) endpoint.
    pub fn url(&self, repo: &Repository, path: &str) -> Result<Url, RegistryError> {
        let base = self.mirrors.endpoint(&repo.registry)?;
        let url = format!("{}v2/{}/{}", base, repo.name, path);
        Url::parse(&url).map_err(|e| RegistryError::BadUrl {
            url,
            reason: e.to_string(),
        })
    }

    /// Sends `call` with a token for `repository:NAME:<actions>` (`pull` or `pull,push`), answering
    /// one 401 by (re)authenticating. GET and HEAD follow redirects; other methods return them.
    /// The body is a byte slice, so it can be sent again after a 401.
    pub fn request(
        &self,
        repo: &Repository,
        actions: &str,
        call: &Call<'_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let base = self.mirrors.endpoint(&repo.registry)?;
        let scope = auth::scope(&repo.name, actions);
        let key = origin_key(&base);
        let mut authorization = self.cached_authorization(&base, &key, repo, &scope)?;
        // A 401 means the token expired or was not accepted: renewed each time, up to the retry
        // budget (a token can expire again while a 429 is waited out).
        let mut renewals = 0;
        let idempotent = call.method != http::Method::PATCH && call.method != http::Method::POST;
        loop {
            let resp = self.with_retries(idempotent, || {
                self.send_following(&base, call, authorization.as_deref())
            })?;
            if resp.status() != 401 {
                return Ok(resp);
            }
            let sent = self.credentials.lookup(&host_port(&base)).is_some();
            if renewals >= self.net.tries.max(2) {
                let tokens = authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer "));
                return Err(RegistryError::Unauthorized {
                    repository: repo.to_string(),
                    detail: format!(
                        "the registry answered 401 {} times in a row{}: {}",
                        renewals + 1,
                        if tokens {
                            ", each time to a token its token service had just issued"
                        } else {
                            ""
                        },
                        error_detail(resp)
                    ),
                    hint: if sent || !tokens {
                        hint_for(sent)
                    } else {
                        REFUSED_TOKEN_HINT
                    },
                });
            }
            renewals += 1;
            let challenges = parse_www_authenticate(&resp);
            self.tokens.forget_token(&key, &scope);
            authorization = Some(self.authenticate(&base, &key, repo, &scope, &challenges)?);
        }
    }

    /// Sends a call, following up to 10 redirects by hand for GET and HEAD: never from https to
    /// http, and the Authorization header only ever goes to the registry's own origin.
    fn send_following(
        &self,
        base: &Url,
        call: &Call<'_>,
        authorization: Option<&str>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let follows = matches!(call.method, http::Method::GET | http::Method::HEAD);
        let mut current = call.url.clone();
        let mut authorized = same_origin(base, &current);
        for _ in 0..=MAX_REDIRECTS {
            let mut req = http::Request::builder()
                .method(call.method.clone())
                .uri(current.as_str());
            for (name, value) in &call.headers {
                req = req.header(*name, value.as_str());
            }
            if let Some(a) = authorization.filter(|_| authorized) {
                req = req.header("Authorization", a);
            }
            let bad = |e: http::Error| RegistryError::BadUrl {
                url: redact(&current),
                reason: e.to_string(),
            };
            let transport = |source| RegistryError::Transport {
                url: redact(&current),
                source,
            };
            let resp = match call.body {
                Some(body) => self.agent.run(req.body(body).map_err(bad)?),
                None => self.agent.run(req.body(()).map_err(bad)?),
            }
            .map_err(transport)?;
            self.log(|| {
                format!(
                    "{} {} -> {}{}",
                    call.method,
                    redact(&current),
                    resp.status().as_u16(),
                    if authorization.is_some() && authorized {
                        " (authorized)"
                    } else {
                        ""
                    }
                )
            });
            if !follows || !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let location = resp.headers().get("location").and_then(|l| l.to_str().ok());
            let hop = next_hop(base, &current, location)?;
            current = hop.url;
            authorized = hop.authorized;
        }
        Err(RegistryError::Redirect {
            url: redact(&call.url),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    pub fn status_error(
        &self,
        repo: &Repository,
        url: &str,
        resp: Response<ureq::Body>,
        what: impl FnOnce() -> String,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let detail = error_detail(resp);
        match status {
            404 => RegistryError::NotFound {
                repository: repo.to_string(),
                what: what(),
                detail: format!(" ({detail})"),
            },
            403 => RegistryError::Denied {
                repository: repo.to_string(),
                detail,
                hint: CREDENTIAL_HINT,
            },
            _ => RegistryError::Status {
                url: url.to_owned(),
                status,
                detail: format!(": {detail}"),
            },
        }
    }
}

/// One HTTP call to a registry: method, URL, headers and an optional replayable body.
pub struct Call<'a> {
    pub method: http::Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<&'a [u8]>,
}

impl<'a> Call<'a> {
    pub fn new(method: http::Method, url: &Url) -> Call<'a> {
        Call {
            method,
            url: url.clone(),
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn get(url: &Url) -> Call<'a> {
        Call::new(http::Method::GET, url)
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call<'a> {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: &'a [u8]) -> Call<'a> {
        self.body = Some(body);
        self
    }
}

const REFUSED_CREDENTIAL_HINT: &str = "The credentials pkg sent were refused: check PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD, or the login stored for this registry (`pkg login`, `docker login`, `podman login`); for GHCR the token needs read:packages (write:packages to push)";

/// When the registry refuses, again and again, anonymous tokens its own token service issued:
/// nothing a user's credentials would change for a public package.
const REFUSED_TOKEN_HINT: &str = "pkg asked anonymously, the token service gave a token each time, and the registry refused it each time: the registry's token service and the registry disagree (a registry-side fault, or clocks far apart). Try again later; only if the package is private do credentials help (PKG_REGISTRY_USERNAME/PKG_REGISTRY_PASSWORD, or `pkg login`)";

/// What to tell a user refused access: to give credentials, or that the ones given failed.
fn hint_for(sent_credentials: bool) -> &'static str {
    if sent_credentials {
        REFUSED_CREDENTIAL_HINT
    } else {
        CREDENTIAL_HINT
    }
}

const CREDENTIAL_HINT: &str = "If the package is private, set PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD (for GHCR: a personal access token with read:packages), or log in with `docker login`";

fn parse_www_authenticate(resp: &Response<ureq::Body>) -> Vec<Challenge> {
    auth::parse_challenges(
        resp.headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// A realm must be an http(s) URL, and never plain http when the registry itself is https.
fn check_realm(base: &Url, realm: &Url) -> Result<(), RegistryError> {
    if !matches!(realm.scheme(), "http" | "https") {
        return Err(RegistryError::Realm {
            realm: redact(realm),
            reason: "the token service must be an http(s) URL".into(),
        });
    }
    if base.scheme() == "https" && realm.scheme() != "https" {
        return Err(RegistryError::Realm {
            realm: redact(realm),
            reason: "refusing a plain-http token service for an https registry".into(),
        });
    }
    // A hostile registry must not aim our requests (and credentials) at a metadata service or
    // another machine of the local network: a realm on a loopback, private or link-local
    // address is only accepted when the registry itself is on that host.
    if realm.host_str() == base.host_str() {
        return Ok(());
    }
    let addresses: Vec<std::net::IpAddr> = match realm.host() {
        Some(url::Host::Ipv4(ip)) => vec![ip.into()],
        Some(url::Host::Ipv6(ip)) => vec![ip.into()],
        Some(url::Host::Domain(d)) => {
            use std::net::ToSocketAddrs as _;
            (d, realm.port_or_known_default().unwrap_or(443))
                .to_socket_addrs()
                .map(|a| a.map(|a| a.ip()).collect())
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    if let Some(ip) = addresses.into_iter().find(|ip| is_internal(*ip)) {
        return Err(RegistryError::Realm {
            realm: redact(realm),
            reason: format!(
                "refusing a token service on the internal address {ip}, which is not the registry's own host"
            ),
        });
    }
    Ok(())
}

/// Loopback, private, link-local, shared (CGNAT), unspecified and unique-local addresses.
fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(v4.into());
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Where a redirect leads, and whether the registry's Authorization header may go along.
#[derive(Debug, PartialEq, Eq)]
struct Hop {
    url: Url,
    authorized: bool,
}

/// The next hop of a redirect from `current` (a request for the registry at `base`) to
/// `location`: resolved against `current`; refused when it leaves https for anything else or
/// is not http(s) at all; authorized only when it stays on the registry's own origin (scheme,
/// host and port).
fn next_hop(base: &Url, current: &Url, location: Option<&str>) -> Result<Hop, RegistryError> {
    let refuse = |reason: String| RegistryError::Redirect {
        url: redact(current),
        reason,
    };
    let location = location.ok_or_else(|| refuse("a redirect without a Location header".into()))?;
    let next = current
        .join(location)
        .map_err(|e| refuse(format!("bad Location: {e}")))?;
    if current.scheme() == "https" && next.scheme() != "https" {
        return Err(refuse(format!(
            "refusing to follow a redirect from https to {}",
            next.scheme()
        )));
    }
    if !matches!(next.scheme(), "http" | "https") {
        return Err(refuse(format!(
            "refusing to follow a redirect to a {} URL",
            next.scheme()
        )));
    }
    Ok(Hop {
        authorized: same_origin(base, &next),
        url: next,
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn origin_key(base: &Url) -> String {
    base.origin().ascii_serialization()
}

fn host_port(base: &Url) -> String {
    match (base.host_str(), base.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// A URL for messages: no userinfo, no query (pre-signed CDN URLs carry credentials there).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("…"));
    }
    u.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_https_except_loopback() {
        let m = Mirrors::default();
        assert_eq!(m.endpoint("ghcr.io").unwrap().as_str(), "https://ghcr.io/");
        assert_eq!(
            m.endpoint("127.0.0.1:5000").unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            m.endpoint("localhost:5000").unwrap().as_str(),
            "http://localhost:5000/"
        );
        assert_eq!(
            m.endpoint("registry.local:5000").unwrap().as_str(),
            "https://registry.local:5000/"
        );
    }

    #[test]
    fn mirrors_map_hosts_to_endpoints() {
        let m = Mirrors::parse("ghcr.io=http://127.0.0.1:5000, other.io=https://mirror.example")
            .unwrap();
        assert_eq!(
            m.endpoint("ghcr.io").unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            m.endpoint("other.io").unwrap().as_str(),
            "https://mirror.example/"
        );
        for bad in [
            "ghcr.io",
            "ghcr.io=ftp://x",
            "ghcr.io=http://x/path",
            "ghcr.io=nonsense",
        ] {
            assert!(Mirrors::parse(bad).is_err(), "{bad} accepted");
        }
        // Credentials in a mirror URL are refused, and never repeated in the message.
        for bad in [
            "ghcr.io=https://me:hunter2@mirror.example",
            "ghcr.io=https://me:hunter2@mirror.example/path",
        ] {
            let err = Mirrors::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && !err.contains("me:"), "{err}");
            assert!(err.contains("https://***@mirror.example"), "{err}");
        }
        // A password with a `,` splits the list; neither half is shown.
        let err = Mirrors::parse("ghcr.io=https://me:hun,ter2@mirror.example")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hun") && !err.contains("ter2"), "{err}");
        assert_eq!(
            without_userinfo("ter2@mirror.example"),
            "***@mirror.example"
        );
    }

    #[test]
    fn realm_downgrade_is_refused() {
        let base = Url::parse("https://ghcr.io/").unwrap();
        assert!(check_realm(&base, &Url::parse("http://ghcr.io/token").unwrap()).is_err());
        assert!(check_realm(&base, &Url::parse("https://ghcr.io/token").unwrap()).is_ok());
        let local = Url::parse("http://127.0.0.1:5000/").unwrap();
        assert!(check_realm(&local, &Url::parse("http://127.0.0.1:5001/token").unwrap()).is_ok());
    }

    #[test]
    fn realms_on_internal_addresses_are_refused_unless_the_registry_is_there() {
        let ghcr = Url::parse("https://ghcr.io/").unwrap();
        for realm in [
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/token",
            "https://192.168.0.1/token",
            "https://127.0.0.1/token",
            "https://[::1]/token",
            "https://[fd00::1]/token",
            "https://[::ffff:169.254.169.254]/token",
            "https://100.64.0.1/token",
            "https://localhost/token",
        ] {
            let err = check_realm(&ghcr, &Url::parse(realm).unwrap());
            assert!(err.is_err(), "{realm} accepted");
        }
        assert!(check_realm(&ghcr, &Url::parse("https://8.8.8.8/token").unwrap()).is_ok());
        let local = Url::parse("http://127.0.0.1:5000/").unwrap();
        assert!(check_realm(&local, &Url::parse("http://169.254.169.254/").unwrap()).is_err());
        assert!(check_realm(&local, &Url::parse("http://127.0.0.2:5001/").unwrap()).is_err());
    }

    fn hop(base: &str, current: &str, location: &str) -> Result<Hop, RegistryError> {
        let base = Url::parse(base).unwrap();
        next_hop(&base, &Url::parse(current).unwrap(), Some(location))
    }

    #[test]
    fn a_redirect_from_https_to_anything_but_https_is_refused() {
        let base = "https://ghcr.io/";
        let blob = "https://ghcr.io/v2/acme/tool/blobs/sha256:00";
        for location in [
            "http://ghcr.io/v2/acme/tool/blobs/sha256:00",
            "http://cdn.example/blob",
            "http://cdn.example:443/blob",
            "ftp://cdn.example/blob",
            "file:///etc/passwd",
        ] {
            let err = hop(base, blob, location).unwrap_err().to_string();
            assert!(err.contains("refusing"), "{location}: {err}");
        }
        // Also from a CDN hop that is itself https, whatever the registry's scheme.
        let err = hop(
            "http://127.0.0.1:5000/",
            "https://cdn.example/a",
            "http://cdn.example/b",
        );
        assert!(err.is_err());
        // http → https is an upgrade, and http → http stays allowed for plain-http registries.
        let up = hop(
            "http://127.0.0.1:5000/",
            "http://127.0.0.1:5000/v2/x",
            "https://cdn.example/b",
        );
        assert!(up.is_ok());
        let plain = hop(
            "http://127.0.0.1:5000/",
            "http://127.0.0.1:5000/v2/x",
            "http://127.0.0.2:80/b",
        );
        assert!(plain.is_ok());
        // Other schemes from plain http, and a redirect without a usable Location.
        assert!(
            hop(
                "http://127.0.0.1:5000/",
                "http://127.0.0.1:5000/v2/x",
                "ftp://x/"
            )
            .is_err()
        );
        let base = Url::parse(base).unwrap();
        let current = Url::parse(blob).unwrap();
        assert!(next_hop(&base, &current, None).is_err());
        assert!(next_hop(&base, &current, Some("https://[::1")).is_err());
    }

    #[test]
    fn authorization_follows_a_redirect_only_on_the_registrys_own_origin() {
        let base = "https://ghcr.io/";
        let blob = "https://ghcr.io/v2/acme/tool/blobs/sha256:00";
        let same = [
            "/v2/acme/tool/blobs/sha256:00?again",
            "https://ghcr.io/elsewhere",
            "https://ghcr.io:443/explicit-default-port",
            "https://GHCR.io/case",
        ];
        for location in same {
            let h = hop(base, blob, location).unwrap();
            assert!(h.authorized, "{location} -> {}", h.url);
        }
        let other = [
            // Another host (a CDN), another port, a subdomain.
            "https://pkg-containers.githubusercontent.com/blob?sig=1",
            "https://ghcr.io:8443/blob",
            "https://cdn.ghcr.io/blob",
        ];
        for location in other {
            let h = hop(base, blob, location).unwrap();
            assert!(!h.authorized, "Authorization would go to {}", h.url);
        }
        // Another scheme: a plain-http registry redirecting to https on its own host.
        let h = hop(
            "http://127.0.0.1:5000/",
            "http://127.0.0.1:5000/v2/x",
            "https://127.0.0.1:5000/v2/x",
        )
        .unwrap();
        assert!(!h.authorized, "Authorization would go to {}", h.url);
        // Back from the CDN to the registry: authorized again.
        let h = hop(base, "https://cdn.example/x", "https://ghcr.io/v2/y").unwrap();
        assert!(h.authorized);
        // A relative Location resolves against the current hop, not the registry.
        let h = hop(base, "https://cdn.example/a/b", "c").unwrap();
        assert_eq!(h.url.as_str(), "https://cdn.example/a/c");
        assert!(!h.authorized);
    }

    #[test]
    fn redaction_hides_userinfo_and_query() {
        let u = Url::parse("https://user:pw@cdn.example/blob?sig=secret").unwrap();
        let r = redact(&u);
        assert!(!r.contains("pw") && !r.contains("secret"), "{r}");
    }
}
