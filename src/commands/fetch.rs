//! `pkg fetch`: download and verify packages, with the dependencies an install of them would
//! need, into the cache without installing them (so the install can then run offline).

use crate::cli::FetchArgs;
use crate::platform::Platform;
use crate::resolve::{self, Request};

use super::{Ctx, human_bytes};

pub fn run(ctx: &Ctx, args: &FetchArgs) -> anyhow::Result<()> {
    let requests = args
        .packages
        .iter()
        .map(|arg| Request::parse_in(arg, &ctx.formulary))
        .collect::<Result<Vec<_>, _>>()?;
    // The versions an install would pick, dependencies first: the planner's.
    let plan = resolve::resolve(&requests, &ctx.formulary, &ctx.state(), &Platform::host())?;
    let pourer = ctx.pourer()?;
    for step in &plan.steps {
        let (formula, version) = (&step.formula, &step.version);
        let bytes = pourer.fetch(
            &formula.versions[version],
            &format!("{} {}", formula.name, crate::version::Shown(version)),
        )?;
        let how = if bytes == 0 {
            "already in the cache".to_owned()
        } else {
            format!("{} downloaded", human_bytes(bytes))
        };
        let role = if step.on_request {
            ""
        } else {
            ", a dependency"
        };
        ctx.reporter.status(
            "Fetched",
            &format!(
                "{} {} ({how}{role})",
                formula.name,
                crate::version::Shown(version)
            ),
        );
    }
    Ok(())
}
