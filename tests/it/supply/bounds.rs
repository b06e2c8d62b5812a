//! Signature discovery is bounded (issue 27): a fallback index naming one referrer 3,000 times,
//! a referrer of 120 copies of one 4 MiB bundle layer, and trust material that is not a file
//! (`/dev/zero`, a FIFO) cost a few requests, bounded memory and a short message.

use super::{OCI_INDEX, OCI_MANIFEST, SUBJECT, cosign, publish, referrer};
use crate::harness::{Registry, TestContext};

/// Pushes a referrer of `layers` copies of `bundle` and a fallback index listing it `times` times.
fn hostile_referrers(reg: &Registry, repo: &str, bundle: &[u8], layers: usize, times: usize) {
    publish(reg, repo, None);
    let digest = |b: &[u8]| crate::harness::sha256_digest(b);
    let referrer = referrer(bundle, layers);
    let referrer_digest = reg.put_raw(
        repo,
        &[b"{}", bundle],
        referrer.as_bytes(),
        OCI_MANIFEST,
        &digest(referrer.as_bytes()),
    );
    let entry = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": referrer_digest, "size": referrer.len()});
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": vec![entry; times],
    })
    .to_string();
    reg.put_raw(
        repo,
        &[],
        index.as_bytes(),
        OCI_INDEX,
        &SUBJECT.replace(':', "-"),
    );
}

#[test]
fn hostile_referrer_lists_cost_a_few_requests_and_a_short_message() {
    let reg = Registry::start();
    // A 4 MiB "bundle": the real attestation padded with spaces (still one JSON document).
    let mut bundle = std::fs::read(cosign().join("oci-attestation.sigstore.json")).unwrap();
    bundle.resize(4 << 20, b' ');
    hostile_referrers(&reg, "acme/many", &bundle, 120, 3_000);
    let ctx = TestContext::new();
    let image = format!("{}/acme/many:latest", reg.host());
    let run = ctx
        .pkg(&[
            "--verbose",
            "verify",
            &image,
            "--certificate-identity",
            "mallory@example.com",
            "--certificate-oidc-issuer",
            "https://github.com/login/oauth",
        ])
        .failure();
    let requests = run.stderr.lines().filter(|l| l.contains(" -> ")).count();
    assert!(requests < 40, "{requests} requests:\n{}", run.stderr);
    let blob_gets = run
        .stderr
        .lines()
        .filter(|l| l.contains("/blobs/") && l.contains(" -> 200"))
        .count();
    assert_eq!(blob_gets, 1, "the one bundle blob is read once");
    let message: String = run
        .stderr
        .lines()
        .filter(|l| !l.contains(" -> "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(message.len() < 6_000, "{} bytes:\n{message}", message.len());
}

#[test]
fn trust_material_that_is_not_a_regular_file_is_refused_unread() {
    let reg = Registry::start();
    let bundle = std::fs::read(cosign().join("oci-attestation.sigstore.json")).unwrap();
    publish(&reg, "acme/empty", Some(&bundle));
    let ctx = TestContext::new();
    let fifo = ctx.root().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let image = format!("{}/acme/empty:latest", reg.host());
    for root in ["/dev/zero", fifo.to_str().unwrap()] {
        let run = ctx.pkg(&[
            "verify",
            &image,
            "--certificate-identity",
            "cody@soyland.com",
            "--certificate-oidc-issuer",
            "https://github.com/login/oauth",
            "--trusted-root",
            root,
        ]);
        assert_ne!(run.code, 0, "{}", run.describe());
        run.says("not a regular file");
        let run = ctx.pkg(&["verify", &image, "--key", root]).failure_with(2);
        run.says("not a regular file");
    }
    // As a formula's [verify] key: the formula is refused by name, unread.
    for key in ["/dev/zero", fifo.to_str().unwrap()] {
        let text = crate::harness::Formula::new("empty")
            .version("1.0.0", &format!("{}/acme/empty", reg.host()), "latest")
            .to_toml();
        let (head, versions) = text.split_once("\n[versions").unwrap();
        ctx.write_formula(
            "empty",
            &format!("{head}\n[verify]\nkey = \"{key}\"\n\n[versions{versions}"),
        );
        ctx.pkg(&["install", "empty"])
            .failure()
            .says("not a regular file");
    }
}
