//! Reach beyond pkg's own formulae: installs by reference, remote tag listing, taps.

use std::process::Command;

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

fn image(text: &str) -> Fixture {
    Fixture::Image(ImageSpec::new("linux", "amd64").file(
        "bin/tool",
        format!("#!/bin/sh\necho {text}\n"),
        0o755,
    ))
}

#[test]
fn install_by_reference_records_a_formula_and_behaves_like_any_package() {
    let registry = Registry::start();
    let built = registry.push("acme/tools/tool", "v1.4.0", &image("tool 1.4.0"));
    registry.push("acme/tools/tool", "latest", &image("tool latest"));
    let ctx = TestContext::new();
    let host = registry.host();

    ctx.pkg(&[
        "install",
        "--dry-run",
        &format!("{host}/acme/tools/tool:v1.4.0"),
    ])
    .success()
    .says("install tool 1.4.0");
    assert!(!ctx.prefix.join("Cellar").exists(), "a dry run installed");

    ctx.pkg(&["install", &format!("{host}/acme/tools/tool:v1.4.0")])
        .success();
    assert_eq!(ctx.cellar_versions("tool"), ["1.4.0"]);
    assert_eq!(
        ctx.receipt("tool", "1.4.0")["manifest_digest"],
        built.digest.as_str()
    );
    let out = Command::new(ctx.prefix.join("bin/tool")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tool 1.4.0");
    ctx.pkg(&["info", "tool"])
        .success()
        .says("installed by reference");

    // By digest: pinned, and named by the digest.
    let by_digest = format!("{host}/acme/tools/tool@{}", built.digest);
    ctx.pkg(&["install", &by_digest]).success();
    let hex12 = &built.digest["sha256:".len().."sha256:".len() + 12];
    assert!(
        ctx.cellar_versions("tool")
            .contains(&format!("0.0.0+sha256.{hex12}"))
    );

    // A non-semver tag gets a pre-release version, and is linked as the one asked for last.
    ctx.pkg(&["install", &format!("{host}/acme/tools/tool:latest")])
        .success();
    let out = Command::new(ctx.prefix.join("bin/tool")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tool latest");
    ctx.pkg(&["list", "--versions"]).success().says("tool");

    // Bad references are errors that say what is wrong.
    ctx.pkg(&["install", &format!("{host}/Acme/Tool:1")])
        .failure_with(2)
        .says("invalid reference");
    ctx.pkg(&["install", &format!("{host}/acme/tool@sha256:xyz")])
        .failure_with(2)
        .says("invalid reference");
}

#[test]
fn install_by_reference_never_hijacks_a_formula_name() {
    let registry = Registry::start();
    registry.push("other/hello", "1.0.0", &image("impostor"));
    let ctx = TestContext::new();
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version("1.0.0", "ghcr.io/acme/hello", "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", &format!("{}/other/hello:1.0.0", registry.host())])
        .failure()
        .says("already exists");
    assert!(!ctx.prefix.join("Cellar/hello").exists());
}

#[test]
fn search_remote_lists_the_tags_of_a_repository() {
    let registry = Registry::start();
    for tag in ["1.0.0", "1.1.0", "2.0.0"] {
        registry.push("acme/hello", tag, &image(tag));
    }
    let ctx = TestContext::new();
    let run = ctx
        .pkg(&[
            "search",
            "--remote",
            &format!("{}/acme/hello", registry.host()),
        ])
        .success();
    let mut tags: Vec<&str> = run.stdout.lines().collect();
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0", "2.0.0"]);
    ctx.pkg(&[
        "search",
        "--remote",
        &format!("{}/acme/nothing", registry.host()),
    ])
    .failure();
}

/// A registry whose tag list never ends: every page links to another.
#[test]
fn search_remote_gives_up_on_endless_pagination() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let link = format!("</v2/acme/hello/tags/list?last=t{n}&n=1>; rel=\"next\"");
            let resp = tiny_http::Response::from_string(format!(
                "{{\"name\":\"acme/hello\",\"tags\":[\"t{n}\"]}}"
            ))
            .with_header(tiny_http::Header::from_bytes("Link", link).unwrap())
            .with_header(
                tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
            );
            let _ = req.respond(resp);
        }
    });
    let ctx = TestContext::new();
    ctx.pkg(&[
        "search",
        "--remote",
        &format!("127.0.0.1:{port}/acme/hello"),
    ])
    .failure()
    .says("more than 100 pages");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 100);
}

