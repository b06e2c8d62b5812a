//! `pkg install`: resolve, fetch manifests, stream and verify layers into a staged keg, publish, link.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};

use crate::cellar::receipt::{self, Receipt};
use crate::cellar::unpack::{self, Limits, Stats};
use crate::cellar::{self, Cellar};
use crate::cli::InstallArgs;
use crate::digest::Digest;
use crate::formula::Formulary;
use crate::link;
use crate::lock;
use crate::platform::Platform;
use crate::registry::manifest::{self, Document, ImageManifest, LayerFormat};
use crate::registry::{Client, FetchedManifest, RegistryError, Repository};
use crate::report::Reporter;
use crate::resolve::{self, Installed, Request, Step};
use crate::settings::Settings;
use crate::store::Store;

struct CellarVersions<'a>(&'a Cellar);

impl Installed for CellarVersions<'_> {
    fn versions(&self, name: &str) -> Vec<semver::Version> {
        self.0.installed_versions(name)
    }
}

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
    let mut ctx: Option<Ctx> = None;
    for step in &plan.steps {
        let (name, version) = (&step.formula.name, &step.version);
        if cellar.is_installed(name, version) {
            if step.on_request {
                reporter.status("Skipping", &format!("{name} {version}: already installed"));
            }
            continue;
        }
        if ctx.is_none() {
            ctx = Some(Ctx {
                store: Store::open(&settings.cache)?,
                client: Client::new(settings.mirrors.clone(), settings.credentials.clone()),
                host: host.clone(),
                reporter,
            });
        }
        let Some(ctx) = ctx.as_ref() else { continue };
        install_one(ctx, settings, &cellar, step, &resolved, args.overwrite)
            .with_context(|| format!("installing {name} {version} failed; nothing was changed"))?;
    }
    Ok(())
}

struct Ctx<'a> {
    store: Store,
    client: Client,
    host: Platform,
    reporter: &'a dyn Reporter,
}

#[derive(Debug, thiserror::Error)]
enum InstallError {
    #[error(
        "{repository}:{tag} resolves to manifest\n  {actual}\nbut the formula pins\n  {pinned}\nThe tag was moved or the formula is wrong."
    )]
    PinMismatch {
        repository: Repository,
        tag: String,
        pinned: Digest,
        actual: Digest,
    },
    #[error(
        "{repository}@{digest} is an image index inside an image index; pkg installs manifests only"
    )]
    NestedIndex {
        repository: Repository,
        digest: Digest,
    },
    #[error(
        "layer {digest} of {repository} has media type `{media_type}`, which pkg cannot unpack (tar and tar+gzip are supported)"
    )]
    LayerType {
        repository: Repository,
        digest: Digest,
        media_type: String,
    },
    #[error("{repository}: {source}")]
    Platform {
        repository: Repository,
        #[source]
        source: Box<manifest::ManifestError>,
    },
}

