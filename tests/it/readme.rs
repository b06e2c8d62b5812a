//! README.md runs as written (issue 31, the first hour): its Quick start session and the runnable
//! lines of its `sh` blocks are read from the file itself (not copied here) and run by the real
//! `pkg` in a fresh HOME with the default prefix, against the test registry standing in for
//! ghcr.io (the seed's own anakin layout, pushed byte-exact by skopeo), so the README cannot drift.

use std::path::Path;
use std::process::Command;

use crate::formats::push_seed_anakin;
use crate::harness::Registry;

const PKG: &str = env!("CARGO_BIN_EXE_pkg");

/// The fenced blocks of `lang` under the heading `## heading`.
fn blocks<'a>(readme: &'a str, heading: &str, lang: &str) -> Vec<Vec<&'a str>> {
    let Some(start) = readme.find(&format!("\n## {heading}\n")) else {
        panic!("README.md has no `## {heading}` section");
    };
    let section = &readme[start + 1..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, l) if l == format!("```{lang}") => current = Some(Vec::new()),
            (Some(_), "```") => out.extend(current.take()),
            (Some(lines), l) => lines.push(l),
            (None, _) => {}
        }
    }
    out
}

/// A shell in a fresh HOME whose only pkg settings are the mirror of ghcr.io (and the pkg
/// under test first on PATH): the default prefix and cache, as a new user has them.
struct Fresh {
    home: tempfile::TempDir,
    mirror: String,
}

impl Fresh {
    fn run(&self, script: &str) -> (i32, String) {
        let bin = Path::new(PKG).parent().unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("PKG_REGISTRY_MIRRORS", &self.mirror)
            .env("SHELL", "/bin/bash")
            .current_dir(self.home.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

fn seeded() -> (Registry, Fresh) {
    let registry = Registry::start();
    push_seed_anakin(&registry);
    let fresh = Fresh {
        home: tempfile::tempdir().unwrap(),
        mirror: format!("ghcr.io={}", registry.url()),
    };
    (registry, fresh)
}

/// What a line of output says, with what differs from machine to machine put in words: the
/// home directory as `~`, durations as `Ns`.
fn normalized(text: &str, home: &Path) -> Vec<String> {
    let home = home.display().to_string();
    text.lines()
        .map(|l| {
            let l = l.replace(&home, "~");
            let words: Vec<String> = l
                .split(' ')
                .map(|w| {
                    let bare = w.trim_end_matches(')');
                    match bare.strip_suffix('s').map(|n| n.parse::<f64>()) {
                        Some(Ok(_)) => format!("Ns{}", &w[bare.len()..]),
                        _ => w.to_owned(),
                    }
                })
                .collect();
            words.join(" ").trim_end().to_owned()
        })
        .collect()
}

#[test]
fn the_readmes_quick_start_session_runs_as_recorded() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let session = blocks(&readme, "Quick start", "console");
    assert_eq!(session.len(), 1, "one recorded session");
    let (_registry, fresh) = seeded();
    let mut steps: Vec<(String, Vec<&str>)> = Vec::new();
    for line in &session[0] {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_owned(), Vec::new())),
            None => steps
                .last_mut()
                .expect("output before a command")
                .1
                .push(line),
        }
    }
    assert!(steps.len() >= 3, "{steps:?}");
    for (command, want) in steps {
        let (code, got) = fresh.run(&command);
        assert_eq!(code, 0, "`{command}`:\n{got}");
        let got = normalized(&got, fresh.home.path());
        let want = normalized(&want.join("\n"), fresh.home.path());
        assert_eq!(
            got, want,
            "`{command}` does not print what README.md records"
        );
    }
}

#[test]
fn the_readmes_runnable_lines_run_on_a_fresh_machine() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (registry, fresh) = seeded();
    let mut ran = 0;
    // The first block of "Use it": the everyday verbs (the next one points at the pages on
    // publishing, projects and trust, whose tests run their examples).
    for block in blocks(&readme, "Use it", "sh").into_iter().take(1) {
        for line in block {
            let command = line.split("  #").next().unwrap_or(line).trim();
            // `hello`, `acme/…` and `tool` stand for the reader's own (README.md says so);
            // `a / b / c` lines list verbs; `…` is elided arguments; `pkg update` after a tap
            // add of a GitHub URL needs the internet.
            let placeholder = ["hello", "acme", "tool", " / ", "…", "homebrew/core"]
                .iter()
                .any(|p| command.contains(p));
            if command.is_empty() || placeholder {
                continue;
            }
            let (code, out) = fresh.run(command);
            // `pkg doctor` exits 1 on the PATH problem a fresh shell has (and says the fix).
            let doctor = command == "pkg doctor";
            assert!(
                code == 0 || (doctor && code == 1 && out.contains("is not on your PATH")),
                "`{command}` (from README.md) failed with {code}:\n{out}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 6, "only {ran} lines ran");
    // The man page went where `pkg shellenv` puts MANPATH: `man pkg` finds it after the eval.
    let (code, out) = fresh.run("eval \"$(pkg shellenv)\" && man -w pkg");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("share/man/man1/pkg.1"), "{out}");
    // The offline section's block, with this test's registry for the example port.
    for block in blocks(&readme, "Offline and local registries", "sh") {
        let script = block
            .join("\n")
            .replace("http://127.0.0.1:5000", &registry.url());
        let (code, out) = fresh.run(&script);
        assert_eq!(code, 0, "{script}\n{out}");
    }
}

#[test]
fn the_readmes_publish_walk_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // The first block of the section is the walk (the next points at the other pages).
    let walk = blocks(&readme, "Publish your own", "sh");
    assert!(!walk.is_empty(), "README.md's walk is gone");
    let (_registry, fresh) = seeded();
    let script = format!("set -e\n{}", walk[0].join("\n"));
    let (code, out) = fresh.run(&script);
    assert_eq!(code, 0, "{script}\n{out}");
    assert!(out.contains("hello from tool"), "{out}");
    let (_, listed) = fresh.run("pkg list --versions");
    assert!(listed.contains("tool 1.0.0"), "{listed}");
}
