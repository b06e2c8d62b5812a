//! `pkg install` against a real registry with token auth.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::token::{Caller, TokenRequest};
use crate::harness::{Built, Fixture, Formula, ImageSpec, Registry, TestContext, sha256_digest};

/// The platform pkg should pick from an index on this machine, in OCI terms.
fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (std::env::consts::OS, arch)
}

/// A platform that is not this machine's.
fn foreign_platform() -> (&'static str, &'static str) {
    match host_platform() {
        ("darwin", "arm64") => ("linux", "s390x"),
        _ => ("darwin", "arm64"),
    }
}

/// An image holding `bin/hello`, a shell script that prints `text`.
fn hello_image(text: &str) -> ImageSpec {
    let (os, arch) = host_platform();
    ImageSpec::new(os, arch).file("bin/hello", format!("#!/bin/sh\necho {text}\n"), 0o755)
}

/// Pushes `acme/hello:1.0.0` (printing "hello from pkg") and writes its formula.
fn publish_hello(registry: &Registry, ctx: &TestContext, digest: Option<&str>) -> Built {
    let built = registry.push(
        "acme/hello",
        "1.0.0",
        &Fixture::Image(hello_image("hello from pkg")),
    );
    write_hello_formula(registry, ctx, digest);
    built
}

/// The formula for `acme/hello:1.0.0`, optionally pinned.
fn write_hello_formula(registry: &Registry, ctx: &TestContext, digest: Option<&str>) {
    let repo = format!("{}/acme/hello", registry.host());
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version_with("1.0.0", &repo, "1.0.0", digest, &[])
            .to_toml(),
    );
}

/// Runs a program and returns its stdout; panics when it fails.
fn run_program(path: &Path) -> String {
    let out = Command::new(path)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn exists_or_is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// No keg, no `opt` link, no `bin` link for `name`.
#[track_caller]
fn assert_nothing_installed(ctx: &TestContext, name: &str, bins: &[&str]) {
    let listing = ctx.prefix_listing();
    assert!(
        !exists_or_is_link(&ctx.prefix.join("Cellar").join(name)),
        "a keg of {name} exists:\n{listing}"
    );
    assert!(
        !exists_or_is_link(&ctx.prefix.join("opt").join(name)),
        "opt/{name} exists:\n{listing}"
    );
    for bin in bins {
        assert!(
            !exists_or_is_link(&ctx.prefix.join("bin").join(bin)),
            "bin/{bin} exists:\n{listing}"
        );
    }
}

/// A relative symlink at `link` that resolves to `target`.
#[track_caller]
fn assert_relative_link(link: &Path, target: &Path) {
    let dest = std::fs::read_link(link)
        .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", link.display()));
    assert!(
        dest.is_relative(),
        "{} -> {} is absolute; links must be relative",
        link.display(),
        dest.display()
    );
    assert_eq!(
        std::fs::canonicalize(link)
            .unwrap_or_else(|e| panic!("{} does not resolve: {e}", link.display())),
        std::fs::canonicalize(target).unwrap(),
        "{} points elsewhere",
        link.display()
    );
}

/// Token requests made after the first `since` ones.
fn requests_since(registry: &Registry, since: usize) -> Vec<TokenRequest> {
    registry.issuer().requests().split_off(since)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&p));
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn installed_script_runs_from_prefix_bin_with_receipt_and_relative_links() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let built = publish_hello(&registry, &ctx, None);

    ctx.pkg(&["install", "hello"]).success();

    let keg = ctx.keg("hello", "1.0.0");
    let script = keg.join("bin/hello");
    let mode = std::fs::metadata(&script)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", script.display(), ctx.prefix_listing()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the keg keeps the layer's file mode");

    let link = ctx.prefix.join("bin/hello");
    assert_relative_link(&link, &script);
    assert_eq!(run_program(&link), "hello from pkg\n");
    assert_relative_link(&ctx.prefix.join("opt/hello"), &keg);

    let receipt = ctx.receipt("hello", "1.0.0");
    assert_eq!(receipt["schema"], 1, "{receipt}");
    assert_eq!(receipt["name"], "hello", "{receipt}");
    assert_eq!(receipt["version"], "1.0.0", "{receipt}");
    assert_eq!(
        receipt["repository"],
        format!("{}/acme/hello", registry.host()),
        "{receipt}"
    );
    assert_eq!(receipt["tag"], "1.0.0", "{receipt}");
    assert_eq!(receipt["manifest_digest"], *built.digest, "{receipt}");
    assert_eq!(
        receipt["layers"],
        serde_json::json!([built.layer_digest()]),
        "{receipt}"
    );
    assert_eq!(receipt["installed_on_request"], true, "{receipt}");
    assert!(receipt["time"].is_u64(), "{receipt}");
    let files = receipt["files"].as_array().expect("files is a list");
    assert!(
        files.iter().any(|f| f == "bin/hello"),
        "receipt files lack bin/hello: {receipt}"
    );
}

