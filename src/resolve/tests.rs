//! Resolution: versions picked, dependencies ordered, conflicts and pins explained.

use super::*;

struct NoneInstalled;
impl Installed for NoneInstalled {
    fn versions(&self, _: &str) -> Vec<Version> {
        Vec::new()
    }
}
struct Have(&'static str, Version);
impl Installed for Have {
    fn versions(&self, name: &str) -> Vec<Version> {
        if name == self.0 {
            vec![self.1.clone()]
        } else {
            Vec::new()
        }
    }
}

fn formula(dir: &std::path::Path, name: &str, versions: &[(&str, &str)]) {
    let mut text = format!("name = \"{name}\"\ndesc = \"d\"\nhomepage = \"https://x.example\"\n");
    for (v, deps) in versions {
        text.push_str(&format!(
            "[versions.\"{v}\"]\nrepository = \"ghcr.io/acme/{name}\"\ntag = \"{v}\"\ndepends_on = {{ {deps} }}\n"
        ));
    }
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

fn host() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        os_version: None,
    }
}

fn plan(
    dir: &std::path::Path,
    args: &[&str],
    installed: &dyn Installed,
) -> Result<Vec<String>, ResolveError> {
    let reqs: Vec<Request> = args.iter().map(|a| Request::parse(a).unwrap()).collect();
    let p = resolve(
        &reqs,
        &Formulary::new(vec![dir.to_path_buf()]),
        installed,
        &host(),
    )?;
    Ok(p.steps
        .iter()
        .map(|s| {
            format!(
                "{}@{}{}",
                s.formula.name,
                s.version,
                if s.on_request { "" } else { "(dep)" }
            )
        })
        .collect())
}

#[test]
fn a_long_linear_chain_of_dependencies_settles() {
    let d = tempfile::tempdir().unwrap();
    let n = 150;
    for i in 0..n {
        let deps = if i + 1 < n {
            format!("p{} = \"^1\"", i + 1)
        } else {
            String::new()
        };
        formula(d.path(), &format!("p{i}"), &[("1.0.0", &deps)]);
    }
    let steps = plan(d.path(), &["p0"], &NoneInstalled).unwrap();
    assert_eq!(steps.len(), n);
    assert_eq!(steps[0], format!("p{}@1.0.0(dep)", n - 1));
    assert_eq!(steps[n - 1], "p0@1.0.0");
}

/// Each round of the fixpoint used to reach one level deeper, so a chain cost its depth
/// squared (a chain of 3,000 took minutes); the worklist finds it in one round.
#[test]
fn a_chain_thousands_deep_resolves_in_two_rounds_of_work() {
    let d = tempfile::tempdir().unwrap();
    let n = 3000;
    for i in 0..n {
        let deps = if i + 1 < n {
            format!("p{} = \"^1\"", i + 1)
        } else {
            String::new()
        };
        formula(d.path(), &format!("p{i}"), &[("1.0.0", &deps)]);
    }
    let started = std::time::Instant::now();
    let steps = plan(d.path(), &["p0"], &NoneInstalled).unwrap();
    eprintln!("a chain of {n}: {:?}", started.elapsed());
    assert_eq!(steps.len(), n);
    assert_eq!(steps[0], format!("p{}@1.0.0(dep)", n - 1));
}

#[test]
fn full_version_is_exact_and_ranges_pick_highest() {
    let d = tempfile::tempdir().unwrap();
    formula(
        d.path(),
        "hello",
        &[("1.0.0", ""), ("1.2.0", ""), ("1.2.5", ""), ("2.0.0", "")],
    );
    assert_eq!(
        plan(d.path(), &["hello"], &NoneInstalled).unwrap(),
        ["hello@2.0.0"]
    );
    assert_eq!(
        plan(d.path(), &["hello@1.2.0"], &NoneInstalled).unwrap(),
        ["hello@1.2.0"]
    );
    assert_eq!(
        plan(d.path(), &["hello@^1.0"], &NoneInstalled).unwrap(),
        ["hello@1.2.5"]
    );
    assert_eq!(
        plan(d.path(), &["hello@~1.2"], &NoneInstalled).unwrap(),
        ["hello@1.2.5"]
    );
    assert_eq!(
        plan(d.path(), &["hello@1"], &NoneInstalled).unwrap(),
        ["hello@1.2.5"]
    );
    assert_eq!(
        plan(d.path(), &["hello@>=1, <1.2"], &NoneInstalled).unwrap(),
        ["hello@1.0.0"]
    );
    let err = plan(d.path(), &["hello@3"], &NoneInstalled)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.0.0, 1.2.0, 1.2.5, 2.0.0"), "{err}");
    assert!(Request::parse("hello@not a version").is_err());
}

