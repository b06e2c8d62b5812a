//! Registry authentication: `WWW-Authenticate` challenges, the token flow GHCR uses, a token cache
//! per (registry, scope), and credentials from the environment or docker/podman auth files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// One challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme: `bearer`, `basic`, …
    pub scheme: String,
    /// Parameters with lowercased names.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge in the given header values (RFC 7235): several challenges per header,
/// quoted strings with commas and `\"` escapes, token68 values. Malformed parts are skipped.
pub fn parse_challenges<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for header in headers {
        let mut p = Parser {
            s: header.as_bytes(),
            i: 0,
        };
        let mut current: Option<Challenge> = None;
        loop {
            p.skip_ws_commas();
            if p.done() {
                break;
            }
            let Some(word) = p.token() else {
                // Unparseable: give up on the rest of this header.
                break;
            };
            p.skip_ws();
            if p.peek() == Some(b'=') {
                // `name=value` parameter of the current challenge (or a token68 ending in '=').
                p.i += 1;
                p.skip_ws();
                let value = if p.peek() == Some(b'"') {
                    p.quoted()
                } else {
                    p.token().unwrap_or_default()
                };
                if let Some(c) = current.as_mut() {
                    c.params.push((word.to_ascii_lowercase(), value));
                }
            } else {
                if let Some(c) = current.take() {
                    out.push(c);
                }
                current = Some(Challenge {
                    scheme: word.to_ascii_lowercase(),
                    params: Vec::new(),
                });
            }
        }
        out.extend(current);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b) {
                self.i += 1;
            } else {
                break;
            }
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.i += 1; // opening quote
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Username and password for one registry. Debug never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The host environment credentials are for when `PKG_REGISTRY_HOST` does not say: GHCR, the
/// registry pkg is first made for.
pub const DEFAULT_CREDENTIALS_HOST: &str = "ghcr.io";

/// Where credentials come from, for one endpoint at a time (the host and port pkg really talks
/// to, a mirror's when a registry is mirrored): `PKG_REGISTRY_USERNAME`/`PKG_REGISTRY_PASSWORD`
/// for the hosts in `env_hosts` only (`PKG_REGISTRY_HOST`, default `ghcr.io`), else the `auths`
/// of pkg's own `auth.json` (`pkg login`), podman's `auth.json` or docker's `config.json` for
/// exactly that host. Nothing is ever handed to another host, another port or a mirror.
#[derive(Clone, Debug, Default)]
pub struct CredentialSource {
    pub env: Option<Credentials>,
    /// Hosts (`host` or `host:port`) the environment's credentials are for.
    pub env_hosts: Vec<String>,
    pub auth_files: Vec<PathBuf>,
}

/// `host` and `host:443` are one endpoint for https; everything else compares as written,
/// ASCII case ignored.
pub fn same_endpoint(a: &str, b: &str) -> bool {
    let norm = |h: &str| {
        let h = h.to_ascii_lowercase();
        h.strip_suffix(":443").map(str::to_owned).unwrap_or(h)
    };
    norm(a) == norm(b)
}

impl CredentialSource {
    /// Credentials for the endpoint `host` (`ghcr.io`, `127.0.0.1:5000`), if any are configured
    /// for exactly that host. The one lookup every request, token and login goes through.
    pub fn lookup(&self, host: &str) -> Option<Credentials> {
        if let Some(c) = &self.env
            && self.env_hosts.iter().any(|h| same_endpoint(h, host))
        {
            return Some(c.clone());
        }
        self.auth_files
            .iter()
            .find_map(|file| from_auth_file(file, host))
    }
}

impl CredentialSource {
    /// The hosts credentials are configured for, each with where they come from (never the
    /// values): the environment's hosts, then each auth file's entries.
    pub fn hosts(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if self.env.is_some() {
            for h in &self.env_hosts {
                out.push((h.clone(), "PKG_REGISTRY_USERNAME/PASSWORD".into()));
            }
        }
        for file in &self.auth_files {
            let Some(auths) = std::fs::read_to_string(file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|j| j.get("auths").and_then(|a| a.as_object().cloned()))
            else {
                continue;
            };
            for key in auths.keys() {
                let host = key
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                let host = host.split('/').next().unwrap_or(host).to_owned();
                if !out.iter().any(|(h, _)| same_endpoint(h, &host)) {
                    out.push((host, file.display().to_string()));
                }
            }
        }
        out
    }
}

