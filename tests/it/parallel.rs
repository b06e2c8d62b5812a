//! `pkg install A B C…` pours several packages at once (`--jobs`): one that fails leaves nothing
//! of itself behind and does not stop the others, its dependents are not installed, and each
//! repository still gets one token.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

fn image(name: &str, readme: &str) -> Fixture {
    Fixture::Image(
        ImageSpec::new("linux", "amd64")
            .file(
                &format!("bin/{name}"),
                format!("#!/bin/sh\necho {name}\n"),
                0o755,
            )
            .file(&format!("share/{name}/README"), readme, 0o644),
    )
}

/// Pushes `acme/NAME:1.0.0` and writes its formula; returns the layer digest.
fn publish(registry: &Registry, ctx: &TestContext, name: &str, deps: &[(&str, &str)]) -> String {
    publish_with(registry, ctx, name, deps, name)
}

fn publish_with(
    registry: &Registry,
    ctx: &TestContext,
    name: &str,
    deps: &[(&str, &str)],
    readme: &str,
) -> String {
    let built = registry.push(&format!("acme/{name}"), "1.0.0", &image(name, readme));
    let repo = format!("{}/acme/{name}", registry.host());
    let formula = Formula::new(name).version_with("1.0.0", &repo, "1.0.0", None, deps);
    ctx.write_formula(name, &formula.to_toml());
    built.layer_digest().to_owned()
}

fn run_bin(ctx: &TestContext, name: &str) -> String {
    let out = Command::new(ctx.prefix.join("bin").join(name))
        .output()
        .unwrap_or_else(|e| panic!("cannot run bin/{name}: {e}\n{}", ctx.prefix_listing()));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn cached(ctx: &TestContext, digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap();
    ctx.cache.join("v1/blobs/sha256").join(hex).exists()
}

/// Nothing of `name` anywhere in the prefix: no keg directory, no links.
fn assert_absent(ctx: &TestContext, name: &str) {
    let listing = ctx.prefix_listing();
    assert!(ctx.cellar_versions(name).is_empty(), "{name}:\n{listing}");
    for dir in ["bin", "opt"] {
        let link = ctx.prefix.join(dir).join(name);
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "{} exists:\n{listing}",
            link.display()
        );
    }
}

#[test]
fn one_failing_package_leaves_the_others_installed_and_nothing_of_itself() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let good = ["alpha", "bravo", "charlie", "delta"];
    let mut layers = BTreeMap::new();
    for name in good {
        layers.insert(name, publish(&registry, &ctx, name, &[]));
    }
    let bad_layer = publish(&registry, &ctx, "broken", &[]);
    registry.tamper_blob(&bad_layer);
    let needs_bad = publish(&registry, &ctx, "needsbroken", &[("broken", "^1")]);

    let run = ctx
        .pkg(&[
            "--jobs",
            "3",
            "install",
            "alpha",
            "broken",
            "bravo",
            "needsbroken",
            "charlie",
            "delta",
        ])
        .failure();
    run.says("installing broken 1.0.0 failed")
        .says(&bad_layer)
        .says("installing needsbroken 1.0.0 failed")
        .says("its dependency broken 1.0.0 could not be installed")
        .says("2 packages failed to install: broken 1.0.0, needsbroken 1.0.0");

    for name in good {
        assert_eq!(run_bin(&ctx, name), name, "{}", run.output());
        assert_eq!(ctx.receipt(name, "1.0.0")["name"], name);
        assert!(cached(&ctx, &layers[name]), "{name}'s layer is cached");
    }
    assert_absent(&ctx, "broken");
    assert_absent(&ctx, "needsbroken");
    // Nothing half-done: no staging dirs, no partial downloads, no unverified blob in the cache,
    // and the dependent was never downloaded.
    assert_eq!(
        entries(&ctx.prefix.join("Cellar/.staging")),
        Vec::<String>::new()
    );
    assert_eq!(entries(&ctx.cache.join("v1/tmp")), Vec::<String>::new());
    assert!(!cached(&ctx, &bad_layer));
    assert!(!cached(&ctx, &needs_bad));

    // A good image is pushed: the failed ones install now, the others are left alone.
    let fixed = publish_with(&registry, &ctx, "broken", &[], "fixed");
    assert_ne!(fixed, bad_layer);
    ctx.pkg(&["install", "alpha", "needsbroken"])
        .success()
        .says("alpha 1.0.0: already installed");
    assert_eq!(run_bin(&ctx, "needsbroken"), "needsbroken");
    assert_eq!(run_bin(&ctx, "broken"), "broken");
    assert_eq!(
        ctx.receipt("broken", "1.0.0")["installed_on_request"],
        false
    );
}

