//! `pkg bottle`: the install flow in reverse. A directory (or an installed keg) → a reproducible
//! layer, config and manifest in an OCI image layout → optionally pushed to a registry → the
//! formula entry printed, or written into the formula file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::bottle::build::{self, BuildOptions};
use crate::bottle::inputs::{layout_reference, parse_push, read_formula_of, rfc3339};
use crate::bottle::publish::{self, PushOptions};
use crate::bottle::write::{self, Entry};
use crate::bottle::{self, BottleSpec};
use crate::cli::BottleArgs;
use crate::formula;
use crate::platform::Platform;
use crate::registry::Repository;
use crate::registry::repository::valid_tag;
use crate::source::layout::Layout;

use super::{BadInput, Ctx, human_bytes};

pub fn run(ctx: &Ctx, args: &BottleArgs) -> anyhow::Result<()> {
    let (dir, name, version, exclude) = source(ctx, args)?;
    if !formula::valid_name(&name) {
        return Err(BadInput(format!(
            "invalid package name `{name}`: names use lowercase letters, digits and `-_.+@`"
        ))
        .into());
    }
    if let Err(e) = crate::version::parse_brew(&version) {
        return Err(BadInput(format!(
            "invalid version `{version}` ({e}): versions are semver, like `1.2.3`, or as Homebrew writes them, like `1.2` or `1.2.3_1`"
        ))
        .into());
    }
    // Bundles to attach are read and checked before anything is built or pushed.
    let mut bundles = Vec::new();
    for path in &args.attach_bundle {
        let bytes = std::fs::read(path)
            .map_err(|e| BadInput(format!("--attach-bundle {}: {e}", path.display())))?;
        bottle::attach::check_bundle(&bytes)
            .map_err(|e| BadInput(format!("--attach-bundle {}: {e}", path.display())))?;
        bundles.push((path, bytes));
    }
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

    let mut annotations = BTreeMap::new();
    annotations.insert(bottle::VERSION.to_owned(), version.clone());
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
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let created = args.created.then(|| {
        let secs = epoch
            .as_deref()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(crate::cellar::receipt::now);
        rfc3339(secs)
    });
    if let Some(c) = &created {
        annotations.insert(bottle::CREATED.to_owned(), c.clone());
    }
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
    let options = BuildOptions {
        mtime: build::mtime_from(epoch.as_deref()),
        exclude,
        compression,
    };

    ctx.reporter.status(
        "Bottling",
        &format!(
            "{name} {version} ({}) from {}",
            spec.platform,
            dir.display()
        ),
    );
    let bottled = bottle::bottle(&dir, &output, &spec, &options, ctx.reporter)
        .with_context(|| format!("bottling {} failed", dir.display()))?;
    ctx.reporter.status(
        "Bottled",
        &format!(
            "{} ({} entries, {} compressed) → {}:{tag}",
            spec.filename(bottled.layer.compression.extension()),
            bottled.layer.entries,
            human_bytes(bottled.layer.size),
            output.display()
        ),
    );

    let pushed = match &push {
        Some((repo, push_tag)) => {
            let push_tag = push_tag.clone().unwrap_or_else(|| tag.clone());
            let mut mount_from = args
                .mount_from
                .iter()
                .map(|r| {
                    r.parse::<Repository>()
                        .with_context(|| format!("--mount-from {r}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if let Some(f) = &formula {
                for r in &f.repositories {
                    if r.registry == repo.registry && r != repo && !mount_from.contains(r) {
                        mount_from.push(r.clone());
                    }
                }
            }
            let options = PushOptions {
                chunk_threshold: args.chunk_threshold,
                chunk_size: args.chunk_size,
                mount_from,
                force: args.force,
            };
            let layout = Layout::open(&output)?;
            let report = publish::push(
                &ctx.client(),
                ctx.reporter,
                &layout,
                &tag,
                repo,
                &push_tag,
                &options,
            )?;
            let platforms: Vec<String> = report.platforms.iter().map(|p| p.to_string()).collect();
            ctx.reporter.status(
                "Pushed",
                &format!(
                    "{repo}:{push_tag} → {} ({}; {} uploaded{})",
                    report.digest,
                    platforms.join(", "),
                    human_bytes(report.bytes_uploaded()),
                    match (&report.previous, report.tag_changed) {
                        (_, false) => ", the tag already pointed there".to_owned(),
                        (None, true) => ", a new tag".to_owned(),
                        (Some(_), true) if !report.moved.is_empty() => format!(
                            ", the tag moved from {}",
                            report
                                .moved
                                .iter()
                                .map(|(from, _)| from.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        (Some(before), true) =>
                            format!(", the tag gained a platform (was {before})"),
                    }
                ),
            );
            if !bundles.is_empty() {
                let client = ctx.client();
                let top = client.fetch_manifest(repo, &report.digest.to_string())?;
                let subject = bottle::attach::Subject {
                    digest: &report.digest,
                    media_type: &report.media_type,
                    size: top.bytes.len() as u64,
                };
                for (path, bytes) in &bundles {
                    let referrer = bottle::attach::attach(&client, repo, &subject, bytes)?;
                    ctx.reporter.status(
                        "Attached",
                        &format!(
                            "{} to {repo}@{} as the referrer {referrer}",
                            path.display(),
                            report.digest
                        ),
                    );
                }
            }
            Some(report)
        }
        None => None,
    };

    let entry = Entry {
        version: version.clone(),
        repository: match &pushed {
            Some(r) => r.repository.to_string(),
            None => format!("oci:{}", layout_reference(&output, args.write.as_deref())),
        },
        tag: pushed.as_ref().map_or(tag.clone(), |r| r.tag.clone()),
        digest: pushed
            .as_ref()
            .map_or(&bottled.top.digest, |r| &r.digest)
            .to_string(),
    };
    if let Some(path) = &args.write {
        write::update_file(path, &name, &entry)?;
        ctx.reporter.status(
            "Updated",
            &format!("{} (version {version})", path.display()),
        );
    }
    if args.json {
        super::print_json(&crate::bottle::summary::Summary::new(
            &spec,
            &bottled,
            pushed.as_ref(),
            &entry,
            args.write.as_deref(),
        ))?;
    } else if args.write.is_none() {
        print!("{}", entry.snippet());
    }
    Ok(())
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
            if !dir.is_dir() {
                let what = match std::fs::metadata(dir) {
                    Ok(_) => "is not a directory",
                    Err(_) => "does not exist",
                };
                return Err(super::BadInput(format!(
                    "{} {what}: name the directory whose contents the bottle packs (its bin/, lib/, share/ …), or an installed package with --keg NAME",
                    dir.display()
                ))
                .into());
            }
            Ok((dir.clone(), name.clone(), version.clone(), Vec::new()))
        }
        (None, None) => bail!("name a directory to bottle, or an installed package with --keg"),
    }
}
