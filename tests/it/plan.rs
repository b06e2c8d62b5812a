//! One plan: for every scenario, `--dry-run --json` prints the very document the run prints
//! (`dry_run` aside), the dry run changes nothing, and the run leaves the Cellar and the links
//! as the document says; `outdated` agrees with what `upgrade` moves. Against the real registry.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Fixture, Formula, ImageSpec, Registry, TestContext};

/// A package whose binary prints `NAME VERSION` (or `text`).
fn image(name: &str, text: &str) -> Fixture {
    Fixture::Image(ImageSpec::new("linux", "amd64").file(
        &format!("bin/{name}"),
        format!("#!/bin/sh\necho {text}\n"),
        0o755,
    ))
}

/// One scenario's prefix, beside the registry every scenario shares.
struct World<'r> {
    registry: &'r Registry,
    ctx: TestContext,
}

impl World<'_> {
    fn repo(&self, name: &str) -> String {
        format!("{}/acme/{name}", self.registry.host())
    }

    /// `name` at `versions`, each `(version, dependencies)`.
    fn formula(&self, name: &str, versions: &[(&str, &[(&str, &str)])]) {
        let mut f = Formula::new(name);
        for (v, deps) in versions {
            f = f.version_with(v, &self.repo(name), v, None, deps);
        }
        self.ctx.write_formula(name, &f.to_toml());
    }

    fn plain(&self, name: &str, versions: &[&str]) {
        let v: Vec<(&str, &[(&str, &str)])> = versions.iter().map(|v| (*v, &[][..])).collect();
        self.formula(name, &v);
    }

    /// `app` at `(version, requirement on lib)`.
    fn app(&self, versions: &[(&str, &str)]) {
        let owned: Vec<[(&str, &str); 1]> = versions.iter().map(|(_, r)| [("lib", *r)]).collect();
        let v: Vec<(&str, &[(&str, &str)])> = versions
            .iter()
            .zip(&owned)
            .map(|((v, _), d)| (*v, &d[..]))
            .collect();
        self.formula("app", &v);
    }

    fn pkg(&self, args: &[&str]) {
        self.ctx.pkg(args).success();
    }

    fn versions(&self, name: &str) -> Vec<String> {
        self.ctx.cellar_versions(name)
    }

    /// The version `opt/NAME` links, if any.
    fn linked(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.ctx.prefix.join("opt").join(name)).ok()?;
        Some(target.file_name()?.to_str()?.to_owned())
    }

    /// What `PREFIX/bin/NAME` prints, or None when it is not linked.
    fn runs(&self, name: &str) -> Option<String> {
        let out = Command::new(self.ctx.prefix.join("bin").join(name))
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"))
}

/// Runs `args` as a dry run and for real, both with `--json`: the dry run changes nothing and
/// its document is the run's. Returns the run's document.
fn agree(w: &World, args: &[&str]) -> Value {
    let before = w.ctx.prefix_listing();
    let mut dry_args = args.to_vec();
    dry_args.extend(["--dry-run", "--json"]);
    let dry = w.ctx.pkg(&dry_args).success();
    assert_eq!(
        w.ctx.prefix_listing(),
        before,
        "pkg {dry_args:?} changed the prefix"
    );
    let mut run_args = args.to_vec();
    run_args.push("--json");
    let run = w.ctx.pkg(&run_args).success();
    let (mut dry, run) = (parse(&dry.stdout), parse(&run.stdout));
    assert_eq!(dry["schema"], 1);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(run["dry_run"], false);
    dry["dry_run"] = json!(false);
    assert_eq!(
        dry, run,
        "pkg {args:?}: the dry run's plan is not what the run did"
    );
    run
}

fn names(doc: &Value, key: &str) -> Vec<String> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {doc}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `moved` as `name from->to action`, in order.
fn moved(doc: &Value) -> Vec<String> {
    doc["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}->{} {}",
                m["name"].as_str().unwrap(),
                m["from"].as_str().unwrap_or("-"),
                m["to"].as_str().unwrap(),
                m["action"].as_str().unwrap()
            )
        })
        .collect()
}

