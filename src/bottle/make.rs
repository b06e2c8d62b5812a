//! Owns `pkg bottle`'s reverse road as one call: a directory → a reproducible layer, config and
//! manifest in an OCI image layout → pushed to a registry with its Sigstore bundles attached
//! (when asked) → the formula entry, written into the formula file (when asked). The command
//! parses its arguments into a [`Request`] and prints what [`make`] returns.

use std::path::PathBuf;

use super::publish::{self, PublishError, PushOptions, PushReport};
use super::write::{self, Entry, WriteError};
use super::{BottleError, BottleSpec, Bottled, build::BuildOptions};
use crate::registry::{Client, RegistryError, Repository};
use crate::report::{Event, Reporter, TagMove};
use crate::source::layout::{Layout, LayoutError};

/// What to bottle, where to, and what to do with it: `pkg bottle`'s arguments, parsed and
/// checked.
pub struct Request {
    /// The directory whose contents the layer packs.
    pub dir: PathBuf,
    pub spec: BottleSpec,
    /// The OCI image layout written (absolute).
    pub output: PathBuf,
    pub build: BuildOptions,
    pub push: Option<Push>,
    /// Sigstore bundles attached to the pushed image as referrers: (file named, its bytes).
    pub bundles: Vec<(PathBuf, Vec<u8>)>,
    /// The formula file whose entry for this version is written.
    pub write: Option<PathBuf>,
}

/// Where the bottle is pushed.
pub struct Push {
    pub repository: Repository,
    pub tag: String,
    pub options: PushOptions,
}

/// What [`make`] made.
pub struct Made {
    pub bottled: Bottled,
    pub pushed: Option<PushReport>,
    /// The formula entry for it (written into [`Request::write`] when given).
    pub entry: Entry,
}

#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    #[error("bottling {} failed", dir.display())]
    Bottle {
        dir: PathBuf,
        #[source]
        source: BottleError,
    },
    #[error("{0}")]
    Layout(#[source] LayoutError),
    #[error("{0}")]
    Publish(#[source] PublishError),
    #[error("{0}")]
    Registry(#[source] RegistryError),
    #[error("{0}")]
    Write(#[source] WriteError),
}

/// Bottles, pushes, attaches and writes back as `request` says, telling `reporter` each step.
pub fn make(
    request: &Request,
    client: &dyn Fn() -> Client,
    reporter: &dyn Reporter,
) -> Result<Made, MakeError> {
    let Request {
        dir, spec, output, ..
    } = request;
    reporter.event(Event::Bottling {
        name: &spec.name,
        version: &spec.version,
        platform: &spec.platform,
        dir,
    });
    let bottled = super::bottle(dir, output, spec, &request.build, reporter).map_err(|source| {
        MakeError::Bottle {
            dir: dir.clone(),
            source,
        }
    })?;
    reporter.event(Event::Bottled {
        file: &spec.filename(bottled.layer.compression.extension()),
        entries: bottled.layer.entries,
        bytes: bottled.layer.size,
        layout: output,
        tag: &spec.tag,
    });
    let pushed = match &request.push {
        Some(push) => Some(push_and_attach(request, push, client, reporter)?),
        None => None,
    };
    let entry = Entry {
        version: spec.version.clone(),
        repository: match &pushed {
            Some(r) => r.repository.to_string(),
            None => format!(
                "oci:{}",
                super::inputs::layout_reference(output, request.write.as_deref())
            ),
        },
        tag: pushed.as_ref().map_or(spec.tag.clone(), |r| r.tag.clone()),
        digest: pushed
            .as_ref()
            .map_or(&bottled.top.digest, |r| &r.digest)
            .to_string(),
    };
    if let Some(path) = &request.write {
        write::update_file(path, &spec.name, &entry).map_err(MakeError::Write)?;
        reporter.event(Event::FormulaUpdated {
            path,
            version: &spec.version,
        });
    }
    Ok(Made {
        bottled,
        pushed,
        entry,
    })
}

/// Pushes the layout's tag, then attaches each bundle to what the tag points to.
fn push_and_attach(
    request: &Request,
    push: &Push,
    client: &dyn Fn() -> Client,
    reporter: &dyn Reporter,
) -> Result<PushReport, MakeError> {
    let repo = &push.repository;
    let layout = Layout::open(&request.output).map_err(MakeError::Layout)?;
    let report = publish::push(
        &client(),
        reporter,
        &layout,
        &request.spec.tag,
        repo,
        &push.tag,
        &push.options,
    )
    .map_err(MakeError::Publish)?;
    let tag_move = match (&report.previous, report.tag_changed) {
        (_, false) => TagMove::Unchanged,
        (None, true) => TagMove::New,
        (Some(_), true) if !report.moved.is_empty() => TagMove::Moved(&report.moved),
        (Some(before), true) => TagMove::GainedPlatform(before),
    };
    reporter.event(Event::Pushed {
        repository: &repo.to_string(),
        tag: &push.tag,
        digest: &report.digest,
        platforms: &report.platforms,
        uploaded: report.bytes_uploaded(),
        tag_move,
    });
    if !request.bundles.is_empty() {
        let client = client();
        let top = client
            .fetch_manifest(repo, &report.digest.to_string())
            .map_err(MakeError::Registry)?;
        let subject = super::attach::Subject {
            digest: &report.digest,
            media_type: &report.media_type,
            size: top.bytes.len() as u64,
        };
        for (path, bytes) in &request.bundles {
            let referrer = super::attach::attach(&client, repo, &subject, bytes)
                .map_err(MakeError::Publish)?;
            reporter.event(Event::Attached {
                path,
                repository: &repo.to_string(),
                subject: &report.digest,
                referrer: &referrer,
            });
        }
    }
    Ok(report)
}
