//! Before a byte of a package is fetched: when its formula has a `[verify]` policy (or
//! `--require-signatures` is on), a Sigstore bundle attached to the manifest it will install
//! must meet it (verify/), or the pour fails and nothing of the package is installed. The digest
//! verified is the one the pour then installs.

use crate::digest::Digest;
use crate::formula::{Formula, Source, VersionSpec};
use crate::registry::RegistryError;
use crate::verify;

use super::{PourError, Pourer};
use crate::report::Event;

impl Pourer<'_> {
    pub(super) fn check_signature(
        &self,
        formula: &Formula,
        spec: &VersionSpec,
        shown: &str,
    ) -> Result<Option<Digest>, PourError> {
        let policy = match (&formula.verify, self.options.require_signatures) {
            (Some(p), _) => p,
            (None, true) => {
                return Err(PourError::NoPolicy {
                    name: formula.name.clone(),
                });
            }
            (None, false) => return Ok(None),
        };
        let unsigned = |found: String| PourError::Unsigned {
            name: formula.name.clone(),
            version: shown.to_owned(),
            wanted: policy.describe(),
            found,
        };
        let Source::Registry(repo) = &spec.repository else {
            return Err(unsigned(format!(
                "{} is an OCI layout on disk, and signatures are found as registry referrers",
                spec.repository
            )));
        };
        let digest = match &spec.digest {
            Some(pinned) => pinned.clone(),
            None => self.fetch_tag(&spec.repository, &spec.tag.0, None)?.digest,
        };
        // Found on the registry (and kept), or, when it cannot be asked, as found last time.
        let found = match verify::discover::bundles(&self.client, repo, &digest) {
            Ok(found) => {
                let bundles: Vec<Vec<u8>> =
                    found.bundles.iter().map(|b| b.bundle.clone()).collect();
                self.store.put_signatures(&digest, &bundles)?;
                found
            }
            Err(
                e @ (RegistryError::Offline { .. }
                | RegistryError::Transport { .. }
                | RegistryError::Unreachable { .. }
                | RegistryError::Body { .. }),
            ) => match self.store.signatures(&digest) {
                Some(bundles) => verify::discover::Found {
                    looked_at: vec![format!("the signatures cached for {digest}")],
                    bundles: bundles
                        .into_iter()
                        .map(|bundle| verify::discover::Attached {
                            manifest: Digest::of_bytes(&bundle),
                            bundle,
                        })
                        .collect(),
                },
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let signed = match verify::check(&found, &digest, policy) {
            Ok(signed) => signed,
            Err(verify::VerifyError::NoneMeets(why)) => return Err(unsigned(why)),
            Err(e) => return Err(unsigned(e.to_string())),
        };
        if let Some(s) = signed.first() {
            self.reporter.event(Event::Verified {
                name: &formula.name,
                version: shown,
                digest: &digest,
                signer: &s.signer,
                predicate_type: s.predicate_type.as_deref(),
            });
        }
        Ok(Some(digest))
    }
}
