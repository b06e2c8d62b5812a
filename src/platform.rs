//! The host platform in OCI terms (`os/architecture[/variant]`), used to pick an entry of an image index;
//! and the process umask files are made under.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `os.version`: on the host, the macOS release (`14.5`); in a Homebrew bottle index,
    /// what the bottle was built for (`macOS 14`). Never part of [`Platform::accepts`].
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// The platform pkg runs on, named the way OCI indexes name it.
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
            os_version: host_macos(),
        }
    }

    /// Does an index entry's platform fit this (host) platform? The variant only has to match
    /// when both sides name one; `arm64` without a variant means `arm64/v8`.
    pub fn accepts(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.map(str::to_owned),
        };
        match (norm(self), norm(other)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    /// Does a formula's platform pattern (`linux`, `linux/amd64`, `darwin/arm64/v8`) cover this platform?
    pub fn matches_pattern(&self, pattern: &str) -> bool {
        let mut parts = pattern.split('/');
        let os = parts.next().unwrap_or_default();
        let arch = parts.next();
        let variant = parts.next();
        os == self.os
            && arch.is_none_or(|a| a == self.architecture)
            && variant.is_none_or(|v| self.variant.as_deref() == Some(v))
    }
}

/// The macOS release this machine runs (`kern.osproductversion`), on macOS only.
fn host_macos() -> Option<String> {
    #[cfg(target_os = "macos")]
    {
        let mut buf = [0u8; 64];
        let mut len = buf.len();
        // SAFETY: the name is NUL-terminated; buf and len describe a writable buffer.
        let rc = unsafe {
            libc::sysctlbyname(
                c"kern.osproductversion".as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc == 0 {
            let end = buf[..len.min(buf.len())]
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(len.min(buf.len()));
            return std::str::from_utf8(&buf[..end]).ok().map(str::to_owned);
        }
    }
    None
}

/// A macOS release as numbers: `macOS 14` → [14], `10.15.7` → [10, 15, 7]; `None` when the
/// text names no release.
pub fn macos_release(text: &str) -> Option<Vec<u64>> {
    let digits = text.trim().trim_start_matches("macOS").trim();
    let parts: Option<Vec<u64>> = digits.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// Homebrew's macOS bottle tags and the releases they name, newest first.
pub const MACOS_RELEASES: [(&str, &[u64]); 11] = [
    ("tahoe", &[26]),
    ("sequoia", &[15]),
    ("sonoma", &[14]),
    ("ventura", &[13]),
    ("monterey", &[12]),
    ("big_sur", &[11]),
    ("catalina", &[10, 15]),
    ("mojave", &[10, 14]),
    ("high_sierra", &[10, 13]),
    ("sierra", &[10, 12]),
    ("el_capitan", &[10, 11]),
];

impl Platform {
    /// The Homebrew bottle tags this (host) platform runs, best first: `x86_64_linux`; on
    /// macOS `arm64_sequoia`, `arm64_sonoma`, … (none newer than its release); then `all`.
    pub fn bottle_tags(&self) -> Vec<String> {
        let mut tags = Vec::new();
        match (self.os.as_str(), self.architecture.as_str()) {
            ("linux", "amd64") => tags.push("x86_64_linux".to_owned()),
            ("linux", "arm64") => tags.push("arm64_linux".to_owned()),
            ("darwin", arch) => {
                let has = self.os_version.as_deref().and_then(macos_release);
                for (name, release) in MACOS_RELEASES {
                    if has.as_ref().is_some_and(|h| release > h.as_slice()) {
                        continue;
                    }
                    match arch {
                        "arm64" => tags.push(format!("arm64_{name}")),
                        _ => tags.push(name.to_owned()),
                    }
                }
            }
            _ => {}
        }
        tags.push("all".to_owned());
        tags
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A temporary file in `dir`, to be renamed into place as an ordinary file: made with the mode
/// `File::create` gives (0o666 under the umask, as Homebrew's receipts and Cargo's locks are),
/// not `tempfile`'s own 0o600, which left a keg's receipt unreadable to every other user of the
/// prefix (`pkg info` then said the package was not installed).
pub fn temp_file_in(dir: &std::path::Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

/// The process umask, read from `/proc/self/status` (reading it with `umask(2)` would mean
/// changing it); 0o022 where that is not available.
pub fn process_umask() -> u32 {
    umask().unwrap_or(0o022)
}

fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            os_version: None,
        }
    }

    #[test]
    fn arm64_without_variant_is_v8() {
        assert!(p("linux", "arm64", Some("v8")).accepts(&p("linux", "arm64", None)));
        assert!(!p("linux", "arm", Some("v7")).accepts(&p("linux", "arm", Some("v6"))));
        assert!(!p("linux", "amd64", None).accepts(&p("darwin", "amd64", None)));
    }

    #[test]
    fn patterns() {
        let host = p("linux", "amd64", None);
        assert!(host.matches_pattern("linux"));
        assert!(host.matches_pattern("linux/amd64"));
        assert!(!host.matches_pattern("linux/arm64"));
        assert!(!host.matches_pattern("darwin"));
    }
}
