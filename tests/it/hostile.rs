//! Hostile input end to end: registry answers rewritten by the proxy (oversized, contradictory,
//! malformed, other digest algorithms, digests with path characters, bad challenges, a realm
//! aimed at another internal host) and tarballs pushed as real layers (`..`, absolute paths,
//! symlinks and hard links out of the keg, devices, setuid, duplicates, long names, truncated
//! entries, bombs). pkg must fail cleanly or sanitize, install nothing half-way, and never write
//! outside its staging directory.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::faults::{Rig, assert_nothing_installed, files_under, host_platform, run_bin};
use crate::harness::layout::{LAYER_TYPE, gzip};
use crate::harness::proxy::{Fault, Response, Times};
use crate::harness::{Fixture, Formula, ImageSpec, TestContext};

fn sha512_digest(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

// ---------------------------------------------------------------------------------------------
// Registry answers

/// Rewrites the manifest pkg receives (200 answers only) with `f` on its JSON.
fn rewrite_manifest(rig: &Rig, f: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) {
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::rewrite(move |r: &mut Response| {
            if r.status != 200 {
                return;
            }
            let mut json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            f(&mut json);
            r.set_body(serde_json::to_vec(&json).unwrap());
        }),
    );
}

/// Manifests that cannot be right are refused with what is wrong, not a misleading symptom: both
/// `layers` and `manifests`, no layers at all, a layer described as 0 bytes (whose digest is
/// not the empty blob's, so it would read as a digest mismatch).
#[test]
fn manifests_that_cannot_be_right_are_refused_saying_why() {
    type Edit = Box<dyn Fn(&mut serde_json::Value) + Send + Sync>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "both",
            Box::new(|m| m["manifests"] = serde_json::json!([])),
            "has both `layers` and `manifests`",
        ),
        (
            "nolayers",
            Box::new(|m| m["layers"] = serde_json::json!([])),
            "is an image with no layers",
        ),
        (
            "zerosize",
            Box::new(|m| m["layers"][0]["size"] = serde_json::json!(0)),
            "is described as 0 bytes long",
        ),
    ];
    for (case, edit, says) in cases {
        let rig = Rig::start();
        rig.publish("hello", &["1.0.0"], 1024);
        rewrite_manifest(&rig, move |m| {
            if m.get("layers").is_some() {
                edit(m)
            }
        });
        let run = rig.ctx.pkg(&["install", "hello"]);
        assert_eq!(run.code, 1, "{case}: {}", run.output());
        assert!(run.stderr.contains(says), "{case}: {}", run.stderr);
        assert!(
            !run.stderr.contains("SHA-256 mismatch"),
            "{case}: {}",
            run.stderr
        );
        assert_nothing_installed(&rig.ctx, "hello");
    }
}

/// An index of 10,000 entries, none for this host: the message quotes a dozen and counts the rest.
#[test]
fn an_index_with_no_match_is_quoted_briefly() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::rewrite(|r: &mut Response| {
            if r.status != 200 {
                return;
            }
            let entries: Vec<serde_json::Value> = (0..10_000)
                .map(|i| {
                    serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": format!("sha256:{:064x}", i),
                        "size": 100,
                        "platform": {"os": "plan9", "architecture": format!("arch{i}")}
                    })
                })
                .collect();
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": entries,
            });
            r.set_header("Content-Type", "application/vnd.oci.image.index.v1+json");
            r.set_body(serde_json::to_vec(&index).unwrap());
        }),
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("no entry of the image index fits")
        .says("plan9/arch0")
        .says("and 9988 more");
    assert!(
        run.stderr.len() < 4_000,
        "{} bytes of error",
        run.stderr.len()
    );
    assert_nothing_installed(&rig.ctx, "hello");
}

#[test]
fn an_oversized_manifest_is_refused_at_the_cap() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::rewrite(|r: &mut Response| {
            if r.status == 200 {
                let mut body = br#"{"schemaVersion":2,"pad":""#.to_vec();
                body.resize(5 << 20, b'x');
                body.extend_from_slice(br#""}"#);
                r.set_body(body);
            }
        }),
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("larger than the 4194304-byte limit");
    assert_nothing_installed(&rig.ctx, "hello");
}

