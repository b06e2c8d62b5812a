//! The staging keg of one pour: the tree the layers unpack into — cloned from the unpacked
//! store when it has these layers (warm), else streamed layer by layer through the verified
//! cache into the unpack (cold), and then kept in the store as the link mode says (a clone or
//! a copy from the layers' second unpacking on, hard links at once).

use semver::Version;

use super::layer_failure::LayerFailure;
use super::{Image, PourError, Pourer, pipeline, prefetch};
use crate::cellar::unpack::{self, Stats};
use crate::cellar::{self, Cellar};
use crate::digest::Digest;
use crate::formula::{Formula, Source};
use crate::registry::manifest::{self, LayerFormat};
use crate::report::Event;

/// A staging keg and what is known of it.
pub(super) struct Staged {
    pub dir: tempfile::TempDir,
    /// Removes the staging keg on Ctrl-C until it is published.
    pub _interrupted: crate::interrupt::Guard,
    pub stats: Stats,
    /// What the keg holds, when the step that made it knows without a walk (a keg of links to
    /// a shared tree: its checked manifest's entries), sorted.
    pub listing: Option<cellar::Listing>,
}

impl Pourer<'_> {
    /// A fresh staging directory (guarded against Ctrl-C) holding every layer of `image`
    /// unpacked, and what was unpacked. `fresh`: never cloned from the unpacked store.
    /// Long: a warm tree is tried first and the unpack follows only when it cannot be used; both
    /// end in the same staging directory, and the Ctrl-C guard and the helper threads' scope span
    /// the whole.
    pub(super) fn stage(
        &self,
        cellar: &Cellar,
        formula: &Formula,
        version: &Version,
        image: &Image,
        fresh: bool,
    ) -> Result<Staged, PourError> {
        let repo = &formula.versions[version].repository;
        let layer_digests: Vec<Digest> = (image.manifest.layers.iter())
            .map(|l| l.digest.clone())
            .collect();
        // Keyed by how each layer is read (a tar, or an ORAS file at its title), not by the
        // digests alone.
        let read_as: Vec<_> = (layer_digests.iter().zip(&image.formats))
            .map(|(digest, format)| {
                let read = match format {
                    LayerFormat::Tar(_) => crate::store::unpacked::ReadAs::Tar,
                    LayerFormat::File(title) => crate::store::unpacked::ReadAs::File(title),
                };
                (digest, read)
            })
            .collect();
        let chain = crate::store::unpacked::tree_key(&read_as);
        let unpacked = self.store.unpacked();
        // Warm: the tree these layers unpacked into, checked and taken as the link mode says
        // (unpacked.rs). Never for `fresh` (a reinstall): its keg comes from the blobs.
        if !fresh
            && let Some(chain) = &chain
            && unpacked.get(chain).is_some()
        {
            let staging = cellar.stage()?;
            let interrupted = crate::interrupt::guard(staging.path());
            let mut listing = cellar::Listing::default();
            let link_mode = self.options.link_mode;
            match unpacked.materialize(chain, staging.path(), link_mode, &mut listing) {
                Ok(Some(taken)) => {
                    // The files holding a placeholder, as the unpack that stored the tree saw
                    // them: relocation opens only those.
                    let stats = Stats {
                        entries: taken.made.entries,
                        bytes: taken.made.bytes,
                        scanned: taken.marked.is_some(),
                        marked: taken.marked.unwrap_or_default(),
                        sums: taken.sums.unwrap_or_default(),
                        ..Stats::default()
                    };
                    let listing = taken.listed.then(|| {
                        listing.sort();
                        listing
                    });
                    return Ok(Staged {
                        dir: staging,
                        _interrupted: interrupted,
                        stats,
                        listing,
                    });
                }
                // Changed since it was stored: said, and replaced by the tree unpacked below.
                Err(e @ crate::store::unpacked::TreeError::Changed { .. }) => {
                    self.reporter.event(Event::KeptTreeChanged { error: &e });
                }
                // Not usable under this umask, or a clone that failed (this prefix on another
                // filesystem): its staging keg goes, and the layers are unpacked.
                Ok(None) | Err(_) => {}
            }
            drop((staging, interrupted));
        }
        // Whether these layers were all in the cache before this unpack: then this is at least
        // their second unpacking (another prefix, a reinstall, a `pkg fetch` first), the use a
        // stored tree is for.
        let again = (layer_digests.iter()).all(|digest| self.store.cached(digest).is_some());
        let staging = cellar.stage()?;
        let interrupted = crate::interrupt::guard(staging.path());
        let mut stats = Stats::default();
        let total = image.manifest.layers.iter().map(|l| l.size).sum();
        let mut progress = self.reporter.progress(
            &format!("{} {}", formula.name, crate::version::Shown(version)),
            total,
        );
        let layers = &image.manifest.layers;
        let ahead = prefetch::Ahead::new(layers.len(), self.options.jobs);
        std::thread::scope(|scope| {
            for _ in 0..ahead.helpers() {
                scope.spawn(|| {
                    ahead.help(&self.ahead, |i| {
                        self.fetch_layer(
                            repo,
                            &layers[i],
                            &|| ahead.cancelled(),
                            &crate::report::NoProgress,
                        )
                        .map(drop)
                    })
                });
            }
            // However the unpacking ends (error, panic or done), the helpers stop before the
            // scope waits for them.
            let _cancel = prefetch::CancelOnDrop(&ahead);
            self.unpack_layers(
                repo,
                image,
                &ahead,
                staging.path(),
                &mut stats,
                &mut *progress,
            )
        })?;
        progress.finish();
        // Kept for the next install of these layers, as the link mode says (with a clone, only
        // where the filesystem clones for free). The files holding a placeholder are known
        // when every layer was unpacked as a tar.
        //
        // A clone or a copy is made only from a second unpacking on: cloning files just
        // written waits for every byte of them to reach the disk (XFS and btrfs write a file's
        // dirty pages back before sharing its extents: a cold install of big on XFS took 9.1 s
        // against 2.98 s for `tar xf`, 19 % of its samples in `filemap_write_and_wait_range`),
        // and a copy writes the tree twice, for a later install that may never come. Hard
        // links cost a link per file and are made at once.
        let tars = (image.formats.iter()).all(|f| matches!(f, LayerFormat::Tar(_)));
        let marked = (stats.scanned && tars).then_some(stats.marked.as_slice());
        let keep = again || self.options.link_mode == crate::store::tree_copy::LinkMode::Hardlink;
        if keep
            && let Some(chain) = &chain
            && let Err(e) = unpacked.put(
                chain,
                &layer_digests,
                staging.path(),
                self.options.link_mode,
                marked,
                &stats.sums,
            )
        {
            self.reporter.event(Event::KeptTreeNotStored {
                name: &formula.name,
                error: &e,
            });
        }
        Ok(Staged {
            dir: staging,
            _interrupted: interrupted,
            stats,
            listing: None,
        })
    }

    /// Unpacks the layers in order into `staging`: the first streams from the registry (or
    /// cache) as it arrives, each later one once `ahead` has it in the cache.
    fn unpack_layers(
        &self,
        repo: &Source,
        image: &Image,
        ahead: &prefetch::Ahead,
        staging: &std::path::Path,
        stats: &mut Stats,
        progress: &mut dyn crate::report::Progress,
    ) -> Result<(), PourError> {
        for (i, (layer, format)) in image.manifest.layers.iter().zip(&image.formats).enumerate() {
            ahead.wait(i)?;
            let reader = self.store.reader(&layer.digest, layer.size, |offset| {
                self.open_blob(repo, &layer.digest, layer.size, offset)
            })?;
            let root = staging;
            let compression = match format {
                LayerFormat::Tar(c) => *c,
                LayerFormat::File(_) => manifest::Compression::None,
            };
            let bar = &mut *progress;
            let advance = &mut move |n| bar.advance(n);
            let outcome = if let LayerFormat::File(name) = format {
                // Placed as it is: no magic to check, whatever the bytes hold.
                pipeline::place(reader, advance, |counted| {
                    unpack::place_file(root, name, counted, &self.options.limits, stats)
                        .map_err(LayerFailure::from)
                })
            } else {
                // A compressed layer's caps follow its size (bombs stop in seconds).
                let limits = match compression {
                    manifest::Compression::None => self.options.limits,
                    _ => self.options.limits.for_layer(layer.size, stats),
                };
                pipeline::run(reader, compression, advance, |counted| {
                    unpack::unpack_tar(counted, root, &limits, stats).map_err(LayerFailure::Unpack)
                })
            };
            // A tampered or truncated blob often breaks gzip or tar first: the digest check is
            // the real verdict, so it is reported in preference to the unpack error.
            outcome.verified?;
            outcome
                .unpacked
                .map_err(|e| e.into_pour_error(repo, &layer.digest))?;
        }
        Ok(())
    }
}