pub fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn taps_from_a_directory_and_from_git_and_update() {
    let registry = Registry::start();
    registry.push("acme/tool", "1.0.0", &image("tool 1.0.0"));
    registry.push("acme/tool", "2.0.0", &image("tool 2.0.0"));
    let ctx = TestContext::new();
    let repo = format!("{}/acme/tool", registry.host());

    // A local directory tap.
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("local-tap");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(
        local.join("tool.toml"),
        Formula::new("tool")
            .version("1.0.0", &repo, "1.0.0")
            .to_toml(),
    )
    .unwrap();
    // `local` names pkg's own formula directories (`local/NAME`): a tap may not take it.
    ctx.pkg(&["tap", "add", "local", local.to_str().unwrap()])
        .failure_with(2);
    ctx.pkg(&["tap", "add", "mine", local.to_str().unwrap()])
        .success();
    ctx.pkg(&["tap", "list"]).success().says("mine\tdir");
    ctx.pkg(&["search", "tool"])
        .success()
        .says("tool: The tool test package");
    ctx.pkg(&["tap", "remove", "mine"]).success();
    assert!(
        local.join("tool.toml").exists(),
        "removing a tap deleted the user's directory"
    );
    ctx.pkg(&["install", "tool"])
        .failure()
        .says("no formula named `tool`");

    // A git tap with a formulae/ directory, updated later.
    let origin = scratch.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(origin.join("formulae")).unwrap();
    std::fs::write(
        origin.join("formulae/tool.toml"),
        Formula::new("tool")
            .version("1.0.0", &repo, "1.0.0")
            .to_toml(),
    )
    .unwrap();
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-q", "-m", "tool 1.0.0"]);
    let url = format!("file://{}", origin.display());
    ctx.pkg(&["tap", "add", "acme", &url]).success();
    ctx.pkg(&["tap", "add", "acme", &url])
        .failure()
        .says("exists already");
    ctx.pkg(&["install", "tool"]).success();
    assert_eq!(ctx.cellar_versions("tool"), ["1.0.0"]);

    std::fs::write(
        origin.join("formulae/tool.toml"),
        Formula::new("tool")
            .version("1.0.0", &repo, "1.0.0")
            .version("2.0.0", &repo, "2.0.0")
            .to_toml(),
    )
    .unwrap();
    git(&origin, &["commit", "-q", "-am", "tool 2.0.0"]);
    ctx.pkg(&["outdated", "tool"]).success();
    ctx.pkg(&["update"]).success().says("Updated");
    ctx.pkg(&["outdated", "tool"]).failure();
    ctx.pkg(&["upgrade", "tool"]).success();
    assert_eq!(ctx.cellar_versions("tool"), ["2.0.0"]);

    ctx.pkg(&["tap", "add", "bad", "not-a-dir-nor-url"])
        .failure_with(2)
        .says("neither a directory nor a git URL");
    ctx.pkg(&["tap", "add", "Bad/Name", local.to_str().unwrap()])
        .failure_with(2)
        .says("invalid tap name");
}

