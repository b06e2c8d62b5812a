//! `pkg bottle`, `pkg login` and `oci:PATH` formulae against the real registry and skopeo:
//! reproducible digests, layouts skopeo accepts, pushes (skips, mounts, chunks, indexes,
//! refusals), formula write-back and air-gapped installs.

mod proxy;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::registry::skopeo_push;
use crate::harness::token::{PASSWORD, USERNAME};
use crate::harness::{Registry, TestContext, sha256_digest};
use proxy::Proxy;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A small package tree: an executable, a text file, a nested empty directory, a symlink.
fn hello_tree(root: &Path, greeting: &str) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("share/hello/empty")).unwrap();
    std::fs::write(
        root.join("bin/hello"),
        format!("#!/bin/sh\necho {greeting}\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("bin/hello"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(root.join("share/hello/README"), "hello, the package\n").unwrap();
    std::os::unix::fs::symlink("../../bin/hello", root.join("share/hello/run")).unwrap();
}

/// A scratch directory below `tmp`.
fn scratch(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    let p = tmp.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn set_mtime(path: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `pkg bottle ARGS --json`, which must succeed; returns the summary.
fn bottle_json(ctx: &TestContext, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bottle"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = ctx.pkg(&all).success();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("bottle --json printed no JSON ({e}):\n{}", run.stdout))
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// `skopeo inspect [--raw] docker://REF` as the test user; the output, or None when it fails.
fn skopeo_inspect(reference: &str, raw: bool) -> Result<Vec<u8>, String> {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect");
    if raw {
        cmd.arg("--raw");
    }
    let output = cmd
        .arg("--tls-verify=false")
        .arg("--creds")
        .arg(format!("{USERNAME}:{PASSWORD}"))
        .arg(format!("docker://{reference}"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo (Debian's `skopeo` package; scripts/test installs it)");
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn formula(name: &str, versions: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "name = \"{name}\"\ndesc = \"The {name} test package\"\nhomepage = \"https://example.com/{name}\"\n"
    );
    for (version, repository, tag) in versions {
        text.push_str(&format!(
            "\n[versions.\"{version}\"]\nrepository = \"{repository}\"\ntag = \"{tag}\"\n"
        ));
    }
    text
}

fn keg_file(ctx: &TestContext, name: &str, version: &str, rel: &str) -> String {
    let path = ctx.keg(name, version).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\n{}",
            path.display(),
            ctx.prefix_listing()
        )
    })
}

fn run_bin(ctx: &TestContext, tool: &str) -> String {
    let out = Command::new(ctx.prefix.join("bin").join(tool))
        .output()
        .expect("run the linked tool");
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bottling_twice_and_from_other_mtimes_and_modes_gives_identical_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = TestContext::new();
    let a = scratch(&tmp, "a");
    hello_tree(&a, "hello");
    let first = bottle_json(
        &ctx,
        &[
            path_str(&a),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&scratch(&tmp, "l1")),
        ],
    );
    let second = bottle_json(
        &ctx,
        &[
            path_str(&a),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&scratch(&tmp, "l2")),
        ],
    );
    // The same content elsewhere, with other mtimes, other permission bits and created in
    // another order.
    let b = scratch(&tmp, "b");
    std::fs::create_dir_all(b.join("share/hello/empty")).unwrap();
    std::fs::write(b.join("share/hello/README"), "hello, the package\n").unwrap();
    std::fs::set_permissions(
        b.join("share/hello/README"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("../../bin/hello", b.join("share/hello/run")).unwrap();
    std::fs::create_dir_all(b.join("bin")).unwrap();
    std::fs::write(b.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(b.join("bin/hello"), std::fs::Permissions::from_mode(0o700)).unwrap();
    set_mtime(&b.join("bin/hello"), 1_234_567_890);
    set_mtime(&b.join("share/hello/README"), 42);
    // Other owners too: as root (CI), hand the tree to uid/gid 1234/5678; as anyone else the
    // files already belong to a user who is not 0.
    if unsafe { libc::geteuid() } == 0 {
        for rel in [
            "",
            "bin",
            "bin/hello",
            "share",
            "share/hello",
            "share/hello/README",
        ] {
            std::os::unix::fs::chown(b.join(rel), Some(1234), Some(5678)).unwrap();
        }
        std::os::unix::fs::lchown(b.join("share/hello/run"), Some(1234), Some(5678)).unwrap();
    }
    let third = bottle_json(
        &ctx,
        &[
            path_str(&b),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&scratch(&tmp, "l3")),
        ],
    );
    for key in ["layer", "config", "manifest", "layout_tag"] {
        assert_eq!(first[key]["digest"], second[key]["digest"], "{key}");
        assert_eq!(first[key]["digest"], third[key]["digest"], "{key}");
    }
    // bin, bin/hello, share, share/hello, …/README, …/empty, …/run
    assert_eq!(first["layer"]["entries"], 7);
    // The layer bytes themselves are identical.
    let layer = s(&first["layer"]["digest"])
        .strip_prefix("sha256:")
        .unwrap();
    let one = std::fs::read(scratch(&tmp, "l1").join("blobs/sha256").join(layer)).unwrap();
    let three = std::fs::read(scratch(&tmp, "l3").join("blobs/sha256").join(layer)).unwrap();
    assert_eq!(one, three);
    assert_eq!(sha256_digest(&one), s(&first["layer"]["digest"]));

    // No creation time unless asked for (it would make every build differ).
    let blob_json = |layout: &Path, key: &str, out: &serde_json::Value| -> serde_json::Value {
        let hex = s(&out[key]["digest"])
            .strip_prefix("sha256:")
            .unwrap()
            .to_owned();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    const CREATED: &str = "org.opencontainers.image.created";
    let l1 = scratch(&tmp, "l1");
    assert!(blob_json(&l1, "manifest", &first)["annotations"][CREATED].is_null());
    assert!(blob_json(&l1, "config", &first)["created"].is_null());
    let dated = scratch(&tmp, "dated");
    let with_created = bottle_json(
        &ctx,
        &[
            path_str(&a),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--created",
            "-o",
            path_str(&dated),
        ],
    );
    assert!(
        blob_json(&dated, "manifest", &with_created)["annotations"][CREATED].is_string(),
        "--created adds the annotation"
    );
    assert!(blob_json(&dated, "config", &with_created)["created"].is_string());
    assert_eq!(first["layer"]["digest"], with_created["layer"]["digest"]);
    assert_ne!(
        first["manifest"]["digest"],
        with_created["manifest"]["digest"]
    );

    // Content does change the digest.
    std::fs::write(b.join("share/hello/README"), "changed\n").unwrap();
    let changed = bottle_json(
        &ctx,
        &[
            path_str(&b),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&scratch(&tmp, "l4")),
        ],
    );
    assert_ne!(first["layer"]["digest"], changed["layer"]["digest"]);
}

#[test]
fn bottle_layout_copied_by_skopeo_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "hello from skopeo");
    let layout = scratch(&tmp, "layout");
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&layout),
            "--platform",
            "linux/amd64",
        ],
    );
    let dest = format!("{}/acme/hello:1.0.0", registry.host());
    skopeo_push(&layout, "1.0.0", &dest);
    let raw = skopeo_inspect(&dest, true).expect("skopeo inspect");
    assert_eq!(sha256_digest(&raw), s(&out["manifest"]["digest"]));
    let info: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&dest, false).unwrap()).unwrap();
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Labels"], serde_json::Value::Null);

    ctx.write_formula(
        "hello",
        &formula(
            "hello",
            &[("1.0.0", &format!("{}/acme/hello", registry.host()), "1.0.0")],
        ),
    );
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello from skopeo\n");
    assert_eq!(
        keg_file(&ctx, "hello", "1.0.0", "share/hello/README"),
        "hello, the package\n"
    );
    let receipt = ctx.receipt("hello", "1.0.0");
    assert_eq!(receipt["manifest_digest"], out["manifest"]["digest"]);
    assert_eq!(receipt["layers"][0], out["layer"]["digest"]);
    let link = std::fs::read_link(ctx.keg("hello", "1.0.0").join("share/hello/run")).unwrap();
    assert_eq!(link, PathBuf::from("../../bin/hello"));
}

