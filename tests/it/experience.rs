//! The terminal experience: completions, man page, progress only on a terminal, colours,
//! `--verbose`, the config file's precedence and `pkg doctor`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::token::{PASSWORD, USERNAME};
use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

const PKG: &str = env!("CARGO_BIN_EXE_pkg");

/// Runs pkg with exactly the given environment (plus HOME), for tests about where settings come from.
fn pkg_env(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(PKG);
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pkg")
}

fn hello(registry: &Registry, ctx: &TestContext) {
    registry.push(
        "acme/hello",
        "1.0.0",
        &Fixture::Image(ImageSpec::new("linux", "amd64").file(
            "bin/hello",
            "#!/bin/sh\necho hello\n",
            0o755,
        )),
    );
    ctx.write_formula(
        "hello",
        &Formula::new("hello")
            .version("1.0.0", &format!("{}/acme/hello", registry.host()), "1.0.0")
            .to_toml(),
    );
}

#[test]
fn completions_and_man_page_generate_from_the_cli_definitions() {
    let ctx = TestContext::new();
    for shell in ["bash", "zsh", "fish"] {
        // The script asks pkg itself (everyday.rs completes in a real bash).
        let run = ctx.pkg(&["completions", shell]).success();
        assert!(
            run.stdout.contains("PKG_COMPLETE") && run.stdout.contains("pkg"),
            "{shell}:\n{}",
            run.stdout
        );
    }
    let man = ctx.pkg(&["manpage"]).success();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH pkg 1"),
        "{}",
        man.stdout
    );
    assert!(man.stdout.contains("install"));
    ctx.pkg(&["completions", "tcsh-ish"]).failure_with(2);
}

/// Whether `text` holds an SGR (colour) escape sequence, `ESC [ digits/; m`. Cursor movement
/// and line clearing of a progress bar are escape sequences too, but not colour.
fn has_colour(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|rest| {
        let params = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
        params.starts_with('m')
    })
}

/// The lines of `stderr` that mention `text`.
fn lines_with<'a>(stderr: &'a str, text: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(text)).collect()
}

/// Every command at any depth, as `pkg tap add`, from the same definitions pkg is built from.
fn every_command() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = format!("{prefix} {}", sub.get_name());
            out.push((name.clone(), sub.clone()));
            walk(&name, sub, out);
        }
    }
    let mut out = Vec::new();
    walk(
        "pkg",
        &<pkg::cli::Cli as clap::CommandFactory>::command(),
        &mut out,
    );
    out
}

#[test]
fn the_man_page_is_complete_every_command_with_its_options_and_examples() {
    let ctx = TestContext::new();
    let page = ctx.pkg(&["manpage"]).success().stdout;
    assert_eq!(page.matches(".TH ").count(), 1, "one page:\n{page}");
    // No references to pages that are not generated.
    assert!(!page.contains("pkg-install(1)"), "{page}");
    assert!(!page.contains("SUBCOMMANDS"), "{page}");
    for section in ["SYNOPSIS", "OPTIONS", "COMMANDS", "EXAMPLES", "ENVIRONMENT"] {
        assert!(
            page.contains(&format!(".SH {section}\n")),
            "no {section}:\n{page}"
        );
    }
    // Each command's entry, up to the next, has its usage and an examples block.
    let commands = every_command();
    assert!(commands.iter().any(|(n, _)| n == "pkg tap remove"));
    for (name, cmd) in &commands {
        let heading = format!(".SS \"{name}\"\n");
        let start = page
            .find(&heading)
            .unwrap_or_else(|| panic!("the man page has no entry for {name}:\n{page}"));
        let entry = &page[start + heading.len()..];
        let entry = &entry[..entry
            .find(".SS ")
            .or(entry.find(".SH "))
            .unwrap_or(entry.len())];
        assert!(
            entry.contains("Examples:") && entry.contains("\n.nf\n"),
            "{name}: no examples:\n{entry}"
        );
        let example = name.replace('-', "\\-");
        assert!(
            entry.contains(&example),
            "{name}: no example runs it:\n{entry}"
        );
        // Its own options are described there (the global ones are in OPTIONS).
        // Hidden flags (other tools' habits, answered with what to use) are not documented.
        for arg in cmd
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set())
        {
            if let Some(long) = arg.get_long() {
                assert!(
                    entry.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "{name}: --{long} is missing:\n{entry}"
                );
            }
        }
    }
    // The page renders without complaints from man(1) where man is installed.
    let file = ctx.home.join("pkg.1");
    std::fs::write(&file, &page).unwrap();
    if let Ok(out) = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&file)
        .env("MANWIDTH", "100")
        .env("LANG", "C")
        .stdin(Stdio::null())
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "man warns");
        assert!(text.contains("pkg tap add acme https://github.com/acme/pkg-formulae.git"));
        assert!(text.contains("PKG_JOBS"));
    }
}

#[test]
fn progress_and_colours_are_absent_when_stderr_is_not_a_terminal() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    let run = ctx.pkg(&["install", "hello"]).success();
    assert!(
        !run.stderr.contains('\r'),
        "carriage returns of a bar:\n{:?}",
        run.stderr
    );
    assert!(!run.stderr.contains("eta"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("\x1b["),
        "colour codes:\n{:?}",
        run.stderr
    );
    // The status lines are printed by pkg itself off a terminal (a bar's println would drop them).
    assert!(run.stderr.contains("Installed"), "{}", run.stderr);
    assert!(run.stderr.contains("Finished"), "{}", run.stderr);
}

