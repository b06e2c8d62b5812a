//! Moving tags (`latest`, `main`) of installs by reference: where such a tag points now. A tag
//! that moved since its package was installed gets a newer version in the recorded formula —
//! `0.0.0+tag.TAG.N`, pinned to the new digest, the installed one pinned to its own — so that
//! `outdated` and `upgrade` see it as they see any newer version, and plan it the same way.

use semver::Version;
use toml_edit::{DocumentMut, Item, Table};

use super::{References, ReferencesError};
use crate::cellar::Cellar;
use crate::digest::Digest;
use crate::formula::{Formula, Origin};
use crate::registry::Client;

/// A tag that points elsewhere than when its package was installed.
#[derive(Debug)]
pub struct Moved {
    pub name: String,
    /// `REGISTRY/REPO:TAG`.
    pub reference: String,
    pub from: Digest,
    pub to: Digest,
    /// The version recorded for the new content.
    pub version: Version,
}

/// A version made from a tag that is not a version (see [`super::Reference::version`]).
fn is_tag_version(v: &Version) -> bool {
    v.major == 0 && v.minor == 0 && v.patch == 0 && v.build.as_str().starts_with("tag.")
}

impl References {
    /// Asks the registry where the moving tags of installed packages recorded here point now,
    /// and records a newer version for each that moved. A registry that cannot be asked is
    /// skipped (`skipped` gets why), so an offline `outdated` still works.
    pub fn refresh_moved_tags(
        &self,
        cellar: &Cellar,
        client: &Client,
        skipped: &mut Vec<String>,
    ) -> Result<Vec<Moved>, ReferencesError> {
        let mut moved = Vec::new();
        for name in self.names() {
            if let Some(m) = self.refresh_one(&name, cellar, client, skipped)? {
                moved.push(m);
            }
        }
        Ok(moved)
    }

    fn refresh_one(
        &self,
        name: &str,
        cellar: &Cellar,
        client: &Client,
        skipped: &mut Vec<String>,
    ) -> Result<Option<Moved>, ReferencesError> {
        let Some((path, text, formula)) = self.recorded(name) else {
            return Ok(None);
        };
        let installed = cellar.installed_versions(name);
        // The newest installed version that came from a moving tag.
        let Some((version, spec)) = formula
            .versions
            .iter()
            .rev()
            .find(|(v, _)| is_tag_version(v) && installed.contains(v))
        else {
            return Ok(None);
        };
        let Ok(receipt) = crate::cellar::receipt::Receipt::read(&cellar.keg(name, version)) else {
            return Ok(None);
        };
        let tag = spec.tag.0.clone();
        // A newer version of the same tag already recorded (not installed yet): nothing to ask.
        if formula
            .versions
            .iter()
            .any(|(v, s)| v > version && s.tag.0 == tag && s.repository == spec.repository)
        {
            return Ok(None);
        }
        let crate::formula::Source::Registry(repository) = &spec.repository else {
            return Ok(None);
        };
        let reference = format!("{repository}:{tag}");
        let now = match client.fetch_manifest(repository, &tag) {
            Ok(m) => m.digest,
            Err(e) => {
                skipped.push(format!("{reference}: {e}"));
                return Ok(None);
            }
        };
        let had = spec
            .digest
            .clone()
            .unwrap_or(receipt.manifest_digest.clone());
        if now == had {
            return Ok(None);
        }
        let next = next_version(version).ok_or_else(|| ReferencesError::Invalid {
            arg: reference.clone(),
            reason: format!("cannot number a version after {version}"),
        })?;
        let mut doc: DocumentMut = text.parse().map_err(|e| ReferencesError::Invalid {
            arg: path.display().to_string(),
            reason: format!("{e}"),
        })?;
        let versions = doc["versions"]
            .as_table_mut()
            .ok_or_else(|| ReferencesError::Invalid {
                arg: path.display().to_string(),
                reason: "no [versions] table".into(),
            })?;
        // The installed content stays describable: its version is pinned to what it was.
        if let Some(old) = versions
            .get_mut(&version.to_string())
            .and_then(Item::as_table_mut)
            && !old.contains_key("digest")
        {
            old.insert("digest", toml_edit::value(had.to_string()));
        }
        let mut t = Table::new();
        t.insert("repository", toml_edit::value(spec.repository.to_string()));
        t.insert("tag", toml_edit::value(&tag));
        t.insert("digest", toml_edit::value(now.to_string()));
        versions.insert(&next.to_string(), Item::Table(t));
        let text = doc.to_string();
        // A recorded formula is always a valid one.
        Formula::parse(&text, Origin::File(path.clone()), Some(name))?;
        self.restore(name, Some(&text))?;
        Ok(Some(Moved {
            name: name.to_owned(),
            reference,
            from: had,
            to: now,
            version: next,
        }))
    }
}

