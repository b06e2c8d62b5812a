//! Package versions as formulae and kegs write them: semver `X.Y.Z`, or Homebrew's
//! `X.Y.Z_REVISION` (`1.0.0_1`: the same version rebuilt). A revision is kept as numeric semver
//! build metadata, so versions order by version, then revision (`1.0.0` < `1.0.0_1` < `1.0.0_2`),
//! and is written back with its `_` wherever a version names a keg, a link or a receipt.
//! Homebrew writes many other shapes (`10.44`, `2022-07-19_1`, `7.8p1`, `1.4rc5`): [`parse_brew`]
//! reads every one into a semver [`Version`] that orders as Homebrew orders and is written back
//! exactly as it came.

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

/// [`parse`], and every version Homebrew publishes: `10.44`, `2`, `9.1.0950`, `2022-07-19_1`,
/// `2022.05.05`, `1.4rc5_2`, `7.8p1`, `3.5a`, `2.4-20151223`, `1.2.3.4`, `7.1.1-41`. For the
/// names of kegs, formula versions and image tags, never for a requirement a user types (`@1.2`
/// there is `^1.2`).
///
/// A version that is not semver is kept as a semver [`Version`] whose major, minor and patch are
/// its first three numbers and whose build metadata holds the rest in an encoding that orders as
/// Homebrew's `Version` class orders (`Library/Homebrew/version.rb`): `h`, one identifier per
/// further token — pre-release words (`alpha`, `beta`, `pre`, `rc`) below the end of the version,
/// other words (`a`, `p1`) above it, numbers above words — then `b` for the end, the revision,
/// and the version as written (hex), so it is shown exactly as it came.
pub fn parse_brew(s: &str) -> Result<Version, semver::Error> {
    let strict = parse(s);
    match &strict {
        // `7.1.1-41` is Homebrew's 41st release after 7.1.1 (ImageMagick), not a semver
        // pre-release before it: a pre-release of digits alone is read as Homebrew reads it.
        Ok(v) if !v.pre.is_empty() && v.pre.as_str().bytes().all(|b| b.is_ascii_digit()) => {
            brew(s).ok_or(())
        }
        Ok(_) => return strict,
        Err(_) => brew(s).ok_or(()),
    }
    .or(strict)
}

/// Homebrew's tokens of a version (without its `_N` revision): numbers, and words with the
/// number that follows them (`rc5`, `p1`, `a`).
enum Token {
    Number(u64),
    Word(String, Option<u64>),
}

fn tokens(head: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    for part in head.split(['.', '-']) {
        if part.is_empty() {
            return None;
        }
        let bytes = part.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 {
                if digits > 19 {
                    return None;
                }
                out.push(Token::Number(part[i..i + digits].parse().ok()?));
                i += digits;
                continue;
            }
            let letters = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
            if letters == 0 {
                return None;
            }
            let word = part[i..i + letters].to_ascii_lowercase();
            i += letters;
            let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            let number = if digits > 0 && digits <= 19 {
                let n = part[i..i + digits].parse().ok();
                i += digits;
                n
            } else {
                None
            };
            out.push(Token::Word(word, number));
        }
    }
    Some(out)
}

/// The build identifier of one token after the first three numbers (see [`parse_brew`]).
fn token_id(t: &Token) -> String {
    match t {
        Token::Number(n) => format!("d{n:020}"),
        Token::Word(w, n) => {
            let rank = match w.as_str() {
                "alpha" => Some('a'),
                "beta" => Some('b'),
                "pre" => Some('c'),
                "rc" => Some('d'),
                _ => None,
            };
            let n = n.unwrap_or(0);
            match rank {
                // Pre-release words sort below the end of the version (`b`).
                Some(r) => format!("a{r}{n:020}"),
                None => format!("c{w}-{n:020}"),
            }
        }
    }
}