#[test]
fn color_always_colours_status_and_warning_lines_and_never_none() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);

    // --color always: colour even into a pipe, but no bar (that is decided by the terminal alone).
    let run = ctx
        .pkg(&["--color", "always", "install", "hello"])
        .success();
    for action in ["Fetching", "Installed", "Finished"] {
        let lines = lines_with(&run.stderr, action);
        assert!(!lines.is_empty(), "no {action} line:\n{}", run.stderr);
        for line in lines {
            assert!(
                line.starts_with("\x1b[1;32m") && line.contains(&format!("{action}\x1b[0m ")),
                "{action} is not in bold green:\n{line:?}"
            );
        }
    }
    // The PATH caveat is a warning: bold yellow.
    let warnings = lines_with(&run.stderr, "warning:");
    assert!(!warnings.is_empty(), "no PATH caveat:\n{}", run.stderr);
    assert!(
        warnings
            .iter()
            .all(|l| l.starts_with("\x1b[1;33mwarning:\x1b[0m ")),
        "{warnings:?}"
    );
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains("eta"),
        "a bar off a terminal:\n{:?}",
        run.stderr
    );

    for args in [
        &["--color", "never", "uninstall", "hello"][..],
        &["--color", "never", "install", "hello"],
    ] {
        let run = ctx.pkg(args).success();
        assert!(!run.stderr.is_empty(), "{args:?} said nothing");
        assert!(!has_colour(&run.stderr), "{args:?}:\n{:?}", run.stderr);
    }
    // An error under --color always: the message is still plain text after its prefix.
    let run = ctx.pkg(&["--color", "always", "info", "nothere"]).failure();
    assert!(run.stderr.contains("nothere"), "{}", run.stderr);
}

#[test]
fn quiet_prints_errors_only_not_status_lines_or_warnings() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    // PREFIX/bin is not on the PATH pkg runs with, so a normal install warns about it.
    let loud = ctx.pkg(&["install", "hello"]).success();
    assert!(
        loud.stderr.contains("is not on your PATH"),
        "{}",
        loud.stderr
    );
    ctx.pkg(&["uninstall", "hello"]).success();

    let quiet = ctx.pkg(&["-q", "install", "hello"]).success();
    assert_eq!(quiet.stderr, "", "-q printed more than errors");
    assert_eq!(ctx.cellar_versions("hello"), ["1.0.0"]);
    let quiet = ctx.pkg(&["--quiet", "uninstall", "hello"]).success();
    assert_eq!(quiet.stderr, "");
    // Errors still print.
    let failed = ctx.pkg(&["-q", "info", "nothere"]).failure();
    assert!(
        failed.stderr.starts_with("error:") && failed.stderr.contains("nothere"),
        "{}",
        failed.stderr
    );
    // So do the causes when several packages of one command fail.
    for name in ["gone1", "gone2"] {
        ctx.write_formula(
            name,
            &Formula::new(name)
                .version(
                    "1.0.0",
                    &format!("{}/acme/{name}", registry.host()),
                    "1.0.0",
                )
                .to_toml(),
        );
    }
    let failed = ctx.pkg(&["-q", "install", "gone1", "gone2"]).failure();
    for name in ["gone1", "gone2"] {
        assert!(
            failed
                .stderr
                .contains(&format!("error: installing {name} 1.0.0 failed")),
            "the cause for {name} is missing under -q:\n{}",
            failed.stderr
        );
    }
}