#[test]
fn a_single_failure_keeps_the_usual_message() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish(&registry, &ctx, "alpha", &[]);
    let bad_layer = publish(&registry, &ctx, "broken", &[]);
    registry.tamper_blob(&bad_layer);

    let run = ctx
        .pkg(&["--jobs", "4", "install", "broken", "alpha"])
        .failure();
    run.says("installing broken 1.0.0 failed and left nothing behind")
        .says("SHA-256 mismatch");
    assert!(
        !run.output().contains("packages failed"),
        "{}",
        run.output()
    );
    assert_eq!(run_bin(&ctx, "alpha"), "alpha");
    assert_absent(&ctx, "broken");
}

#[test]
fn dependencies_are_poured_first_and_every_repository_gets_one_token() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    publish(&registry, &ctx, "base", &[]);
    publish(&registry, &ctx, "mid", &[("base", "^1")]);
    publish(&registry, &ctx, "top", &[("mid", "^1"), ("base", "^1")]);
    let solo: Vec<String> = (0..5).map(|i| format!("solo{i}")).collect();
    for name in &solo {
        publish(&registry, &ctx, name, &[]);
    }
    let before = registry.issuer().request_count();

    let mut args = vec!["--jobs", "8", "install", "top"];
    args.extend(solo.iter().map(String::as_str));
    let run = ctx.pkg(&args).success();

    for name in solo
        .iter()
        .map(String::as_str)
        .chain(["top", "mid", "base"])
    {
        assert_eq!(run_bin(&ctx, name), name, "{}", run.output());
    }
    assert_eq!(ctx.receipt("top", "1.0.0")["installed_on_request"], true);
    assert_eq!(ctx.receipt("mid", "1.0.0")["installed_on_request"], false);
    assert_eq!(
        ctx.receipt("base", "1.0.0")["dependencies"],
        serde_json::json!({})
    );
    assert_eq!(
        ctx.receipt("top", "1.0.0")["dependencies"],
        serde_json::json!({"base": "1.0.0", "mid": "1.0.0"})
    );
    // Dependencies start before their dependents (the `Fetching` lines are in start order).
    let out = run.output();
    let fetching = |name: &str| {
        out.find(&format!("Fetching {name} 1.0.0"))
            .unwrap_or_else(|| panic!("no Fetching line for {name}:\n{out}"))
    };
    assert!(fetching("base") < fetching("mid") && fetching("mid") < fetching("top"));

    let mut scopes: Vec<String> = registry
        .issuer()
        .requests()
        .split_off(before)
        .into_iter()
        .flat_map(|r| r.scopes)
        .collect();
    scopes.sort();
    let mut expected: Vec<String> = solo
        .iter()
        .map(String::as_str)
        .chain(["base", "mid", "top"])
        .map(|n| format!("repository:acme/{n}:pull"))
        .collect();
    expected.sort();
    assert_eq!(scopes, expected, "one token per repository");
}