#[test]
fn push_is_seen_by_skopeo_installs_and_a_second_push_uploads_no_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.url(), false);
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "pushed");
    let target = format!("{}/acme/hello:1.0.0", proxy.host());
    let args = [
        path_str(&src),
        "--name",
        "hello",
        "--version",
        "1.0.0",
        "--push",
        &target,
    ];
    let out = bottle_json(&ctx, &args);
    let push = &out["push"];
    assert_eq!(push["media_type"], MANIFEST);
    assert_eq!(push["digest"], out["manifest"]["digest"]);
    assert_eq!(push["tag_changed"], true);
    let hows: Vec<&str> = push["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| s(&b["how"]))
        .collect();
    assert_eq!(hows, ["uploaded", "uploaded"], "{push}");
    let requests = proxy.requests();
    let puts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        .collect();
    assert_eq!(puts.len(), 2, "{requests:#?}");
    assert!(
        puts.iter()
            .all(|r| r.status == 201 && r.path.contains("digest=sha256%3A")
                || r.path.contains("digest=sha256:")),
        "{puts:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/manifests/1.0.0") && r.status == 201),
        "{requests:#?}"
    );

    let direct = format!("{}/acme/hello:1.0.0", registry.host());
    let raw = skopeo_inspect(&direct, true).expect("skopeo sees the pushed tag");
    assert_eq!(sha256_digest(&raw), s(&push["digest"]));
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "hello--1.0.0.linux_amd64.bottle.tar.gz"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );

    ctx.write_formula(
        "hello",
        &formula(
            "hello",
            &[("1.0.0", &format!("{}/acme/hello", registry.host()), "1.0.0")],
        ),
    );
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "pushed\n");

    // Again, same content: every blob is found by HEAD, nothing is uploaded, the tag stays.
    proxy.clear();
    let again = bottle_json(&ctx, &args);
    let requests = proxy.requests();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/blobs/uploads") || r.method == "PATCH")
        .collect();
    assert!(uploads.is_empty(), "the second push uploaded: {uploads:#?}");
    // (A new process: its first request meets the 401 challenge and is sent again with a token.)
    let found: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "HEAD" && r.status == 200)
        .collect();
    assert_eq!(found.len(), 2, "{requests:#?}");
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "HEAD" && r.status == 404),
        "{requests:#?}"
    );
    assert!(
        !requests.iter().any(|r| r.method == "PUT"),
        "the tag was rewritten: {requests:#?}"
    );
    assert_eq!(again["push"]["tag_changed"], false);
    assert_eq!(again["push"]["bytes_uploaded"], 0);
    assert_eq!(again["push"]["digest"], push["digest"]);
}

