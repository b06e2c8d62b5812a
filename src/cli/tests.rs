//! The clap definitions' own checks: consistency, and examples in every command's help.

use clap::CommandFactory as _;

use super::Cli;

/// `pkg`, then every subcommand at any depth, with its full name (`pkg tap add`).
fn every_command() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        let name = format!("{prefix}{}", cmd.get_name());
        out.push((name.clone(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(&format!("{name} "), sub, out);
        }
    }
    let mut out = Vec::new();
    walk("", &Cli::command(), &mut out);
    out
}

#[test]
fn the_definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_has_examples_in_its_help() {
    let all = every_command();
    assert!(all.len() > 25, "the walk missed commands: {}", all.len());
    assert!(all.iter().any(|(n, _)| n == "pkg tap add"));
    for (name, cmd) in all {
        let after = cmd
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let examples = after
            .split_once("Examples:\n")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("`{name} --help` has no Examples section"));
        let first = examples.lines().next().unwrap_or_default().trim();
        assert!(
            first.starts_with(&name) || first.contains(&format!("| {name}")),
            "`{name} --help`: the first example does not run {name}: {first:?}"
        );
    }
}

#[test]
fn help_shows_install_by_reference_and_search_remote() {
    let all = every_command();
    let help = |name: &str| {
        all.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.get_after_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
    };
    assert!(help("pkg install").contains("pkg install ghcr.io/acme/tool:1.4.0"));
    assert!(help("pkg install").contains("@sha256:"));
    assert!(help("pkg search").contains("pkg search --remote "));
    let top = help("pkg");
    for var in [
        "PKG_CONFIG",
        "PKG_JOBS",
        "PKG_PREFIX",
        "PKG_CACHE",
        "NO_COLOR",
    ] {
        assert!(
            top.contains(&format!("\n  {var} ")),
            "{var} is not in `pkg --help`"
        );
    }
}