#[test]
fn names_with_an_at_sign_and_requests_without_a_name() {
    let d = tempfile::tempdir().unwrap();
    formula(d.path(), "openssl@3", &[("3.0.0", ""), ("3.1.0", "")]);
    formula(d.path(), "openssl", &[("1.1.1", "")]);
    let formulary = Formulary::new(vec![d.path().to_path_buf()]);
    let r = Request::parse_in("openssl@3", &formulary).unwrap();
    assert_eq!((r.name.as_str(), r.spelled), ("openssl@3", None));
    let r = Request::parse_in("openssl@3@~3.0", &formulary).unwrap();
    assert_eq!(r.name, "openssl@3");
    assert!(r.req.matches(&Version::new(3, 0, 9)) && !r.req.matches(&Version::new(3, 1, 0)));
    // Not a formula name: a version request, as before.
    let r = Request::parse_in("openssl@1", &formulary).unwrap();
    assert_eq!(
        (r.name.as_str(), r.spelled.as_deref()),
        ("openssl", Some("1"))
    );
    let err = Request::parse("@1").unwrap_err().to_string();
    assert!(err.contains("names no package before `@`"), "{err}");
}

#[test]
fn a_missing_dependency_names_who_needs_it() {
    let d = tempfile::tempdir().unwrap();
    formula(d.path(), "app", &[("1.0.0", "nosuchdep = \"^1\"")]);
    let err = plan(d.path(), &["app"], &NoneInstalled)
        .unwrap_err()
        .to_string();
    assert!(err.contains("app 1.0.0 needs `nosuchdep`"), "{err}");
    assert!(err.contains("no formula named `nosuchdep`"), "{err}");
}

#[test]
fn dependencies_come_first() {
    let d = tempfile::tempdir().unwrap();
    formula(d.path(), "app", &[("1.0.0", "lib = \"^2\", tool = \"*\"")]);
    formula(d.path(), "lib", &[("1.9.0", ""), ("2.1.0", "base = \"1\"")]);
    formula(d.path(), "tool", &[("0.1.0", "base = \"^1\"")]);
    formula(d.path(), "base", &[("1.0.0", ""), ("1.5.0", "")]);
    assert_eq!(
        plan(d.path(), &["app"], &NoneInstalled).unwrap(),
        [
            "base@1.5.0(dep)",
            "lib@2.1.0(dep)",
            "tool@0.1.0(dep)",
            "app@1.0.0"
        ]
    );
    // An installed dependency that still fits is kept.
    assert_eq!(
        plan(d.path(), &["app"], &Have("base", Version::new(1, 0, 0))).unwrap(),
        [
            "base@1.0.0(dep)",
            "lib@2.1.0(dep)",
            "tool@0.1.0(dep)",
            "app@1.0.0"
        ]
    );
}

#[test]
fn conflicts_and_cycles_name_the_packages() {
    let d = tempfile::tempdir().unwrap();
    formula(d.path(), "a", &[("1.0.0", "c = \"^1\"")]);
    formula(d.path(), "b", &[("1.0.0", "c = \"^2\"")]);
    formula(d.path(), "c", &[("1.0.0", ""), ("2.0.0", "")]);
    let err = plan(d.path(), &["a", "b"], &NoneInstalled)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conflicting requirements on `c`")
            && err.contains("a 1.0.0")
            && err.contains("b 1.0.0"),
        "{err}"
    );

    formula(d.path(), "x", &[("1.0.0", "y = \"*\"")]);
    formula(d.path(), "y", &[("1.0.0", "x = \"*\"")]);
    let err = plan(d.path(), &["x"], &NoneInstalled)
        .unwrap_err()
        .to_string();
    assert!(err.contains("x -> y -> x"), "{err}");
}