/// Runs `pkg ARGS…` (with the context's environment plus `env`) on a pseudo-terminal made by
/// util-linux `script`; returns the exit code and everything pkg wrote to the terminal.
fn pkg_on_tty(ctx: &TestContext, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let inner = ctx.command(args);
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(PKG);
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .env("SHELL", "/bin/sh")
        .env("TERM", "xterm")
        .current_dir(&ctx.home)
        .stdin(Stdio::null());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("run util-linux `script` (the tty tests need it)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A package big enough (random, so it does not compress) for its download to draw a bar.
fn big(registry: &Registry, ctx: &TestContext) {
    let mut data = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    registry.push(
        "acme/big",
        "1.0.0",
        &Fixture::Image(
            ImageSpec::new("linux", "amd64")
                .file("bin/big", "#!/bin/sh\necho big\n", 0o755)
                .file("share/big/data", data, 0o644),
        ),
    );
    ctx.write_formula(
        "big",
        &Formula::new("big")
            .version("1.0.0", &format!("{}/acme/big", registry.host()), "1.0.0")
            .to_toml(),
    );
}

#[test]
fn on_a_terminal_a_bar_is_drawn_and_follows_the_colour_choice() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    big(&registry, &ctx);

    let (code, auto) = pkg_on_tty(&ctx, &[], &["install", "big"]);
    assert_eq!(code, Some(0), "{auto}");
    assert!(
        auto.contains(" eta "),
        "no progress bar on a terminal:\n{auto:?}"
    );
    assert!(has_colour(&auto), "no colour on a terminal:\n{auto:?}");
    assert!(
        auto.contains("\x1b[36m") || auto.contains("\x1b[1m\x1b[36m"),
        "the bar's label is not cyan:\n{auto:?}"
    );

    for (env, args) in [
        (&[("NO_COLOR", "1")][..], &["install", "big"][..]),
        (&[], &["--color", "never", "install", "big"]),
    ] {
        ctx.pkg(&["uninstall", "big"]).success();
        let (code, out) = pkg_on_tty(&ctx, env, args);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(" eta "), "{env:?} {args:?}: no bar:\n{out:?}");
        assert!(
            !has_colour(&out),
            "{env:?} {args:?}: colour on the terminal:\n{out:?}"
        );
    }

    // --quiet: no bar on a terminal either.
    ctx.pkg(&["uninstall", "big"]).success();
    let (code, out) = pkg_on_tty(&ctx, &[], &["--quiet", "install", "big"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "", "--quiet on a terminal");

    // `pkg fetch` shows its download too (a fresh cache, so there is something to fetch).
    let fresh = TestContext::new();
    big(&registry, &fresh);
    let (code, out) = pkg_on_tty(&fresh, &[], &["fetch", "big"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(" eta "), "no bar for pkg fetch:\n{out:?}");
    assert!(out.contains("Fetched"), "{out:?}");
}

#[test]
fn verbose_logs_requests_without_secrets() {
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.with_credentials();
    let run = ctx.pkg(&["--verbose", "install", "hello"]).success();
    assert!(run.stderr.contains("debug: GET"), "{}", run.stderr);
    assert!(
        run.stderr.contains("manifests/1.0.0 -> 200"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("with credentials"), "{}", run.stderr);
    let all = run.output();
    assert!(!all.contains(PASSWORD), "the password leaked:\n{all}");
    assert!(
        !all.contains("Bearer") && !all.contains("Basic "),
        "an Authorization value leaked:\n{all}"
    );
    assert!(!all.contains(USERNAME) || !all.contains(PASSWORD));
}

fn config_json(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["config", "--json"]);
    let out = pkg_env(home, env, &full);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("config --json")
}

#[test]
fn config_precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let file = home.join("pkg.toml");
    std::fs::write(
        &file,
        "# my settings\nprefix = \"/from/file\"\njobs = 3\nretries = 2\n[mirrors]\n\"ghcr.io\" = \"http://127.0.0.1:5999\"\n",
    )
    .unwrap();
    let file_env = ("PKG_CONFIG", file.to_str().unwrap());

    let c = config_json(home, &[], &[]);
    assert_eq!(c["settings"]["prefix"]["source"], "default");
    assert_eq!(c["settings"]["jobs"]["source"], "default");
    assert!(c.get("config_file").is_none(), "{c}");

    let c = config_json(home, &[file_env], &[]);
    assert_eq!(c["config_file"], file.to_str().unwrap());
    assert_eq!(c["settings"]["prefix"]["value"], "/from/file");
    assert_eq!(c["settings"]["prefix"]["source"], "file");
    assert_eq!(c["settings"]["jobs"]["value"], 3);
    assert_eq!(c["settings"]["retries"]["value"], 2);
    assert_eq!(c["settings"]["connect_timeout"]["value"], 30);
    assert_eq!(
        c["settings"]["mirrors"]["value"],
        serde_json::json!(["ghcr.io=http://127.0.0.1:5999"])
    );
    assert_eq!(
        c["mirror_chains"],
        serde_json::json!(["ghcr.io → http://127.0.0.1:5999, then https://ghcr.io"])
    );

    let c = config_json(
        home,
        &[file_env, ("PKG_PREFIX", "/from/env"), ("PKG_JOBS", "5")],
        &[],
    );
    assert_eq!(c["settings"]["prefix"]["value"], "/from/env");
    assert_eq!(c["settings"]["prefix"]["source"], "env");
    assert_eq!(c["settings"]["jobs"]["value"], 5);

    let c = config_json(
        home,
        &[file_env, ("PKG_PREFIX", "/from/env")],
        &["--prefix", "/from/flag", "--jobs", "7"],
    );
    assert_eq!(c["settings"]["prefix"]["value"], "/from/flag");
    assert_eq!(c["settings"]["prefix"]["source"], "flag");
    assert_eq!(c["settings"]["jobs"]["value"], 7);
    assert_eq!(c["settings"]["retries"]["source"], "file");

    // A bad config file is an error that names the file, line and key.
    std::fs::write(&file, "prefix = \"/x\"\ncolour = \"red\"\n").unwrap();
    let out = pkg_env(home, &[file_env], &["config"]);
    assert_eq!(out.status.code(), Some(2), "bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pkg.toml") && err.contains("line 2") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn doctor_finds_each_planted_problem_and_then_none() {
    let mut registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.pkg(&["install", "hello"]).success();
    let bin = ctx.prefix.join("bin");
    let path_with_bin = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let doctor = |path: &str| {
        let out = Command::new(PKG)
            .arg("doctor")
            .env_clear()
            .env("PATH", path)
            .env("HOME", &ctx.home)
            .env("PKG_PREFIX", &ctx.prefix)
            .env("PKG_CACHE", &ctx.cache)
            .env("PKG_FORMULAE", &ctx.formulae)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = doctor(&path_with_bin);
    assert_eq!((code, out.as_str()), (Some(0), "No problems found.\n"));
    let three_hours_old = |path: &Path| {
        assert!(
            Command::new("touch")
                .args(["-d", "3 hours ago"])
                .arg(path)
                .status()
                .unwrap()
                .success()
        )
    };

    // A partial download an interrupted run left, however old, is resumable: a note, no problem.
    let tmp = ctx.cache.join("v1/tmp");
    let partial = tmp.join(format!(
        "sha256-{}.partial",
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    ));
    std::fs::write(&partial, b"01234").unwrap();
    three_hours_old(&partial);
    let note = format!(
        "Note: 1 partial download(s) (5 B) in {}, kept for the next run that wants them to resume; `pkg cleanup` drops them\n",
        tmp.display()
    );
    let (code, out) = doctor(&path_with_bin);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), format!("{note}No problems found.\n").as_str())
    );

    // Plant one of each.
    std::os::unix::fs::symlink("../Cellar/gone/1.0.0/bin/gone", bin.join("gone")).unwrap();
    std::fs::create_dir_all(ctx.prefix.join("Cellar/ghost/0.1.0")).unwrap();
    std::fs::create_dir_all(ctx.prefix.join("Cellar/.staging/keg-leftover")).unwrap();
    // A dead run's temporary file, and a young one (a run may still be writing it).
    let dead = tmp.join(".tmpDEAD01");
    std::fs::write(&dead, b"x").unwrap();
    three_hours_old(&dead);
    std::fs::write(tmp.join(".tmpYOUNG1"), b"x").unwrap();
    registry.stop();

    let (code, out) = doctor(&std::env::var("PATH").unwrap_or_default());
    assert_eq!(code, Some(1), "{out}");
    let found = findings(&out);
    for (expected, fix) in [
        ("is not on your PATH", "export PATH="),
        ("bin/gone is a broken link", "rm "),
        (
            "Cellar/ghost/0.1.0 has no receipt",
            "pkg uninstall --force ghost",
        ),
        ("leftovers of an interrupted run", "pkg cleanup"),
        ("1 temporary file(s) of runs that died", "pkg cleanup"),
        ("is unreachable", "PKG_REGISTRY_MIRRORS"),
    ] {
        assert!(fix_for(&found, expected).contains(fix), "{found:#?}");
    }
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(out.starts_with(&note), "{out}");
}