struct Scenario {
    name: &'static str,
    setup: fn(&World),
    args: &'static [&'static str],
    then: fn(&World, &Value),
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "an upgrade of one package",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(moved(d), ["hello 1.0.0->2.0.0 upgrade"]);
            assert_eq!(names(d, "upgraded"), ["hello"]);
            assert_eq!(w.versions("hello"), ["2.0.0"]);
            assert_eq!(w.runs("hello").as_deref(), Some("hello 2.0.0"));
        },
    },
    Scenario {
        name: "a dependency held back by its dependent goes as far as it may",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.app(&[("1.0.0", "^1")]);
            w.pkg(&["install", "app"]);
            w.plain("lib", &["1.0.0", "1.5.0", "2.0.0"]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(moved(d), ["lib 1.0.0->1.5.0 upgrade"]);
            assert_eq!(d["held_back"][0]["latest"], "2.0.0");
            assert_eq!(d["held_back"][0]["by"], "app 1.0.0");
            assert_eq!(w.versions("lib"), ["1.5.0"]);
        },
    },
    Scenario {
        name: "a dependent's upgrade takes its held-back dependency along",
        setup: |w| {
            w.plain("lib", &["1.0.0", "1.5.0"]);
            w.app(&[("1.0.0", "^1")]);
            w.pkg(&["install", "app"]);
            w.plain("lib", &["1.0.0", "1.5.0", "2.0.0"]);
            w.app(&[("1.0.0", "^1"), ("2.0.0", "^2")]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(
                moved(d),
                ["lib 1.5.0->2.0.0 upgrade", "app 1.0.0->2.0.0 upgrade"]
            );
            assert!(names(d, "held_back").is_empty(), "{d}");
            assert!(!names(d, "up_to_date").contains(&"lib".to_owned()), "{d}");
            assert_eq!(w.versions("lib"), ["2.0.0"]);
            assert_eq!(w.versions("app"), ["2.0.0"]);
        },
    },
    Scenario {
        name: "a pinned package stays",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
            w.pkg(&["pin", "hello"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(names(d, "pinned"), ["hello"]);
            assert!(moved(d).is_empty());
            assert_eq!(w.versions("hello"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "a pinned dependency holds back what needs it to move",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.app(&[("1.0.0", "*")]);
            w.pkg(&["install", "app"]);
            w.pkg(&["pin", "lib"]);
            w.plain("lib", &["1.0.0", "2.0.0"]);
            w.app(&[("1.0.0", "*"), ("2.0.0", "^2")]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(d["held_back"][0]["name"], "app");
            assert_eq!(d["held_back"][0]["by"], "the pin on lib");
            assert_eq!(w.versions("app"), ["1.0.0"]);
            assert_eq!(w.versions("lib"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "a package whose formula vanished is skipped, the others upgrade",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.plain("tool", &["1.0.0"]);
            w.pkg(&["install", "hello", "tool"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
            std::fs::remove_file(w.ctx.formulae.join("tool.toml")).unwrap();
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(names(d, "skipped"), ["tool"]);
            assert!(names(d, "failed").is_empty(), "{d}");
            assert_eq!(moved(d), ["hello 1.0.0->2.0.0 upgrade"]);
            assert_eq!(w.versions("tool"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "a named upgrade moves only that package",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.plain("tool", &["1.0.0"]);
            w.pkg(&["install", "hello", "tool"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
            w.plain("tool", &["1.0.0", "2.0.0"]);
        },
        args: &["upgrade", "hello"],
        then: |w, d| {
            assert_eq!(moved(d), ["hello 1.0.0->2.0.0 upgrade"]);
            assert_eq!(w.versions("tool"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "keep-old keeps the old keg and links the new one",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
        },
        args: &["upgrade", "--keep-old"],
        then: |w, _| {
            assert_eq!(w.versions("hello"), ["1.0.0", "2.0.0"]);
            assert_eq!(w.linked("hello").as_deref(), Some("2.0.0"));
        },
    },
    Scenario {
        name: "nothing to upgrade",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(names(d, "up_to_date"), ["hello"]);
            assert!(moved(d).is_empty());
            assert_eq!(w.versions("hello"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "an unlinked package is upgraded and stays unlinked",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
            w.pkg(&["unlink", "hello"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
        },
        args: &["upgrade"],
        then: |w, _| {
            assert_eq!(w.versions("hello"), ["2.0.0"]);
            assert_eq!(w.linked("hello"), None);
            assert_eq!(w.runs("hello"), None);
        },
    },
    Scenario {
        name: "an upgrade that brings a new dependency installs it first",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.formula("tool", &[("1.0.0", &[])]);
            w.pkg(&["install", "tool"]);
            w.formula("tool", &[("1.0.0", &[]), ("2.0.0", &[("lib", "^1")])]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(
                moved(d),
                ["lib -->1.0.0 install", "tool 1.0.0->2.0.0 upgrade"]
            );
            assert_eq!(w.ctx.receipt("lib", "1.0.0")["installed_on_request"], false);
        },
    },
    Scenario {
        name: "an upgrade of a held dependency named alone says who holds it",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.app(&[("1.0.0", "^1")]);
            w.pkg(&["install", "app"]);
            w.plain("lib", &["1.0.0", "2.0.0"]);
        },
        args: &["upgrade", "lib"],
        then: |w, d| {
            assert_eq!(names(d, "held_back"), ["lib"]);
            assert!(moved(d).is_empty());
            assert_eq!(w.versions("lib"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "an upgrade stays within the range the user asked for",
        setup: |w| {
            w.plain("hello", &["1.0.0", "2.0.0"]);
            w.pkg(&["install", "hello@^1"]);
            w.plain("hello", &["1.0.0", "1.3.0", "2.0.0", "3.0.0"]);
        },
        args: &["upgrade"],
        then: |w, d| {
            assert_eq!(moved(d), ["hello 1.0.0->1.3.0 upgrade"]);
            assert_eq!(d["held_back"][0]["latest"], "3.0.0");
            assert_eq!(d["held_back"][0]["by"], "your request hello@^1");
            assert_eq!(w.versions("hello"), ["1.3.0"]);
        },
    },
    Scenario {
        name: "an install with a dependency",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.app(&[("1.0.0", "^1")]);
        },
        args: &["install", "app"],
        then: |w, d| {
            assert_eq!(moved(d), ["lib -->1.0.0 install", "app -->1.0.0 install"]);
            assert_eq!(w.runs("app").as_deref(), Some("app 1.0.0"));
            assert_eq!(w.runs("lib").as_deref(), Some("lib 1.0.0"));
        },
    },
    Scenario {
        name: "an install of what is installed changes nothing",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
        },
        args: &["install", "hello"],
        then: |w, d| {
            assert_eq!(names(d, "unchanged"), ["hello"]);
            assert!(moved(d).is_empty());
            assert_eq!(w.versions("hello"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "an install of a range below the linked version is a downgrade",
        setup: |w| {
            w.plain("hello", &["1.0.0", "1.3.0", "2.0.0"]);
            w.pkg(&["install", "hello"]);
        },
        args: &["install", "hello@^1.2"],
        then: |w, d| {
            assert_eq!(moved(d), ["hello 2.0.0->1.3.0 downgrade"]);
            assert_eq!(w.versions("hello"), ["1.3.0", "2.0.0"]);
            assert_eq!(w.linked("hello").as_deref(), Some("1.3.0"));
        },
    },
    Scenario {
        name: "an install of an installed older version links it, pouring nothing",
        setup: |w| {
            w.plain("hello", &["1.0.0", "2.0.0"]);
            w.pkg(&["install", "hello@1.0.0"]);
            w.pkg(&["install", "hello@2.0.0"]);
        },
        args: &["install", "hello@1.0.0"],
        then: |w, d| {
            assert_eq!(moved(d), ["hello 2.0.0->1.0.0 downgrade"]);
            assert_eq!(w.linked("hello").as_deref(), Some("1.0.0"));
            assert_eq!(w.runs("hello").as_deref(), Some("hello 1.0.0"));
        },
    },
    Scenario {
        name: "an install of an outdated package says so and moves nothing",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
        },
        args: &["install", "hello"],
        then: |w, d| {
            assert_eq!(d["not_upgraded"][0]["latest"], "2.0.0");
            assert!(moved(d).is_empty());
            assert_eq!(w.versions("hello"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "install --upgrade upgrades an outdated package",
        setup: |w| {
            w.plain("hello", &["1.0.0"]);
            w.pkg(&["install", "hello"]);
            w.plain("hello", &["1.0.0", "2.0.0"]);
        },
        args: &["install", "--upgrade", "hello"],
        then: |w, d| {
            assert_eq!(moved(d), ["hello 1.0.0->2.0.0 upgrade"]);
            assert_eq!(w.versions("hello"), ["2.0.0"]);
        },
    },
    Scenario {
        name: "an installed dependency that fits is kept",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.pkg(&["install", "lib"]);
            w.plain("lib", &["1.0.0", "1.5.0"]);
            w.app(&[("1.0.0", "^1")]);
        },
        args: &["install", "app"],
        then: |w, d| {
            assert_eq!(moved(d), ["app -->1.0.0 install"]);
            assert_eq!(w.versions("lib"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "two packages that share a dependency install it once",
        setup: |w| {
            w.plain("lib", &["1.0.0"]);
            w.app(&[("1.0.0", "^1")]);
            w.formula("tool", &[("1.0.0", &[("lib", "*")])]);
        },
        args: &["install", "app", "tool"],
        then: |w, d| {
            assert_eq!(
                moved(d),
                [
                    "lib -->1.0.0 install",
                    "app -->1.0.0 install",
                    "tool -->1.0.0 install"
                ]
            );
            assert_eq!(w.versions("lib"), ["1.0.0"]);
        },
    },
    Scenario {
        name: "a moved tag installs what it points to now",
        setup: |w| {
            w.registry
                .push("acme/moved", "1.0.0", &image("moved", "moved content"));
            w.plain("moved", &["1.0.0"]);
        },
        args: &["install", "moved"],
        then: |w, d| {
            assert_eq!(moved(d), ["moved -->1.0.0 install"]);
            assert_eq!(w.runs("moved").as_deref(), Some("moved content"));
        },
    },
];

#[test]
fn every_dry_run_prints_the_document_its_run_prints_and_the_prefix_matches_it() {
    let registry = Registry::start();
    for (name, versions) in [
        ("hello", &["1.0.0", "1.3.0", "2.0.0", "3.0.0"][..]),
        ("lib", &["1.0.0", "1.5.0", "2.0.0"]),
        ("app", &["1.0.0", "2.0.0"]),
        ("tool", &["1.0.0", "2.0.0"]),
    ] {
        for v in versions {
            registry.push(
                &format!("acme/{name}"),
                v,
                &image(name, &format!("{name} {v}")),
            );
        }
    }
    registry.push("acme/moved", "1.0.0", &image("moved", "before the move"));
    assert!(SCENARIOS.len() >= 20);
    for s in SCENARIOS {
        let w = World {
            registry: &registry,
            ctx: TestContext::new(),
        };
        (s.setup)(&w);
        eprintln!("scenario: {}", s.name);
        let doc = agree(&w, s.args);
        (s.then)(&w, &doc);
    }
}

#[test]
fn outdated_dry_run_and_upgrade_agree_when_an_upgrade_takes_a_held_dependency_along() {
    let registry = Registry::start();
    for (name, versions) in [
        ("lib", &["1.5.0", "2.0.0"][..]),
        ("app", &["1.0.0", "2.0.0"]),
    ] {
        for v in versions {
            registry.push(
                &format!("acme/{name}"),
                v,
                &image(name, &format!("{name} {v}")),
            );
        }
    }
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    w.plain("lib", &["1.5.0"]);
    w.app(&[("1.0.0", "^1")]);
    w.pkg(&["install", "app"]);
    w.plain("lib", &["1.5.0", "2.0.0"]);
    w.app(&[("1.0.0", "^1"), ("2.0.0", "^2")]);

    let out = w.ctx.pkg(&["outdated"]).success();
    assert_eq!(out.stdout, "app (1.0.0) < 2.0.0\nlib (1.5.0) < 2.0.0\n");
    let dry = w.ctx.pkg(&["upgrade", "--dry-run"]).success();
    assert_eq!(
        dry.stdout,
        "upgrade lib 1.5.0 -> 2.0.0\nupgrade app 1.0.0 -> 2.0.0\n"
    );
    assert!(!dry.output().contains("held back"), "{}", dry.output());
    let run = w.ctx.pkg(&["upgrade", "--json"]).success();
    let doc = parse(&run.stdout);
    assert_eq!(doc["held_back"], json!([]));
    assert_eq!(doc["up_to_date"], json!([]));
    assert_eq!(
        moved(&doc),
        ["lib 1.5.0->2.0.0 upgrade", "app 1.0.0->2.0.0 upgrade"]
    );
}

#[test]
fn installing_an_older_range_says_the_switch_and_upgrade_outdated_and_cleanup_respect_it() {
    let registry = Registry::start();
    for v in ["1.3.0", "2.0.0"] {
        registry.push("acme/hello", v, &image("hello", &format!("hello {v}")));
    }
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    w.plain("hello", &["1.3.0", "2.0.0"]);
    w.pkg(&["install", "hello"]);
    w.ctx
        .pkg(&["install", "hello@^1.2"])
        .success()
        .says("Linked hello 1.3.0, was 2.0.0 (a downgrade)");
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.3.0"));
    // The request is remembered: upgrade stays within it, outdated says why.
    w.ctx
        .pkg(&["upgrade"])
        .success()
        .says("hello 2.0.0 is outside hello@^1.2, which you asked for");
    assert_eq!(w.linked("hello").as_deref(), Some("1.3.0"));
    let out = w.ctx.pkg(&["outdated"]).success();
    assert_eq!(
        out.stdout,
        "hello (1.3.0) < 2.0.0 [held back by your request hello@^1.2]\n"
    );
    // cleanup keeps the newest installed version.
    w.ctx
        .pkg(&["cleanup"])
        .success()
        .says("Keeping hello 2.0.0 (newer than the linked 1.3.0");
    assert_eq!(w.versions("hello"), ["1.3.0", "2.0.0"]);
    // `pkg install hello` asks for the newest again.
    w.pkg(&["install", "hello"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 2.0.0"));
    w.ctx.pkg(&["outdated", "hello"]).success();
}

/// An exact version asked for is remembered as a range is: `pkg upgrade` stays on it and `info`
/// shows the hold; `NAME@1.2` is the 1.2 series (never 1.3.0), `NAME@1` the 1 series; `pkg install
/// NAME` asks for the newest again. Before, `hello@1.2.0` was forgotten by the next upgrade and
/// `hello@1.2` installed 1.3.0.
#[test]
fn an_exact_version_is_remembered_and_a_two_number_request_is_its_series() {
    let registry = Registry::start();
    let versions = ["1.2.0", "1.2.1", "1.3.0", "2.0.0"];
    for v in versions {
        registry.push("acme/hello", v, &image("hello", &format!("hello {v}")));
    }
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    w.plain("hello", &versions);
    w.pkg(&["install", "hello"]);
    w.pkg(&["install", "hello@1.2.0"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.2.0"));
    w.ctx
        .pkg(&["upgrade"])
        .success()
        .says("which you asked for");
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.2.0"));
    w.ctx
        .pkg(&["info", "hello"])
        .success()
        .says("Held to hello@1.2.0 (=1.2.0), as you asked");
    // `pkg upgrade NAME@…` moves the hold, then upgrades within it: the 1.2 series is 1.2.1,
    // not 1.3.0; and upgrade stays in it. Its dry run shows that plan and records nothing.
    let dry = w.ctx.pkg(&["upgrade", "hello@1.2", "--dry-run"]).success();
    dry.says("1.2.1");
    w.ctx
        .pkg(&["info", "hello"])
        .success()
        .says("Held to hello@1.2.0 (=1.2.0), as you asked");
    w.pkg(&["upgrade", "hello@1.2"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.2.1"));
    w.ctx
        .pkg(&["info", "hello"])
        .success()
        .says("Held to hello@1.2 (~1.2)");
    // A name that is not installed beside it fails the run and moves no hold.
    w.ctx.pkg(&["upgrade", "hello@1", "helo@2"]).failure();
    w.ctx
        .pkg(&["info", "hello"])
        .success()
        .says("Held to hello@1.2 (~1.2)");
    w.pkg(&["install", "hello@1.2"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.2.1"));
    w.pkg(&["upgrade"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.2.1"));
    w.pkg(&["install", "hello@1"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.3.0"));
    // The newest again, and nothing held any more.
    w.pkg(&["install", "hello"]);
    assert_eq!(w.runs("hello").as_deref(), Some("hello 2.0.0"));
    let info = w.ctx.pkg(&["info", "hello"]).success();
    assert!(!info.stdout.contains("Held to"), "{}", info.stdout);
}

#[test]
fn a_vanished_formula_is_skipped_by_upgrade_and_outdated_and_named_by_doctor_and_tap_remove() {
    let registry = Registry::start();
    registry.push("acme/mp", "1.0.0", &image("mp", "mp 1.0.0"));
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    let tap = w.ctx.root().join("acme-tap");
    std::fs::create_dir_all(&tap).unwrap();
    std::fs::write(
        tap.join("mp.toml"),
        Formula::new("mp")
            .version("1.0.0", &w.repo("mp"), "1.0.0")
            .to_toml(),
    )
    .unwrap();
    w.pkg(&["tap", "add", "acme", tap.to_str().unwrap()]);
    w.pkg(&["install", "mp"]);
    w.ctx
        .pkg(&["tap", "remove", "acme"])
        .success()
        .says("installed from acme, now without a formula: mp");
    for args in [&["upgrade"][..], &["upgrade", "--dry-run"], &["outdated"]] {
        w.ctx
            .pkg(args)
            .success()
            .says("mp 1.0.0 is installed but its formula is gone");
    }
    w.ctx
        .pkg(&["doctor"])
        .failure()
        .says("mp is installed but its formula is gone");
    assert_eq!(w.runs("mp").as_deref(), Some("mp 1.0.0"));
}

#[test]
fn install_dry_run_of_a_reference_refuses_what_the_run_refuses() {
    let registry = Registry::start();
    registry.push("acme/hello", "1.0.0", &image("hello", "hello 1.0.0"));
    registry.push("acme/other/hello", "1.0.0", &image("hello", "other"));
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    w.plain("hello", &["1.0.0"]);
    let reference = format!("{}:1.0.0", w.repo("other/hello"));
    let dry = w
        .ctx
        .pkg(&["install", "--dry-run", &reference])
        .failure()
        .output();
    let run = w.ctx.pkg(&["install", &reference]).failure().output();
    assert!(dry.contains("hello"), "{dry}");
    assert_eq!(
        dry.lines().last(),
        run.lines().last(),
        "the dry run and the run disagree"
    );
    assert!(w.versions("hello").is_empty());
}

#[test]
fn fetch_brings_the_dependencies_so_the_install_runs_offline() {
    let mut registry = Registry::start();
    registry.push("acme/lib", "1.0.0", &image("lib", "lib 1.0.0"));
    registry.push("acme/app", "1.0.0", &image("app", "app 1.0.0"));
    let ctx = TestContext::new();
    {
        let w = World {
            registry: &registry,
            ctx: ctx.sharing_cache(),
        };
        w.plain("lib", &["1.0.0"]);
        w.app(&[("1.0.0", "^1")]);
    }
    let w = World {
        registry: &registry,
        ctx,
    };
    w.plain("lib", &["1.0.0"]);
    w.app(&[("1.0.0", "^1")]);
    w.ctx
        .pkg(&["fetch", "app"])
        .success()
        .says("lib 1.0.0 (")
        .says("a dependency");
    assert!(w.versions("app").is_empty());
    let ctx = w.ctx;
    registry.stop();
    ctx.pkg(&["install", "app"]).success();
    assert_eq!(ctx.cellar_versions("lib"), ["1.0.0"]);
    assert_eq!(ctx.cellar_versions("app"), ["1.0.0"]);
}

#[test]
fn overwrite_records_the_takeover_which_info_list_and_doctor_say_and_uninstall_gives_back() {
    let registry = Registry::start();
    registry.push("acme/hello", "1.0.0", &image("hello", "hello 1.0.0"));
    registry.push("acme/greet", "1.0.0", &image("hello", "greet says hello"));
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    w.plain("hello", &["1.0.0"]);
    w.plain("greet", &["1.0.0"]);
    w.pkg(&["install", "hello"]);
    w.ctx
        .pkg(&["install", "greet"])
        .failure()
        .says("belongs to the installed package `hello`");
    w.ctx
        .pkg(&["install", "--overwrite", "greet"])
        .success()
        .says("Took over bin/hello from hello");
    assert_eq!(w.runs("hello").as_deref(), Some("greet says hello"));
    w.ctx
        .pkg(&["info", "hello"])
        .success()
        .says("linked, but not all its links")
        .says("bin/hello belongs to greet now");
    let info = parse(&w.ctx.pkg(&["info", "hello", "--json"]).success().stdout);
    assert_eq!(
        info["packages"][0]["taken_over_by_others"][0]["by"],
        "greet"
    );
    w.ctx
        .pkg(&["list"])
        .success()
        .says("bin/hello belongs to greet, taken from hello");
    let list = parse(&w.ctx.pkg(&["list", "--json"]).success().stdout);
    let packages = list["packages"].as_array().unwrap();
    let of = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(of("hello")["taken_over_by_others"][0]["by"], "greet");
    assert_eq!(of("greet")["taken_over_from_others"][0]["from"], "hello");
    assert_eq!(
        of("greet")["taken_over_from_others"][0]["path"],
        "bin/hello"
    );
    let doctor = w.ctx.pkg(&["doctor"]).output();
    assert!(
        doctor.contains("bin/hello of hello belongs to greet"),
        "{doctor}"
    );

    // Uninstalling the package that took the link gives it back.
    w.ctx
        .pkg(&["uninstall", "greet"])
        .success()
        .says("Linked hello 1.0.0 again");
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.0.0"));
    let doctor = w.ctx.pkg(&["doctor"]).output();
    assert!(!doctor.contains("bin/hello"), "{doctor}");
    let list = parse(&w.ctx.pkg(&["list", "--json"]).success().stdout);
    assert_eq!(
        list["packages"][0]["taken_over_by_others"],
        serde_json::json!([])
    );
    w.ctx
        .pkg(&["info", "hello"])
        .success()
        .says("1.0.0 (linked, on request)");

    // A link of a linked package that vanished is a problem doctor names, with the fix.
    std::fs::remove_file(w.ctx.prefix.join("bin/hello")).unwrap();
    let doctor = w.ctx.pkg(&["doctor"]).failure().output();
    assert!(
        doctor.contains("hello is linked but its link bin/hello is missing"),
        "{doctor}"
    );
}

#[test]
fn a_unit_that_fails_to_link_gives_back_the_links_it_took_over() {
    let registry = Registry::start();
    registry.push("acme/hello", "1.0.0", &image("hello", "hello 1.0.0"));
    registry.push("acme/lib", "1.0.0", &image("lib", "lib 1.0.0"));
    registry.push("acme/app", "1.0.0", &image("app", "app 1.0.0"));
    // lib 2.0.0 also ships bin/hello (taken from hello with --overwrite); app 2.0.0 ships
    // bin/tool, where the user keeps a directory: its link fails after lib's went in.
    let lib2 = ImageSpec::new("linux", "amd64")
        .file("bin/lib", "#!/bin/sh\necho lib 2.0.0\n", 0o755)
        .file("bin/hello", "#!/bin/sh\necho lib says hello\n", 0o755);
    registry.push("acme/lib", "2.0.0", &Fixture::Image(lib2));
    let app2 = ImageSpec::new("linux", "amd64")
        .file("bin/app", "#!/bin/sh\necho app 2.0.0\n", 0o755)
        .file("bin/tool", "#!/bin/sh\necho tool\n", 0o755);
    registry.push("acme/app", "2.0.0", &Fixture::Image(app2));
    let w = World {
        registry: &registry,
        ctx: TestContext::new(),
    };
    w.plain("hello", &["1.0.0"]);
    w.plain("lib", &["1.0.0"]);
    w.app(&[("1.0.0", "^1")]);
    w.pkg(&["install", "hello", "app"]);
    w.plain("lib", &["1.0.0", "2.0.0"]);
    w.app(&[("1.0.0", "^1"), ("2.0.0", "^2")]);
    std::fs::create_dir_all(w.ctx.prefix.join("bin/tool/mine")).unwrap();

    let run = w
        .ctx
        .pkg(&["install", "--upgrade", "--overwrite", "app"])
        .failure();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(!said.contains("Took over"), "{said}");
    assert!(said.contains("Move them out of the way"), "{said}");
    assert!(!said.contains("run again with --overwrite"), "{said}");
    assert_eq!(w.runs("hello").as_deref(), Some("hello 1.0.0"));
    assert_eq!(w.runs("lib").as_deref(), Some("lib 1.0.0"));
    assert_eq!(w.linked("app").as_deref(), Some("1.0.0"));
    assert_eq!(w.versions("lib"), ["1.0.0"]);
    let info = parse(&w.ctx.pkg(&["info", "hello", "--json"]).success().stdout);
    assert_eq!(info["packages"][0]["taken_over_by_others"], json!([]));
    let records =
        std::fs::read_to_string(w.ctx.prefix.join("var/pkg/takeovers.toml")).unwrap_or_default();
    assert!(!records.contains("bin/hello"), "{records}");
    let doctor = w.ctx.pkg(&["doctor"]).output();
    assert!(!doctor.contains("bin/hello"), "{doctor}");
}