struct Holds(&'static str, &'static str, &'static str);
impl Installed for Holds {
    fn versions(&self, _: &str) -> Vec<Version> {
        Vec::new()
    }
    fn requirements(&self) -> Vec<(String, VersionReq, String)> {
        vec![(
            self.0.into(),
            VersionReq::parse(self.1).unwrap(),
            self.2.into(),
        )]
    }
}

#[test]
fn installed_packages_outside_the_plan_constrain_shared_dependencies() {
    let d = tempfile::tempdir().unwrap();
    formula(d.path(), "app", &[("1.0.0", "lib = \"*\"")]);
    formula(d.path(), "lib", &[("1.0.0", ""), ("2.0.0", "")]);
    assert_eq!(
        plan(d.path(), &["app"], &Holds("lib", "^1", "other 1.0.0")).unwrap(),
        ["lib@1.0.0(dep)", "app@1.0.0"]
    );
    // A requirement from a package that is itself in the plan does not count.
    assert_eq!(
        plan(d.path(), &["app"], &Holds("lib", "^1", "app 0.9.0")).unwrap(),
        ["lib@2.0.0(dep)", "app@1.0.0"]
    );
    // Unrelated names are not pulled in.
    assert_eq!(
        plan(d.path(), &["lib"], &Holds("zzz", "^1", "x 1.0.0")).unwrap(),
        ["lib@2.0.0"]
    );
}

/// `lib` pinned at 1.0.0 and installed, `tool 1.0.0` installed requiring `lib ^1`.
struct PinnedLib {
    pinned: bool,
    tool: bool,
}
impl Installed for PinnedLib {
    fn versions(&self, name: &str) -> Vec<Version> {
        match name {
            "lib" => vec![Version::new(1, 0, 0)],
            _ => Vec::new(),
        }
    }
    fn requirements(&self) -> Vec<(String, VersionReq, String)> {
        if self.tool {
            vec![(
                "lib".into(),
                VersionReq::parse("^1").unwrap(),
                "tool 1.0.0".into(),
            )]
        } else {
            Vec::new()
        }
    }
    fn pinned(&self, name: &str) -> Option<Version> {
        (self.pinned && name == "lib").then(|| Version::new(1, 0, 0))
    }
}

#[test]
fn a_pinned_package_never_moves_and_the_error_names_the_pin() {
    let d = tempfile::tempdir().unwrap();
    formula(
        d.path(),
        "app",
        &[("1.0.0", "lib = \"*\""), ("2.0.0", "lib = \"^2\"")],
    );
    formula(
        d.path(),
        "lib",
        &[("1.0.0", ""), ("1.5.0", ""), ("2.0.0", "")],
    );
    let pinned = PinnedLib {
        pinned: true,
        tool: false,
    };
    // A requirement the pinned version meets keeps it, even with newer ones available.
    assert_eq!(
        plan(d.path(), &["app@1.0.0"], &pinned).unwrap(),
        ["lib@1.0.0(dep)", "app@1.0.0"]
    );
    assert_eq!(plan(d.path(), &["lib"], &pinned).unwrap(), ["lib@1.0.0"]);
    let err = plan(d.path(), &["app@2.0.0"], &pinned).unwrap_err();
    assert_eq!(err.held_by().as_deref(), Some("the pin on lib"));
    assert_eq!(
        err.to_string(),
        "app 2.0.0 needs lib ^2 but lib is pinned at 1.0.0; `pkg unpin lib` to allow it"
    );
    let err = plan(d.path(), &["lib@2.0.0"], &pinned).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("you asked for lib =2.0.0 but lib is pinned at 1.0.0"),
        "{err}"
    );
    // Not pinned: lib moves.
    let free = PinnedLib {
        pinned: false,
        tool: false,
    };
    assert_eq!(
        plan(d.path(), &["app@2.0.0"], &free).unwrap(),
        ["lib@2.0.0(dep)", "app@2.0.0"]
    );
}

