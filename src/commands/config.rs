//! `pkg config`: the settings in effect and where each came from.

use std::io::Write as _;

use super::{Ctx, JSON_SCHEMA, print_json};

pub fn show(ctx: &Ctx, as_json: bool) -> anyhow::Result<()> {
    let settings = ctx.settings;
    let file = settings
        .config_file
        .as_ref()
        .map(|p| p.display().to_string());
    if as_json {
        /// One setting: its value and where it came from.
        #[derive(serde::Serialize)]
        struct Setting {
            value: String,
            source: crate::settings::Source,
        }
        #[derive(serde::Serialize)]
        struct Doc {
            schema: u32,
            config_file: Option<String>,
            settings: std::collections::BTreeMap<String, Setting>,
        }
        let settings = settings
            .shown
            .iter()
            .map(|(k, (v, src))| {
                (
                    (*k).to_owned(),
                    Setting {
                        value: v.clone(),
                        source: *src,
                    },
                )
            })
            .collect();
        return print_json(&Doc {
            schema: JSON_SCHEMA,
            config_file: file,
            settings,
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
    for (key, (value, source)) in &settings.shown {
        writeln!(out, "{key:<16} {value}  ({source})")?;
    }
    Ok(())
}
