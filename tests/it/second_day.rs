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