fn brew(s: &str) -> Option<Version> {
    // A version starts with a number (a tag such as `latest` is not one).
    if s.len() > 128 || !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return None;
    }
    let (head, revision) = match s.rsplit_once('_') {
        Some((h, r)) if !r.is_empty() && r.len() <= 19 && r.bytes().all(|b| b.is_ascii_digit()) => {
            (h, r.parse::<u64>().ok()?)
        }
        Some(_) => return None,
        None => (s, 0),
    };
    let tokens = tokens(head)?;
    let mut numbers = [0u64; 3];
    let mut taken = 0;
    while taken < 3 {
        match tokens.get(taken) {
            Some(Token::Number(n)) => {
                numbers[taken] = *n;
                taken += 1;
            }
            _ => break,
        }
    }
    let mut build: Vec<String> = vec!["h".into()];
    build.extend(tokens[taken..].iter().map(token_id));
    build.push("b".into());
    build.push(revision.to_string());
    build.push(format!("z{}", hex::encode(s)));
    let mut v = Version::new(numbers[0], numbers[1], numbers[2]);
    v.build = BuildMetadata::new(&build.join(".")).ok()?;
    Some(v)
}

/// The version as written, when [`parse_brew`] kept it in the build metadata.
fn written(v: &Version) -> Option<String> {
    let b = v.build.as_str();
    if !b.starts_with("h.") {
        return None;
    }
    let hexed = b.rsplit('.').next()?.strip_prefix('z')?;
    String::from_utf8(hex::decode(hexed).ok()?).ok()
}

/// The revision of a Homebrew-style version, if it has one.
pub fn revision(v: &Version) -> Option<u64> {
    if written(v).is_some() {
        let ids: Vec<&str> = v.build.as_str().split('.').collect();
        let n: u64 = ids.get(ids.len().checked_sub(2)?)?.parse().ok()?;
        return (n > 0).then_some(n);
    }
    let b = v.build.as_str();
    (!b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
        .then(|| b.parse().ok())
        .flatten()
}

/// The version as a keg, link or receipt names it: `1.0.0`, `1.0.0_1`, `2022-07-19_1`.
pub fn show(v: &Version) -> String {
    if let Some(s) = written(v) {
        return s;
    }
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
        for bad in ["", "1..2", "1.2_x", "1 2", "1.2/3", "-1", "1.2."] {
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

    /// Every shape homebrew/core publishes reads, is written back as it came, and orders as
    /// Homebrew's `Version` orders it (its own examples from version_spec.rb among them).
    #[test]
    fn every_homebrew_version_parses_shows_and_sorts_as_homebrew_sorts_it() {
        let ordered: &[&[&str]] = &[
            &["1.4rc5", "1.4rc5_2", "1.4", "1.4_1", "1.4.1"],
            &["3.5", "3.5a", "3.6"],
            &["7.8", "7.8p1", "7.8p2", "7.8p10", "7.9"],
            &["7.1.1", "7.1.1-9", "7.1.1-41", "7.1.2"],
            &["1.2.3", "1.2.3.4", "1.2.3.10", "1.2.4"],
            &["9.1.0949", "9.1.0950", "9.1.1000"],
            &["2022-07-19", "2022-07-19_1", "2022-10-11", "2023-01-10"],
            &["2022.05.05", "2022.05.06", "2022.11.01"],
            &["2.4-20151223", "2.4-20160101", "2.5"],
            &[
                "1.0alpha1",
                "1.0beta1",
                "1.0beta2",
                "1.0pre1",
                "1.0rc1",
                "1.0",
            ],
            &["1.0", "1.0a", "1.0b", "1.0.1"],
        ];
        for chain in ordered {
            let versions: Vec<Version> = chain.iter().map(|s| parse_brew(s).unwrap()).collect();
            for (s, v) in chain.iter().zip(&versions) {
                assert_eq!(show(v), *s, "{s} is not written back as it came");
            }
            for pair in versions.windows(2) {
                assert!(
                    pair[0] < pair[1],
                    "{} should sort before {}",
                    show(&pair[0]),
                    show(&pair[1])
                );
            }
        }
        assert_eq!(revision(&parse_brew("2022-07-19_1").unwrap()), Some(1));
        assert_eq!(revision(&parse_brew("1.4rc5_2").unwrap()), Some(2));
        // What a requirement sees: the first three numbers.
        let req = semver::VersionReq::parse("^2022").unwrap();
        assert!(req.matches(&parse_brew("2022-07-19_1").unwrap()));
        assert!(
            semver::VersionReq::STAR.matches(&parse_brew("1.4rc5_2").unwrap()),
            "a Homebrew pre-release word is not a semver pre-release: the newest is installable"
        );
    }
}
