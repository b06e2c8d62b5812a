use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/sigstore")
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Every case of sigstore-conformance's bundle suite: each plain directory verifies, each
/// `_fail` directory is refused (with its own artifact, identity, issuer, key or trust root when
/// it has them, else the suite's defaults).
#[test]
fn every_conformance_case_verifies_or_is_refused_as_the_suite_says() {
    let suite = fixtures().join("conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&suite)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("bundle.sigstore.json").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() > 60,
        "the suite is not all there: {}",
        cases.len()
    );
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let bundle = std::fs::read(case.join("bundle.sigstore.json")).unwrap();
        let artifact = std::fs::read(case.join("artifact"))
            .unwrap_or_else(|_| std::fs::read(suite.join("a.txt")).unwrap());
        let signer = match std::fs::read_to_string(case.join("key.pub")) {
            Ok(pem) => Signer::Key {
                pem,
                path: case.join("key.pub"),
            },
            Err(_) => Signer::Identity {
                identity: read(&case.join("identity")).unwrap_or_else(|| "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main".into()),
                issuer: Some(
                    read(&case.join("issuer"))
                        .unwrap_or_else(|| "https://token.actions.githubusercontent.com".into()),
                ),
            },
        };
        let trust_root = Some(case.join("trusted_root.json")).filter(|p| p.exists());
        let policy = Policy {
            signer,
            predicate_types: Vec::new(),
            trust_root,
            insecure_ignore_tlog: false,
        };
        let result = verify(&bundle, Subject::Bytes(&artifact), &policy);
        let should_fail = name.ends_with("_fail");
        if result.is_err() != should_fail {
            wrong.push(format!("{name}: {:?}", result.map(|s| s.signer)));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases went the wrong way:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// sigstore-rust's keyed production bundle verifies with its key and no other; its bundle with
/// a bad CT key in the trust root is refused.
#[test]
fn sigstore_rusts_keyed_bundle_verifies_and_its_bad_ct_key_case_is_refused() {
    let dir = fixtures().join("sigstore-rust");
    let keyed = dir.join("managed-key");
    let bundle = std::fs::read(keyed.join("bundle.sigstore.json")).unwrap();
    let artifact = std::fs::read(keyed.join("artifact.txt")).unwrap();
    let policy = |pem: String| Policy {
        signer: Signer::Key {
            pem,
            path: keyed.join("key.pub"),
        },
        predicate_types: Vec::new(),
        trust_root: None,
        insecure_ignore_tlog: false,
    };
    let key = std::fs::read_to_string(keyed.join("key.pub")).unwrap();
    verify(&bundle, Subject::Bytes(&artifact), &policy(key.clone())).unwrap();
    assert!(verify(&bundle, Subject::Bytes(b"other bytes"), &policy(key)).is_err());
    // A P-256 key made for this test: not the bundle's.
    let other = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQkYT94UV644AiKyIbfISywgpGbv7\nF6cscnoldD9bjwuZ2Fs9RgEdwytQR0ZXpYVy6PfkGUf137TUxLSWb4utzg==\n-----END PUBLIC KEY-----\n".to_owned();
    assert!(verify(&bundle, Subject::Bytes(&artifact), &policy(other)).is_err());

    let bad = dir.join("invalid-ct-key_fail");
    let refused = verify(
        &std::fs::read(bad.join("bundle.sigstore.json")).unwrap(),
        Subject::Bytes(b"anything"),
        &Policy {
            signer: Signer::Identity {
                identity: "x".into(),
                issuer: Some("y".into()),
            },
            predicate_types: Vec::new(),
            trust_root: Some(bad.join("trusted_root.json")),
            insecure_ignore_tlog: false,
        },
    );
    assert!(refused.is_err());
}

/// A policy's predicate types are checked by pkg, after the signature verified.
#[test]
fn a_predicate_type_the_policy_does_not_name_is_refused() {
    let cosign = fixtures().join("cosign");
    let bundle = std::fs::read(cosign.join("oci-attestation.sigstore.json")).unwrap();
    let subject: Digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
        .parse()
        .unwrap();
    let policy = |types: &[&str]| Policy {
        signer: Signer::Identity {
            identity: "cody@soyland.com".into(),
            issuer: Some("https://github.com/login/oauth".into()),
        },
        predicate_types: types.iter().map(|t| t.to_string()).collect(),
        trust_root: Some(cosign.join("trusted_root_pgi.json")),
        insecure_ignore_tlog: false,
    };
    let signed = verify(&bundle, Subject::Digest(&subject), &policy(&[])).unwrap();
    assert_eq!(
        signed.predicate_type.as_deref(),
        Some("https://cosign.sigstore.dev/attestation/v1")
    );
    let err = verify(
        &bundle,
        Subject::Digest(&subject),
        &policy(&["https://slsa.dev/provenance/v1"]),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::Predicate { .. }), "{err}");
    let other: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    assert!(verify(&bundle, Subject::Digest(&other), &policy(&[])).is_err());
}

/// sigstore-rust's production bundles: a cosign v3 blob signature (an email identity) and a
/// GitHub Actions conda attestation, matched with the GitHub-repository signer pkg implements
/// itself; another repository, or another workflow, is refused.
#[test]
fn sigstore_rusts_production_bundles_verify_and_a_github_policy_holds_to_its_repository() {
    let dir = fixtures().join("sigstore-rust/bundles");
    let blob = std::fs::read(dir.join("cosign-v3-blob.txt")).unwrap();
    let signed = verify(
        &std::fs::read(dir.join("cosign-v3-blob.sigstore.json")).unwrap(),
        Subject::Bytes(&blob),
        &Policy {
            signer: Signer::Identity {
                identity: "w.vollprecht@gmail.com".into(),
                issuer: Some("https://github.com/login/oauth".into()),
            },
            predicate_types: Vec::new(),
            trust_root: None,
            insecure_ignore_tlog: false,
        },
    )
    .unwrap();
    assert_eq!(signed.signer, "w.vollprecht@gmail.com");

    let bundle = std::fs::read(dir.join("conda-attestation.sigstore.json")).unwrap();
    let conda = std::fs::read(dir.join("signed-package-2.1.0-hb0f4dca_0.conda")).unwrap();
    let github = |repository: &str, workflow: Option<&str>| Policy {
        signer: Signer::GitHub {
            repository: repository.into(),
            workflow: workflow.map(str::to_owned),
        },
        predicate_types: vec![
            "https://schemas.conda.org/attestations-publish-1.schema.json".into(),
        ],
        trust_root: None,
        insecure_ignore_tlog: false,
    };
    let signed = verify(
        &bundle,
        Subject::Bytes(&conda),
        &github("prefix-dev/sigstore-example", None),
    )
    .unwrap();
    assert_eq!(
        signed.signer,
        "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"
    );
    verify(
        &bundle,
        Subject::Bytes(&conda),
        &github(
            "prefix-dev/sigstore-example",
            Some(".github/workflows/action.yaml"),
        ),
    )
    .unwrap();
    for (repo, workflow) in [
        ("prefix-dev/sigstore", None),
        (
            "prefix-dev/sigstore-example",
            Some(".github/workflows/release.yml"),
        ),
    ] {
        let err = verify(&bundle, Subject::Bytes(&conda), &github(repo, workflow)).unwrap_err();
        assert!(matches!(err, VerifyError::Signer { .. }), "{repo}: {err}");
    }
}

/// A GitHub release attestation from GitHub's own Sigstore instance (RFC 3161 timestamps, no
/// log entry, a certificate naming no issuer) verifies against GitHub's trust root for its
/// identity alone, over one of the release's files; under the public-good root it is refused.
#[test]
fn a_github_instance_release_attestation_verifies_with_githubs_trust_root() {
    let dir = fixtures().join("sigstore-rust");
    let bundle = std::fs::read(dir.join("timestamps/github_sha384_bundle.json")).unwrap();
    // communique-x86_64-unknown-linux-gnu.tar.gz, one of the statement's subjects.
    let subject: Digest = "sha256:b958c6046bab52febf958c94974e1ffcc450bff78c28d7233e179bfd73828912"
        .parse()
        .unwrap();
    let policy = |root: &str| Policy {
        signer: Signer::Identity {
            identity: "https://dotcom.releases.github.com".into(),
            issuer: None,
        },
        predicate_types: vec!["https://in-toto.io/attestation/release/v0.2".into()],
        trust_root: Some(dir.join(root)),
        insecure_ignore_tlog: false,
    };
    let signed = verify(
        &bundle,
        Subject::Digest(&subject),
        &policy("trust-roots/trusted_root_github.json"),
    )
    .unwrap();
    assert_eq!(signed.signer, "https://dotcom.releases.github.com");
    assert!(signed.time.is_some(), "the timestamp authority's time");
    assert!(
        verify(
            &bundle,
            Subject::Digest(&subject),
            &policy("trust-roots/trusted_root.json")
        )
        .is_err()
    );
}

/// The real v0.1 conformance signature (a Fulcio certificate chain, Rekor's signed entry
/// timestamp) written back as a legacy cosign `.sig` layer's annotations — the inclusion proof
/// dropped, as legacy signatures carry none — is read back into the bundle cosign reads and
/// verifies over its payload; a signed entry timestamp of another entry, or another payload,
/// is refused.
#[test]
fn a_legacy_signature_with_a_rekor_bundle_verifies_by_its_signed_entry_timestamp() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let suite = fixtures().join("conformance");
    let bundle: serde_json::Value = serde_json::from_slice(
        &std::fs::read(suite.join("happy-path-v0.1/bundle.sigstore.json")).unwrap(),
    )
    .unwrap();
    let payload = std::fs::read(suite.join("a.txt")).unwrap();
    let pem = |raw: &serde_json::Value| {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            raw.as_str().unwrap()
        )
    };
    let certs = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
        .as_array()
        .unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let log_id: String = b64
        .decode(entry["logId"]["keyId"].as_str().unwrap())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let annotations = |set: &str| {
        serde_json::json!({
            "dev.cosignproject.cosign/signature": bundle["messageSignature"]["signature"],
            "dev.sigstore.cosign/certificate": pem(&certs[0]["rawBytes"]),
            "dev.sigstore.cosign/chain": certs[1..].iter().map(|c| pem(&c["rawBytes"])).collect::<String>(),
            "dev.sigstore.cosign/bundle": serde_json::json!({
                "SignedEntryTimestamp": set,
                "Payload": {
                    "body": entry["canonicalizedBody"],
                    "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
                    "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
                    "logID": log_id,
                }
            }).to_string(),
        })
    };
    let policy = Policy {
        signer: Signer::Identity {
            identity: "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main".into(),
            issuer: Some(GITHUB_ISSUER.into()),
        },
        predicate_types: Vec::new(),
        trust_root: None,
        insecure_ignore_tlog: false,
    };
    let set = entry["inclusionPromise"]["signedEntryTimestamp"]
        .as_str()
        .unwrap();
    let record = |payload: &[u8], set: &str| {
        serde_json::to_vec(&legacy::Record::from_layer(payload, &annotations(set)).unwrap())
            .unwrap()
    };
    let signed = verify(&record(&payload, set), Subject::Bytes(&payload), &policy).unwrap();
    assert!(signed.time.is_some(), "{signed:?}");
    // Another entry's signed entry timestamp.
    let other: serde_json::Value = serde_json::from_slice(
        &std::fs::read(suite.join("happy-path-v0.3/bundle.sigstore.json")).unwrap(),
    )
    .unwrap();
    let other_set =
        other["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"]
            .as_str()
            .unwrap();
    assert!(
        verify(
            &record(&payload, other_set),
            Subject::Bytes(&payload),
            &policy
        )
        .is_err()
    );
    // Another payload under the same signature.
    let r = verify(
        &record(b"another payload", set),
        Subject::Bytes(b"another payload"),
        &policy,
    );
    assert!(r.is_err(), "{r:?}");
}

/// Every real trust root the fixtures carry — the embedded production root, sigstore-rust's
/// production, staging and GitHub roots, cosign's, and each one a passing conformance case
/// brings — has CA certificates for authorities: pkg's check of them refuses none.
#[test]
fn every_real_trust_root_passes_the_authority_check() {
    let mut roots = vec![
        fixtures().join("sigstore-rust/trust-roots/trusted_root.json"),
        fixtures().join("sigstore-rust/trust-roots/trusted_root_staging.json"),
        fixtures().join("sigstore-rust/trust-roots/trusted_root_github.json"),
        fixtures().join("cosign/trusted_root_pgi.json"),
    ];
    for case in std::fs::read_dir(fixtures().join("conformance"))
        .unwrap()
        .flatten()
    {
        let root = case.path().join("trusted_root.json");
        if root.exists() && !case.file_name().to_string_lossy().ends_with("_fail") {
            roots.push(root);
        }
    }
    assert!(roots.len() > 8, "{roots:?}");
    let mut authorities = trust_root(None).unwrap().certificate_authorities.len();
    for root in &roots {
        match trust_root(Some(root)) {
            Ok(r) => authorities += r.certificate_authorities.len(),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(authorities > 10, "only {authorities} authorities checked");
}