/// doctor reads what the receipts know: a keg file changed (same size, new bytes and mtime) and
/// another deleted are problems naming them, with `pkg reinstall` as the fix (which mends them);
/// a file a program added is a note; a dependency removed with `--ignore-dependencies` is a
/// problem (`brew missing`); and `--offline` skips the registries with a note, not a failure.
#[test]
fn doctor_finds_changed_and_missing_keg_files_and_missing_dependencies_and_runs_offline() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    let image = |name: &str| {
        ImageSpec::new("linux", "amd64")
            .file(
                &format!("bin/{name}"),
                format!("#!/bin/sh\necho {name}\n"),
                0o755,
            )
            .file(&format!("share/{name}/data"), "some data\n", 0o644)
            .file(&format!("share/{name}/notes"), "notes\n", 0o644)
    };
    for name in ["app", "lib"] {
        registry.push(
            &format!("acme/{name}"),
            "1.0.0",
            &Fixture::Image(image(name)),
        );
    }
    let repo = |name: &str| format!("{}/acme/{name}", registry.host());
    ctx.write_formula(
        "lib",
        &Formula::new("lib")
            .version("1.0.0", &repo("lib"), "1.0.0")
            .to_toml(),
    );
    ctx.write_formula(
        "app",
        &Formula::new("app")
            .version_with("1.0.0", &repo("app"), "1.0.0", None, &[("lib", "^1")])
            .to_toml(),
    );
    ctx.pkg(&["install", "app"]).success();
    let path = path_with(&ctx.prefix.join("bin"));
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!((code, out.as_str()), (0, "No problems found.\n"));

    // Same size, other bytes (an editor's save moves the mtime); one file gone; one added.
    let keg = ctx.keg("app", "1.0.0");
    std::fs::write(keg.join("share/app/data"), "SOME DATA\n").unwrap();
    std::fs::remove_file(keg.join("share/app/notes")).unwrap();
    std::fs::write(keg.join("share/app/cache.pyc"), "x").unwrap();
    ctx.pkg(&["uninstall", "--ignore-dependencies", "lib"])
        .success();

    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!(code, 1, "{out}");
    let found = findings(&out);
    assert!(
        fix_for(
            &found,
            "app 1.0.0: 1 file changed (share/app/data), 1 missing (share/app/notes) since it was installed"
        )
        .contains("pkg reinstall app"),
        "{found:#?}"
    );
    assert!(
        fix_for(
            &found,
            "app 1.0.0 needs lib (it was installed with lib 1.0.0), which is not installed"
        )
        .contains("pkg install lib"),
        "{found:#?}"
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        out.contains(
            "Note: app 1.0.0 holds 1 entry it was not installed with (share/app/cache.pyc)"
        ),
        "{out}"
    );

    // Offline: the registry is not asked, and that is a note, not a problem.
    ctx.pkg(&["install", "lib"]).success();
    ctx.pkg(&["reinstall", "app"]).success();
    let (code, out) = doctor(&ctx, &path, &[("PKG_OFFLINE", "1")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "--offline: 1 registry of installed packages not checked ({})",
            registry.host()
        )),
        "{out}"
    );
    assert!(out.ends_with("No problems found.\n"), "{out}");
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!((code, out.as_str()), (0, "No problems found.\n"));

    // The same size and the mtime put back (as `cp -p` or a careful tool leaves it): only the
    // receipt's CRC-32 of the bytes shows it. The receipt of a bottle relocated in place has
    // them right too (no false alarm above, after the reinstall).
    let data = ctx.keg("app", "1.0.0").join("share/app/data");
    crate::harness::rewrite_keeping_mtime(&data, b"some DATA\n");
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("app 1.0.0: 1 file changed (share/app/data)"),
        "{out}"
    );
    let stamp = &ctx.receipt("app", "1.0.0")["stamps"]["share/app/data"];
    assert!(stamp[3].is_u64(), "size, mtime, then the CRC-32: {stamp}");
}

/// A file whose name is not UTF-8 (Latin-1 `café`, as GNU tar stores the bytes) is recorded
/// under its lossy name with the CRC-32 of its bytes beside its UTF-8 neighbours', and the keg
/// is found sound.
#[test]
fn a_file_named_in_latin_1_gets_its_sum_in_the_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("share")).unwrap();
    let latin1 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9");
    std::fs::write(tree.join("share").join(latin1), "latin-1\n").unwrap();
    std::fs::write(tree.join("share/plain"), "utf-8\n").unwrap();
    let tar = tmp.path().join("layer.tar");
    let made = Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    let registry = Registry::start();
    registry.push(
        "acme/names",
        "1.0.0",
        &Fixture::Image(ImageSpec::new("linux", "amd64").raw_layer(
            std::fs::read(&tar).unwrap(),
            "application/vnd.oci.image.layer.v1.tar",
        )),
    );
    let ctx = TestContext::new();
    let repo = format!("{}/acme/names", registry.host());
    ctx.write_formula(
        "names",
        &Formula::new("names")
            .bin(&[])
            .version("1.0.0", &repo, "1.0.0")
            .to_toml(),
    );
    ctx.pkg(&["install", "names"]).success();
    let stamps = &ctx.receipt("names", "1.0.0")["stamps"];
    let crc = |bytes: &[u8]| Value::from(crc32fast::hash(bytes));
    assert_eq!(
        stamps["share/caf\u{fffd}"][3],
        crc(b"latin-1\n"),
        "{stamps}"
    );
    assert_eq!(stamps["share/plain"][3], crc(b"utf-8\n"), "{stamps}");
    let path = path_with(&ctx.prefix.join("bin"));
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!((code, out.as_str()), (0, "No problems found.\n"));
    // Through the store with hard links: one prefix stores the tree, the next links it (its
    // keg listed from the store's manifest, the sum found by the name's bytes).
    for _ in 0..2 {
        let other = ctx.sharing_cache();
        other
            .pkg(&["--link-mode", "hardlink", "install", "names"])
            .success();
        let stamps = &other.receipt("names", "1.0.0")["stamps"];
        assert_eq!(
            stamps["share/caf\u{fffd}"][3],
            crc(b"latin-1\n"),
            "{stamps}"
        );
        let path = path_with(&other.prefix.join("bin"));
        let (code, out) = doctor(&other, &path, &[]);
        assert!(
            code == 0 && out.ends_with("\nNo problems found.\n"),
            "{out}"
        );
    }
    // Its bytes changed with its size and mtime kept: found by the sum, read from the file
    // itself.
    let keg_file = ctx.keg("names", "1.0.0").join("share").join(latin1);
    crate::harness::rewrite_keeping_mtime(&keg_file, b"LATIN-1\n");
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 file changed (share/caf\u{fffd})"), "{out}");
}

/// `pkg doctor` with the context's settings, this PATH and `env` on top: exit code and stdout.
fn doctor(ctx: &TestContext, path: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = ctx.command(&["doctor"]);
    cmd.env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = TestContext::wait(cmd.spawn().expect("run pkg doctor"), &["doctor"]);
    (run.code, run.stdout)
}