#[test]
fn two_platforms_pushed_to_one_tag_make_an_index_and_install_picks_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let target = format!("{}/acme/multi:2.0.0", registry.host());
    // The host's platform and another one, whatever machine runs the test.
    let (os, arch) = crate::faults::host_platform();
    let host = format!("{os}/{arch}");
    let other = if host == "darwin/arm64" {
        "linux/amd64"
    } else {
        "darwin/arm64"
    };
    let linux = scratch(&tmp, "linux");
    std::fs::write(linux.join("which"), "linux\n").unwrap();
    let darwin = scratch(&tmp, "darwin");
    std::fs::write(darwin.join("which"), "darwin\n").unwrap();
    let first = bottle_json(
        &ctx,
        &[
            path_str(&linux),
            "--name",
            "multi",
            "--version",
            "2.0.0",
            "--platform",
            &host,
            "-o",
            path_str(&scratch(&tmp, "l-linux")),
            "--push",
            &target,
        ],
    );
    assert_eq!(first["push"]["media_type"], MANIFEST);
    let second = bottle_json(
        &ctx,
        &[
            path_str(&darwin),
            "--name",
            "multi",
            "--version",
            "2.0.0",
            "--platform",
            other,
            "-o",
            path_str(&scratch(&tmp, "l-darwin")),
            "--push",
            &target,
        ],
    );
    assert_eq!(second["push"]["media_type"], INDEX);
    assert_eq!(
        second["push"]["platforms"],
        serde_json::json!([host, other])
    );
    let raw = skopeo_inspect(&target, true).unwrap();
    assert_eq!(sha256_digest(&raw), s(&second["push"]["digest"]));
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(entries[0]["digest"], first["manifest"]["digest"]);
    assert_eq!(entries[0]["platform"]["os"], os);
    assert_eq!(entries[0]["platform"]["architecture"], arch);
    assert_eq!(entries[1]["digest"], second["manifest"]["digest"]);
    assert_eq!(
        format!(
            "{}/{}",
            s(&entries[1]["platform"]["os"]),
            s(&entries[1]["platform"]["architecture"])
        ),
        other
    );

    // Rebuilding one platform of a released version: refused, naming both digests, and the
    // index is as it was (issue 27); with --force it replaces its entry and keeps the other.
    std::fs::write(linux.join("which"), "linux, rebuilt\n").unwrap();
    let before = skopeo_inspect(&target, true).unwrap();
    let refused_out = scratch(&tmp, "l-linux-refused");
    let linux2 = scratch(&tmp, "l-linux2");
    let rebuild = |force: bool| {
        let out = if force { &linux2 } else { &refused_out };
        let mut args = vec![
            path_str(&linux),
            "--name",
            "multi",
            "--version",
            "2.0.0",
            "--platform",
            host.as_str(),
            "-o",
            path_str(out),
            "--push",
            target.as_str(),
        ];
        if force {
            args.push("--force");
        }
        args
    };
    let mut refused = vec!["bottle"];
    refused.extend(rebuild(false));
    ctx.pkg(&refused)
        .failure()
        .says("is a released version")
        .says(s(&first["manifest"]["digest"]))
        .says("--force");
    assert_eq!(skopeo_inspect(&target, true).unwrap(), before);
    let third = bottle_json(&ctx, &rebuild(true));
    assert_eq!(third["push"]["tag_state"], "moved");
    let index: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&target, true).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(entries[0]["digest"], third["manifest"]["digest"]);
    assert_eq!(entries[1]["digest"], second["manifest"]["digest"]);

    ctx.write_formula(
        "multi",
        &formula(
            "multi",
            &[("2.0.0", &format!("{}/acme/multi", registry.host()), "2.0.0")],
        ),
    );
    ctx.pkg(&["install", "multi"]).success();
    assert_eq!(
        keg_file(&ctx, "multi", "2.0.0", "which"),
        "linux, rebuilt\n"
    );
    let receipt = ctx.receipt("multi", "2.0.0");
    assert_eq!(receipt["manifest_digest"], third["push"]["digest"]);
    assert_eq!(
        receipt["platform_manifest_digest"],
        third["manifest"]["digest"]
    );
}

/// Incompressible bytes, fast: xorshift64*.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_large_bottle_goes_up_in_chunks_through_relative_locations() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.url(), true);
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "big");
    let data = noise(65 * 1024 * 1024 + 12_345, 0x9e37_79b9_7f4a_7c15);
    std::fs::create_dir_all(src.join("share")).unwrap();
    std::fs::write(src.join("share/blob.bin"), &data).unwrap();
    let target = format!("{}/acme/big:1.0.0", proxy.host());
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "big",
            "--version",
            "1.0.0",
            "--push",
            &target,
        ],
    );
    let size = out["layer"]["size"].as_u64().unwrap();
    assert!(size > 64 * 1024 * 1024, "the layer is only {size} bytes");
    let layer = out["push"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == out["layer"]["digest"])
        .unwrap()
        .clone();
    assert_eq!(layer["how"], "chunked", "{layer}");
    let expected_chunks = size.div_ceil(16 * 1024 * 1024);
    assert_eq!(layer["chunks"], expected_chunks);

    let requests = proxy.requests();
    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len() as u64, expected_chunks, "{requests:#?}");
    assert!(
        patches
            .iter()
            .all(|r| r.status == 202 && r.path.contains("_state=")),
        "{patches:#?}"
    );
    let finish: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        .collect();
    // The config went up whole, the layer was closed with an empty PUT: both keep `_state`
    // and add the digest.
    assert_eq!(finish.len(), 2, "{finish:#?}");
    assert!(
        finish.iter().all(|r| r.status == 201
            && r.path.contains("_state=")
            && r.path.contains("&digest=sha256:")),
        "{finish:#?}"
    );

    ctx.write_formula(
        "big",
        &formula(
            "big",
            &[("1.0.0", &format!("{}/acme/big", registry.host()), "1.0.0")],
        ),
    );
    ctx.pkg(&["install", "big"]).success();
    let installed = std::fs::read(ctx.keg("big", "1.0.0").join("share/blob.bin")).unwrap();
    assert_eq!(installed.len(), data.len());
    assert!(
        installed == data,
        "the installed file differs from the bottled one"
    );
}