#[test]
fn an_oversized_token_answer_is_refused_at_the_cap() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rig.proxy.token.on(
        "GET",
        "/token",
        Times::Always,
        Fault::rewrite(|r: &mut Response| {
            let mut body = br#"{"token":""#.to_vec();
            body.resize(2 << 20, b'a');
            body.extend_from_slice(br#""}"#);
            r.body = body;
        }),
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("larger than the 1048576-byte limit");
    assert_nothing_installed(&rig.ctx, "hello");
}

#[test]
fn a_manifest_whose_media_type_contradicts_its_content_type_is_refused() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::rewrite(|r: &mut Response| {
            if r.status == 200 {
                r.set_header("Content-Type", "application/vnd.oci.image.index.v1+json");
            }
        }),
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("media type")
        .says("application/vnd.oci.image.index.v1+json");
    assert_nothing_installed(&rig.ctx, "hello");
}

#[test]
fn a_manifest_that_is_not_json_is_refused() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::rewrite(|r: &mut Response| {
            if r.status == 200 {
                r.set_body(br#"{"schemaVersion": 2, "layers": [{"digest": "#.to_vec());
            }
        }),
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("not valid JSON");
    assert_nothing_installed(&rig.ctx, "hello");
}

/// The single layer's bytes, as the registry stores them.
fn layer_bytes(rig: &Rig, built: &crate::harness::Built) -> Vec<u8> {
    std::fs::read(rig.registry.blob_path(built.layer_digest())).unwrap()
}

/// Serves `bytes` for every blob GET under a sha512 digest.
fn serve_sha512_blob(rig: &Rig, bytes: Vec<u8>) {
    let mut resp = Response::new(200);
    resp.set_header("Content-Type", "application/octet-stream");
    resp.body = bytes;
    rig.reg()
        .on("GET", "/blobs/sha512:", Times::Always, Fault::Reply(resp));
}

#[test]
fn sha512_layer_digests_are_verified_both_ways() {
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], 4096).remove(0);
    let layer = layer_bytes(&rig, &built);
    let digest = sha512_digest(&layer);
    {
        let digest = digest.clone();
        rewrite_manifest(&rig, move |m| {
            m["layers"][0]["digest"] = digest.clone().into()
        });
    }
    serve_sha512_blob(&rig, layer.clone());

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert_eq!(
        rig.ctx.receipt("hello", "1.0.0")["layers"],
        serde_json::json!([digest])
    );
    let cached = rig
        .ctx
        .cache
        .join("v1/blobs/sha512")
        .join(digest.strip_prefix("sha512:").unwrap());
    assert_eq!(std::fs::read(&cached).unwrap(), layer);

    // The same digest over other bytes: refused, nothing installed, nothing cached.
    let other = rig.ctx.sharing_cache();
    std::fs::remove_dir_all(other.cache.join("v1")).unwrap();
    rig.reg().clear();
    {
        let digest = digest.clone();
        rewrite_manifest(&rig, move |m| {
            m["layers"][0]["digest"] = digest.clone().into()
        });
    }
    let mut tampered = layer.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x40;
    serve_sha512_blob(&rig, tampered);
    let run = other.pkg(&["install", "hello"]).failure();
    run.says("mismatch").says(&digest);
    assert_nothing_installed(&other, "hello");
    assert!(
        !cached.exists(),
        "tampered bytes cached under the sha512 digest"
    );
}

