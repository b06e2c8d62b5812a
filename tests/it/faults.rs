//! Network faults between pkg and a real registry, injected by the proxy in
//! `harness/proxy.rs`: every test proves pkg completes (or fails cleanly, with a clear message
//! and nothing installed) and asserts, from the requests the proxy counted, that the behaviour
//! that saves it (retry, backoff, `Retry-After`, resume, timeout, redirect handling, token
//! renewal) really happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::proxy::{Fault, Proxied, Proxy, Seen, Times};
use crate::harness::{Built, Fixture, Formula, ImageSpec, Registry, TestContext, sha256_digest};

/// The platform pkg picks on this machine, in OCI terms.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (std::env::consts::OS, arch)
}

/// `len` bytes that do not compress (so a gzip layer is about as large as its contents).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `bin/NAME` printing `NAME VERSION`, plus `share/NAME/data` of `data_len` incompressible bytes
/// (so a blob download takes a while and can be cut in the middle).
pub fn tool_image(name: &str, version: &str, data_len: usize) -> ImageSpec {
    let (os, arch) = host_platform();
    ImageSpec::new(os, arch)
        .file(
            &format!("bin/{name}"),
            format!("#!/bin/sh\necho {name} {version}\n"),
            0o755,
        )
        .file(
            &format!("share/{name}/data"),
            noise(data_len, version.len() as u64 + name.len() as u64),
            0o644,
        )
}

/// A registry behind fault-injecting proxies, and a context whose formulae go through them.
pub struct Rig {
    pub registry: Registry,
    pub proxy: Proxied,
    pub ctx: TestContext,
}

impl Rig {
    /// With small retry counts and timeouts, so faults cost little time.
    pub fn start() -> Rig {
        let registry = Registry::start();
        let proxy = Proxied::start(&registry);
        let mut ctx = TestContext::new();
        ctx.env("PKG_RETRIES", "4")
            .env("PKG_READ_TIMEOUT", "2")
            .env("PKG_CONNECT_TIMEOUT", "2");
        Rig {
            registry,
            proxy,
            ctx,
        }
    }

    /// Pushes `acme/NAME:VERSION` for each version and writes a formula reaching them through
    /// the proxy.
    pub fn publish(&self, name: &str, versions: &[&str], data_len: usize) -> Vec<Built> {
        let repo = format!("{}/acme/{name}", self.proxy.host());
        let mut formula = Formula::new(name);
        let mut built = Vec::new();
        for v in versions {
            built.push(self.registry.push(
                &format!("acme/{name}"),
                v,
                &Fixture::Image(tool_image(name, v, data_len)),
            ));
            formula = formula.version(v, &repo, v);
        }
        self.ctx.write_formula(name, &formula.to_toml());
        built
    }

    /// The proxy in front of the registry.
    pub fn reg(&self) -> &Proxy {
        &self.proxy.registry
    }
}

/// Runs `PREFIX/bin/NAME` and returns its trimmed output.
pub fn run_bin(ctx: &TestContext, name: &str) -> String {
    let out = std::process::Command::new(ctx.prefix.join("bin").join(name))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap_or_else(|e| panic!("cannot run bin/{name}: {e}\n{}", ctx.prefix_listing()));
    assert!(out.status.success(), "bin/{name} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn exists_or_is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// No keg, no `opt` link and no `bin` link for `name`, and no staging leftovers.
#[track_caller]
pub fn assert_nothing_installed(ctx: &TestContext, name: &str) {
    let listing = ctx.prefix_listing();
    let keg_dir = ctx.prefix.join("Cellar").join(name);
    assert!(
        !exists_or_is_link(&keg_dir) || std::fs::read_dir(&keg_dir).unwrap().next().is_none(),
        "a keg of {name} exists:\n{listing}"
    );
    for p in [
        ctx.prefix.join("opt").join(name),
        ctx.prefix.join("bin").join(name),
    ] {
        assert!(!exists_or_is_link(&p), "{} exists:\n{listing}", p.display());
    }
    let staging = ctx.prefix.join("Cellar/.staging");
    assert!(
        std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()),
        "staging leftovers:\n{listing}"
    );
}

/// Every file under `dir`, recursively (symlinks not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The cache holds only blobs whose bytes hash to their name, and no download in progress.
#[track_caller]
pub fn assert_cache_verified_and_settled(cache: &Path) {
    for file in files_under(&cache.join("v1/blobs")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let algorithm = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        assert_eq!(algorithm, "sha256", "unexpected {}", file.display());
        assert_eq!(
            sha256_digest(&std::fs::read(&file).unwrap()),
            format!("sha256:{name}"),
            "cache blob {} does not hash to its name",
            file.display()
        );
    }
    let tmp = files_under(&cache.join("v1/tmp"));
    assert!(tmp.is_empty(), "downloads left in the cache: {tmp:?}");
}

pub fn blob_gets(proxy: &Proxy) -> Vec<Seen> {
    proxy.matching("GET", "/blobs/")
}

/// `bytes=N-` → N.
pub fn range_start(seen: &Seen) -> Option<u64> {
    seen.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

pub const DATA: usize = 256 * 1024;

#[test]
fn a_burst_of_server_errors_is_retried_with_growing_backoff() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on("GET", "/manifests/", Times::N(3), Fault::status(503))
        .on("GET", "/blobs/", Times::N(2), Fault::status(502));

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");

    let manifests = rig.reg().matching("GET", "/manifests/");
    let errors: Vec<&Seen> = manifests.iter().filter(|s| s.status == 503).collect();
    assert_eq!(errors.len(), 3, "{}", rig.reg().describe());
    assert!(
        manifests.iter().any(|s| s.status == 200),
        "{}",
        rig.reg().describe()
    );
    // Backoff: each wait at least half the base delay (250 ms, doubling), so the third wait
    // is longer than the first could ever be.
    let gaps: Vec<Duration> = manifests
        .windows(2)
        .take(3)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(100)),
        "no backoff between tries: {gaps:?}\n{}",
        rig.reg().describe()
    );
    assert!(
        gaps[2] > gaps[0],
        "the backoff does not grow: {gaps:?}\n{}",
        rig.reg().describe()
    );
    let blob_statuses: Vec<u16> = blob_gets(rig.reg()).iter().map(|s| s.status).collect();
    assert_eq!(blob_statuses, [502, 502, 200], "{}", rig.reg().describe());
}