#[test]
fn push_without_or_with_wrong_credentials_fails_clearly_and_tags_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let ctx = TestContext::new();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "nope");
    let target = format!("{}/acme/secret:1.0.0", registry.host());
    let args = [
        "bottle",
        path_str(&src),
        "--name",
        "secret",
        "--version",
        "1.0.0",
        "--push",
        &target,
    ];
    let run = ctx.pkg(&args).failure();
    run.says("push access");
    run.says("pkg login");
    run.says("acme/secret");
    assert!(!run.output().contains("panicked"), "{}", run.output());
    // One hint, the push's: not also the pull's (read:packages, `docker login` only).
    assert!(
        !run.output().contains("If the package is private"),
        "{}",
        run.output()
    );
    assert_eq!(
        run.output().matches("push access").count(),
        1,
        "{}",
        run.output()
    );

    let mut wrong = TestContext::new();
    wrong.credentials(USERNAME, "not-the-password");
    let run = wrong.pkg(&args).failure();
    run.says("authentication failed");
    run.says("write:packages");
    assert!(
        !run.output().contains("If the package is private"),
        "{}",
        run.output()
    );
    assert!(
        !run.output().contains("not-the-password"),
        "the password was printed"
    );

    let err = skopeo_inspect(&target, true).expect_err("the tag must not exist");
    assert!(
        err.contains("manifest unknown")
            || err.contains("name unknown")
            || err.contains("not found"),
        "{err}"
    );
    // No blob reached the registry's storage either.
    let blobs = registry.storage().join("docker/registry/v2/blobs");
    assert!(!blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none());
}

const COMMENTED: &str = r#"# The hello formula, maintained by hand.
name = "hello"
desc = "Says hello"   # keep it short
homepage = "https://example.com/hello"

# The old release stays installable.
[versions."0.9.0"]
repository = "ghcr.io/acme/hello"
tag = "0.9.0"
digest = "sha256:aa986f18e5556f9ce7ce265242ec6457ea2802030d92e5dc4c3c807a495db1e4"
"#;

#[test]
fn write_back_keeps_comments_and_other_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let file = ctx.formulae.join("hello.toml");
    std::fs::write(&file, COMMENTED).unwrap();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "written");
    let target = format!("{}/acme/hello:1.0.0", registry.host());
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--push",
            &target,
            "--write",
            path_str(&file),
        ],
    );
    assert_eq!(out["written"], path_str(&file));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(COMMENTED),
        "the existing text changed:\n{text}"
    );
    let added = format!(
        "\n[versions.\"1.0.0\"]\nrepository = \"{}/acme/hello\"\ntag = \"1.0.0\"\ndigest = \"{}\"\n",
        registry.host(),
        s(&out["push"]["digest"])
    );
    assert!(text.ends_with(&added), "{text}");
    // Nothing of the formula goes into the manifest: its digest depends only on the bottle's
    // inputs (issue 27).
    let manifest: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&target, true).unwrap()).unwrap();
    assert!(
        manifest["annotations"]
            .get("org.opencontainers.image.description")
            .is_none(),
        "{manifest}"
    );

    ctx.pkg(&["install", "hello@1.0.0"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "written\n");

    // A rebuild of the same version updates the entry in place, comments included.
    let edited = text.replace(
        &format!(
            "tag = \"1.0.0\"\ndigest = \"{}\"",
            s(&out["push"]["digest"])
        ),
        &format!(
            "tag = \"1.0.0\"  # pushed by CI\ndigest = \"{}\"\ndepends_on = {{}}",
            s(&out["push"]["digest"])
        ),
    );
    assert_ne!(edited, text);
    std::fs::write(&file, &edited).unwrap();
    hello_tree(&scratch(&tmp, "src2"), "rebuilt");
    let src2 = scratch(&tmp, "src2");
    let rebuilt = bottle_json(
        &ctx,
        &[
            path_str(&src2),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--push",
            &format!("{}/acme/hello:1.0.0-1", registry.host()),
            "--write",
            path_str(&file),
        ],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(COMMENTED), "{text}");
    assert!(text.contains("tag = \"1.0.0-1\"  # pushed by CI"), "{text}");
    assert!(
        text.contains(&format!("digest = \"{}\"", s(&rebuilt["push"]["digest"]))),
        "{text}"
    );
    assert!(text.contains("depends_on = {}"), "{text}");
    assert_eq!(text.matches("[versions.").count(), 2, "{text}");

    // A formula of another package is refused and left alone.
    let other = scratch(&tmp, "other").join("other.toml");
    std::fs::write(&other, formula("other", &[("1.0.0", "ghcr.io/a/b", "1")])).unwrap();
    let run = ctx
        .pkg(&[
            "bottle",
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--write",
            path_str(&other),
            "-o",
            path_str(&scratch(&tmp, "lo")),
        ])
        .failure_with(2);
    run.says("is the formula of `other`");
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        formula("other", &[("1.0.0", "ghcr.io/a/b", "1")])
    );
}

