//! `pkg bundle`: a Pkgfile locked to digests installs the same bytes everywhere (issue 16).

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

fn image(name: &str, text: &str) -> Fixture {
    Fixture::Image(ImageSpec::new("linux", "amd64").file(
        &format!("bin/{name}"),
        format!("#!/bin/sh\necho {text}\n"),
        0o755,
    ))
}

/// Formulae for app (needs lib ^1), lib and hello at `versions`, all in `ctx`'s formula dir.
fn formulae(ctx: &TestContext, registry: &Registry, versions: &[&str]) {
    for name in ["app", "lib", "hello"] {
        let repo = format!("{}/acme/{name}", registry.host());
        let mut f = Formula::new(name);
        for v in versions {
            let deps: &[(&str, &str)] = if name == "app" { &[("lib", "^1")] } else { &[] };
            f = f.version_with(v, &repo, v, None, deps);
        }
        ctx.write_formula(name, &f.to_toml());
    }
}

/// app, lib and hello 1.0.0 pushed, and a context with their formulae.
fn published(registry: &Registry) -> TestContext {
    for name in ["app", "lib", "hello"] {
        registry.push(
            &format!("acme/{name}"),
            "1.0.0",
            &image(name, &format!("{name} 1.0.0")),
        );
    }
    let ctx = TestContext::new();
    formulae(&ctx, registry, &["1.0.0"]);
    ctx
}

#[test]
fn a_lock_installs_the_locked_bytes_after_the_tag_moves_and_offline_and_locked_refuses_changes() {
    let mut registry = Registry::start();
    let ctx = published(&registry);
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    std::fs::write(&pkgfile, "[packages]\napp = \"^1\"\nhello = \"*\"\n").unwrap();
    let file = pkgfile.to_str().unwrap();
    let lockfile = project.join("Pkgfile.lock");

    ctx.pkg(&["bundle", "lock", "--file", file])
        .success()
        .says("Locked 3 packages");
    let first = std::fs::read(&lockfile).unwrap();
    ctx.pkg(&["bundle", "lock", "--file", file]).success();
    assert_eq!(std::fs::read(&lockfile).unwrap(), first, "two locks differ");
    let text = String::from_utf8(first).unwrap();
    assert!(text.contains("schema = 1"), "{text}");
    assert!(
        text.contains("name = \"lib\""),
        "dependencies are locked too:\n{text}"
    );
    assert!(text.contains("[[package.platform]]"), "{text}");

    // A newer version, and the locked tag moved to other bytes.
    registry.push("acme/hello", "1.0.0", &image("hello", "hello moved"));
    registry.push("acme/hello", "2.0.0", &image("hello", "hello 2.0.0"));
    formulae(&ctx, &registry, &["1.0.0", "2.0.0"]);

    let fresh = ctx.sharing_cache();
    let fresh = {
        let mut f = fresh;
        f.cache = ctx.home.join("fresh-cache");
        f
    };
    fresh
        .pkg(&["bundle", "install", "--locked", "--file", file])
        .success();
    assert_eq!(crate::faults::run_bin(&fresh, "hello"), "hello 1.0.0");
    assert_eq!(crate::faults::run_bin(&fresh, "app"), "app 1.0.0");
    assert_eq!(fresh.cellar_versions("lib"), ["1.0.0"]);
    fresh.pkg(&["bundle", "check", "--file", file]).success();

    // From a warm cache with the registry gone: the same, into another prefix.
    registry.stop();
    let offline = {
        let mut o = ctx.sharing_cache();
        o.cache = fresh.cache.clone();
        o
    };
    offline
        .pkg(&["bundle", "install", "--frozen", "--file", file])
        .success();
    assert_eq!(crate::faults::run_bin(&offline, "hello"), "hello 1.0.0");
    offline.pkg(&["bundle", "check", "--file", file]).success();

    // A changed Pkgfile: --locked refuses and installs nothing.
    std::fs::write(&pkgfile, "[packages]\napp = \"^1\"\nhello = \"^2\"\n").unwrap();
    let other = ctx.sharing_cache();
    other
        .pkg(&["bundle", "install", "--locked", "--file", file])
        .failure()
        .says("has changed since")
        .says("`hello` asks for `^2`");
    assert!(
        !other.prefix.join("Cellar").exists(),
        "--locked installed something"
    );
    other.pkg(&["bundle", "check", "--file", file]).failure();

    // A malformed Pkgfile is bad input.
    std::fs::write(&pkgfile, "[packages]\nhello = \"garbage\"\n").unwrap();
    other
        .pkg(&["bundle", "lock", "--file", file])
        .failure_with(2)
        .says("hello");
}

#[test]
fn bundle_dump_writes_what_was_asked_for_and_cleanup_removes_what_the_pkgfile_does_not_name() {
    let registry = Registry::start();
    let ctx = published(&registry);
    ctx.pkg(&["install", "app", "hello@^1"]).success();
    let dump = ctx.pkg(&["bundle", "dump"]).success().stdout;
    assert!(dump.contains("[packages]"), "{dump}");
    assert!(dump.contains("app = \"*\""), "{dump}");
    assert!(
        dump.contains("hello = \"^1\""),
        "the remembered request:\n{dump}"
    );
    assert!(
        !dump.contains("lib"),
        "a dependency is not asked for:\n{dump}"
    );

    let pkgfile = ctx.home.join("Pkgfile");
    std::fs::write(&pkgfile, "[packages]\nhello = \"^1\"\n").unwrap();
    let file = pkgfile.to_str().unwrap();
    ctx.pkg(&["bundle", "cleanup", "--file", file])
        .success()
        .says("app");
    assert_eq!(ctx.cellar_versions("app"), ["1.0.0"], "listed, not removed");
    ctx.pkg(&["bundle", "cleanup", "--force", "--file", file])
        .success();
    assert!(ctx.cellar_versions("app").is_empty());
    assert!(
        ctx.cellar_versions("lib").is_empty(),
        "its dependency went too"
    );
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
}

