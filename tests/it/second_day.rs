//! The second day: a cache shared by several prefixes, credentials through mirrors, fleets,
//! TLS, installs by reference that hold up, and messages that say it once (issue 15).

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

/// A package whose binary prints `NAME VERSION`.
fn image(name: &str, version: &str) -> Fixture {
    Fixture::Image(ImageSpec::new("linux", "amd64").file(
        &format!("bin/{name}"),
        format!("#!/bin/sh\necho {name} {version}\n"),
        0o755,
    ))
}

fn publish(registry: &Registry, ctx: &TestContext, name: &str, versions: &[&str]) {
    let repo = format!("{}/acme/{name}", registry.host());
    let mut f = Formula::new(name);
    for v in versions {
        registry.push(&format!("acme/{name}"), v, &image(name, v));
        f = f.version(v, &repo, v);
    }
    ctx.write_formula(name, &f.to_toml());
}

fn blob(ctx: &TestContext, digest: &str) -> std::path::PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    ctx.cache.join("v1/blobs").join(alg).join(hex)
}

#[test]
fn cleanup_in_one_prefix_keeps_the_blobs_another_prefix_uses() {
    let mut registry = Registry::start();
    let a = TestContext::new();
    let b = a.sharing_cache();
    publish(&registry, &a, "hello", &["1.0.0"]);
    publish(&registry, &a, "greet", &["1.0.0"]);
    a.pkg(&["install", "hello"]).success();
    b.pkg(&["install", "greet"]).success();
    let receipt = a.receipt("hello", "1.0.0");
    let layer = receipt["layers"][0].as_str().unwrap().to_owned();
    assert!(blob(&a, &layer).is_file());

    b.pkg(&["cleanup"])
        .success()
        .says(&format!("that {} uses", a.prefix.display()));
    assert!(blob(&a, &layer).is_file(), "cleanup in B removed A's blob");
    b.pkg(&["doctor"]).says("is shared by 2 prefixes");

    // A reinstalls offline from the cache B cleaned.
    a.pkg(&["uninstall", "hello"]).success();
    let registry_host = registry.host();
    registry.stop();
    a.pkg(&["install", "hello"]).success();
    assert_eq!(a.cellar_versions("hello"), ["1.0.0"]);

    // A prefix that is gone is a stale registration: doctor says so, cleanup forgets it and
    // frees what only it used.
    std::fs::remove_dir_all(&a.prefix).unwrap();
    b.pkg(&["doctor"]).says("no longer exist");
    b.pkg(&["cleanup", "--kegs-only"]).success();
    assert!(blob(&a, &layer).is_file(), "--kegs left the cache alone");
    b.pkg(&["cleanup", "--cache-only"])
        .success()
        .says(&format!("Forgot the prefix {}", a.prefix.display()));
    assert!(
        !blob(&a, &layer).exists(),
        "{registry_host}: A's blob stayed"
    );
    let greet = b.receipt("greet", "1.0.0");
    assert!(blob(&b, greet["layers"][0].as_str().unwrap()).is_file());
    assert_eq!(b.cellar_versions("greet"), ["1.0.0"]);
}