#[test]
fn a_formula_pinned_by_sha512_is_verified() {
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], 1024).remove(0);
    let repo = format!("{}/acme/hello", rig.proxy.host());
    let pin = sha512_digest(&built.image().manifest);
    let write = |digest: &str| {
        rig.ctx.write_formula(
            "hello",
            &Formula::new("hello")
                .version_with("1.0.0", &repo, "1.0.0", Some(digest), &[])
                .to_toml(),
        )
    };
    write(&sha512_digest(b"another manifest"));
    rig.ctx
        .pkg(&["install", "hello"])
        .failure()
        .says(&pin)
        .says("pins");
    assert_nothing_installed(&rig.ctx, "hello");

    write(&pin);
    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
}

#[test]
fn an_unknown_digest_algorithm_is_refused_with_a_clear_error() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rewrite_manifest(&rig, |m| {
        m["layers"][0]["digest"] = format!("sha384:{}", "ab".repeat(48)).into()
    });
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("unknown digest algorithm");
    assert_nothing_installed(&rig.ctx, "hello");
    assert_eq!(rig.reg().count("GET", "sha384"), 0);

    // In a formula's pin too.
    let repo = format!("{}/acme/hello", rig.proxy.host());
    rig.ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version_with(
                "1.0.0",
                &repo,
                "1.0.0",
                Some("md5:d41d8cd98f00b204e9800998ecf8427e"),
                &[],
            )
            .to_toml(),
    );
    rig.ctx
        .pkg(&["install", "hello"])
        .failure()
        .says("unknown digest algorithm");
}

#[test]
fn digests_with_path_characters_in_a_manifest_or_an_index_are_refused_before_any_use() {
    let hostile = [
        "sha256:../../../../../../etc/passwd",
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/../../x",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85%2F",
    ];
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    for digest in hostile {
        // As a layer of a manifest.
        rig.reg().clear();
        rewrite_manifest(&rig, move |m| m["layers"][0]["digest"] = digest.into());
        let run = rig.ctx.pkg(&["install", "hello"]).failure();
        run.says("invalid digest");
        assert_nothing_installed(&rig.ctx, "hello");

        // As an entry of an index.
        rig.reg().clear();
        rig.reg().on(
            "GET",
            "/manifests/",
            Times::Always,
            Fault::rewrite(move |r: &mut Response| {
                if r.status == 200 {
                    r.set_header("Content-Type", "application/vnd.oci.image.index.v1+json");
                    r.set_body(
                        serde_json::to_vec(&serde_json::json!({
                            "schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [{
                                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": digest, "size": 100,
                            }],
                        }))
                        .unwrap(),
                    );
                }
            }),
        );
        let run = rig.ctx.pkg(&["install", "hello"]).failure();
        run.says("invalid digest");
        assert_nothing_installed(&rig.ctx, "hello");
    }
    let bent: Vec<String> = rig
        .reg()
        .seen()
        .iter()
        .filter(|s| s.path.contains("..") || !s.path.contains("/manifests/1.0.0"))
        .map(|s| s.path.clone())
        .collect();
    assert!(bent.is_empty(), "pkg used a hostile digest: {bent:?}");
    for file in files_under(&rig.ctx.cache) {
        assert!(!file.to_string_lossy().contains(".."), "{}", file.display());
    }
}

#[test]
fn malformed_www_authenticate_challenges_fail_cleanly() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    let challenges = [
        "Bearer realm=\"unterminated",
        "Bearer",
        "Bearer service=\"test-registry\"",
        ",,,",
        "=",
        "Negotiate abc==",
        "Bearer realm=\"\"",
        "Bearer realm=\"ftp://127.0.0.1/token\"",
        "Bearer realm=\"http://[::1\"",
        "Bearer \u{ff}\u{fe}=\"x\"",
    ];
    for value in challenges {
        rig.reg().clear();
        rig.reg().on(
            "",
            "/v2/",
            Times::Always,
            Fault::rewrite(move |r: &mut Response| {
                if r.status == 401 {
                    r.set_header("WWW-Authenticate", value);
                }
            }),
        );
        let run = rig.ctx.pkg(&["install", "hello"]);
        assert_eq!(
            run.code,
            1,
            "challenge {value:?} did not fail cleanly:\n{}",
            run.output()
        );
        assert!(
            !run.stderr.contains("panicked"),
            "challenge {value:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("authentication failed") || run.stderr.contains("token service"),
            "challenge {value:?}: unclear error:\n{}",
            run.stderr
        );
        assert_nothing_installed(&rig.ctx, "hello");
    }
}

