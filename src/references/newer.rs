//! Version tags of installs by reference (`pkg install ghcr.io/acme/tool:1.4.0`): the
//! repository's newer version tags (its tag list, as `pkg search --remote` reads it) are recorded
//! as newer versions of the recorded formula, so `outdated` and `upgrade` see them as they see
//! any newer version.

use semver::Version;

use super::{Reference, References, ReferencesError};
use crate::cellar::Cellar;
use crate::formula::{Formula, Origin, Source};
use crate::registry::Client;

/// A newer version tag recorded for a package installed by reference.
#[derive(Debug)]
pub struct Newer {
    pub name: String,
    /// `REGISTRY/REPO:TAG`.
    pub reference: String,
    pub version: Version,
}

impl References {
    /// For each package recorded here whose installed version came from a version tag, asks the
    /// registry for the repository's tags and records every newer release among them. A
    /// registry that cannot be asked is skipped (`skipped` gets why).
    pub fn refresh_version_tags(
        &self,
        cellar: &Cellar,
        client: &Client,
        skipped: &mut Vec<String>,
    ) -> Result<Vec<Newer>, ReferencesError> {
        let mut found = Vec::new();
        for name in self.names() {
            found.extend(self.refresh_one_repository(&name, cellar, client, skipped)?);
        }
        Ok(found)
    }

    fn refresh_one_repository(
        &self,
        name: &str,
        cellar: &Cellar,
        client: &Client,
        skipped: &mut Vec<String>,
    ) -> Result<Vec<Newer>, ReferencesError> {
        let Some((path, mut text, formula)) = self.recorded(name) else {
            return Ok(Vec::new());
        };
        let installed = cellar.installed_versions(name);
        // The newest installed release that came from a version tag (not a moving tag, not a
        // digest).
        let Some((newest, spec)) = formula.versions.iter().rev().find(|(v, s)| {
            installed.contains(v) && is_release(v) && !s.tag.0.starts_with("sha256:")
        }) else {
            return Ok(Vec::new());
        };
        let Source::Registry(repository) = &spec.repository else {
            return Ok(Vec::new());
        };
        let tags = match client.list_tags(repository) {
            Ok(tags) => tags,
            Err(e) => {
                skipped.push(format!("{repository}: {e}"));
                return Ok(Vec::new());
            }
        };
        let mut newer: Vec<(Version, String)> = tags
            .into_iter()
            .filter_map(|tag| {
                let v = Reference {
                    repository: repository.clone(),
                    tag: tag.clone(),
                    digest: None,
                }
                .version();
                // Releases only (a pre-release only after a pre-release), newer, not recorded.
                (is_release(&v)
                    && (v.pre.is_empty() || !newest.pre.is_empty())
                    && v > *newest
                    && !formula.versions.contains_key(&v))
                .then_some((v, tag))
            })
            .collect();
        newer.sort();
        // One tag per version (`v1.5.0` and `1.5.0`): the first seen.
        newer.dedup_by(|a, b| a.0 == b.0);
        if newer.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (version, tag) in newer {
            text.push_str(&format!(
                "\n[versions.\"{version}\"]\nrepository = \"{repository}\"\ntag = \"{tag}\"\n"
            ));
            out.push(Newer {
                name: name.to_owned(),
                reference: format!("{repository}:{tag}"),
                version,
            });
        }
        // A recorded formula is always a valid one.
        Formula::parse(&text, Origin::File(path.clone()), Some(name))?;
        self.restore(name, Some(&text))?;
        Ok(out)
    }
}

/// A version read from a version tag: not a moving tag's (`0.0.0+tag.…`), nor a digest's.
fn is_release(v: &Version) -> bool {
    let build = v.build.as_str();
    !(v.major == 0 && v.minor == 0 && v.patch == 0 && !build.is_empty())
}