/// A port on 127.0.0.1 that nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_dead_first_mirror_falls_back_to_the_next_then_to_the_registry() {
    use crate::faults::Rig;

    let rig = Rig::start();
    let host = rig.registry.host();
    publish(&rig.registry, &rig.ctx, "hello", &["1.0.0"]);
    let dead = format!("http://127.0.0.1:{}", dead_port());

    // Two mirrors, mirror-only: the dead one has its tries, the next one serves the install.
    let mut ctx = rig.ctx.sharing_cache();
    ctx.mirrors(&format!(
        "{host}={dead},{host}={}",
        rig.proxy.registry.url()
    ))
    .env("PKG_REGISTRY_MIRROR_ONLY", &host);
    ctx.pkg(&["config"]).success().says(&format!(
        "{host} → {dead}, then {}",
        rig.proxy.registry.url()
    ));
    let run = ctx.pkg(&["install", "hello"]).success();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(
        said.matches("connection refused").count(),
        1,
        "the dead mirror has its tries, then rests for the run, said once:\n{said}"
    );
    assert!(
        said.contains(&format!(
            "{dead} for {host}: connection refused (4 tries); using {} instead",
            rig.proxy.registry.url()
        )),
        "{said}"
    );
    assert!(!rig.reg().matching("GET", "/manifests/1.0.0").is_empty());
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);

    // A dead mirror alone: the registry itself answers (the mirror is not mirror-only).
    let mut ctx = rig.ctx.sharing_cache();
    ctx.mirrors(&format!("{host}={dead}"));
    ctx.pkg(&["install", "hello"])
        .success()
        .says(&format!("using http://{host} instead"));

    // Mirror-only with only the dead mirror: the install fails, naming the mirror mapping.
    let mut ctx = rig.ctx.sharing_cache();
    ctx.mirrors(&format!("{host}={dead}"))
        .env("PKG_REGISTRY_MIRROR_ONLY", "*")
        .env("PKG_RETRIES", "1");
    std::fs::remove_dir_all(&ctx.cache).ok();
    ctx.pkg(&["install", "hello"])
        .failure()
        .says(&format!("(the mirror of {host} in PKG_REGISTRY_MIRRORS)"));
}

/// `pkg login` with the password on stdin, as a user types it into CI.
fn login(ctx: &TestContext, registry: &str, password: &str) -> crate::harness::Run {
    use std::io::Write as _;
    let args = [
        "login",
        registry,
        "--username",
        crate::harness::token::USERNAME,
        "--password-stdin",
    ];
    let mut cmd = ctx.command(&args);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    TestContext::wait(child, &args)
}