#[test]
fn a_pin_is_blamed_only_when_unpinning_would_let_the_plan_through() {
    let d = tempfile::tempdir().unwrap();
    formula(
        d.path(),
        "app",
        &[
            ("1.0.0", "lib = \"*\""),
            ("2.0.0", "lib = \"^3\""),
            ("3.0.0", "lib = \"^2\", tool = \"*\""),
        ],
    );
    formula(d.path(), "lib", &[("1.0.0", ""), ("2.0.0", "")]);
    formula(d.path(), "tool", &[("1.0.0", "lib = \"^1\"")]);
    let pinned = PinnedLib {
        pinned: true,
        tool: false,
    };
    // No lib 3.x exists: the pin is not what stands in the way.
    let err = plan(d.path(), &["app@2.0.0"], &pinned).unwrap_err();
    assert!(err.held_by().is_none(), "{err}");
    assert_eq!(
        err.to_string(),
        "no version of `lib` matches `^3` (required by app 2.0.0); available: 1.0.0, 2.0.0"
    );
    // Nor when the plan's own requirements conflict: app 3.0.0 needs lib ^2, tool ^1.
    let err = plan(d.path(), &["app@3.0.0"], &pinned).unwrap_err();
    assert!(err.held_by().is_none(), "{err}");
    assert!(
        err.to_string().starts_with(
            "conflicting requirements on `lib`: app 3.0.0 requires ^2, tool 1.0.0 requires ^1"
        ),
        "{err}"
    );
    // An installed package that holds lib back is named, not the pin.
    let both = PinnedLib {
        pinned: true,
        tool: true,
    };
    formula(
        d.path(),
        "app",
        &[("1.0.0", "lib = \"*\""), ("2.0.0", "lib = \"^2\"")],
    );
    let err = plan(d.path(), &["app@2.0.0"], &both).unwrap_err();
    assert_eq!(err.held_by().as_deref(), Some("tool 1.0.0"));
    assert_eq!(
        err.to_string(),
        "app 2.0.0 needs lib ^2 but the installed tool 1.0.0 requires lib ^1"
    );
    // A version a pinned package's formula lacks is a miss, not the pin's fault either.
    let err = plan(d.path(), &["lib@3.0.0"], &pinned).unwrap_err();
    assert!(err.held_by().is_none(), "{err}");
    assert!(
        err.to_string()
            .starts_with("no version of `lib` matches `=3.0.0`"),
        "{err}"
    );
    // Where unpinning would help, the pin is still named.
    let err = plan(d.path(), &["app@2.0.0"], &pinned).unwrap_err();
    assert_eq!(err.held_by().as_deref(), Some("the pin on lib"));
}

#[test]
fn a_plan_held_back_by_an_installed_package_names_it() {
    let d = tempfile::tempdir().unwrap();
    formula(
        d.path(),
        "app",
        &[("1.0.0", "lib = \"*\""), ("2.0.0", "lib = \"^2\"")],
    );
    formula(d.path(), "lib", &[("1.0.0", ""), ("2.0.0", "")]);
    let held = PinnedLib {
        pinned: false,
        tool: true,
    };
    let err = plan(d.path(), &["app@2.0.0"], &held).unwrap_err();
    assert_eq!(err.held_by().as_deref(), Some("tool 1.0.0"));
    assert_eq!(
        err.to_string(),
        "app 2.0.0 needs lib ^2 but the installed tool 1.0.0 requires lib ^1"
    );
    // A plain miss is no hold.
    let err = plan(d.path(), &["app@3"], &held).unwrap_err();
    assert!(err.held_by().is_none(), "{err}");
}

#[test]
fn platform_restriction_is_enforced() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("mac.toml"),
        "name = \"mac\"\ndesc = \"d\"\nhomepage = \"h\"\nplatforms = [\"darwin\"]\n[versions.\"1.0.0\"]\nrepository = \"ghcr.io/a/mac\"\ntag = \"1\"\n",
    )
    .unwrap();
    let err = plan(d.path(), &["mac"], &NoneInstalled)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not install on linux/amd64"), "{err}");
}
