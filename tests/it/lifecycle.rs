//! The everyday verbs after install: upgrade, outdated, pin, link/unlink, uninstall, cleanup,
//! autoremove, fetch, list/info/search, deps/uses — against the real registry.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

/// A `hello` image whose binary prints its version.
fn hello_image(name: &str, version: &str) -> Fixture {
    Fixture::Image(ImageSpec::new("linux", "amd64").file(
        &format!("bin/{name}"),
        format!("#!/bin/sh\necho {name} {version}\n"),
        0o755,
    ))
}

/// Pushes `name` at each version and writes a formula listing `versions` (a subset, to let a
/// test "release" a version later by rewriting the formula).
fn publish(registry: &Registry, name: &str, versions: &[&str]) {
    for v in versions {
        registry.push(&format!("acme/{name}"), v, &hello_image(name, v));
    }
}

fn formula(ctx: &TestContext, registry: &Registry, name: &str, versions: &[&str]) {
    let repo = format!("{}/acme/{name}", registry.host());
    let mut f = Formula::new(name);
    for v in versions {
        f = f.version(v, &repo, v);
    }
    ctx.write_formula(name, &f.to_toml());
}

/// Runs the linked binary `PREFIX/bin/NAME` and returns its output.
fn run_bin(ctx: &TestContext, name: &str) -> String {
    let out = Command::new(ctx.prefix.join("bin").join(name))
        .output()
        .unwrap_or_else(|e| panic!("cannot run bin/{name}: {e}\n{}", ctx.prefix_listing()));
    assert!(out.status.success(), "bin/{name} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn json(run: &crate::harness::Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.stdout))
}

#[test]
fn upgrade_across_three_versions_with_a_pin_in_the_middle() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0", "2.0.0", "3.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");

    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    ctx.pkg(&["outdated", "hello"]).failure();
    ctx.pkg(&["upgrade"]).success().says("hello 1.0.0 -> 2.0.0");
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");
    assert_eq!(
        ctx.cellar_versions("hello"),
        ["2.0.0"],
        "the old keg is removed"
    );
    ctx.pkg(&["outdated", "hello"]).success();

    ctx.pkg(&["pin", "hello"]).success();
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0", "3.0.0"]);
    let run = ctx.pkg(&["outdated", "--json"]).success();
    assert_eq!(json(&run)["outdated"][0]["pinned"], true);
    ctx.pkg(&["upgrade"]).success().says("pinned");
    assert_eq!(
        run_bin(&ctx, "hello"),
        "hello 2.0.0",
        "a pinned package stays"
    );

    ctx.pkg(&["unpin", "hello"]).success();
    ctx.pkg(&["upgrade", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 3.0.0");
    assert_eq!(ctx.cellar_versions("hello"), ["3.0.0"]);
    assert_eq!(ctx.receipt("hello", "3.0.0")["installed_on_request"], true);
}

#[test]
fn failed_upgrade_leaves_the_old_version_linked_and_runnable_and_others_still_upgrade() {
    let mut registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    publish(&registry, "other", &["1.0.0", "2.0.0"]);
    let broken = registry.push("acme/hello", "2.0.0", &hello_image("hello", "2.0.0"));
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    formula(&ctx, &registry, "other", &["1.0.0"]);
    ctx.pkg(&["install", "hello", "other"]).success();

    // 2.0.0's layer vanishes from the registry (and was never cached).
    let blob = registry.blob_path(broken.layer_digest());
    std::fs::remove_file(&blob).unwrap_or_else(|e| panic!("remove {}: {e}", blob.display()));
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    formula(&ctx, &registry, "other", &["1.0.0", "2.0.0"]);
    let before = ctx.prefix_listing();
    let run = ctx.pkg(&["upgrade"]).failure();
    run.says("hello").says("failed to upgrade");
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");
    assert_eq!(
        ctx.cellar_versions("hello"),
        ["1.0.0"],
        "no half keg:\n{}",
        ctx.prefix_listing()
    );
    assert_eq!(
        run_bin(&ctx, "other"),
        "other 2.0.0",
        "one failure does not stop the others"
    );
    assert!(before.contains("bin/hello -> ../Cellar/hello/1.0.0/bin/hello"));
    assert!(
        ctx.prefix_listing()
            .contains("bin/hello -> ../Cellar/hello/1.0.0/bin/hello")
    );
    assert!(
        !ctx.prefix.join("Cellar/.staging").exists()
            || std::fs::read_dir(ctx.prefix.join("Cellar/.staging"))
                .unwrap()
                .next()
                .is_none()
    );
    registry.stop();
}

#[test]
fn unlink_survives_upgrade_until_link() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    ctx.pkg(&["unlink", "hello"]).success();
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/hello")).is_err());

    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    ctx.pkg(&["upgrade"]).success();
    assert_eq!(ctx.cellar_versions("hello"), ["2.0.0"]);
    assert!(
        std::fs::symlink_metadata(ctx.prefix.join("bin/hello")).is_err(),
        "upgrade relinked what the user unlinked:\n{}",
        ctx.prefix_listing()
    );
    assert!(std::fs::symlink_metadata(ctx.prefix.join("opt/hello")).is_err());

    let dry = ctx.pkg(&["link", "--dry-run", "hello"]).success();
    assert!(
        dry.stdout.contains("../Cellar/hello/2.0.0/bin/hello"),
        "{}",
        dry.stdout
    );
    assert!(
        std::fs::symlink_metadata(ctx.prefix.join("bin/hello")).is_err(),
        "dry run linked"
    );
    ctx.pkg(&["link", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");
}

#[test]
fn link_refuses_a_foreign_file_without_overwrite() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    ctx.pkg(&["unlink", "hello"]).success();
    std::fs::write(ctx.prefix.join("bin/hello"), "mine").unwrap();
    ctx.pkg(&["link", "--dry-run", "hello"])
        .failure()
        .says("--overwrite");
    ctx.pkg(&["link", "hello"])
        .failure()
        .says("did not install");
    assert_eq!(
        std::fs::read_to_string(ctx.prefix.join("bin/hello")).unwrap(),
        "mine"
    );
    ctx.pkg(&["link", "--overwrite", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");
}

fn app_and_lib(ctx: &TestContext, registry: &Registry) {
    publish(registry, "lib", &["1.0.0"]);
    publish(registry, "app", &["1.0.0"]);
    let host = registry.host();
    formula(ctx, registry, "lib", &["1.0.0"]);
    ctx.write_formula(
        "app",
        &Formula::new("app")
            .version_with(
                "1.0.0",
                &format!("{host}/acme/app"),
                "1.0.0",
                None,
                &[("lib", "^1")],
            )
            .to_toml(),
    );
}

#[test]
fn uninstall_is_refused_while_a_dependent_is_installed() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    app_and_lib(&ctx, &registry);
    ctx.pkg(&["install", "app"]).success();
    let uses = ctx.pkg(&["uses", "lib"]).success();
    assert_eq!(uses.stdout.trim(), "app 1.0.0");
    let deps = ctx.pkg(&["deps", "app", "--tree"]).success();
    assert_eq!(deps.stdout, "app 1.0.0\n  lib 1.0.0\n");

    ctx.pkg(&["uninstall", "lib"])
        .failure()
        .says("required by app 1.0.0");
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);
    assert!(ctx.prefix.join("bin/lib").exists());

    ctx.pkg(&["uninstall", "app"]).success();
    assert!(ctx.cellar_versions("app").is_empty());
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/app")).is_err());
    assert!(std::fs::symlink_metadata(ctx.prefix.join("opt/app")).is_err());
    ctx.pkg(&["uninstall", "lib"]).success();
    assert!(ctx.cellar_versions("lib").is_empty());
    ctx.pkg(&["uninstall", "lib"])
        .success()
        .says("not installed; nothing to remove");
}

#[test]
fn uninstall_ignore_dependencies_and_autoremove() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    app_and_lib(&ctx, &registry);
    ctx.pkg(&["install", "app"]).success();
    // app goes, lib (a dependency nothing needs any more) is left for autoremove.
    ctx.pkg(&["uninstall", "app"]).success();
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);
    ctx.pkg(&["autoremove", "--dry-run"]).success();
    assert_eq!(
        ctx.cellar_versions("lib"),
        ["1.0.0"],
        "dry run removed something"
    );
    ctx.pkg(&["autoremove"]).success();
    assert!(ctx.cellar_versions("lib").is_empty());

    ctx.pkg(&["install", "app"]).success();
    ctx.pkg(&["uninstall", "--ignore-dependencies", "lib"])
        .success();
    assert!(ctx.cellar_versions("lib").is_empty());
    assert_eq!(ctx.cellar_versions("app"), ["1.0.0"]);
}