/// Each `Problem:` line of doctor's report with the `Fix:` line that must follow it.
fn findings(out: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = out.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(problem) = line.strip_prefix("Problem: ") {
            let fix = lines
                .get(i + 1)
                .and_then(|l| l.strip_prefix("    Fix: "))
                .filter(|f| !f.trim().is_empty())
                .unwrap_or_else(|| panic!("no fix for {problem:?}:\n{out}"));
            found.push((problem.to_owned(), fix.to_owned()));
        }
    }
    assert_eq!(
        out.lines().last(),
        Some(format!("{} problem(s) found.", found.len()).as_str()),
        "{out}"
    );
    found
}

/// The fix for the one finding whose problem mentions `text`.
#[track_caller]
fn fix_for(found: &[(String, String)], text: &str) -> String {
    let matching: Vec<_> = found.iter().filter(|(p, _)| p.contains(text)).collect();
    assert_eq!(matching.len(), 1, "findings about {text:?}: {found:#?}");
    matching[0].1.clone()
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn doctor_finds_a_prefix_that_cannot_be_made_or_written() {
    let ctx = TestContext::new();
    // Tests may run as root, for whom every directory is writable: block the prefix with a
    // regular file instead, as the prefix itself and as a component of its path.
    let blocker = ctx.root().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    for (prefix, expected) in [
        (
            blocker.clone(),
            format!("the prefix {} is not a directory", blocker.display()),
        ),
        (
            blocker.join("deeper/prefix"),
            format!(
                "the prefix {} cannot be created: {} is not a directory",
                blocker.join("deeper/prefix").display(),
                blocker.display()
            ),
        ),
    ] {
        let (code, out) = doctor(
            &ctx,
            &path_with(&prefix.join("bin")),
            &[("PKG_PREFIX", prefix.to_str().unwrap())],
        );
        assert_eq!(code, 1, "{out}");
        let found = findings(&out);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].0, expected);
        assert!(found[0].1.contains("PKG_PREFIX"), "{found:#?}");
    }

    // Not root: a read-only prefix is found too.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(&ctx.prefix).unwrap();
        std::fs::set_permissions(&ctx.prefix, std::fs::Permissions::from_mode(0o555)).unwrap();
        let (code, out) = doctor(&ctx, &path_with(&ctx.prefix.join("bin")), &[]);
        std::fs::set_permissions(&ctx.prefix, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(code, 1, "{out}");
        assert!(fix_for(&findings(&out), "is not writable by you").contains("chown"));
    }
}

#[test]
fn doctor_finds_a_held_prefix_lock_and_refused_credentials() {
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.pkg(&["install", "hello"]).success();
    let path = path_with(&ctx.prefix.join("bin"));
    assert_eq!(doctor(&ctx, &path, &[]), (0, "No problems found.\n".into()));

    // Another process holds the prefix lock (an open file description of our own is one).
    let lock = std::fs::File::options()
        .write(true)
        .open(ctx.prefix.join("var/pkg/lock"))
        .expect("the prefix lock file");
    lock.lock().unwrap();
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!(code, 1, "{out}");
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(fix_for(&found, "the prefix lock is held").contains("wait for it"));
    lock.unlock().unwrap();
    drop(lock);
    assert_eq!(doctor(&ctx, &path, &[]).0, 0);

    // Credentials the registry's token service refuses, for the registry of an installed keg.
    ctx.credentials(USERNAME, "not-the-password");
    let (code, out) = doctor(&ctx, &path, &[]);
    assert_eq!(code, 1, "{out}");
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    let fix = fix_for(&found, &format!("registry {} refuses pkg", registry.host()));
    assert!(
        fix.contains("PKG_REGISTRY_PASSWORD") && fix.contains("pkg login"),
        "{fix}"
    );
    assert!(
        !out.contains("not-the-password"),
        "the password leaked:\n{out}"
    );
    ctx.with_credentials();
    assert_eq!(doctor(&ctx, &path, &[]).0, 0);
}