#[test]
fn darwin_artifact_from_ghcr_installs_on_linux_through_a_mirror() {
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.mirrors(&format!("ghcr.io={}", registry.url()));

    // Like the real anakin package: a darwin/amd64 config, a picture and a macOS AppleDouble
    // file, no bin/.
    let jpeg: Vec<u8> = [0xff, 0xd8, 0xff, 0xe0]
        .into_iter()
        .chain((0..4096u32).map(|i| (i * 31 % 251) as u8))
        .chain([0xff, 0xd9])
        .collect();
    let apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ";
    let repo = "cortinico/space-unlimited-space/anakin";
    let built = registry.push(
        repo,
        "1.0.0",
        &Fixture::Image(
            ImageSpec::new("darwin", "amd64")
                .file("anakin.jpg", &jpeg, 0o644)
                .file("._anakin.jpg", apple_double, 0o644),
        ),
    );
    ctx.write_formula(
        "anakin",
        &Formula::new("anakin")
            .version_with(
                "1.0.0",
                &format!("ghcr.io/{repo}"),
                "1.0.0",
                Some(&built.digest),
                &[],
            )
            .to_toml(),
    );
    let before = registry.issuer().request_count();

    // The test's own `anakin` beside the built-in one: named by its source (issue 27).
    ctx.pkg(&["install", "anakin"])
        .failure_with(2)
        .says("local, builtin");
    ctx.pkg(&["install", "local/anakin"]).success();

    let keg = ctx.keg("anakin", "1.0.0");
    assert_eq!(
        std::fs::read(keg.join("anakin.jpg"))
            .unwrap_or_else(|e| panic!("anakin.jpg missing ({e}):\n{}", ctx.prefix_listing())),
        jpeg
    );
    assert_relative_link(&ctx.prefix.join("opt/anakin"), &keg);
    let bin_entries: Vec<_> = std::fs::read_dir(ctx.prefix.join("bin"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        bin_entries.is_empty(),
        "an artifact without bin/ links nothing: {bin_entries:?}"
    );
    let receipt = ctx.receipt("anakin", "1.0.0");
    assert_eq!(
        receipt["repository"],
        format!("ghcr.io/{repo}"),
        "{receipt}"
    );
    assert_eq!(receipt["manifest_digest"], *built.digest, "{receipt}");

    let requests = requests_since(&registry, before);
    assert!(
        requests
            .iter()
            .any(|r| r.scopes == [format!("repository:{repo}:pull")]),
        "the mirror was reached through the issuer with the repository's own scope: {requests:?}"
    );
}

#[test]
fn dependency_is_installed_first_and_not_on_request() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let (os, arch) = host_platform();
    registry.push(
        "acme/libgreet",
        "2.1.0",
        &Fixture::Image(ImageSpec::new(os, arch).file("share/libgreet/greeting", "hi\n", 0o644)),
    );
    registry.push(
        "acme/hello",
        "1.0.0",
        &Fixture::Image(hello_image("hello from pkg")),
    );
    let host = registry.host();
    ctx.write_formula(
        "libgreet",
        &Formula::new("libgreet")
            // 1.0.0 does not satisfy `^2`; it is never pushed, so choosing it fails loudly.
            .version("1.0.0", &format!("{host}/acme/libgreet"), "1.0.0")
            .version("2.1.0", &format!("{host}/acme/libgreet"), "2.1.0")
            .to_toml(),
    );
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .bin(&["bin/hello"])
            .version_with(
                "1.0.0",
                &format!("{host}/acme/hello"),
                "1.0.0",
                None,
                &[("libgreet", "^2")],
            )
            .to_toml(),
    );

    ctx.pkg(&["install", "hello"]).success();

    assert_eq!(ctx.cellar_versions("libgreet"), ["2.1.0"]);
    assert_eq!(
        std::fs::read_to_string(ctx.keg("libgreet", "2.1.0").join("share/libgreet/greeting"))
            .unwrap(),
        "hi\n"
    );
    assert_eq!(
        run_program(&ctx.prefix.join("bin/hello")),
        "hello from pkg\n"
    );
    let dep = ctx.receipt("libgreet", "2.1.0");
    let top = ctx.receipt("hello", "1.0.0");
    assert_eq!(dep["installed_on_request"], false, "{dep}");
    assert_eq!(top["installed_on_request"], true, "{top}");

    let written = |name: &str, version: &str| {
        std::fs::metadata(ctx.keg(name, version).join(".pkg/receipt.json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert!(
        written("libgreet", "2.1.0") <= written("hello", "1.0.0"),
        "the dependency's keg was completed after the package that needs it"
    );
}

#[test]
fn image_index_installs_the_host_platform_manifest() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let (os, arch) = host_platform();
    let (other_os, other_arch) = foreign_platform();
    // The foreign entry comes first so that "take the first manifest" fails.
    let built = registry.push(
        "acme/multi",
        "1.0.0",
        &Fixture::Index(vec![
            ImageSpec::new(other_os, other_arch).file(
                "share/multi/platform",
                format!("{other_os}/{other_arch}\n"),
                0o644,
            ),
            ImageSpec::new(os, arch).file("share/multi/platform", format!("{os}/{arch}\n"), 0o644),
        ]),
    );
    let host_image = &built.images[1];
    ctx.write_formula(
        "multi",
        &Formula::new("multi")
            .version("1.0.0", &format!("{}/acme/multi", registry.host()), "1.0.0")
            .to_toml(),
    );

    ctx.pkg(&["install", "multi"]).success();

    assert_eq!(
        std::fs::read_to_string(ctx.keg("multi", "1.0.0").join("share/multi/platform")).unwrap(),
        format!("{os}/{arch}\n")
    );
    let receipt = ctx.receipt("multi", "1.0.0");
    assert_eq!(
        receipt["layers"],
        serde_json::json!(host_image.layer_digests),
        "{receipt}"
    );
    assert_eq!(receipt["manifest_digest"], *built.digest, "{receipt}");
}