#[test]
fn oci_layout_formula_installs_air_gapped_and_verifies_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    // No registry at all: the formula points at a layout next to it.
    let ctx = TestContext::new();
    let file = ctx.formulae.join("hello.toml");
    std::fs::write(&file, formula("hello", &[])).unwrap();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "air-gapped");
    let layout = ctx.formulae.join("layouts/hello");
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&layout),
            "--write",
            path_str(&file),
        ],
    );
    assert_eq!(out["formula"]["repository"], "oci:layouts/hello");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("repository = \"oci:layouts/hello\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("digest = \"{}\"", s(&out["manifest"]["digest"]))),
        "{text}"
    );

    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "air-gapped\n");
    let receipt = ctx.receipt("hello", "1.0.0");
    assert!(s(&receipt["repository"]).starts_with("oci:"), "{receipt}");
    assert_eq!(receipt["layers"][0], out["layer"]["digest"]);

    // A layer changed on disk is caught before anything is installed (in a fresh cache).
    let other = TestContext::new();
    std::fs::write(
        other.formulae.join("hello.toml"),
        std::fs::read_to_string(&file).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(other.formulae.join("layouts")).unwrap();
    copy_dir(&layout, &other.formulae.join("layouts/hello"));
    let hex = s(&out["layer"]["digest"])
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let blob = other.formulae.join("layouts/hello/blobs/sha256").join(&hex);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, &bytes).unwrap();
    let run = other.pkg(&["install", "hello"]).failure();
    run.says("mismatch");
    assert!(
        other.cellar_versions("hello").is_empty(),
        "{}",
        other.prefix_listing()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Makes a layout's `index.json` state `size` for its first entry, as the seed's anakin layout
/// misstates its manifest's; returns the index as written.
fn misstate_first_size(layout: &Path, size: u64) -> serde_json::Value {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["size"] = size.into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    index
}

/// The seed's anakin layout says its manifest has 548 bytes; the blob has 504. pkg accepts an
/// `index.json` size that is wrong when the digest verifies (with a warning); inside a manifest,
/// which is content-addressed, a wrong size is refused.
#[test]
fn layout_with_a_misstated_index_size_installs_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = TestContext::new();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "quirky");
    let layout = scratch(&tmp, "quirk");
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&layout),
        ],
    );
    let real = out["manifest"]["size"].as_u64().unwrap();
    let index_path = layout.join("index.json");
    let mut index = misstate_first_size(&layout, real + 44);
    ctx.write_formula(
        "hello",
        &formula(
            "hello",
            &[("1.0.0", &format!("oci:{}", layout.display()), "1.0.0")],
        ),
    );
    let run = ctx.pkg(&["install", "hello"]).success();
    run.says(&format!("says {} bytes but the blob has {real}", real + 44));
    run.says("digest verifies");
    assert_eq!(run_bin(&ctx, "hello"), "quirky\n");

    // The same lie inside the manifest (about the layer) is refused.
    let other = TestContext::new();
    let manifest_hex = s(&out["manifest"]["digest"])
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let mut manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&manifest_hex)).unwrap(),
    )
    .unwrap();
    let layer_size = manifest["layers"][0]["size"].as_u64().unwrap();
    manifest["layers"][0]["size"] = (layer_size + 44).into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256_digest(&bytes);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
        &bytes,
    )
    .unwrap();
    index["manifests"][0]["digest"] = digest.clone().into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    other.write_formula(
        "hello",
        &formula(
            "hello",
            &[("1.0.0", &format!("oci:{}", layout.display()), "1.0.0")],
        ),
    );
    let run = other.pkg(&["install", "hello"]).failure();
    run.says("size");
    assert!(
        other.cellar_versions("hello").is_empty(),
        "{}",
        other.prefix_listing()
    );
}

/// A second platform bottled into a layout whose `index.json` misstates the first manifest's
/// size (as the seed's anakin layout does) makes an index that carries the true size: skopeo
/// copies it, `--push` sends it, and both entries install.
#[test]
fn a_second_platform_in_a_misstated_layout_gets_the_true_size_in_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let (os, arch) = crate::faults::host_platform();
    let host = format!("{os}/{arch}");
    let other = if host == "darwin/arm64" {
        "linux/amd64"
    } else {
        "darwin/arm64"
    };
    let layout = scratch(&tmp, "quirk");
    let first_src = scratch(&tmp, "first");
    hello_tree(&first_src, "first platform");
    let first = bottle_json(
        &ctx,
        &[
            path_str(&first_src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--platform",
            other,
            "-o",
            path_str(&layout),
        ],
    );
    let real = first["manifest"]["size"].as_u64().unwrap();
    misstate_first_size(&layout, real + 44);

    let second_src = scratch(&tmp, "second");
    hello_tree(&second_src, "host platform");
    let pushed = format!("{}/acme/pushed:1.0.0", registry.host());
    let second = bottle_json(
        &ctx,
        &[
            path_str(&second_src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--platform",
            &host,
            "-o",
            path_str(&layout),
            "--push",
            &pushed,
        ],
    );
    let top = s(&second["layout_tag"]["digest"])
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(top)).unwrap())
            .unwrap();
    assert_eq!(merged["mediaType"], INDEX, "{merged}");
    let entries = merged["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{merged}");
    assert_eq!(entries[0]["digest"], first["manifest"]["digest"]);
    assert_eq!(
        entries[0]["size"].as_u64(),
        Some(real),
        "the true size, not the stated one"
    );

    // pkg pushed both platforms; skopeo, which checks every size, copies the layout's index.
    assert_eq!(second["push"]["media_type"], INDEX);
    let raw = skopeo_inspect(&pushed, true).unwrap();
    assert_eq!(sha256_digest(&raw), s(&second["push"]["digest"]));
    let copied = format!("{}/acme/copied:1.0.0", registry.host());
    skopeo_push(&layout, "1.0.0", &copied);
    let raw = skopeo_inspect(&copied, true).unwrap();
    assert_eq!(sha256_digest(&raw), s(&second["layout_tag"]["digest"]));
    ctx.write_formula(
        "hello",
        &formula(
            "hello",
            &[(
                "1.0.0",
                &format!("{}/acme/pushed", registry.host()),
                "1.0.0",
            )],
        ),
    );
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "host platform\n");
}

#[test]
fn mount_from_a_sibling_repository_uploads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.url(), false);
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "mounted");
    let one = format!("{}/acme/one:1.0.0", proxy.host());
    bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--push",
            &one,
        ],
    );
    proxy.clear();
    let two = format!("{}/acme/two:1.0.0", proxy.host());
    let from = format!("{}/acme/one", proxy.host());
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--push",
            &two,
            "--mount-from",
            &from,
        ],
    );
    let hows: Vec<&str> = out["push"]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| s(&b["how"]))
        .collect();
    assert_eq!(hows, ["mounted", "mounted"], "{}", out["push"]);
    let requests = proxy.requests();
    let mounts: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path.contains("mount=") && r.path.contains("from=acme%2Fone")
        })
        .collect();
    assert_eq!(mounts.len(), 2, "{requests:#?}");
    assert!(mounts.iter().all(|r| r.status == 201), "{mounts:#?}");
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "PATCH" || (r.method == "PUT" && r.path.contains("/blobs/"))),
        "{requests:#?}"
    );
    let raw = skopeo_inspect(&format!("{}/acme/two:1.0.0", registry.host()), true).unwrap();
    assert_eq!(sha256_digest(&raw), s(&out["push"]["digest"]));
}