#[test]
fn a_realm_on_another_internal_host_is_refused_and_never_contacted() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    let mut ctx = rig.ctx.sharing_cache();
    ctx.with_credentials();
    // The registry (127.0.0.1) names a token service on 127.0.0.2, where the proxy's second
    // listener records anything that arrives.
    let hostile = format!("http://{}/token", rig.reg().cdn_host());
    rig.reg()
        .rewrite_realm(&rig.registry.issuer().realm(), &hostile);

    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says("internal address").says("127.0.0.2");
    assert_nothing_installed(&ctx, "hello");
    assert!(
        rig.reg().cdn_seen().is_empty(),
        "pkg contacted the hostile realm: {:?}",
        rig.reg().cdn_seen()
    );
    assert!(!run.output().contains(crate::harness::token::PASSWORD));
}

// ---------------------------------------------------------------------------------------------
// Tarballs

enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Fifo,
}

struct Entry {
    name: Vec<u8>,
    kind: Kind,
    mode: u32,
    /// A header size other than the data's (the archive then ends early).
    size: Option<u64>,
}

fn file(name: &str, data: &[u8], mode: u32) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        kind: Kind::File(data.to_vec()),
        mode,
        size: None,
    }
}

fn other(name: &str, kind: Kind) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        size: None,
    }
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A tar written header by header, so nothing a well-behaved builder refuses gets in the way.
fn raw_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut truncated = false;
    for e in entries {
        if e.name.len() > 100 {
            // GNU long name.
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_size(e.name.len() as u64 + 1);
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(&e.name);
            out.push(0);
            pad(&mut out);
        }
        let mut h = tar::Header::new_gnu();
        let n = e.name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&e.name[..n]);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let mut data: &[u8] = &[];
        let set_link = |h: &mut tar::Header, target: &str| {
            h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        };
        match &e.kind {
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                data = d;
            }
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                set_link(&mut h, t);
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                set_link(&mut h, t);
            }
            Kind::Char(major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
            }
            Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
        }
        h.set_size(e.size.unwrap_or(data.len() as u64));
        truncated |= e.size.is_some_and(|s| s > data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        if !truncated {
            pad(&mut out);
        }
    }
    if !truncated {
        out.extend_from_slice(&[0; 1024]);
    }
    out
}

/// A registry holding hostile packages; each case installs into a fresh prefix.
struct TarRig {
    rig: Rig,
}

impl TarRig {
    fn start() -> TarRig {
        TarRig { rig: Rig::start() }
    }

    /// A fresh prefix (sharing the formulae and cache) with an `outside/secret` file beside it.
    fn fresh(&self) -> TestContext {
        let ctx = self.rig.ctx.sharing_cache();
        let outside = outside(&ctx);
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "the user's secret").unwrap();
        std::fs::set_permissions(
            outside.join("secret"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        ctx
    }

    /// Pushes `acme/NAME:1.0.0` whose only layer is `tar` (gzipped) and writes its formula.
    fn push(&self, name: &str, tar: Vec<u8>) {
        self.push_with_bins(name, tar, &[]);
    }

    /// [`TarRig::push`] with a formula that links `bins`.
    fn push_with_bins(&self, name: &str, tar: Vec<u8>, bins: &[&str]) {
        let (os, arch) = host_platform();
        self.rig.registry.push(
            &format!("acme/{name}"),
            "1.0.0",
            &Fixture::Image(ImageSpec::new(os, arch).raw_layer(gzip(&tar), LAYER_TYPE)),
        );
        let repo = format!("{}/acme/{name}", self.rig.proxy.host());
        self.rig.ctx.write_formula(
            name,
            &Formula::new(name)
                .bin(bins)
                .version("1.0.0", &repo, "1.0.0")
                .to_toml(),
        );
    }

    fn case(&self, name: &str, tar: Vec<u8>) -> TestContext {
        self.push(name, tar);
        self.fresh()
    }
}

/// A directory beside the prefix that no package may touch.
fn outside(ctx: &TestContext) -> PathBuf {
    ctx.root().join("outside")
}

/// Nothing appeared or changed outside the prefix's Cellar, and nothing the archive named
/// `pwned`/`escaped` exists anywhere under the test's root.
#[track_caller]
fn assert_nothing_escaped(ctx: &TestContext, case: &str) {
    let outside = outside(ctx);
    let entries: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["secret"],
        "{case}: something was written to {outside:?}"
    );
    let secret = outside.join("secret");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "the user's secret",
        "{case}: the file outside was changed"
    );
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(&secret).unwrap();
    assert_eq!(meta.nlink(), 1, "{case}: the file outside was hard-linked");
    assert_eq!(
        meta.mode() & 0o7777,
        0o644,
        "{case}: the file outside was chmod-ed"
    );
    for f in walk(ctx.root()) {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.contains("pwned") && !name.contains("escaped"),
            "{case}: {} was written",
            f.display()
        );
    }
}