/// A tree to bottle: `bin/NAME` printing `text`.
fn tree(dir: &std::path::Path, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let bin = dir.join("bin").join(name);
    std::fs::write(&bin, format!("#!/bin/sh\necho {text}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_login_through_a_mirror_is_for_the_mirror_and_push_then_logout_work() {
    use crate::harness::token::PASSWORD;
    let registry = Registry::start();
    let endpoint = registry.host();
    let mut ctx = TestContext::new();
    ctx.mirrors(&format!("ghcr.io={}", registry.url()))
        .env("PKG_REGISTRY_MIRROR_ONLY", "ghcr.io");

    login(&ctx, "ghcr.io", PASSWORD).success().says(&format!(
        "ghcr.io is mirrored to {endpoint}; logged in there"
    ));
    let auth = ctx.home.join(".config/pkg/auth.json");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(stored["auths"][&endpoint]["auth"].is_string(), "{stored}");
    assert!(stored["auths"].get("ghcr.io").is_none(), "{stored}");
    let config = ctx.pkg(&["config"]).success();
    config.says(&format!("{endpoint} (from {})", auth.display()));
    assert!(!config.output().contains(PASSWORD));

    // The push to ghcr.io goes to the mirror, with the credentials stored for it.
    let src = ctx.home.join("src");
    tree(&src, "x", "mirrored");
    let bottle = |version: &str| {
        ctx.pkg(&[
            "bottle",
            src.to_str().unwrap(),
            "--name",
            "x",
            "--version",
            version,
            "-o",
            ctx.home.join(format!("x-{version}.oci")).to_str().unwrap(),
            "--push",
            &format!("ghcr.io/acme/x:{version}"),
        ])
    };
    bottle("1.0.0").success().says("Pushed");
    ctx.pkg(&["search", "--remote", "ghcr.io/acme/x"])
        .success()
        .says("1.0.0");

    ctx.pkg(&["logout", "ghcr.io"])
        .success()
        .says(&format!("Logged out of {endpoint} (the mirror of ghcr.io)"));
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(stored["auths"].get(&endpoint).is_none(), "{stored}");
    bottle("1.0.1").failure();
    ctx.pkg(&["logout", "ghcr.io"])
        .success()
        .says("Not logged in");
}

/// Five fresh machines install through one pull-through cache (CNCF distribution in proxy
/// mode) in front of the registry: the registry serves each blob at most twice (distribution
/// fetches once to stream and once to store on its first miss), never once per machine.
#[test]
fn five_machines_through_a_pull_through_cache_cost_the_origin_at_most_two_fetches_of_a_blob() {
    use crate::faults::Rig;

    let rig = Rig::start();
    let origin = rig.registry.host();
    let built = rig.registry.push(
        "acme/hello",
        "1.0.0",
        &Fixture::Image(crate::faults::tool_image("hello", "1.0.0", 256 * 1024)),
    );
    let layer = built.image().layer_digests[0].clone();
    let cache = Registry::start_pull_through(&rig.proxy.registry.url());
    let formula = Formula::new("hello")
        .version("1.0.0", &format!("{origin}/acme/hello"), "1.0.0")
        .to_toml();
    for machine in 0..5 {
        let mut ctx = TestContext::new();
        ctx.mirrors(&format!("{origin}={}", cache.url()))
            .env("PKG_REGISTRY_MIRROR_ONLY", &origin);
        ctx.write_formula("hello", &formula);
        ctx.pkg(&["install", "hello"]).success();
        assert_eq!(
            crate::faults::run_bin(&ctx, "hello"),
            "hello 1.0.0",
            "machine {machine}"
        );
    }
    let fetched = rig.reg().matching("GET", &layer).len();
    eprintln!("the origin served the layer {fetched} time(s) for 5 machines");
    assert!(
        (1..=2).contains(&fetched),
        "the origin served the layer {fetched} times: {}",
        rig.reg().describe()
    );
}

/// Every verb, given a malformed name, request, version, number or host, exits 2 with one
/// `error:` line saying what was wrong, and changes nothing.
#[test]
fn bad_input_exits_2_everywhere_and_changes_nothing() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish(&registry, &ctx, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    let before = ctx.prefix_listing();
    let src = ctx.home.join("src");
    tree(&src, "x", "x");
    let src = src.to_str().unwrap();
    let table: &[&[&str]] = &[
        &["install", "HELLO"],
        &["install", "hello@garbage"],
        &["install", "tool@garbage"],
        &["install", "../bin"],
        &["install", "a..b/acme/x:1.0.0"],
        &["install", "--jobs", "0", "hello"],
        &["fetch", "../bin"],
        &["fetch", "HELLO"],
        &["upgrade", "HELLO"],
        &["outdated", "Bad"],
        &["uninstall", "hello@@"],
        &["uninstall", "@1.0.0"],
        &["info", "HELLO"],
        &["pin", "HELLO"],
        &["unpin", "HELLO"],
        &["link", "Bad"],
        &["unlink", "Bad"],
        &["deps", "hello@garbage"],
        &["uses", "HELLO"],
        &["search", "--remote", "ghcr.io/Bad Repo"],
        &["tap", "add", "Bad_Name", "x"],
        &["tap", "add", "ok", "--upload-pack=x"],
        &["login", "bad host"],
        &["logout", "bad host"],
        &["bottle", src, "--name", "Bad", "--version", "1.0.0"],
        &["bottle", src, "--name", "x", "--version", "garbage"],
        &[
            "bottle",
            src,
            "--name",
            "x",
            "--version",
            "1.0.0",
            "--tag",
            "-bad",
        ],
        &[
            "bottle",
            src,
            "--name",
            "x",
            "--version",
            "1.0.0",
            "--push",
            "Bad Host/x",
        ],
        &["cleanup", "--prune", "soon"],
        &["nosuchverb"],
    ];
    for args in table {
        let run = ctx.pkg(args);
        assert_eq!(run.code, 2, "{}", run.describe());
        assert!(run.stderr.starts_with("error:"), "{}", run.describe());
        assert!(!run.stderr.contains("panicked"), "{}", run.describe());
    }
    for (var, value) in [
        ("PKG_JOBS", "0"),
        ("PKG_RETRIES", "0"),
        ("PKG_CONNECT_TIMEOUT", "soon"),
        ("PKG_REGISTRY_MIRRORS", "ghcr.io"),
        ("PKG_REGISTRY_MIRROR_ONLY", "quay.io"),
    ] {
        let mut bad = ctx.sharing_cache();
        bad.prefix = ctx.prefix.clone();
        bad.env(var, value);
        let run = bad.pkg(&["install", "hello"]);
        assert_eq!(run.code, 2, "{var}={value}: {}", run.describe());
        run.says(var);
    }
    assert_eq!(ctx.prefix_listing(), before, "bad input changed the prefix");
    assert!(!ctx.home.join("x-1.0.0.oci").exists());
    // Unknown names are not bad input but a failure: exit 1.
    assert_eq!(ctx.pkg(&["uses", "nothere"]).code, 1);
}

#[test]
fn installs_by_reference_are_remembered_only_once_installed_and_resolve_like_any_package() {
    let registry = Registry::start();
    let host = registry.host();
    let ctx = TestContext::new();
    let recorded = |name: &str| {
        ctx.prefix
            .join("var/pkg/references")
            .join(format!("{name}.toml"))
    };

    // `latest` does not exist: nothing installed, nothing recorded, nothing to search.
    registry.push("acme/lg", "main", &image("lg", "main"));
    ctx.pkg(&["install", &format!("{host}/acme/lg")])
        .failure()
        .says("failed and left nothing behind");
    assert!(
        !recorded("lg").exists(),
        "a failed install left its formula"
    );
    ctx.pkg(&["search", "lg"]).failure();

    // A reference recorded, then a later one refused (its name is a formula's already): the
    // run stops before planning, and the first reference's formula goes with it.
    ctx.write_formula(
        "taken",
        &crate::harness::Formula::new("taken")
            .version("1.0.0", &format!("{host}/acme/taken"), "1.0.0")
            .to_toml(),
    );
    let refused = ctx
        .pkg(&[
            "install",
            &format!("{host}/acme/lg:main"),
            &format!("{host}/acme/taken:2.0.0"),
        ])
        .failure();
    refused.says("already exists");
    assert!(
        !recorded("lg").exists(),
        "a run that stopped early left a formula recorded:\n{}",
        refused.describe()
    );

    // A tag that is not a version: installed, and a plain `pkg install lg` resolves it later.
    ctx.pkg(&["install", &format!("{host}/acme/lg:main")])
        .success();
    assert!(recorded("lg").exists());
    ctx.pkg(&["install", "lg"]).success();
    ctx.pkg(&["outdated", "lg"]).success();
    ctx.pkg(&["search", "lg"]).success().says("lg");

    // Uninstalling it forgets what the reference recorded.
    ctx.pkg(&["uninstall", "lg"]).success().says("Forgot");
    assert!(!recorded("lg").exists());
    ctx.pkg(&["search", "lg"]).failure();

    // --as names the package.
    ctx.pkg(&["install", "--as", "mytool", &format!("{host}/acme/lg:main")])
        .success();
    assert_eq!(ctx.cellar_versions("mytool").len(), 1);
    assert_eq!(crate::faults::run_bin(&ctx, "lg"), "lg main");
    ctx.pkg(&["install", "--as", "x", "hello"]).failure_with(2);
}

#[test]
fn a_moved_latest_tag_is_found_by_outdated_and_taken_by_upgrade() {
    let registry = Registry::start();
    let host = registry.host();
    let mut ctx = TestContext::new();
    ctx.env("PKG_RETRIES", "1");
    registry.push("acme/lg", "latest", &image("lg", "first"));
    ctx.pkg(&["install", &format!("{host}/acme/lg")]).success();
    ctx.pkg(&["outdated", "lg"]).success();
    ctx.pkg(&["upgrade"]).success().says("Up to date");

    for (round, text) in ["second", "third"].iter().enumerate() {
        registry.push("acme/lg", "latest", &image("lg", text));
        ctx.pkg(&["outdated", "lg"])
            .failure()
            .says(&format!("{host}/acme/lg:latest points at"));
        let dry = ctx.pkg(&["upgrade", "--dry-run", "--json"]).success();
        let dry: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
        assert_eq!(dry["moved"][0]["name"], "lg", "{dry}");
        ctx.pkg(&["upgrade"]).success();
        assert_eq!(crate::faults::run_bin(&ctx, "lg"), format!("lg {text}"));
        let versions = ctx.cellar_versions("lg");
        assert_eq!(
            versions,
            [format!("0.0.0+tag.latest.moved.{}", round + 1)],
            "the old content's keg went, as in any upgrade"
        );
        ctx.pkg(&["outdated", "lg"]).success();
    }
    // Offline, outdated still answers from what it knows, and says what it could not check.
    drop(registry);
    ctx.pkg(&["outdated"])
        .success()
        .says("could not check where a moving tag points now");
}

/// `install REPO:TAG` always installs what the tag points at now (issue 30, item 1): after
/// an upgrade followed the moved tag, installing the reference again keeps that content
/// ("installed", never "a downgrade" to the first bytes); after the tag moves again, installing
/// the reference takes the new content without an upgrade.
#[test]
fn installing_a_moving_tag_again_installs_what_it_points_at_now() {
    let registry = Registry::start();
    let host = registry.host();
    let mut ctx = TestContext::new();
    ctx.env("PKG_RETRIES", "1");
    let reference = format!("{host}/acme/rl:latest");
    registry.push("acme/rl", "latest", &image("rl", "1.0.0"));
    ctx.pkg(&["install", &reference]).success();
    registry.push("acme/rl", "latest", &image("rl", "2.0.0"));
    ctx.pkg(&["upgrade"]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "rl"), "rl 2.0.0");

    let again = ctx.pkg(&["install", &reference]).success();
    assert!(!again.stderr.contains("downgrade"), "{}", again.stderr);
    assert_eq!(crate::faults::run_bin(&ctx, "rl"), "rl 2.0.0");

    registry.push("acme/rl", "latest", &image("rl", "3.0.0"));
    ctx.pkg(&["install", &reference]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "rl"), "rl 3.0.0");
    ctx.pkg(&["upgrade"]).success().says("Up to date");
    assert_eq!(crate::faults::run_bin(&ctx, "rl"), "rl 3.0.0");
}

