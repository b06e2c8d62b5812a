//! The registry client: endpoints and mirrors, authenticated requests with redirects handled by
//! hand (so credentials never leave their origin), manifests and blob streams.

pub mod auth;
pub mod blob;
mod endpoints;
mod error;
pub mod login;
pub mod manifest;
mod mirrors;
pub mod network;
pub mod push;
mod referrers;
pub mod repository;
pub mod retry;
mod safety;
pub mod tags;
mod token;
pub mod web;

use std::sync::Arc;

use ureq::http::{self, Response};
use url::Url;

use crate::digest::Digest;
use crate::report::{Event, Reporter};
use auth::{Challenge, CredentialSource, TokenCache};
use error::{CREDENTIAL_HINT, REFUSED_TOKEN_HINT, offline_what};
pub use error::{RegistryError, error_detail, redact};
pub(crate) use error::{first_line, read_limited};
pub use mirrors::{MIRROR_ONLY_VAR, MIRRORS_VAR, MirrorError, Mirrors};
pub use repository::Repository;
use safety::{check_realm, host_port, next_hop, origin_key, same_origin};

/// Moves `url` to the scheme, host and port of `base`.
fn rebase(url: &mut Url, base: &Url) {
    let _ = url.set_scheme(base.scheme());
    let _ = url.set_host(base.host_str());
    let _ = url.set_port(base.port());
}

const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
/// The longest token pkg sends back in an `Authorization` header (real ones are a few KiB).
const MAX_TOKEN_HEADER: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 10;

/// A synchronous registry client; one per run, shared by reference between threads.
/// Cheap to clone: clones share the connection pool and the token cache.
#[derive(Clone)]
pub struct Client {
    /// For https URLs and for http ones, each with its scheme's proxy, made when first used.
    agents: Arc<Agents>,
    mirrors: Arc<Mirrors>,
    credentials: Arc<CredentialSource>,
    tokens: Arc<TokenCache>,
    net: Arc<retry::NetworkOptions>,
    log: Option<Log>,
    /// Where notes for the user go (a mirror that did not answer).
    notice: Option<Arc<dyn Reporter>>,
    /// Endpoints of mirror chains resting after a failure.
    health: Arc<endpoints::Health>,
    /// Time spent waiting between tries in this run, against `net.max_wait`.
    waited: Arc<retry::Waited>,
}

/// One agent per scheme, each with the proxy curl would use for it, made when first asked for:
/// an agent that may speak TLS (to an https URL, or to an https proxy) loads the roots pkg
/// trusts — Mozilla's and the system store's, some 150 files read, 3–4 ms — so a run that
/// sends nothing, or only plain http, never reads them.
struct Agents {
    net: Arc<retry::NetworkOptions>,
    https: std::sync::OnceLock<ureq::Agent>,
    http: std::sync::OnceLock<ureq::Agent>,
}

impl Agents {
    fn get(&self, https: bool) -> &ureq::Agent {
        let cell = if https { &self.https } else { &self.http };
        cell.get_or_init(|| {
            let net = &self.net;
            let proxy = net.proxies.for_scheme(https);
            let tls = https
                || (proxy.as_ref()).is_some_and(|p| p.protocol() == ureq::ProxyProtocol::Https);
            let mut config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(net.connect_timeout))
                .timeout_recv_response(Some(net.read_timeout))
                .timeout_per_read(Some(net.read_timeout))
                .user_agent(concat!("pkg/", env!("CARGO_PKG_VERSION")))
                .proxy(proxy);
            if tls {
                let ca = net.ca.as_ref().map(|(_, certs)| certs.as_slice());
                let trust = network::Trust::load(ca);
                config = config.tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(trust.root_certs())
                        .build(),
                );
            }
            config.build().into()
        })
    }
}

/// What the tries of one request at one endpoint came to.
#[derive(Debug, Default, Clone, Copy)]
struct Tries {
    made: u32,
    /// The run's waiting budget stopped the tries.
    out_of_time: bool,
}