fn install_one(
    ctx: &Ctx,
    settings: &Settings,
    cellar: &Cellar,
    step: &Step,
    resolved: &BTreeMap<String, String>,
    overwrite: bool,
) -> anyhow::Result<()> {
    let formula = &step.formula;
    let (name, version) = (&formula.name, &step.version);
    let spec = &formula.versions[version];
    let repo = &spec.repository;
    let tag = &spec.tag.0;
    ctx.reporter
        .status("Fetching", &format!("{name} {version} ({repo}:{tag})"));

    let top = fetch_tag(ctx, repo, tag, spec.digest.as_ref())?;
    if let Some(pinned) = &spec.digest
        && *pinned != top.digest
    {
        bail!(InstallError::PinMismatch {
            repository: repo.clone(),
            tag: tag.clone(),
            pinned: pinned.clone(),
            actual: top.digest.clone(),
        });
    }
    let (image, platform_digest) = match &top.document {
        Document::Manifest(m) => (m.clone(), None),
        Document::Index(index) => {
            let entry = index
                .pick(&ctx.host)
                .map_err(|source| InstallError::Platform {
                    repository: repo.clone(),
                    source: Box::new(source),
                })?;
            let child = fetch_digest(ctx, repo, &entry.digest)?;
            match child.document {
                Document::Manifest(m) => (m, Some(entry.digest.clone())),
                Document::Index(_) => bail!(InstallError::NestedIndex {
                    repository: repo.clone(),
                    digest: entry.digest.clone(),
                }),
            }
        }
    };
    let formats = layer_formats(repo, &image)?;

    let staging = cellar.stage()?;
    let limits = Limits::default();
    let mut stats = Stats::default();
    for (layer, format) in image.layers.iter().zip(formats) {
        let mut reader = ctx.store.reader(&layer.digest, layer.size, || {
            ctx.client.open_blob(repo, &layer.digest, layer.size)
        })?;
        let unpacked = match format {
            LayerFormat::TarGzip => unpack::unpack_tar(
                flate2::read::MultiGzDecoder::new(&mut reader),
                staging.path(),
                &limits,
                &mut stats,
            ),
            LayerFormat::Tar => {
                unpack::unpack_tar(&mut reader, staging.path(), &limits, &mut stats)
            }
        };
        // A tampered or truncated blob often breaks gzip or tar first: the digest check is
        // the real verdict, so it is reported in preference to the unpack error.
        reader.finish()?;
        unpacked.with_context(|| format!("unpacking layer {} of {repo}", layer.digest))?;
    }

    let files = cellar::list_files(staging.path())?;
    let bins = link::bins_for(staging.path(), formula.bin.as_deref())?;
    let receipt = Receipt {
        schema: receipt::SCHEMA,
        name: name.clone(),
        version: version.to_string(),
        repository: repo.to_string(),
        tag: tag.clone(),
        manifest_digest: top.digest.clone(),
        platform_manifest_digest: platform_digest,
        layers: image.layers.iter().map(|l| l.digest.clone()).collect(),
        files,
        bin: bins.clone(),
        installed_on_request: step.on_request,
        dependencies: spec
            .depends_on
            .keys()
            .filter_map(|d| Some((d.clone(), resolved.get(d)?.clone())))
            .collect(),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        pkg_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    receipt.write(staging.path())?;

    let keg = cellar.publish(staging, name, version)?;
    if let Err(e) = link::link(
        &settings.prefix,
        name,
        &version.to_string(),
        &bins,
        overwrite,
    ) {
        // All or nothing: a keg that cannot be linked is taken back out.
        let _ = std::fs::remove_dir_all(&keg);
        let _ = std::fs::remove_dir(keg.parent().unwrap_or(&keg));
        return Err(e.into());
    }
    ctx.reporter.status(
        "Installed",
        &format!(
            "{name} {version} ({} files, {}) in {}",
            stats.entries,
            human_bytes(stats.bytes),
            keg.display()
        ),
    );
    Ok(())
}

fn layer_formats(
    repo: &Repository,
    image: &ImageManifest,
) -> Result<Vec<LayerFormat>, InstallError> {
    image
        .layers
        .iter()
        .map(|l| {
            LayerFormat::of(&l.media_type).ok_or_else(|| InstallError::LayerType {
                repository: repo.clone(),
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            })
        })
        .collect()
}

/// The manifest a tag points to. A pinned digest already in the cache needs no network; when the
/// registry cannot be reached, the digest the tag had last time is used from the cache.
fn fetch_tag(
    ctx: &Ctx,
    repo: &Repository,
    tag: &str,
    pin: Option<&Digest>,
) -> anyhow::Result<FetchedManifest> {
    if let Some(pin) = pin
        && let Some(cached) = from_cache(ctx, pin)?
    {
        return Ok(cached);
    }
    match ctx.client.fetch_manifest(repo, tag) {
        Ok(m) => {
            ctx.store.put_verified(&m.digest, &m.bytes)?;
            ctx.store.put_ref(repo, tag, &m.digest)?;
            Ok(m)
        }
        Err(err @ RegistryError::Transport { .. }) => {
            if let Some(digest) = ctx.store.get_ref(repo, tag)
                && let Some(cached) = from_cache(ctx, &digest)?
            {
                ctx.reporter.warn(&format!(
                    "{err}; using the cached manifest {digest} that {repo}:{tag} had when last fetched"
                ));
                return Ok(cached);
            }
            Err(err.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// A manifest by digest: from the cache when there, else from the registry (verified, then cached).
fn fetch_digest(ctx: &Ctx, repo: &Repository, digest: &Digest) -> anyhow::Result<FetchedManifest> {
    if let Some(cached) = from_cache(ctx, digest)? {
        return Ok(cached);
    }
    let m = ctx.client.fetch_manifest(repo, &digest.to_string())?;
    ctx.store.put_verified(&m.digest, &m.bytes)?;
    Ok(m)
}

fn from_cache(ctx: &Ctx, digest: &Digest) -> anyhow::Result<Option<FetchedManifest>> {
    let Some(bytes) = ctx.store.read_verified(digest) else {
        return Ok(None);
    };
    let path = ctx.store.blob_path(digest);
    let document = manifest::parse(&bytes, None)
        .with_context(|| format!("cached manifest {}", path.display()))?;
    Ok(Some(FetchedManifest {
        digest: digest.clone(),
        bytes,
        document,
        url: path.display().to_string(),
    }))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