/// A reference installed by a version tag sees newer version tags of its repository (issue 30,
/// item 3): `outdated` names the newer release, `upgrade` installs it; a pre-release or a moving
/// tag is not taken for one. Before, `outdated` was silent.
#[test]
fn a_reference_by_version_tag_sees_newer_version_tags() {
    let registry = Registry::start();
    let host = registry.host();
    let mut ctx = TestContext::new();
    ctx.env("PKG_RETRIES", "1");
    registry.push("acme/vt", "1.4.0", &image("vt", "1.4.0"));
    ctx.pkg(&["install", &format!("{host}/acme/vt:1.4.0")])
        .success();
    ctx.pkg(&["outdated", "vt"]).success();

    for (tag, text) in [
        ("v1.5.0", "1.5.0"),
        ("1.6.0-rc.1", "rc"),
        ("latest", "latest"),
    ] {
        registry.push("acme/vt", tag, &image("vt", text));
    }
    let out = ctx.pkg(&["outdated"]).success();
    assert_eq!(out.stdout, "vt (1.4.0) < 1.5.0\n", "{}", out.output());
    ctx.pkg(&["upgrade"]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "vt"), "vt 1.5.0");
    ctx.pkg(&["outdated"]).success();
    assert_eq!(ctx.pkg(&["outdated"]).success().stdout, "");
}