fn cache_blobs(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("v1/blobs/sha256"))
        .map(|rd| {
            rd.map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn cleanup_frees_exactly_the_unreferenced_blobs() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    let old = ctx.receipt("hello", "1.0.0");
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    ctx.pkg(&["upgrade", "--keep-old"]).success();
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0", "2.0.0"]);
    let new = ctx.receipt("hello", "2.0.0");
    let digests = |r: &Value| -> Vec<String> {
        let mut d: Vec<String> = r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        d.push(r["manifest_digest"].as_str().unwrap().to_owned());
        d
    };
    let mut everything = digests(&old);
    everything.extend(digests(&new));
    everything.sort();
    assert_eq!(cache_blobs(&ctx.cache), everything);

    // A download a dead run left (two hours old, unlocked) and one in progress (another run's:
    // it holds the file's lock).
    let tmp = ctx.cache.join("v1/tmp");
    std::fs::write(tmp.join("stale.partial"), vec![0u8; 1000]).unwrap();
    std::fs::write(tmp.join("fresh.partial"), vec![0u8; 1000]).unwrap();
    let in_progress = std::fs::File::open(tmp.join("fresh.partial")).unwrap();
    in_progress.lock().unwrap();
    let status = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(tmp.join("stale.partial"))
        .status()
        .unwrap();
    assert!(status.success());

    let dry = ctx.pkg(&["cleanup", "--dry-run"]).success();
    assert!(dry.stdout.contains("Cellar/hello/1.0.0"), "{}", dry.stdout);
    assert_eq!(cache_blobs(&ctx.cache), everything, "dry run removed blobs");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0", "2.0.0"]);

    ctx.pkg(&["cleanup"]).success().says("Freed");
    assert_eq!(ctx.cellar_versions("hello"), ["2.0.0"]);
    let mut kept = digests(&new);
    kept.sort();
    assert_eq!(
        cache_blobs(&ctx.cache),
        kept,
        "exactly the unreferenced blobs go"
    );
    assert!(!tmp.join("stale.partial").exists());
    assert!(tmp.join("fresh.partial").exists());
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");

    ctx.pkg(&["cleanup", "--prune", "0"]).success();
    assert!(cache_blobs(&ctx.cache).is_empty());
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");
}

/// `pkg cleanup` also removes dependencies nothing installed on request needs any more, and
/// `--prune DAYS` drops cached blobs older than that even when a keg references them, keeping
/// the recent ones.
#[test]
fn cleanup_removes_unneeded_dependencies_and_prune_goes_by_age() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    app_and_lib(&ctx, &registry);
    ctx.pkg(&["install", "app"]).success();
    let lib_layers: Vec<String> = ctx.receipt("lib", "1.0.0")["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    let app = ctx.receipt("app", "1.0.0");
    let app_layer = app["layers"][0].as_str().unwrap().to_owned();

    // Everything is referenced and recent: --prune 30 keeps it all.
    let before = cache_blobs(&ctx.cache);
    ctx.pkg(&["cleanup", "--prune", "30"]).success();
    assert_eq!(cache_blobs(&ctx.cache), before);

    // app's layer is made 40 days old: --prune 30 drops it, app stays installed.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    let path = ctx
        .cache
        .join("v1/blobs/sha256")
        .join(app_layer.strip_prefix("sha256:").unwrap());
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    ctx.pkg(&["cleanup", "--prune", "30"]).success();
    let after = cache_blobs(&ctx.cache);
    assert!(!after.contains(&app_layer), "{after:?}");
    assert!(lib_layers.iter().all(|d| after.contains(d)), "{after:?}");
    assert_eq!(ctx.cellar_versions("app"), ["1.0.0"]);

    // app goes; lib, a dependency nobody needs now, goes with the next cleanup.
    ctx.pkg(&["uninstall", "app"]).success();
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);
    ctx.pkg(&["cleanup", "--dry-run"]).success();
    assert_eq!(
        ctx.cellar_versions("lib"),
        ["1.0.0"],
        "a dry run removed it"
    );
    ctx.pkg(&["cleanup"]).success();
    assert!(
        ctx.cellar_versions("lib").is_empty(),
        "{}",
        ctx.prefix_listing()
    );
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/lib")).is_err());
    let left = cache_blobs(&ctx.cache);
    assert!(lib_layers.iter().all(|d| !left.contains(d)), "{left:?}");
}

