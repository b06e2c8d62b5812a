//! Supply chain (issue 18): cosign's real OCI attestation, attached to the byte-exact empty
//! image it signs as an OCI 1.1 referrer under the fallback tag (the test registry, like GHCR,
//! has no referrers API), verified by `pkg verify` offline; a wrong signer, a tampered bundle and
//! no attachment each fail, saying why.

use std::path::{Path, PathBuf};

use crate::harness::{Registry, TestContext};

mod bounds;
mod certificates;

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// go-containerregistry's empty image, which cosign's test attestation is about.
const EMPTY_CONFIG: &str = r#"{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":null},"config":{}}"#;
const EMPTY_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":115,"digest":"sha256:5b943e2b943f6c81dbbd4e2eca5121f4fcc39139e3d1219d6d89bd925b77d9fe"},"layers":[]}"#;
const SUBJECT: &str = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";

fn cosign() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/sigstore/cosign")
}

/// The empty image at `repo:latest`, and (unless `bundle` is `None`) `bundle` attached to it as
/// a referrer: an artifact manifest whose subject is the image, listed in an index at the
/// fallback tag `sha256-<hex>`, as `cosign attest` and GitHub's attestations push it.
fn publish(reg: &Registry, repo: &str, bundle: Option<&[u8]>) {
    let image = reg.put_raw(
        repo,
        &[EMPTY_CONFIG.as_bytes()],
        EMPTY_MANIFEST.as_bytes(),
        DOCKER_MANIFEST,
        "latest",
    );
    assert_eq!(image, SUBJECT, "the empty image was not rebuilt byte-exact");
    let Some(bundle) = bundle else {
        return;
    };
    let digest = |b: &[u8]| crate::harness::sha256_digest(b);
    let referrer = referrer(bundle, 1);
    let referrer_digest = reg.put_raw(
        repo,
        &[b"{}", bundle],
        referrer.as_bytes(),
        OCI_MANIFEST,
        &digest(referrer.as_bytes()),
    );
    // cosign's fallback index leaves artifactType out of the descriptor: so does this one.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": referrer_digest, "size": referrer.len()}],
    })
    .to_string();
    let tag = SUBJECT.replace(':', "-");
    reg.put_raw(repo, &[], index.as_bytes(), OCI_INDEX, &tag);
}

/// A referrer manifest of the empty image holding `layers` copies of `bundle`.
fn referrer(bundle: &[u8], layers: usize) -> String {
    let digest = |b: &[u8]| crate::harness::sha256_digest(b);
    let layer =
        serde_json::json!({"mediaType": BUNDLE, "digest": digest(bundle), "size": bundle.len()});
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(b"{}"), "size": 2},
        "layers": vec![layer; layers],
        "subject": {"mediaType": DOCKER_MANIFEST, "digest": SUBJECT, "size": EMPTY_MANIFEST.len()},
    })
    .to_string()
}

