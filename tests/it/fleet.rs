//! Mirrors under faults, in the configuration the README gives fleets: a mirror (here the fault
//! proxy in front of the real registry) with the registry itself as fallback — and the registry
//! out of reach, as behind a company firewall or while GHCR is down. Every fault the proxy can
//! make must be survived at the mirror; a recovered mirror is used again; and when nothing
//! answers, the error names each endpoint once with its cause and tries.

use std::time::Duration;

use crate::faults::{DATA, assert_cache_verified_and_settled, run_bin, tool_image};
use crate::harness::proxy::{Fault, Proxied, Times};
use crate::harness::{Fixture, Formula, Registry, TestContext};

/// A port on 127.0.0.1 nothing listens on: connections to it are refused.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Publishes `acme/NAME:1.0.0` for each name.
fn publish(registry: &Registry, names: &[&str]) {
    for name in names {
        registry.push(
            &format!("acme/{name}"),
            "1.0.0",
            &Fixture::Image(tool_image(name, "1.0.0", DATA)),
        );
    }
}

/// A context whose formulae name the registry `origin` (out of reach), mirrored to `mirror`
/// (`http://HOST:PORT`), with the retry settings the fault tests use.
fn mirrored(origin: &str, mirror: &str, names: &[&str]) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.env("PKG_RETRIES", "4")
        .env("PKG_READ_TIMEOUT", "2")
        .env("PKG_CONNECT_TIMEOUT", "2")
        .mirrors(&format!("{origin}={mirror}"));
    for name in names {
        ctx.write_formula(
            name,
            &Formula::new(name)
                .version("1.0.0", &format!("{origin}/acme/{name}"), "1.0.0")
                .to_toml(),
        );
    }
    ctx
}

