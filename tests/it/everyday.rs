//! The everyday verbs brew and uv users reach for (issue 16): reinstall, leaves, `list NAME`,
//! which, shellenv in real shells, completions from a real bash, a global --offline, several
//! names at once, and --json on the read-only verbs.

use std::process::Command;

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

fn image(name: &str, text: &str) -> Fixture {
    Fixture::Image(
        ImageSpec::new("linux", "amd64")
            .file(
                &format!("bin/{name}"),
                format!("#!/bin/sh\necho {text}\n"),
                0o755,
            )
            .file(
                &format!("share/man/man1/{name}.1"),
                format!(".TH {name} 1\n.SH NAME\n{name} \\- {text}\n"),
                0o644,
            ),
    )
}

/// app (needs lib ^1), lib and hello at 1.0.0, pushed and written as formulae that also link
/// `share/` (the man pages).
fn world() -> (Registry, TestContext) {
    let registry = Registry::start();
    let ctx = TestContext::new();
    for name in ["app", "lib", "hello"] {
        registry.push(
            &format!("acme/{name}"),
            "1.0.0",
            &image(name, &format!("{name} 1.0.0")),
        );
        let repo = format!("{}/acme/{name}", registry.host());
        let deps: &[(&str, &str)] = if name == "app" { &[("lib", "^1")] } else { &[] };
        let toml = Formula::new(name)
            .version_with("1.0.0", &repo, "1.0.0", None, deps)
            .to_toml()
            .replacen(
                "license = \"MIT\"\n",
                "license = \"MIT\"\nlink = [\"share\"]\n",
                1,
            );
        ctx.write_formula(name, &toml);
    }
    (registry, ctx)
}

fn json(run: &crate::harness::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.describe()))
}

#[test]
fn reinstall_puts_back_a_damaged_keg_at_the_same_version_and_a_failed_one_changes_nothing() {
    let (mut registry, ctx) = world();
    ctx.pkg(&["install", "hello", "app"]).success();
    let bin = ctx.keg("hello", "1.0.0").join("bin/hello");
    std::fs::write(&bin, "#!/bin/sh\necho damaged\n").unwrap();
    assert_eq!(crate::faults::run_bin(&ctx, "hello"), "damaged");

    let plan = json(
        &ctx.pkg(&["reinstall", "hello", "--dry-run", "--json"])
            .success(),
    );
    assert_eq!(plan["moved"][0]["action"], "reinstall", "{plan}");
    assert_eq!(
        crate::faults::run_bin(&ctx, "hello"),
        "damaged",
        "a dry run changed it"
    );

    ctx.pkg(&["reinstall", "hello"])
        .success()
        .says("Reinstalled hello 1.0.0");
    assert_eq!(crate::faults::run_bin(&ctx, "hello"), "hello 1.0.0");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
    let receipt = ctx.receipt("hello", "1.0.0");
    assert_eq!(receipt["installed_on_request"], true, "{receipt}");
    // lib was installed as app's dependency, and stays one.
    ctx.pkg(&["reinstall", "lib"]).success();
    assert_eq!(ctx.receipt("lib", "1.0.0")["installed_on_request"], false);

    // Not installed: refused, nothing poured.
    let before = ctx.prefix_listing();
    ctx.pkg(&["reinstall", "hello", "nothere"])
        .failure()
        .says("`nothere` is not installed");
    assert_eq!(ctx.prefix_listing(), before);

    // The registry gone and the blob not cached: the keg stays as it was, linked.
    std::fs::remove_dir_all(&ctx.cache).unwrap();
    registry.stop();
    let mut offline = ctx.sharing_cache();
    offline.prefix = ctx.prefix.clone();
    offline.env("PKG_RETRIES", "1");
    offline.pkg(&["reinstall", "hello"]).failure();
    assert_eq!(crate::faults::run_bin(&ctx, "hello"), "hello 1.0.0");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
}

