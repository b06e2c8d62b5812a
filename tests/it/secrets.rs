//! Secrets never leak: pkg runs `--verbose` with credentials (from the environment, and from a
//! docker `config.json` in its HOME) through successful and failing paths — pulls, a push, wrong
//! passwords, denied pulls and pushes, a token service that errs — and every byte it printed,
//! and every file it left in the prefix and the cache, is searched for the password (plain and
//! base64 in a Basic header) and for every token the token service issued.

use base64::Engine as _;

use crate::faults::{Rig, files_under};
use crate::harness::proxy::{Fault, Response, Times};
use crate::harness::token::{PASSWORD, USERNAME};
use crate::harness::{Run, TestContext};

/// Everything one scenario printed, with what it was.
struct Transcript {
    runs: Vec<(String, Run)>,
}

impl Transcript {
    fn run(&mut self, ctx: &TestContext, label: &str, args: &[&str]) -> &Run {
        let mut full = vec!["--verbose"];
        full.extend_from_slice(args);
        let run = ctx.pkg(&full);
        self.runs.push((label.to_owned(), run));
        &self.runs.last().unwrap().1
    }
}

/// A wrong password is as secret as the right one.
const WRONG: &str = "not-the-password";

/// The secrets to look for: the password, its Basic header form, every issued token and the
/// signature part of each (a token cut short still leaks it).
fn secrets(rig: &Rig) -> Vec<String> {
    let mut out = Vec::new();
    for password in [PASSWORD, WRONG] {
        out.push(password.to_owned());
        out.push(
            base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{password}")),
        );
    }
    for token in rig.proxy.token.tokens() {
        out.push(token.clone());
        if let Some(signature) = token.rsplit('.').next()
            && signature.len() >= 16
        {
            out.push(signature.to_owned());
        }
    }
    out
}

#[track_caller]
fn assert_no_leak(rig: &Rig, transcript: &Transcript, contexts: &[&TestContext]) {
    let tokens = rig.proxy.token.tokens();
    assert!(
        !tokens.is_empty(),
        "no token was issued: the test would prove nothing"
    );
    let secrets = secrets(rig);
    for (label, run) in &transcript.runs {
        for secret in &secrets {
            assert!(
                !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
                "{label}: a secret was printed:\n{}",
                run.output()
            );
        }
    }
    for ctx in contexts {
        for file in files_under(&ctx.prefix)
            .into_iter()
            .chain(files_under(&ctx.cache))
        {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{} holds a secret",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn credentials_and_tokens_never_appear_in_output_receipts_or_the_cache() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0", "2.0.0"], 4096);
    let mut t = Transcript { runs: Vec::new() };

    // Credentials from the environment: success paths.
    let mut env_ctx = rig.ctx.sharing_cache();
    env_ctx.with_credentials();
    t.run(&env_ctx, "install", &["install", "hello@1.0.0"]);
    t.run(&env_ctx, "upgrade", &["upgrade"]);
    t.run(&env_ctx, "fetch", &["fetch", "hello@1.0.0"]);
    t.run(&env_ctx, "info", &["info", "hello"]);
    t.run(&env_ctx, "config", &["config"]);
    t.run(&env_ctx, "doctor", &["doctor"]);
    for (label, run) in &t.runs[..3] {
        assert_eq!(run.code, 0, "{label}:\n{}", run.output());
    }

    // Credentials from docker's config.json in HOME.
    let docker_ctx = rig.ctx.sharing_cache();
    std::fs::create_dir_all(docker_ctx.home.join(".docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    std::fs::write(
        docker_ctx.home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            rig.proxy.host()
        ),
    )
    .unwrap();
    let before = rig.registry.issuer().requests().len();
    assert_eq!(
        t.run(&docker_ctx, "install (config.json)", &["install", "hello"])
            .code,
        0
    );
    assert!(
        rig.registry.issuer().requests()[before..]
            .iter()
            .any(|r| r.caller == crate::harness::token::Caller::User),
        "the config.json credentials were not used"
    );

    // A push with the right credentials, then denied (anonymous push is refused).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/pushed"), "#!/bin/sh\necho pushed\n").unwrap();
    let push = |ctx: &TestContext, t: &mut Transcript, label: &str, tag: &str| -> i32 {
        let out = dir.path().join(format!("layout-{tag}"));
        let target = format!("{}/acme/pushed:{tag}", rig.proxy.host());
        t.run(
            ctx,
            label,
            &[
                "bottle",
                dir.path().to_str().unwrap(),
                "--name",
                "pushed",
                "--version",
                "1.0.0",
                "-o",
                out.to_str().unwrap(),
                "--push",
                &target,
            ],
        )
        .code
    };
    assert_eq!(push(&env_ctx, &mut t, "push", "1.0.0"), 0);
    let anonymous = rig.ctx.sharing_cache();
    assert_eq!(push(&anonymous, &mut t, "push denied", "1.0.1"), 1);

    // Wrong passwords, from the environment and from config.json.
    let mut wrong = rig.ctx.sharing_cache();
    wrong.credentials(USERNAME, WRONG);
    assert_eq!(
        t.run(&wrong, "wrong password", &["install", "hello"]).code,
        1
    );
    assert_eq!(
        push(&wrong, &mut t, "push with a wrong password", "1.0.2"),
        1
    );

    // The token service denies the pull, errs, or answers nonsense; the registry denies.
    let failing: [(&str, &str, Fault); 4] = [
        (
            "token denied",
            "/token",
            Fault::Reply({
                let mut r = Response::new(403);
                r.body = br#"{"errors":[{"code":"DENIED","message":"denied"}]}"#.to_vec();
                r
            }),
        ),
        ("token 500", "/token", Fault::status(500)),
        (
            "token garbage",
            "/token",
            Fault::rewrite(|r: &mut Response| r.body = b"<html>oops".to_vec()),
        ),
        (
            "registry denied",
            "/manifests/",
            Fault::Reply({
                let mut r = Response::new(403);
                r.body = br#"{"errors":[{"code":"DENIED","message":"denied"}]}"#.to_vec();
                r
            }),
        ),
    ];
    for (label, path, fault) in failing {
        rig.proxy.token.clear();
        rig.reg().clear();
        if path == "/token" {
            rig.proxy.token.on("GET", path, Times::Always, fault);
        } else {
            rig.reg().on("GET", path, Times::Always, fault);
        }
        let ctx = env_ctx.sharing_cache();
        let mut ctx = ctx;
        ctx.with_credentials();
        assert_eq!(t.run(&ctx, label, &["install", "hello"]).code, 1, "{label}");
    }
    rig.proxy.token.clear();
    rig.reg().clear();

    // And a change that needs no network.
    assert_eq!(
        t.run(&env_ctx, "uninstall", &["uninstall", "hello"]).code,
        0
    );

    let contexts = [&env_ctx, &docker_ctx, &anonymous, &wrong];
    assert_no_leak(&rig, &t, &contexts);
    eprintln!(
        "secrets: {} verbose runs searched for {} secrets",
        t.runs.len(),
        secrets(&rig).len()
    );
}