/// Following `latest` beside a version tag (issue 30, item 2): the same bytes under the channel
/// are "the same content", not "a downgrade"; a channel follows its tag and is never ordered
/// against releases, so a newer release pushed to `latest` only is what `upgrade` installs (before,
/// `outdated` said `rs (0.0.0+tag.latest) < 1.5.0` and `upgrade` went back to 1.5.0).
#[test]
fn a_channel_beside_a_version_tag_follows_its_tag() {
    let registry = Registry::start();
    let host = registry.host();
    let mut ctx = TestContext::new();
    ctx.env("PKG_RETRIES", "1");
    registry.push("acme/rs", "1.5.0", &image("rs", "1.5.0"));
    registry.push("acme/rs", "latest", &image("rs", "1.5.0"));
    ctx.pkg(&["install", &format!("{host}/acme/rs:1.5.0")])
        .success();
    let run = ctx
        .pkg(&["install", &format!("{host}/acme/rs:latest")])
        .success();
    run.says("(the same content)");
    assert!(!run.stderr.contains("downgrade"), "{}", run.stderr);

    registry.push("acme/rs", "latest", &image("rs", "1.6.0"));
    let out = ctx.pkg(&["outdated"]).success();
    assert!(!out.stdout.contains("< 1.5.0"), "{}", out.output());
    assert!(
        out.stdout
            .starts_with("rs (0.0.0+tag.latest) < 0.0.0+tag.latest.moved.1"),
        "{}",
        out.output()
    );
    ctx.pkg(&["upgrade"]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "rs"), "rs 1.6.0");
    assert_eq!(ctx.pkg(&["outdated"]).success().stdout, "");

    // A second move: the channel follows again; the release 1.5.0 beside it never comes back.
    registry.push("acme/rs", "latest", &image("rs", "1.7.0"));
    ctx.pkg(&["upgrade"]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "rs"), "rs 1.7.0");
    let again = ctx
        .pkg(&["install", &format!("{host}/acme/rs:latest")])
        .success();
    assert!(!again.stderr.contains("downgrade"), "{}", again.stderr);
    assert_eq!(crate::faults::run_bin(&ctx, "rs"), "rs 1.7.0");
}