/// Everything under `dir`, directories and links included (links not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn hostile_tarballs_are_refused_and_nothing_is_written_outside_staging() {
    let t = TarRig::start();
    // The staging dir is ROOT/prefix/Cellar/.staging/keg-X: four `..` reach ROOT.
    type Case = (&'static str, Box<dyn Fn(&Path) -> Vec<Entry>>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "dotdot",
            Box::new(|_| vec![file("../../../../escaped-dotdot", b"x", 0o644)]),
            "has a `..` component",
        ),
        (
            "dotdot-inner",
            Box::new(|_| vec![file("bin/../../../../../escaped-inner", b"x", 0o644)]),
            "has a `..` component",
        ),
        (
            "absolute",
            Box::new(|root| {
                vec![file(
                    &format!("{}/outside/escaped-absolute", root.display()),
                    b"x",
                    0o644,
                )]
            }),
            "is an absolute path",
        ),
        (
            "symlink-absolute-write-through",
            Box::new(|root| {
                vec![
                    other("evil", Kind::Symlink(format!("{}/outside", root.display()))),
                    file("evil/pwned", b"x", 0o644),
                ]
            }),
            "`evil` is a symlink (made by an earlier entry), and pkg never writes through one",
        ),
        (
            "symlink-relative-write-through",
            Box::new(|_| {
                vec![
                    other("up", Kind::Symlink("../../../../outside".into())),
                    file("up/pwned", b"x", 0o644),
                ]
            }),
            "`up` is a symlink (made by an earlier entry), and pkg never writes through one",
        ),
        (
            "symlink-chain",
            Box::new(|_| {
                vec![
                    other("d", Kind::Dir),
                    other("d/c", Kind::Symlink("..".into())),
                    other("b", Kind::Symlink("d/c".into())),
                    other("a", Kind::Symlink("b/../../../../../outside".into())),
                    file("a/pwned", b"x", 0o644),
                ]
            }),
            "`a` is a symlink (made by an earlier entry), and pkg never writes through one",
        ),
        (
            "hardlink-through-a-link",
            Box::new(|root| {
                vec![
                    other("l", Kind::Symlink(format!("{}/outside", root.display()))),
                    other("h", Kind::Hardlink("l/secret".into())),
                ]
            }),
            "`l` is a symlink (made by an earlier entry), and pkg never writes through one",
        ),
        (
            "directory-through-a-link",
            Box::new(|_| {
                vec![
                    other("up", Kind::Symlink("../../../../outside".into())),
                    other("up/pwned-dir", Kind::Dir),
                ]
            }),
            "`up` is a symlink (made by an earlier entry), and pkg never writes through one",
        ),
        (
            "device",
            Box::new(|_| vec![other("dev-null", Kind::Char(1, 3))]),
            "`dev-null` is a character device",
        ),
        (
            "symlink-inside-then-write-through",
            Box::new(|_| {
                vec![
                    other("share", Kind::Dir),
                    other("lib", Kind::Symlink("share".into())),
                    file("lib/pwned", b"x", 0o644),
                ]
            }),
            "never writes through one",
        ),
        (
            "hardlink-relative-outside",
            Box::new(|_| {
                vec![
                    other("h", Kind::Hardlink("../../../../outside/secret".into())),
                    file("h", b"pwned", 0o644),
                ]
            }),
            "has a `..` component",
        ),
        (
            "hardlink-absolute-outside",
            Box::new(|root| {
                vec![
                    other(
                        "h",
                        Kind::Hardlink(format!("{}/outside/secret", root.display())),
                    ),
                    file("h", b"pwned", 0o644),
                ]
            }),
            "is an absolute path",
        ),
        (
            "name-component-too-long",
            Box::new(|_| vec![file(&format!("share/{}", "n".repeat(300)), b"x", 0o644)]),
            "share/nnnn",
        ),
        (
            "entry-larger-than-the-archive",
            Box::new(|_| {
                vec![
                    file("bin/ok", b"fine", 0o644),
                    Entry {
                        name: b"share/big".to_vec(),
                        kind: Kind::File(vec![7; 100]),
                        mode: 0o644,
                        size: Some(1 << 20),
                    },
                ]
            }),
            "share/big",
        ),
    ];
    let total = cases.len();
    for (name, entries, expected) in cases {
        let case = format!("h-{name}");
        let ctx = t.fresh();
        t.push(&case, raw_tar(&entries(ctx.root())));
        let run = ctx.pkg(&["install", &case]);
        assert_eq!(run.code, 1, "{case} was not refused:\n{}", run.output());
        assert!(
            run.stderr.contains(expected),
            "{case}: expected {expected:?} in:\n{}",
            run.stderr
        );
        assert_nothing_installed(&ctx, &case);
        assert_nothing_escaped(&ctx, &case);
    }
    eprintln!("hostile tarballs refused: {total}");
}