#[test]
fn server_errors_past_the_retry_budget_fail_cleanly_after_exactly_that_many_tries() {
    let mut rig = Rig::start();
    rig.ctx.env("PKG_RETRIES", "3");
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on("GET", "/manifests/", Times::Always, Fault::status(503));

    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("503");
    assert_nothing_installed(&rig.ctx, "hello");
    assert_eq!(
        rig.reg().count("GET", "/manifests/"),
        3,
        "PKG_RETRIES=3 means three tries:\n{}",
        rig.reg().describe()
    );
}

/// The gap between the 429 and the next try of the same path.
fn wait_after_429(proxy: &Proxy, path: &str) -> Duration {
    let seen = proxy.matching("GET", path);
    let i = seen
        .iter()
        .position(|s| s.status == 429)
        .unwrap_or_else(|| panic!("no 429 answered:\n{}", proxy.describe()));
    let next = seen
        .get(i + 1)
        .unwrap_or_else(|| panic!("no try after the 429:\n{}", proxy.describe()));
    next.at.duration_since(seen[i].at)
}

#[test]
fn too_many_requests_waits_as_long_as_retry_after_seconds_says() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Once,
        Fault::status_with(429, &[("Retry-After", "2")]),
    );

    rig.ctx.pkg(&["install", "hello"]).success();
    let waited = wait_after_429(rig.reg(), "/manifests/");
    // Without Retry-After the first backoff is at most 250 ms.
    assert!(
        waited >= Duration::from_millis(1900),
        "waited only {waited:?} after `Retry-After: 2`"
    );
}

#[test]
fn too_many_requests_waits_until_a_retry_after_http_date() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    rig.reg().on(
        "GET",
        "/blobs/",
        Times::Once,
        Fault::status_with(429, &[("Retry-After", &when)]),
    );

    rig.ctx.pkg(&["install", "hello"]).success();
    let waited = wait_after_429(rig.reg(), "/blobs/");
    // The date has one-second resolution: at least two seconds remain of the three.
    assert!(
        waited >= Duration::from_millis(1500),
        "waited only {waited:?} after `Retry-After: {when}`"
    );
}

/// The blob GETs were: the first one, cut, then one asking for the rest with `Range`.
#[track_caller]
fn assert_resumed(proxy: &Proxy, expect_status: u16) {
    let gets = blob_gets(proxy);
    let resumed: Vec<&Seen> = gets.iter().filter(|s| range_start(s).is_some()).collect();
    assert_eq!(
        resumed.len(),
        1,
        "one resume expected:\n{}",
        proxy.describe()
    );
    let start = range_start(resumed[0]).unwrap();
    assert!(start > 0, "resumed from 0:\n{}", proxy.describe());
    assert_eq!(resumed[0].status, expect_status, "{}", proxy.describe());
}

#[test]
fn a_connection_reset_mid_blob_resumes_with_a_range_request() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on("GET", "/blobs/", Times::Once, Fault::ResetAfter(DATA / 2));

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert_resumed(rig.reg(), 206);
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

#[test]
fn a_truncated_blob_body_resumes_with_a_range_request() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg().on(
        "GET",
        "/blobs/",
        Times::Once,
        Fault::TruncateAfter(DATA / 3),
    );

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert_resumed(rig.reg(), 206);
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

#[test]
fn a_server_ignoring_the_range_is_read_from_the_start_and_the_known_bytes_skipped() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on(
            "GET",
            "/blobs/",
            Times::Once,
            Fault::TruncateAfter(DATA / 2),
        )
        .on("GET", "/blobs/", Times::Once, Fault::IgnoreRange);

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    // The resume asked for a range and got the whole blob (200).
    assert_resumed(rig.reg(), 200);
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

/// `bytes FIRST-LAST/TOTAL` → its three numbers.
fn content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

/// Rewrites every 206 answer (a ranged one) so that it contradicts the range asked for: another
/// total in its `Content-Range`, another start, another end, no `Content-Range`, a body one
/// byte longer than the rest of the blob (so `Content-Length` is wrong), or a 416 in its place.
type Botch = fn(&mut crate::harness::proxy::Response);