#[test]
fn a_failed_bottle_leaves_nothing_behind() {
    use std::os::unix::fs::PermissionsExt as _;
    let ctx = TestContext::new();
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&ctx.home)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".oci") || n.starts_with(".pkg-bottle-"))
            .collect()
    };
    // Not a directory: bad input, said before anything is written.
    ctx.pkg(&[
        "bottle",
        "/nonexistent",
        "--name",
        "x",
        "--version",
        "1.0.0",
    ])
    .failure_with(2)
    .says("/nonexistent does not exist");
    assert_eq!(leftovers(), Vec::<String>::new());

    // A file that cannot be read, found midway through packing.
    let src = ctx.home.join("src");
    tree(&src, "x", "x");
    let secret = src.join("secret");
    std::fs::write(&secret, "no").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&secret).is_err() {
        // (root reads it anyway; then this case says nothing.)
        ctx.pkg(&[
            "bottle",
            src.to_str().unwrap(),
            "--name",
            "x",
            "--version",
            "1.0.0",
        ])
        .failure();
        assert_eq!(leftovers(), Vec::<String>::new());
    }
    std::fs::remove_file(&secret).unwrap();

    // A --write formula of another package is refused before anything is built.
    let formula = ctx.home.join("other.toml");
    std::fs::write(
        &formula,
        "name = \"other\"\ndesc = \"d\"\nhomepage = \"https://example.com\"\n",
    )
    .unwrap();
    let before = std::fs::read_to_string(&formula).unwrap();
    ctx.pkg(&[
        "bottle",
        src.to_str().unwrap(),
        "--name",
        "x",
        "--version",
        "1.0.0",
        "--write",
        formula.to_str().unwrap(),
    ])
    .failure_with(2)
    .says("is the formula of `other`")
    .says("nothing was written");
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(std::fs::read_to_string(&formula).unwrap(), before);

    // And a good one writes the layout whole.
    ctx.pkg(&[
        "bottle",
        src.to_str().unwrap(),
        "--name",
        "x",
        "--version",
        "1.0.0",
    ])
    .success();
    assert_eq!(leftovers(), ["x-1.0.0.oci"]);
    assert!(ctx.home.join("x-1.0.0.oci/oci-layout").is_file());
}