#[test]
fn image_index_without_the_host_platform_falls_back_to_the_entry_without_platform() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let (other_os, other_arch) = foreign_platform();
    let built = registry.push(
        "acme/multi",
        "1.0.0",
        &Fixture::Index(vec![
            ImageSpec::new(other_os, other_arch).file("share/multi/platform", "foreign\n", 0o644),
            ImageSpec::new(other_os, other_arch)
                .without_index_platform()
                .file("share/multi/platform", "generic\n", 0o644),
        ]),
    );
    ctx.write_formula(
        "multi",
        &Formula::new("multi")
            .version("1.0.0", &format!("{}/acme/multi", registry.host()), "1.0.0")
            .to_toml(),
    );

    ctx.pkg(&["install", "multi"]).success();

    assert_eq!(
        std::fs::read_to_string(ctx.keg("multi", "1.0.0").join("share/multi/platform")).unwrap(),
        "generic\n"
    );
    let receipt = ctx.receipt("multi", "1.0.0");
    assert_eq!(
        receipt["layers"],
        serde_json::json!(built.images[1].layer_digests),
        "{receipt}"
    );
}

#[test]
fn image_index_without_a_usable_platform_fails_naming_what_exists() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let (other_os, other_arch) = foreign_platform();
    registry.push(
        "acme/multi",
        "1.0.0",
        &Fixture::Index(vec![ImageSpec::new(other_os, other_arch).file(
            "share/multi/platform",
            "foreign\n",
            0o644,
        )]),
    );
    ctx.write_formula(
        "multi",
        &Formula::new("multi")
            .version("1.0.0", &format!("{}/acme/multi", registry.host()), "1.0.0")
            .to_toml(),
    );

    let run = ctx.pkg(&["install", "multi"]).failure();
    run.says(&format!("{other_os}/{other_arch}"));
    assert_nothing_installed(&ctx, "multi", &[]);
}