fn head(dir: &std::path::Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The user's own checkout as a tap is cloned (issue 31): pkg's clone is what `pkg update`
/// moves; the checkout itself is never pulled, and removing the tap leaves it alone.
#[test]
fn a_users_git_checkout_as_a_tap_is_cloned_and_never_pulled() {
    let ctx = TestContext::new();
    let scratch = tempfile::tempdir().unwrap();
    // The user's own checkout, one commit behind its origin: `git pull` would move it.
    let origin = scratch.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    std::fs::write(
        origin.join("tool.toml"),
        Formula::new("tool")
            .version("1.0.0", "ghcr.io/acme/tool", "1.0.0")
            .to_toml(),
    )
    .unwrap();
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-q", "-m", "one"]);
    let mine = scratch.path().join("mine");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            mine.to_str().unwrap(),
        ],
    );
    std::fs::write(origin.join("README"), "two\n").unwrap();
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-q", "-m", "two"]);
    let before = head(&mine);
    assert_ne!(before, head(&origin));

    ctx.pkg(&["tap", "add", "mine", mine.to_str().unwrap()])
        .success()
        .says("mine (git, 1 formula)");
    ctx.pkg(&["tap", "list"]).success().says("mine\tgit\t");
    ctx.pkg(&["update"]).success();
    assert_eq!(
        head(&mine),
        before,
        "pkg update pulled in the user's directory"
    );
    assert!(!mine.join("README").exists());
    ctx.pkg(&["tap", "remove", "mine"]).success();
    assert_eq!(head(&mine), before);
    assert!(mine.join("tool.toml").exists());
}

#[test]
fn a_tap_source_starting_with_a_dash_never_reaches_git() {
    let ctx = TestContext::new();
    let marker = ctx.home.join("pwned");
    let source = format!("--upload-pack=touch {};:.git", marker.display());
    ctx.pkg(&["tap", "add", "evil", "--", &source])
        .failure_with(2)
        .says("starts with `-`");
    assert!(!marker.exists(), "git ran the --upload-pack command");
    assert_eq!(ctx.pkg(&["tap", "list"]).success().stdout, "");
    // Nothing is left of a clone.
    let taps = ctx.prefix.join("var/pkg/taps");
    let left: Vec<_> = std::fs::read_dir(&taps)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // A directory whose name starts with `-` is still a tap when named as a path.
    let odd = ctx.home.join("-odd");
    std::fs::create_dir_all(&odd).unwrap();
    ctx.pkg(&["tap", "add", "odd", "--", "-odd"])
        .failure_with(2)
        .says("./-odd");
    ctx.pkg(&["tap", "add", "odd", "./-odd"]).success();
}

/// A local git repository as a tap is cloned (issue 31, the first hour): a bare one (it was
/// linked as a directory with 0 formulae, exit 0) and one with a work tree (its committed
/// formulae, not its uncommitted edits).
#[test]
fn a_local_git_repository_bare_or_not_is_cloned_as_a_tap() {
    let scratch = tempfile::tempdir().unwrap();
    let origin = scratch.path().join("origin");
    std::fs::create_dir_all(origin.join("formulae")).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let formula = |v: &str| {
        Formula::new("tool")
            .version(v, "ghcr.io/acme/tool", v)
            .to_toml()
    };
    std::fs::write(origin.join("formulae/tool.toml"), formula("1.0.0")).unwrap();
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-q", "-m", "tool 1.0.0"]);
    let bare = scratch.path().join("tap.git");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--bare",
            origin.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    // Not committed: a clone does not see it.
    std::fs::write(origin.join("formulae/tool.toml"), formula("9.9.9")).unwrap();

    let ctx = TestContext::new();
    ctx.pkg(&["tap", "add", "bare", bare.to_str().unwrap()])
        .success();
    ctx.pkg(&["tap", "add", "work", origin.to_str().unwrap()])
        .success();
    let list = ctx.pkg(&["tap", "list"]).success().stdout;
    assert!(list.contains("bare\tgit\t"), "{list}");
    assert!(list.contains("work\tgit\t"), "{list}");
    for source in ["bare", "work"] {
        ctx.pkg(&["info", &format!("{source}/tool")])
            .success()
            .says("1.0.0");
    }
    let info = ctx.pkg(&["info", "work/tool"]).success();
    assert!(!info.stdout.contains("9.9.9"), "{}", info.stdout);
}
