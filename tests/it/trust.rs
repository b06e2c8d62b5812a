//! Trust that cannot be sidestepped (issue 27): a name means one formula. A name defined by more
//! than one source (taps, PKG_FORMULAE, the API tap, built-in) is refused naming every source
//! unless the user names one (`SOURCE/NAME`); an installed package upgrades only from the source
//! it came from, and says so when that source is gone.

use std::path::Path;

use crate::faults::host_platform;
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

/// Pushes `acme/NAME:VERSION` holding `bin/NAME` that prints `says`.
fn push_tool(reg: &Registry, name: &str, version: &str, says: &str) {
    let (os, arch) = host_platform();
    reg.push(
        &format!("acme/{name}"),
        version,
        &Fixture::Image(ImageSpec::new(os, arch).file(
            &format!("bin/{name}"),
            format!("#!/bin/sh\necho {says}\n"),
            0o755,
        )),
    );
}

/// A directory tap holding `formula`.
fn tap_dir(root: &Path, tap: &str, name: &str, formula: &str) -> std::path::PathBuf {
    let dir = root.join(tap.replace('/', "-"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), formula).unwrap();
    dir
}

fn runs(ctx: &TestContext, bin: &str) -> String {
    let out = std::process::Command::new(ctx.prefix.join("bin").join(bin))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A formula whose `[verify]` policy wants a signature nobody made (sigstore's public-good
/// trust root from the fixtures), before its versions.
fn protected(name: &str, repository: &str, version: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/sigstore/cosign/trusted_root_pgi.json");
    let text = Formula::new(name)
        .bin(&[&format!("bin/{name}")])
        .version(version, repository, version)
        .to_toml();
    let (head, versions) = text.split_once("\n[versions").unwrap();
    format!(
        "{head}\n[verify]\nidentity = \"release@acme.example\"\nissuer = \"https://github.com/login/oauth\"\ntrust_root = \"{}\"\n\n[versions{versions}",
        root.display()
    )
}

#[test]
fn a_protected_formula_is_never_shadowed_by_a_same_name_formula_in_another_tap() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    push_tool(&reg, "sigtool", "1.0.0", "genuine");
    push_tool(&reg, "evil", "1.0.0", "attacker");
    let ctx = TestContext::new();
    let genuine = format!("{}/acme/sigtool", reg.host());
    let attacker = format!("{}/acme/evil", reg.host());
    let signed = tap_dir(
        tmp.path(),
        "zz/signed",
        "sigtool",
        &protected("sigtool", &genuine, "1.0.0"),
    );
    let other = tap_dir(
        tmp.path(),
        "aa/other",
        "sigtool",
        &Formula::new("sigtool")
            .bin(&["bin/evil"])
            .version("1.0.0", &attacker, "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["tap", "add", "zz/signed", signed.to_str().unwrap()])
        .success();
    ctx.pkg(&["tap", "add", "aa/other", other.to_str().unwrap()])
        .success();
    // `aa/other` sorts first; before, it won and the attacker's binary ran.
    let refused = ctx.pkg(&["install", "sigtool"]).failure_with(2);
    refused
        .says("more than one source")
        .says("zz/signed")
        .says("aa/other");
    assert!(ctx.cellar_versions("sigtool").is_empty());
    // Named, the protected one is held to its policy (nobody signed this image).
    ctx.pkg(&["install", "zz/signed/sigtool"])
        .failure()
        .says("release@acme.example");
    assert!(ctx.cellar_versions("sigtool").is_empty());
    ctx.pkg(&["info", "sigtool"])
        .failure_with(2)
        .says("more than one source");
    ctx.pkg(&["info", "zz/signed/sigtool"])
        .success()
        .says("sigtool");
    ctx.pkg(&["install", "nope/sigtool"])
        .failure_with(2)
        .says("no formula source named `nope`")
        .says("zz/signed");
}

#[test]
fn an_installed_package_upgrades_only_from_the_source_it_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    push_tool(&reg, "tool", "1.0.0", "genuine-1");
    push_tool(&reg, "evil", "2.0.0", "attacker");
    let ctx = TestContext::new();
    let genuine = format!("{}/acme/tool", reg.host());
    let attacker = format!("{}/acme/evil", reg.host());
    let good = tap_dir(
        tmp.path(),
        "zz/good",
        "tool",
        &Formula::new("tool")
            .bin(&["bin/tool"])
            .version("1.0.0", &genuine, "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["tap", "add", "zz/good", good.to_str().unwrap()])
        .success();
    ctx.pkg(&["install", "tool"]).success();
    assert_eq!(ctx.receipt("tool", "1.0.0")["source"], "zz/good");
    // A tap added later with a newer `tool`: upgrades keep to zz/good.
    let evil = tap_dir(
        tmp.path(),
        "aa/evil",
        "tool",
        &Formula::new("tool")
            .bin(&["bin/evil"])
            .version("2.0.0", &attacker, "2.0.0")
            .to_toml(),
    );
    ctx.pkg(&["tap", "add", "aa/evil", evil.to_str().unwrap()])
        .success();
    ctx.pkg(&["upgrade"]).success();
    ctx.pkg(&["outdated"]).success();
    assert_eq!(ctx.cellar_versions("tool"), ["1.0.0"]);
    assert_eq!(runs(&ctx, "tool"), "genuine-1");
    // The source it came from is gone: said, nothing changes.
    ctx.pkg(&["tap", "remove", "zz/good"]).success();
    ctx.pkg(&["upgrade", "tool"])
        .failure()
        .says("installed from zz/good, which no longer defines it")
        .says("aa/evil");
    assert_eq!(ctx.cellar_versions("tool"), ["1.0.0"]);
    assert_eq!(runs(&ctx, "tool"), "genuine-1");
    // Chosen by name, the other source is taken (and recorded).
    ctx.pkg(&["install", "aa/evil/tool@2.0.0"]).success();
    assert_eq!(ctx.receipt("tool", "2.0.0")["source"], "aa/evil");
}

/// Every path under `dir` whose text (or link target) holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    crate::containment::snapshot(dir)
        .into_iter()
        .filter(|(_, text)| text.contains(needle))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn credentials_in_tap_urls_are_refused_never_printed_or_stored() {
    let ctx = TestContext::new();
    for args in [
        &[
            "tap",
            "add",
            "homebrew/core",
            "--api",
            "http://user:S3CRET-PASS@127.0.0.1:9/api/",
        ][..],
        &[
            "tap",
            "add",
            "acme",
            "https://user:S3CRET-PASS@example.invalid/acme/formulae.git",
        ],
        &[
            "tap",
            "add",
            "acme",
            "https://S3CRET-PASS@example.invalid/acme/formulae.git",
        ],
    ] {
        let run = ctx.pkg(args).failure_with(2);
        run.says("carries a user name or password")
            .says("pkg login");
        assert!(!run.output().contains("S3CRET-PASS"), "{}", run.describe());
    }
    assert!(
        files_holding(&ctx.prefix, "S3CRET-PASS").is_empty(),
        "{}",
        ctx.prefix_listing()
    );
    assert!(files_holding(&ctx.home, "S3CRET-PASS").is_empty());
}

#[test]
fn terminal_controls_in_formula_text_are_escaped_on_screen_and_kept_in_json() {
    let ctx = TestContext::new();
    let desc = "Nice tool\u{1b}]0;pwned\u{7}\nerror: fake line";
    let text = Formula::new("shady")
        .version("1.0.0", "ghcr.io/acme/shady", "1.0.0")
        .to_toml()
        .replace(
            "desc = \"The shady test package\"",
            "desc = \"Nice tool\\u001b]0;pwned\\u0007\\nerror: fake line\"",
        )
        .replace(
            "homepage = \"https://example.com/shady\"",
            "homepage = \"https://example.com/\\u001b[2J\"",
        );
    ctx.write_formula("shady", &text);
    for args in [&["info", "shady"][..], &["search", "shady"]] {
        let run = ctx.pkg(args).success();
        assert!(
            !run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{7}'),
            "{}",
            run.describe()
        );
        assert!(
            !run.stdout.lines().any(|l| l.starts_with("error: fake")),
            "{}",
            run.stdout
        );
        run.says("\\u{1b}]0;pwned");
    }
    let json = ctx.pkg(&["info", "--json", "shady"]).success();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["packages"][0]["formula"]["desc"].as_str(), Some(desc));
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `pkg bottle DIR … --json`, which must succeed; the summary.
fn bottle(ctx: &TestContext, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bottle"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = ctx.pkg(&all).success();
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn a_push_never_moves_a_release_silently_and_its_digest_does_not_depend_on_write() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let dir = tmp.path().join("tool");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho one\n").unwrap();
    let formula = tmp.path().join("tool.toml");
    std::fs::write(
        &formula,
        "name = \"tool\"\ndesc = \"A tool\"\nhomepage = \"https://example.com\"\nlicense = \"MIT\"\n",
    )
    .unwrap();
    let base = |out: &str, target: &str| {
        vec![
            dir.to_str().unwrap().to_owned(),
            "--name".into(),
            "tool".into(),
            "--version".into(),
            "1.0.0".into(),
            "-o".into(),
            tmp.path().join(out).to_str().unwrap().to_owned(),
            "--push".into(),
            target.to_owned(),
        ]
    };
    let release = format!("{}/acme/tool:1.0.0", reg.host());
    // The same directory with and without --write: the same digest, so the tag stays put.
    let mut with_write = base("o1", &release);
    with_write.extend(["--write".into(), formula.to_str().unwrap().to_owned()]);
    let first = bottle(&ctx, &args(&with_write));
    assert_eq!(first["push"]["tag_state"], "created");
    let second = bottle(&ctx, &args(&base("o2", &release)));
    assert_eq!(second["push"]["digest"], first["push"]["digest"]);
    assert_eq!(second["push"]["tag_state"], "unchanged");
    // Other content on the released tag: refused with both digests, the tag unchanged.
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho two\n").unwrap();
    let mut other = vec!["bottle".to_owned()];
    other.extend(base("o3", &release));
    let refused = ctx.pkg(&args(&other)).failure();
    refused
        .says("is a released version")
        .says(first["push"]["digest"].as_str().unwrap())
        .says("--force");
    let formula_text = Formula::new("tool")
        .bin(&["bin/tool"])
        .version("1.0.0", &format!("{}/acme/tool", reg.host()), "1.0.0")
        .to_toml();
    ctx.write_formula("tool", &formula_text);
    ctx.pkg(&["install", "tool"]).success();
    assert_eq!(runs(&ctx, "tool"), "one");
    // A channel tag moves, and says from what.
    let channel = format!("{}/acme/tool:latest", reg.host());
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho one\n").unwrap();
    let was = bottle(&ctx, &args(&base("o4", &channel)));
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho two\n").unwrap();
    let moved = bottle(&ctx, &args(&base("o5", &channel)));
    assert_eq!(moved["push"]["tag_state"], "moved");
    assert_eq!(moved["push"]["previous_digest"], was["push"]["digest"]);
    assert_ne!(moved["push"]["digest"], was["push"]["digest"]);
}

/// A project with a Pkgfile of `app` and `hello` (each its own repository), locked.
fn locked_project(ctx: &TestContext, reg: &Registry) -> (std::path::PathBuf, String) {
    for name in ["app", "hello"] {
        push_tool(reg, name, "1.0.0", &format!("{name}-content"));
        // No `bin` list: whatever a keg holds in bin/ is linked, so nothing but the digests
        // tells the two packages apart.
        ctx.write_formula(
            name,
            &Formula::new(name)
                .version("1.0.0", &format!("{}/acme/{name}", reg.host()), "1.0.0")
                .to_toml(),
        );
    }
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    std::fs::write(&pkgfile, "[packages]\napp = \"*\"\nhello = \"*\"\n").unwrap();
    let file = pkgfile.to_str().unwrap().to_owned();
    ctx.pkg(&["bundle", "lock", "--file", &file]).success();
    (project.join("Pkgfile.lock"), file)
}

/// The lock's top-level digest of `name`.
fn locked_digest(text: &str, name: &str) -> String {
    let at = text.find(&format!("name = \"{name}\"")).unwrap();
    let rest = &text[at..];
    let d = rest.find("digest = \"").unwrap() + "digest = \"".len();
    rest[d..d + 71].to_owned()
}

#[test]
fn an_edited_or_swapped_lock_installs_nothing_warm_or_cold() {
    let reg = Registry::start();
    let ctx = TestContext::new();
    let (lockfile, file) = locked_project(&ctx, &reg);
    let text = std::fs::read_to_string(&lockfile).unwrap();
    let (app, hello) = (locked_digest(&text, "app"), locked_digest(&text, "hello"));
    // Warm the cache with both packages' real content, in another prefix.
    let warm = ctx.sharing_cache();
    warm.pkg(&["bundle", "install", "--locked", "--file", &file])
        .success();

    // 1. hello redirected to app's repository and digest (two edited lines).
    let redirected = text
        .replacen(
            &format!("{}/acme/hello", reg.host()),
            &format!("{}/acme/app", reg.host()),
            1,
        )
        .replacen(&hello, &app, 1);
    std::fs::write(&lockfile, &redirected).unwrap();
    let fresh = ctx.sharing_cache();
    let run = fresh
        .pkg(&["bundle", "install", "--locked", "--file", &file])
        .failure();
    run.says("Pkgfile.lock:")
        .says("acme/hello")
        .says("its formula");
    assert!(fresh.cellar_versions("hello").is_empty());
    ctx.pkg(&["bundle", "check", "--file", &file])
        .failure()
        .says("Pkgfile.lock:");

    // 2. Everything the two entries lock swapped (manifest digests, layers and sizes): warm,
    // the cache never hands app's manifest to hello's repository; cold, the failure names the
    // repository and digest, not a missing blob.
    let layers = |name: &str| {
        let at = text.find(&format!("name = \"{name}\"")).unwrap();
        let rest = &text[at..];
        let l = rest.find("[[package.platform.layers]]").unwrap();
        let block = &rest[l..];
        let end = block.find("\n\n").unwrap_or(block.len());
        block[..end].to_owned()
    };
    let (app_layers, hello_layers) = (layers("app"), layers("hello"));
    let swapped = text
        .replacen(&app, "SWAP", 1)
        .replacen(&hello, &app, 1)
        .replacen("SWAP", &hello, 1)
        .replacen(&app_layers, "SWAPLAYERS", 1)
        .replacen(&hello_layers, &app_layers, 1)
        .replacen("SWAPLAYERS", &hello_layers, 1);
    assert_ne!(swapped, text);
    std::fs::write(&lockfile, &swapped).unwrap();
    for (what, cache) in [("warm", None), ("cold", Some("cold-cache"))] {
        let mut other = ctx.sharing_cache();
        if let Some(dir) = cache {
            other.cache = ctx.home.join(dir);
        }
        let run = other.pkg(&["bundle", "install", "--locked", "--file", &file]);
        assert_ne!(run.code, 0, "{what}: {}", run.describe());
        assert!(other.cellar_versions("hello").is_empty(), "{what}");
        assert!(other.cellar_versions("app").is_empty(), "{what}");
        assert!(
            !run.output().contains("blob not found"),
            "{what}: {}",
            run.describe()
        );
    }
}

#[test]
fn a_frozen_lock_adds_no_tap_the_pkgfile_does_not_name() {
    let reg = Registry::start();
    let ctx = TestContext::new();
    let (lockfile, file) = locked_project(&ctx, &reg);
    let evil = ctx.home.join("evil-formulae");
    std::fs::create_dir_all(&evil).unwrap();
    let mut text = std::fs::read_to_string(&lockfile).unwrap();
    text = text.replacen(
        "\n[[package]]",
        &format!("\n[taps]\nevil = \"{}\"\n\n[[package]]", evil.display()),
        1,
    );
    std::fs::write(&lockfile, &text).unwrap();
    ctx.pkg(&["bundle", "install", "--frozen", "--file", &file])
        .failure()
        .says("Pkgfile.lock:")
        .says("`evil`");
    ctx.pkg(&["tap", "list"]).success();
    assert!(!ctx.prefix.join("var/pkg/taps/evil").exists());
}

#[test]
fn the_homebrew_core_api_tap_never_shadows_a_protected_formula_either() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = TestContext::new();
    // "homebrew" sorts before most taps: its API formula `sigtool` used to win.
    let doc = serde_json::json!([
        {"name": "sigtool", "desc": "not the real one", "homepage": "https://example.com",
         "versions": {"stable": "9.9.9"}, "revision": 0,
         "bottle": {"stable": {"rebuild": 0, "files": {"all": {"cellar": ":any_skip_relocation",
            "url": "https://ghcr.io/v2/homebrew/core/sigtool/blobs/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}}}
    ]);
    let api = tmp.path().join("formula.json");
    std::fs::write(&api, doc.to_string()).unwrap();
    ctx.pkg(&[
        "tap",
        "add",
        "homebrew/core",
        "--api",
        &format!("file://{}", api.display()),
    ])
    .success();
    let signed = tap_dir(
        tmp.path(),
        "zz/signed",
        "sigtool",
        &protected("sigtool", "ghcr.io/acme/sigtool", "1.0.0"),
    );
    ctx.pkg(&["tap", "add", "zz/signed", signed.to_str().unwrap()])
        .success();
    for args in [
        &["install", "sigtool"][..],
        &["deps", "sigtool"],
        &["info", "sigtool"],
    ] {
        let run = ctx.pkg(args);
        assert_ne!(run.code, 0, "{}", run.describe());
        run.says("homebrew/core").says("zz/signed");
    }
    ctx.pkg(&["info", "homebrew/core/sigtool"])
        .success()
        .says("9.9.9");
    ctx.pkg(&["info", "zz/signed/sigtool"])
        .success()
        .says("1.0.0");
}

#[test]
fn a_pkgfile_names_the_source_of_a_name_two_taps_define() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    push_tool(&reg, "tool", "1.0.0", "genuine");
    push_tool(&reg, "evil", "2.0.0", "attacker");
    let ctx = TestContext::new();
    for (tap, repo, version) in [
        ("zz/good", format!("{}/acme/tool", reg.host()), "1.0.0"),
        ("aa/evil", format!("{}/acme/evil", reg.host()), "2.0.0"),
    ] {
        let dir = tap_dir(
            tmp.path(),
            tap,
            "tool",
            &Formula::new("tool")
                .version(version, &repo, version)
                .to_toml(),
        );
        ctx.pkg(&["tap", "add", tap, dir.to_str().unwrap()])
            .success();
    }
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    let file = pkgfile.to_str().unwrap();
    std::fs::write(&pkgfile, "[packages]\ntool = \"*\"\n").unwrap();
    ctx.pkg(&["bundle", "lock", "--file", file])
        .failure_with(2)
        .says("more than one source");
    std::fs::write(&pkgfile, "[packages]\n\"zz/good/tool\" = \"*\"\n").unwrap();
    ctx.pkg(&["bundle", "lock", "--file", file]).success();
    let lock = std::fs::read_to_string(project.join("Pkgfile.lock")).unwrap();
    assert!(lock.contains("formula = \"tap zz/good\""), "{lock}");
    ctx.pkg(&["bundle", "install", "--locked", "--file", file])
        .success();
    assert_eq!(runs(&ctx, "tool"), "genuine");
    assert!(!ctx.prefix.join("bin/evil").exists());
    assert_eq!(ctx.cellar_versions("tool"), ["1.0.0"]);
    ctx.pkg(&["bundle", "check", "--file", file]).success();
    ctx.pkg(&["bundle", "cleanup", "--file", file]).success();
    assert_eq!(ctx.cellar_versions("tool"), ["1.0.0"]);
}
