//! Repository names (`registry-host[:port]/path/name`) as formulae write them, validated per the OCI
//! distribution grammar before they become part of a URL.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// Registry host as written, with its port if any (`ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path inside the registry (`owner/name`).
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid repository `{value}`: {reason}")]
pub struct ReferenceError {
    pub value: String,
    pub reason: String,
}

impl FromStr for Repository {
    type Err = ReferenceError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ReferenceError {
            value: value.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let (registry, name) = value
            .split_once('/')
            .ok_or_else(|| err("expected `REGISTRY/PATH`, for example `ghcr.io/owner/name`"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(err(
                "the first part must be a registry host such as `ghcr.io` or `127.0.0.1:5000`",
            ));
        }
        if !valid_host(registry) {
            return Err(err(
                "the registry host may only use letters, digits, `.`, `-` and one `:port`",
            ));
        }
        if name.is_empty() || name.len() > 255 {
            return Err(err("the repository path must have 1 to 255 characters"));
        }
        for component in name.split('/') {
            if !valid_component(component) {
                return Err(err(
                    "each path component must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
                ));
            }
        }
        Ok(Repository {
            registry: registry.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    // DNS labels: 1 to 63 letters, digits and inner `-`; `..` or a leading `.` is no host.
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(label)
        && port.is_none_or(|p| {
            p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

impl<'de> serde::Deserialize<'de> for Repository {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Repository {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Is `tag` a valid tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`)?
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl crate::report::Classify for ReferenceError {
    /// Every ReferenceError is about what the user gave.
    fn bad_input(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ghcr_and_local_names() {
        let r: Repository = "ghcr.io/cortinico/space-unlimited-space/anakin"
            .parse()
            .unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.name, "cortinico/space-unlimited-space/anakin");
        let r: Repository = "127.0.0.1:5000/acme/hello".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.to_string(), "127.0.0.1:5000/acme/hello");
    }

    #[test]
    fn rejects_names_that_would_bend_a_url() {
        for bad in [
            "anakin",
            "acme/hello",
            "ghcr.io/",
            "ghcr.io/Acme/hello",
            "ghcr.io/acme/../x",
            "ghcr.io/acme/hello?x=1",
            "ghcr.io/acme//hello",
            "ghcr.io:abc/acme",
            "gh cr.io/acme",
            "ghcr.io/acme/hello-",
        ] {
            assert!(bad.parse::<Repository>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn tags() {
        assert!(valid_tag("1.0.0"));
        assert!(valid_tag("1.2.3_1.arm64_sonoma"));
        assert!(!valid_tag(".hidden"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag(&"x".repeat(129)));
    }
}
