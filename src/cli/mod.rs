//! Command-line definitions (clap types), and the manual page generated from them (manual.rs).

mod args;
pub mod complete;
pub mod manual;

pub use args::*;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pkg",
    version,
    about = "Install packages stored in OCI registries (GitHub Container Registry and others)",
    after_help = "Examples:\n  pkg install hello                        the newest hello, linked into PREFIX/bin\n  pkg install ghcr.io/acme/tool:1.4.0      an image by reference, without a formula\n  pkg search --remote ghcr.io/acme/tool    the tags of a repository\n  pkg upgrade                              every installed package that is not pinned\n  pkg tap add acme https://github.com/acme/pkg-formulae.git\n  pkg doctor                               check the installation; each problem with a fix\n  pkg help install                         a command's options and examples\n\nEnvironment:\n  PKG_CONFIG             config file (default: ~/.config/pkg/config.toml)\n  PKG_PREFIX             where kegs and links go (default: ~/.local/share/pkg)\n  PKG_CACHE              download cache (default: ~/.cache/pkg)\n  PKG_FORMULAE           extra formula directories, colon-separated, searched first\n  PKG_JOBS               downloads at once (default: twice the CPUs, 4 to 16)\n  PKG_REGISTRY_MIRRORS   HOST=URL,… e.g. ghcr.io=http://127.0.0.1:5000\n  PKG_REGISTRY_USERNAME / PKG_REGISTRY_PASSWORD   registry credentials\n  PKG_CONNECT_TIMEOUT / PKG_READ_TIMEOUT           network timeouts in seconds (30 / 90)\n  PKG_RETRIES            tries per registry request (5)\n  PKG_MAX_UNPACK_BYTES / PKG_MAX_UNPACK_ENTRIES    caps on what one package may unpack\n  NO_COLOR               set (non-empty) for no colour with --color auto\n\nSettings: a flag beats the environment, which beats the config file; `pkg config` shows\neach one and where it came from.\n\nExit codes: 0 success, 1 failure (or outdated, for `pkg outdated`), 2 usage error."
)]
pub struct Cli {
    /// Print only errors: no status lines, warnings, caveats or progress bars.
    #[arg(
        long,
        short,
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// Also log each registry request (credentials and signed URLs redacted).
    #[arg(long, short, global = true, help_heading = "Global options")]
    pub verbose: bool,
    /// When to colour messages: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Prefix to work on (overrides PKG_PREFIX and the config file).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub prefix: Option<std::path::PathBuf>,
    /// Download cache (overrides PKG_CACHE and the config file).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub cache: Option<std::path::PathBuf>,
    /// Downloads at once (overrides PKG_JOBS and the config file).
    #[arg(long, short = 'j', global = true, help_heading = "Global options", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// Fail at once instead of waiting when another pkg is changing the prefix.
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_wait: bool,
    /// Use the cache only: no network at all; what is not cached is named, and the run fails
    /// (also PKG_OFFLINE=1).
    #[arg(long, global = true, help_heading = "Global options")]
    pub offline: bool,
    /// Install nothing whose formula has no `[verify]` policy met by a Sigstore signature
    /// (also PKG_REQUIRE_SIGNATURES=1, config `require_signatures`).
    #[arg(long, global = true, help_heading = "Global options")]
    pub require_signatures: bool,
    /// How a warm install takes a keg from the unpacked store: clone (reflinks, where the
    /// filesystem has them), hardlink (any filesystem; a write into a keg changes the store)
    /// or copy (also PKG_LINK_MODE, config `link_mode`).
    #[arg(long, global = true, help_heading = "Global options", value_name = "MODE", value_parser = crate::store::tree_copy::LinkMode::NAMES)]
    pub link_mode: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install packages and their dependencies.
    #[command(
        after_help = "Examples:\n  pkg install anakin\n  pkg install hello@1.2.0      exactly 1.2.0\n  pkg install 'hello@^1.2'     the newest 1.x from 1.2 on\n  pkg install --upgrade hello  install, or upgrade if an older version is installed\n  pkg install ghcr.io/acme/tool:1.4.0\n                               by reference, without a formula: a keg named `tool`\n  pkg install ghcr.io/acme/tool@sha256:<64 hex digits>\n                               exactly that manifest, whatever the tag says now"
    )]
    Install(InstallArgs),
    /// Upgrade installed packages to the newest versions their formulae allow.
    #[command(
        after_help = "Examples:\n  pkg upgrade                  everything that is not pinned\n  pkg upgrade hello --dry-run  show the plan only"
    )]
    Upgrade(UpgradeArgs),
    /// List installed packages that have a newer version.
    #[command(
        after_help = "Examples:\n  pkg outdated\n  pkg outdated hello && echo current\n  pkg outdated --json"
    )]
    Outdated(OutdatedArgs),
    /// Remove installed packages and their links.
    #[command(
        visible_alias = "remove",
        after_help = "Examples:\n  pkg uninstall hello\n  pkg uninstall hello@1.0.0    one version only"
    )]
    Uninstall(UninstallArgs),
    /// List installed packages, or the files of the named ones.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  pkg list\n  pkg list --versions\n  pkg list --json\n  pkg list hello            the files of hello's keg, one path a line"
    )]
    List(ListArgs),
    /// Show a formula and what is installed of it.
    #[command(after_help = "Examples:\n  pkg info anakin\n  pkg info anakin hello --json")]
    Info(InfoArgs),
    /// Search formula names and descriptions.
    #[command(
        after_help = "Examples:\n  pkg search hello                         formulae whose name or description mentions hello\n  pkg search                               every formula\n  pkg search --remote ghcr.io/acme/tool    the tags of a registry repository"
    )]
    Search(SearchArgs),
    /// Keep a package at its installed version during upgrades.
    #[command(after_help = "Examples:\n  pkg pin hello\n  pkg pin hello anakin")]
    Pin(NamesArgs),
    /// Let upgrades move a pinned package again.
    #[command(after_help = "Examples:\n  pkg unpin hello anakin")]
    Unpin(NamesArgs),
    /// Link an installed package's binaries into PREFIX/bin (and PREFIX/opt/NAME).
    #[command(
        after_help = "Examples:\n  pkg link hello\n  pkg link hello anakin\n  pkg link hello --dry-run\n  pkg link hello --overwrite"
    )]
    Link(LinkArgs),
    /// Remove a package's links; it stays installed and upgrades leave it unlinked.
    #[command(after_help = "Examples:\n  pkg unlink hello anakin")]
    Unlink(NamesArgs),
    /// Pour installed packages again at the version in use (a damaged keg is replaced whole).
    #[command(
        after_help = "Examples:\n  pkg reinstall hello\n  pkg reinstall hello anakin --dry-run"
    )]
    Reinstall(ReinstallArgs),
    /// List the packages installed on request that no other installed package needs.
    #[command(after_help = "Examples:\n  pkg leaves\n  pkg leaves --json")]
    Leaves(JsonArgs),
    /// Print the prefix, or where an installed package is (`PREFIX/opt/NAME`), as brew --prefix.
    #[command(
        after_help = "Examples:\n  pkg prefix\n  pkg prefix hello          PREFIX/opt/hello\n  export CPATH=\"$(pkg prefix zlib)/include\""
    )]
    Prefix(PrefixArgs),
    /// Say which installed package a command in PREFIX/bin belongs to.
    #[command(after_help = "Examples:\n  pkg which hello\n  pkg which hello anakin --json")]
    Which(WhichArgs),
    /// Print the shell lines that put PREFIX's commands and manual pages on PATH and MANPATH.
    #[command(
        after_help = "Examples:\n  pkg shellenv                  for the shell $SHELL names\n  eval \"$(pkg shellenv bash)\"   in ~/.bashrc (zsh: ~/.zshrc)\n  pkg shellenv fish | source    in ~/.config/fish/config.fish"
    )]
    Shellenv(ShellenvArgs),
    /// Download and verify packages into the cache without installing them.
    #[command(after_help = "Examples:\n  pkg fetch hello anakin")]
    Fetch(FetchArgs),
    /// Remove old kegs, unneeded dependencies, unreferenced cache blobs and stale downloads.
    #[command(
        after_help = "Examples:\n  pkg cleanup --dry-run\n  pkg cleanup --prune 30        also drop cached blobs unused for 30 days\n  pkg cleanup --cache-only      only the shared cache (every prefix using it is kept whole)\n  pkg cleanup --kegs-only       only this prefix's old kegs"
    )]
    Cleanup(CleanupArgs),
    /// Uninstall dependencies that no installed package needs any more.
    #[command(after_help = "Examples:\n  pkg autoremove --dry-run")]
    Autoremove(DryRunArgs),
    /// Show a package's dependencies.
    #[command(
        after_help = "Examples:\n  pkg deps app\n  pkg deps app --tree\n  pkg deps app --json"
    )]
    Deps(DepsArgs),
    /// Show installed packages that depend on a package.
    #[command(after_help = "Examples:\n  pkg uses libfoo\n  pkg uses libfoo --json")]
    Uses(UsesArgs),
    /// Pack a directory (or an installed keg) into a reproducible bottle in an OCI image layout;
    /// optionally push it to a registry and write it into a formula.
    #[command(
        after_help = "Examples:\n  pkg bottle ./out --name hello --version 1.2.0\n  pkg bottle ./out --name hello --version 1.2.0 --push ghcr.io/acme/hello:1.2.0 --write formulae/hello.toml\n  pkg bottle ./out-mac --name hello --version 1.2.0 --platform darwin/arm64 --push ghcr.io/acme/hello:1.2.0\n  pkg bottle --keg hello --push ghcr.io/acme/hello --json\n\nThe same files give the same digests (SOURCE_DATE_EPOCH sets the entries' mtime, default 1).\nPushing another platform to an existing tag makes (or extends) an image index."
    )]
    Bottle(Box<BottleArgs>),
    /// Store a registry username and password (or token) in pkg's own auth file (mode 0600).
    #[command(
        after_help = "Examples:\n  echo \"$GITHUB_TOKEN\" | pkg login ghcr.io --username octocat --password-stdin\n  printf 'octocat\\n%s\\n' \"$GITHUB_TOKEN\" | pkg login ghcr.io   (username and password as two lines)"
    )]
    Login(LoginArgs),
    /// Remove the credentials `pkg login` stored for a registry (or the mirror it is mirrored to).
    #[command(after_help = "Examples:\n  pkg logout ghcr.io\n  pkg logout 127.0.0.1:5000")]
    Logout(LogoutArgs),
    /// Show the settings in effect and where each comes from (flag, env, file, default).
    #[command(
        after_help = "Examples:\n  pkg config\n  pkg config --json\n  PKG_CONFIG=./pkg.toml pkg config"
    )]
    Config(JsonArgs),
    /// Check the installation for problems and say how to fix each.
    #[command(after_help = "Examples:\n  pkg doctor\n  pkg doctor --json")]
    Doctor(JsonArgs),
    /// Print a shell completion script: commands, options, and the names of installed and
    /// available packages (the script asks pkg for them as you type).
    #[command(
        after_help = "Examples:\n  pkg completions bash > ~/.local/share/bash-completion/completions/pkg\n  pkg completions zsh > ~/.zfunc/_pkg\n  pkg completions fish > ~/.config/fish/completions/pkg.fish\n  source <(pkg completions bash)     in ~/.bashrc, always matching the installed pkg"
    )]
    Completions(CompletionsArgs),
    /// Print the man page (roff): one page with every command, its options and examples.
    #[command(
        after_help = "Examples:\n  pkg manpage | man -l -\n  mkdir -p \"$(pkg prefix)/share/man/man1\" && pkg manpage > \"$(pkg prefix)/share/man/man1/pkg.1\"\n                               where `pkg shellenv`'s MANPATH looks: then `man pkg`"
    )]
    Manpage,
    /// Manage taps: formula directories by name, local, cloned from git, or from a formula API.
    #[command(
        after_help = "Examples:\n  pkg tap add acme https://github.com/acme/pkg-formulae.git\n  pkg tap add local ~/my-formulae\n  pkg tap            (lists them, as pkg tap list)\n  pkg tap remove acme"
    )]
    Tap {
        /// Without one, the taps are listed (`pkg tap list`).
        #[command(subcommand)]
        command: Option<TapCommand>,
    },
    /// A project's packages: a Pkgfile and its Pkgfile.lock (exact versions and digests).
    #[command(
        after_help = "Examples:\n  pkg bundle lock                     resolve ./Pkgfile into ./Pkgfile.lock\n  pkg bundle lock --platform darwin/arm64\n  pkg bundle install --locked         in CI: exactly the lock, or fail\n  pkg bundle check\n  pkg bundle dump > Pkgfile\n  pkg bundle cleanup --force"
    )]
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Verify who signed an image: its Sigstore bundles (cosign, GitHub attestations), found
    /// as OCI referrers and checked offline against the trust root.
    #[command(
        after_help = "Examples:\n  pkg verify ghcr.io/acme/tool:1.4.0 --certificate-identity https://github.com/acme/tool/.github/workflows/release.yml@refs/tags/v1.4.0 --certificate-oidc-issuer https://token.actions.githubusercontent.com\n  pkg verify ghcr.io/acme/tool@sha256:<64 hex digits> --key cosign.pub\n  pkg verify hello --key cosign.pub --json     the installed hello's manifest\n\nExit 0 when a signature meets the policy, 1 when none does (each one found is said, and why it failed)."
    )]
    Verify(VerifyArgs),
    /// Refresh the taps: `git pull --ff-only` in git taps, and ask each formula API whether it
    /// changed.
    #[command(after_help = "Examples:\n  pkg update")]
    Update,
}

impl Command {
    /// Whether the command was asked for `--json`: then its failure is a JSON document on
    /// stdout too (`commands::FailureDoc`).
    pub fn json(&self) -> bool {
        match self {
            Command::Install(a) => a.json,
            Command::Upgrade(a) => a.json,
            Command::Outdated(a) => a.json,
            Command::List(a) => a.json,
            Command::Info(a) => a.json,
            Command::Search(a) => a.json,
            Command::Uses(a) => a.json,
            Command::Reinstall(a) => a.json,
            Command::Which(a) => a.json,
            Command::Deps(a) => a.json,
            Command::Bottle(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Leaves(a) | Command::Config(a) | Command::Doctor(a) => a.json,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