const BOTCHED_RANGES: [(&str, Botch); 6] = [
    ("another total", |r| {
        if let Some((f, l, t)) = r.header("content-range").and_then(content_range) {
            r.set_header("Content-Range", &format!("bytes {f}-{l}/{}", t + 1));
        }
    }),
    ("another start", |r| {
        if let Some((f, l, t)) = r.header("content-range").and_then(content_range) {
            r.set_header("Content-Range", &format!("bytes {}-{l}/{t}", f - 1));
        }
    }),
    ("another end", |r| {
        if let Some((f, l, t)) = r.header("content-range").and_then(content_range) {
            r.set_header("Content-Range", &format!("bytes {f}-{}/{t}", l - 1));
        }
    }),
    ("no Content-Range", |r| r.remove_header("Content-Range")),
    ("a wrong Content-Length", |r| r.body.push(0)),
    ("416", |r| {
        r.status = 416;
        r.remove_header("Content-Range");
        r.body.clear();
    }),
];

/// [`BOTCHED_RANGES`]'s `botch`, on every ranged answer from now on.
fn botch_every_range(proxy: &Proxy, botch: Botch) {
    proxy.on(
        "GET",
        "/blobs/",
        Times::Always,
        Fault::rewrite(move |r| {
            if r.status == 206 {
                botch(r);
            }
        }),
    );
}

#[test]
fn a_ranged_answer_that_contradicts_the_range_asked_for_is_refused_and_the_blob_read_again_from_the_start()
 {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    for (what, botch) in BOTCHED_RANGES {
        let ctx = rig.ctx.sharing_cache();
        let _ = std::fs::remove_dir_all(ctx.cache.join("v1"));
        let before = blob_gets(rig.reg()).len();
        rig.reg().on(
            "GET",
            "/blobs/",
            Times::Once,
            Fault::TruncateAfter(DATA / 2),
        );
        // The server's ranges stay broken: asking for the rest again would fail again.
        botch_every_range(rig.reg(), botch);

        ctx.pkg(&["install", "hello"]).success();
        assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0", "{what}");
        // Cut, resumed with a range whose answer was refused, then read whole without one.
        let gets = blob_gets_since(rig.reg(), before);
        let statuses: Vec<(Option<u64>, u16)> =
            gets.iter().map(|s| (range_start(s), s.status)).collect();
        assert_eq!(statuses.len(), 3, "{what}:\n{}", rig.reg().describe());
        assert_eq!(
            statuses[0],
            (None, 200),
            "{what}:\n{}",
            rig.reg().describe()
        );
        assert!(
            matches!(statuses[1], (Some(start), 206 | 416) if start > 0),
            "{what}: no botched resume:\n{}",
            rig.reg().describe()
        );
        assert_eq!(
            statuses[2],
            (None, 200),
            "{what}:\n{}",
            rig.reg().describe()
        );
        assert_cache_verified_and_settled(&ctx.cache);
        rig.reg().clear();
    }
}

#[test]
fn a_partial_whose_ranged_answers_are_always_botched_is_dropped_and_the_blob_fetched_whole() {
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], DATA);
    let digest = built[0].layer_digest().to_owned();
    for (what, botch) in BOTCHED_RANGES {
        let _ = std::fs::remove_dir_all(rig.ctx.cache.join("v1"));
        // An earlier run was killed with half the blob on disk.
        let blob = plant_partial(&rig, &digest, DATA / 2, false);
        botch_every_range(rig.reg(), botch);
        let before = blob_gets(rig.reg()).len();

        let ctx = rig.ctx.sharing_cache();
        ctx.pkg(&["install", "hello"]).success();
        assert_eq!(run_bin(&ctx, "hello"), "hello 1.0.0", "{what}");
        let gets = blob_gets_since(rig.reg(), before);
        let statuses: Vec<(Option<u64>, u16)> =
            gets.iter().map(|s| (range_start(s), s.status)).collect();
        assert_eq!(
            statuses.len(),
            2,
            "{what}: the partial's range, then the whole blob:\n{}",
            rig.reg().describe()
        );
        assert!(
            matches!(statuses[0], (Some(start), 206 | 416) if start == DATA as u64 / 2),
            "{what}:\n{}",
            rig.reg().describe()
        );
        assert_eq!(
            statuses[1],
            (None, 200),
            "{what}:\n{}",
            rig.reg().describe()
        );
        let hex = digest.strip_prefix("sha256:").unwrap();
        assert_eq!(
            std::fs::read(ctx.cache.join("v1/blobs/sha256").join(hex)).unwrap(),
            blob,
            "{what}"
        );
        // No partial is left to be resumed with the same bad answer by a later run.
        assert!(!partial_of(&ctx.cache, &digest).exists(), "{what}");
        assert_cache_verified_and_settled(&ctx.cache);
        rig.reg().clear();
    }
}

#[test]
fn a_stalled_response_times_out_and_is_retried() {
    let mut rig = Rig::start();
    rig.ctx.env("PKG_READ_TIMEOUT", "1");
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Once,
        Fault::Stall(Duration::from_secs(100)),
    );

    let started = Instant::now();
    rig.ctx.pkg(&["install", "hello"]).success();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let manifests = rig.reg().matching("GET", "/manifests/");
    assert_eq!(manifests[0].status, 0, "{}", rig.reg().describe());
    assert!(manifests.len() >= 2, "{}", rig.reg().describe());
}

