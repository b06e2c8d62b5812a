//! Dynamic shell completion (clap_complete's `CompleteEnv`): the shell asks `pkg` itself, so
//! package names complete from what is installed and what the formulae offer right now.

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

/// The variable the registration script sets when it asks `pkg` for candidates.
pub const VAR: &str = "PKG_COMPLETE";

/// Candidates: the installed packages (what uninstall, upgrade, pin … take).
pub fn installed_names() -> ArgValueCandidates {
    ArgValueCandidates::new(|| candidates(false))
}

/// Candidates: installed packages and every formula (what install, info, deps … take).
pub fn known_names() -> ArgValueCandidates {
    ArgValueCandidates::new(|| candidates(true))
}

/// Settings as the environment and config file give them (a completion sees no flags); any
/// problem means no candidates rather than an error in the middle of the user's typing.
fn candidates(formulae: bool) -> Vec<CompletionCandidate> {
    let Ok(settings) = crate::settings::Settings::load(&crate::settings::Flags::default()) else {
        return Vec::new();
    };
    let mut names = crate::cellar::Cellar::new(&settings.prefix).names();
    if formulae {
        names.extend(crate::tap::formulary(&settings).names());
    }
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The script that registers pkg's completion with `shell` (`pkg completions SHELL`): it calls
/// `pkg` back with PKG_COMPLETE set for each completion.
pub fn registration(shell: clap_complete::Shell) -> std::io::Result<Vec<u8>> {
    let name = shell.to_string();
    let mut out = Vec::new();
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(&name) else {
        return Err(std::io::Error::other(format!(
            "no dynamic completion for {name}"
        )));
    };
    completer.write_registration(VAR, "pkg", "pkg", "pkg", &mut out)?;
    Ok(out)
}
