//! Tests of endpoints, mirrors, realm and redirect safety, redaction.

use super::mirrors::without_userinfo;
use super::safety::Hop;
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
fn several_mirrors_of_a_host_are_tried_in_order_then_the_registry_unless_mirror_only() {
    let m =
        Mirrors::parse("ghcr.io=http://a:5000,ghcr.io=http://b:5000,other.io=http://c").unwrap();
    let chain: Vec<String> = m
        .chain("ghcr.io")
        .unwrap()
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(
        chain,
        ["http://a:5000/", "http://b:5000/", "https://ghcr.io/"]
    );
    assert_eq!(m.chain("quay.io").unwrap().len(), 1);
    assert_eq!(
        m.describe(),
        [
            "ghcr.io → http://a:5000, then http://b:5000, then https://ghcr.io",
            "other.io → http://c, then https://other.io"
        ]
    );
    let only = m.clone().mirror_only("ghcr.io").unwrap();
    assert_eq!(only.chain("ghcr.io").unwrap().len(), 2);
    assert_eq!(only.chain("other.io").unwrap().len(), 2);
    let all = m.clone().mirror_only("*").unwrap();
    assert_eq!(all.chain("other.io").unwrap().len(), 1);
    assert!(m.mirror_only("quay.io").is_err());
}

#[test]
fn mirrors_map_hosts_to_endpoints() {
    let m =
        Mirrors::parse("ghcr.io=http://127.0.0.1:5000, other.io=https://mirror.example").unwrap();
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
    assert_eq!(
        r, "https://cdn.example/blob?…",
        "the ellipsis is shown, not escaped"
    );
    let u = Url::parse("http://127.0.0.1:5000/v2/acme/x/tags/list").unwrap();
    assert_eq!(redact(&u), "http://127.0.0.1:5000/v2/acme/x/tags/list");
}
