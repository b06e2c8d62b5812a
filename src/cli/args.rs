//! The arguments of each command (clap types), and the parsers of their values.

use clap::{Args, Subcommand};

use super::complete::{installed_names, known_names};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Packages, each `NAME` (newest), `NAME@X.Y.Z` (exactly), `NAME@REQ` (semver range), or a
    /// reference `REGISTRY/REPO[:TAG]` / `REGISTRY/REPO@sha256:…` to install without a formula.
    #[arg(required = true, value_name = "NAME[@VERSION]|REFERENCE", add = known_names())]
    pub packages: Vec<String>,
    /// Replace files in PREFIX/bin that pkg did not install.
    #[arg(long)]
    pub overwrite: bool,
    /// Print what would be installed and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Upgrade packages that are installed at an older version (otherwise pkg says so and leaves them).
    #[arg(long, short = 'U')]
    pub upgrade: bool,
    /// Print the result (or, with --dry-run, the plan) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The package name for the one reference given (default: its repository's last part).
    #[arg(long = "as", value_name = "NAME", value_parser = package_name)]
    pub as_name: Option<String>,
    /// Not a flag of pkg's (brew's): answered with what to use instead.
    #[arg(long, short = 'f', hide = true)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Packages to upgrade (default: every installed package).
    #[arg(value_name = "NAME", value_parser = package_name, add = installed_names())]
    pub packages: Vec<String>,
    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Keep the old kegs after switching to the new ones.
    #[arg(long)]
    pub keep_old: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Not a flag of pkg's (apt's, dnf's): answered with what to use instead.
    #[arg(long, short = 'y', hide = true)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct OutdatedArgs {
    /// Packages to check (default: every installed package). Exit 1 if any of them is outdated.
    #[arg(value_name = "NAME", value_parser = package_name, add = installed_names())]
    pub packages: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Packages to remove: `NAME` (every installed version) or `NAME@VERSION`.
    #[arg(required = true, value_name = "NAME[@VERSION]", value_parser = package_name, add = installed_names())]
    pub packages: Vec<String>,
    /// Also remove kegs whose receipt is missing or unreadable.
    #[arg(long, short)]
    pub force: bool,
    /// Remove even when other installed packages depend on it.
    #[arg(long)]
    pub ignore_dependencies: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Installed packages whose files to list (their kegs' files, one path a line) instead of
    /// the packages.
    #[arg(value_name = "NAME[@VERSION]", value_parser = package_name, add = installed_names())]
    pub names: Vec<String>,
    /// Show the installed versions too.
    #[arg(long)]
    pub versions: bool,
    /// Only pinned packages.
    #[arg(long)]
    pub pinned: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[arg(required = true, value_name = "[SOURCE/]NAME", value_parser = formula_name, add = known_names())]
    pub names: Vec<String>,
    /// Print JSON on stdout (an array when several names are given).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Text to look for (case-insensitive) in names and descriptions; empty lists everything.
    /// With --remote: a repository, REGISTRY/PATH.
    #[arg(default_value = "")]
    pub text: String,
    /// List the tags of a registry repository instead (follows pagination, at most 100 pages).
    #[arg(long)]
    pub remote: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One or more installed packages.
#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "NAME", value_parser = package_name, add = installed_names())]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UsesArgs {
    #[arg(value_parser = package_name, add = known_names())]
    pub name: String,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReinstallArgs {
    /// Installed packages: each is poured again at the version in use, from its formula.
    #[arg(required = true, value_name = "NAME", value_parser = package_name, add = installed_names())]
    pub packages: Vec<String>,
    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PrefixArgs {
    /// A package: print its opt path (`PREFIX/opt/NAME`, the linked version's keg) instead.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct WhichArgs {
    /// Commands, as linked in PREFIX/bin (`hello`), or paths to them.
    #[arg(required = true, value_name = "BIN")]
    pub bins: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The shells `pkg shellenv` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EnvShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ShellenvArgs {
    /// The shell to write for (default: the one $SHELL names, else bash).
    #[arg(value_enum)]
    pub shell: Option<EnvShell>,
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    #[arg(required = true, value_name = "NAME", value_parser = package_name, add = installed_names())]
    pub names: Vec<String>,
    /// Replace files in PREFIX/bin that pkg did not install.
    #[arg(long)]
    pub overwrite: bool,
    /// List the links that would be made, and any conflicts; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[arg(required = true, value_name = "NAME[@VERSION]", add = known_names())]
    pub packages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Show what would be removed and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also remove cached blobs that installed kegs still reference if unused for DAYS days
    /// (they are only needed for offline reinstalls); 0 means all of them.
    #[arg(long, value_name = "DAYS")]
    pub prune: Option<u64>,
    /// Only the shared cache: blobs no prefix that uses it references, and dead downloads;
    /// kegs are left alone.
    #[arg(long, conflicts_with = "kegs_only")]
    pub cache_only: bool,
    /// Only this prefix's old kegs and unneeded dependencies; the cache is left alone.
    #[arg(long)]
    pub kegs_only: bool,
}

#[derive(Debug, Args)]
pub struct DryRunArgs {
    /// Show what would be removed and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DepsArgs {
    /// Package, `NAME` (installed version, else newest) or `NAME@VERSION`; `SOURCE/NAME` picks
    /// the formula source.
    #[arg(value_parser = formula_name, add = known_names())]
    pub name: String,
    /// Show the dependencies as a tree.
    #[arg(long, conflicts_with = "json")]
    pub tree: bool,
    /// Print JSON on stdout (each dependency with its version and the packages that need it).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BottleArgs {
    /// Directory whose contents become the keg.
    #[arg(
        value_name = "DIR",
        required_unless_present = "keg",
        conflicts_with = "keg"
    )]
    pub dir: Option<std::path::PathBuf>,
    /// Bottle an installed keg instead: NAME (the linked or newest version) or NAME@VERSION.
    /// Its .pkg/ receipt is left out.
    #[arg(long, value_name = "NAME[@VERSION]", value_parser = package_name)]
    pub keg: Option<String>,
    /// Package name (default with --keg: the keg's).
    #[arg(long, required_unless_present = "keg")]
    pub name: Option<String>,
    /// Package version: semver, or as Homebrew writes it (`1.2`, `1.2.3_1`) (default with --keg: the keg's).
    #[arg(long, required_unless_present = "keg")]
    pub version: Option<String>,
    /// Platform of the bottle, OS/ARCH[/VARIANT] (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// OCI image layout to write into (created when missing; default: ./NAME-VERSION.oci).
    #[arg(long, short, value_name = "LAYOUT_DIR")]
    pub output: Option<std::path::PathBuf>,
    /// Tag in the layout (default: the --push tag, else the version).
    #[arg(long)]
    pub tag: Option<String>,
    /// Push to REGISTRY/REPOSITORY[:TAG] (tag default: the layout tag); REGISTRY/NAMESPACE/
    /// names the image as Homebrew does (`openssl@3` → NAMESPACE/openssl/3, `gtk+3` → gtkx3).
    #[arg(long, value_name = "REGISTRY/REPO[:TAG]")]
    pub push: Option<String>,
    /// Another repository of the same registry that may hold the blobs (cross-repository
    /// mount instead of an upload). Repeatable.
    #[arg(long, value_name = "REGISTRY/REPO")]
    pub mount_from: Vec<String>,
    /// Add or update this version in a formula file (comments and other versions are kept);
    /// without it the entry is printed.
    #[arg(long, value_name = "FORMULA.toml")]
    pub write: Option<std::path::PathBuf>,
    /// With --push: attach this Sigstore bundle (signed over the pushed manifest's digest, by
    /// cosign or GitHub's attestations in CI) as an OCI referrer, listed in the fallback tag
    /// `sha256-<hex>`. Repeatable.
    #[arg(long, value_name = "FILE", requires = "push")]
    pub attach_bundle: Vec<std::path::PathBuf>,
    /// Print a JSON summary on stdout (digests, sizes, platforms).
    #[arg(long)]
    pub json: bool,
    /// How the layer is compressed: gzip (default; what brew and every OCI tool read), zstd or
    /// zstd:LEVEL (1-19, default 3; several times faster to install, not for Homebrew's brew).
    #[arg(long, value_name = "gzip|zstd[:LEVEL]", default_value = "gzip")]
    pub compression: String,
    /// Source repository URL (annotation org.opencontainers.image.source).
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// SPDX license expression (annotation org.opencontainers.image.licenses).
    #[arg(long, value_name = "SPDX")]
    pub license: Option<String>,
    /// Description (annotation org.opencontainers.image.description).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Record a creation time (SOURCE_DATE_EPOCH, else now). Off by default: a timestamp makes
    /// the manifest differ between builds.
    #[arg(long)]
    pub created: bool,
    /// Blobs larger than this are uploaded in chunks (bytes; K/M/G/KiB/MiB/GiB suffixes allowed).
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub chunk_threshold: u64,
    /// Size of each uploaded chunk.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub chunk_size: u64,
    /// Move a version tag (`1.0.0`, `v2`) that already points at other content; channel tags
    /// (`latest`, `main`) move without it.
    #[arg(long)]
    pub force: bool,
}

/// A formula as a command names it: a [`package_name`], or `SOURCE/NAME[@…]` with SOURCE a tap
/// (`acme`, `owner/name`) or one of pkg's own sources (`local`, `references`, `builtin`).
pub fn formula_name(value: &str) -> Result<String, String> {
    let name_end = value.find('@').unwrap_or(value.len());
    if let Some((source, rest)) = value[..name_end].rsplit_once('/') {
        let part_ok = |p: &str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                })
        };
        let source_ok = source.split('/').count() <= 2 && source.split('/').all(part_ok);
        if source_ok && package_name(&value[source.len() + 1..]).is_ok() && !rest.is_empty() {
            return Ok(value.to_owned());
        }
        // Not a `SOURCE/NAME`: said as a bad package name (a path is never one).
        return package_name(value).map_err(|e| {
            format!("{e}; a formula source is named as `SOURCE/NAME` (a tap, `local`, `references` or `builtin`)")
        });
    }
    package_name(value)
}

