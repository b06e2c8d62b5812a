//! Owns shaping a staged keg into what the Cellar holds, inside the staging directory only: a
//! Homebrew bottle's `NAME/VERSION/` stripped and its placeholders relocated, a `.pkg/` the
//! package shipped replaced by pkg's own, the package's commands found and made executable
//! (`cellar::bins`), its link directories chosen, and the receipt written with every file's
//! stamp. Nothing outside the staging keg changes here; links and the loader are `apply/`'s.

use std::collections::BTreeMap;
use std::path::Path;

use semver::Version;

use super::{Image, PourError, Pourer};
use crate::cellar::receipt::{self, Receipt};
use crate::cellar::unpack::{self, Stats};
use crate::cellar::{self, Cellar, CellarError, brew};
use crate::formula::{Formula, VersionSpec};
use crate::report::Event;

/// What shaping found out about the keg.
pub(super) struct Shaped {
    pub bins: Vec<String>,
    /// Keg directories linked into the prefix (see [`Formula::link`]).
    pub link: Vec<String>,
    pub files: usize,
    /// A relocated ELF file names `PREFIX/lib/ld.so` as its interpreter.
    pub needs_loader: bool,
}

impl Pourer<'_> {
    /// Shapes the keg staged at `staging` and writes its receipt there.
    #[allow(clippy::too_many_arguments)]
    /// Long: the steps on a staged keg (bottle strip, relocation, `.pkg/`, commands, receipt) run
    /// in this order on the same staging directory and stats, and the receipt records what each
    /// found.
    pub(super) fn shape(
        &self,
        staging: &Path,
        cellar: &Cellar,
        formula: &Formula,
        version: &Version,
        spec: &VersionSpec,
        image: Image,
        (stats, made): (&Stats, Option<cellar::Listing>),
        on_request: bool,
        dependencies: BTreeMap<String, String>,
    ) -> Result<Shaped, PourError> {
        let repo = &spec.repository;
        // A Homebrew bottle (`NAME/VERSION[_REVISION]/…` for this version) becomes the keg
        // itself, relocated to this prefix.
        let version_s = crate::version::show(version);
        let bottle = brew::strip_bottle_prefix(staging, &formula.name, &version_s)?;
        let mut needs_loader = false;
        let mut relocated: Vec<String> = Vec::new();
        let mut relocated_sums = BTreeMap::new();
        if bottle {
            let prefix = cellar.root().parent().unwrap_or(cellar.root());
            // The unpack saw which files hold a placeholder; only those are opened. A keg
            // cloned from the store (or holding an ORAS file) is searched whole.
            let complete = stats.scanned
                && image
                    .formats
                    .iter()
                    .all(|f| matches!(f, crate::registry::manifest::LayerFormat::Tar(_)));
            let marked: Option<Vec<std::path::PathBuf>> = complete.then(|| {
                stats
                    .marked
                    .iter()
                    .map(|p| p.components().skip(2).collect())
                    .collect()
            });
            let relocation = brew::relocate_files(staging, prefix, marked.as_deref())?;
            // PREFIX/lib/ld.so is made by the unit's transaction (apply/), not here.
            needs_loader = relocation.interpreters > 0;
            let changed = relocation.changed;
            relocated.clone_from(&changed);
            relocated_sums = relocation.sums;
            if !changed.is_empty() {
                self.reporter.event(Event::Relocated {
                    files: changed.len(),
                    name: &formula.name,
                    prefix,
                });
            }
        }
        if stats.xattrs_skipped > 0 {
            self.reporter.event(Event::XattrsSkipped {
                repository: &repo.to_string(),
                count: stats.xattrs_skipped,
            });
        }

        // `.pkg/` is pkg's own: whatever a layer put there is replaced by the real receipt.
        let meta = std::path::Path::new(receipt::META_DIR);
        let mut root = unpack::beneath::Root::open(staging).map_err(|source| CellarError::Io {
            path: staging.to_owned(),
            source,
        })?;
        if let Ok(Some(_)) = root.stat(meta) {
            self.reporter.event(Event::ShippedMetadata {
                repository: &repo.to_string(),
                dir: receipt::META_DIR,
            });
            root.remove(meta).map_err(|error| CellarError::Walk {
                keg: staging.to_owned(),
                error,
            })?;
        }
        // Checked in the keg's final shape (after the bottle strip): no `bin` entry goes
        // through a link out of the keg, and only then are listed files made executable.
        // A keg-only formula links nothing but opt/NAME (as brew does).
        let bin_entries = if formula.keg_only {
            Some(&[][..])
        } else {
            formula.bin.as_deref()
        };
        let bins = cellar::bins::bins_for(staging, bin_entries)?;
        let replaced =
            cellar::bins::make_executable(staging, formula.bin.as_deref().unwrap_or_default())?;
        // A Homebrew bottle is linked as brew links it, unless its formula says otherwise.
        let link_dirs: Vec<String> = if formula.keg_only {
            Vec::new()
        } else if formula.link.is_empty() && bottle {
            crate::formula::BREW_LINK_DIRS
                .iter()
                .map(|d| d.to_string())
                .collect()
        } else {
            formula.link.clone()
        };
        // What the keg holds: as the step that made it knows it, brought up to date with what
        // shaping changed, or else walked.
        // The files whose bytes shaping may have rewritten: marked, or relocated.
        let rewritten: std::collections::BTreeSet<String> = (stats.marked.iter())
            .map(|p| keg_rel(p, bottle))
            .chain(relocated.iter().cloned())
            .collect();
        let replaced: Vec<String> = (replaced.iter())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let known = made.and_then(|mut made| {
            let touched = rewritten.iter().chain(&replaced).map(String::as_str);
            let current = (!bottle || made.strip_bottle_prefix()) && made.restamp(staging, touched);
            current.then_some(made)
        });
        let mut listing = match known {
            Some(known) => {
                #[cfg(debug_assertions)]
                held_to_the_walk(staging, &known)?;
                known
            }
            None => cellar::list_entries(staging, usize::try_from(stats.entries).unwrap_or(0))?,
        };
        let files = listing.files;
        add_sums(
            staging,
            stats,
            bottle,
            (&rewritten, &relocated_sums),
            &mut listing,
        );
        let receipt = Receipt {
            schema: receipt::SCHEMA,
            name: formula.name.clone(),
            version: crate::version::show(version),
            repository: repo.to_string(),
            tag: spec.tag.0.clone(),
            manifest_digest: image.digest,
            platform_manifest_digest: image.platform_digest,
            layers: image
                .manifest
                .layers
                .iter()
                .map(|l| l.digest.clone())
                .collect(),
            // Written from the listing, which holds each path once (`write_listed`).
            files: Vec::new(),
            stamps: BTreeMap::new(),
            bin: bins.clone(),
            link: link_dirs.clone(),
            installed_on_request: on_request,
            dependencies,
            source: formula.source.clone(),
            time: receipt::now(),
            pkg_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        receipt.write_listed(staging, &listing.entries)?;
        Ok(Shaped {
            bins,
            link: link_dirs,
            files,
            needs_loader,
        })
    }
}

