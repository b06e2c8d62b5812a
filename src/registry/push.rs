//! Uploads to a registry, one HTTP exchange per function: blob existence (HEAD), upload sessions
//! (POST, monolithic PUT, chunked PATCH…PUT), cross-repository mounts, manifest PUTs, and a
//! credential check for `pkg login`. The order of calls (what to skip, when to chunk, when to
//! tag) is decided by `bottle::publish`.
//!
//! `Location` headers may be relative or absolute and may carry a query (`_state=…`): they are
//! resolved against the URL of the request that returned them, and `digest=` is appended to
//! whatever query is already there.

use ureq::http::{self, Response};
use url::Url;

use super::auth::{self, Credentials};
use super::{Call, Client, RegistryError, Repository};
use crate::digest::Digest;

/// The actions every push request asks for.
pub const PUSH: &str = "pull,push";
const OCTET_STREAM: &str = "application/octet-stream";
const LOGIN_HINT: &str = "Check the username and the password or token (for GHCR: a personal access token with write:packages to push, read:packages to pull)";

/// What a mount request did.
pub enum Mount {
    /// The registry linked the blob from the other repository: nothing to upload.
    Mounted,
    /// The registry opened an upload session instead (the blob was not there, or not visible).
    Opened(Url),
}

/// What a PATCH did.
pub enum Chunk {
    /// Accepted; continue at the returned location. `end` is the last byte the registry says it
    /// holds (its `Range: 0-END`), when it says.
    Accepted { next: Url, end: Option<u64> },
    /// 416: the registry's idea of the offset differs; ask it with [`Client::upload_offset`].
    RangeInvalid,
}

