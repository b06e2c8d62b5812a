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

    // Two mirrors, mirror-only: the dead one is tried once, the next one serves the install.
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
        said.matches("did not answer").count(),
        1,
        "the dead mirror is tried once, then skipped for the run:\n{said}"
    );
    assert!(
        said.contains(&format!("{dead} for {host} did not answer")),
        "{said}"
    );
    assert!(!rig.reg().matching("GET", "/manifests/1.0.0").is_empty());
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);

    // A dead mirror alone: the registry itself answers (the mirror is not mirror-only).
    let mut ctx = rig.ctx.sharing_cache();
    ctx.mirrors(&format!("{host}={dead}"));
    ctx.pkg(&["install", "hello"])
        .success()
        .says(&format!("trying http://{host}"));

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