#[test]
fn pinned_digest_mismatch_installs_nothing_and_names_both_digests() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let pinned = sha256_digest(b"some other manifest");
    let built = publish_hello(&registry, &ctx, Some(&pinned));

    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says(&pinned).says(&built.digest);
    assert_nothing_installed(&ctx, "hello", &["hello"]);
}

#[test]
fn tampered_blob_is_rejected_and_leaves_no_trace_in_prefix_or_cache() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let built = publish_hello(&registry, &ctx, None);
    let layer = built.layer_digest().to_owned();
    let original = std::fs::read(registry.blob_path(&layer)).unwrap();
    let tampered = registry.tamper_blob(&layer);

    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says(&layer).says(&tampered);
    assert_nothing_installed(&ctx, "hello", &["hello"]);

    let tampered_hex = tampered.strip_prefix("sha256:").unwrap();
    let layer_hex = layer.strip_prefix("sha256:").unwrap();
    for file in files_under(&ctx.cache) {
        let bytes = std::fs::read(&file).unwrap();
        let actual = sha256_digest(&bytes);
        assert_ne!(
            actual,
            tampered,
            "the tampered bytes stayed in the cache at {}",
            file.display()
        );
        let name = file.to_string_lossy();
        if name.contains(layer_hex) || name.contains(tampered_hex) {
            assert_eq!(
                actual,
                layer,
                "cache file {} is named after a digest its bytes do not have",
                file.display()
            );
        }
    }

    // Once the registry serves the right bytes again, the install works: nothing was poisoned.
    std::fs::write(registry.blob_path(&layer), original).unwrap();
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(
        run_program(&ctx.prefix.join("bin/hello")),
        "hello from pkg\n"
    );
}

#[test]
fn reinstall_with_the_registry_stopped_is_served_from_the_cache() {
    let mut registry = Registry::start();
    let ctx = TestContext::new();
    publish_hello(&registry, &ctx, None);
    ctx.pkg(&["install", "hello"]).success();

    registry.stop();
    std::fs::remove_dir_all(ctx.prefix.join("Cellar/hello")).unwrap();
    std::fs::remove_file(ctx.prefix.join("bin/hello")).unwrap();
    std::fs::remove_file(ctx.prefix.join("opt/hello")).unwrap();

    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(
        run_program(&ctx.prefix.join("bin/hello")),
        "hello from pkg\n"
    );

    // A fresh prefix with the same cache works too.
    let fresh = ctx.sharing_cache();
    fresh.pkg(&["install", "hello"]).success();
    assert_eq!(
        run_program(&fresh.prefix.join("bin/hello")),
        "hello from pkg\n"
    );
}