/// Reads `{"auths": {"host": {"auth": base64("user:pass")}}}`; missing or unreadable files are
/// simply not a source (credential helpers are not supported).
fn from_auth_file(file: &Path, host: &str) -> Option<Credentials> {
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = json.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, v)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let key = key.split('/').next().unwrap_or(key);
        same_endpoint(key, host).then_some(v)
    })?;
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        return Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        });
    }
    let u = entry.get("username")?.as_str()?;
    let p = entry.get("password")?.as_str()?;
    Some(Credentials {
        username: u.to_owned(),
        password: p.to_owned(),
    })
}

/// A bearer token with its expiry. Debug never shows the token.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<redacted>)")
    }
}

/// Token service answer: `token` and/or `access_token`, optional `expires_in`.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
}

/// Longest lifetime pkg believes a token has, whatever the token service says (an absurd
/// `expires_in` must not overflow the clock; a day is far past any run).
const MAX_TOKEN_TTL: u64 = 24 * 60 * 60;

/// `expires_in` as token services write it: a number of seconds, sometimes fractional or quoted.
/// Anything else (negative, text, null) counts as not stated, so the 60 s default applies rather
/// than the whole answer being rejected for a field pkg can do without.
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    let seconds = match &value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    Ok(seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.min(MAX_TOKEN_TTL as f64) as u64))
}

impl TokenResponse {
    /// The token, renewing 5 s before the stated expiry (60 s when none is stated).
    pub fn into_token(self, now: Instant) -> Option<Token> {
        let value = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let ttl = self.expires_in.unwrap_or(60).clamp(10, MAX_TOKEN_TTL);
        Some(Token {
            value,
            expires: now + Duration::from_secs(ttl - 5),
        })
    }
}

/// What a registry told us about its token service, remembered so later scopes skip the 401 round trip.
#[derive(Clone, Debug)]
pub struct BearerRealm {
    pub realm: String,
    pub service: Option<String>,
}

/// Tokens per (registry, scope) and the token realm per registry.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<(String, String), Token>>,
    realms: Mutex<HashMap<String, BearerRealm>>,
    basic: Mutex<HashSet<String>>,
}

impl TokenCache {
    pub fn token(&self, registry: &str, scope: &str) -> Option<Token> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(&(registry.to_owned(), scope.to_owned()))
            .filter(|t| t.expires > Instant::now())
            .cloned()
    }
    pub fn store_token(&self, registry: &str, scope: &str, token: Token) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert((registry.to_owned(), scope.to_owned()), token);
        }
    }
    pub fn forget_token(&self, registry: &str, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&(registry.to_owned(), scope.to_owned()));
        }
    }
    pub fn realm(&self, registry: &str) -> Option<BearerRealm> {
        self.realms.lock().ok()?.get(registry).cloned()
    }
    pub fn store_realm(&self, registry: &str, realm: BearerRealm) {
        if let Ok(mut realms) = self.realms.lock() {
            realms.insert(registry.to_owned(), realm);
        }
    }
    /// The registry asked for Basic auth (plain htpasswd registries).
    pub fn uses_basic(&self, registry: &str) -> bool {
        self.basic
            .lock()
            .map(|b| b.contains(registry))
            .unwrap_or(false)
    }
    pub fn store_basic(&self, registry: &str) {
        if let Ok(mut b) = self.basic.lock() {
            b.insert(registry.to_owned());
        }
    }
}

/// `repository:NAME:ACTIONS` — always built from the repository we want, never taken from the
/// challenge (GHCR's `/v2/` challenge carries a useless placeholder scope).
pub fn scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// Appends `service` and `scope` to a realm URL as query parameters.
pub fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut url = realm.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    if let Some(service) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&encode_query(service));
        sep = '&';
    }
    url.push(sep);
    url.push_str("scope=");
    url.push_str(&encode_query(scope));
    url
}

fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ghcr_challenge() {
        let c = parse_challenges([
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://ghcr.io/token"));
        assert_eq!(c[0].param("service"), Some("ghcr.io"));
        assert_eq!(c[0].param("scope"), Some("repository:user/image:pull"));
    }

    #[test]
    fn parses_several_challenges_with_quoted_commas_and_escapes() {
        let c = parse_challenges([
            r#"Basic realm="Registry, \"main\"", Bearer realm="http://127.0.0.1:1/token",scope="repository:a/b:pull,push", error="insufficient_scope""#,
            "Negotiate abc==",
        ]);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"Registry, "main""#));
        assert_eq!(c[1].param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(c[2].scheme, "negotiate");
    }

    #[test]
    fn malformed_headers_do_not_panic() {
        for h in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            ",,,",
            "Bearer ===",
        ] {
            let _ = parse_challenges([h]);
        }
    }

    #[test]
    fn token_url_encodes_scope_and_service() {
        assert_eq!(
            token_url(
                "https://ghcr.io/token",
                Some("ghcr.io"),
                "repository:a/b:pull"
            ),
            "https://ghcr.io/token?service=ghcr.io&scope=repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(
            token_url("http://x/token?x=1", None, "s"),
            "http://x/token?x=1&scope=s"
        );
    }

    #[test]
    fn token_or_access_token_and_default_expiry() {
        let now = Instant::now();
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"abc"}"#).unwrap();
        let t = t.into_token(now).unwrap();
        assert_eq!(t.value, "abc");
        assert_eq!(t.expires, now + Duration::from_secs(55));
        let t: TokenResponse =
            serde_json::from_str(r#"{"token":"x","access_token":"y","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(now).unwrap().value, "x");
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_token(now).is_none());
    }

    #[test]
    fn stated_expiry_is_honoured_and_absurd_ones_neither_overflow_nor_reject_the_token() {
        let now = Instant::now();
        let expiry = |body: &str| {
            let t: TokenResponse = serde_json::from_str(body).unwrap();
            t.into_token(now).unwrap().expires - now
        };
        assert_eq!(
            expiry(r#"{"token":"t","expires_in":300}"#),
            Duration::from_secs(295)
        );
        assert_eq!(
            expiry(r#"{"token":"t","expires_in":"120"}"#),
            Duration::from_secs(115)
        );
        assert_eq!(
            expiry(r#"{"token":"t","expires_in":90.5}"#),
            Duration::from_secs(85)
        );
        // Too short to be useful: at least 10 s, renewed 5 s early.
        assert_eq!(
            expiry(r#"{"token":"t","expires_in":1}"#),
            Duration::from_secs(5)
        );
        // Unusable values fall back to the 60 s default.
        for odd in ["-1", "\"soon\"", "null", "[]"] {
            let body = format!(r#"{{"token":"t","expires_in":{odd}}}"#);
            assert_eq!(expiry(&body), Duration::from_secs(55), "{body}");
        }
        // Far beyond any clock: capped at a day.
        let huge = expiry(r#"{"token":"t","expires_in":18446744073709551615}"#);
        assert_eq!(huge, Duration::from_secs(MAX_TOKEN_TTL - 5));
    }

    #[test]
    fn reads_docker_auth_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("me:pw");
        std::fs::write(
            &file,
            format!(r#"{{"auths":{{"https://ghcr.io":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let src = CredentialSource {
            env: None,
            env_hosts: Vec::new(),
            auth_files: vec![dir.path().join("missing.json"), file],
        };
        let c = src.lookup("ghcr.io").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "pw"));
        assert!(src.lookup("docker.io").is_none());
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn environment_credentials_reach_only_their_host() {
        let me = Credentials {
            username: "octocat".into(),
            password: "ghp_secret".into(),
        };
        let src = CredentialSource {
            env: Some(me),
            env_hosts: vec![DEFAULT_CREDENTIALS_HOST.into()],
            auth_files: Vec::new(),
        };
        for (endpoint, gets) in [
            ("ghcr.io", true),
            ("GHCR.io", true),
            ("ghcr.io:443", true),
            // Another port of the same host, a mirror, another registry, a look-alike.
            ("ghcr.io:8443", false),
            ("127.0.0.1:5000", false),
            ("registry.example.com", false),
            ("ghcr.io.evil.example", false),
            ("evil.example", false),
        ] {
            assert_eq!(src.lookup(endpoint).is_some(), gets, "{endpoint}");
        }
        let mirror = CredentialSource {
            env_hosts: vec!["127.0.0.1:5000".into()],
            ..src.clone()
        };
        assert!(mirror.lookup("127.0.0.1:5000").is_some());
        assert!(mirror.lookup("ghcr.io").is_none());
        assert!(mirror.lookup("127.0.0.1:5001").is_none());
    }
}
