//! Command-line definitions (clap types only).

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pkg",
    version,
    about = "Install packages stored in OCI registries (GitHub Container Registry and others)",
    after_help = "Environment:\n  PKG_PREFIX             where kegs and links go (default: ~/.local/share/pkg)\n  PKG_CACHE              download cache (default: ~/.cache/pkg)\n  PKG_FORMULAE           extra formula directories, colon-separated, searched first\n  PKG_REGISTRY_MIRRORS   HOST=URL,… e.g. ghcr.io=http://127.0.0.1:5000\n  PKG_REGISTRY_USERNAME / PKG_REGISTRY_PASSWORD   registry credentials"
)]
pub struct Cli {
    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install packages and their dependencies.
    #[command(
        after_help = "Examples:\n  pkg install anakin\n  pkg install hello@1.2.0      exactly 1.2.0\n  pkg install 'hello@^1.2'     the newest 1.x from 1.2 on"
    )]
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Packages, each `NAME` (newest), `NAME@X.Y.Z` (exactly) or `NAME@REQ` (semver range).
    #[arg(required = true, value_name = "NAME[@VERSION]")]
    pub packages: Vec<String>,
    /// Replace files in PREFIX/bin that pkg did not install.
    #[arg(long)]
    pub overwrite: bool,
    /// Print what would be installed and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}
