//! The token a request needs: from the cache, from the token service the registry's own
//! challenge names (with the credentials [`CredentialSource::lookup`] finds for the endpoint,
//! else anonymously), or Basic credentials; each token exchange retried as a whole.
//!
//! [`CredentialSource::lookup`]: super::auth::CredentialSource::lookup

use std::time::Instant;

use url::Url;

use super::auth::{self, Challenge};
use super::{
    CREDENTIAL_HINT, Client, MAX_TOKEN_BYTES, MAX_TOKEN_HEADER, RegistryError, Repository,
    check_realm, error_detail, host_port, read_limited, redact,
};

impl Client {
    /// Authorization for a request we are about to make: a cached token, or a new one when the
    /// registry's token service is already known (saves a 401 round trip per repository).
    pub(super) fn cached_authorization(
        &self,
        base: &Url,
        key: &str,
        repo: &Repository,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        if let Some(t) = self.tokens.token(key, scope) {
            return Ok(Some(format!("Bearer {}", t.value)));
        }
        if self.tokens.uses_basic(key) {
            return Ok(self
                .credentials
                .lookup(&host_port(base))
                .map(|c| c.basic_header()));
        }
        if let Some(realm) = self.tokens.realm(key) {
            return self
                .fetch_token(
                    base,
                    key,
                    repo,
                    scope,
                    &realm.realm,
                    realm.service.as_deref(),
                )
                .map(Some);
        }
        Ok(None)
    }