/// The Pkgfile is the truth (issue 30, item 5): `link = false` is never linked, not even for a
/// moment (a file in its way is no conflict); `bundle install --overwrite` takes links over as
/// `pkg install --overwrite` does; a package kept to another platform is named; `bundle check`
/// is not satisfied by a lock the Pkgfile no longer matches.
#[test]
fn the_pkgfile_is_the_truth_for_links_overwrite_platforms_and_check() {
    let registry = Registry::start();
    let ctx = published(&registry);
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    let file = pkgfile.to_str().unwrap();
    // Something of the user's where hello's link would go.
    std::fs::create_dir_all(ctx.prefix.join("bin")).unwrap();
    std::fs::write(ctx.prefix.join("bin/hello"), "mine").unwrap();
    std::fs::write(
        &pkgfile,
        "[packages]\nhello = { version = \"1\", link = false }\nlib = { version = \"*\", platforms = [\"darwin/*\"] }\n",
    )
    .unwrap();
    let run = ctx.pkg(&["bundle", "install", "--file", file]).success();
    run.says("Skipping lib (the Pkgfile keeps it to darwin/*; this is linux/");
    assert!(!run.stderr.contains("--overwrite"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(ctx.prefix.join("bin/hello")).unwrap(),
        "mine"
    );
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
    assert!(ctx.cellar_versions("lib").is_empty());
    assert!(!ctx.prefix.join("opt/hello").exists());
    ctx.pkg(&["bundle", "check", "--file", file]).success();

    // The Pkgfile gains a package: check is no longer satisfied, and says why.
    std::fs::write(
        &pkgfile,
        "[packages]\nhello = { version = \"1\", link = false }\nlib = { version = \"*\", platforms = [\"darwin/*\"] }\napp = \"*\"\n",
    )
    .unwrap();
    ctx.pkg(&["bundle", "check", "--file", file])
        .failure()
        .says("changed since it was locked");

    // Linked now, over the user's file only with --overwrite.
    std::fs::write(&pkgfile, "[packages]\nhello = \"1\"\n").unwrap();
    ctx.pkg(&["bundle", "install", "--file", file])
        .failure()
        .says("bin/hello");
    ctx.pkg(&["link", "hello"]).failure();
    ctx.pkg(&["bundle", "install", "--file", file, "--overwrite"])
        .success();
    assert_eq!(crate::faults::run_bin(&ctx, "hello"), "hello 1.0.0");
}

/// `bundle dump` writes back what the Pkgfile said — each requirement as written, `link = false`
/// — so the dumped Pkgfile locks to the same lock, byte for byte. Before, `{ version = "1",
/// link = false }` came back as `"*"`.
#[test]
fn a_dumped_pkgfile_locks_to_the_same_lock() {
    let registry = Registry::start();
    let ctx = published(&registry);
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    std::fs::write(
        &pkgfile,
        "[packages]\napp = { version = \"^1\", platforms = [\"linux\"] }\nhello = { version = \"1\", link = false }\n",
    )
    .unwrap();
    let file = pkgfile.to_str().unwrap();
    ctx.pkg(&["bundle", "install", "--file", file]).success();
    let locked = std::fs::read(project.join("Pkgfile.lock")).unwrap();

    let dump = ctx.pkg(&["bundle", "dump"]).success().stdout;
    assert!(
        dump.contains("hello = { version = \"1\", link = false }"),
        "{dump}"
    );
    assert!(
        dump.contains("app = { version = \"^1\", platforms = [\"linux\"] }"),
        "{dump}"
    );
    let again = ctx.home.join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::write(again.join("Pkgfile"), &dump).unwrap();
    ctx.pkg(&[
        "bundle",
        "lock",
        "--file",
        again.join("Pkgfile").to_str().unwrap(),
    ])
    .success();
    assert_eq!(
        String::from_utf8(std::fs::read(again.join("Pkgfile.lock")).unwrap()).unwrap(),
        String::from_utf8(locked).unwrap()
    );
}

/// A bundle install that fails says what it did write before (the lock), never "nothing was
/// changed" (issue 30, item 5).
#[test]
fn a_failed_bundle_install_says_what_it_wrote() {
    use crate::harness::proxy::{Fault, Times};
    let rig = crate::faults::Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    let project = rig.ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    std::fs::write(&pkgfile, "[packages]\nhello = \"*\"\n").unwrap();
    rig.reg()
        .on("GET", "/blobs/", Times::Always, Fault::CorruptByte);
    let run = rig
        .ctx
        .pkg(&["bundle", "install", "--file", pkgfile.to_str().unwrap()])
        .failure();
    run.says("bundle install did not finish")
        .says(&format!(
            "{} is as locked",
            project.join("Pkgfile.lock").display()
        ))
        .says("left nothing behind");
    assert!(
        !run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    assert!(project.join("Pkgfile.lock").exists());
    assert!(rig.ctx.cellar_versions("hello").is_empty());
}