#[test]
fn on_a_terminal_bottle_shows_its_compression_and_its_upload() {
    let registry = Registry::start();
    let mut ctx = TestContext::new();
    ctx.with_credentials();
    let src = ctx.home.join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/big"), "#!/bin/sh\necho big\n").unwrap();
    let mut data = vec![0u8; 6 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(src.join("data"), data).unwrap();
    let target = format!("{}/acme/big:1.0.0", registry.host());
    let (code, out) = pkg_on_tty(
        &ctx,
        &[],
        &[
            "bottle",
            src.to_str().unwrap(),
            "--name",
            "big",
            "--version",
            "1.0.0",
            "--push",
            &target,
            "--chunk-threshold",
            "1MiB",
            "--chunk-size",
            "1MiB",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Compressing"),
        "no bar while compressing:\n{out:?}"
    );
    assert!(
        out.matches(" eta ").count() >= 2,
        "no bar for the upload:\n{out:?}"
    );
}

/// Bad input exits 2 with a message that says what was wrong and what to do (issue 31, item 2,
/// in part): a config file PKG_CONFIG names that does not exist (it was ignored, exit 0); a
/// prefix that is a file (exit 1, "failed to create directory … Not a directory"); a platform
/// that is not one (exit 1); a Pkgfile that is not there (exit 1, a bare "No such file"). And
/// `pkg tap` alone lists the taps (it was a usage error).
#[test]
fn bad_input_named_by_the_user_exits_2_saying_what_to_do() {
    let mut ctx = TestContext::new();
    let missing = ctx.home.join("missing.toml");
    ctx.env("PKG_CONFIG", missing.to_str().unwrap());
    ctx.pkg(&["list"])
        .failure_with(2)
        .says("PKG_CONFIG names this file, and there is none");

    let ctx = TestContext::new();
    let file = ctx.home.join("a-file");
    std::fs::write(&file, "x").unwrap();
    ctx.pkg(&["--prefix", file.to_str().unwrap(), "pin", "hello"])
        .failure_with(2)
        .says("is not a directory; choose another prefix");

    let src = ctx.home.join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/x"), "x").unwrap();
    ctx.pkg(&[
        "bottle",
        src.to_str().unwrap(),
        "--name",
        "x",
        "--version",
        "1.0.0",
        "--platform",
        "windoze",
    ])
    .failure_with(2)
    .says("invalid platform `windoze`");

    let nothere = ctx.home.join("nothere");
    ctx.pkg(&["bundle", "install", "--file", nothere.to_str().unwrap()])
        .failure_with(2)
        .says("no Pkgfile at")
        .says("pkg bundle dump > Pkgfile");

    // Other tools' habits get what to use instead (clap suggested `-- --force`).
    ctx.pkg(&["install", "--force", "hello"])
        .failure_with(2)
        .says("pkg reinstall NAME");
    ctx.pkg(&["upgrade", "-y"])
        .failure_with(2)
        .says("asks nothing");

    let formulae = ctx.home.join("my-formulae");
    std::fs::create_dir_all(&formulae).unwrap();
    ctx.pkg(&["tap", "add", "mine", formulae.to_str().unwrap()])
        .success();
    let listed = ctx.pkg(&["tap"]).success();
    assert!(
        listed.stdout.starts_with("mine\tdir\t"),
        "{}",
        listed.stdout
    );
}

/// Scripts and people get the same answers (issue 31, in part): `search --json` that finds
/// nothing exits 1 as the text does (it exited 0), with its document; `list NAME --json` is a
/// document (it printed plain paths); `pkg prefix [NAME]` prints the prefix or `PREFIX/opt/NAME`;
/// a package installed by digest is shown as `REPO@sha256:…` (it was `REPO:sha256:…`).
#[test]
fn json_exit_codes_prefix_and_digest_references_say_the_same_thing_everywhere() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.pkg(&["install", "hello"]).success();

    // A dry run of what is there says so, not "installed hello 1.0.0" as if it had installed it.
    let dry = ctx.pkg(&["install", "--dry-run", "hello"]).success();
    assert_eq!(dry.stdout, "already installed hello 1.0.0\n");

    let none = ctx.pkg(&["search", "--json", "zzz"]).failure();
    let doc: Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["formulae"], serde_json::json!([]));
    ctx.pkg(&["search", "zzz"]).failure();

    let files: Value =
        serde_json::from_str(&ctx.pkg(&["list", "hello", "--json"]).success().stdout).unwrap();
    assert_eq!(files["schema"], 1);
    assert_eq!(files["packages"][0]["name"], "hello");
    assert_eq!(files["packages"][0]["version"], "1.0.0");
    assert!(
        files["packages"][0]["files"][0]
            .as_str()
            .unwrap()
            .ends_with("bin/hello"),
        "{files}"
    );

    assert_eq!(
        ctx.pkg(&["prefix"]).success().stdout.trim_end(),
        ctx.prefix.display().to_string()
    );
    assert_eq!(
        ctx.pkg(&["prefix", "hello"]).success().stdout.trim_end(),
        ctx.prefix.join("opt/hello").display().to_string()
    );
    ctx.pkg(&["prefix", "nothere"]).failure();

    let digest = ctx.receipt("hello", "1.0.0")["manifest_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_digest = format!("{}/acme/hello@{digest}", registry.host());
    ctx.pkg(&["uninstall", "hello"]).success();
    let run = ctx
        .pkg(&["install", "--as", "pinned", &by_digest])
        .success();
    run.says(&by_digest);
    ctx.pkg(&["info", "pinned"]).success().says(&by_digest);
}

/// Verbs on installed packages suggest the installed name a typo meant (issue 31, item 3, in
/// part), and the final `error:` is coloured as `warning:` is (with `--color always`).
#[test]
fn verbs_on_installed_packages_suggest_the_name_meant() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.pkg(&["install", "hello"]).success();
    for verb in [
        &["pin", "helo"][..],
        &["link", "helo"],
        &["reinstall", "helo"],
        &["outdated", "helo"],
    ] {
        let run = ctx.pkg(verb);
        assert_ne!(run.code, 0, "{verb:?}");
        run.says("did you mean `hello`?");
    }
    let run = ctx.pkg(&["uninstall", "helo"]);
    run.says("(did you mean `hello`?)");
    let run = ctx.pkg(&["--color", "always", "pin", "helo"]);
    assert!(
        run.stderr.starts_with("\u{1b}[1;31merror:\u{1b}[0m"),
        "{:?}",
        run.stderr
    );
}

/// A layout written by `pkg bottle`, or by `skopeo copy … oci:DIR:TAG`, installs without a
/// formula (issue 31, the first hour): by its directory, or as `oci:DIR[:TAG]` (skopeo's syntax).
/// Before: "the registry host may only use letters…" and "`pkg bottle` it first".
#[test]
fn an_oci_layout_on_disk_installs_by_its_path_or_as_oci_dir_tag() {
    let ctx = TestContext::new();
    let src = ctx.home.join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/tool"), "#!/bin/sh\necho tool 1.0.0\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = ctx.home.join("tool-1.0.0.oci");
    ctx.pkg(&[
        "bottle",
        src.to_str().unwrap(),
        "--name",
        "tool",
        "--version",
        "1.0.0",
        "--output",
        layout.to_str().unwrap(),
    ])
    .success();
    ctx.pkg(&["install", layout.to_str().unwrap()]).success();
    assert_eq!(crate::faults::run_bin(&ctx, "tool"), "tool 1.0.0");
    assert_eq!(ctx.cellar_versions("tool"), ["1.0.0"]);
    ctx.pkg(&["uninstall", "tool"]).success();

    // skopeo's own syntax, for a layout skopeo wrote from a registry.
    let registry = Registry::start();
    hello(&registry, &ctx);
    let copied = ctx.home.join("copied");
    let status = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/acme/hello:1.0.0", registry.host()),
            &format!("oci:{}:1.0.0", copied.display()),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    ctx.pkg(&[
        "install",
        "--as",
        "copied",
        &format!("oci:{}:1.0.0", copied.display()),
    ])
    .success();
    assert_eq!(ctx.cellar_versions("copied"), ["1.0.0"]);
    ctx.pkg(&["install", &format!("oci:{}:9.9.9", copied.display())])
        .failure();
    // A tag that is not one, or a directory that is no layout: bad input, nothing recorded.
    ctx.pkg(&["install", &format!("oci:{}:1.0.0\"", copied.display())])
        .failure_with(2)
        .says("is not a valid tag");
    ctx.pkg(&["install", &format!("oci:{}", src.display())])
        .failure_with(2)
        .says("is not an OCI image layout");
    assert!(
        !ctx.prefix
            .join("var/pkg/references/copied-1.0.0.toml")
            .exists()
    );
}