#[test]
fn a_blob_body_that_stalls_midway_times_out_and_resumes() {
    let mut rig = Rig::start();
    rig.ctx.env("PKG_READ_TIMEOUT", "1");
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg().on(
        "GET",
        "/blobs/",
        Times::Once,
        Fault::StallAfter(DATA / 2, Duration::from_secs(100)),
    );

    let started = Instant::now();
    rig.ctx.pkg(&["install", "hello"]).success();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert_resumed(rig.reg(), 206);
}

#[test]
fn a_content_length_that_contradicts_the_descriptor_is_refused_before_reading() {
    for delta in [100, -100] {
        let rig = Rig::start();
        let built = rig.publish("hello", &["1.0.0"], DATA);
        rig.reg().on(
            "GET",
            "/blobs/",
            Times::Always,
            Fault::WrongContentLength(delta),
        );

        let run = rig.ctx.pkg(&["install", "hello"]).failure();
        run.says(built[0].layer_digest()).says("descriptor says");
        assert_nothing_installed(&rig.ctx, "hello");
        assert_cache_verified_and_settled(&rig.ctx.cache);
        assert!(
            !files_under(&rig.ctx.cache.join("v1/blobs"))
                .iter()
                .any(|f| f
                    .to_string_lossy()
                    .contains(built[0].layer_digest().strip_prefix("sha256:").unwrap())),
            "the layer reached the cache"
        );
    }
}