/// A mount the registry declines (the source lacks the blob: 202 and an upload session) goes on
/// as an upload into that session; and the repositories a `--write` formula already names are
/// tried as mount sources without `--mount-from`.
#[test]
fn a_declined_mount_becomes_the_upload_and_the_formula_names_mount_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.url(), false);
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "declined");
    let bottle = |target: &str, extra: &[&str]| {
        let mut args = vec![
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--push",
            target,
        ];
        args.extend_from_slice(extra);
        bottle_json(&ctx, &args)
    };
    let hows = |out: &serde_json::Value| -> Vec<String> {
        out["push"]["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| s(&b["how"]).to_owned())
            .collect()
    };

    // acme/empty holds nothing: each mount is answered 202, and the blob goes up in that session.
    let empty = format!("{}/acme/empty", proxy.host());
    let one = format!("{}/acme/one:1.0.0", proxy.host());
    let out = bottle(&one, &["--mount-from", &empty]);
    assert_eq!(hows(&out), ["uploaded", "uploaded"], "{}", out["push"]);
    let requests = proxy.requests();
    let declined: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("mount="))
        .collect();
    assert_eq!(declined.len(), 2, "{requests:#?}");
    assert!(declined.iter().all(|r| r.status == 202), "{declined:#?}");
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(
        posts, 2,
        "no second upload session was opened: {requests:#?}"
    );
    let raw = skopeo_inspect(&format!("{}/acme/one:1.0.0", registry.host()), true).unwrap();
    assert_eq!(sha256_digest(&raw), s(&out["push"]["digest"]));

    // A formula whose other version lives in acme/one: pushing to acme/two mounts from there.
    let formula_file = tmp.path().join("hello.toml");
    std::fs::write(
        &formula_file,
        formula(
            "hello",
            &[("0.9.0", &format!("{}/acme/one", proxy.host()), "1.0.0")],
        ),
    )
    .unwrap();
    proxy.clear();
    let two = format!("{}/acme/two:1.0.0", proxy.host());
    let out = bottle(&two, &["--write", path_str(&formula_file)]);
    assert_eq!(hows(&out), ["mounted", "mounted"], "{}", out["push"]);
    let written = std::fs::read_to_string(&formula_file).unwrap();
    assert!(written.contains("[versions.\"1.0.0\"]"), "{written}");
    assert!(written.contains("[versions.\"0.9.0\"]"), "{written}");
}

/// `pkg login` with the password on stdin: wrong credentials store nothing; right ones are
/// stored with mode 0600 and used by a push without any credential in the environment.
#[test]
fn login_stores_checked_credentials_that_push_then_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let ctx = TestContext::new();
    let login = |password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pkg"))
            .args([
                "login",
                &registry.host(),
                "--username",
                USERNAME,
                "--password-stdin",
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &ctx.home)
            .env("PKG_PREFIX", &ctx.prefix)
            .env("PKG_CACHE", &ctx.cache)
            .env("PKG_FORMULAE", &ctx.formulae)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let auth = ctx.home.join(".config/pkg/auth.json");
    let out = login("wrong-password");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing was stored"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    assert!(!auth.exists());

    let out = login(PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(
        stored["auths"][registry.host()]["auth"].is_string(),
        "{stored}"
    );

    let src = scratch(&tmp, "src");
    hello_tree(&src, "logged in");
    let target = format!("{}/acme/login:1.0.0", registry.host());
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "login",
            "--version",
            "1.0.0",
            "--push",
            &target,
        ],
    );
    let raw = skopeo_inspect(&target, true).unwrap();
    assert_eq!(sha256_digest(&raw), s(&out["push"]["digest"]));
}

/// A keg installed from a bottle, bottled again with `--keg`, gives the same layer: the receipt
/// pkg adds is left out and the unpacked modes, links and directories pack back identically.
#[test]
fn bottling_an_installed_keg_round_trips_to_the_same_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = TestContext::new();
    let file = ctx.formulae.join("hello.toml");
    std::fs::write(&file, formula("hello", &[])).unwrap();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "round trip");
    let layout = ctx.formulae.join("layouts/hello");
    let first = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&layout),
            "--write",
            path_str(&file),
        ],
    );
    ctx.pkg(&["install", "hello"]).success();
    assert!(ctx.keg("hello", "1.0.0").join(".pkg/receipt.json").exists());
    let again = bottle_json(
        &ctx,
        &["--keg", "hello", "-o", path_str(&scratch(&tmp, "from-keg"))],
    );
    assert_eq!(again["name"], "hello");
    assert_eq!(again["version"], "1.0.0");
    // (The manifests differ: the first took the formula's description as an annotation.)
    assert_eq!(again["layer"], first["layer"], "{}", ctx.prefix_listing());

    // A Homebrew-style name with `@` is a keg name too, alone or with its version.
    let file = ctx.formulae.join("tool@2.toml");
    std::fs::write(&file, formula("tool@2", &[])).unwrap();
    bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "tool@2",
            "--version",
            "2.1.0",
            "-o",
            path_str(&ctx.formulae.join("layouts/tool")),
            "--write",
            path_str(&file),
        ],
    );
    ctx.pkg(&["uninstall", "hello"]).success(); // its bin/hello would be in the way
    ctx.pkg(&["install", "tool@2"]).success();
    for keg in ["tool@2", "tool@2@2.1.0"] {
        let out = bottle_json(
            &ctx,
            &[
                "--keg",
                keg,
                "-o",
                path_str(&scratch(&tmp, &format!("keg-{keg}"))),
            ],
        );
        assert_eq!(out["name"], "tool@2", "{keg}");
        assert_eq!(out["version"], "2.1.0", "{keg}");
    }
}

