//! `pkg fetch`: download and verify packages into the cache without installing them.

use crate::cli::FetchArgs;
use crate::resolve::Request;

use super::{Ctx, human_bytes};

pub fn run(ctx: &Ctx, args: &FetchArgs) -> anyhow::Result<()> {
    let pourer = ctx.pourer()?;
    for arg in &args.packages {
        let request = Request::parse_in(arg, &ctx.formulary)?;
        let formula = super::load(ctx, &request.name)?;
        let Some(version) = formula
            .versions
            .keys()
            .rev()
            .find(|v| request.req.matches(v))
        else {
            let available: Vec<String> =
                formula.versions.keys().map(crate::version::show).collect();
            anyhow::bail!(
                "no version of `{}` matches `{}`; available: {}",
                request.name,
                request.req,
                available.join(", ")
            );
        };
        let bytes = pourer.fetch(
            &formula.versions[version],
            &format!("{} {}", formula.name, crate::version::Shown(version)),
        )?;
        let how = if bytes == 0 {
            "already in the cache".to_owned()
        } else {
            format!("{} downloaded", human_bytes(bytes))
        };
        ctx.reporter.status(
            "Fetched",
            &format!(
                "{} {} ({how})",
                formula.name,
                crate::version::Shown(version)
            ),
        );
    }
    Ok(())
}
