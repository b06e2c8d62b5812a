//! Before a byte of a package is fetched: when its formula has a `[verify]` policy (or
//! `--require-signatures` is on), a Sigstore bundle attached to the manifest it will install
//! must meet it (verify/), or the pour fails and nothing of the package is installed.

use crate::formula::{Formula, Source, VersionSpec};
use crate::verify::{self, Subject};

use super::{PourError, Pourer};

impl Pourer<'_> {
    pub(super) fn check_signature(
        &self,
        formula: &Formula,
        spec: &VersionSpec,
        shown: &str,
    ) -> Result<(), PourError> {
        let policy = match (&formula.verify, self.require_signatures) {
            (Some(p), _) => p,
            (None, true) => {
                return Err(PourError::NoPolicy {
                    name: formula.name.clone(),
                });
            }
            (None, false) => return Ok(()),
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
        let found = verify::discover::bundles(&self.client, repo, &digest)?;
        let mut refused = Vec::new();
        for attached in &found.bundles {
            match verify::verify(&attached.bundle, Subject::Digest(&digest), policy) {
                Ok(signed) => {
                    self.reporter.status(
                        "Verified",
                        &format!(
                            "{} {shown} ({digest}): signed by {}{}",
                            formula.name,
                            signed.signer,
                            signed
                                .predicate_type
                                .map(|p| format!(", {p}"))
                                .unwrap_or_default()
                        ),
                    );
                    return Ok(());
                }
                Err(e) => refused.push(format!("{}: {e}", attached.manifest)),
            }
        }
        let mut what = vec![format!("looked at {}", found.looked_at.join(", "))];
        if found.bundles.is_empty() {
            what.push(format!("no Sigstore bundle is attached to {repo}@{digest}"));
        }
        what.extend(refused);
        Err(unsigned(what.join("; ")))
    }
}