/// Links that lead out of the keg are data: created as the archive says, and nothing pkg does
/// afterwards (the Homebrew strip, checking and chmod-ing `bin` entries, relocation, linking into
/// the prefix) goes through one. Each case has the `outside/` canary, and another keg as one.
#[test]
fn links_out_of_the_keg_are_installed_but_never_followed() {
    let t = TarRig::start();
    let ctx = t.fresh();
    let root = ctx.root().to_owned();

    // A victim keg the next package tries to reach.
    t.push(
        "victim",
        raw_tar(&[file("data.txt", b"victim's data", 0o644)]),
    );
    ctx.pkg(&["install", "victim"]).success();
    let victim = ctx.keg("victim", "1.0.0").join("data.txt");

    // `bin/sub -> ../../..` stays inside `stripevil/1.0.0/` as packed, and points at
    // PREFIX/Cellar once the strip moved it up: the `bin` entry through it is refused.
    t.push_with_bins(
        "stripevil",
        raw_tar(&[
            file("stripevil/1.0.0/bin/stripevil", b"#!/bin/sh\n", 0o755),
            other("stripevil/1.0.0/bin/sub", Kind::Symlink("../../..".into())),
        ]),
        &["bin/stripevil", "bin/sub/victim/1.0.0/data.txt"],
    );
    let run = ctx.pkg(&["install", "stripevil"]).failure();
    run.says("`bin/sub/victim/1.0.0/data.txt`")
        .says("`bin/sub` in the package is a link that leads out of it (to `../../..`)");
    assert_nothing_installed(&ctx, "stripevil");
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o644,
        "another keg's file was chmod-ed"
    );
    assert!(
        std::fs::symlink_metadata(ctx.prefix.join("bin/data.txt")).is_err(),
        "a link into another keg was made"
    );

    // A `bin` entry that is itself a link climbing into another keg: refused too.
    t.push_with_bins(
        "climbevil",
        raw_tar(&[other(
            "bin/data",
            Kind::Symlink("../../../victim/1.0.0/data.txt".into()),
        )]),
        &["bin/data"],
    );
    let run = ctx.pkg(&["install", "climbevil"]).failure();
    run.says("`bin/data` in the package is a link that leads out of it");
    assert_nothing_installed(&ctx, "climbevil");
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);

    // A `bin` entry below a link to an outside directory: refused before any chmod.
    t.push_with_bins(
        "chmodevil",
        raw_tar(&[other(
            "bin",
            Kind::Symlink(format!("{}/outside", root.display())),
        )]),
        &["bin/secret"],
    );
    let run = ctx.pkg(&["install", "chmodevil"]).failure();
    run.says("`bin` in the package is a link that leads out of it");
    assert_nothing_installed(&ctx, "chmodevil");
    assert_nothing_escaped(&ctx, "chmodevil");

    // A `bin` entry that is itself a link out (a virtualenv's `bin/python3`): linked as it is,
    // and the file it names is not made executable.
    let secret = format!("{}/outside/secret", root.display());
    t.push_with_bins(
        "venvish",
        raw_tar(&[
            other("bin/python3", Kind::Symlink(secret.clone())),
            other(
                "lib/cacert.pem",
                Kind::Symlink("../../../../../etc/ssl/cert.pem".into()),
            ),
            other("lib/dangling", Kind::Symlink("nowhere".into())),
        ]),
        &["bin/python3"],
    );
    ctx.pkg(&["install", "venvish"]).success();
    let keg = ctx.keg("venvish", "1.0.0");
    assert_eq!(
        std::fs::read_link(keg.join("bin/python3")).unwrap(),
        Path::new(&secret)
    );
    assert_eq!(
        std::fs::read_link(keg.join("lib/cacert.pem")).unwrap(),
        Path::new("../../../../../etc/ssl/cert.pem")
    );
    assert_eq!(
        std::fs::read_link(ctx.prefix.join("bin/python3")).unwrap(),
        Path::new("../Cellar/venvish/1.0.0/bin/python3")
    );
    assert_nothing_escaped(&ctx, "venvish");

    // A bottle whose `etc` and `share/conf` lead outside: relocation reads neither.
    let outside = outside(&ctx);
    std::fs::write(outside.join("conf"), "prefix=@@HOMEBREW_PREFIX@@\n").unwrap();
    t.push(
        "relocevil",
        raw_tar(&[
            file(
                "relocevil/1.0.0/share/own.txt",
                b"prefix=@@HOMEBREW_PREFIX@@\n",
                0o644,
            ),
            other(
                "relocevil/1.0.0/etc",
                Kind::Symlink(format!("{}/outside", root.display())),
            ),
            other(
                "relocevil/1.0.0/share/conf",
                Kind::Symlink(format!("{}/outside/conf", root.display())),
            ),
        ]),
    );
    ctx.pkg(&["install", "relocevil"]).success();
    let keg = ctx.keg("relocevil", "1.0.0");
    assert_eq!(
        std::fs::read_to_string(keg.join("share/own.txt")).unwrap(),
        format!("prefix={}\n", ctx.prefix.display()),
        "the keg's own file is relocated"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("conf")).unwrap(),
        "prefix=@@HOMEBREW_PREFIX@@\n",
        "relocation wrote through a link"
    );
    std::fs::remove_file(outside.join("conf")).unwrap();
    assert_nothing_escaped(&ctx, "relocevil");
}