impl Client {
    /// HEAD the blob: does `repo` already hold it?
    pub fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let resp = self.request(repo, PUSH, &Call::new(http::Method::HEAD, &url))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(repo, url.as_str(), resp, || format!("blob {digest}"))),
        }
    }

    /// POST an upload session; returns where to send the bytes.
    pub fn start_upload(&self, repo: &Repository) -> Result<Url, RegistryError> {
        let url = self.url(repo, "blobs/uploads/")?;
        let call = Call::new(http::Method::POST, &url).body(&[]);
        let resp = self.request(repo, PUSH, &call)?;
        if resp.status() != 202 {
            return Err(self.status_error(repo, url.as_str(), resp, || "upload session".into()));
        }
        location(&url, &resp)
    }

    /// Asks the registry to link `digest` from `from` (same registry) into `repo`. The token
    /// must allow push on `repo` and pull on `from`.
    pub fn mount_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<Mount, RegistryError> {
        let mut url = self.url(repo, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", &from.name);
        let call = Call::new(http::Method::POST, &url).body(&[]);
        let resp = self.request_scopes(
            repo,
            &[
                auth::scope(&repo.name, PUSH),
                auth::scope(&from.name, "pull"),
            ],
            &call,
        )?;
        match resp.status().as_u16() {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Opened(location(&url, &resp)?)),
            _ => Err(self.status_error(repo, url.as_str(), resp, || {
                format!("mount of {digest} from {from}")
            })),
        }
    }

    /// Sends the whole blob to an upload session and closes it (`PUT LOCATION&digest=D`).
    pub fn upload_whole(
        &self,
        repo: &Repository,
        session: &Url,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let url = with_digest(session, digest);
        let call = Call::new(http::Method::PUT, &url)
            .header("Content-Type", OCTET_STREAM)
            .body(bytes);
        let resp = self.request(repo, PUSH, &call)?;
        self.expect_created(repo, &url, resp, digest)
    }

    /// PATCHes bytes `start..start+len` into an upload session.
    pub fn upload_chunk(
        &self,
        repo: &Repository,
        session: &Url,
        start: u64,
        bytes: &[u8],
    ) -> Result<Chunk, RegistryError> {
        let end = start + (bytes.len() as u64).saturating_sub(1);
        let call = Call::new(http::Method::PATCH, session)
            .header("Content-Type", OCTET_STREAM)
            .header("Content-Range", format!("{start}-{end}"))
            .body(bytes);
        let resp = self.request(repo, PUSH, &call)?;
        match resp.status().as_u16() {
            202 => Ok(Chunk::Accepted {
                next: location(session, &resp)?,
                end: resp
                    .headers()
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_range_end),
            }),
            416 => Ok(Chunk::RangeInvalid),
            _ => Err(self.status_error(repo, &super::redact(session), resp, || {
                "upload session".into()
            })),
        }
    }

    /// GETs an upload session's state: where to continue and how many bytes it holds.
    pub fn upload_offset(
        &self,
        repo: &Repository,
        session: &Url,
    ) -> Result<(Url, u64), RegistryError> {
        let resp = self.request(repo, PUSH, &Call::get(session))?;
        if resp.status() != 204 {
            return Err(self.status_error(repo, &super::redact(session), resp, || {
                "upload session".into()
            }));
        }
        let offset = resp
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_range_end)
            .map_or(0, |end| end + 1);
        let next = match resp.headers().get("location") {
            Some(_) => location(session, &resp)?,
            None => session.clone(),
        };
        Ok((next, offset))
    }

    /// Closes a chunked upload: `PUT LOCATION&digest=D` with no body.
    pub fn finish_upload(
        &self,
        repo: &Repository,
        session: &Url,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let url = with_digest(session, digest);
        let call = Call::new(http::Method::PUT, &url)
            .header("Content-Type", OCTET_STREAM)
            .body(&[]);
        let resp = self.request(repo, PUSH, &call)?;
        self.expect_created(repo, &url, resp, digest)
    }

    fn expect_created(
        &self,
        repo: &Repository,
        url: &Url,
        resp: Response<ureq::Body>,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if !matches!(resp.status().as_u16(), 201 | 204) {
            return Err(
                self.status_error(repo, &super::redact(url), resp, || format!("blob {digest}"))
            );
        }
        check_digest_header(&resp, digest, &super::redact(url), "blob")
    }

    /// PUTs a manifest or index under a tag or its digest, with Content-Type = its media type.
    pub fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let call = Call::new(http::Method::PUT, &url)
            .header("Content-Type", media_type)
            .body(bytes);
        let digest = Digest::of_bytes(bytes);
        // A PUT of the same bytes is idempotent: an answer whose `Docker-Content-Digest` says
        // the registry stored something else is tried again, as a whole.
        self.with_body_retries(|| {
            let resp = self.request(repo, PUSH, &call)?;
            if !matches!(resp.status().as_u16(), 200 | 201 | 204) {
                return Err(self.status_error(repo, url.as_str(), resp, || {
                    format!("manifest `{reference}`")
                }));
            }
            check_digest_header(&resp, &digest, url.as_str(), "manifest")
        })?;
        Ok(digest)
    }

    /// Like [`Client::request`], with a token for several scopes (a mount needs push on the
    /// target and pull on the source). Registries whose token service is not known yet, or that
    /// use Basic auth, get the plain push request.
    fn request_scopes(
        &self,
        repo: &Repository,
        scopes: &[String],
        call: &Call<'_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let base = self.mirrors.endpoint(&repo.registry)?;
        let key = super::origin_key(&base);
        let combined = scopes.join(" ");
        let authorization = match self.tokens.token(&key, &combined) {
            Some(t) => format!("Bearer {}", t.value),
            None => match self.tokens.realm(&key) {
                Some(realm) => self.fetch_token_for(
                    &base,
                    &key,
                    repo,
                    &scopes.iter().map(String::as_str).collect::<Vec<_>>(),
                    &realm.realm,
                    realm.service.as_deref(),
                    Some(LOGIN_HINT),
                )?,
                None => return self.request(repo, PUSH, call),
            },
        };
        let resp = self.with_retries(false, || {
            self.send_following(&base, call, Some(&authorization))
        })?;
        if resp.status() == 401 {
            self.tokens.forget_token(&key, &combined);
            return Err(RegistryError::Unauthorized {
                repository: repo.to_string(),
                detail: super::error_detail(resp),
                hint: LOGIN_HINT.into(),
            });
        }
        Ok(resp)
    }

    /// Checks that `credentials` are accepted by `registry` (for `pkg login`): the token service
    /// must hand them a token, or a Basic-auth registry must answer `/v2/` with 200.
    pub fn check_login(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), RegistryError> {
        let base = self.mirrors.endpoint(registry)?;
        let url = base.join("v2/").map_err(|e| RegistryError::BadUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        let resp =
            self.with_retries(true, || self.send_following(&base, &Call::get(&url), None))?;
        let refused = |detail: String| RegistryError::Unauthorized {
            repository: registry.to_owned(),
            detail,
            hint: LOGIN_HINT.into(),
        };
        match resp.status().as_u16() {
            200 => return Ok(()),
            401 => {}
            status => {
                return Err(RegistryError::Status {
                    url: url.to_string(),
                    status,
                    detail: format!(": {}", super::error_detail(resp)),
                });
            }
        }
        let challenges = super::parse_www_authenticate(&resp);
        drop(resp);
        let header = credentials.basic_header();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .param("realm")
                .ok_or_else(|| refused("the registry's Bearer challenge names no realm".into()))?;
            let mut realm = base.join(realm).map_err(|e| RegistryError::Realm {
                realm: realm.to_owned(),
                reason: e.to_string(),
            })?;
            super::check_realm(&base, &realm)?;
            if let Some(service) = bearer.param("service") {
                realm.query_pairs_mut().append_pair("service", service);
            }
            let resp = self.with_retries(true, || {
                self.agent_for(&realm)
                    .get(realm.as_str())
                    .header("Authorization", &header)
                    .call()
                    .map_err(|source| RegistryError::Transport {
                        url: super::redact(&realm),
                        source: Box::new(source),
                        mirror_of: None,
                        tries: 0,
                    })
            })?;
            return match resp.status().as_u16() {
                200 => Ok(()),
                _ => Err(refused(format!(
                    "token service {}: {}",
                    super::redact(&realm),
                    super::error_detail(resp)
                ))),
            };
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let resp = self.with_retries(true, || {
                self.send_following(&base, &Call::get(&url), Some(&header))
            })?;
            return match resp.status().as_u16() {
                200 => Ok(()),
                _ => Err(refused(super::error_detail(resp))),
            };
        }
        Err(refused(
            "the registry answered 401 without a usable WWW-Authenticate challenge".into(),
        ))
    }
}