#[test]
fn pinned_install_into_a_fresh_prefix_needs_no_registry_once_cached() {
    let mut registry = Registry::start();
    let ctx = TestContext::new();
    let digest = publish_hello(&registry, &ctx, None).digest;
    write_hello_formula(&registry, &ctx, Some(&digest));
    ctx.pkg(&["install", "hello"]).success();
    let before = registry.issuer().request_count();
    registry.stop();

    let fresh = ctx.sharing_cache();
    fresh.pkg(&["install", "hello"]).success();
    assert_eq!(
        run_program(&fresh.prefix.join("bin/hello")),
        "hello from pkg\n"
    );
    assert_eq!(
        fresh.receipt("hello", "1.0.0")["manifest_digest"],
        *digest,
        "receipt of the cached install"
    );
    assert_eq!(registry.issuer().request_count(), before);
}

#[test]
fn installing_an_installed_version_again_says_so_without_network() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish_hello(&registry, &ctx, None);
    ctx.pkg(&["install", "hello"]).success();
    let before = registry.issuer().request_count();

    for args in [&["install", "hello"][..], &["install", "hello@1.0.0"]] {
        ctx.pkg(args).success().says("already installed");
    }
    assert_eq!(
        registry.issuer().requests().len(),
        before,
        "the second install asked the token issuer: {:?}",
        requests_since(&registry, before)
    );
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
}

#[test]
fn anonymous_pull_asks_only_for_the_repository_pull_scope() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish_hello(&registry, &ctx, None);
    let before = registry.issuer().request_count();

    ctx.pkg(&["install", "hello"]).success();

    let requests = requests_since(&registry, before);
    assert!(!requests.is_empty(), "pkg never asked for a token");
    for r in &requests {
        assert_eq!(r.caller, Caller::Anonymous, "{requests:?}");
        assert_eq!(r.service.as_deref(), Some("test-registry"), "{requests:?}");
        assert_eq!(
            r.scopes,
            ["repository:acme/hello:pull"],
            "a useless or missing scope: {requests:?}"
        );
        assert_eq!(r.status, 200, "{requests:?}");
    }
}

#[test]
fn credentials_go_to_the_token_service_for_a_pull_scope() {
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    publish_hello(&registry, &ctx, None);
    let before = registry.issuer().request_count();

    ctx.pkg(&["install", "hello"]).success();

    let requests = requests_since(&registry, before);
    assert!(!requests.is_empty(), "pkg never asked for a token");
    for r in &requests {
        assert_eq!(r.caller, Caller::User, "{requests:?}");
        assert_eq!(r.scopes, ["repository:acme/hello:pull"], "{requests:?}");
    }
    assert_eq!(
        run_program(&ctx.prefix.join("bin/hello")),
        "hello from pkg\n"
    );
}

#[test]
fn wrong_credentials_fail_without_installing() {
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.credentials("tester", "wrong-password");
    publish_hello(&registry, &ctx, None);

    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says("credentials pkg sent were refused");
    assert!(
        !run.output().contains("wrong-password"),
        "the password was printed:\n{}",
        run.output()
    );
    assert_nothing_installed(&ctx, "hello", &["hello"]);
    assert!(
        registry
            .issuer()
            .requests()
            .iter()
            .any(|r| r.caller == Caller::BadCredentials),
        "pkg did not try its credentials"
    );
}