/// One JSON contract (issue 31, item 1): every verb that takes `--json` prints exactly one
/// document with `schema` on stdout, on success and on failure, and exits as its text mode
/// does; a failure with no document of the verb's own is `{"schema", "error": {"kind",
/// "message", "causes", "exit_code"}}`. `info` has one shape for any number of names.
#[test]
fn every_json_verb_prints_one_document_on_success_and_on_failure() {
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.pkg(&["install", "hello"]).success();
    let document = |run: &crate::harness::Run| -> Value {
        let doc: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", run.describe()));
        assert_eq!(doc["schema"], 1, "{}", run.describe());
        if let Some(error) = doc.get("error") {
            assert_eq!(error["exit_code"], run.code, "{}", run.describe());
            let kind = if run.code == 2 {
                "bad_input"
            } else {
                "failure"
            };
            assert_eq!(error["kind"], kind, "{}", run.describe());
            assert!(
                !error["message"].as_str().unwrap_or_default().is_empty(),
                "{}",
                run.describe()
            );
            assert!(error["causes"].is_array(), "{}", run.describe());
        }
        doc
    };
    // Each verb's document, held to its shape: exactly these top-level fields.
    let plan = &[
        "schema",
        "dry_run",
        "moved",
        "upgraded",
        "up_to_date",
        "unchanged",
        "not_upgraded",
        "pinned",
        "held_back",
        "skipped",
        "failed",
    ][..];
    let successes: &[(&[&str], &[&str])] = &[
        (&["install", "hello", "--json"], plan),
        (&["upgrade", "--json"], plan),
        (&["reinstall", "hello", "--json"], plan),
        (&["outdated", "--json"], &["schema", "outdated"]),
        (&["list", "--json"], &["schema", "packages"]),
        (&["list", "hello", "--json"], &["schema", "packages"]),
        (
            &["info", "hello", "--json"],
            &["schema", "packages", "errors"],
        ),
        (&["search", "hel", "--json"], &["schema", "formulae"]),
        (&["uses", "hello", "--json"], &["schema", "name", "used_by"]),
        (&["which", "hello", "--json"], &["schema", "commands"]),
        (
            &["deps", "hello", "--json"],
            &["schema", "name", "version", "dependencies"],
        ),
        (&["leaves", "--json"], &["schema", "leaves"]),
        (
            &["config", "--json"],
            &["schema", "settings", "credentials_for", "mirror_chains"],
        ),
    ];
    for (args, fields) in successes {
        let run = ctx.pkg(args).success();
        let doc = document(&run);
        let mut got: Vec<&str> = doc
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        got.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{}", run.describe());
    }
    // (args, the exit code text mode gives)
    let failures: &[(&[&str], i32)] = &[
        (&["install", "helo", "--json"], 1),
        (&["install", "hello@9.9.9", "--json"], 1),
        (&["install", "Bad Name!", "--json"], 2),
        (&["upgrade", "helo", "--json"], 1),
        (&["outdated", "helo", "--json"], 1),
        (&["list", "helo", "--json"], 1),
        (&["info", "helo", "--json"], 1),
        (&["search", "zzz", "--json"], 1),
        (&["uses", "helo", "--json"], 1),
        (&["reinstall", "helo", "--json"], 1),
        (&["which", "nothere", "--json"], 1),
        (&["deps", "helo", "--json"], 1),
        (
            &[
                "bottle",
                "/nonexistent",
                "--name",
                "x",
                "--version",
                "1.0.0",
                "--json",
            ],
            2,
        ),
        (&["bottle", "/nonexistent", "--json"], 2),
        (&["install", "--json", "--frobnicate", "hello"], 2),
        (
            &["verify", "hello", "--key", "/nonexistent.pub", "--json"],
            2,
        ),
        (&["doctor", "--json"], 1),
    ];
    for (args, code) in failures {
        let text: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
        let text_run = ctx.pkg(&text);
        let run = ctx.pkg(args);
        assert_eq!(
            run.code,
            text_run.code,
            "{}\n{}",
            run.describe(),
            text_run.describe()
        );
        assert_eq!(run.code, *code, "{}", run.describe());
        document(&run);
    }
    let mut missing = TestContext::new();
    missing.env("PKG_CONFIG", "/nonexistent/pkg.toml");
    let run = missing.pkg(&["config", "--json"]);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert_eq!(document(&run)["error"]["kind"], "bad_input");

    // `info`: the same shape for one name, two, and a name not found among them.
    let one = document(&ctx.pkg(&["info", "hello", "--json"]).success());
    assert_eq!(one["packages"][0]["name"], "hello", "{one}");
    let two = ctx.pkg(&["info", "hello", "helo", "--json"]).failure();
    let two = document(&two);
    assert_eq!(two["packages"].as_array().map(Vec::len), Some(1), "{two}");
    assert_eq!(two["errors"][0]["name"], "helo", "{two}");
    let none = document(&ctx.pkg(&["info", "helo", "--json"]).failure());
    assert_eq!(none["packages"], serde_json::json!([]), "{none}");

    // `config --json`: proxies are an object, as the TLS roots are.
    let mut proxied = TestContext::new();
    proxied.env("https_proxy", "http://user:secret@proxy.example:3128");
    let config = document(&proxied.pkg(&["config", "--json"]).success());
    let proxies = &config["settings"]["proxies"]["value"];
    assert_eq!(
        proxies["https"]["url"], "http://***@proxy.example:3128/",
        "{proxies}"
    );
    assert_eq!(proxies["https"]["from"], "https_proxy", "{proxies}");
    assert!(proxies["http"].is_null(), "{proxies}");
    assert!(!config.to_string().contains("secret"), "{config}");
    assert!(config["settings"]["tls_roots"]["value"].is_object());
}