#[test]
fn update_says_when_nothing_changed_and_names_new_versions_and_broken_taps_are_refused() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let git = crate::reach::git;
    let repo = ctx.home.join("tap-src");
    std::fs::create_dir_all(&repo).unwrap();
    let url = format!("{}/acme/hello", registry.host());
    for v in ["1.0.0", "2.0.0"] {
        registry.push("acme/hello", v, &image("hello", v));
    }
    let write = |versions: &[&str]| {
        let mut f = Formula::new("hello");
        for v in versions {
            f = f.version(v, &url, v);
        }
        std::fs::write(repo.join("hello.toml"), f.to_toml()).unwrap();
    };
    write(&["1.0.0"]);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let file_url = format!("file://{}", repo.display());
    // (The formulae directory of the harness would shadow the tap.)
    std::fs::remove_dir_all(&ctx.formulae).ok();
    ctx.pkg(&["tap", "add", "acme", &file_url])
        .success()
        .says("1 formula)");
    ctx.pkg(&["install", "hello"]).success();
    ctx.pkg(&["update"])
        .success()
        .says("Unchanged acme (no new commits)");

    write(&["1.0.0", "2.0.0"]);
    git(&repo, &["commit", "-q", "-am", "two"]);
    let run = ctx.pkg(&["update"]).success();
    run.says("Updated acme")
        .says("New hello 2.0.0 (installed 1.0.0); `pkg upgrade hello`");

    // A directory of formulae pkg cannot read is not tapped at all.
    let bad = ctx.home.join("bad-tap");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("broken.toml"), "name = \"broken\"\nversions = 3\n").unwrap();
    ctx.pkg(&["tap", "add", "bad", bad.to_str().unwrap()])
        .failure_with(2)
        .says("not tapped");
    let list = ctx.pkg(&["tap", "list"]).success();
    assert!(!list.stdout.contains("bad"), "{}", list.stdout);
    let search = ctx.pkg(&["search", "hello"]).success();
    assert!(!search.stderr.contains("broken"), "{}", search.stderr);
}

#[test]
fn verbose_says_each_retry_and_a_missing_tag_points_at_the_tags() {
    use crate::faults::Rig;
    use crate::harness::proxy::{Fault, Times};

    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    rig.reg()
        .on("GET", "/manifests/1.0.0", Times::Once, Fault::status(503));
    rig.ctx
        .pkg(&["-v", "install", "hello"])
        .success()
        .says("try 1 of 4 answered 503; trying again in");

    let missing = format!("{}/acme/hello:9.9.9", rig.proxy.host());
    let run = rig
        .ctx
        .pkg(&["install", "--as", "other", &missing])
        .failure();
    run.says(&format!(
        "`pkg search --remote {}/acme/hello` lists the tags it has",
        rig.proxy.host()
    ));
    assert!(!run.stderr.contains("%E2%80%A6"), "{}", run.stderr);
}

