//! `pkg bottle`: the install flow in reverse. A directory (or an installed keg) → a reproducible
//! layer, config and manifest in an OCI image layout → optionally pushed to a registry → the
//! formula entry printed, or written into the formula file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::bottle::build::{self, BuildOptions};
use crate::bottle::inputs::{parse_push, read_formula_of, rfc3339};
use crate::bottle::make::{Push, Request};
use crate::bottle::publish::PushOptions;
use crate::bottle::{self, BottleSpec};
use crate::cli::BottleArgs;
use crate::formula;
use crate::platform::Platform;
use crate::registry::Repository;
use crate::registry::repository::valid_tag;

use super::{BadInput, Ctx};

pub fn run(ctx: &Ctx, args: &BottleArgs) -> anyhow::Result<()> {
    let (dir, name, version, exclude) = source(ctx, args)?;
    check_name_and_version(&name, &version)?;
    // Bundles to attach are read and checked before anything is built or pushed.
    let bundles = bottle::inputs::read_bundles(&args.attach_bundle)?;
    let platform = match &args.platform {
        Some(p) => bottle::parse_platform(p)?,
        None => Platform::host(),
    };
    let push = args
        .push
        .as_deref()
        .map(|p| parse_push(p, &name))
        .transpose()?;
    let compression: build::Compression = args.compression.parse().map_err(BadInput)?;
    if compression != build::Compression::Gzip
        && let Some(p) = args.push.as_deref().filter(|p| p.ends_with('/'))
    {
        return Err(BadInput(format!(
            "--push {p} names the image as Homebrew does, and brew reads only gzip bottles: leave out --compression {} (or push it under a name of your own)",
            args.compression
        ))
        .into());
    }
    let tag = match (&args.tag, &push) {
        (Some(t), _) => t.clone(),
        (None, Some((_, Some(t)))) => t.clone(),
        _ => version.clone(),
    };
    if !valid_tag(&tag) {
        return Err(BadInput(format!(
            "`{tag}` is not a valid tag (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -); choose one with --tag"
        ))
        .into());
    }
    let formula = match &args.write {
        Some(path) => Some(read_formula_of(path, &name)?),
        None => None,
    };

    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let (annotations, created) = annotations(args, &version, epoch.as_deref());
    let spec = BottleSpec {
        name: name.clone(),
        version: version.clone(),
        platform,
        tag: tag.clone(),
        annotations,
        created,
    };
    let output = match &args.output {
        Some(o) => o.clone(),
        None => PathBuf::from(format!("{name}-{version}.oci")),
    };
    let output = std::path::absolute(&output)
        .with_context(|| format!("cannot make {} absolute", output.display()))?;
    let push = push
        .map(|(repository, push_tag)| push_to(args, formula.as_ref(), repository, push_tag, &tag))
        .transpose()?;
    let request = Request {
        dir,
        spec,
        output,
        build: BuildOptions {
            mtime: build::mtime_from(epoch.as_deref()),
            exclude,
            compression,
        },
        push,
        bundles,
        write: args.write.clone(),
    };
    let made = bottle::make::make(&request, &|| ctx.client(), ctx.reporter)?;
    if args.json {
        super::print_json(&crate::bottle::summary::Summary::new(
            &request.spec,
            &made.bottled,
            made.pushed.as_ref(),
            &made.entry,
            args.write.as_deref(),
        ))?;
    } else if args.write.is_none() {
        print!("{}", made.entry.snippet());
    }
    Ok(())
}

/// A name and version the bottle may carry (bad input otherwise).
fn check_name_and_version(name: &str, version: &str) -> anyhow::Result<()> {
    if !formula::valid_name(name) {
        return Err(BadInput(format!(
            "invalid package name `{name}`: names use lowercase letters, digits and `-_.+@`"
        ))
        .into());
    }
    if let Err(e) = crate::version::parse_brew(version) {
        return Err(BadInput(format!(
            "invalid version `{version}` ({e}): versions are semver, like `1.2.3`, or as Homebrew writes them, like `1.2` or `1.2.3_1`"
        ))
        .into());
    }
    Ok(())
}

