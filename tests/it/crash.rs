//! Crash consistency: pkg is SIGKILLed at random points of install, upgrade, uninstall and
//! cleanup (slowed down by the proxy so kills land mid-download and mid-unpack), then the prefix
//! and the cache are checked and the command is run again, which must complete. Also: Ctrl-C and
//! SIGTERM (exit 130, no temporary files, the partial download kept and resumed by the rerun),
//! and several pkg processes at once on one prefix or on prefixes sharing one cache.
//!
//! `PKG_CRASH_ITERATIONS` sets the kills per command (default 30); `PKG_CRASH_SEED` replays a run
//! (every failure message names its seed).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::faults::{
    Rig, assert_rerun_resumes, files_under, host_platform, kept_prefix, noise, run_bin,
    throttled_hello, wait_for_a_third,
};
use crate::harness::proxy::{Fault, Times};
use crate::harness::{Fixture, Formula, ImageSpec, TestContext, sha256_digest};

/// xorshift64*: reproducible random delays.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PKG_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        Rng(seed | 1)
    }
    fn seed(&self) -> u64 {
        self.0
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, max)`.
    fn below(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % micros)
    }
}

fn iterations() -> usize {
    std::env::var("PKG_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// An image with `bin/NAME`, a large incompressible file and many small ones (so that
/// downloading, unpacking and removing each take a while).
fn big_image(name: &str, version: &str) -> ImageSpec {
    let (os, arch) = host_platform();
    let mut spec = ImageSpec::new(os, arch)
        .file(
            &format!("bin/{name}"),
            format!("#!/bin/sh\necho {name} {version}\n"),
            0o755,
        )
        .file(
            &format!("share/{name}/blob"),
            noise(256 * 1024, version.len() as u64 * 31 + name.len() as u64),
            0o644,
        );
    for i in 0..150 {
        spec = spec.file(
            &format!("share/{name}/doc/{}/page-{i}.txt", i % 10),
            format!("{name} {version} page {i}\n"),
            0o644,
        );
    }
    spec
}

/// `tool` 1.0.0 and 2.0.0, each depending on `dep` ^1, all through the proxy.
fn crash_rig() -> Rig {
    let rig = Rig::start();
    let repo = |n: &str| format!("{}/acme/{n}", rig.proxy.host());
    for (name, version) in [("dep", "1.0.0"), ("tool", "1.0.0"), ("tool", "2.0.0")] {
        rig.registry.push(
            &format!("acme/{name}"),
            version,
            &Fixture::Image(big_image(name, version)),
        );
    }
    rig.ctx.write_formula(
        "dep",
        &Formula::new("dep")
            .version("1.0.0", &repo("dep"), "1.0.0")
            .to_toml(),
    );
    rig.ctx.write_formula(
        "tool",
        &Formula::new("tool")
            .version_with("1.0.0", &repo("tool"), "1.0.0", None, &[("dep", "^1")])
            .version_with("2.0.0", &repo("tool"), "2.0.0", None, &[("dep", "^1")])
            .to_toml(),
    );
    rig
}

/// What happened to a run that was to be killed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Killed,
    Finished(i32),
}

/// Starts `pkg ARGS`, SIGKILLs it after `delay` unless it finished first.
fn kill_after(ctx: &TestContext, args: &[&str], delay: Duration) -> Outcome {
    let mut child = ctx
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run pkg");
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().unwrap() {
        return Outcome::Finished(status.code().unwrap_or(-1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    Outcome::Killed
}

/// How long `pkg ARGS` takes, uninterrupted (waited for directly, without the harness's polling,
/// so short commands are measured as short).
fn timed(ctx: &TestContext, args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = ctx
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "pkg {args:?} failed");
    took
}

fn is_link_temp(name: &str) -> bool {
    name.starts_with('.') && (name.contains(".pkg-new-") || name.contains(".pkg-old-"))
}

/// The prefix and cache invariants that hold at every instant. `settled`: a complete run has
/// happened since the last kill, so nothing temporary may be left either, but for partial
/// downloads (named by their digest, never longer than their blob), which stay for a later run.
#[track_caller]
fn check_invariants(ctx: &TestContext, settled: bool, context: &str) {
    let listing = || format!("{context}\n{}", ctx.prefix_listing());
    let cellar = ctx.prefix.join("Cellar");
    // Every keg is whole: it has its receipt, and every file the receipt lists.
    for name_dir in std::fs::read_dir(&cellar).into_iter().flatten() {
        let name_dir = name_dir.unwrap();
        let name = name_dir.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        for keg in std::fs::read_dir(name_dir.path()).unwrap() {
            let keg = keg.unwrap().path();
            let receipt = keg.join(".pkg/receipt.json");
            let text = std::fs::read_to_string(&receipt).unwrap_or_else(|e| {
                panic!(
                    "partial keg {} (no receipt: {e}):\n{}",
                    keg.display(),
                    listing()
                )
            });
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("receipt {} is not JSON ({e}): {text}", keg.display()));
            for file in json["files"].as_array().unwrap() {
                let path = keg.join(file.as_str().unwrap());
                assert!(
                    std::fs::symlink_metadata(&path).is_ok(),
                    "keg {} lacks {} listed in its receipt:\n{}",
                    keg.display(),
                    path.display(),
                    listing()
                );
            }
        }
    }
    // Links resolve into kegs with receipts; temporary link names only between a kill and the
    // next run.
    for dir in ["bin", "opt"] {
        for entry in std::fs::read_dir(ctx.prefix.join(dir))
            .into_iter()
            .flatten()
        {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_link_temp(&name) {
                assert!(
                    !settled,
                    "temporary link {} left:\n{}",
                    path.display(),
                    listing()
                );
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if !meta.file_type().is_symlink() {
                // Not pkg's (a user's file in bin/).
                continue;
            }
            let resolved = std::fs::canonicalize(&path).unwrap_or_else(|e| {
                panic!("dangling link {} ({e}):\n{}", path.display(), listing())
            });
            let keg_of = |p: &Path| -> Option<std::path::PathBuf> {
                let rel = p.strip_prefix(std::fs::canonicalize(&cellar).ok()?).ok()?;
                let mut c = rel.components();
                Some(cellar.join(c.next()?).join(c.next()?))
            };
            let keg = keg_of(&resolved).unwrap_or_else(|| {
                panic!(
                    "{} points outside the Cellar:\n{}",
                    path.display(),
                    listing()
                )
            });
            assert!(
                keg.join(".pkg/receipt.json").is_file(),
                "{} points into {}, which has no receipt:\n{}",
                path.display(),
                keg.display(),
                listing()
            );
        }
    }
    // The cache holds only verified blobs.
    for file in files_under(&ctx.cache.join("v1/blobs")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            sha256_digest(&std::fs::read(&file).unwrap()),
            format!("sha256:{name}"),
            "{context}: cache blob {} does not hash to its name",
            file.display()
        );
    }
    // Downloads in the cache: a run's own temporary files only between a kill and the next run;
    // partial downloads, kept for the next run to resume, only under their blob's digest and
    // never longer than the blob.
    let sizes = layer_sizes(&ctx.cache);
    for file in files_under(&ctx.cache.join("v1/tmp")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some(hex) = name
            .strip_prefix("sha256-")
            .and_then(|n| n.strip_suffix(".partial"))
        else {
            assert!(
                !settled && name.starts_with(".tmp"),
                "{context}: temporary file {} left in the cache",
                file.display()
            );
            continue;
        };
        let len = std::fs::metadata(&file).unwrap().len();
        let size = sizes.get(hex).unwrap_or_else(|| {
            panic!(
                "{context}: partial download {} of a blob no cached manifest names",
                file.display()
            )
        });
        assert!(
            len <= *size,
            "{context}: partial download {} holds {len} bytes of a {size}-byte blob",
            file.display()
        );
    }
    if settled {
        let staging: Vec<_> = std::fs::read_dir(cellar.join(".staging"))
            .into_iter()
            .flatten()
            .collect();
        assert!(staging.is_empty(), "staging leftovers:\n{}", listing());
        let stray: Vec<_> = files_under(&ctx.cache.join("v1/blobs"))
            .into_iter()
            .chain(files_under(&ctx.cache.join("v1/refs")))
            .chain(files_under(&ctx.prefix))
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(".tmp") || n.ends_with(".partial")
            })
            .collect();
        assert!(
            stray.is_empty(),
            "{context}: stray temporary files: {stray:?}"
        );
    }
}

/// The size of every layer the manifests in the cache name, by hex digest.
fn layer_sizes(cache: &Path) -> std::collections::HashMap<String, u64> {
    let mut sizes = std::collections::HashMap::new();
    for file in files_under(&cache.join("v1/blobs")) {
        let Ok(json) =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&file).unwrap_or_default())
        else {
            continue;
        };
        for layer in json["layers"].as_array().into_iter().flatten() {
            if let (Some(digest), Some(size)) = (layer["digest"].as_str(), layer["size"].as_u64())
                && let Some(hex) = digest.strip_prefix("sha256:")
            {
                sizes.insert(hex.to_owned(), size);
            }
        }
    }
    sizes
}

/// The range kill delays are drawn from: starts a bit past the measured run time, shrinks when a
/// run finishes before its kill and grows when a kill lands, so that under any machine load most
/// kills land mid-run while some still come at the very end.
struct Window(Duration);

impl Window {
    fn new(took: Duration) -> Window {
        Window(took.mul_f64(1.3))
    }
    fn draw(&self, rng: &mut Rng) -> Duration {
        rng.below(self.0)
    }
    fn learn(&mut self, outcome: &Outcome) {
        let factor = match outcome {
            Outcome::Killed => 1.1,
            Outcome::Finished(_) => 0.75,
        };
        self.0 = self
            .0
            .mul_f64(factor)
            .clamp(Duration::from_millis(2), Duration::from_secs(20));
    }
}

/// Tallies for the summary line.
#[derive(Default)]
struct Tally {
    killed: usize,
    finished: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Killed => self.killed += 1,
            Outcome::Finished(_) => self.finished += 1,
        }
    }
    #[track_caller]
    fn report(&self, command: &str, seed: u64) {
        eprintln!(
            "crash {command}: {} kills mid-run, {} runs finished before their kill (seed {seed})",
            self.killed, self.finished
        );
        assert!(
            self.killed * 2 >= self.killed + self.finished,
            "most kills should land mid-run ({} of {})",
            self.killed,
            self.killed + self.finished
        );
    }
}

/// Throttles blob bodies so downloads take a while.
fn slow_blobs(rig: &Rig) {
    rig.reg().on(
        "GET",
        "/blobs/",
        Times::Always,
        Fault::Throttle(32 * 1024, Duration::from_millis(3)),
    );
}

#[test]
fn install_killed_at_random_points_leaves_a_consistent_prefix_and_completes_on_rerun() {
    let rig = crash_rig();
    slow_blobs(&rig);
    let mut rng = Rng::new();
    let seed = rng.seed();
    let cold = timed(&rig.ctx.sharing_cache(), &["install", "tool"]);
    let mut tally = Tally::default();
    let mut window = Window::new(cold);
    for i in 0..iterations() {
        let ctx = rig.ctx.sharing_cache();
        // Even iterations start from an empty cache (kills mid-download), odd ones from a full
        // one (kills mid-unpack and mid-link).
        if i % 2 == 0 {
            let _ = std::fs::remove_dir_all(ctx.cache.join("v1"));
        }
        let delay = window.draw(&mut rng);
        let outcome = kill_after(&ctx, &["install", "tool"], delay);
        tally.add(&outcome);
        window.learn(&outcome);
        let context = format!("install, iteration {i}, killed after {delay:?} (seed {seed})");
        check_invariants(&ctx, false, &context);
        ctx.pkg(&["install", "tool"]).success();
        check_invariants(&ctx, true, &context);
        assert_eq!(run_bin(&ctx, "tool"), "tool 2.0.0", "{context}");
        assert_eq!(ctx.cellar_versions("dep"), ["1.0.0"], "{context}");
    }
    tally.report("install", seed);
}

#[test]
fn upgrade_killed_at_random_points_leaves_a_consistent_prefix_and_completes_on_rerun() {
    let rig = crash_rig();
    slow_blobs(&rig);
    let mut rng = Rng::new();
    let seed = rng.seed();
    let probe = rig.ctx.sharing_cache();
    probe.pkg(&["install", "tool@1.0.0"]).success();
    probe.forget_request("tool");
    let took = timed(&probe, &["upgrade"]);
    let mut tally = Tally::default();
    let mut window = Window::new(took);
    for i in 0..iterations() {
        let ctx = rig.ctx.sharing_cache();
        ctx.pkg(&["install", "tool@1.0.0"]).success();
        ctx.forget_request("tool");
        if i % 2 == 0 {
            // The new version's layers are not cached: kills land mid-download too.
            for file in files_under(&ctx.cache.join("v1/blobs")) {
                std::fs::remove_file(file).unwrap();
            }
        }
        let delay = window.draw(&mut rng);
        let outcome = kill_after(&ctx, &["upgrade"], delay);
        tally.add(&outcome);
        window.learn(&outcome);
        let context = format!("upgrade, iteration {i}, killed after {delay:?} (seed {seed})");
        check_invariants(&ctx, false, &context);
        // Whatever the kill left, `tool` runs: the old version or the new one.
        let out = run_bin(&ctx, "tool");
        assert!(
            out == "tool 1.0.0" || out == "tool 2.0.0",
            "{context}: {out}"
        );
        ctx.pkg(&["upgrade"]).success();
        check_invariants(&ctx, true, &context);
        assert_eq!(run_bin(&ctx, "tool"), "tool 2.0.0", "{context}");
    }
    tally.report("upgrade", seed);
}

#[test]
fn uninstall_killed_at_random_points_leaves_a_consistent_prefix_and_completes_on_rerun() {
    let rig = crash_rig();
    let mut rng = Rng::new();
    let seed = rng.seed();
    let probe = rig.ctx.sharing_cache();
    // The fastest of three: one slow probe on a loaded machine (a disk still busy with an
    // earlier test's deletions) made a window most uninstalls finished inside.
    let took = (0..3)
        .map(|_| {
            probe.pkg(&["install", "tool"]).success();
            timed(&probe, &["uninstall", "tool"])
        })
        .min()
        .unwrap_or_default();
    let mut tally = Tally::default();
    let mut window = Window::new(took);
    for i in 0..iterations() {
        let ctx = rig.ctx.sharing_cache();
        ctx.pkg(&["install", "tool"]).success();
        let delay = window.draw(&mut rng);
        let outcome = kill_after(&ctx, &["uninstall", "tool"], delay);
        tally.add(&outcome);
        window.learn(&outcome);
        let context = format!("uninstall, iteration {i}, killed after {delay:?} (seed {seed})");
        check_invariants(&ctx, false, &context);
        if ctx.cellar_versions("tool").is_empty() {
            // The kill came after the keg went: the next run says so (and succeeds: nothing
            // asked for is left) and repairs what is left.
            ctx.pkg(&["uninstall", "tool"])
                .success()
                .says("not installed");
        } else {
            ctx.pkg(&["uninstall", "tool"]).success();
        }
        // A later command that takes the lock finishes the clean-up.
        ctx.pkg(&["pin", "dep"]).success();
        check_invariants(&ctx, true, &context);
        assert!(ctx.cellar_versions("tool").is_empty(), "{context}");
        for p in ["bin/tool", "opt/tool"] {
            assert!(
                std::fs::symlink_metadata(ctx.prefix.join(p)).is_err(),
                "{context}: {p} remains"
            );
        }
    }
    tally.report("uninstall", seed);
}

#[test]
fn cleanup_killed_at_random_points_leaves_a_consistent_prefix_and_completes_on_rerun() {
    let rig = crash_rig();
    let mut rng = Rng::new();
    let seed = rng.seed();
    let setup = |ctx: &TestContext| {
        ctx.pkg(&["install", "tool@1.0.0"]).success();
        ctx.forget_request("tool");
        ctx.pkg(&["upgrade", "--keep-old"]).success();
        assert_eq!(ctx.cellar_versions("tool"), ["1.0.0", "2.0.0"]);
    };
    let probe = rig.ctx.sharing_cache();
    setup(&probe);
    let took = timed(&probe, &["cleanup", "--prune", "0"]);
    let mut tally = Tally::default();
    let mut window = Window::new(took);
    for i in 0..iterations() {
        let ctx = rig.ctx.sharing_cache();
        setup(&ctx);
        let args: &[&str] = if i % 2 == 0 {
            &["cleanup"]
        } else {
            &["cleanup", "--prune", "0"]
        };
        let delay = window.draw(&mut rng);
        let outcome = kill_after(&ctx, args, delay);
        tally.add(&outcome);
        window.learn(&outcome);
        let context = format!("{args:?}, iteration {i}, killed after {delay:?} (seed {seed})");
        check_invariants(&ctx, false, &context);
        assert_eq!(run_bin(&ctx, "tool"), "tool 2.0.0", "{context}");
        ctx.pkg(args).success();
        check_invariants(&ctx, true, &context);
        assert_eq!(ctx.cellar_versions("tool"), ["2.0.0"], "{context}");
        assert_eq!(run_bin(&ctx, "tool"), "tool 2.0.0", "{context}");
    }
    tally.report("cleanup", seed);
}

/// Starts `pkg install hello` with a slow download, signals it once a third of the blob is in
/// its partial download, then checks what the interruption left and that a rerun resumes.
fn interrupt_mid_download(signal: libc::c_int) {
    let rig = Rig::start();
    let (_, blob, partial) = throttled_hello(&rig, 2 * 1024 * 1024, 16 * 1024);
    let ctx = &rig.ctx;
    let mut child = ctx.command(&["install", "hello"]).spawn().unwrap();
    wait_for_a_third(&rig, &mut child, &partial, blob.len());
    // SAFETY: signalling a child we started and have not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let run = TestContext::wait(child, &["install", "hello"]);
    assert_eq!(run.code, 130, "{run:?}");
    run.says("interrupted");
    // No temporary file of the run is left, and nothing is half-installed (no staging
    // leftovers either); the partial download stays, named by its digest, a prefix of the blob.
    let tmp = files_under(&ctx.cache.join("v1/tmp"));
    assert!(
        tmp.iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with(".tmp")),
        "temporary files left: {tmp:?}"
    );
    check_invariants(ctx, true, "after the interruption");
    assert!(ctx.cellar_versions("hello").is_empty());
    let kept = kept_prefix(&partial, &blob);

    // The rerun asks only for the rest.
    assert_rerun_resumes(&rig, ctx, kept.len(), &partial);
    check_invariants(ctx, true, "after the rerun");
    assert_eq!(run_bin(ctx, "hello"), "hello 1.0.0");
}

#[test]
fn ctrl_c_mid_download_exits_130_keeps_the_partial_download_and_the_rerun_resumes_it() {
    interrupt_mid_download(libc::SIGINT);
}

#[test]
fn sigterm_mid_download_exits_130_keeps_the_partial_download_and_the_rerun_resumes_it() {
    interrupt_mid_download(libc::SIGTERM);
}

/// Ctrl-C before the blob's first byte arrived: the partial this run created is empty, resumes
/// nothing, and goes with the interruption (no 0-byte `.partial` is left behind).
#[test]
fn ctrl_c_before_the_first_byte_leaves_no_empty_partial() {
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], 64 * 1024);
    rig.reg().on(
        "GET",
        "/blobs/",
        Times::Always,
        Fault::Stall(std::time::Duration::from_secs(20)),
    );
    let partial = crate::faults::partial_of(&rig.ctx.cache, built[0].layer_digest());
    let child = rig.ctx.command(&["install", "hello"]).spawn().unwrap();
    let start = std::time::Instant::now();
    while !partial.exists() && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(partial.exists(), "the download never started");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 0);
    // SAFETY: signalling a child we started and have not yet waited for.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let run = TestContext::wait(child, &["install", "hello"]);
    assert_eq!(run.code, 130, "{run:?}");
    assert!(!partial.exists(), "an empty partial was left");
    check_invariants(&rig.ctx, true, "after the interruption");
}

/// Starts every command at once and waits for all.
fn all_at_once(runs: &[(&TestContext, &[&str])]) -> Vec<crate::harness::Run> {
    let children: Vec<(Child, Vec<&str>)> = runs
        .iter()
        .map(|(ctx, args)| (ctx.command(args).spawn().unwrap(), args.to_vec()))
        .collect();
    children
        .into_iter()
        .map(|(child, args)| TestContext::wait(child, &args))
        .collect()
}

/// Small packages `a`, `b`, `c`, each depending on `common`.
fn abc_rig() -> Rig {
    let rig = Rig::start();
    let repo = |n: &str| format!("{}/acme/{n}", rig.proxy.host());
    for name in ["a", "b", "c", "common"] {
        rig.registry.push(
            &format!("acme/{name}"),
            "1.0.0",
            &Fixture::Image(crate::faults::tool_image(name, "1.0.0", 64 * 1024)),
        );
        let deps: &[(&str, &str)] = if name == "common" {
            &[]
        } else {
            &[("common", "^1")]
        };
        rig.ctx.write_formula(
            name,
            &Formula::new(name)
                .version_with("1.0.0", &repo(name), "1.0.0", None, deps)
                .to_toml(),
        );
    }
    rig
}

#[test]
fn overlapping_installs_on_one_prefix_all_finish_with_a_consistent_prefix() {
    let rig = abc_rig();
    slow_blobs(&rig);
    for round in 0..3 {
        let ctx = rig.ctx.sharing_cache();
        if round == 0 {
            let _ = std::fs::remove_dir_all(ctx.cache.join("v1"));
        }
        let runs = all_at_once(&[
            (&ctx, &["install", "a", "b"]),
            (&ctx, &["install", "b", "c"]),
            (&ctx, &["install", "c", "a"]),
            (&ctx, &["install", "common"]),
        ]);
        for run in runs {
            run.success();
        }
        check_invariants(&ctx, true, &format!("round {round}"));
        for name in ["a", "b", "c", "common"] {
            assert_eq!(ctx.cellar_versions(name), ["1.0.0"], "{name}");
            assert_eq!(run_bin(&ctx, name), format!("{name} 1.0.0"));
        }
    }
}

#[test]
fn install_and_cleanup_at_once_on_one_prefix_both_finish() {
    let rig = crash_rig();
    let ctx = &rig.ctx;
    ctx.pkg(&["install", "tool@1.0.0"]).success();
    for round in 0..3 {
        ctx.pkg(&["upgrade", "--keep-old"]).success();
        let runs = all_at_once(&[
            (ctx, &["cleanup", "--prune", "0"]),
            (ctx, &["install", "tool@1.0.0"]),
            (ctx, &["cleanup"]),
        ]);
        for run in runs {
            run.success();
        }
        check_invariants(ctx, true, &format!("round {round}"));
        let out = run_bin(ctx, "tool");
        assert!(out == "tool 1.0.0" || out == "tool 2.0.0", "{out}");
        ctx.pkg(&["uninstall", "tool", "dep"]).success();
        ctx.pkg(&["install", "tool@1.0.0"]).success();
    }
}

#[test]
fn prefixes_sharing_one_cache_install_and_clean_up_at_once() {
    let rig = abc_rig();
    slow_blobs(&rig);
    for round in 0..3 {
        let prefixes: Vec<TestContext> = (0..4).map(|_| rig.ctx.sharing_cache()).collect();
        if round == 0 {
            let _ = std::fs::remove_dir_all(rig.ctx.cache.join("v1"));
        }
        // A fifth prefix empties the shared cache while the others install from it.
        let cleaner = rig.ctx.sharing_cache();
        let mut runs: Vec<(&TestContext, &[&str])> = prefixes
            .iter()
            .map(|p| (p, &["install", "a", "b", "c"][..]))
            .collect();
        runs.push((&cleaner, &["cleanup", "--prune", "0"]));
        for run in all_at_once(&runs) {
            run.success();
        }
        for (i, p) in prefixes.iter().enumerate() {
            check_invariants(p, true, &format!("round {round}, prefix {i}"));
            for name in ["a", "b", "c"] {
                assert_eq!(run_bin(p, name), format!("{name} 1.0.0"));
            }
        }
    }
}

#[test]
fn what_a_dead_run_left_in_staging_and_in_bin_is_repaired_when_the_next_command_takes_the_lock() {
    let rig = crash_rig();
    let ctx = &rig.ctx;
    ctx.pkg(&["install", "tool"]).success();
    // A half-unpacked keg, a keg moved aside for removal, a new link under its temporary name
    // and a user's file moved aside as a backup, as a SIGKILL mid-change leaves them.
    let staging = ctx.prefix.join("Cellar/.staging");
    std::fs::create_dir_all(staging.join("keg-dead1/bin")).unwrap();
    std::fs::write(staging.join("keg-dead1/bin/tool"), "half").unwrap();
    std::fs::create_dir_all(staging.join("removed-dead2/keg")).unwrap();
    std::os::unix::fs::symlink(
        "../Cellar/tool/2.0.0/bin/tool",
        ctx.prefix.join("bin/.extra.pkg-new-99999"),
    )
    .unwrap();
    std::fs::write(
        ctx.prefix.join("bin/.mine.pkg-old-99999"),
        "the user's file",
    )
    .unwrap();

    ctx.pkg(&["pin", "dep"]).success();

    check_invariants(ctx, true, "after the next command");
    assert!(std::fs::symlink_metadata(ctx.prefix.join("bin/.extra.pkg-new-99999")).is_err());
    assert_eq!(
        std::fs::read_to_string(ctx.prefix.join("bin/mine")).unwrap(),
        "the user's file",
        "the backup goes back where it was"
    );
    assert_eq!(run_bin(ctx, "tool"), "tool 2.0.0");
}
