//! Bottles pinned by homebrew/core's formula API: which bottle is this host's, which entry of
//! the image index holds it, and the check that the layer poured is that very file.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::formula::{BottleFile, Source};
use crate::platform::Platform;
use crate::registry::manifest::{
    self, BOTTLE_DIGEST, Descriptor, ImageIndex, ImageManifest, ManifestError,
};

#[derive(Debug, thiserror::Error)]
pub enum PinnedError {
    #[error(
        "{repository}: the formula lists no bottle of this version for {host} (it has: {available}); pick another version, or install on a platform it has"
    )]
    NoBottle {
        repository: Source,
        host: String,
        available: String,
    },
    #[error(
        "{repository}: the {tag} bottle was built to run from {cellar} only (Homebrew could not make it relocatable), so it would not work from this prefix; pkg does not pour it"
    )]
    Cellar {
        repository: Source,
        tag: String,
        cellar: String,
    },
    #[error(
        "{repository}: the {tag} bottle the registry holds is\n  {actual}\nbut the formula names\n  {expected}\nThe formula may be older or newer than the registry: `pkg update`, then try again."
    )]
    Digest {
        repository: Source,
        tag: String,
        expected: Digest,
        actual: String,
    },
}

/// The host's bottle among `bottles`, refusing one that runs from one cellar only.
pub fn pick<'a>(
    bottles: &'a BTreeMap<String, BottleFile>,
    host: &Platform,
    repository: &Source,
) -> Result<(&'a str, &'a BottleFile), PinnedError> {
    let (tag, file) = host
        .bottle_tags()
        .iter()
        .find_map(|t| bottles.get_key_value(t.as_str()))
        .map(|(t, f)| (t.as_str(), f))
        .ok_or_else(|| PinnedError::NoBottle {
            repository: repository.clone(),
            host: host.to_string(),
            available: manifest::quote_list(bottles.keys().cloned()),
        })?;
    if let Some(cellar) = &file.cellar {
        return Err(PinnedError::Cellar {
            repository: repository.clone(),
            tag: tag.to_owned(),
            cellar: cellar.chars().take(200).collect(),
        });
    }
    Ok((tag, file))
}

/// The index entry holding `file`: the one whose `sh.brew.bottle.digest` names it, else the
/// host's pick (whose layer [`check`] then compares).
pub fn entry<'a>(
    index: &'a ImageIndex,
    file: &BottleFile,
    host: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    let hex = file.sha256.hex();
    match index
        .manifests
        .iter()
        .find(|d| d.annotations.get(BOTTLE_DIGEST).map(String::as_str) == Some(hex))
    {
        Some(d) => Ok(d),
        None => index.pick(host),
    }
}

/// The manifest's one layer must be the bottle file the formula names.
pub fn check(
    manifest: &ImageManifest,
    tag: &str,
    file: &BottleFile,
    repository: &Source,
) -> Result<(), PinnedError> {
    match manifest.layers.as_slice() {
        [layer] if layer.digest == file.sha256 => Ok(()),
        layers => Err(PinnedError::Digest {
            repository: repository.clone(),
            tag: tag.to_owned(),
            expected: file.sha256.clone(),
            actual: match layers {
                [layer] => layer.digest.to_string(),
                _ => format!("an image of {} layers (a bottle has one)", layers.len()),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(os: &str, arch: &str, release: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: None,
            os_version: release.map(Into::into),
        }
    }

    #[test]
    fn the_host_tag_comes_first_and_all_last() {
        assert_eq!(
            host("linux", "amd64", None).bottle_tags(),
            ["x86_64_linux", "all"]
        );
        let mac = host("darwin", "arm64", Some("14.5")).bottle_tags();
        assert_eq!(mac[0], "arm64_sonoma");
        assert!(!mac.contains(&"arm64_sequoia".to_owned()));
        assert_eq!(mac.last().map(String::as_str), Some("all"));
        let old_intel = host("darwin", "amd64", Some("10.15.7")).bottle_tags();
        assert_eq!(old_intel[0], "catalina");
    }

    #[test]
    fn a_bottle_for_one_cellar_only_is_refused_and_a_missing_one_named() {
        let repo = Source::Registry("ghcr.io/homebrew/core/x".parse().unwrap());
        let sha: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let mut bottles = BTreeMap::new();
        bottles.insert(
            "arm64_sonoma".to_owned(),
            BottleFile {
                sha256: sha.clone(),
                cellar: None,
            },
        );
        let linux = host("linux", "amd64", None);
        let err = pick(&bottles, &linux, &repo).unwrap_err().to_string();
        assert!(
            err.contains("linux/amd64") && err.contains("arm64_sonoma"),
            "{err}"
        );
        bottles.insert(
            "x86_64_linux".to_owned(),
            BottleFile {
                sha256: sha,
                cellar: Some("/home/linuxbrew/.linuxbrew/Cellar".into()),
            },
        );
        let err = pick(&bottles, &linux, &repo).unwrap_err().to_string();
        assert!(err.contains("/home/linuxbrew/.linuxbrew/Cellar"), "{err}");
    }
}