/// The manifest's annotations from the bottle's own flags (never the `--write` formula, so the
/// same directory pushed with and without `--write` has the same digest), and `created` when
/// asked for (`SOURCE_DATE_EPOCH`, else now).
fn annotations(
    args: &BottleArgs,
    version: &str,
    epoch: Option<&str>,
) -> (BTreeMap<String, String>, Option<String>) {
    let mut annotations = BTreeMap::new();
    annotations.insert(bottle::VERSION.to_owned(), version.to_owned());
    // Only the bottle's own inputs make the manifest (flags, not the --write formula), so the
    // same directory pushed with and without --write has the same digest.
    let license = args.license.clone();
    let description = args.description.clone();
    for (key, value) in [
        ("org.opencontainers.image.source", args.source.clone()),
        ("org.opencontainers.image.licenses", license),
        ("org.opencontainers.image.description", description),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            annotations.insert(key.to_owned(), v);
        }
    }
    let created = args.created.then(|| {
        let secs = epoch
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(crate::cellar::receipt::now);
        rfc3339(secs)
    });
    if let Some(c) = &created {
        annotations.insert(bottle::CREATED.to_owned(), c.clone());
    }
    (annotations, created)
}

/// Where to push: `--push`'s repository and tag (the layout's by default), with the blobs to
/// mount from `--mount-from` and the `--write` formula's other repositories on that registry.
fn push_to(
    args: &BottleArgs,
    formula: Option<&crate::bottle::inputs::FormulaHints>,
    repository: Repository,
    push_tag: Option<String>,
    tag: &str,
) -> anyhow::Result<Push> {
    let mut mount_from = args
        .mount_from
        .iter()
        .map(|r| {
            r.parse::<Repository>()
                .with_context(|| format!("--mount-from {r}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The formula's other repositories on the same registry: blobs mounted, not sent.
    if let Some(f) = formula {
        for r in &f.repositories {
            if r.registry == repository.registry && *r != repository && !mount_from.contains(r) {
                mount_from.push(r.clone());
            }
        }
    }
    Ok(Push {
        tag: push_tag.unwrap_or_else(|| tag.to_owned()),
        repository,
        options: PushOptions {
            chunk_threshold: args.chunk_threshold,
            chunk_size: args.chunk_size,
            mount_from,
            force: args.force,
        },
    })
}

/// The directory to pack, the name and version, and top-level names to leave out.
fn source(ctx: &Ctx, args: &BottleArgs) -> anyhow::Result<(PathBuf, String, String, Vec<String>)> {
    match (&args.keg, &args.dir) {
        (Some(keg), _) => {
            let (name, version) = ctx.state().name_and_version(keg)?;
            let version = match version {
                Some(v) => v,
                None => ctx.state().require_installed(&name)?,
            };
            if !ctx.cellar.is_installed(&name, &version) {
                bail!(
                    "{name} {} is not installed; `pkg list --versions` shows what is",
                    crate::version::Shown(&version)
                );
            }
            let dir = ctx.cellar.keg(&name, &version);
            let name = args.name.clone().unwrap_or(name);
            let version = args
                .version
                .clone()
                .unwrap_or(crate::version::show(&version));
            Ok((
                dir,
                name,
                version,
                vec![crate::cellar::receipt::META_DIR.to_owned()],
            ))
        }
        (None, Some(dir)) => {
            let (Some(name), Some(version)) = (&args.name, &args.version) else {
                bail!("--name and --version are required when bottling a directory");
            };
            // The directory the user named must be one (exit 2, before anything is written).
            bottle::inputs::check_dir(dir)?;
            Ok((dir.clone(), name.clone(), version.clone(), Vec::new()))
        }
        (None, None) => bail!("name a directory to bottle, or an installed package with --keg"),
    }
}
