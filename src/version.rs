//! Package versions as formulae and kegs write them: semver `X.Y.Z`, or Homebrew's
//! `X.Y.Z_REVISION` (`1.0.0_1`: the same version rebuilt). A revision is kept as numeric semver
//! build metadata, so versions order by version, then revision (`1.0.0` < `1.0.0_1` < `1.0.0_2`),
//! and is written back with its `_` wherever a version names a keg, a link or a receipt.
//! Homebrew also writes versions of one or two numbers (`10.44`, `2`); [`parse_brew`] reads
//! them as `10.44.0` marked (build metadata `x2`) so that they are written back as they came.

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

/// [`parse`], and also Homebrew's shorter versions: `10.44`, `10.44_1`, `2`. For the names of
/// kegs, formula versions and image tags, never for a requirement a user types (`@1.2` there
/// is `^1.2`).
pub fn parse_brew(s: &str) -> Result<Version, semver::Error> {
    let strict = parse(s);
    if strict.is_ok() {
        return strict;
    }
    let (head, revision) = match s.rsplit_once('_') {
        Some((h, r)) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => (h, Some(r)),
        _ => (s, None),
    };
    let parts: Vec<&str> = head.split('.').collect();
    // No leading zeros: `2024.01` would not be written back as it came.
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.len() <= 19
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    if !(1..=2).contains(&parts.len()) || !parts.iter().all(numeric) {
        return strict;
    }
    let num = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<u64>());
    let (Ok(major), Ok(minor)) = (num(0), num(1)) else {
        return strict;
    };
    let mut v = Version::new(major, minor, 0);
    // The marker comes first, so `10.44` < `10.44_1` as build metadata compares.
    let mut build = format!("x{}", parts.len());
    if let Some(r) = revision {
        build.push_str(&format!(".{}", r.parse::<u64>().unwrap_or(0)));
    }
    v.build = BuildMetadata::new(&build)?;
    Ok(v)
}

/// How many numbers a version is written with (3 unless [`parse_brew`] read a shorter one).
fn components(v: &Version) -> usize {
    match v.build.as_str().split('.').next() {
        Some("x1") => 1,
        Some("x2") => 2,
        _ => 3,
    }
}

/// The revision of a Homebrew-style version, if it has one.
pub fn revision(v: &Version) -> Option<u64> {
    let b = v.build.as_str();
    let b = match components(v) {
        3 => b,
        _ => b.split_once('.')?.1,
    };
    (!b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
        .then(|| b.parse().ok())
        .flatten()
}

/// The version as a keg, link or receipt names it: `1.0.0`, `1.0.0_1`.
pub fn show(v: &Version) -> String {
    let base = match components(v) {
        1 => v.major.to_string(),
        2 => format!("{}.{}", v.major, v.minor),
        _ if revision(v).is_some() => {
            let mut base = v.clone();
            base.build = BuildMetadata::EMPTY;
            base.to_string()
        }
        _ => return v.to_string(),
    };
    match revision(v) {
        Some(n) => format!("{base}_{n}"),
        None => base,
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

    #[test]
    fn homebrew_short_versions_are_written_back_as_they_came() {
        for s in [
            "10.44",
            "10.44_1",
            "2",
            "2_3",
            "1.0.0",
            "1.0.0_1",
            "2.0.0-rc.1",
        ] {
            assert_eq!(show(&parse_brew(s).unwrap()), s);
        }
        assert!(parse("10.44").is_err(), "requests stay strict");
        for bad in ["1.2.3.4", "9.9p1", "2024a", "", "1..2", "1.2_x", "2024.01"] {
            assert!(parse_brew(bad).is_err(), "{bad}");
        }
        let mut all: Vec<Version> = ["10.45", "10.44_1", "10.44", "10.44_2", "11"]
            .into_iter()
            .map(|s| parse_brew(s).unwrap())
            .collect();
        all.sort();
        let shown: Vec<String> = all.iter().map(show).collect();
        assert_eq!(shown, ["10.44", "10.44_1", "10.44_2", "10.45", "11"]);
        assert_eq!(revision(&parse_brew("10.44_1").unwrap()), Some(1));
        assert_eq!(revision(&parse_brew("10.44").unwrap()), None);
        assert!(
            semver::VersionReq::parse("^10.44")
                .unwrap()
                .matches(&parse_brew("10.44_1").unwrap())
        );
    }
}