/// A registry that asks for `Basic` credentials (distribution's htpasswd auth) instead of
/// naming a token service: without credentials pkg says what it needs and installs nothing;
/// with them it sends them to the registry itself and installs. A wrong password is refused
/// and never printed.
#[test]
fn a_registry_with_basic_auth_gets_the_credentials_it_asks_for() {
    let registry = Registry::start_with_htpasswd();
    let mut ctx = TestContext::new();
    publish_hello(&registry, &ctx, None);

    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says("username and password");
    run.says("PKG_REGISTRY_USERNAME");
    assert_nothing_installed(&ctx, "hello", &["hello"]);

    ctx.credentials("tester", "not-the-password");
    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says("credentials pkg sent were refused");
    assert!(
        !run.output().contains("not-the-password"),
        "{}",
        run.output()
    );
    assert_nothing_installed(&ctx, "hello", &["hello"]);

    ctx.with_credentials();
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(
        run_program(&ctx.prefix.join("bin/hello")),
        "hello from pkg\n"
    );
    assert_eq!(
        registry.issuer().request_count(),
        0,
        "no token service is involved"
    );
}

#[test]
fn version_requests_pick_exact_range_or_newest() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let repo = format!("{}/acme/hello", registry.host());
    let mut formula = Formula::new("hello").bin(&["bin/hello"]);
    for v in ["1.0.0", "1.2.0", "2.0.0"] {
        registry.push(
            "acme/hello",
            v,
            &Fixture::Image(hello_image(&format!("hello {v}"))),
        );
        formula = formula.version(v, &repo, v);
    }
    ctx.write_formula("hello", &formula.to_toml());

    for (request, expected) in [
        ("hello@^1", "1.2.0"),
        ("hello@1.0.0", "1.0.0"),
        ("hello", "2.0.0"),
    ] {
        let prefix = ctx.sharing_cache();
        prefix.pkg(&["install", request]).success();
        assert_eq!(
            prefix.cellar_versions("hello"),
            [expected],
            "`pkg install {request}`"
        );
        assert_eq!(
            run_program(&prefix.prefix.join("bin/hello")),
            format!("hello {expected}\n"),
            "`pkg install {request}`"
        );
        assert_eq!(prefix.receipt("hello", expected)["tag"], expected);
    }
}

/// A formula whose registry does not exist: these failures must come before any network use.
fn offline_hello(ctx: &TestContext) {
    let mut formula = Formula::new("hello");
    for v in ["1.0.0", "1.2.0", "2.0.0"] {
        formula = formula.version(v, "127.0.0.1:9/acme/hello", v);
    }
    ctx.write_formula("hello", &formula.to_toml());
}

#[test]
fn unknown_formula_fails_with_a_suggestion() {
    let ctx = TestContext::new();
    offline_hello(&ctx);
    let run = ctx.pkg(&["install", "helo"]).failure();
    run.says("helo").says("hello");
    assert_nothing_installed(&ctx, "helo", &[]);
}

#[test]
fn unmatched_version_request_fails_listing_the_versions() {
    let ctx = TestContext::new();
    offline_hello(&ctx);
    for request in ["hello@^3", "hello@1.1.0"] {
        let run = ctx.pkg(&["install", request]).failure();
        run.says("1.0.0").says("1.2.0").says("2.0.0");
    }
    assert_nothing_installed(&ctx, "hello", &["hello"]);
}

#[test]
fn usage_errors_exit_with_2() {
    let ctx = TestContext::new();
    for args in [
        &["install", "--no-such-flag", "hello"][..],
        &["no-such-command"],
    ] {
        let run = ctx.pkg(args);
        assert_eq!(run.code, 2, "{run:?}");
    }
}

#[test]
fn unowned_file_in_prefix_bin_is_kept_unless_overwrite() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish_hello(&registry, &ctx, None);
    let bin = ctx.prefix.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mine = bin.join("hello");
    std::fs::write(&mine, "#!/bin/sh\necho mine\n").unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();

    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says("bin/hello");
    let meta = std::fs::symlink_metadata(&mine).unwrap();
    assert!(meta.is_file(), "the user's file was replaced");
    assert_eq!(run_program(&mine), "mine\n");

    ctx.pkg(&["install", "hello", "--overwrite"]).success();
    assert_relative_link(&mine, &ctx.keg("hello", "1.0.0").join("bin/hello"));
    assert_eq!(run_program(&mine), "hello from pkg\n");
}