/// `e` with the number of tries made, when it is a transport failure.
fn with_tries(e: RegistryError, made: u32) -> RegistryError {
    match e {
        RegistryError::Transport {
            url,
            source,
            mirror_of,
            ..
        } => RegistryError::Transport {
            url,
            source,
            mirror_of,
            tries: made,
        },
        e => e,
    }
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
        let net = Arc::new(net);
        Client {
            agents: Arc::new(Agents {
                net: net.clone(),
                https: std::sync::OnceLock::new(),
                http: std::sync::OnceLock::new(),
            }),
            mirrors: Arc::new(mirrors),
            credentials: Arc::new(credentials),
            tokens: Arc::new(TokenCache::default()),
            net,
            log: None,
            notice: None,
            health: Arc::default(),
            waited: Arc::default(),
        }
    }

    /// Logs every exchange to `log`.
    pub fn with_log(mut self, log: Log) -> Client {
        self.log = Some(log);
        self
    }

    /// The agent for a URL's scheme (its proxy is the one curl would use).
    pub(crate) fn agent_for(&self, url: &Url) -> &ureq::Agent {
        self.agents.get(url.scheme() == "https")
    }

    /// Tells `notice` what the user should know (a mirror that did not answer).
    pub fn with_notice(mut self, notice: Arc<dyn Reporter>) -> Client {
        self.notice = Some(notice);
        self
    }

    fn notice(&self, event: Event<'_>) {
        if let Some(notice) = &self.notice {
            notice.event(event);
        }
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
        send: impl FnMut() -> Result<Response<ureq::Body>, RegistryError>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        self.with_retries_counted(idempotent, &mut Tries::default(), send)
    }

    /// [`Client::with_retries`], counting the tries in `tries`. Every wait comes out of the
    /// run's budget (`PKG_MAX_WAIT`); once it is spent, the last answer is final.
    fn with_retries_counted(
        &self,
        idempotent: bool,
        tries: &mut Tries,
        mut send: impl FnMut() -> Result<Response<ureq::Body>, RegistryError>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let most = if idempotent { self.net.tries.max(1) } else { 1 };
        let mut attempt = 0;
        loop {
            let last = attempt + 1 >= most;
            tries.made += 1;
            let answer = send();
            let (wait, why) = match &answer {
                Ok(resp) if !last && retry::retryable_status(resp.status().as_u16()) => {
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()));
                    let wait = retry::delay(&self.net, attempt, retry_after);
                    let why = format!(
                        "answered {}{}",
                        resp.status().as_u16(),
                        if retry_after.is_some() {
                            " (waiting its Retry-After)"
                        } else {
                            ""
                        }
                    );
                    (wait, why)
                }
                Err(e @ RegistryError::Transport { .. }) if !last => (
                    retry::delay(&self.net, attempt, None),
                    format!("failed ({})", crate::report::one_line(e)),
                ),
                _ => return answer.map_err(|e| with_tries(e, tries.made)),
            };
            if !self.waited.take(wait, self.net.max_wait) {
                tries.out_of_time = true;
                self.log(|| {
                    format!(
                        "try {} of {most} {why}; no more tries: this run has waited PKG_MAX_WAIT ({} s) in all",
                        attempt + 1,
                        self.net.max_wait.as_secs()
                    )
                });
                return answer.map_err(|e| with_tries(e, tries.made));
            }
            drop(answer);
            self.log(|| {
                format!(
                    "try {} of {most} {why}; trying again in {} ms",
                    attempt + 1,
                    wait.as_millis()
                )
            });
            std::thread::sleep(wait);
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
                    let wait = retry::delay(&self.net, done, None);
                    if !self.waited.take(wait, self.net.max_wait) {
                        return Err(e);
                    }
                    self.log(|| {
                        format!(
                            "try {} of {tries} failed ({}); trying again in {} ms",
                            done + 1,
                            crate::report::one_line(&e),
                            wait.as_millis()
                        )
                    });
                    std::thread::sleep(wait);
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
            let mut e = self.status_error(repo, &url, resp, || format!("manifest `{reference}`"));
            // A tag that is not there: say where the tags are listed.
            if let RegistryError::NotFound { detail, .. } = &mut e
                && !reference.contains(':')
            {
                detail.push_str(&format!(
                    "; `pkg search --remote {repo}` lists the tags it has"
                ));
            }
            return Err(e);
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

    /// `BASE/v2/<repo>/<path>` for a repository, on the endpoint its requests go to first (its
    /// first mirror that is not resting after a failure, else the registry).
    pub fn url(&self, repo: &Repository, path: &str) -> Result<Url, RegistryError> {
        let chain = self.mirrors.chain(&repo.registry)?;
        let first = self.health.order(&chain).first().copied().unwrap_or(0);
        let url = format!("{}v2/{}/{}", chain[first], repo.name, path);
        Url::parse(&url).map_err(|e| RegistryError::BadUrl {
            url,
            reason: e.to_string(),
        })
    }

    fn request_at(
        &self,
        base: &Url,
        repo: &Repository,
        actions: &str,
        call: &Call<'_>,
        retry: bool,
        tries: &mut Tries,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let scope = auth::scope(&repo.name, actions);
        let key = origin_key(base);
        let mut authorization = self.cached_authorization(base, &key, repo, &scope)?;
        // A 401 means the token expired or was not accepted: renewed each time, up to the retry
        // budget (a token can expire again while a 429 is waited out).
        let mut renewals = 0;
        let idempotent =
            retry && call.method != http::Method::PATCH && call.method != http::Method::POST;
        loop {
            let resp = self.with_retries_counted(idempotent, tries, || {
                self.send_following(base, call, authorization.as_deref())
            })?;
            if resp.status() != 401 {
                return Ok(resp);
            }
            let sent = self.credentials.lookup(&host_port(base)).is_some();
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
                        self.credential_hint(base, repo, sent)
                    } else {
                        REFUSED_TOKEN_HINT.into()
                    },
                });
            }
            renewals += 1;
            let challenges = parse_www_authenticate(&resp);
            self.tokens.forget_token(&key, &scope);
            authorization = Some(self.authenticate(base, &key, repo, &scope, &challenges)?);
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
        if self.net.offline {
            return Err(RegistryError::Offline {
                what: offline_what(&call.url),
            });
        }
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
                source: Box::new(source),
                mirror_of: None,
                tries: 0,
            };
            let resp = match call.body {
                Some(body) => self.agent_for(&current).run(req.body(body).map_err(bad)?),
                None => self.agent_for(&current).run(req.body(()).map_err(bad)?),
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
                hint: CREDENTIAL_HINT.into(),
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

fn parse_www_authenticate(resp: &Response<ureq::Body>) -> Vec<Challenge> {
    auth::parse_challenges(
        resp.headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

#[cfg(test)]
mod tests;
