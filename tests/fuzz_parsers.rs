//! Property tests over every parser that reads text from outside pkg: formulae, manifests and
//! indexes, `WWW-Authenticate` challenges, repository references and digests, and the command
//! line's `REGISTRY/REPO:TAG@DIGEST` references and `NAME@REQ` requests. Arbitrary input
//! must give a value or an error, never a panic; and what is accepted is canonical (a digest or a
//! repository prints back as it was read, and is safe in a URL or a path).
//!
//! Inputs are random strings and, to reach deeper code, mutations of valid documents. Runs in
//! CI with the rest of `cargo test`; `PROPTEST_CASES` raises the case count for a longer search.

use proptest::prelude::*;

use pkg::digest::Digest;
use pkg::formula::{Formula, Origin};
use pkg::registry::Repository;
use pkg::registry::auth::parse_challenges;
use pkg::registry::manifest;
use pkg::resolve::Request;

const FORMULA: &str = r#"name = "hello"
desc = "Says hello"
homepage = "https://example.com"
license = "MIT"
bin = ["bin/hello"]

[versions."1.0.0"]
repository = "ghcr.io/acme/hello"
tag = "1.0.0"
digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
depends_on = { lib = "^1" }
"#;

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":10,
"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}"#;

const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,
"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
"platform":{"os":"linux","architecture":"amd64"}}]}"#;

const CONTENT_TYPES: [&str; 6] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/json; charset=utf-8",
    "",
];

/// A valid document with a few bytes replaced, inserted or removed.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8).prop_map(
        move |edits| {
            let mut bytes = base.as_bytes().to_vec();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            bytes
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn formula_parser_never_panics(text in ".{0,400}") {
        let _ = Formula::parse(&text, Origin::Embedded, None);
        let _ = Formula::parse(&text, Origin::Embedded, Some("hello"));
    }

    #[test]
    fn formula_parser_never_panics_on_mutated_formulae(bytes in mutated(FORMULA)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Formula::parse(&text, Origin::Embedded, Some("hello"));
    }

    #[test]
    fn manifest_parser_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        ct in prop::sample::select(&CONTENT_TYPES[..]),
    ) {
        let _ = manifest::parse(&bytes, Some(ct));
        let _ = manifest::parse(&bytes, None);
    }

    #[test]
    fn manifest_parser_never_panics_on_mutated_documents(
        bytes in prop_oneof![mutated(MANIFEST), mutated(INDEX)],
        ct in prop::sample::select(&CONTENT_TYPES[..]),
    ) {
        if let Ok(manifest::Document::Index(index)) = manifest::parse(&bytes, Some(ct)) {
            let _ = index.pick(&pkg::platform::Platform::host());
        }
    }

    #[test]
    fn challenge_parser_never_panics(
        headers in prop::collection::vec(
            prop_oneof![
                ".{0,200}",
                r#"(Bearer|Basic|bearer| )[ ,]*(realm|service|scope|error)?=?"?[^"]{0,40}"?[ ,]*"#,
            ],
            0..4,
        ),
    ) {
        let challenges = parse_challenges(headers.iter().map(String::as_str));
        for c in challenges {
            prop_assert_eq!(c.scheme.to_ascii_lowercase(), c.scheme.clone());
            for (name, _) in &c.params {
                prop_assert_eq!(name.to_ascii_lowercase(), name.clone());
            }
        }
    }

    #[test]
    fn repository_parser_accepts_only_names_safe_in_a_url(text in r"[a-zA-Z0-9.:/_\-?#%@ ]{0,80}") {
        if let Ok(repo) = text.parse::<Repository>() {
            prop_assert_eq!(repo.to_string(), text.clone());
            let name_ok = repo.name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
                && repo.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
            prop_assert!(name_ok, "{} accepted", text);
        }
    }

    #[test]
    fn repository_parser_never_panics(text in ".{0,300}") {
        let _ = text.parse::<Repository>();
    }

    #[test]
    fn digest_parser_accepts_only_canonical_digests(
        text in prop_oneof![
            ".{0,140}",
            "(sha256|sha512|sha384|md5|SHA256):[0-9a-fA-F./%]{0,130}",
        ],
    ) {
        if let Ok(d) = text.parse::<Digest>() {
            prop_assert_eq!(d.to_string(), text.clone());
            let (algorithm, hex) = text.split_once(':').unwrap();
            let len = match algorithm { "sha256" => 64, "sha512" => 128, _ => 0 };
            prop_assert_eq!(hex.len(), len);
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn reference_parser_never_panics(
        text in prop_oneof![
            ".{0,200}",
            concat!(
                r"(ghcr\.io|127\.0\.0\.1:5000|localhost|[a-zA-Z0-9.:\[\]-]{0,20})",
                r"/[a-zA-Z0-9._/:@-]{0,40}",
                r"(:[a-zA-Z0-9._:/-]{0,20})?",
                r"(@(sha256|sha512|md5)?:?[0-9a-fA-F]{0,130})?",
            ),
        ],
    ) {
        if let Ok(reference) = pkg::references::parse(&text) {
            // Whatever is accepted names a valid repository and can be turned into a package.
            let repository = reference.repository.to_string();
            prop_assert!(repository.parse::<Repository>().is_ok(), "{}", repository);
            if let Some(digest) = &reference.digest {
                prop_assert_eq!(&reference.tag, &digest.to_string());
            }
            let _ = reference.name();
            let _ = reference.version();
        }
    }

    #[test]
    fn request_parser_never_panics(
        text in prop_oneof![
            ".{0,120}",
            r"[a-z0-9-]{0,12}@[ ]?(\^|~|=|>=|<=|<|>|\*)?[0-9.xX*]{0,12}(-[a-z0-9.]{0,6})?(, ?(<|>)=?[0-9.]{0,8})?",
        ],
    ) {
        if let Ok(request) = Request::parse(&text) {
            let (name, spelled) = match text.split_once('@') {
                Some((name, spec)) => (name, Some(spec.trim())),
                None => (text.as_str(), None),
            };
            prop_assert_eq!(request.name.as_str(), name);
            prop_assert_eq!(request.spelled.as_deref(), spelled);
        }
    }
}