#[test]
fn pkg_verify_checks_cosigns_real_attestation_found_as_a_referrer_and_says_why_it_refuses() {
    let reg = Registry::start();
    let bundle = std::fs::read(cosign().join("oci-attestation.sigstore.json")).unwrap();
    publish(&reg, "acme/empty", Some(&bundle));
    let ctx = TestContext::new();
    let image = format!("{}/acme/empty:latest", reg.host());
    let signer = [
        "--certificate-identity",
        "cody@soyland.com",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", image.as_str()];
        args.extend_from_slice(extra);
        ctx.pkg(&args)
    };
    // With the embedded production root, and with cosign's copy of it given.
    let ok = run(&signer).success();
    assert!(
        ok.stdout
            .contains("signed by cody@soyland.com (issuer https://github.com/login/oauth)")
            && ok
                .stdout
                .contains("predicate https://cosign.sigstore.dev/attestation/v1"),
        "{}",
        ok.describe()
    );
    let root = cosign().join("trusted_root_pgi.json");
    let mut with_root = signer.to_vec();
    with_root.extend(["--trusted-root", root.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&run(&with_root).success().stdout).unwrap();
    assert_eq!(doc["digest"], SUBJECT);
    assert_eq!(doc["signatures"][0]["signer"], "cody@soyland.com");
    // By digest too.
    ctx.pkg(&[
        "verify",
        &format!("{}/acme/empty@{SUBJECT}", reg.host()),
        signer[0],
        signer[1],
        signer[2],
        signer[3],
    ])
    .success();

    // Someone else, or another issuer: refused, naming what was wanted and what was found.
    run(&[
        "--certificate-identity",
        "mallory@example.com",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ])
    .failure()
    .says("identity mismatch: expected mallory@example.com, got cody@soyland.com");
    run(&[
        "--certificate-identity",
        "cody@soyland.com",
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
    ])
    .failure()
    .says("issuer mismatch");

    // A tampered bundle (one byte of the signed statement changed) is refused.
    let mut doc: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let payload = doc["dsseEnvelope"]["payload"].as_str().unwrap().to_owned();
    let flipped = if payload.starts_with('e') { "f" } else { "e" };
    doc["dsseEnvelope"]["payload"] =
        serde_json::Value::String(format!("{flipped}{}", &payload[1..]));
    publish(&reg, "acme/tampered", Some(doc.to_string().as_bytes()));
    ctx.pkg(&[
        "verify",
        &format!("{}/acme/tampered:latest", reg.host()),
        signer[0],
        signer[1],
        signer[2],
        signer[3],
    ])
    .failure()
    .says("no signature of");

    // Nothing attached: says where it looked.
    publish(&reg, "acme/bare", None);
    ctx.pkg(&[
        "verify",
        &format!("{}/acme/bare:latest", reg.host()),
        signer[0],
        signer[1],
        signer[2],
        signer[3],
    ])
    .failure()
    .says("no Sigstore bundle is attached");

    // Whose signature to accept must be said.
    ctx.pkg(&["verify", &image]).failure_with(2);
}

/// A formula's `[verify]` table: an install needs a signature meeting it, checked before any
/// layer is fetched; none found, a wrong signer, or (with --require-signatures) no policy at
/// all: nothing is installed, and the message says what was looked for and what was found.
#[test]
fn a_formula_with_a_verify_policy_installs_nothing_without_a_signature_that_meets_it() {
    let mut reg = Registry::start();
    let bundle = std::fs::read(cosign().join("oci-attestation.sigstore.json")).unwrap();
    publish(&reg, "acme/empty", Some(&bundle));
    reg.push(
        "acme/hello",
        "1.0.0",
        &crate::harness::Fixture::Image(crate::harness::ImageSpec::new("linux", "amd64").file(
            "bin/hello",
            "#!/bin/sh\necho hello\n",
            0o755,
        )),
    );
    let ctx = TestContext::new();
    let root = cosign().join("trusted_root_pgi.json");
    let verify = |identity: &str| {
        format!(
            "\n[verify]\nidentity = \"{identity}\"\nissuer = \"https://github.com/login/oauth\"\ntrust_root = \"{}\"\n",
            root.display()
        )
    };
    let formula = |name: &str, tag: &str, policy: &str| {
        let text = crate::harness::Formula::new(name)
            .version("1.0.0", &format!("{}/acme/{name}", reg.host()), tag)
            .to_toml();
        // The table goes before the versions.
        let (head, versions) = text.split_once("\n[versions").unwrap();
        ctx.write_formula(name, &format!("{head}{policy}\n[versions{versions}"));
    };

    // Signed by the right signer: verification passes (said), and only then does the install
    // go on (this image is go-containerregistry's empty one: it has no layers to install).
    formula("empty", "latest", &verify("cody@soyland.com"));
    ctx.pkg(&["install", "empty"])
        .failure()
        .says("Verified empty 1.0.0")
        .says("signed by cody@soyland.com")
        .says("no layers");
    // Someone else's policy: refused before anything is fetched.
    formula("empty", "latest", &verify("mallory@example.com"));
    ctx.pkg(&["install", "empty"])
        .failure()
        .says("its formula wants a signature by mallory@example.com")
        .says("identity mismatch");

    // Nothing attached to hello: nothing installed, and where pkg looked is said.
    formula("hello", "1.0.0", &verify("cody@soyland.com"));
    ctx.pkg(&["install", "hello"])
        .failure()
        .says("no Sigstore bundle is attached")
        .says("sha256-");
    assert!(
        ctx.cellar_versions("hello").is_empty(),
        "{}",
        ctx.prefix_listing()
    );

    // Without a policy it installs, unless every install must be signed.
    formula("hello", "1.0.0", "");
    ctx.pkg(&["--require-signatures", "install", "hello"])
        .failure()
        .says("has no [verify] policy");
    assert!(ctx.cellar_versions("hello").is_empty());
    ctx.pkg(&["install", "hello"]).success();

    // A [verify] table that names no one is a broken formula, said as such.
    formula("hello", "1.0.0", "\n[verify]\ngithub = \"not-a-repo\"\n");
    ctx.pkg(&["info", "hello"]).says("is not OWNER/REPO");

    // Offline, the signatures found before are verified again from the cache; a cache that
    // never saw them cannot vouch for anything.
    formula("empty", "latest", &verify("cody@soyland.com"));
    ctx.pkg(&["install", "empty"])
        .failure()
        .says("Verified empty 1.0.0");
    reg.stop();
    ctx.pkg(&["--offline", "install", "empty"])
        .failure()
        .says("Verified empty 1.0.0")
        .says("no layers");
    let mut fresh = ctx.sharing_cache();
    fresh.cache = ctx.home.join("other-cache");
    fresh
        .pkg(&["--offline", "install", "empty"])
        .failure()
        .says("--offline");
}

/// `pkg bottle --push … --attach-bundle FILE` publishes the bundle as a referrer of the pushed
/// image under the fallback tag, where `pkg verify` finds it (and refuses this one: it signs
/// another image); a file that is not a bundle is refused before anything is pushed.
#[test]
fn bottle_attaches_a_bundle_as_a_referrer_that_verify_finds_and_holds_to_its_subject() {
    let reg = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let dir = ctx.home.join("out");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    let bundle = cosign().join("oci-attestation.sigstore.json");
    let image = format!("{}/acme/tool:1.0.0", reg.host());
    let dir_s = dir.to_str().unwrap();
    let bundle_s = bundle.to_str().unwrap();
    let out = ctx.home.join("tool.oci");
    ctx.pkg(&[
        "bottle",
        dir_s,
        "--name",
        "tool",
        "--version",
        "1.0.0",
        "--output",
        out.to_str().unwrap(),
        "--push",
        &image,
        "--attach-bundle",
        bundle_s,
    ])
    .success()
    .says("Attached");
    let tags = ctx
        .pkg(&["search", "--remote", &format!("{}/acme/tool", reg.host())])
        .success()
        .stdout;
    assert!(
        tags.lines().any(|t| t.starts_with("sha256-")),
        "no referrers tag: {tags}"
    );
    ctx.pkg(&[
        "verify",
        &image,
        "--certificate-identity",
        "cody@soyland.com",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ])
    .failure()
    .says("artifact mismatch");

    // Not a bundle: exit 2, and the repository was never pushed to.
    let junk = ctx.home.join("junk.json");
    std::fs::write(&junk, "{\"not\": \"a bundle\"}").unwrap();
    ctx.pkg(&[
        "bottle",
        dir_s,
        "--name",
        "other",
        "--version",
        "1.0.0",
        "--output",
        ctx.home.join("other.oci").to_str().unwrap(),
        "--push",
        &format!("{}/acme/other:1.0.0", reg.host()),
        "--attach-bundle",
        junk.to_str().unwrap(),
    ])
    .failure_with(2)
    .says("not a Sigstore bundle");
    ctx.pkg(&["search", "--remote", &format!("{}/acme/other", reg.host())])
        .failure();
}

/// sigstore-js (tests/it/supply/sign.js) signs `digest` into `out` (bundle.sigstore.json,
/// key.pub, trusted_root.json): with a fresh key, or with `certificate`, its private key and
/// the certificate authority the trust root names.
fn sigstore_js(digest: &str, out: &Path, certificate: Option<[&Path; 3]>) {
    std::fs::create_dir_all(out).unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut node = std::process::Command::new("node");
    node.arg(here.join("tests/it/supply/sign.js"))
        .arg(digest.trim_start_matches("sha256:"))
        .arg(out)
        .env("NODE_PATH", here.join("target/sigstore-js/node_modules"));
    for file in certificate.into_iter().flatten() {
        node.arg(file);
    }
    let node = node.output().unwrap();
    assert!(
        node.status.success(),
        "sigstore-js could not sign (scripts/test installs it into target/sigstore-js): {}",
        String::from_utf8_lossy(&node.stderr)
    );
}

/// A package tree whose `bin/tool` prints `says`.
fn tool_tree(ctx: &TestContext, says: &str) -> PathBuf {
    let dir = ctx.home.join("out");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/tool"), format!("#!/bin/sh\necho {says}\n")).unwrap();
    std::fs::set_permissions(
        dir.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// A keyed bundle made here by a real Sigstore client — sigstore-js's DSSE bundle builder with a
/// local key, its log entry from @sigstore/mock's Rekor (whose key goes into the trust root
/// written beside it) — over a package pushed with `pkg bottle`, attached with
/// `--attach-bundle`: a formula with a `key` policy installs it, and runs it; another key, or the
/// bundle of another image, installs nothing.
#[test]
fn a_keyed_bundle_signed_by_sigstore_js_installs_a_real_package_with_a_key_policy() {
    let reg = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let dir = tool_tree(&ctx, "signed tool");
    let image = format!("{}/acme/tool:1.0.0", reg.host());
    let out = ctx.home.join("tool.oci");
    let bottle = |extra: &[&str]| {
        let mut args = vec![
            "bottle",
            dir.to_str().unwrap(),
            "--name",
            "tool",
            "--version",
            "1.0.0",
            "--output",
            out.to_str().unwrap(),
            "--push",
            image.as_str(),
            "--json",
        ];
        args.extend_from_slice(extra);
        ctx.pkg(&args).success()
    };
    let pushed: serde_json::Value = serde_json::from_str(&bottle(&[]).stdout).unwrap();
    let digest = pushed["push"]["digest"].as_str().unwrap().to_owned();

    // sigstore-js signs the pushed manifest's digest.
    let signed = ctx.home.join("signed");
    sigstore_js(&digest, &signed, None);
    let bundle = signed.join("bundle.sigstore.json");
    bottle(&["--attach-bundle", bundle.to_str().unwrap()]);

    // The formula's policy: that key, that trust root, SLSA provenance.
    let formula = |key: &Path| {
        let text = crate::harness::Formula::new("tool")
            .version("1.0.0", &format!("{}/acme/tool", reg.host()), "1.0.0")
            .to_toml();
        let (head, versions) = text.split_once("\n[versions").unwrap();
        ctx.write_formula(
            "tool",
            &format!(
                "{head}\n[verify]\nkey = \"{}\"\ntrust_root = \"{}\"\npredicate_types = [\"https://slsa.dev/provenance/v1\"]\n\n[versions{versions}",
                key.display(),
                signed.join("trusted_root.json").display()
            ),
        );
    };
    formula(&signed.join("key.pub"));
    ctx.pkg(&["install", "tool"])
        .success()
        .says(&format!("Verified tool 1.0.0 ({digest})"))
        .says("https://slsa.dev/provenance/v1");
    assert_eq!(crate::faults::run_bin(&ctx, "tool"), "signed tool");
    ctx.pkg(&[
        "verify",
        "tool",
        "--key",
        signed.join("key.pub").to_str().unwrap(),
        "--trusted-root",
        signed.join("trusted_root.json").to_str().unwrap(),
    ])
    .success()
    .says(&format!("Verified {}/acme/tool@{digest}", reg.host()));
    ctx.pkg(&["uninstall", "tool"]).success();

    // Another key: nothing installed.
    let other = ctx.home.join("other.pub");
    std::fs::write(
        &other,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQkYT94UV644AiKyIbfISywgpGbv7\nF6cscnoldD9bjwuZ2Fs9RgEdwytQR0ZXpYVy6PfkGUf137TUxLSWb4utzg==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    formula(&other);
    ctx.pkg(&["install", "tool"])
        .failure()
        .says("its formula wants a signature by the key");
    assert!(
        ctx.cellar_versions("tool").is_empty(),
        "{}",
        ctx.prefix_listing()
    );
}

/// sigstore-rs (sigstore's Rust cosign; scripts/test builds it from tests/it/supply/cosign-rs).
fn cosign_rs(args: &[&str]) -> std::process::Output {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cosign-rs/debug/pkg-test-cosign-rs");
    std::process::Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {} (scripts/test builds it): {e}", bin.display()))
}

/// A legacy cosign signature (`sha256-<hex>.sig`, a simple-signing layer, the signature in an
/// annotation, no log entry) written by sigstore-rs with its own key over a package pushed with
/// `pkg bottle`: pkg finds it, refuses to trust a key no log saw unless told
/// (`--insecure-ignore-tlog`, `insecure_ignore_tlog = true`), then agrees with sigstore-rs's
/// own verdict; another key, or the signature of another manifest put under this one's tag,
/// installs nothing.
#[test]
fn a_legacy_cosign_signature_by_sigstore_rs_is_found_under_the_sig_tag_and_held_to_its_key() {
    use crate::harness::token::{PASSWORD, USERNAME};
    let reg = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let dir = tool_tree(&ctx, "legacy tool");
    let push = |version: &str| -> String {
        let out = ctx.home.join(format!("tool-{version}.oci"));
        let image = format!("{}/acme/tool:{version}", reg.host());
        let pushed = ctx
            .pkg(&[
                "bottle",
                dir.to_str().unwrap(),
                "--name",
                "tool",
                "--version",
                version,
                "--output",
                out.to_str().unwrap(),
                "--push",
                image.as_str(),
                "--json",
            ])
            .success();
        let v: serde_json::Value = serde_json::from_str(&pushed.stdout).unwrap();
        v["push"]["digest"].as_str().unwrap().to_owned()
    };
    let first = push("1.0.0");
    let second = push("2.0.0");
    let keys = ctx.home.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let ok = |o: std::process::Output| {
        assert!(
            o.status.success(),
            "sigstore-rs: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(cosign_rs(&["keygen", keys.to_str().unwrap()]));
    let key = keys.join("cosign.key");
    let public = keys.join("cosign.pub");
    for d in [&first, &second] {
        ok(cosign_rs(&[
            "sign",
            key.to_str().unwrap(),
            &format!("{}/acme/tool@{d}", reg.host()),
            USERNAME,
            PASSWORD,
        ]));
    }
    let reference = format!("{}/acme/tool@{first}", reg.host());
    // The peer's verdict.
    ok(cosign_rs(&[
        "verify",
        public.to_str().unwrap(),
        &reference,
        USERNAME,
        PASSWORD,
    ]));

    ctx.pkg(&["verify", &reference, "--key", public.to_str().unwrap()])
        .failure()
        .says("no transparency-log entry")
        .says("insecure_ignore_tlog");
    ctx.pkg(&[
        "verify",
        &reference,
        "--key",
        public.to_str().unwrap(),
        "--insecure-ignore-tlog",
    ])
    .success()
    .says(&format!(
        "Verified {reference}: signed by {}",
        public.display()
    ));
    let other = ctx.home.join("other.pub");
    std::fs::write(
        &other,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQkYT94UV644AiKyIbfISywgpGbv7\nF6cscnoldD9bjwuZ2Fs9RgEdwytQR0ZXpYVy6PfkGUf137TUxLSWb4utzg==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    ctx.pkg(&[
        "verify",
        &reference,
        "--key",
        other.to_str().unwrap(),
        "--insecure-ignore-tlog",
    ])
    .failure()
    .says("does not verify with the key");

    // A formula with the key policy installs it only when it accepts an unlogged key.
    let formula = |extra: &str| {
        let text = crate::harness::Formula::new("tool")
            .version("1.0.0", &format!("{}/acme/tool", reg.host()), "1.0.0")
            .to_toml();
        let (head, versions) = text.split_once("\n[versions").unwrap();
        ctx.write_formula(
            "tool",
            &format!(
                "{head}\n[verify]\nkey = \"{}\"\n{extra}\n[versions{versions}",
                public.display()
            ),
        );
    };
    formula("");
    ctx.pkg(&["install", "tool"])
        .failure()
        .says("insecure_ignore_tlog");
    assert!(
        ctx.cellar_versions("tool").is_empty(),
        "{}",
        ctx.prefix_listing()
    );
    formula("insecure_ignore_tlog = true\n");
    ctx.pkg(&["install", "tool"])
        .success()
        .says(&format!("Verified tool 1.0.0 ({first})"));
    assert_eq!(crate::faults::run_bin(&ctx, "tool"), "legacy tool");
    ctx.pkg(&["uninstall", "tool"]).success();

    // The second manifest's signature, put under the first's `.sig` tag: a real signature by
    // the right key, over another manifest.
    let tags = reg
        .storage()
        .join("docker/registry/v2/repositories/acme/tool/_manifests/tags");
    let link = |d: &str| {
        tags.join(format!(
            "sha256-{}.sig/current/link",
            d.trim_start_matches("sha256:")
        ))
    };
    std::fs::copy(link(&second), link(&first)).unwrap();
    ctx.pkg(&["install", "tool"]).failure().says(&format!(
        "the signature's payload names {second}, not {first}"
    ));
    assert!(
        ctx.cellar_versions("tool").is_empty(),
        "{}",
        ctx.prefix_listing()
    );
    // sigstore-rs agrees.
    assert!(
        !cosign_rs(&[
            "verify",
            public.to_str().unwrap(),
            &reference,
            USERNAME,
            PASSWORD
        ])
        .status
        .success()
    );
}