#[test]
fn install_of_an_outdated_package_says_so_and_upgrades_only_when_asked() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    ctx.pkg(&["install", "hello"])
        .success()
        .says("2.0.0 is available");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
    ctx.pkg(&["install", "--upgrade", "hello"]).success();
    assert_eq!(ctx.cellar_versions("hello"), ["2.0.0"]);
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");
}

#[test]
fn fetch_fills_the_cache_without_installing() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["fetch", "hello"]).success();
    assert!(!ctx.prefix.join("Cellar/hello").exists());
    assert_eq!(cache_blobs(&ctx.cache).len(), 2, "manifest and layer");
    ctx.pkg(&["fetch", "hello"])
        .success()
        .says("already in the cache");
}

#[test]
fn json_outputs_parse_and_match_the_documented_schema() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    ctx.pkg(&["install", "hello@1.0.0"]).success();

    let list = json(&ctx.pkg(&["list", "--json"]).success());
    assert_eq!(list["schema"], 1);
    let p = &list["packages"][0];
    assert_eq!(p["name"], "hello");
    assert_eq!(p["versions"], serde_json::json!(["1.0.0"]));
    assert_eq!(p["linked"], "1.0.0");
    assert_eq!(p["pinned"], false);
    assert_eq!(p["installed_on_request"], true);
    assert_eq!(p["requested"], "1.0.0");
    assert_eq!(p["requirement"], "=1.0.0");
    // As if 1.0.0 was the newest when it was installed: upgrade may move it.
    ctx.forget_request("hello");

    let doc = json(&ctx.pkg(&["info", "hello", "--json"]).success());
    assert_eq!(doc["schema"], 1);
    let info = &doc["packages"][0];
    assert_eq!(info["formula"]["newest"], "2.0.0");
    assert_eq!(info["installed"][0]["version"], "1.0.0");
    assert_eq!(info["installed"][0]["linked"], true);
    assert_eq!(info["installed"][0]["receipt"]["schema"], 1);
    assert_eq!(info["linked"], "1.0.0");

    let out = ctx.pkg(&["outdated", "--json"]).success();
    let out = json(&out);
    assert_eq!(out["schema"], 1);
    assert_eq!(out["outdated"][0]["installed"], "1.0.0");
    assert_eq!(out["outdated"][0]["latest"], "2.0.0");

    let up = json(&ctx.pkg(&["upgrade", "--dry-run", "--json"]).success());
    assert_eq!(up["schema"], 1);
    assert_eq!(up["dry_run"], true);
    assert_eq!(up["upgraded"][0]["to"], "2.0.0");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"], "dry run upgraded");

    let up = json(&ctx.pkg(&["upgrade", "--json"]).success());
    assert_eq!(up["upgraded"][0]["from"], "1.0.0");
    assert!(up["failed"].as_array().unwrap().is_empty());

    let list = ctx.pkg(&["list", "--versions"]).success();
    assert_eq!(list.stdout, "hello 2.0.0\n");
    ctx.pkg(&["search", "hel"])
        .success()
        .says("hello: The hello test package");
    ctx.pkg(&["search", "zzz"]).failure();
}