/// The layers of one image download at once: while the first streams into the keg, the later
/// ones are fetched into the cache, then unpacked in order (a later layer's file wins).
#[test]
fn the_layers_of_one_image_download_at_once_and_unpack_in_order() {
    use crate::faults::{Rig, host_platform, noise};
    use crate::harness::layout::{FileEntry, gzip, tar_bytes};
    use crate::harness::proxy::{Fault, Times};
    use std::time::Duration;

    let rig = Rig::start();
    let (os, arch) = host_platform();
    let layer = |n: u64, text: &str| {
        gzip(&tar_bytes(&[
            FileEntry {
                path: "bin/layered".into(),
                contents: format!("#!/bin/sh\necho {text}\n").into_bytes(),
                mode: 0o755,
            },
            FileEntry {
                path: format!("share/layered/data{n}"),
                contents: noise(96 * 1024, n),
                mode: 0o644,
            },
        ]))
    };
    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    let built = rig.registry.push(
        "acme/layered",
        "1.0.0",
        &Fixture::Image(
            ImageSpec::new(os, arch)
                .raw_layer(layer(1, "first"), GZIP)
                .raw_layer(layer(2, "second"), GZIP)
                .raw_layer(layer(3, "third"), GZIP),
        ),
    );
    let layers = built.image().layer_digests.clone();
    assert_eq!(layers.len(), 3);
    rig.ctx.write_formula(
        "layered",
        &Formula::new("layered")
            .version(
                "1.0.0",
                &format!("{}/acme/layered", rig.proxy.host()),
                "1.0.0",
            )
            .to_toml(),
    );
    // The proxy holds each layer's request until all three are in flight: fetched one after
    // the other, the first would wait for the others in vain (and the barrier say so, after
    // 1.5 s: under the rig's 2 s read timeout, so pkg never retries a held request).
    let gather = crate::harness::proxy::Gather::new(3, Duration::from_millis(1500));
    for d in &layers {
        rig.reg()
            .on("GET", d, Times::Always, Fault::Gather(gather.clone()));
    }
    rig.ctx.pkg(&["install", "layered"]).success();
    for d in &layers {
        let seen = rig.reg().matching("GET", d);
        assert_eq!(seen.len(), 1, "{d} fetched once: {}", rig.reg().describe());
    }
    assert!(
        !gather.timed_out(),
        "the layers were fetched one after another: {}",
        rig.reg().describe()
    );
    let keg = rig.ctx.keg("layered", "1.0.0");
    for n in 1..=3 {
        assert!(keg.join(format!("share/layered/data{n}")).is_file());
    }
    assert_eq!(crate::faults::run_bin(&rig.ctx, "layered"), "third");
}

/// `pkg upgrade` pours like `install`: the new versions of independent packages download at
/// once, and each is switched only once it is poured.
#[test]
fn upgrade_pours_several_packages_at_once() {
    use crate::faults::Rig;
    use crate::harness::proxy::{Fault, Times};
    use std::time::Duration;

    let rig = Rig::start();
    let names = ["one", "two", "three"];
    for name in names {
        rig.publish(name, &["1.0.0"], 96 * 1024);
    }
    rig.ctx.pkg(&["install", "one", "two", "three"]).success();
    let layers: Vec<String> = names
        .iter()
        .map(|name| {
            let built = rig.publish(name, &["1.0.0", "2.0.0"], 96 * 1024);
            built[1].image().layer_digests[0].clone()
        })
        .collect();
    rig.reg().clear();
    // The proxy holds each new layer's request until all three are in flight (a barrier, not
    // a stopwatch: a loaded machine cannot make it flaky).
    let gather = crate::harness::proxy::Gather::new(3, Duration::from_millis(1500));
    for d in &layers {
        rig.reg()
            .on("GET", d, Times::Always, Fault::Gather(gather.clone()));
    }
    rig.ctx.pkg(&["--jobs", "3", "upgrade"]).success();
    for d in &layers {
        let seen = rig.reg().matching("GET", d);
        assert_eq!(seen.len(), 1, "{d} fetched once: {}", rig.reg().describe());
    }
    assert!(
        !gather.timed_out(),
        "the upgrades were poured one after another: {}",
        rig.reg().describe()
    );
    for name in names {
        assert_eq!(rig.ctx.cellar_versions(name), ["2.0.0"]);
    }
}