/// Each keg file's CRC-32 into its receipt stamp: the unpack's (paths made keg-relative: a
/// bottle's `NAME/VERSION/` goes), and those relocation may have rewritten (every marked file, a
/// second name of one rewritten in place included) taken again from their bytes now.
fn add_sums(
    keg: &std::path::Path,
    stats: &Stats,
    bottle: bool,
    (again, known): (&std::collections::BTreeSet<String>, &BTreeMap<String, u32>),
    listing: &mut cellar::Listing,
) {
    if bottle {
        for (path, sum) in &stats.sums {
            if let Some(stamp) = listing.stamp_mut(&keg_rel(path, bottle)) {
                stamp.sum = Some(*sum);
            }
        }
    } else {
        // Unstripped, each listed file's path is its key in the sums as it is: looked up by
        // hash, not searched for in the listing (58,000 binary searches on the big tree).
        for (path, stamp) in &mut listing.entries {
            if let Some(stamp) = stamp
                && let Some(sum) = stats.sums.get(std::path::Path::new(path.as_str()))
            {
                stamp.sum = Some(*sum);
            }
        }
        // A name that is not UTF-8 is listed in its lossy form, and found by it.
        for (path, sum) in (stats.sums.iter()).filter(|(p, _)| p.to_str().is_none()) {
            if let Some(stamp) = listing.stamp_mut(&path.to_string_lossy()) {
                stamp.sum = Some(*sum);
            }
        }
    }
    for rel in again {
        let Some(stamp) = listing.stamp_mut(rel) else {
            continue;
        };
        // What relocation read (or wrote) it knows the sum of; anything else is read back by
        // descriptor beneath the keg.
        stamp.sum = known.get(rel).copied().or_else(|| {
            unpack::beneath::Root::open(keg)
                .ok()
                .and_then(|mut root| root.open_file(std::path::Path::new(rel), false).ok())
                .and_then(|mut file| {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
                    Some(crc32fast::hash(&bytes))
                })
        });
    }
}

/// A path the unpack saw, keg-relative: a bottle's `NAME/VERSION/` goes.
fn keg_rel(path: &std::path::Path, bottle: bool) -> String {
    let rel: std::path::PathBuf = path.components().skip(if bottle { 2 } else { 0 }).collect();
    rel.to_string_lossy().into_owned()
}

/// A listing handed over held to the walk it saves, in every debug build (the test suite's):
/// the same paths, files and stamps (the sums aside: a walk reads none).
#[cfg(debug_assertions)]
fn held_to_the_walk(staging: &Path, known: &cellar::Listing) -> Result<(), CellarError> {
    let walked = cellar::list_entries(staging, known.entries.len())?;
    let unsummed = |(path, stamp): &(String, Option<receipt::Stamp>)| {
        (path.clone(), stamp.map(|s| (s.size, s.secs, s.nanos)))
    };
    let differs = (known.entries.iter().map(unsummed))
        .zip(walked.entries.iter().map(unsummed))
        .find(|(k, w)| k != w);
    assert!(
        known.files == walked.files
            && known.entries.len() == walked.entries.len()
            && differs.is_none(),
        "{}: the listing handed over is not the keg's: {differs:?}",
        staging.display()
    );
    Ok(())
}