#[test]
fn a_held_prefix_lock_makes_no_wait_fail_fast() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    let lock = std::fs::File::options()
        .write(true)
        .open(ctx.prefix.join("var/pkg/lock"))
        .unwrap();
    lock.lock().unwrap();
    ctx.pkg(&["--no-wait", "pin", "hello"])
        .failure()
        .says("another pkg is changing");
    // Read-only commands need no lock.
    ctx.pkg(&["list"]).success();
    drop(lock);
    ctx.pkg(&["--no-wait", "pin", "hello"]).success();
}

#[test]
fn dependencies_move_only_when_the_new_version_requires_it() {
    let registry = Registry::start();
    publish(&registry, "lib", &["1.0.0", "1.5.0"]);
    publish(&registry, "app", &["1.0.0", "2.0.0", "3.0.0"]);
    let ctx = TestContext::new();
    let host = registry.host();
    formula(&ctx, &registry, "lib", &["1.0.0"]);
    let app = |versions: &[(&str, &str)]| {
        let mut f = Formula::new("app");
        for (v, req) in versions {
            f = f.version_with(v, &format!("{host}/acme/app"), v, None, &[("lib", req)]);
        }
        ctx.write_formula("app", &f.to_toml());
    };
    app(&[("1.0.0", "^1")]);
    ctx.pkg(&["install", "app"]).success();
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);

    // A newer lib exists, but app 2.0.0 is content with the installed one.
    formula(&ctx, &registry, "lib", &["1.0.0", "1.5.0"]);
    app(&[("1.0.0", "^1"), ("2.0.0", "^1")]);
    ctx.pkg(&["upgrade", "app"]).success();
    assert_eq!(ctx.cellar_versions("app"), ["2.0.0"]);
    assert_eq!(
        ctx.cellar_versions("lib"),
        ["1.0.0"],
        "lib moved without need"
    );
    assert_eq!(ctx.receipt("lib", "1.0.0")["installed_on_request"], false);

    // app 3.0.0 needs lib ^1.5: now lib moves too, and stays a dependency.
    app(&[("1.0.0", "^1"), ("2.0.0", "^1"), ("3.0.0", "^1.5")]);
    let run = ctx.pkg(&["upgrade", "app", "--json"]).success();
    let out = json(&run);
    assert_eq!(
        out["upgraded"],
        serde_json::json!([{"name": "app", "from": "2.0.0", "to": "3.0.0"}])
    );
    // `moved` lists every package the run changed, the dependency that had to move included.
    let mut moved: Vec<Value> = out["moved"].as_array().unwrap().clone();
    moved.sort_by_key(|m| m["name"].as_str().unwrap().to_owned());
    assert_eq!(
        moved,
        [
            serde_json::json!({"name": "app", "from": "2.0.0", "to": "3.0.0", "action": "upgrade"}),
            serde_json::json!({"name": "lib", "from": "1.0.0", "to": "1.5.0", "action": "upgrade"}),
        ]
    );
    assert_eq!(ctx.cellar_versions("app"), ["3.0.0"]);
    assert_eq!(ctx.cellar_versions("lib"), ["1.5.0"]);
    assert_eq!(ctx.receipt("lib", "1.5.0")["installed_on_request"], false);
    assert_eq!(ctx.receipt("app", "3.0.0")["dependencies"]["lib"], "1.5.0");
    assert_eq!(run_bin(&ctx, "lib"), "lib 1.5.0");
}