/// `1048576`, `512K`, `16M`, `16MiB`, `1G` → bytes.
/// A package name as a command names it, `NAME` or `NAME@…`: what comes before the last `@`
/// (or the whole, for Homebrew-style `openssl@3`) must be a valid formula name, so no argument
/// can name a path (`../bin`, `/home/me`) under the Cellar, `opt/` or `var/pkg/`.
pub fn package_name(value: &str) -> Result<String, String> {
    let base = value.rsplit_once('@').map_or(value, |(name, _)| name);
    if crate::formula::valid_name(value) || crate::formula::valid_name(base) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a package name: names use lowercase letters, digits and `-_.+@`, and start with a letter or digit"
        ))
    }
}

pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a size like 1048576, 512K or 16MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit in `{value}`; use K, M or G")),
    };
    match number.checked_mul(factor) {
        Some(0) => Err("the size must be at least 1 byte".into()),
        Some(n) => Ok(n),
        None => Err(format!("`{value}` is too large")),
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host, like ghcr.io or 127.0.0.1:5000.
    pub registry: String,
    /// Username (else the first line of standard input).
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password or token from standard input (the whole input, one line).
    #[arg(long)]
    pub password_stdin: bool,
    /// Store the credentials without checking them with the registry first.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host, like ghcr.io or 127.0.0.1:5000.
    pub registry: String,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct BundleFile {
    /// The Pkgfile (its lock is PATH.lock beside it).
    #[arg(long, value_name = "PATH", default_value = "Pkgfile")]
    pub file: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Resolve the Pkgfile and write Pkgfile.lock: versions, repositories, tags, digests and
    /// layers for this machine's platform and each --platform.
    #[command(
        after_help = "Examples:\n  pkg bundle lock\n  pkg bundle lock --platform linux/arm64 --platform darwin/arm64"
    )]
    Lock {
        #[command(flatten)]
        file: BundleFile,
        /// Also lock for this platform (OS/ARCH[/VARIANT]); repeatable.
        #[arg(long, value_name = "OS/ARCH")]
        platform: Vec<String>,
    },
    /// Install exactly what Pkgfile.lock says, by digest (locking first when there is no lock
    /// or the Pkgfile changed).
    #[command(
        after_help = "Examples:\n  pkg bundle install\n  pkg bundle install --locked    fail if the Pkgfile no longer matches the lock\n  pkg bundle install --frozen    install the lock as it is, without resolving"
    )]
    Install {
        #[command(flatten)]
        file: BundleFile,
        /// Fail (installing nothing) when the Pkgfile no longer matches the lock.
        #[arg(long, conflicts_with = "frozen")]
        locked: bool,
        /// Install from the lock without reading the Pkgfile or resolving.
        #[arg(long)]
        frozen: bool,
        /// Replace files or links of other packages in the way of the links (as `pkg install
        /// --overwrite`).
        #[arg(long)]
        overwrite: bool,
    },
    /// Exit 0 when the lock still matches the Pkgfile and everything it names is installed at
    /// its locked digest, else 1.
    #[command(after_help = "Examples:\n  pkg bundle check || pkg bundle install")]
    Check {
        #[command(flatten)]
        file: BundleFile,
    },
    /// Print a Pkgfile of the packages installed on request (and the taps).
    #[command(after_help = "Examples:\n  pkg bundle dump > Pkgfile")]
    Dump,
    /// List the packages installed on request that the Pkgfile does not name; --force
    /// uninstalls them.
    #[command(after_help = "Examples:\n  pkg bundle cleanup\n  pkg bundle cleanup --force")]
    Cleanup {
        #[command(flatten)]
        file: BundleFile,
        /// Uninstall them (and the dependencies nothing else needs).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TapCommand {
    /// Add a tap from a local directory (linked; a git repository is cloned), a git URL (cloned),
    /// or a formula JSON API (homebrew/core's: its bottles installed by their sha256).
    #[command(
        after_help = "Examples:\n  pkg tap add acme https://github.com/acme/pkg-formulae.git   cloned; `pkg update` pulls it\n  pkg tap add local ~/my-formulae                            linked; edits show at once\n  pkg tap add homebrew/core                                  Homebrew's formula API (formulae.brew.sh)\n  pkg tap add homebrew/core --api http://127.0.0.1:8000/formula.json\n\nFormulae are read from the tap's formulae/ directory if it has one, else from its top.\nAn API tap keeps the formulae written from the API; `pkg update` asks whether it changed (ETag)."
    )]
    Add {
        /// Name of the tap: lowercase letters, digits and `-_.`, or OWNER/NAME (homebrew/core).
        name: String,
        /// A local directory, or a git URL (https://, ssh://, git@…, file://, or ending in .git).
        /// Not needed for homebrew/core, whose formulae come from Homebrew's formula API.
        #[arg(conflicts_with = "api")]
        source: Option<String>,
        /// Read the formulae from this formula JSON API document (homebrew/core's shape; a URL
        /// ending in `/` means its formula.json): https://, http:// or file://.
        #[arg(long, value_name = "URL")]
        api: Option<String>,
    },
    /// List the taps: name, kind (git, dir or api) and directory, tab-separated.
    #[command(
        after_help = "Examples:\n  pkg tap list\n  pkg tap list | cut -f1     the names only"
    )]
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a tap (a linked directory itself is left alone).
    #[command(after_help = "Examples:\n  pkg tap remove acme")]
    Remove {
        /// Name of the tap, as `pkg tap list` shows it.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// `REGISTRY/REPO:TAG`, `REGISTRY/REPO@sha256:…`, or an installed package's NAME (the
    /// manifest it was installed from).
    #[arg(value_name = "REFERENCE|NAME")]
    pub reference: String,
    /// The signer's identity in its certificate (an email, or a workflow URI), exactly. One of
    /// it, --certificate-github-workflow-repository or --key is needed (pkg says which, when
    /// none is given).
    #[arg(long, value_name = "IDENTITY")]
    pub certificate_identity: Option<String>,
    /// The OIDC issuer of the signer's certificate, exactly (without it: a certificate that
    /// names no issuer, as GitHub's release attestations).
    #[arg(long, value_name = "URL", requires = "certificate_identity")]
    pub certificate_oidc_issuer: Option<String>,
    /// Any GitHub Actions workflow of OWNER/REPO (GitHub's issuer), instead of an identity.
    #[arg(long, value_name = "OWNER/REPO", conflicts_with_all = ["certificate_identity", "key"])]
    pub certificate_github_workflow_repository: Option<String>,
    /// A PEM public key the bundle must be signed with (instead of an identity).
    #[arg(long, value_name = "FILE", conflicts_with = "certificate_identity")]
    pub key: Option<std::path::PathBuf>,
    /// A trust root (trusted_root.json) instead of Sigstore's public-good one, embedded in pkg.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<std::path::PathBuf>,
    /// With --key: accept a signature no transparency log saw (cosign's flag of that name).
    #[arg(long, requires = "key")]
    pub insecure_ignore_tlog: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
