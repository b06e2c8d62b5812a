//! `pkg install`: the planner's install plan, printed (`--dry-run`) or carried out — kegs
//! poured several at once, then linked in dependency order; a package that fails leaves
//! nothing of itself behind and does not stop the others.

use crate::cli::InstallArgs;
use crate::resolve::Request;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &InstallArgs) -> anyhow::Result<()> {
    let mut requests = Vec::new();
    for arg in &args.packages {
        let request = if crate::references::is_reference(arg) {
            let Some(request) = by_reference(ctx, arg, args.dry_run)? else {
                continue;
            };
            request
        } else {
            Request::parse_in(arg, &ctx.formulary)?
        };
        requests.push(request);
    }
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock()?)
    };
    let plan = crate::plan::install(&mut ctx.state(), &requests, args.upgrade)?;
    super::outcome::carry_out_with(ctx, &plan, args.dry_run, args.json, true, args.overwrite)
}

/// `REGISTRY/REPO[:TAG]` or `…@DIGEST`: recorded as a formula (unless a dry run), then
/// requested at exactly its version like any other package.
fn by_reference(ctx: &Ctx, arg: &str, dry_run: bool) -> anyhow::Result<Option<Request>> {
    let reference = crate::references::parse(arg)?;
    let name = reference.name_among(|| ctx.formulary.names())?;
    let refs = crate::references::References::new(&ctx.settings.prefix);
    let existing = ctx.formulary.load(&name).ok();
    if dry_run {
        // Refused here as the run refuses it; nothing is recorded.
        let (name, version) = refs.check(arg, &name, &reference, existing)?;
        let state = if ctx.cellar.is_installed(&name, &version) {
            "installed"
        } else {
            "install"
        };
        println!("{state} {name} {} ({arg})", crate::version::Shown(&version));
        return Ok(None);
    }
    let (name, version) = refs.record(arg, &name, &reference, existing)?;
    // `{version}` spells it whole (`10.44.0+x2`), so the request is exactly that version.
    Ok(Some(Request::parse(&format!("{name}@{version}"))?))
}