/// `pkg verify NAME` without a signer names every way to give one (issue 31).
#[test]
fn verify_without_a_signer_names_every_signer_option() {
    let ctx = TestContext::new();
    let run = ctx.pkg(&["verify", "anything"]).failure_with(2);
    for option in [
        "--certificate-identity",
        "--certificate-oidc-issuer",
        "--certificate-github-workflow-repository",
        "--key",
    ] {
        run.says(option);
    }
}

/// Progress bars fit the terminal (issue 31): in a 50-column and a 120-column pane (a real pty,
/// from util-linux's `script`), every line pkg draws while a throttled download runs fits the
/// width; the narrow pane drops the speed and ETA rather than wrap.
#[test]
fn progress_bars_fit_the_terminal_width() {
    let rig = crate::faults::Rig::start();
    let (os, arch) = crate::faults::host_platform();
    let noise: Vec<u8> = (0..600 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    rig.registry.push(
        "acme/slowpoke",
        "1.0.0",
        &Fixture::Image(ImageSpec::new(os, arch).file("share/slowpoke/blob", noise, 0o644)),
    );
    rig.reg().on(
        "GET",
        "/blobs/",
        crate::harness::proxy::Times::Always,
        crate::harness::proxy::Fault::Throttle(32 * 1024, std::time::Duration::from_millis(60)),
    );
    let repo = format!("{}/acme/slowpoke", rig.proxy.host());
    for (columns, at_most) in [(50usize, 50usize), (120, 120)] {
        let ctx = rig.ctx.sharing_cache();
        let _ = std::fs::remove_dir_all(ctx.cache.join("v1"));
        ctx.write_formula(
            "slowpoke",
            &Formula::new("slowpoke")
                .version("1.0.0", &repo, "1.0.0")
                .to_toml(),
        );
        let pkg = ctx.command(&["install", "slowpoke"]);
        let mut cmd = Command::new("script");
        cmd.args([
            "-qfec",
            &format!(
                "stty cols {columns} rows 24; exec '{}' install slowpoke",
                pkg.get_program().to_string_lossy()
            ),
            "/dev/null",
        ]);
        cmd.env_clear();
        for (k, v) in pkg.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.env("TERM", "xterm").stdin(Stdio::null());
        let out = cmd.output().expect("util-linux's script");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        // What the terminal shows: colours out; \r, \n and every other escape sequence (cursor
        // moves, line clears) start a new line.
        let mut shown = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            if c != 'm' {
                                shown.push('\n');
                            }
                            break;
                        }
                    }
                }
                continue;
            }
            shown.push(c);
        }
        // The terminal's rows: a run of text longer than the width wraps (a long status line
        // takes two rows, its padding included).
        let rows: Vec<String> = shown
            .split(['\r', '\n'])
            .flat_map(|line| {
                let chars: Vec<char> = line.chars().collect();
                chars
                    .chunks(at_most)
                    .map(|c| c.iter().collect::<String>())
                    .collect::<Vec<_>>()
            })
            .collect();
        // Each bar is whole on its row: it starts there and its last field ends there.
        let last = if columns >= 72 { "eta" } else { "%" };
        let bars: Vec<&String> = rows.iter().filter(|r| r.contains(" [")).collect();
        assert!(
            !bars.is_empty(),
            "no bar was drawn at {columns} columns:\n{shown}"
        );
        for row in &bars {
            assert!(
                row.contains(']') && row.contains(last),
                "a bar that does not fit {at_most} columns:\n{row:?}\n{shown}"
            );
        }
        if columns == 120 {
            assert!(bars.iter().any(|l| l.contains("eta")), "{shown}");
        }
    }
}

/// A Pkgfile typo says what is wrong in the user's words (issue 31), not "data did not match any
/// variant of untagged enum Entry": an unknown key names the keys there are, a value of the
/// wrong kind shows both shapes a package line may take. Exit 2, nothing written.
#[test]
fn a_pkgfile_typo_says_what_is_wrong() {
    let ctx = TestContext::new();
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    for (line, says) in [
        (
            "hello = { verion = \"1\" }",
            "unknown field `verion`, expected one of `version`, `link`, `platforms`",
        ),
        ("hello = 3", "a requirement like \"^1.2\""),
        (
            "hello = { version = \"1\", link = \"no\" }",
            "expected a boolean",
        ),
    ] {
        std::fs::write(&pkgfile, format!("[packages]\n{line}\n")).unwrap();
        let run = ctx
            .pkg(&["bundle", "lock", "--file", pkgfile.to_str().unwrap()])
            .failure_with(2);
        run.says(says);
        run.says("line 2");
        assert!(!run.output().contains("untagged"), "{}", run.describe());
        assert!(!project.join("Pkgfile.lock").exists());
    }
}

/// The files pkg writes into a prefix (a keg's receipt, a pin, the references a prefix keeps)
/// and a project's `Pkgfile.lock` are made as `File::create` makes a file, readable by the
/// prefix's other users under the usual umask: written through `tempfile`'s own 0o600, a
/// receipt other users could not read made `pkg info` tell them the package was not installed.
#[test]
fn files_pkg_writes_are_made_with_the_umasks_mode_not_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let umask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
        .unwrap();
    let want = 0o666 & !umask;
    let registry = Registry::start();
    let ctx = TestContext::new();
    hello(&registry, &ctx);
    ctx.pkg(&["install", "hello"]).success();
    ctx.pkg(&["pin", "hello"]).success();
    let project = ctx.home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let pkgfile = project.join("Pkgfile");
    std::fs::write(&pkgfile, "[packages]\nhello = \"*\"\n").unwrap();
    ctx.pkg(&["bundle", "lock", "--file", pkgfile.to_str().unwrap()])
        .success();
    let mut written = vec![
        ctx.keg("hello", "1.0.0").join(".pkg/receipt.json"),
        project.join("Pkgfile.lock"),
    ];
    let mut dirs = vec![ctx.prefix.join("var/pkg")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            match entry.file_type().unwrap() {
                t if t.is_dir() => dirs.push(entry.path()),
                t if t.is_file() => written.push(entry.path()),
                _ => {}
            }
        }
    }
    assert!(
        written
            .iter()
            .any(|p| p.starts_with(ctx.prefix.join("var/pkg/pinned"))),
        "{written:?}"
    );
    for file in &written {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, want, "{}: {mode:o}, not {want:o}", file.display());
    }
}
