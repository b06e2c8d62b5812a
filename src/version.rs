//! Package versions as formulae and kegs write them: semver `X.Y.Z`, or Homebrew's
//! `X.Y.Z_REVISION` (`1.0.0_1`: the same version rebuilt). A revision is kept as numeric semver
//! build metadata, so versions order by version, then revision (`1.0.0` < `1.0.0_1` < `1.0.0_2`),
//! and is written back with its `_` wherever a version names a keg, a link or a receipt.

use semver::{BuildMetadata, Version};

/// Parses `X.Y.Z[-PRE]` or `X.Y.Z_N` (N a whole number).
pub fn parse(s: &str) -> Result<Version, semver::Error> {
    if let Some((head, revision)) = s.rsplit_once('_')
        && !revision.is_empty()
        && revision.bytes().all(|b| b.is_ascii_digit())
        && !head.contains('+')
    {
        let mut v = Version::parse(head)?;
        // Leading zeros are not a valid numeric identifier: `_01` is `_1`.
        let n: u64 = revision.parse().unwrap_or(0);
        v.build = BuildMetadata::new(&n.to_string())?;
        return Ok(v);
    }
    Version::parse(s)
}

/// The revision of a Homebrew-style version, if it has one.
pub fn revision(v: &Version) -> Option<u64> {
    let b = v.build.as_str();
    (!b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
        .then(|| b.parse().ok())
        .flatten()
}

/// The version as a keg, link or receipt names it: `1.0.0`, `1.0.0_1`.
pub fn show(v: &Version) -> String {
    match revision(v) {
        Some(n) => {
            let mut base = v.clone();
            base.build = BuildMetadata::EMPTY;
            format!("{base}_{n}")
        }
        None => v.to_string(),
    }
}

/// A version for messages, written as [`show`] writes it: `format!("{}", Shown(&v))`.
pub struct Shown<'a>(pub &'a Version);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&show(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_parse_order_and_show_as_homebrew_writes_them() {
        let v = parse("1.0.0_1").unwrap();
        assert_eq!(show(&v), "1.0.0_1");
        assert_eq!(revision(&v), Some(1));
        let mut all: Vec<Version> = ["1.0.0_10", "1.0.0", "1.0.1", "1.0.0_2"]
            .into_iter()
            .map(|s| parse(s).unwrap())
            .collect();
        all.sort();
        let shown: Vec<String> = all.iter().map(show).collect();
        assert_eq!(shown, ["1.0.0", "1.0.0_2", "1.0.0_10", "1.0.1"]);
        assert_eq!(show(&parse("2.0.0-rc.1").unwrap()), "2.0.0-rc.1");
        assert!(parse("1.0_1").is_err());
        assert!(parse("1.0.0_x").is_err());
        assert!(semver::VersionReq::parse("^1").unwrap().matches(&v));
    }
}