#[test]
fn leaves_which_list_name_several_names_and_json_answer_from_the_prefix() {
    let (registry, ctx) = world();
    ctx.pkg(&["install", "app", "hello"]).success();

    // Leaves: asked for, and needed by nothing installed.
    assert_eq!(ctx.pkg(&["leaves"]).success().stdout, "app\nhello\n");
    ctx.pkg(&["install", "lib"]).success();
    assert_eq!(
        ctx.pkg(&["leaves"]).success().stdout,
        "app\nhello\n",
        "lib is asked for now, but app needs it"
    );
    let leaves = json(&ctx.pkg(&["leaves", "--json"]).success());
    assert_eq!(leaves["leaves"][1]["name"], "hello", "{leaves}");

    // A keg's files, and the package a command belongs to.
    let files = ctx.pkg(&["list", "hello"]).success().stdout;
    let keg = ctx.keg("hello", "1.0.0");
    assert_eq!(
        files,
        format!(
            "{}\n{}\n",
            keg.join("bin/hello").display(),
            keg.join("share/man/man1/hello.1").display()
        )
    );
    let which = ctx.pkg(&["which", "hello"]).success().stdout;
    assert_eq!(
        which,
        format!("hello\thello 1.0.0\t{}\n", keg.join("bin/hello").display())
    );
    std::fs::write(ctx.prefix.join("bin/mine"), "#!/bin/sh\n").unwrap();
    ctx.pkg(&["which", "mine"]).failure().says("is not a link");
    ctx.pkg(&["which", "nothing"])
        .failure()
        .says("there is no `nothing`");
    let owners = json(&ctx.pkg(&["which", "app", "hello", "--json"]).success());
    assert_eq!(owners["commands"][0]["package"], "app", "{owners}");

    // Several names at once; one that is not installed changes nothing.
    ctx.pkg(&["pin", "hello", "nothere"]).failure();
    assert_eq!(ctx.pkg(&["list", "--pinned"]).success().stdout, "");
    ctx.pkg(&["pin", "hello", "app"]).success();
    assert_eq!(
        ctx.pkg(&["list", "--pinned"]).success().stdout,
        "app\nhello\n"
    );
    ctx.pkg(&["unpin", "hello", "app"]).success();
    ctx.pkg(&["unlink", "hello", "app"]).success();
    assert!(!ctx.prefix.join("bin/hello").exists());
    assert!(!ctx.prefix.join("bin/app").exists());
    ctx.pkg(&["link", "hello", "app"]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "app"), "app 1.0.0");
    let info = json(&ctx.pkg(&["info", "hello", "app", "--json"]).success());
    assert_eq!(info["packages"][1]["name"], "app", "{info}");
    ctx.pkg(&["info", "hello", "nothere"])
        .failure()
        .says("no information on nothere");

    // --json on the read-only verbs.
    let deps = json(&ctx.pkg(&["deps", "app", "--json"]).success());
    assert_eq!(deps["dependencies"][0]["name"], "lib", "{deps}");
    assert_eq!(deps["dependencies"][0]["needed_by"][0], "app", "{deps}");
    let uses = json(&ctx.pkg(&["uses", "lib", "--json"]).success());
    assert_eq!(uses["used_by"][0]["name"], "app", "{uses}");
    let found = json(&ctx.pkg(&["search", "hel", "--json"]).success());
    assert_eq!(found["formulae"][0]["installed"], true, "{found}");
    let tags = json(
        &ctx.pkg(&[
            "search",
            "--remote",
            &format!("{}/acme/hello", registry.host()),
            "--json",
        ])
        .success(),
    );
    assert_eq!(tags["tags"][0], "1.0.0", "{tags}");
    let taps = json(&ctx.pkg(&["tap", "list", "--json"]).success());
    assert_eq!(taps["taps"], serde_json::json!([]), "{taps}");
    // PREFIX/bin is not on the test's PATH: doctor says so, as JSON too, and exits 1.
    let doctor = json(&ctx.pkg(&["doctor", "--json"]).failure());
    assert!(
        doctor["problems"][0]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("PATH")),
        "{doctor}"
    );
}

