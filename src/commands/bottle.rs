//! `pkg bottle`: the install flow in reverse. A directory (or an installed keg) → a reproducible
//! layer, config and manifest in an OCI image layout → optionally pushed to a registry → the
//! formula entry printed, or written into the formula file.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::bottle::build::{self, BuildOptions};
use crate::bottle::publish::{self, PushOptions};
use crate::bottle::write::{self, Entry};
use crate::bottle::{self, BottleSpec};
use crate::cli::BottleArgs;
use crate::formula;
use crate::platform::Platform;
use crate::registry::Repository;
use crate::registry::repository::valid_tag;
use crate::source::layout::Layout;

use super::{Ctx, human_bytes};

pub fn run(ctx: &Ctx, args: &BottleArgs) -> anyhow::Result<()> {
    let (dir, name, version, exclude) = source(ctx, args)?;
    if !formula::valid_name(&name) {
        bail!("invalid package name `{name}`: names use lowercase letters, digits and `-_.+@`");
    }
    crate::version::parse_brew(&version).with_context(|| {
        format!(
            "invalid version `{version}`: versions are semver, like `1.2.3`, or as Homebrew writes them, like `1.2` or `1.2.3_1`"
        )
    })?;
    let platform = match &args.platform {
        Some(p) => bottle::parse_platform(p)?,
        None => Platform::host(),
    };
    let push = args
        .push
        .as_deref()
        .map(|p| parse_push(p, &name))
        .transpose()?;
    let tag = match (&args.tag, &push) {
        (Some(t), _) => t.clone(),
        (None, Some((_, Some(t)))) => t.clone(),
        _ => version.clone(),
    };
    if !valid_tag(&tag) {
        bail!(
            "`{tag}` is not a valid tag (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -); choose one with --tag"
        );
    }
    let formula = match &args.write {
        Some(path) => Some(read_formula(path)?),
        None => None,
    };

    let mut annotations = BTreeMap::new();
    annotations.insert(bottle::VERSION.to_owned(), version.clone());
    let license = args
        .license
        .clone()
        .or_else(|| formula.as_ref().and_then(|f| f.license.clone()));
    let description = args
        .description
        .clone()
        .or_else(|| formula.as_ref().and_then(|f| f.desc.clone()));
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
    };

    ctx.reporter.status(
        "Bottling",
        &format!(
            "{name} {version} ({}) from {}",
            spec.platform,
            dir.display()
        ),
    );
    let bottled = bottle::bottle(&dir, &output, &spec, &options)
        .with_context(|| format!("bottling {} failed", dir.display()))?;
    ctx.reporter.status(
        "Bottled",
        &format!(
            "{} ({} entries, {} compressed) → {}:{tag}",
            spec.filename(),
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
                    if report.tag_changed {
                        ""
                    } else {
                        ", the tag already pointed there"
                    }
                ),
            );
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
            let (name, version) = super::name_and_version(ctx, keg)?;
            let version = match version {
                Some(v) => v,
                None => ctx.require_installed(&name)?,
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
            Ok((dir.clone(), name.clone(), version.clone(), Vec::new()))
        }
        (None, None) => bail!("name a directory to bottle, or an installed package with --keg"),
    }
}

/// `REGISTRY/REPO[:TAG]`.
/// `--push REGISTRY/REPO[:TAG]`; `REGISTRY/NAMESPACE/` (a trailing `/`) names the image as
/// Homebrew's `github_packages.rb` does, under that namespace: `openssl@3` → `…/openssl/3`,
/// `gtk+3` → `…/gtkx3`.
fn parse_push(value: &str, name: &str) -> anyhow::Result<(Repository, Option<String>)> {
    if let Some(namespace) = value.strip_suffix('/') {
        let repo = format!("{namespace}/{}", crate::references::image_name(name));
        let repo: Repository = repo.parse().with_context(|| {
            format!(
                "--push {value}: expected REGISTRY/NAMESPACE/ (the image is named for the package)"
            )
        })?;
        return Ok((repo, None));
    }
    let (repo, tag) = match value.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((name, tag)) => (format!("{head}/{name}"), Some(tag.to_owned())),
            None => (value.to_owned(), None),
        },
        None => (value.to_owned(), None),
    };
    let repo: Repository = repo
        .parse()
        .with_context(|| format!("--push {value}: expected REGISTRY/REPOSITORY[:TAG]"))?;
    if let Some(t) = &tag
        && !valid_tag(t)
    {
        bail!("--push {value}: `{t}` is not a valid tag");
    }
    Ok((repo, tag))
}