#[test]
fn a_corrupted_byte_is_fetched_once_more_in_the_same_run_and_twice_fails_naming_both() {
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on("GET", "/blobs/", Times::Once, Fault::CorruptByte);
    let run = rig.ctx.pkg(&["install", "hello"]).success();
    run.says("mismatch").says("Fetching it once more");
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert_eq!(blob_gets(rig.reg()).len(), 2, "{}", rig.reg().describe());
    assert_cache_verified_and_settled(&rig.ctx.cache);

    // Bad every time: the second failure fails the install, naming the first as well.
    let rig = Rig::start();
    let built_again = rig.publish("hello", &["1.0.0"], DATA);
    assert_eq!(built[0].layer_digest(), built_again[0].layer_digest());
    rig.reg()
        .on("GET", "/blobs/", Times::Always, Fault::CorruptByte);
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says(built[0].layer_digest())
        .says("It was the second try: the first download failed too");
    assert_eq!(blob_gets(rig.reg()).len(), 2, "{}", rig.reg().describe());
    assert_nothing_installed(&rig.ctx, "hello");
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

/// The refetch is per blob: an image whose two layers each arrive with a flipped byte once
/// still installs in one run; one refetch per pour failed it on the second bad blob.
#[test]
fn two_blobs_each_corrupted_once_in_one_pour_are_each_fetched_again_and_install() {
    use crate::harness::layout::{FileEntry, LAYER_TYPE, gzip, tar_bytes};
    let rig = Rig::start();
    let second = gzip(&tar_bytes(&[FileEntry {
        path: "share/two/more".into(),
        contents: noise(DATA, 7),
        mode: 0o644,
    }]));
    let built = rig.registry.push(
        "acme/two",
        "1.0.0",
        &Fixture::Image(tool_image("two", "1.0.0", DATA).raw_layer(second, LAYER_TYPE)),
    );
    let layers = built.image().layer_digests.clone();
    assert_eq!(layers.len(), 2);
    rig.ctx.write_formula(
        "two",
        &Formula::new("two")
            .version("1.0.0", &format!("{}/acme/two", rig.proxy.host()), "1.0.0")
            .to_toml(),
    );
    // The first layer arrives with a flipped byte; the second is slow, so the pour has given up
    // on it when the first fails; fetched again, the first is sound and the second is not.
    let at = |layer: &String| format!("/blobs/{layer}");
    rig.reg().on(
        "GET",
        &at(&layers[1]),
        Times::Once,
        Fault::Delay(Duration::from_secs(1)),
    );
    for layer in &layers {
        rig.reg()
            .on("GET", &at(layer), Times::Once, Fault::CorruptByte);
    }
    let run = rig.ctx.pkg(&["install", "two"]);
    assert_eq!(run.code, 0, "{}\n{}", run.output(), rig.reg().describe());
    assert_eq!(run_bin(&rig.ctx, "two"), "two 1.0.0");
    // Each was found bad once, and said so.
    for layer in &layers {
        run.says(&format!("mismatch for {layer}"));
    }
    assert_eq!(run.stderr.matches("Fetching it once more").count(), 2);
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

#[test]
fn a_blob_content_length_off_by_a_few_bytes_once_is_fetched_again_and_installs() {
    for delta in [3, -3] {
        let rig = Rig::start();
        rig.publish("hello", &["1.0.0"], DATA);
        rig.reg().on(
            "GET",
            "/blobs/",
            Times::Once,
            Fault::WrongContentLength(delta),
        );
        rig.ctx.pkg(&["install", "hello"]).success();
        assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0", "delta {delta}");
        assert_cache_verified_and_settled(&rig.ctx.cache);
    }
}

/// Each fault on its own, once, on the manifest or the token answer: the install goes through.
#[test]
fn a_manifest_or_token_body_that_breaks_off_once_is_asked_again_and_installs() {
    let cases: Vec<(&str, &str, Fault)> = vec![
        ("token body cut off", "/token", Fault::TruncateAfter(10)),
        ("token connection reset", "/token", Fault::ResetAfter(10)),
        (
            "token body too short",
            "/token",
            Fault::WrongContentLength(-5),
        ),
        (
            "manifest body cut off",
            "/manifests/",
            Fault::TruncateAfter(40),
        ),
        (
            "manifest connection reset",
            "/manifests/",
            Fault::ResetAfter(40),
        ),
        (
            "manifest body too long",
            "/manifests/",
            Fault::WrongContentLength(7),
        ),
        (
            "manifest body too short",
            "/manifests/",
            Fault::WrongContentLength(-7),
        ),
        (
            "manifest stalls past the read timeout",
            "/manifests/",
            Fault::StallAfter(20, Duration::from_secs(5)),
        ),
    ];
    for (case, path, fault) in cases {
        let rig = Rig::start();
        rig.publish("hello", &["1.0.0"], DATA);
        let proxy = if path == "/token" {
            &rig.proxy.token
        } else {
            rig.reg()
        };
        proxy.on("GET", path, Times::Once, fault);
        let run = rig.ctx.pkg(&["install", "hello"]);
        assert_eq!(
            run.code,
            0,
            "{case}:\n{}\n{}",
            run.output(),
            proxy.describe()
        );
        assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0", "{case}");
        assert!(
            proxy.count("GET", path) >= 2,
            "{case}: not asked again:\n{}",
            proxy.describe()
        );
    }
}

/// A token that expires while a 429 is waited out: 401 (anonymous) → token → 429 with
/// Retry-After 1 → 401 for the expired token → a new token → 200. Renewals are bounded by the
/// retry budget, not one per request.
#[test]
fn a_token_that_expires_during_a_retry_after_wait_is_renewed_again() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        // The first, anonymous, request goes through (and gets the registry's 401).
        .on(
            "GET",
            "/manifests/",
            Times::Once,
            Fault::Delay(Duration::ZERO),
        )
        .on(
            "GET",
            "/manifests/",
            Times::Once,
            Fault::status_with(429, &[("Retry-After", "1")]),
        )
        .on("GET", "/manifests/", Times::Once, Fault::DropAuthorization);
    rig.reg()
        .on("GET", "/blobs/", Times::Once, Fault::DropAuthorization);
    let run = rig.ctx.pkg(&["install", "hello"]);
    assert_eq!(run.code, 0, "{}\n{}", run.output(), rig.reg().describe());
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert!(rig.proxy.token.count("GET", "/token") >= 3);

    // A registry that refuses every anonymous token it is handed: a bounded number of renewals,
    // and a message that does not blame a missing login.
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg().on(
        "GET",
        "/manifests/",
        Times::Always,
        Fault::DropAuthorization,
    );
    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("401")
        .says("a token its token service had just issued");
    assert!(
        !run.stderr.contains("If the package is private"),
        "{}",
        run.stderr
    );
    let tokens = rig.proxy.token.count("GET", "/token");
    assert!((2..=6).contains(&tokens), "{tokens} tokens asked for");
}

#[test]
fn a_slow_token_service_is_waited_for_and_a_stalled_one_retried() {
    let mut rig = Rig::start();
    rig.ctx.env("PKG_READ_TIMEOUT", "2");
    rig.publish("hello", &["1.0.0"], DATA);
    // Slow but within the read timeout: one token request, answered.
    rig.proxy.token.on(
        "GET",
        "/token",
        Times::Once,
        Fault::Delay(Duration::from_millis(1200)),
    );
    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(rig.proxy.token.count("GET", "/token"), 1);

    // Silent past the read timeout: given up on, and asked again.
    let other = rig.ctx.sharing_cache();
    std::fs::remove_dir_all(other.cache.join("v1")).unwrap();
    rig.proxy.token.on(
        "GET",
        "/token",
        Times::Once,
        Fault::Stall(Duration::from_secs(100)),
    );
    let started = Instant::now();
    other.pkg(&["install", "hello"]).success();
    assert!(started.elapsed() < Duration::from_secs(30));
    let tokens = rig.proxy.token.matching("GET", "/token");
    assert_eq!(tokens.len(), 3, "{}", rig.proxy.token.describe());
    assert_eq!(tokens[1].status, 0);
    assert_eq!(tokens[2].status, 200);
}

#[test]
fn a_failing_token_service_is_retried_and_one_that_keeps_failing_fails_cleanly() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.proxy
        .token
        .on("GET", "/token", Times::N(2), Fault::status(500));
    rig.ctx.pkg(&["install", "hello"]).success();
    let statuses: Vec<u16> = rig
        .proxy
        .token
        .matching("GET", "/token")
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [500, 500, 200]);

    let other = rig.ctx.sharing_cache();
    std::fs::remove_dir_all(other.cache.join("v1")).unwrap();
    rig.proxy
        .token
        .on("GET", "/token", Times::Always, Fault::status(503));
    let run = other.pkg(&["install", "hello"]).failure();
    run.says("token").says("503");
    assert_nothing_installed(&other, "hello");
}

#[test]
fn a_blob_redirected_to_a_cdn_on_another_host_is_fetched_without_authorization() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on("GET", "/blobs/", Times::Always, Fault::RedirectToCdn);

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");

    let registry_side = blob_gets(rig.reg());
    assert!(
        registry_side
            .iter()
            .any(|s| s.status == 307 && s.header("authorization").is_some()),
        "the registry was asked with a token:\n{}",
        rig.reg().describe()
    );
    let cdn = rig.proxy.registry.cdn_seen();
    assert!(!cdn.is_empty(), "the CDN on 127.0.0.2 was never asked");
    for s in &cdn {
        assert_eq!(
            s.header("authorization"),
            None,
            "Authorization reached {}: {s:?}",
            rig.proxy.registry.cdn_host()
        );
    }
}

