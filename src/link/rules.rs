//! Owns which keg directories are linked whole and which are made real directories in the
//! prefix, as Homebrew's `Keg#link` decides (`Library/Homebrew/keg.rb`): a directory the prefix
//! does not have yet becomes one link to the keg's directory, except where several packages
//! must be able to put files side by side (`share/man/man1`, `lib/pkgconfig`, `etc`, …).

use std::path::Path;

/// What linking does with one directory of a keg (prefix-relative, e.g. `share/vim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirRule {
    /// Always a real directory in the prefix; its entries are linked one by one.
    Mkpath,
    /// One link to the keg's directory when the prefix has nothing there; otherwise its entries
    /// are linked one by one into the directory that is there.
    Link,
    /// Not linked at all (directories inside `bin/` and `sbin/`).
    Skip,
}

/// Paths under `share/` that are always real directories (Homebrew's `SHARE_PATHS`).
const SHARE_PATHS: [&str; 30] = [
    "aclocal",
    "doc",
    "info",
    "java",
    "locale",
    "man",
    "man/man1",
    "man/man2",
    "man/man3",
    "man/man4",
    "man/man5",
    "man/man6",
    "man/man7",
    "man/man8",
    "man/cat1",
    "man/cat2",
    "man/cat3",
    "man/cat4",
    "man/cat5",
    "man/cat6",
    "man/cat7",
    "man/cat8",
    "applications",
    "gnome",
    "gnome/help",
    "icons",
    "mime-info",
    "pixmaps",
    "sounds",
    "postgresql",
];

/// The rule for the keg directory at prefix-relative `rel` (its first component is one of the
/// link directories). A top-level link directory itself is always real.
pub fn dir_rule(rel: &Path) -> DirRule {
    let Some(text) = rel.to_str() else {
        // Homebrew's rules are all ASCII; a name that is not UTF-8 matches none of them.
        return DirRule::Link;
    };
    let (top, rest) = text.split_once('/').unwrap_or((text, ""));
    if rest.is_empty() {
        return DirRule::Mkpath;
    }
    match top {
        "etc" => DirRule::Mkpath,
        "bin" | "sbin" => DirRule::Skip,
        "include" if versioned(rest, "postgresql@") => DirRule::Mkpath,
        "share" if share_mkpath(rest) => DirRule::Mkpath,
        "lib" if lib_mkpath(rest) => DirRule::Mkpath,
        "Frameworks" if framework_mkpath(rest) => DirRule::Mkpath,
        _ => DirRule::Link,
    }
}

/// `^NAME\d` (Homebrew's `/^postgresql@\d+/`).
fn versioned(rest: &str, name: &str) -> bool {
    rest.strip_prefix(name)
        .is_some_and(|tail| tail.starts_with(|c: char| c.is_ascii_digit()))
}

fn share_mkpath(rest: &str) -> bool {
    SHARE_PATHS.contains(&rest)
        || locale_dir(rest)
        || rest.starts_with("icons/")
        || rest.starts_with("zsh")
        || rest.starts_with("fish")
        || rest.starts_with("lua/")
        || rest.starts_with("guile/")
        || versioned(rest, "postgresql@")
}

/// Homebrew's `LOCALEDIR_RX`, `(locale|man)/([a-z]{2}|C|POSIX)…`, unanchored: `locale/` or `man/`
/// anywhere, followed by two lowercase letters, `C` or `POSIX` (the rest of the pattern is
/// optional, so it decides nothing).
fn locale_dir(rest: &str) -> bool {
    ["locale/", "man/"].iter().any(|key| {
        rest.match_indices(key).any(|(at, _)| {
            let after = &rest[at + key.len()..];
            let b = after.as_bytes();
            (b.len() >= 2 && b[0].is_ascii_lowercase() && b[1].is_ascii_lowercase())
                || after.starts_with('C')
                || after.starts_with("POSIX")
        })
    })
}

fn lib_mkpath(rest: &str) -> bool {
    const EXACT: [&str; 5] = ["pkgconfig", "cmake", "dtrace", "ghc", "php"];
    const PREFIXES: [&str; 10] = [
        "gdk-pixbuf",
        "gio",
        "lua",
        "mecab",
        "node",
        "ocaml",
        "perl5",
        "R",
        "ruby",
        "postgresql@",
    ];
    EXACT.contains(&rest)
        || PREFIXES
            .iter()
            .any(|p| rest.starts_with(p) && (*p != "postgresql@" || versioned(rest, p)))
        || python_dir(rest)
}

/// `^python[23]\.\d+`.
fn python_dir(rest: &str) -> bool {
    let b = rest.as_bytes();
    rest.starts_with("python")
        && b.len() > 8
        && (b[6] == b'2' || b[6] == b'3')
        && b[7] == b'.'
        && b[8].is_ascii_digit()
}

/// `[^/]*\.framework(/Versions)?$`, unanchored at the start.
fn framework_mkpath(rest: &str) -> bool {
    let tail = rest.strip_suffix("/Versions").unwrap_or(rest);
    tail.rsplit('/')
        .next()
        .is_some_and(|leaf| leaf.ends_with(".framework"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homebrews_link_rules_decide_which_directories_are_linked_whole() {
        let cases = [
            ("share", DirRule::Mkpath),
            ("share/vim", DirRule::Link),
            ("share/vim/vim90", DirRule::Link),
            ("share/man", DirRule::Mkpath),
            ("share/man/man1", DirRule::Mkpath),
            ("share/man/de", DirRule::Mkpath),
            ("share/locale/pt_BR", DirRule::Mkpath),
            ("share/locale/de/LC_MESSAGES", DirRule::Mkpath),
            ("share/locale/C.UTF-8", DirRule::Mkpath),
            ("share/doc", DirRule::Mkpath),
            ("share/doc/openssl", DirRule::Link),
            ("share/zsh/site-functions", DirRule::Mkpath),
            ("share/fish/vendor_completions.d", DirRule::Mkpath),
            ("share/icons/hicolor/48x48", DirRule::Mkpath),
            ("share/lua/5.4", DirRule::Mkpath),
            ("share/postgresql@16", DirRule::Mkpath),
            ("share/postgresql@x", DirRule::Link),
            ("lib/pkgconfig", DirRule::Mkpath),
            ("lib/pkgconfig/sub", DirRule::Link),
            ("lib/python3.12", DirRule::Mkpath),
            ("lib/python3.12/site-packages", DirRule::Mkpath),
            ("lib/python3", DirRule::Link),
            ("lib/perl5/site_perl", DirRule::Mkpath),
            ("lib/node_modules", DirRule::Mkpath),
            ("lib/x86_64-linux-gnu", DirRule::Link),
            ("lib/cmake", DirRule::Mkpath),
            ("lib/cmake/zlib", DirRule::Link),
            ("include/openssl", DirRule::Link),
            ("include/postgresql@15/server", DirRule::Mkpath),
            ("etc/bash_completion.d", DirRule::Mkpath),
            ("bin/helpers", DirRule::Skip),
            ("sbin/x", DirRule::Skip),
            ("Frameworks/Python.framework", DirRule::Mkpath),
            ("Frameworks/Python.framework/Versions", DirRule::Mkpath),
            ("Frameworks/Python.framework/Versions/3.12", DirRule::Link),
        ];
        for (path, want) in cases {
            assert_eq!(dir_rule(Path::new(path)), want, "{path}");
        }
    }
}