    /// Answers a 401: Bearer → token service with our own scope; Basic → credentials.
    pub(super) fn authenticate(
        &self,
        base: &Url,
        key: &str,
        repo: &Repository,
        scope: &str,
        challenges: &[Challenge],
    ) -> Result<String, RegistryError> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .param("realm")
                .ok_or_else(|| RegistryError::Unauthorized {
                    repository: repo.to_string(),
                    detail: "the registry's Bearer challenge names no realm".into(),
                    hint: "".into(),
                })?;
            let realm = base.join(realm).map_err(|e| RegistryError::Realm {
                realm: realm.to_owned(),
                reason: e.to_string(),
            })?;
            check_realm(base, &realm)?;
            let service = bearer.param("service").map(str::to_owned);
            self.tokens.store_realm(
                key,
                auth::BearerRealm {
                    realm: realm.to_string(),
                    service: service.clone(),
                },
            );
            return self.fetch_token(base, key, repo, scope, realm.as_str(), service.as_deref());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            self.tokens.store_basic(key);
            return self
                .credentials
                .lookup(&host_port(base))
                .map(|c| c.basic_header())
                .ok_or_else(|| RegistryError::Unauthorized {
                    repository: repo.to_string(),
                    detail: "the registry wants a username and password".into(),
                    hint: self.credential_hint(base, repo, false),
                });
        }
        Err(RegistryError::Unauthorized {
            repository: repo.to_string(),
            detail: "the registry answered 401 without a usable WWW-Authenticate challenge".into(),
            hint: CREDENTIAL_HINT.into(),
        })
    }

    pub(super) fn fetch_token(
        &self,
        base: &Url,
        key: &str,
        repo: &Repository,
        scope: &str,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        self.fetch_token_for(base, key, repo, &[scope], realm, service, None)
    }

    /// Asks the token service for a token carrying every scope (a push with a cross-repository
    /// mount needs two), remembered under the scopes joined by spaces. `hint` replaces the usual
    /// advice when the token is refused (pushes have their own).
    #[allow(clippy::too_many_arguments)]
    /// Long: one exchange with the token service as a single try (request, status, body, parse),
    /// each failure classified for the retry loop around it without ever showing the token.
    pub(super) fn fetch_token_for(
        &self,
        base: &Url,
        key: &str,
        repo: &Repository,
        scopes: &[&str],
        realm: &str,
        service: Option<&str>,
        hint: Option<&'static str>,
    ) -> Result<String, RegistryError> {
        let Some((first, rest)) = scopes.split_first() else {
            return Err(RegistryError::Realm {
                realm: realm.to_owned(),
                reason: "no scope to ask for".into(),
            });
        };
        let mut url = auth::token_url(realm, service, first);
        for scope in rest {
            url.push_str("&scope=");
            url.extend(url::form_urlencoded::byte_serialize(scope.as_bytes()));
        }
        let scope = scopes.join(" ");
        let scope = scope.as_str();
        let credentials = self.credentials.lookup(&host_port(base));
        let hint: std::borrow::Cow<'static, str> = match hint {
            Some(h) => h.into(),
            None => self.credential_hint(base, repo, credentials.is_some()),
        };
        // A realm is the registry's word: it could carry userinfo or a query worth hiding.
        let shown = Url::parse(realm).map_or_else(|_| realm.to_owned(), |u| redact(&u));
        let realm = shown.as_str();
        // The whole exchange is one try: a body that breaks off or ends early is asked again.
        let token = self.with_body_retries(|| {
            let resp = self.with_retries(true, || {
                let agent = match Url::parse(&url) {
                    Ok(u) => self.agent_for(&u),
                    Err(_) => self.agents.get(true),
                };
                let mut req = agent.get(&url);
                if let Some(c) = &credentials {
                    req = req.header("Authorization", c.basic_header());
                }
                let resp = req.call().map_err(|source| RegistryError::Transport {
                    url: realm.to_owned(),
                    source: Box::new(source),
                    mirror_of: None,
 tries: 0,
                })?;
                self.log(|| {
                    format!(
                        "GET {realm} (token for {scope}{}) -> {}",
                        if credentials.is_some() {
                            ", with credentials"
                        } else {
                            ", anonymous"
                        },
                        resp.status().as_u16()
                    )
                });
                Ok(resp)
            })?;
            match resp.status().as_u16() {
                200 => {}
                401 => {
                    return Err(RegistryError::Unauthorized {
                        repository: repo.to_string(),
                        detail: format!("token service {realm}: {}", error_detail(resp)),
                        hint: hint.clone(),
                    });
                }
                403 => {
                    return Err(RegistryError::Denied {
                        repository: repo.to_string(),
                        detail: format!("token service {realm}: {}", error_detail(resp)),
                        hint: hint.clone(),
                    });
                }
                status => {
                    // Said as the token service's answer, not the registry's: a challenge may
                    // name any URL as its realm.
                    return Err(RegistryError::Realm {
                        realm: realm.to_owned(),
                        reason: format!("answered {status}: {}", error_detail(resp)),
                    });
                }
            }
            let body = read_limited(resp, realm, MAX_TOKEN_BYTES)?;
            let answer: auth::TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                if e.is_eof() && !body.is_empty() {
                    // Cut short: another try may get it whole.
                    return RegistryError::CutShort {
                        url: realm.to_owned(),
                        what: "token service's token document",
                    };
                }
                // Where, not what: the text around the error could be the token itself.
                let reason = format!(
                    "the answer is not a token document (JSON {:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                );
                RegistryError::Realm {
                    realm: realm.to_owned(),
                    reason,
                }
            })?;
            let token = answer
                .into_token(Instant::now())
                .ok_or_else(|| RegistryError::Realm {
                    realm: realm.to_owned(),
                    reason: "the answer holds no `token` or `access_token`".into(),
                })?;
            if token.value.len() > MAX_TOKEN_HEADER {
                return Err(RegistryError::Realm {
                    realm: realm.to_owned(),
                    reason: format!(
                        "the token it gave is {} KiB; registries issue tokens of a few KiB, and one this large cannot be sent back in a request header (pkg's limit: {} KiB)",
                        token.value.len() / 1024,
                        MAX_TOKEN_HEADER / 1024
                    ),
                });
            }
            Ok(token)
        })?;
        let header = format!("Bearer {}", token.value);
        self.tokens.store_token(key, scope, token);
        Ok(header)
    }
}