#[test]
fn a_redirect_loop_stops_after_ten_hops_with_a_clear_error() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    rig.reg()
        .on("GET", "/blobs/", Times::Always, Fault::RedirectLoop);

    let run = rig.ctx.pkg(&["install", "hello"]).failure();
    run.says("more than 10 redirects");
    assert_nothing_installed(&rig.ctx, "hello");
    assert_eq!(
        rig.reg().count("GET", "/blobs/"),
        11,
        "{}",
        rig.reg().describe()
    );
}

#[test]
fn a_token_that_expires_mid_run_is_renewed() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], DATA);
    // The blob GET reaches the registry without its token: the registry answers 401 with a
    // challenge, as it does for an expired token.
    rig.reg()
        .on("GET", "/blobs/", Times::Once, Fault::DropAuthorization);

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    let statuses: Vec<u16> = blob_gets(rig.reg()).iter().map(|s| s.status).collect();
    assert_eq!(statuses, [401, 200], "{}", rig.reg().describe());
    assert_eq!(
        rig.proxy.token.count("GET", "/token"),
        2,
        "one token at the start, one renewal:\n{}",
        rig.proxy.token.describe()
    );
    let tokens = rig.proxy.token.tokens();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1], "the renewal must be a new token");
}

/// The cache's partial download of `digest` (`v1/tmp/sha256-HEX.partial`).
pub fn partial_of(cache: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    cache.join(format!("v1/tmp/sha256-{hex}.partial"))
}

/// Plants the first `len` bytes of the registry's blob `digest` as the partial download a dead
/// run left, `flip`ping one of them when asked; returns the whole blob.
fn plant_partial(rig: &Rig, digest: &str, len: usize, flip: bool) -> Vec<u8> {
    let blob = std::fs::read(rig.registry.blob_path(digest)).unwrap();
    let mut kept = blob[..len].to_vec();
    if flip {
        kept[len / 2] ^= 0x01;
    }
    let partial = partial_of(&rig.ctx.cache, digest);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, kept).unwrap();
    blob
}

/// The blob GETs made since `before` of them had been.
pub fn blob_gets_since(proxy: &Proxy, before: usize) -> Vec<Seen> {
    blob_gets(proxy).split_off(before)
}