/// `SOURCE_DATE_EPOCH` sets the entries' mtime: the same value gives the same digest, another
/// value another one.
#[test]
fn source_date_epoch_sets_the_mtime_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = TestContext::new();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "epoch");
    let run = |epoch: Option<&str>, out: &str| -> serde_json::Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkg"));
        cmd.args([
            "bottle",
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "--json",
        ])
        .arg("-o")
        .arg(scratch(&tmp, out))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &ctx.home)
        .env("PKG_PREFIX", &ctx.prefix)
        .env("PKG_CACHE", &ctx.cache)
        .stdin(Stdio::null());
        if let Some(e) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", e);
        }
        let output = cmd.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let default = run(None, "a");
    let one = run(Some("1700000000"), "b");
    let two = run(Some("1700000000"), "c");
    assert_eq!(one["layer"]["digest"], two["layer"]["digest"]);
    assert_ne!(one["layer"]["digest"], default["layer"]["digest"]);
    let hex = s(&one["layer"]["digest"])
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let bytes = std::fs::read(scratch(&tmp, "b").join("blobs/sha256").join(hex)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in archive.entries().unwrap() {
        assert_eq!(entry.unwrap().header().mtime().unwrap(), 1_700_000_000);
    }
}

/// A registry that answers a PATCH with 416 is asked where the upload stands (GET, `Range`), and
/// the upload goes on from there; small `--chunk-threshold`/`--chunk-size` make many chunks.
#[test]
fn a_chunked_upload_resynchronizes_after_416() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let proxy = Proxy::start_with(&registry.url(), true, Some(2));
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    let data = noise(40_000, 7);
    std::fs::write(src.join("data.bin"), &data).unwrap();
    let target = format!("{}/acme/resync:1.0.0", proxy.host());
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "resync",
            "--version",
            "1.0.0",
            "--push",
            &target,
            "--chunk-threshold",
            "1K",
            "--chunk-size",
            "8K",
        ],
    );
    let requests = proxy.requests();
    let statuses: Vec<(String, u16)> = requests
        .iter()
        .filter(|r| {
            r.path.contains("/blobs/uploads/") && matches!(r.method.as_str(), "PATCH" | "GET")
        })
        .map(|r| (r.method.clone(), r.status))
        .collect();
    // The config goes up whole; the layer (~40 KB): PATCH 202, PATCH 416, GET 204, the rest.
    let layer_size = out["layer"]["size"].as_u64().unwrap();
    let chunks = layer_size.div_ceil(8 * 1024) as usize;
    assert_eq!(
        &statuses[..3],
        &[
            ("PATCH".to_owned(), 202),
            ("PATCH".to_owned(), 416),
            ("GET".to_owned(), 204)
        ],
        "{requests:#?}"
    );
    let patches_ok = statuses
        .iter()
        .filter(|(m, st)| m == "PATCH" && *st == 202)
        .count();
    assert_eq!(patches_ok, chunks, "{requests:#?}");
    ctx.write_formula(
        "resync",
        &formula(
            "resync",
            &[(
                "1.0.0",
                &format!("{}/acme/resync", registry.host()),
                "1.0.0",
            )],
        ),
    );
    ctx.pkg(&["install", "resync"]).success();
    assert!(std::fs::read(ctx.keg("resync", "1.0.0").join("data.bin")).unwrap() == data);
}

/// Push credentials from the auth files other tools write, in the order they read them
/// (podman's `auth.json` before docker's `config.json`), and the formula entry printed when
/// `--write` is not given.
#[test]
fn push_reads_podman_and_docker_auth_files_and_prints_the_formula_entry() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let ctx = TestContext::new();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "from auth files");
    let auth_json = |password: &str| {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{password}"));
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        )
    };
    let docker = ctx.home.join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    std::fs::write(&docker, auth_json(PASSWORD)).unwrap();
    let push = |repo: &str, out: &str| {
        let target = format!("{}/acme/{repo}:1.0.0", registry.host());
        let layout = scratch(&tmp, out);
        ctx.pkg(&[
            "bottle",
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&layout),
            "--push",
            &target,
        ])
    };
    let run = push("viadocker", "l1").success();
    // No --write: the entry to paste into the formula is printed on stdout.
    let entry: toml::Table = toml::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not a formula entry ({e}):\n{}", run.stdout));
    let v = &entry["versions"]["1.0.0"];
    assert_eq!(
        v["repository"].as_str(),
        Some(format!("{}/acme/viadocker", registry.host()).as_str())
    );
    assert_eq!(v["tag"].as_str(), Some("1.0.0"));
    let digest = v["digest"].as_str().unwrap().to_owned();
    let raw = skopeo_inspect(&format!("{}/acme/viadocker:1.0.0", registry.host()), true).unwrap();
    assert_eq!(sha256_digest(&raw), digest);

    // Wrong in docker's file, right in podman's: podman's is read first.
    std::fs::write(&docker, auth_json("wrong")).unwrap();
    push("wrongdocker", "l2").failure();
    let podman = ctx.home.join(".config/containers/auth.json");
    std::fs::create_dir_all(podman.parent().unwrap()).unwrap();
    std::fs::write(&podman, auth_json(PASSWORD)).unwrap();
    push("viapodman", "l3").success();
    assert!(skopeo_inspect(&format!("{}/acme/viapodman:1.0.0", registry.host()), true).is_ok());
}

/// `PKG_REGISTRY_MIRRORS` applies to pushes too: a push to ghcr.io lands on the mirror, and the
/// formula entry still names ghcr.io.
#[test]
fn a_push_to_a_mirrored_registry_goes_to_the_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials()
        .mirrors(&format!("ghcr.io={}", registry.url()));
    let src = scratch(&tmp, "src");
    hello_tree(&src, "mirrored");
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.0",
            "-o",
            path_str(&scratch(&tmp, "layout")),
            "--push",
            "ghcr.io/acme/mirrored:1.0.0",
        ],
    );
    let raw = skopeo_inspect(&format!("{}/acme/mirrored:1.0.0", registry.host()), true)
        .expect("the push reached the mirror");
    assert_eq!(sha256_digest(&raw), s(&out["push"]["digest"]));
    ctx.write_formula(
        "hello",
        &formula("hello", &[("1.0.0", "ghcr.io/acme/mirrored", "1.0.0")]),
    );
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "mirrored\n");
}