#[test]
fn a_second_pkg_waits_for_the_prefix_lock_and_says_so() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    let lock = std::fs::File::options()
        .write(true)
        .open(ctx.prefix.join("var/pkg/lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut child = ctx.command(&["pin", "hello"]).spawn().unwrap();
    // Read until pkg says it waits (not a fixed sleep: on a loaded machine it may take longer
    // to get there, and the check below would then prove nothing).
    let stderr = child.stderr.take().unwrap();
    let (said_tx, said_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap_or_default();
            if line.contains("Waiting") {
                let _ = said_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    said_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("pkg pin said it waits for the lock");
    assert!(
        !ctx.prefix.join("var/pkg/pinned/hello").exists(),
        "pin went ahead while the lock was held"
    );
    drop(lock);
    let status = child.wait().unwrap();
    let said = reader.join().unwrap();
    assert!(status.success(), "{said}");
    assert!(said.contains("for another pkg"), "{said}");
    assert!(ctx.prefix.join("var/pkg/pinned/hello").exists());
}

/// `app` at each `(version, requirement on lib)`.
fn app_formula(ctx: &TestContext, registry: &Registry, versions: &[(&str, &str)]) {
    let host = registry.host();
    let mut f = Formula::new("app");
    for (v, req) in versions {
        f = f.version_with(v, &format!("{host}/acme/app"), v, None, &[("lib", req)]);
    }
    ctx.write_formula("app", &f.to_toml());
}

#[test]
fn upgrade_stops_at_the_newest_version_installed_dependents_accept() {
    let registry = Registry::start();
    publish(&registry, "lib", &["1.0.0", "1.5.0", "2.0.0"]);
    publish(&registry, "app", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "lib", &["1.0.0"]);
    app_formula(&ctx, &registry, &[("1.0.0", "^1")]);
    ctx.pkg(&["install", "app"]).success();

    // lib 1.5.0 and 2.0.0 are released; app 1.0.0 accepts only 1.x.
    formula(&ctx, &registry, "lib", &["1.0.0", "1.5.0", "2.0.0"]);
    let out = ctx.pkg(&["outdated"]).success();
    assert_eq!(
        out.stdout,
        "lib (1.0.0) < 1.5.0 [2.0.0 held back by app 1.0.0]\n"
    );
    let out = json(&ctx.pkg(&["outdated", "--json"]).success());
    let row = &out["outdated"][0];
    assert_eq!(row["name"], "lib");
    assert_eq!(row["latest"], "2.0.0");
    assert_eq!(row["allowed"], "1.5.0");
    assert_eq!(row["held_back"]["by"], "app 1.0.0");

    let run = ctx.pkg(&["upgrade"]).success();
    run.says("Upgraded lib 1.0.0 -> 1.5.0")
        .says("lib 2.0.0 is held back by app 1.0.0 (requires lib ^1)")
        .says("Finished upgrading lib 1.0.0 -> 1.5.0 in ")
        .says("; held back: lib 2.0.0");
    assert_eq!(ctx.cellar_versions("lib"), ["1.5.0"]);
    assert_eq!(run_bin(&ctx, "lib"), "lib 1.5.0");
    assert_eq!(ctx.receipt("lib", "1.5.0")["installed_on_request"], false);

    // Nothing left to do: held back is not a failure, run after run.
    ctx.pkg(&["upgrade"])
        .success()
        .says("lib 2.0.0 is held back by app 1.0.0")
        .says("nothing upgraded; held back: lib 2.0.0");
    let up = json(&ctx.pkg(&["upgrade", "--json"]).success());
    assert!(up["upgraded"].as_array().unwrap().is_empty(), "{up}");
    assert!(up["failed"].as_array().unwrap().is_empty(), "{up}");
    assert_eq!(up["held_back"][0]["name"], "lib");
    assert_eq!(up["held_back"][0]["version"], "1.5.0");
    assert_eq!(up["held_back"][0]["latest"], "2.0.0");
    assert_eq!(up["held_back"][0]["by"], "app 1.0.0");
    let out = ctx.pkg(&["outdated"]).success();
    assert_eq!(out.stdout, "lib (1.5.0) < 2.0.0 [held back by app 1.0.0]\n");
    let out = json(&ctx.pkg(&["outdated", "--json"]).success());
    assert_eq!(out["outdated"][0]["allowed"], Value::Null);
    ctx.pkg(&["outdated", "lib"]).failure();

    // app 2.0.0 needs lib ^2: upgrading app takes lib along.
    app_formula(&ctx, &registry, &[("1.0.0", "^1"), ("2.0.0", "^2")]);
    let run = ctx.pkg(&["upgrade"]).success();
    run.says("Upgraded lib 1.5.0 -> 2.0.0")
        .says("Upgraded app 1.0.0 -> 2.0.0")
        .says("upgrading lib 1.5.0 -> 2.0.0, app 1.0.0 -> 2.0.0 in ");
    assert_eq!(ctx.cellar_versions("app"), ["2.0.0"]);
    assert_eq!(ctx.cellar_versions("lib"), ["2.0.0"]);
    assert_eq!(run_bin(&ctx, "lib"), "lib 2.0.0");
    assert_eq!(ctx.pkg(&["outdated"]).success().stdout, "");
    ctx.pkg(&["outdated", "lib"]).success();
}

#[test]
fn a_pinned_dependency_never_moves_and_holds_back_what_needs_it_to() {
    let registry = Registry::start();
    publish(&registry, "lib", &["1.0.0", "2.0.0"]);
    publish(&registry, "app", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "lib", &["1.0.0"]);
    app_formula(&ctx, &registry, &[("1.0.0", "*")]);
    ctx.pkg(&["install", "app"]).success();
    ctx.pkg(&["pin", "lib"]).success();

    // app 2.0.0 needs lib ^2, but lib is pinned at 1.0.0.
    formula(&ctx, &registry, "lib", &["1.0.0", "2.0.0"]);
    app_formula(&ctx, &registry, &[("1.0.0", "*"), ("2.0.0", "^2")]);
    let pin = "app 2.0.0 needs lib ^2 but lib is pinned at 1.0.0; `pkg unpin lib` to allow it";
    for args in [
        &["upgrade"][..],
        &["upgrade", "app"],
        &["install", "--upgrade", "app"],
    ] {
        ctx.pkg(args).success().says(pin);
        assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"], "pkg {args:?}");
        assert_eq!(ctx.cellar_versions("app"), ["1.0.0"], "pkg {args:?}");
        assert_eq!(run_bin(&ctx, "lib"), "lib 1.0.0");
    }
    let up = json(&ctx.pkg(&["upgrade", "--json"]).success());
    assert_eq!(up["pinned"][0]["name"], "lib");
    assert_eq!(up["held_back"][0]["name"], "app");
    assert_eq!(up["held_back"][0]["by"], "the pin on lib");
    assert_eq!(up["held_back"][0]["reason"], pin);
    let out = ctx.pkg(&["outdated"]).success();
    assert_eq!(
        out.stdout,
        "app (1.0.0) < 2.0.0 [held back by the pin on lib]\nlib (1.0.0) < 2.0.0 [pinned]\n"
    );
    // `pkg deps` plans as install does: with the pin.
    ctx.pkg(&["deps", "app@2.0.0"]).failure().says(pin);
    assert_eq!(ctx.pkg(&["deps", "app"]).success().stdout, "lib 1.0.0\n");
    // Asking for another version of the pinned package itself is refused too.
    ctx.pkg(&["install", "lib@2.0.0"])
        .failure()
        .says("lib is pinned at 1.0.0; `pkg unpin lib`");
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);

    ctx.pkg(&["unpin", "lib"]).success();
    ctx.pkg(&["upgrade"]).success();
    assert_eq!(ctx.cellar_versions("app"), ["2.0.0"]);
    assert_eq!(ctx.cellar_versions("lib"), ["2.0.0"]);
}

#[test]
fn uninstall_of_one_version_checks_dependents_and_links_the_newest_remaining() {
    let registry = Registry::start();
    publish(&registry, "lib", &["1.0.0", "2.0.0"]);
    publish(&registry, "app", &["1.0.0"]);
    publish(&registry, "hello", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "lib", &["1.0.0", "2.0.0"]);
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    app_formula(&ctx, &registry, &[("1.0.0", "^1")]);
    ctx.pkg(&["install", "lib@2.0.0"]).success();
    ctx.pkg(&["install", "app"]).success();
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0", "2.0.0"]);
    assert_eq!(run_bin(&ctx, "lib"), "lib 1.0.0");

    // Only lib 1.0.0 meets app's ^1: it stays.
    ctx.pkg(&["uninstall", "lib@1.0.0"])
        .failure()
        .says("required by app 1.0.0 (lib ^1)")
        .says("which the remaining lib 2.0.0 does not satisfy");
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0", "2.0.0"]);
    assert_eq!(run_bin(&ctx, "lib"), "lib 1.0.0");
    // 2.0.0 is not needed and not linked: it goes, the links stay.
    ctx.pkg(&["uninstall", "lib@2.0.0"]).success();
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);
    assert_eq!(run_bin(&ctx, "lib"), "lib 1.0.0");

    // Removing the linked version links the newest one left.
    ctx.pkg(&["install", "hello@1.0.0"]).success();
    ctx.pkg(&["install", "hello@2.0.0"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");
    ctx.pkg(&["uninstall", "hello@2.0.0"])
        .success()
        .says("Linked hello 1.0.0");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");
    assert!(
        ctx.prefix_listing()
            .contains("opt/hello -> ../Cellar/hello/1.0.0"),
        "{}",
        ctx.prefix_listing()
    );

    // ... unless the user unlinked the package.
    ctx.pkg(&["install", "hello@2.0.0"]).success();
    ctx.pkg(&["unlink", "hello"]).success();
    ctx.pkg(&["uninstall", "hello@2.0.0"]).success();
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/hello")).is_err());
    assert!(std::fs::symlink_metadata(ctx.prefix.join("opt/hello")).is_err());
}

#[test]
fn upgrade_ends_with_a_summary_of_what_changed() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0", "2.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    let run = ctx.pkg(&["upgrade"]).success();
    // bin and bin/hello; "#!/bin/sh\necho hello 2.0.0\n" is 27 bytes.
    run.says("Upgraded hello 1.0.0 -> 2.0.0 (1 file, 27 B)")
        .says("Finished upgrading hello 1.0.0 -> 2.0.0 in ")
        .says("is not on your PATH");
    let finished = run.stderr.lines().find(|l| l.contains("Finished")).unwrap();
    assert!(finished.ends_with('s'), "{finished}");
    ctx.pkg(&["upgrade"])
        .success()
        .says("Up to date (every package; nothing to upgrade)");
}

#[test]
fn install_of_an_unlinked_package_says_how_to_link_it() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    ctx.pkg(&["unlink", "hello"]).success();
    ctx.pkg(&["install", "hello"])
        .success()
        .says("hello 1.0.0 is installed but not linked")
        .says("`pkg link hello` to link it");
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/hello")).is_err());
    ctx.pkg(&["link", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");
}

#[test]
fn names_with_an_at_sign_work_for_every_verb_that_names_an_installed_package() {
    let registry = Registry::start();
    publish(&registry, "tool", &["2.0.0", "2.1.0"]);
    let ctx = TestContext::new();
    let repo = format!("{}/acme/tool", registry.host());
    let tool2 = Formula::new("tool@2")
        .version("2.0.0", &repo, "2.0.0")
        .version("2.1.0", &repo, "2.1.0");
    ctx.write_formula("tool@2", &tool2.to_toml());
    ctx.pkg(&["install", "tool@2@2.0.0"]).success();
    ctx.pkg(&["install", "tool@2@2.1.0"]).success();
    assert_eq!(ctx.cellar_versions("tool@2"), ["2.0.0", "2.1.0"]);
    assert_eq!(run_bin(&ctx, "tool"), "tool 2.1.0");

    let info = ctx.pkg(&["info", "tool@2"]).success();
    assert!(
        info.stdout.starts_with("tool@2: 2.1.0\n"),
        "{}",
        info.stdout
    );
    assert!(
        info.stdout.contains("2.1.0 (linked, on request)"),
        "{}",
        info.stdout
    );
    ctx.pkg(&["unlink", "tool@2"])
        .success()
        .says("Unlinked tool@2 2.1.0");
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/tool")).is_err());
    ctx.pkg(&["link", "tool@2"])
        .success()
        .says("Linked tool@2 2.1.0");
    assert_eq!(run_bin(&ctx, "tool"), "tool 2.1.0");
    ctx.pkg(&["pin", "tool@2"]).success();
    ctx.pkg(&["unpin", "tool@2"]).success();

    // NAME@VERSION splits at the last `@`.
    ctx.pkg(&["uninstall", "tool@2@2.1.0"])
        .success()
        .says("Uninstalled tool@2 2.1.0")
        .says("Linked tool@2 2.0.0");
    assert_eq!(ctx.cellar_versions("tool@2"), ["2.0.0"]);
    assert_eq!(run_bin(&ctx, "tool"), "tool 2.0.0");
    ctx.pkg(&["uninstall", "tool@2@9.9.9"])
        .success()
        .says("`tool@2` 9.9.9 is not installed (installed: 2.0.0); nothing to remove");
    assert_eq!(ctx.cellar_versions("tool@2"), ["2.0.0"]);
    // The whole argument is the installed package's name, even with its formula gone.
    std::fs::remove_file(ctx.formulae.join("tool@2.toml")).unwrap();
    ctx.pkg(&["uninstall", "tool@2"])
        .success()
        .says("Uninstalled tool@2 2.0.0");
    assert!(ctx.cellar_versions("tool@2").is_empty());
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/tool")).is_err());
    // Neither `tool@2` nor `tool` is installed or a formula: the whole name is not installed.
    ctx.pkg(&["uninstall", "tool@2"])
        .success()
        .says("`tool@2` is not installed; nothing to remove");
}

#[test]
fn uninstall_goes_on_when_relinking_the_newest_remaining_version_fails() {
    let registry = Registry::start();
    // hello 1.0.0 has a binary 2.0.0 lacks: relinking 1.0.0 puts bin/hello-old back.
    let old = ImageSpec::new("linux", "amd64")
        .file("bin/hello", "#!/bin/sh\necho hello 1.0.0\n", 0o755)
        .file("bin/hello-old", "#!/bin/sh\necho old\n", 0o755);
    registry.push("acme/hello", "1.0.0", &Fixture::Image(old));
    publish(&registry, "hello", &["2.0.0"]);
    publish(&registry, "other", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0", "2.0.0"]);
    formula(&ctx, &registry, "other", &["1.0.0"]);
    ctx.pkg(&["install", "hello@1.0.0"]).success();
    ctx.pkg(&["install", "hello@2.0.0", "other"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 2.0.0");
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/hello-old")).is_err());
    std::fs::write(ctx.prefix.join("bin/hello-old"), "mine").unwrap();

    let run = ctx.pkg(&["uninstall", "hello@2.0.0", "other"]).failure();
    run.says("Uninstalled hello 2.0.0")
        .says("Uninstalled other 1.0.0")
        .says("linking hello 1.0.0 in its place failed; `pkg link hello` to retry")
        .says("bin/hello-old");
    assert_eq!(
        ctx.cellar_versions("hello"),
        ["1.0.0"],
        "the removal stays done"
    );
    assert!(
        ctx.cellar_versions("other").is_empty(),
        "the next target still went"
    );
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/other")).is_err());
    assert_eq!(
        std::fs::read_to_string(ctx.prefix.join("bin/hello-old")).unwrap(),
        "mine"
    );

    // The retry it names works once the file is out of the way.
    std::fs::remove_file(ctx.prefix.join("bin/hello-old")).unwrap();
    ctx.pkg(&["link", "hello"]).success();
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");
}

/// A package name on the command line is never a path: `../bin`, an absolute directory or a
/// name with `/` are usage errors (exit 2) before anything under the prefix is touched.
/// `pkg uninstall A B` where A is not installed (a typo, or a run that died after removing it):
/// B goes, A is reported, and the exit is 0 since nothing asked for is left; run again, it is
/// the same.
#[test]
fn uninstall_removes_what_is_installed_and_reports_what_is_not() {
    let registry = Registry::start();
    publish(&registry, "hello", &["1.0.0"]);
    let ctx = TestContext::new();
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    for _ in 0..2 {
        let run = ctx.pkg(&["uninstall", "gone", "hello"]).success();
        run.says("`gone` is not installed; nothing to remove");
        assert!(ctx.cellar_versions("hello").is_empty());
        assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/hello")).is_err());
    }
    ctx.pkg(&["uninstall", "hello"])
        .success()
        .says("`hello` is not installed");
}

#[test]
fn package_names_that_are_paths_are_refused_and_nothing_is_touched() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish(&registry, "hello", &["1.0.0"]);
    formula(&ctx, &registry, "hello", &["1.0.0"]);
    ctx.pkg(&["install", "hello"]).success();
    let victim = ctx.root().join("victim");
    std::fs::create_dir_all(victim.join("keep")).unwrap();
    let victim_arg = victim.to_str().unwrap().to_owned();
    for args in [
        vec!["uninstall", "--force", "../bin"],
        vec!["uninstall", "--force", &victim_arg],
        vec!["uninstall", "../../victim@1.0.0"],
        vec!["pin", "../../victim"],
        vec!["unlink", "../bin"],
        vec!["link", "../opt"],
        vec!["info", "../bin"],
        vec!["bottle", "--keg", "../bin"],
    ] {
        let run = ctx.pkg(&args).failure_with(2);
        run.says("is not a package name");
    }
    // `SOURCE/NAME` names a formula source (issue 27): `a` is none.
    ctx.pkg(&["deps", "a/b"])
        .failure_with(2)
        .says("no formula source named `a`");
    assert!(
        victim.join("keep").is_dir(),
        "the directory outside was touched"
    );
    assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0");
    assert!(ctx.prefix.join("opt/hello").exists());
    assert!(!ctx.prefix.join("var/pkg/pinned/victim").exists());
    assert!(!ctx.root().join("var").exists());
}