impl References {
    /// `pkg install REPO:TAG` again, for a tag recorded before: the recorded version whose content
    /// is what the tag points at `now` — an older one when the tag went back to it — else a new
    /// version pinned to `now` (the newest recorded one is pinned to what it was, as
    /// [`References::refresh_moved_tags`] does). `None` when nothing was recorded for this tag.
    pub fn at_digest(
        &self,
        name: &str,
        reference: &super::Reference,
        now: &Digest,
        cellar: &Cellar,
    ) -> Result<Option<Version>, ReferencesError> {
        let Some((path, text, formula)) = self.recorded(name) else {
            return Ok(None);
        };
        let repo = reference.repository.to_string();
        let same: Vec<(&Version, &crate::formula::VersionSpec)> = formula
            .versions
            .iter()
            .filter(|(_, s)| s.repository.to_string() == repo && s.tag.0 == reference.tag)
            .collect();
        let content = |v: &Version, spec: &crate::formula::VersionSpec| {
            spec.digest.clone().or_else(|| {
                crate::cellar::receipt::Receipt::read(&cellar.keg(name, v))
                    .ok()
                    .map(|r| r.manifest_digest)
            })
        };
        if let Some((v, _)) = same
            .iter()
            .find(|(v, s)| content(v, s).as_ref() == Some(now))
        {
            return Ok(Some((*v).clone()));
        }
        let Some((last, spec)) = same.last() else {
            return Ok(None);
        };
        let had = content(last, spec);
        let mut doc: DocumentMut = text.parse().map_err(|e| ReferencesError::Invalid {
            arg: path.display().to_string(),
            reason: format!("{e}"),
        })?;
        let Some(versions) = doc["versions"].as_table_mut() else {
            return Ok(None);
        };
        let chosen = match had {
            // Recorded, never installed, never pinned: it is this content now.
            None => {
                if let Some(t) = versions
                    .get_mut(&last.to_string())
                    .and_then(Item::as_table_mut)
                {
                    t.insert("digest", toml_edit::value(now.to_string()));
                }
                (*last).clone()
            }
            Some(had) => {
                if let Some(t) = versions
                    .get_mut(&last.to_string())
                    .and_then(Item::as_table_mut)
                    && !t.contains_key("digest")
                {
                    t.insert("digest", toml_edit::value(had.to_string()));
                }
                let next = next_version(last).ok_or_else(|| ReferencesError::Invalid {
                    arg: format!("{repo}:{}", reference.tag),
                    reason: format!("cannot number a version after {last}"),
                })?;
                let mut t = Table::new();
                t.insert("repository", toml_edit::value(repo.clone()));
                t.insert("tag", toml_edit::value(&reference.tag));
                t.insert("digest", toml_edit::value(now.to_string()));
                versions.insert(&next.to_string(), Item::Table(t));
                next
            }
        };
        let text = doc.to_string();
        Formula::parse(&text, Origin::File(path.clone()), Some(name))?;
        self.restore(name, Some(&text))?;
        Ok(Some(chosen))
    }
}

/// `0.0.0+tag.main` → `0.0.0+tag.main.moved.1`, `….moved.1` → `….moved.2`.
fn next_version(v: &Version) -> Option<Version> {
    let build = v.build.as_str();
    let next = match build.rsplit_once(".moved.") {
        Some((head, n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{head}.moved.{}", n.parse::<u64>().ok()?.checked_add(1)?)
        }
        _ => format!("{build}.moved.1"),
    };
    let mut out = v.clone();
    out.build = semver::BuildMetadata::new(&next).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_tags_number_their_versions_upwards() {
        let v = Version::parse("0.0.0+tag.main").unwrap();
        let one = next_version(&v).unwrap();
        assert_eq!(one.to_string(), "0.0.0+tag.main.moved.1");
        let two = next_version(&one).unwrap();
        assert_eq!(two.to_string(), "0.0.0+tag.main.moved.2");
        assert!(v < one && one < two);
        let mut ten = two.clone();
        for _ in 0..8 {
            ten = next_version(&ten).unwrap();
        }
        assert_eq!(ten.to_string(), "0.0.0+tag.main.moved.10");
        assert!(two < ten, "numbers compare as numbers");
        assert!(is_tag_version(&v) && !is_tag_version(&Version::new(1, 0, 0)));
        // A tag that ends in a number of its own is not a sequence.
        let v2 = Version::parse("0.0.0+tag.2024.01").unwrap();
        assert_eq!(
            next_version(&v2).unwrap().to_string(),
            "0.0.0+tag.2024.01.moved.1"
        );
    }
}