/// tinyproxy (Debian's) as a company's CONNECT proxy on 127.0.0.1; killed when dropped.
struct Tinyproxy {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start() -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = dead_port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\nAllow 127.0.0.1\nMaxClients 20\n",
                log.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("tinyproxy")
            .args(["-d", "-c", conf.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run tinyproxy (scripts/test installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tinyproxy did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_install_over_tls_from_a_private_ca_works_when_the_ca_is_trusted_and_through_a_proxy() {
    let registry = Registry::start_tls();
    registry.push("acme/hello", "1.0.0", &image("hello", "1.0.0"));
    let ca = registry.ca_path();
    let formula = Formula::new("hello")
        .version("1.0.0", "mirror.example/acme/hello", "1.0.0")
        .to_toml();
    let machine = |env: &[(&str, &str)]| {
        let mut ctx = TestContext::new();
        ctx.mirrors(&format!("mirror.example={}", registry.https_url()))
            .env("PKG_REGISTRY_MIRROR_ONLY", "mirror.example")
            .env("PKG_RETRIES", "1");
        for (k, v) in env {
            ctx.env(k, v);
        }
        ctx.write_formula("hello", &formula);
        ctx
    };

    // Untrusted: refused, saying which host and how to trust a CA.
    let ctx = machine(&[]);
    ctx.pkg(&["install", "hello"])
        .failure()
        .says(&format!("could not reach {}", registry.https_url()))
        .says("its TLS certificate is not trusted")
        .says("SSL_CERT_FILE");
    assert!(ctx.cellar_versions("hello").is_empty());

    // SSL_CERT_FILE (as OpenSSL and curl read it), or PKG_CA_FILE beside the system's roots.
    let ca_str = ca.to_str().unwrap();
    for env in [[("SSL_CERT_FILE", ca_str)], [("PKG_CA_FILE", ca_str)]] {
        let ctx = machine(&env);
        ctx.pkg(&["install", "hello"]).success();
        assert_eq!(crate::faults::run_bin(&ctx, "hello"), "hello 1.0.0");
    }
    machine(&[("PKG_CA_FILE", "/nonexistent/ca.pem")])
        .pkg(&["install", "hello"])
        .failure_with(2)
        .says("/nonexistent/ca.pem");

    // Blobs redirected to a CDN on another https host: followed, its certificate checked,
    // never handed the registry's token.
    let front = crate::harness::cdn::Front::start(&registry);
    let mut ctx = machine(&[("PKG_CA_FILE", ca_str)]);
    ctx.mirrors(&format!("mirror.example={}", front.url()));
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "hello"), "hello 1.0.0");
    use std::sync::atomic::Ordering;
    assert!(
        front.served.load(Ordering::SeqCst) >= 1,
        "no blob came from the CDN"
    );
    assert_eq!(
        front.authorized.load(Ordering::SeqCst),
        0,
        "the CDN was sent a token"
    );

    // Through a real CONNECT proxy: token service and registry both.
    let proxy = Tinyproxy::start();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let ctx = machine(&[("PKG_CA_FILE", ca_str), ("HTTPS_PROXY", &proxy_url)]);
    ctx.pkg(&["config"])
        .success()
        .says(&format!("https: {proxy_url} (HTTPS_PROXY)"));
    ctx.pkg(&["install", "hello"]).success();
    ctx.pkg(&["doctor"])
        .says("requests go through proxies from the environment");
    let log = proxy.log();
    let port = registry.host().rsplit_once(':').unwrap().1.to_owned();
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "the proxy did not see the registry:\n{log}"
    );
    // NO_PROXY exempts the host: the proxy sees nothing new.
    let seen = proxy.log().matches("CONNECT").count();
    let ctx = machine(&[
        ("PKG_CA_FILE", ca_str),
        ("HTTPS_PROXY", &proxy_url),
        ("NO_PROXY", "127.0.0.1"),
    ]);
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(
        proxy.log().matches("CONNECT").count(),
        seen,
        "{}",
        proxy.log()
    );
}

/// Credentials in the environment are for ghcr.io (PKG_REGISTRY_HOST), and ghcr.io is mirrored to
/// a registry that wants a login: the error says the credentials were not sent to the mirror and
/// how to give it its own (issue 31, item 3) — it said "set PKG_REGISTRY_USERNAME", which was set.
#[test]
fn credentials_for_the_registry_are_not_the_mirrors_and_the_error_says_so() {
    let mirror = Registry::start_with_htpasswd();
    let mut ctx = TestContext::new();
    ctx.with_credentials()
        .credentials_host("ghcr.io")
        .env("PKG_RETRIES", "1")
        .mirrors(&format!("ghcr.io={}", mirror.url()))
        .env("PKG_REGISTRY_MIRROR_ONLY", "ghcr.io");
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version("1.0.0", "ghcr.io/acme/hello", "1.0.0")
            .to_toml(),
    );
    let run = ctx.pkg(&["install", "hello"]).failure();
    run.says("are set, but for ghcr.io (PKG_REGISTRY_HOST)")
        .says(&format!(
            "not sent to {}, which stands in for ghcr.io",
            mirror.host()
        ))
        .says(&format!("pkg login {}", mirror.host()));
    assert!(
        !run.stderr.contains(crate::harness::token::PASSWORD),
        "a password was printed"
    );
}
