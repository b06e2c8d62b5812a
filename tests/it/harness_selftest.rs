//! Proves the harness on its own, without pkg: the registry trusts the issuer's tokens, skopeo
//! pushes fixtures byte-exact, tampering and stopping do what the pkg tests rely on.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::harness::layout::{INDEX_TYPE, MANIFEST_TYPE};
use crate::harness::registry::http_agent;
use crate::harness::token::{Caller, PASSWORD, USERNAME};
use crate::harness::{Fixture, ImageSpec, Registry, sha256_digest};

const ACCEPT: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Fetched {
    let agent = http_agent();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    Fetched {
        status,
        headers,
        body,
    }
}

/// Asks the issuer for a token the way a client would (the token is never printed).
fn token(registry: &Registry, scope: &str, basic: Option<(&str, &str)>) -> Result<String, Fetched> {
    let url = format!(
        "{}?service=test-registry&scope={}",
        registry.issuer().realm(),
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
    );
    let auth = basic.map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));
    let mut headers = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let resp = get(&url, &headers);
    if resp.status != 200 {
        return Err(resp);
    }
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let obj = json.as_object().expect("token response is an object");
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["token"],
        "the issuer answers like GHCR: a token and nothing else"
    );
    Ok(obj["token"].as_str().unwrap().to_owned())
}

fn hello_image() -> ImageSpec {
    ImageSpec::new("linux", "amd64").file("bin/hello", "#!/bin/sh\necho hello\n", 0o755)
}

#[test]
fn registry_accepts_issuer_tokens_and_serves_skopeo_pushes_byte_exact() {
    let registry = Registry::start();
    let built = registry.push("acme/hello", "1.0.0", &Fixture::Image(hello_image()));
    assert_eq!(built.media_type, MANIFEST_TYPE);

    // skopeo authenticated as the test user and asked for push.
    let requests = registry.issuer().requests();
    assert!(
        requests.iter().any(|r| r.caller == Caller::User
            && r.status == 200
            && r.scopes
                .iter()
                .any(|s| s == "repository:acme/hello:pull,push")),
        "skopeo's push token request is missing: {requests:?}"
    );

    let manifest_url = format!("{}/v2/acme/hello/manifests/1.0.0", registry.url());
    let anonymous = get(&manifest_url, &[("Accept", ACCEPT)]);
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("WWW-Authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("realm=\"{}\"", registry.issuer().realm())),
        "{challenge}"
    );
    assert!(
        challenge.contains("service=\"test-registry\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:acme/hello:pull\""),
        "{challenge}"
    );

    let pull = token(&registry, "repository:acme/hello:pull", None).expect("anonymous pull");
    let bearer = format!("Bearer {pull}");
    let manifest = get(
        &manifest_url,
        &[("Accept", ACCEPT), ("Authorization", &bearer)],
    );
    assert_eq!(
        manifest.status,
        200,
        "{}",
        String::from_utf8_lossy(&manifest.body)
    );
    assert_eq!(manifest.body, built.image().manifest);
    assert_eq!(sha256_digest(&manifest.body), built.digest);
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(&*built.digest)
    );

    let config = get(
        &format!(
            "{}/v2/acme/hello/blobs/{}",
            registry.url(),
            built.image().config_digest
        ),
        &[("Authorization", &bearer)],
    );
    assert_eq!(config.status, 200);
    let config: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");

    let layer = built.layer_digest().to_owned();
    let blob_url = format!("{}/v2/acme/hello/blobs/{layer}", registry.url());
    let blob = get(&blob_url, &[("Authorization", &bearer)]);
    assert_eq!(blob.status, 200);
    assert_eq!(sha256_digest(&blob.body), layer);

    // A token for another repository does not open this one.
    let other = token(&registry, "repository:acme/other:pull", None).unwrap();
    let denied = get(
        &manifest_url,
        &[
            ("Accept", ACCEPT),
            ("Authorization", &format!("Bearer {other}")),
        ],
    );
    assert_eq!(denied.status, 401);

    // Tampering changes what the registry serves under the old digest.
    let tampered = registry.tamper_blob(&layer);
    assert_ne!(tampered, layer);
    let blob = get(&blob_url, &[("Authorization", &bearer)]);
    assert_eq!(blob.status, 200);
    assert_eq!(sha256_digest(&blob.body), tampered);
}

#[test]
fn issuer_refuses_anonymous_push_and_wrong_credentials() {
    let registry = Registry::start();
    let refused = token(&registry, "repository:acme/hello:pull,push", None).unwrap_err();
    assert_eq!(refused.status, 403);
    assert!(String::from_utf8_lossy(&refused.body).contains("DENIED"));

    let wrong = token(
        &registry,
        "repository:acme/hello:pull",
        Some((USERNAME, "nope")),
    )
    .unwrap_err();
    assert_eq!(wrong.status, 401);
    assert!(String::from_utf8_lossy(&wrong.body).contains("DENIED"));

    token(
        &registry,
        "repository:acme/hello:pull,push",
        Some((USERNAME, PASSWORD)),
    )
    .expect("the test user may push");

    let seen: Vec<_> = registry
        .issuer()
        .requests()
        .iter()
        .map(|r| (r.caller.clone(), r.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Caller::Anonymous, 403),
            (Caller::BadCredentials, 401),
            (Caller::User, 200)
        ]
    );
}

#[test]
fn index_fixtures_push_with_every_platform() {
    let registry = Registry::start();
    let built = registry.push(
        "acme/multi",
        "1.0.0",
        &Fixture::Index(vec![
            ImageSpec::new("linux", "amd64").file("which", "linux\n", 0o644),
            ImageSpec::new("darwin", "arm64").file("which", "darwin\n", 0o644),
        ]),
    );
    assert_eq!(built.media_type, INDEX_TYPE);
    let pull = token(&registry, "repository:acme/multi:pull", None).unwrap();
    let bearer = format!("Bearer {pull}");
    let index = get(
        &format!("{}/v2/acme/multi/manifests/1.0.0", registry.url()),
        &[("Accept", ACCEPT), ("Authorization", &bearer)],
    );
    assert_eq!(index.status, 200);
    assert_eq!(sha256_digest(&index.body), built.digest);
    for image in &built.images {
        let m = get(
            &format!(
                "{}/v2/acme/multi/manifests/{}",
                registry.url(),
                image.manifest_digest
            ),
            &[("Accept", ACCEPT), ("Authorization", &bearer)],
        );
        assert_eq!(m.status, 200);
        assert_eq!(m.body, image.manifest);
    }
}

#[test]
fn stopped_registry_refuses_connections() {
    let mut registry = Registry::start();
    let url = format!("{}/v2/", registry.url());
    assert_eq!(get(&url, &[]).status, 401);
    registry.stop();
    std::thread::sleep(Duration::from_millis(50));
    let err = http_agent().get(&url).call().expect_err("registry is gone");
    assert!(
        matches!(err, ureq::Error::Io(_) | ureq::Error::ConnectionFailed),
        "{err:?}"
    );
}