/// Runs `script` in `shell` with the test's environment and PKG_PREFIX, PATH without the prefix.
fn in_shell(ctx: &TestContext, shell: &str, script: &str) -> String {
    let pkg_dir = std::path::Path::new(env!("CARGO_BIN_EXE_pkg"))
        .parent()
        .unwrap();
    let out = Command::new(shell)
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("HOME", &ctx.home)
        .env("PKG_PREFIX", &ctx.prefix)
        .env("PKG_CACHE", &ctx.cache)
        .env("PKG_FORMULAE", &ctx.formulae)
        .env("PATH", format!("{}:/usr/bin:/bin", pkg_dir.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shell} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn shellenv_puts_the_prefix_on_path_and_manpath_once_in_bash_zsh_and_fish() {
    let (_registry, ctx) = world();
    ctx.pkg(&["install", "hello"]).success();
    let bin = ctx.prefix.join("bin").display().to_string();
    let man = ctx.prefix.join("share/man").display().to_string();
    for shell in ["bash", "zsh"] {
        let out = in_shell(
            &ctx,
            shell,
            &format!(
                "eval \"$(pkg shellenv {shell})\"; eval \"$(pkg shellenv {shell})\"; hello; echo \"$PATH\"; echo \"$MANPATH\"; man -w hello"
            ),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "hello 1.0.0", "{shell}: {out}");
        assert_eq!(lines[1].matches(&bin).count(), 1, "{shell}: {out}");
        assert!(lines[1].starts_with(&bin), "{shell}: {out}");
        assert_eq!(lines[2], format!("{man}:"), "{shell}: {out}");
        let page = ctx.prefix.display().to_string();
        assert!(
            lines[3].starts_with(&page) && lines[3].ends_with("man1/hello.1"),
            "{shell}: man -w found {out}"
        );
    }
    let out = in_shell(
        &ctx,
        "fish",
        "pkg shellenv fish | source; pkg shellenv fish | source; hello; echo $PATH; echo \"$MANPATH\"; man -w hello",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello 1.0.0", "fish: {out}");
    assert_eq!(lines[1].matches(&bin).count(), 1, "fish: {out}");
    assert_eq!(lines[2], format!("{man}:"), "fish: {out}");
    assert!(
        lines[3].ends_with("man1/hello.1"),
        "fish: man -w found {out}"
    );
    // Without a shell named, $SHELL decides.
    let mut cmd = ctx.command(&["shellenv"]);
    cmd.env("SHELL", "/usr/bin/fish");
    let out = cmd.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("set --global --export PATH"));
}

#[test]
fn completions_offer_installed_and_available_package_names_in_a_real_bash() {
    let (_registry, ctx) = world();
    ctx.pkg(&["install", "hello"]).success();
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let script = format!(
            "source <(pkg completions bash); COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _clap_complete_pkg pkg '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        in_shell(&ctx, "bash", &script)
            .lines()
            .filter(|l| !l.starts_with('-'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        complete("pkg uninstall "),
        ["hello"],
        "installed names only"
    );
    let install = complete("pkg install ");
    for name in ["app", "hello", "lib"] {
        assert!(
            install.iter().any(|n| n == name),
            "{name} not offered: {install:?}"
        );
    }
    assert_eq!(complete("pkg install ap"), ["app"]);
    // Commands complete as well.
    assert!(complete("pkg rei").iter().any(|c| c == "reinstall"));
}

#[test]
fn offline_installs_from_a_warm_cache_without_the_network_and_names_what_is_missing() {
    let (mut registry, ctx) = world();
    ctx.pkg(&["fetch", "hello"]).success();
    let host = registry.host();
    registry.stop();
    let mut fresh = ctx.sharing_cache();
    // A registry that is down costs retries and a warning; offline it is never asked.
    fresh.env("PKG_RETRIES", "3");
    let run = fresh.pkg(&["--offline", "install", "hello"]).success();
    assert!(
        !run.stderr.contains("could not reach"),
        "{}",
        run.describe()
    );
    assert_eq!(crate::faults::run_bin(&fresh, "hello"), "hello 1.0.0");

    let before = fresh.prefix_listing();
    fresh
        .pkg(&["install", "--offline", "app"])
        .failure()
        .says(&format!(
            "the manifest 1.0.0 of {host}/acme/lib is not in the cache"
        ));
    assert_eq!(
        fresh.prefix_listing(),
        before,
        "a failed offline install left something"
    );
    fresh.env("PKG_OFFLINE", "1");
    fresh.pkg(&["install", "lib"]).failure().says("--offline");
    fresh.pkg(&["update"]).failure_with(2).says("--offline");
    fresh.env("PKG_OFFLINE", "maybe");
    fresh.pkg(&["list"]).failure_with(2).says("PKG_OFFLINE");
}