#[test]
fn a_blob_download_killed_midway_leaves_a_partial_that_the_next_run_resumes_with_a_range_request() {
    let rig = Rig::start();
    let (digest, blob, partial) = throttled_hello(&rig, 8 * DATA, 32 * 1024);

    // Killed once a third of the blob is on disk.
    let mut child = rig
        .ctx
        .command(&["install", "hello"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_a_third(&rig, &mut child, &partial, blob.len());
    child.kill().unwrap();
    child.wait().unwrap();

    let kept = kept_prefix(&partial, &blob);
    // Nothing visible came of it (the staging dir it left is for the next run to clear).
    assert!(rig.ctx.cellar_versions("hello").is_empty());
    assert!(!exists_or_is_link(&rig.ctx.prefix.join("bin/hello")));
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert!(!rig.ctx.cache.join("v1/blobs/sha256").join(hex).exists());

    assert_rerun_resumes(&rig, &rig.ctx, kept.len(), &partial);
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

/// Publishes `hello` with `data_len` bytes of data behind a proxy that sends blobs in chunks of
/// `chunk` bytes, 10 ms apart; returns the layer's digest, its bytes and where its partial
/// download will be.
pub fn throttled_hello(rig: &Rig, data_len: usize, chunk: usize) -> (String, Vec<u8>, PathBuf) {
    let built = rig.publish("hello", &["1.0.0"], data_len);
    let digest = built[0].layer_digest().to_owned();
    let blob = std::fs::read(rig.registry.blob_path(&digest)).unwrap();
    let partial = partial_of(&rig.ctx.cache, &digest);
    rig.reg().on(
        "GET",
        "/blobs/",
        Times::Always,
        Fault::Throttle(chunk, Duration::from_millis(10)),
    );
    (digest, blob, partial)
}

/// Waits (at most a minute) until the download of the running `child` has put a third of the
/// `blob_len`-byte blob into `partial`; fails if the child ends first.
pub fn wait_for_a_third(
    rig: &Rig,
    child: &mut std::process::Child,
    partial: &Path,
    blob_len: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(partial).map_or(0, |m| m.len()) < blob_len as u64 / 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "pkg finished before it was stopped:\n{}",
            rig.reg().describe()
        );
        assert!(Instant::now() < deadline, "no partial download grew");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The partial download a stopped run left: a proper, non-empty prefix of `blob`.
pub fn kept_prefix(partial: &Path, blob: &[u8]) -> Vec<u8> {
    let kept = std::fs::read(partial).expect("the partial download outlives the run");
    assert!(
        !kept.is_empty() && kept.len() < blob.len() && blob.starts_with(&kept),
        "the partial ({} bytes) is not a proper prefix of the {}-byte blob",
        kept.len(),
        blob.len()
    );
    kept
}

/// Runs `pkg install hello` again in `ctx` and checks it made one blob request, for the rest of
/// the `kept`-byte partial, answered 206, and left no partial behind.
pub fn assert_rerun_resumes(rig: &Rig, ctx: &TestContext, kept: usize, partial: &Path) {
    rig.reg().clear(); // the faults; what was seen stays
    let before = blob_gets(rig.reg()).len();
    ctx.pkg(&["install", "hello"]).success();
    let gets = blob_gets_since(rig.reg(), before);
    assert_eq!(gets.len(), 1, "{}", rig.reg().describe());
    assert_eq!(
        range_start(&gets[0]),
        Some(kept as u64),
        "the rerun did not ask for the rest of the partial:\n{}",
        rig.reg().describe()
    );
    assert_eq!(gets[0].status, 206, "{}", rig.reg().describe());
    assert!(!partial.exists());
}

#[test]
fn a_partial_download_is_resumed_from_a_server_that_ignores_the_range_by_skipping_the_known_bytes()
{
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], DATA);
    let digest = built[0].layer_digest().to_owned();
    let blob = plant_partial(&rig, &digest, DATA / 2, false);
    rig.reg()
        .on("GET", "/blobs/", Times::Once, Fault::IgnoreRange);

    rig.ctx.pkg(&["install", "hello"]).success();
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    let gets = blob_gets(rig.reg());
    assert_eq!(gets.len(), 1, "{}", rig.reg().describe());
    assert_eq!(range_start(&gets[0]), Some(DATA as u64 / 2));
    assert_eq!(gets[0].status, 200, "{}", rig.reg().describe());
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(
        std::fs::read(rig.ctx.cache.join("v1/blobs/sha256").join(hex)).unwrap(),
        blob
    );
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

#[test]
fn a_corrupt_partial_download_fails_the_digest_check_is_deleted_and_the_blob_fetched_again_from_0()
{
    let rig = Rig::start();
    let built = rig.publish("hello", &["1.0.0"], DATA);
    let digest = built[0].layer_digest().to_owned();
    plant_partial(&rig, &digest, DATA / 2, true);

    // The resumed download fails its digest check (the message says bytes were kept from an
    // earlier run); the partial is deleted and the same run fetches the blob whole.
    let run = rig.ctx.pkg(&["install", "hello"]).success();
    run.says(&digest)
        .says("mismatch")
        .says("kept from an earlier run")
        .says("Fetching it once more");
    assert_eq!(run_bin(&rig.ctx, "hello"), "hello 1.0.0");
    assert!(!partial_of(&rig.ctx.cache, &digest).exists());
    let gets = blob_gets(rig.reg());
    assert_eq!(gets.len(), 2, "{}", rig.reg().describe());
    assert_eq!(range_start(&gets[0]), Some(DATA as u64 / 2));
    assert_eq!(gets[1].header("range"), None, "{}", rig.reg().describe());
    assert_cache_verified_and_settled(&rig.ctx.cache);
}

/// A listener whose accept queue is full, with the connections that fill it: a connection to it
/// neither succeeds nor fails (the kernel drops its SYNs), as with a firewalled or unreachable
/// host, but offline and without waiting for a real network to time out.
fn unanswering_listener() -> (
    std::net::TcpListener,
    Vec<std::net::TcpStream>,
    std::net::SocketAddr,
) {
    use std::os::fd::AsRawFd as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a socket we own, already listening: only the backlog changes.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(conn) => {
                queued.push(conn);
                assert!(queued.len() < 16, "the accept queue never fills");
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("connecting to {addr}: {e}"),
        }
    }
    (listener, queued, addr)
}

#[test]
fn a_registry_that_never_accepts_the_connection_is_given_up_on_at_the_connect_timeout() {
    let (_listener, _queued, addr) = unanswering_listener();
    let mut ctx = TestContext::new();
    ctx.env("PKG_CONNECT_TIMEOUT", "1")
        .env("PKG_RETRIES", "2")
        .env("PKG_READ_TIMEOUT", "60");
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version("1.0.0", &format!("{addr}/acme/hello"), "1.0.0")
            .to_toml(),
    );

    let started = Instant::now();
    let run = ctx.pkg(&["install", "hello"]).failure();
    let took = started.elapsed();
    run.says(&addr.to_string())
        .says("timeout: connect")
        .says("PKG_CONNECT_TIMEOUT");
    // Two tries of one second each and a backoff between them; left to the kernel, a connect
    // to a host that drops SYNs takes about two minutes to fail.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "gave up after {took:?}"
    );
    assert_nothing_installed(&ctx, "hello");
}