#[test]
fn fifos_setuid_and_duplicates_are_neutralized_and_the_rest_installs() {
    let t = TarRig::start();
    let tar = raw_tar(&[
        other("bin", Kind::Dir),
        file("bin/tool", b"#!/bin/sh\necho tool\n", 0o6755),
        file("share/real", b"real contents", 0o644),
        other("share/sticky", Kind::Dir),
        other("fifo", Kind::Fifo),
        // A link, then a file of the same name: the link is replaced, never followed.
        other("bin/alias", Kind::Symlink("../share/real".into())),
        file("bin/alias", b"#!/bin/sh\necho alias\n", 0o755),
        file(
            &format!("share/{}/deep", "long-directory-name-".repeat(12)),
            b"a long path",
            0o644,
        ),
    ]);
    let ctx = t.case("neutral", tar);
    ctx.pkg(&["install", "neutral"]).success();
    let keg = ctx.keg("neutral", "1.0.0");
    let mode = std::fs::metadata(keg.join("bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid/setgid kept: {mode:o}");
    use std::os::unix::fs::FileTypeExt as _;
    let fifo = std::fs::symlink_metadata(keg.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo(), "the fifo is restored as a fifo");
    let alias = std::fs::symlink_metadata(keg.join("bin/alias")).unwrap();
    assert!(alias.is_file(), "the duplicate did not replace the link");
    assert_eq!(
        std::fs::read_to_string(keg.join("share/real")).unwrap(),
        "real contents",
        "written through the replaced link"
    );
    assert_eq!(
        std::fs::read_to_string(
            keg.join(format!("share/{}/deep", "long-directory-name-".repeat(12)))
        )
        .unwrap(),
        "a long path"
    );
    assert_nothing_escaped(&ctx, "neutral");
}

#[test]
fn bombs_stop_at_the_configured_limits_with_a_clear_error() {
    let t = TarRig::start();
    // 32 MiB of zeros gzip to a few dozen KiB.
    let bomb = raw_tar(&[file("share/zeros", &vec![0u8; 32 << 20], 0o644)]);
    let mut ctx = t.case("bytebomb", bomb);
    ctx.env("PKG_MAX_UNPACK_BYTES", &(1 << 20).to_string());
    let run = ctx.pkg(&["install", "bytebomb"]).failure();
    run.says("PKG_MAX_UNPACK_BYTES").says("share/zeros");
    assert_nothing_installed(&ctx, "bytebomb");
    assert_nothing_escaped(&ctx, "bytebomb");

    let many: Vec<Entry> = (0..3000)
        .map(|i| file(&format!("share/f{i}"), b"", 0o644))
        .collect();
    let mut ctx = t.case("entrybomb", raw_tar(&many));
    ctx.env("PKG_MAX_UNPACK_ENTRIES", "1000");
    let run = ctx.pkg(&["install", "entrybomb"]).failure();
    run.says("PKG_MAX_UNPACK_ENTRIES");
    assert_nothing_installed(&ctx, "entrybomb");

    // Under the default caps, a layer that expands past 200 times its blob (80 MiB of zeros in
    // some 80 KiB of gzip) is stopped before the file is written.
    let ratio = raw_tar(&[file("share/zeros", &vec![0u8; 80 << 20], 0o644)]);
    let ctx = t.case("ratiobomb", ratio);
    let run = ctx.pkg(&["install", "ratiobomb"]).failure();
    run.says("PKG_MAX_UNPACK_RATIO").says("share/zeros");
    assert_nothing_installed(&ctx, "ratiobomb");
    assert_nothing_escaped(&ctx, "ratiobomb");

    // A limit or writer count that is not a number is bad input, said by its name, before
    // anything is fetched (PKG_UNPACK_WRITERS was ignored, a bad limit exited 1 at the pour).
    for var in ["PKG_MAX_UNPACK_BYTES", "PKG_UNPACK_WRITERS"] {
        let mut ctx = t.rig.ctx.sharing_cache();
        ctx.env(var, "8G");
        let run = ctx.pkg(&["install", "bytebomb"]).failure_with(2);
        run.says(var).says("`8G`");
        assert_nothing_installed(&ctx, "bytebomb");
    }

    // Within the limits, the same packages install.
    let mut ctx = t.rig.ctx.sharing_cache();
    ctx.env("PKG_MAX_UNPACK_BYTES", &(64 << 20).to_string());
    ctx.pkg(&["install", "bytebomb", "entrybomb"]).success();
}