/// Every header the registry and token proxies saw, as one text.
fn headers_seen(rig: &Rig) -> String {
    let mut all = String::new();
    for seen in rig
        .proxy
        .registry
        .seen()
        .into_iter()
        .chain(rig.proxy.token.seen())
    {
        for (name, value) in &seen.headers {
            all.push_str(&format!("{} {}: {name}: {value}\n", seen.method, seen.path));
        }
    }
    all
}

/// The environment's credentials are for `ghcr.io` (or `PKG_REGISTRY_HOST`) only: a registry a
/// formula names, and a mirror standing in for ghcr.io, never see them — not in a Basic header
/// to the registry, nor to its token service; the public package installs anonymously.
#[test]
fn environment_credentials_never_reach_another_registry_or_a_mirror() {
    let rig = Rig::start();
    rig.publish("hello", &["1.0.0"], 1024);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    let leaked = |rig: &Rig, case: &str| {
        let seen = headers_seen(rig);
        assert!(
            !seen.contains(&basic) && !seen.contains(PASSWORD),
            "{case}: the password reached the registry or its token service:\n{seen}"
        );
        assert!(
            !seen.to_ascii_lowercase().contains("authorization: basic"),
            "{case}: credentials were sent:\n{seen}"
        );
    };

    // A formula naming a third-party registry (the proxy), credentials meant for ghcr.io.
    let mut ctx = rig.ctx.sharing_cache();
    ctx.with_credentials().credentials_host("");
    ctx.pkg(&["install", "hello"]).success();
    leaked(&rig, "a registry a formula names");

    // The same for a host named explicitly, but another port of it.
    let port = rig
        .proxy
        .host()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse::<u16>()
        .unwrap();
    let mut ctx = rig.ctx.sharing_cache();
    ctx.with_credentials()
        .credentials_host(&format!("127.0.0.1:{}", port + 1));
    ctx.pkg(&["install", "hello"]).success();
    leaked(&rig, "another port of the host");

    // A mirror standing in for ghcr.io: the formula says ghcr.io, pkg talks to the proxy.
    let mut ctx = rig.ctx.sharing_cache();
    ctx.with_credentials()
        .credentials_host("")
        .mirrors(&format!("ghcr.io=http://{}", rig.proxy.host()));
    ctx.write_formula(
        "ghello",
        &crate::harness::Formula::new("ghello")
            .version("1.0.0", "ghcr.io/acme/hello", "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", "ghello"]).success();
    leaked(&rig, "a mirror of ghcr.io");

    // Meant for the proxy's host: then, and only then, they are sent.
    let before = rig.registry.issuer().requests().len();
    let mut fresh = rig.ctx.sharing_cache();
    fresh.with_credentials().credentials_host(&rig.proxy.host());
    fresh.pkg(&["install", "hello"]).success();
    assert!(
        rig.registry.issuer().requests()[before..]
            .iter()
            .any(|r| r.caller == crate::harness::token::Caller::User),
        "credentials for the proxy's host were not used there"
    );
}