/// The seed of a random-fault test: `PKG_FAULT_SEED` replays another.
pub fn fault_seed(default: u64) -> u64 {
    std::env::var("PKG_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `pkg ARGS` in each context, four threads each taking its share in order; the runs come
/// back in the contexts' order.
pub fn four_at_a_time(contexts: &[&TestContext], args: &[&str]) -> Vec<crate::harness::Run> {
    std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .chunks(contexts.len().div_ceil(4).max(1))
            .map(|chunk| s.spawn(move || chunk.iter().map(|ctx| ctx.pkg(args)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// 100 cold installs (20 fresh prefixes and caches, 5 packages each, 4 at a time) through the
/// proxies with a seeded 10 % chance of a fault on every registry and token request: resets,
/// cut bodies, wrong lengths, flipped bytes, 503s and stalls past the read timeout. At least
/// 99 must complete, and every one that does must be exactly what was published. Each round
/// installs from repositories of its own, so the dice of one install's requests do not depend
/// on which of the four running at once asked first, and a request's dice count only the same
/// request with or without a token, so an unauthenticated probe (made or not as pkg's threads
/// learn the realm) shifts nothing after it: with `PKG_FAULT_DUMP=FILE` the requests seen are
/// written out, and two runs of one seed differ only in those probes.
#[test]
fn a_hundred_installs_under_ten_percent_random_faults_complete_and_none_is_corrupt() {
    let seed = fault_seed(20261202);
    let rig = Rig::start();
    let names = ["ra", "rb", "rc", "rd", "re"];
    for round in 0..20 {
        for name in names {
            rig.registry.push(
                &format!("acme/{name}-{round}"),
                "1.0.0",
                &Fixture::Image(tool_image(name, "1.0.0", DATA)),
            );
        }
    }
    let faults = std::sync::Arc::new(vec![
        Fault::ResetAfter(100),
        Fault::TruncateAfter(100),
        Fault::WrongContentLength(3),
        Fault::WrongContentLength(-3),
        Fault::CorruptByte,
        Fault::status(503),
        Fault::StallAfter(10, Duration::from_secs(4)),
    ]);
    let sometimes = || Fault::Sometimes {
        percent: 10,
        seed,
        faults: faults.clone(),
        count: Default::default(),
    };
    rig.reg().on("", "/v2/", Times::Always, sometimes());
    rig.proxy.token.on("", "/token", Times::Always, sometimes());

    let repo = |n: &str, round: usize| format!("{}/acme/{n}-{round}", rig.proxy.host());
    let rounds: Vec<TestContext> = (0..20)
        .map(|round| {
            let mut ctx = TestContext::new();
            ctx.env("PKG_RETRIES", "4")
                .env("PKG_READ_TIMEOUT", "2")
                .env("PKG_CONNECT_TIMEOUT", "2");
            for name in names {
                ctx.write_formula(
                    name,
                    &Formula::new(name)
                        .version("1.0.0", &repo(name, round), "1.0.0")
                        .to_toml(),
                );
            }
            ctx
        })
        .collect();
    let mut args = vec!["install"];
    args.extend(names);
    let runs = four_at_a_time(&rounds.iter().collect::<Vec<_>>(), &args);
    let mut complete = 0;
    let mut failures = Vec::new();
    for (ctx, run) in rounds.iter().zip(&runs) {
        for name in names {
            if ctx.cellar_versions(name) == ["1.0.0"] {
                assert_eq!(run_bin(ctx, name), format!("{name} 1.0.0"), "corrupt keg");
                complete += 1;
            }
        }
        if run.code != 0 {
            failures.push(run.stderr.clone());
        }
        assert_cache_verified_and_settled(&ctx.cache);
    }
    let faulted = rig.reg().seen().len() + rig.proxy.token.seen().len();
    if let Some(out) = std::env::var_os("PKG_FAULT_DUMP") {
        let mut lines: Vec<String> = (rig.reg().seen().into_iter())
            .chain(rig.proxy.token.seen())
            .map(|s| {
                format!(
                    "{} {}?{} {}",
                    s.method,
                    s.path,
                    s.query.unwrap_or_default(),
                    s.status
                )
            })
            .collect();
        lines.sort();
        std::fs::write(out, lines.join("\n")).unwrap();
    }
    eprintln!(
        "random faults (seed {seed}): {complete}/100 installs complete, {} requests seen",
        faulted
    );
    assert!(
        complete >= 99,
        "{complete}/100 complete (seed {seed}); failures:\n{}",
        failures.join("\n---\n")
    );
}

/// A manifest PUT whose answer says the registry stored other bytes (`Docker-Content-Digest`)
/// is sent again as a whole; the push then completes and installs.
#[test]
fn a_manifest_put_answered_with_another_digest_is_sent_again() {
    let rig = Rig::start();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("bin")).unwrap();
    std::fs::write(
        src.path().join("bin/pushed"),
        "#!/bin/sh\necho pushed 1.0.0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        src.path().join("bin/pushed"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    rig.reg().on(
        "PUT",
        "/manifests/",
        Times::Once,
        Fault::rewrite(|r| {
            r.set_header(
                "Docker-Content-Digest",
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            )
        }),
    );
    let mut ctx = rig.ctx.sharing_cache();
    ctx.with_credentials();
    let target = format!("{}/acme/pushed:1.0.0", rig.proxy.host());
    let run = ctx.pkg(&[
        "bottle",
        src.path().to_str().unwrap(),
        "--name",
        "pushed",
        "--version",
        "1.0.0",
        "--push",
        &target,
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.output(), rig.reg().describe());
    assert_eq!(
        rig.reg().count("PUT", "/manifests/"),
        2,
        "{}",
        rig.reg().describe()
    );
    ctx.write_formula(
        "pushed",
        &Formula::new("pushed")
            .version(
                "1.0.0",
                &format!("{}/acme/pushed", rig.proxy.host()),
                "1.0.0",
            )
            .to_toml(),
    );
    ctx.pkg(&["install", "pushed"]).success();
    assert_eq!(run_bin(&ctx, "pushed"), "pushed 1.0.0");
}
