//! `pkg shellenv`: the shell lines that put a prefix's `bin/` on PATH and its `share/man` on
//! MANPATH, each added once however often they are run (bash, zsh, fish).

use std::path::Path;

use crate::cli::EnvShell;

/// The shell `$SHELL` names (`/usr/bin/zsh` → zsh), else bash.
pub fn from_env() -> EnvShell {
    let shell = std::env::var("SHELL").unwrap_or_default();
    match shell.rsplit('/').next().unwrap_or_default() {
        "zsh" => EnvShell::Zsh,
        "fish" => EnvShell::Fish,
        _ => EnvShell::Bash,
    }
}

/// The lines for `shell`. A MANPATH of pkg's alone would hide the system's pages, so it ends in
/// `:` (man-db then adds its defaults), as `brew shellenv` does.
pub fn script(shell: EnvShell, prefix: &Path) -> String {
    let bin = prefix.join("bin");
    let man = prefix.join("share").join("man");
    let (bin, man) = (bin.to_string_lossy(), man.to_string_lossy());
    match shell {
        EnvShell::Bash | EnvShell::Zsh => {
            let (b, m) = (posix_quote(&bin), posix_quote(&man));
            format!(
                "case \":${{PATH:-}}:\" in *:{b}:*) ;; *) export PATH={b}\"${{PATH:+:$PATH}}\" ;; esac\n\
                 case \":${{MANPATH:-}}:\" in *:{m}:*) ;; *) export MANPATH={m}\":${{MANPATH#:}}\" ;; esac\n"
            )
        }
        EnvShell::Fish => {
            let (b, m) = (fish_quote(&bin), fish_quote(&man));
            format!(
                "contains -- {b} $PATH; or set --global --export PATH {b} $PATH\n\
                 set --query MANPATH; or set --global --export MANPATH ''\n\
                 contains -- {m} $MANPATH; or set --global --export MANPATH {m} $MANPATH\n"
            )
        }
    }
}

/// `'…'`, with each `'` written as `'\''`.
fn posix_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `'…'`, with `\` and `'` escaped as fish reads them inside single quotes.
fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_with_quotes_and_spaces_is_quoted_for_each_shell() {
        let p = Path::new("/home/o'neil/my pkg");
        let bash = script(EnvShell::Bash, p);
        assert!(bash.contains(r"'/home/o'\''neil/my pkg/bin'"), "{bash}");
        let fish = script(EnvShell::Fish, p);
        assert!(fish.contains(r"'/home/o\'neil/my pkg/bin'"), "{fish}");
    }
}
