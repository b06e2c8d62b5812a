//! `pkg config`: the settings in effect and where each came from, the mirror chains and the
//! hosts that have credentials (never the credentials).

use std::collections::BTreeMap;
use std::io::Write as _;

use super::{Ctx, JSON_SCHEMA, print_json};
use crate::settings::Shown;

/// `pkg config --json`.
#[derive(serde::Serialize)]
struct Doc<'a> {
    schema: u32,
    /// The config file read; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_file: Option<String>,
    settings: &'a BTreeMap<&'static str, Shown>,
    /// `ghcr.io → http://mirror:5000, then https://ghcr.io`, per mirrored host.
    mirror_chains: Vec<String>,
    /// Hosts with credentials, and where they come from.
    credentials_for: Vec<Credentialed>,
}

#[derive(serde::Serialize)]
struct Credentialed {
    host: String,
    from: String,
}

pub fn show(ctx: &Ctx, as_json: bool) -> anyhow::Result<()> {
    let settings = ctx.settings;
    let file = settings
        .config_file
        .as_ref()
        .map(|p| p.display().to_string());
    let chains = settings.mirrors.describe();
    let hosts = settings.credentials.hosts();
    if as_json {
        return print_json(&Doc {
            schema: JSON_SCHEMA,
            config_file: file,
            settings: &settings.shown,
            mirror_chains: chains,
            credentials_for: hosts
                .into_iter()
                .map(|(host, from)| Credentialed { host, from })
                .collect(),
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "config file: {}",
        file.unwrap_or_else(|| match crate::settings::config_path() {
            Some(p) => format!("none ({} does not exist)", p.display()),
            None => "none".into(),
        })
    )?;
    for (key, s) in &settings.shown {
        writeln!(out, "{key:<16} {}  ({})", s.text, s.source)?;
    }
    for chain in &chains {
        writeln!(out, "{:<16} {chain}", "mirror chain")?;
    }
    for (host, from) in &hosts {
        writeln!(out, "{:<16} {host} (from {from})", "logged in")?;
    }
    Ok(())
}