/// Each kind of fault the proxy makes, once, on the token, the manifest or the blob answer of
/// the mirror, with the registry itself refusing connections: every install completes, from
/// the mirror. Before one retry policy for the chain, a 429, a 5xx, a reset or a stall at the
/// mirror sent the request to the unreachable registry, or ended the install.
#[test]
fn every_single_fault_at_a_mirror_is_survived_with_the_registry_out_of_reach() {
    let registry = Registry::start();
    publish(&registry, &["hello"]);
    let origin = format!("127.0.0.1:{}", dead_port());
    let stall = Duration::from_secs(4);
    let kinds: Vec<(&str, Vec<Fault>)> = vec![
        ("500", vec![Fault::status(500)]),
        ("502", vec![Fault::status(502)]),
        ("503", vec![Fault::status(503)]),
        ("504", vec![Fault::status(504)]),
        ("408", vec![Fault::status(408)]),
        ("429", vec![Fault::status(429)]),
        (
            "429 with Retry-After",
            vec![Fault::status_with(429, &[("Retry-After", "1")])],
        ),
        // The token pkg holds expires while it waits out a Retry-After longer than its life.
        (
            "429 with Retry-After, then an expired token",
            vec![
                Fault::status_with(429, &[("Retry-After", "2")]),
                Fault::DropAuthorization,
            ],
        ),
        ("reset before the body", vec![Fault::ResetAfter(0)]),
        ("reset mid-body", vec![Fault::ResetAfter(100)]),
        ("cut short", vec![Fault::TruncateAfter(100)]),
        ("stall before the headers", vec![Fault::Stall(stall)]),
        ("stall mid-body", vec![Fault::StallAfter(10, stall)]),
        ("length +3", vec![Fault::WrongContentLength(3)]),
        ("length -3", vec![Fault::WrongContentLength(-3)]),
        ("flipped byte", vec![Fault::CorruptByte]),
        ("token dropped", vec![Fault::DropAuthorization]),
        ("redirect to a CDN", vec![Fault::RedirectToCdn]),
    ];
    let targets = [
        ("token", "GET", "/token"),
        ("manifest", "GET", "/manifests/"),
        ("blob", "GET", "/blobs/"),
    ];
    let mut cases = Vec::new();
    for (kind, faults) in &kinds {
        for (target, method, path) in targets {
            // A token answer has no Authorization to drop, nor anything to redirect.
            if target == "token" && (kind.contains("token") || kind.contains("CDN")) {
                continue;
            }
            cases.push((
                format!("{kind} at the {target}"),
                faults.clone(),
                method,
                path,
                target,
            ));
        }
    }
    let failures: Vec<String> = std::thread::scope(|s| {
        let chunks: Vec<_> = cases
            .chunks(cases.len().div_ceil(4))
            .map(|chunk| {
                let (registry, origin) = (&registry, &origin);
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for (label, faults, method, path, target) in chunk {
                        let proxy = Proxied::start(registry);
                        let at = if *target == "token" {
                            &proxy.token
                        } else {
                            &proxy.registry
                        };
                        if *target == "manifest" {
                            // The first, anonymous, request goes through to get its 401.
                            at.on(method, path, Times::Once, Fault::Delay(Duration::ZERO));
                        }
                        for fault in faults {
                            at.on(method, path, Times::Once, fault.clone());
                        }
                        let ctx = mirrored(origin, &proxy.registry.url(), &["hello"]);
                        let run = ctx.pkg(&["install", "hello"]);
                        if run.code != 0 || ctx.cellar_versions("hello") != ["1.0.0"] {
                            failed.push(format!(
                                "{label}: exit {}\n{}\n{}",
                                run.code,
                                run.stderr,
                                at.describe()
                            ));
                            continue;
                        }
                        assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0", "{label}");
                        assert_cache_verified_and_settled(&ctx.cache);
                    }
                    failed
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} single faults at the mirror ended the install:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n---\n")
    );
}

/// 100 cold installs (20 fresh prefixes and caches, 5 packages each, 4 at a time), each prefix
/// through its own mirror that faults 30 % of its registry and token answers (seeded per request,
/// so a run meets the same faults whatever the timing), the registry itself refusing
/// connections: at least 98 complete, and each that does is exactly what was published.
#[test]
fn a_hundred_installs_through_a_mirror_at_thirty_percent_faults_complete() {
    let seed = crate::faults::fault_seed(20261206);
    let registry = Registry::start();
    let names = ["ma", "mb", "mc", "md", "me"];
    publish(&registry, &names);
    let origin = format!("127.0.0.1:{}", dead_port());
    let faults = std::sync::Arc::new(vec![
        Fault::ResetAfter(100),
        Fault::TruncateAfter(100),
        Fault::WrongContentLength(3),
        Fault::CorruptByte,
        Fault::status(503),
        Fault::status(429),
        Fault::status_with(429, &[("Retry-After", "1")]),
        Fault::StallAfter(10, Duration::from_secs(3)),
    ]);
    let rounds: Vec<(Proxied, TestContext)> = (0..20u64)
        .map(|i| {
            let proxy = Proxied::start(&registry);
            let sometimes = || Fault::Sometimes {
                percent: 30,
                seed: seed ^ i,
                faults: faults.clone(),
                count: Default::default(),
            };
            proxy.registry.on("", "/v2/", Times::Always, sometimes());
            proxy.token.on("", "/token", Times::Always, sometimes());
            let ctx = mirrored(&origin, &proxy.registry.url(), &names);
            (proxy, ctx)
        })
        .collect();
    let mut args = vec!["install"];
    args.extend(names);
    let contexts: Vec<&TestContext> = rounds.iter().map(|(_, ctx)| ctx).collect();
    let runs = crate::faults::four_at_a_time(&contexts, &args);
    let mut complete = 0;
    let mut failures = Vec::new();
    for ((_, ctx), run) in rounds.iter().zip(&runs) {
        for name in names {
            if ctx.cellar_versions(name) == ["1.0.0"] {
                assert_eq!(run_bin(ctx, name), format!("{name} 1.0.0"), "corrupt keg");
                complete += 1;
            }
        }
        if run.code == 0 {
            assert_cache_verified_and_settled(&ctx.cache);
        } else {
            // A failed run may keep a partial download for the next to resume.
            failures.push(run.stderr.clone());
        }
    }
    eprintln!("30 % faults at the mirror (seed {seed}): {complete}/100 installs complete");
    assert!(
        complete >= 98,
        "{complete}/100 complete (seed {seed}); failures:\n{}",
        failures.join("\n---\n")
    );
}

/// A mirror that fails for a while rests (said once), the registry serves meanwhile, and once
/// its rest is over the mirror is asked first again — in the same run, as its request log shows.
#[test]
fn a_mirror_that_recovers_is_used_again_within_the_same_run() {
    let registry = Registry::start();
    let names = ["ra", "rb", "rc", "rd", "re", "rf"];
    publish(&registry, &names);
    let mirror = Proxied::start(&registry);
    // The registry itself, behind a proxy that only slows its blobs down (so the run outlasts
    // the mirror's rest) and counts what it serves.
    let origin = Proxied::start(&registry);
    origin.registry.on(
        "GET",
        "/blobs/",
        Times::Always,
        Fault::Throttle(64 * 1024, Duration::from_millis(150)),
    );
    // The mirror's first request fails all its tries, then the mirror is well.
    mirror
        .registry
        .on("", "/v2/", Times::N(4), Fault::status(503));
    let mut ctx = mirrored(&origin.host(), &mirror.registry.url(), &names);
    ctx.env("PKG_MIRROR_COOLDOWN", "1").env("PKG_JOBS", "1");
    let mut args = vec!["install"];
    args.extend(names);
    let run = ctx.pkg(&args);
    assert_eq!(run.code, 0, "{}", run.output());
    let log = mirror.registry.seen();
    let failed_at = log
        .iter()
        .filter(|s| s.status == 503)
        .map(|s| s.at)
        .max()
        .expect("the mirror failed first");
    let served_after = log
        .iter()
        .filter(|s| s.at > failed_at && s.status == 200)
        .count();
    assert!(
        served_after > 0,
        "the mirror was not asked again after it recovered:\n{}",
        mirror.registry.describe()
    );
    assert!(
        !origin.registry.matching("GET", "/v2/acme/").is_empty(),
        "the registry did not stand in while the mirror rested"
    );
    // Said once, with its cause and tries, and where the requests went instead.
    assert_eq!(
        run.stderr.matches("answered 503 (4 tries)").count(),
        1,
        "{}",
        run.stderr
    );
    run.says(&format!("using {} instead", origin.registry.url()));
    for name in names {
        assert_eq!(run_bin(&ctx, name), format!("{name} 1.0.0"));
    }
}

/// Nothing answers (the mirror refuses connections, the registry's name does not resolve): one
/// error, naming each endpoint once with its cause and tries and the setting that made the
/// mirror; nothing installed.
#[test]
fn when_no_endpoint_answers_the_error_names_each_with_its_cause_and_tries() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let origin = "registry.invalid";
    let mut ctx = mirrored(origin, &dead, &["hello"]);
    ctx.env("PKG_RETRIES", "2");
    let run = ctx.pkg(&["install", "hello"]).failure();
    assert_eq!(run.code, 1);
    let err = &run.stderr;
    assert_eq!(err.matches("connection refused").count(), 1, "{err}");
    assert_eq!(
        err.matches(&format!("(the mirror of {origin} in PKG_REGISTRY_MIRRORS)"))
            .count(),
        1,
        "{err}"
    );
    run.says(&format!("no endpoint for {origin} answered"))
        .says(&format!(
            "{dead} (the mirror of {origin} in PKG_REGISTRY_MIRRORS): connection refused, 2 tries"
        ))
        .says(&format!("https://{origin}: no such host (DNS"))
        .says("2 tries");
    assert!(ctx.cellar_versions("hello").is_empty());

    // The variable named is the one the user set (it was PKG_REGISTRY_MIRRORS).
    let mut ctx = mirrored(origin, &dead, &["hello"]);
    ctx.env("PKG_REGISTRY_MIRROR_ONLY", "1");
    let run = ctx.pkg(&["install", "hello"]).failure_with(2);
    run.says("invalid PKG_REGISTRY_MIRROR_ONLY entry `1`");
    assert!(
        !run.stderr.contains("PKG_REGISTRY_MIRRORS entry"),
        "{}",
        run.stderr
    );
}

/// A mirror that keeps answering 429 with a long `Retry-After`, the registry out of reach: the
/// run stops waiting once it has waited `PKG_MAX_WAIT` in all, and says so.
#[test]
fn waiting_out_429s_stops_at_the_runs_waiting_budget_and_says_so() {
    let registry = Registry::start();
    publish(&registry, &["hello"]);
    let origin = format!("127.0.0.1:{}", dead_port());
    let proxy = Proxied::start(&registry);
    proxy.registry.on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::status_with(429, &[("Retry-After", "3")]),
    );
    let mut ctx = mirrored(&origin, &proxy.registry.url(), &["hello"]);
    ctx.env("PKG_MAX_WAIT", "4");
    let started = std::time::Instant::now();
    let run = ctx.pkg(&["install", "hello"]).failure();
    let took = started.elapsed();
    run.says(&format!("no endpoint for {origin} answered"))
        .says("answered 429")
        .says("PKG_MAX_WAIT");
    // One 3-second wait fits in the budget of 4, a second does not: two tries, not four.
    assert_eq!(
        proxy.registry.count("GET", "/manifests/"),
        2,
        "{}",
        proxy.registry.describe()
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(ctx.cellar_versions("hello").is_empty());
}
