//! sigstore-rust's negative X.509 test certificates (sigstore-python's: every one signed by the
//! key of `bogus-root.pem`), each in its place in a bundle sigstore-js makes over the empty
//! image, logged by its mock Rekor, under a trust root sign.js writes: as the signing
//! certificate under the good root, only the good leaf gets past the certificate checks (and is
//! then held to the identity) — a leaf for server auth, without the code-signing usage or a key
//! usage allowing signatures, and a CA used as a leaf are refused; as the trust root's
//! authority for the good leaf, only the good root is taken — a root with non-critical basic
//! constraints or a key usage that may not sign certificates is refused as a trust root.

use std::path::Path;

use super::{SUBJECT, publish, sigstore_js};
use crate::harness::{Registry, TestContext};

/// `pkg verify` of the empty image with a bundle whose signing certificate is `leaf` (signed
/// with `key`) under a trust root naming `authority`: its stderr, having failed.
fn refusal(ctx: &TestContext, reg: &Registry, leaf: &str, key: &str, authority: &str) -> String {
    let x509 = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/sigstore/sigstore-rust/x509");
    let pem = |name: &str| x509.join(format!("{name}.pem"));
    let case = format!("{leaf}-under-{authority}");
    let signed = ctx.home.join(&case);
    sigstore_js(
        SUBJECT,
        &signed,
        Some([&pem(leaf), &pem(key), &pem(authority)]),
    );
    let bundle = std::fs::read(signed.join("bundle.sigstore.json")).unwrap();
    let repo = format!("bogus/{case}");
    publish(reg, &repo, Some(&bundle));
    ctx.pkg(&[
        "verify",
        &format!("{}/{repo}:latest", reg.host()),
        "--certificate-identity",
        "bogus.example.com",
        "--trusted-root",
        signed.join("trusted_root.json").to_str().unwrap(),
    ])
    .failure()
    .stderr
    .clone()
}

#[test]
fn sigstore_rusts_negative_certificates_are_refused_as_leaves_and_as_authorities() {
    let reg = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();

    // The positive control: chain, usages and log entry pass; its only name is a DNS name, not
    // the email or URI a Sigstore identity is, so it is refused for that alone.
    let good = refusal(&ctx, &reg, "bogus-leaf", "nonroot-privkey", "bogus-root");
    assert!(good.contains("identity"), "{good}");
    for check in ["chain", "key usage", "Eku", "CaUsed", "trust root"] {
        assert!(
            !good.contains(check),
            "the good leaf failed a check: {good}"
        );
    }

    // (signing certificate, its key, the refusal)
    let leaves = [
        (
            "bogus-leaf-invalid-eku",
            "nonroot-privkey",
            "RequiredEkuNotFound",
        ),
        (
            "bogus-leaf-missing-eku",
            "nonroot-privkey",
            "RequiredEkuNotFound",
        ),
        (
            "bogus-leaf-invalid-ku",
            "nonroot-privkey",
            "key usage without digitalSignature",
        ),
        ("bogus-intermediate", "nonroot-privkey", "CaUsedAsEndEntity"),
        (
            "bogus-intermediate-with-eku",
            "nonroot-privkey",
            "CaUsedAsEndEntity",
        ),
        ("bogus-root", "root-privkey", "CaUsedAsEndEntity"),
    ];
    for (leaf, key, why) in leaves {
        let said = refusal(&ctx, &reg, leaf, key, "bogus-root");
        assert!(said.contains(why), "{leaf}: wanted {why:?} in: {said}");
    }

    // (the trust root's authority, the refusal) for the good leaf.
    let roots = [
        (
            "bogus-root-noncritical-bc",
            "basic constraints not marked critical",
        ),
        ("bogus-root-missing-ku", "no key usage extension"),
        ("bogus-root-invalid-ku", "key usage without keyCertSign"),
        ("bogus-leaf", "CA:FALSE"),
    ];
    for (root, why) in roots {
        let said = refusal(&ctx, &reg, "bogus-leaf", "nonroot-privkey", root);
        assert!(
            said.contains("trust root") && said.contains(why),
            "{root}: wanted a trust root refused for {why:?}: {said}"
        );
    }
}
