//! An in-process token issuer for distribution's `auth.token`, behaving like GHCR's: `GET
//! /token?service=S&scope=…` answers `{"token": JWT}` only (no `expires_in`). Anonymous requests may
//! pull; the test user may pull and push. Every request is recorded (never the token itself).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "pkg-test-issuer";
pub const USERNAME: &str = "tester";
pub const PASSWORD: &str = "s3cret";

/// Who asked for a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// Basic credentials matching `USERNAME`/`PASSWORD`.
    User,
    /// Basic credentials that did not match (or another scheme).
    BadCredentials,
}

/// One request the issuer saw. The token it answered with is deliberately not kept.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub caller: Caller,
    pub service: Option<String>,
    /// Every `scope` parameter, verbatim, in order.
    pub scopes: Vec<String>,
    /// The HTTP status the issuer answered with.
    pub status: u16,
}

struct Signer {
    key: EcdsaKeyPair,
    /// base64 (standard, padded) DER of the self-signed certificate, for the `x5c` header.
    x5c: String,
    rng: SystemRandom,
}

impl Signer {
    fn generate() -> (Signer, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load the generated P-256 key");
        let cert_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("rcgen reads the P-256 key");
        let mut params =
            rcgen::CertificateParams::new(vec![ISSUER.to_owned()]).expect("certificate params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ISSUER);
        let cert = params
            .self_signed(&cert_key)
            .expect("self-sign the issuer certificate");
        let signer = Signer {
            key,
            x5c: STANDARD.encode(cert.der().as_ref()),
            rng,
        };
        (signer, cert.pem())
    }

    fn jwt(&self, subject: &str, access: &[(String, Vec<String>)]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let access: Vec<_> = access
            .iter()
            .map(|(name, actions)| {
                serde_json::json!({"type": "repository", "name": name, "actions": actions})
            })
            .collect();
        let jti = {
            let mut b = [0u8; 16];
            ring::rand::SecureRandom::fill(&self.rng, &mut b).expect("random jti");
            hex::encode(b)
        };
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": jti,
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("sign the token");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

pub struct TokenIssuer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    port: u16,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    tls: bool,
}

impl TokenIssuer {
    /// Generates a key and certificate, writes the certificate (PEM) to `cert_path` for the
    /// registry's `rootcertbundle`, and starts serving on 127.0.0.1 on a port of the OS's choice.
    /// Serving https when `tls` (certificate and key, PEM) is given.
    pub fn start_with(cert_path: &Path, tls: Option<(Vec<u8>, Vec<u8>)>) -> TokenIssuer {
        let (signer, pem) = Signer::generate();
        std::fs::write(cert_path, pem).expect("write the issuer certificate");
        let is_tls = tls.is_some();
        let server = Arc::new(match tls {
            None => tiny_http::Server::http("127.0.0.1:0").expect("token issuer binds 127.0.0.1:0"),
            Some((certificate, private_key)) => tiny_http::Server::https(
                "127.0.0.1:0",
                tiny_http::SslConfig {
                    certificate,
                    private_key,
                },
            )
            .expect("token issuer serves https on 127.0.0.1:0"),
        });
        let port = server
            .server_addr()
            .to_ip()
            .expect("token issuer has an IP address")
            .port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let (status, body, record) = answer(&signer, &request);
                    if let Some(record) = record {
                        log.lock().unwrap().push(record);
                    }
                    let response = tiny_http::Response::from_string(body)
                        .with_status_code(status)
                        .with_header(
                            "Content-Type: application/json"
                                .parse::<tiny_http::Header>()
                                .unwrap(),
                        );
                    let _ = request.respond(response);
                }
            })
        };
        TokenIssuer {
            server,
            thread: Some(thread),
            port,
            log,
            tls: is_tls,
        }
    }

    pub fn realm(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/token", self.port)
    }

    /// Every request so far (a copy).
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const DENIED: &str =
    r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;

/// Splits `repository:NAME:ACTIONS`; NAME may itself contain `:` (host:port), so the type is
/// before the first colon and the actions after the last.
fn parse_scope(scope: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if name.is_empty() {
        return None;
    }
    Some((
        kind,
        name,
        actions.split(',').filter(|a| !a.is_empty()).collect(),
    ))
}

fn answer(signer: &Signer, request: &tiny_http::Request) -> (u16, String, Option<TokenRequest>) {
    let url = match url::Url::parse(&format!("http://issuer{}", request.url())) {
        Ok(u) => u,
        Err(_) => return (400, "{}".into(), None),
    };
    if url.path() != "/token" || *request.method() != tiny_http::Method::Get {
        return (404, "{}".into(), None);
    }
    let mut service = None;
    let mut scopes = Vec::new();
    for (k, v) in url.query_pairs() {
        match &*k {
            "service" => service = Some(v.into_owned()),
            "scope" => scopes.push(v.into_owned()),
            _ => {}
        }
    }
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned());
    let caller = match authorization {
        None => Caller::Anonymous,
        Some(value) => {
            let ok = value
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .is_some_and(|pair| pair == format!("{USERNAME}:{PASSWORD}"));
            if ok {
                Caller::User
            } else {
                Caller::BadCredentials
            }
        }
    };
    let mut record = TokenRequest {
        caller: caller.clone(),
        service: service.clone(),
        scopes: scopes.clone(),
        status: 0,
    };
    let (status, body) = decide(signer, &caller, service.as_deref(), &scopes);
    record.status = status;
    (status, body, Some(record))
}

fn decide(
    signer: &Signer,
    caller: &Caller,
    service: Option<&str>,
    scopes: &[String],
) -> (u16, String) {
    if *caller == Caller::BadCredentials {
        return (401, DENIED.into());
    }
    if service != Some(SERVICE) {
        return (
            400,
            r#"{"errors":[{"code":"UNSUPPORTED","message":"unknown service"}]}"#.into(),
        );
    }
    let allowed: &[&str] = match caller {
        Caller::User => &["pull", "push"],
        _ => &["pull"],
    };
    let mut access: Vec<(String, Vec<String>)> = Vec::new();
    for scope in scopes {
        let Some((kind, name, actions)) = parse_scope(scope) else {
            continue;
        };
        if kind != "repository" {
            continue;
        }
        if actions.iter().any(|a| !allowed.contains(a)) && *caller == Caller::Anonymous {
            return (403, DENIED.into());
        }
        let granted: Vec<String> = actions
            .iter()
            .filter(|a| allowed.contains(a))
            .map(|a| a.to_string())
            .collect();
        if let Some(entry) = access.iter_mut().find(|(n, _)| n == name) {
            for g in granted {
                if !entry.1.contains(&g) {
                    entry.1.push(g);
                }
            }
        } else {
            access.push((name.to_owned(), granted));
        }
    }
    let subject = match caller {
        Caller::User => USERNAME,
        _ => "",
    };
    let token = signer.jwt(subject, &access);
    (200, serde_json::json!({ "token": token }).to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_scope;

    #[test]
    fn scope_names_may_contain_a_port() {
        assert_eq!(
            parse_scope("repository:127.0.0.1:5000/acme/hello:pull,push"),
            Some((
                "repository",
                "127.0.0.1:5000/acme/hello",
                vec!["pull", "push"]
            ))
        );
        assert_eq!(parse_scope("repository::pull"), None);
        assert_eq!(parse_scope("nonsense"), None);
    }
}