/// What `--write`'s formula says that the bottle can use: its license and description (as
/// annotations) and its other repositories (to mount from). Read loosely: a new formula has no
/// version yet; the file is checked as a whole when it is written.
struct FormulaHints {
    license: Option<String>,
    desc: Option<String>,
    repositories: Vec<Repository>,
}

fn read_formula(path: &Path) -> anyhow::Result<FormulaHints> {
    let text = fs_err::read_to_string(path).with_context(|| {
        format!(
            "--write needs an existing formula file (name, desc, homepage); create {} first",
            path.display()
        )
    })?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let text_of = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let repositories = doc
        .get("versions")
        .and_then(|v| v.as_table())
        .map(|versions| {
            versions
                .values()
                .filter_map(|v| v.get("repository")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(FormulaHints {
        license: text_of("license"),
        desc: text_of("desc"),
        repositories,
    })
}

/// The layout as a formula names it: relative to the formula file when there is one.
fn layout_reference(layout: &Path, formula: Option<&Path>) -> String {
    let relative = formula.and_then(|f| {
        let dir = std::path::absolute(f).ok()?.parent()?.to_owned();
        relative_path(&dir, layout)
    });
    relative
        .unwrap_or_else(|| layout.to_owned())
        .display()
        .to_string()
}

/// `to` relative to the directory `from` (both absolute), lexically.
fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    if from.first() != to.first() || from.iter().chain(&to).any(|c| *c == Component::ParentDir) {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    Some(if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    })
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_references() {
        let (r, t) = parse_push("ghcr.io/acme/hello:1.2.0", "hello").unwrap();
        assert_eq!(
            (r.to_string().as_str(), t.as_deref()),
            ("ghcr.io/acme/hello", Some("1.2.0"))
        );
        let (r, t) = parse_push("127.0.0.1:5000/acme/hello", "hello").unwrap();
        assert_eq!(
            (r.to_string().as_str(), t),
            ("127.0.0.1:5000/acme/hello", None)
        );
        let (r, t) = parse_push("127.0.0.1:5000/acme/hello:v1", "hello").unwrap();
        assert_eq!(
            (r.registry.as_str(), t.as_deref()),
            ("127.0.0.1:5000", Some("v1"))
        );
        assert!(parse_push("hello:1", "hello").is_err());
        assert!(parse_push("ghcr.io/acme/hello:.bad", "hello").is_err());
        // A namespace: the image is named as Homebrew names it.
        for (name, repo) in [
            ("openssl@3", "ghcr.io/acme/tap/openssl/3"),
            ("gtk+3", "ghcr.io/acme/tap/gtkx3"),
            ("hello", "ghcr.io/acme/tap/hello"),
        ] {
            let (r, t) = parse_push("ghcr.io/acme/tap/", name).unwrap();
            assert_eq!((r.to_string().as_str(), t), (repo, None));
        }
    }

    #[test]
    fn relative_layout_paths() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            relative_path(&p("/a/formulae"), &p("/a/layouts/x")),
            Some(p("../layouts/x"))
        );
        assert_eq!(relative_path(&p("/a"), &p("/a/x.oci")), Some(p("x.oci")));
        assert_eq!(relative_path(&p("/a/../b"), &p("/a/x")), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