#[test]
fn a_push_to_a_namespace_names_the_image_as_homebrew_does() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "tool two");
    let file = ctx.formulae.join("tool@2.toml");
    std::fs::write(&file, formula("tool@2", &[])).unwrap();
    let namespace = format!("{}/acme/tap/", registry.host());
    let out = bottle_json(
        &ctx,
        &[
            path_str(&src),
            "--name",
            "tool@2",
            "--version",
            "2.1",
            "--push",
            &namespace,
            "--write",
            path_str(&file),
        ],
    );
    // `tool@2` is `NAMESPACE/tool/2`, tagged with its version as Homebrew tags it.
    let image = format!("{}/acme/tap/tool/2", registry.host());
    let manifest = skopeo_inspect(&format!("{image}:2.1"), true)
        .unwrap_or_else(|e| panic!("skopeo finds no {image}:2.1: {e}\n{out}"));
    assert_eq!(sha256_digest(&manifest), s(&out["push"]["digest"]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("repository = \"{image}\"")),
        "{text}"
    );
    ctx.pkg(&["install", "tool@2"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "tool two\n");
    let receipt = ctx.receipt("tool@2", "2.1");
    assert_eq!(receipt["repository"], image.as_str(), "{receipt}");
}

/// zstd bottles (issue 33): `--compression zstd[:LEVEL]` writes a `tar+zstd` layer that the zstd
/// tool checks and GNU tar reads, the same bytes every time (and from other mtimes), other bytes
/// at another level; pushed by skopeo and installed, the keg holds every file of the directory
/// byte for byte. A Homebrew-named push refuses zstd (brew reads only gzip), and a level out of
/// range is bad input; both before anything is written.
#[test]
fn a_zstd_bottle_round_trips_byte_exact_and_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = scratch(&tmp, "src");
    hello_tree(&src, "hello from zstd");
    // Something worth compressing, and bytes zstd cannot shrink.
    std::fs::write(src.join("share/hello/words"), "zstd ".repeat(50_000)).unwrap();
    std::fs::write(src.join("share/hello/noise"), noise(300_000, 7)).unwrap();
    let bottle = |layout: &Path, compression: &str| {
        bottle_json(
            &ctx,
            &[
                path_str(&src),
                "--name",
                "hello",
                "--version",
                "1.0.0",
                "-o",
                path_str(layout),
                "--platform",
                "linux/amd64",
                "--compression",
                compression,
            ],
        )
    };
    let first = bottle(&scratch(&tmp, "a"), "zstd");
    set_mtime(&src.join("share/hello/README"), 1_000_000);
    let second = bottle(&scratch(&tmp, "b"), "zstd");
    assert_eq!(
        first["layer"]["digest"], second["layer"]["digest"],
        "reproducible"
    );
    assert_eq!(first["manifest"]["digest"], second["manifest"]["digest"]);
    assert_eq!(
        first["layer"]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert!(s(&first["layer"]["filename"]).ends_with(".bottle.tar.zst"));
    let gz = bottle(&scratch(&tmp, "gz"), "gzip");
    let level = bottle(&scratch(&tmp, "l19"), "zstd:19");
    assert_ne!(gz["layer"]["digest"], first["layer"]["digest"]);
    assert_ne!(level["layer"]["digest"], first["layer"]["digest"]);
    // The same tar inside, whatever the codec.
    assert_eq!(gz["layer"]["diff_id"], first["layer"]["diff_id"]);
    assert_eq!(level["layer"]["diff_id"], first["layer"]["diff_id"]);

    // The peers read it: zstd checks the frame, GNU tar lists the entries.
    let layout = tmp.path().join("a");
    let blob = layout
        .join("blobs/sha256")
        .join(&s(&first["layer"]["digest"])[7..]);
    crate::realworld::sh(
        tmp.path(),
        &format!(
            "zstd -q -t '{b}' && zstd -q -dc '{b}' | tar -tf - | grep -qx 'share/hello/words'",
            b = blob.display()
        ),
    );

    let dest = format!("{}/acme/hello:1.0.0", registry.host());
    skopeo_push(&layout, "1.0.0", &dest);
    ctx.write_formula(
        "hello",
        &formula(
            "hello",
            &[("1.0.0", &format!("{}/acme/hello", registry.host()), "1.0.0")],
        ),
    );
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello from zstd\n");
    let keg = ctx.keg("hello", "1.0.0");
    for rel in [
        "bin/hello",
        "share/hello/README",
        "share/hello/words",
        "share/hello/noise",
    ] {
        assert_eq!(
            std::fs::read(keg.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read_link(keg.join("share/hello/run")).unwrap(),
        PathBuf::from("../../bin/hello")
    );
    assert!(keg.join("share/hello/empty").is_dir());
    assert_eq!(
        ctx.receipt("hello", "1.0.0")["layers"][0],
        first["layer"]["digest"]
    );

    // Refused before anything is written.
    for (compression, push, says) in [
        (
            "zstd",
            Some(format!("{}/acme/", registry.host())),
            "brew reads only gzip",
        ),
        ("zstd:42", None, "LEVEL from 1 to 19"),
        ("brotli", None, "expected gzip, zstd or zstd:LEVEL"),
    ] {
        let out = tmp.path().join(format!("refused-{compression}"));
        let mut args = vec![
            "bottle",
            path_str(&src),
            "--name",
            "hello",
            "--version",
            "1.0.1",
            "-o",
            path_str(&out),
            "--compression",
            compression,
        ];
        if let Some(p) = &push {
            args.extend(["--push", p.as_str()]);
        }
        ctx.pkg(&args).failure_with(2).says(says);
        assert!(!out.exists(), "{compression}: a layout was written");
    }
}
