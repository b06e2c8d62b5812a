//! `pkg install`: resolve the requests, pour each missing keg (dependencies first) and link it.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::cellar::Cellar;
use crate::cli::InstallArgs;
use crate::formula::Formulary;
use crate::link;
use crate::lock;
use crate::platform::Platform;
use crate::pour::Pourer;
use crate::report::Reporter;
use crate::resolve::{self, Request};
use crate::settings::Settings;

use super::{CellarVersions, human_bytes, pourer};

pub fn run(settings: &Settings, args: &InstallArgs, reporter: &dyn Reporter) -> anyhow::Result<()> {
    let requests = args
        .packages
        .iter()
        .map(|a| Request::parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    let formulary = Formulary::new(settings.formula_dirs.clone());
    let cellar = Cellar::new(&settings.prefix);
    let host = Platform::host();
    let plan = resolve::resolve(&requests, &formulary, &CellarVersions(&cellar), &host)?;

    if args.dry_run {
        for step in &plan.steps {
            let state = if cellar.is_installed(&step.formula.name, &step.version) {
                "installed"
            } else {
                "install"
            };
            println!("{state} {} {}", step.formula.name, step.version);
        }
        return Ok(());
    }

    let _lock = lock::acquire(&settings.prefix, reporter)?;
    let resolved: BTreeMap<String, String> = plan
        .steps
        .iter()
        .map(|s| (s.formula.name.clone(), s.version.to_string()))
        .collect();
    let mut pour: Option<Pourer> = None;
    for step in &plan.steps {
        let (formula, version) = (&step.formula, &step.version);
        let name = &formula.name;
        if cellar.is_installed(name, version) {
            if step.on_request {
                reporter.status("Skipping", &format!("{name} {version}: already installed"));
            }
            continue;
        }
        let pourer = match &pour {
            Some(p) => p,
            None => pour.insert(pourer(settings, reporter)?),
        };
        let spec = &formula.versions[version];
        reporter.status(
            "Fetching",
            &format!("{name} {version} ({}:{})", spec.repository, spec.tag),
        );
        let dependencies = spec
            .depends_on
            .keys()
            .filter_map(|d| Some((d.clone(), resolved.get(d)?.clone())))
            .collect();
        let poured = pourer
            .pour(&cellar, formula, version, step.on_request, dependencies)
            .with_context(|| format!("installing {name} {version} failed; nothing was changed"))?;
        if let Err(e) = link::link(
            &settings.prefix,
            name,
            &version.to_string(),
            &poured.bins,
            args.overwrite,
        ) {
            // All or nothing: a keg that cannot be linked is taken back out.
            let _ = std::fs::remove_dir_all(&poured.keg);
            if let Some(parent) = poured.keg.parent() {
                let _ = std::fs::remove_dir(parent);
            }
            return Err(anyhow::Error::new(e).context(format!(
                "installing {name} {version} failed; nothing was changed"
            )));
        }
        reporter.status(
            "Installed",
            &format!(
                "{name} {version} ({} files, {}) in {}",
                poured.stats.entries,
                human_bytes(poured.stats.bytes),
                poured.keg.display()
            ),
        );
    }
    Ok(())
}