/// The `Location` of an upload response, resolved against the URL the request went to. Only
/// http(s), and never from https down to http.
pub fn resolve_location(request: &Url, header: Option<&str>) -> Result<Url, RegistryError> {
    let bad = |reason: String| RegistryError::BadUrl {
        url: super::redact(request),
        reason,
    };
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("the registry opened an upload without a Location header".into()))?;
    let next = request
        .join(header)
        .map_err(|e| bad(format!("bad upload Location `{header}`: {e}")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(bad(format!(
            "refusing an upload Location with scheme {}",
            next.scheme()
        )));
    }
    if request.scheme() == "https" && next.scheme() == "http" {
        return Err(bad(
            "refusing an upload Location that goes from https to http".into(),
        ));
    }
    Ok(next)
}

fn location(request: &Url, resp: &Response<ureq::Body>) -> Result<Url, RegistryError> {
    resolve_location(
        request,
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
    )
}

/// `LOCATION?…&digest=sha256:…`: the digest is appended to the query the registry gave, which is
/// kept byte for byte (it may hold upload state).
pub fn with_digest(session: &Url, digest: &Digest) -> Url {
    let mut url = session.clone();
    let query = match session.query() {
        Some(q) if !q.is_empty() => format!("{q}&digest={digest}"),
        _ => format!("digest={digest}"),
    };
    url.set_query(Some(&query));
    url
}

/// `0-1023` → 1023 (distribution's `Range` on an upload session, inclusive, no `bytes=`).
fn parse_range_end(value: &str) -> Option<u64> {
    let value = value.trim().trim_start_matches("bytes=");
    let (_, end) = value.split_once('-')?;
    end.trim().parse().ok()
}

fn check_digest_header(
    resp: &Response<ureq::Body>,
    digest: &Digest,
    url: &str,
    what: &str,
) -> Result<(), RegistryError> {
    if let Some(claimed) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| d.starts_with("sha256:"))
        && claimed != digest.to_string()
    {
        return Err(RegistryError::DigestMismatch {
            what: format!("{what} stored by the registry (Docker-Content-Digest)"),
            expected: digest.to_string(),
            actual: claimed.to_owned(),
            url: url.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Digest {
        Digest::of_bytes(b"")
    }

    #[test]
    fn relative_and_absolute_locations_resolve_against_the_request() {
        let req = Url::parse("http://127.0.0.1:5000/v2/acme/x/blobs/uploads/").unwrap();
        let rel = resolve_location(&req, Some("/v2/acme/x/blobs/uploads/u1?_state=abc")).unwrap();
        assert_eq!(
            rel.as_str(),
            "http://127.0.0.1:5000/v2/acme/x/blobs/uploads/u1?_state=abc"
        );
        let rel = resolve_location(&req, Some("u2")).unwrap();
        assert_eq!(
            rel.as_str(),
            "http://127.0.0.1:5000/v2/acme/x/blobs/uploads/u2"
        );
        let abs = resolve_location(&req, Some("https://upload.example/session/9?sig=x")).unwrap();
        assert_eq!(abs.as_str(), "https://upload.example/session/9?sig=x");
        assert!(resolve_location(&req, None).is_err());
        assert!(resolve_location(&req, Some("  ")).is_err());
        assert!(resolve_location(&req, Some("ftp://x/y")).is_err());
        let https = Url::parse("https://ghcr.io/v2/a/b/blobs/uploads/").unwrap();
        assert!(resolve_location(&https, Some("http://ghcr.io/v2/a/b/blobs/uploads/u")).is_err());
    }

    #[test]
    fn digest_is_appended_to_the_existing_query_untouched() {
        let digest = d();
        let with_state =
            Url::parse("http://r/v2/a/blobs/uploads/u?_state=a%2Bb%3D%3D&x=1").unwrap();
        assert_eq!(
            with_digest(&with_state, &digest).as_str(),
            format!("http://r/v2/a/blobs/uploads/u?_state=a%2Bb%3D%3D&x=1&digest={digest}")
        );
        let bare = Url::parse("http://r/v2/a/blobs/uploads/u").unwrap();
        assert_eq!(
            with_digest(&bare, &digest).as_str(),
            format!("http://r/v2/a/blobs/uploads/u?digest={digest}")
        );
        let empty = Url::parse("http://r/v2/a/blobs/uploads/u?").unwrap();
        assert_eq!(
            with_digest(&empty, &digest).as_str(),
            format!("http://r/v2/a/blobs/uploads/u?digest={digest}")
        );
    }

    #[test]
    fn upload_ranges() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("nonsense"), None);
    }
}
