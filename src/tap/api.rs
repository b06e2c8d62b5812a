//! homebrew/core as a formula source: Homebrew's formula JSON API (the whole list,
//! `formula.json`), revalidated by ETag/Last-Modified and turned into formulae whose versions
//! pin each bottle's sha256, written into the tap as ordinary formula files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::formula::{BottleFile, Formula, Origin};
use crate::platform::Platform;
use crate::registry::Repository;

/// Homebrew's public formula API: every formula of homebrew/core in one document.
pub const DEFAULT_URL: &str = "https://formulae.brew.sh/api/formula.json";
/// What an API tap remembers of its source, beside its formulae.
pub const META_FILE: &str = "api.toml";
/// The version of [`Meta`] and of the formulae written from the API: a newer pkg that writes
/// them differently fetches the document again, whatever its ETag says.
pub const SCHEMA: u32 = 1;
/// The largest document read (homebrew/core's is about 30 MB).
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{url}: not a formula JSON API document: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{url}` is not a URL pkg can read a formula API from: {reason}")]
    BadUrl { url: String, reason: String },
}

/// `api.toml`: where the formulae came from and how to ask whether they changed.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub schema: u32,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Formulae written, and those left out with the reason (name → reason).
    pub formulae: usize,
    #[serde(default)]
    pub skipped: BTreeMap<String, String>,
}

impl Meta {
    pub fn read(tap: &Path) -> Option<Meta> {
        let text = std::fs::read_to_string(tap.join(META_FILE)).ok()?;
        toml::from_str(&text).ok()
    }
}

/// The document's URL: `URL`, or `URL/formula.json` for a URL that ends in `/`.
pub fn document_url(url: &str) -> Result<url::Url, ApiError> {
    let full = if url.ends_with('/') {
        format!("{url}formula.json")
    } else {
        url.to_owned()
    };
    let parsed = url::Url::parse(&full).map_err(|e| ApiError::BadUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" | "http" | "file" => Ok(parsed),
        other => Err(ApiError::BadUrl {
            url: url.to_owned(),
            reason: format!("the scheme `{other}` is not https, http or file"),
        }),
    }
}

/// One formula of the API, as far as pkg reads it; everything else is ignored.
#[derive(serde::Deserialize)]
struct ApiFormula {
    name: String,
    #[serde(default)]
    desc: Option<String>,
    #[serde(default)]
    homepage: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    versions: ApiVersions,
    #[serde(default)]
    revision: u64,
    #[serde(default)]
    dependencies: Vec<String>,
    /// Names, or `{name: type}` tables; on Linux they are dependencies like any other.
    #[serde(default)]
    uses_from_macos: Vec<serde_json::Value>,
    /// Per bottle tag: what differs there (`dependencies`, …).
    #[serde(default)]
    variations: BTreeMap<String, Variation>,
    #[serde(default)]
    keg_only: bool,
    /// `{"reason": ":provided_by_macos", "explanation": ""}`: why, which decides where.
    #[serde(default)]
    keg_only_reason: Option<serde_json::Value>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    bottle: ApiBottles,
}

#[derive(Default, serde::Deserialize)]
struct ApiVersions {
    #[serde(default)]
    stable: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct Variation {
    #[serde(default)]
    dependencies: Option<Vec<String>>,
    /// Replaces the top-level reason on this bottle tag.
    #[serde(default)]
    keg_only_reason: Option<serde_json::Value>,
}

#[derive(Default, serde::Deserialize)]
struct ApiBottles {
    #[serde(default)]
    stable: Option<ApiBottle>,
}

#[derive(serde::Deserialize)]
struct ApiBottle {
    #[serde(default)]
    rebuild: u64,
    #[serde(default)]
    files: BTreeMap<String, ApiFile>,
}

#[derive(serde::Deserialize)]
struct ApiFile {
    #[serde(default)]
    cellar: Option<String>,
    #[serde(default)]
    url: Option<String>,
    sha256: String,
}

/// An entry of the list that is not a formula pkg can read is skipped, not fatal.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Formula(Box<ApiFormula>),
    Other(serde::de::IgnoredAny),
}

/// The formulae of one API document, as formula files (name → TOML), and what was left out.
pub struct Converted {
    pub formulae: BTreeMap<String, String>,
    pub skipped: BTreeMap<String, String>,
}

/// The formula file pkg writes for an API formula.
#[derive(serde::Serialize)]
struct Written<'a> {
    name: &'a str,
    desc: &'a str,
    homepage: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keg_only: bool,
    versions: BTreeMap<String, WrittenVersion>,
}

#[derive(serde::Serialize)]
struct WrittenVersion {
    repository: String,
    tag: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    depends_on: BTreeMap<String, String>,
    bottles: BTreeMap<String, BottleFile>,
}

/// Turns an API document into formula files for a prefix whose Cellar is `cellar` (a bottle
/// built for exactly that cellar needs no relocation) on `host`.
pub fn convert(
    bytes: &[u8],
    url: &str,
    cellar: &Path,
    host: &Platform,
) -> Result<Converted, ApiError> {
    let entries: Vec<Entry> = serde_json::from_slice(bytes).map_err(|source| ApiError::Json {
        url: url.to_owned(),
        source,
    })?;
    let mut out = Converted {
        formulae: BTreeMap::new(),
        skipped: BTreeMap::new(),
    };
    let tags = host.bottle_tags();
    for (i, entry) in entries.into_iter().enumerate() {
        let Entry::Formula(f) = entry else {
            out.skipped
                .insert(format!("(entry {i})"), "not a formula object".into());
            continue;
        };
        match write_formula(&f, url, cellar, host, &tags) {
            Ok(text) => {
                out.formulae.insert(f.name.clone(), text);
            }
            Err(reason) => {
                let name: String = f.name.chars().take(128).collect();
                out.skipped.insert(name, reason);
            }
        }
    }
    Ok(out)
}

/// `https://ghcr.io/v2/homebrew/core/wget/blobs/sha256:…` → `ghcr.io/homebrew/core/wget`.
fn repository_of(blob_url: &str) -> Option<Repository> {
    let u = url::Url::parse(blob_url).ok()?;
    let host = match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_owned(),
    };
    let path = u.path().strip_prefix("/v2/")?;
    let (name, _) = path.rsplit_once("/blobs/")?;
    format!("{host}/{name}").parse().ok()
}

/// Long: one formula of the API becomes TOML in the order its fields are written; each field that
/// pkg would refuse leaves the formula out with why.
fn write_formula(
    f: &ApiFormula,
    url: &str,
    cellar: &Path,
    host: &Platform,
    tags: &[String],
) -> Result<String, String> {
    if !crate::formula::valid_name(&f.name) {
        return Err("not a name pkg can use".into());
    }
    if f.disabled {
        return Err("disabled in homebrew/core".into());
    }
    let stable = f.versions.stable.as_deref().ok_or("no stable version")?;
    let pkg_version = match f.revision {
        0 => stable.to_owned(),
        n => format!("{stable}_{n}"),
    };
    let version = crate::version::parse_brew(&pkg_version).map_err(|_| {
        format!("version `{pkg_version}` is not a version (it must start with a number and hold only letters, digits and `.-_`)")
    })?;
    let bottle = f
        .bottle
        .stable
        .as_ref()
        .filter(|b| !b.files.is_empty())
        .ok_or("no bottles")?;
    let mut bottles = BTreeMap::new();
    let mut repository = None;
    for (tag, file) in &bottle.files {
        let sha256: Digest = format!("sha256:{}", file.sha256)
            .parse()
            .map_err(|_| format!("the {tag} bottle's sha256 is not 64 hex digits"))?;
        // `:any` and `:any_skip_relocation` relocate; a path is the only cellar the bottle
        // runs from (fine when it is this prefix's).
        let only = file
            .cellar
            .as_deref()
            .filter(|c| !c.starts_with(':') && Path::new(c) != cellar)
            .map(str::to_owned);
        if repository.is_none() {
            repository = file.url.as_deref().and_then(repository_of);
        }
        bottles.insert(
            tag.clone(),
            BottleFile {
                sha256,
                cellar: only,
            },
        );
    }
    // A formula whose bottles are all for other machines is left out, saying so, rather than
    // written into the tap to fail at fetch time.
    if !bottles.contains_key("all") && !tags.iter().any(|t| bottles.contains_key(t)) {
        return Err(format!(
            "no bottle for this machine ({}); homebrew/core has bottles for {}",
            tags.first().map(String::as_str).unwrap_or("?"),
            bottles.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let repository = match repository {
        Some(r) => r,
        None => format!(
            "ghcr.io/homebrew/core/{}",
            crate::references::image_name(&f.name)
        )
        .parse::<Repository>()
        .map_err(|e| format!("no repository for its bottles: {e}"))?,
    };
    let tag = match bottle.rebuild {
        0 => pkg_version.clone(),
        n => format!("{pkg_version}-{n}"),
    };
    let depends_on = dependencies(f, host, tags)
        .into_iter()
        .filter(|d| d != &f.name)
        .map(|d| (d, "*".to_owned()))
        .collect();
    let written = Written {
        name: &f.name,
        desc: f.desc.as_deref().unwrap_or_default(),
        homepage: f.homepage.as_deref().unwrap_or_default(),
        license: f.license.as_deref(),
        keg_only: keg_only(f, host, tags),
        versions: [(
            crate::version::show(&version),
            WrittenVersion {
                repository: repository.to_string(),
                tag,
                depends_on,
                bottles,
            },
        )]
        .into(),
    };
    let body = toml::to_string(&written).map_err(|e| e.to_string())?;
    let text = format!(
        "# Written by pkg from the formula API at {url}; `pkg update` writes it again.\n{body}"
    );
    // What pkg writes, pkg must read: a formula it would refuse is left out here, with why.
    Formula::parse(
        &text,
        Origin::File(PathBuf::from(format!("{}.toml", f.name))),
        Some(&f.name),
    )
    .map_err(|e| e.to_string())?;
    Ok(text)
}

/// Whether the formula is keg-only on this host, as Homebrew decides: the host tag's
/// variation's reason first, else the formula's; `:provided_by_macos` and `:shadowed_by_macos`
/// apply only on macOS (on Linux brew links such a keg, zlib's `lib/libz.so` among them), any
/// other reason everywhere.
fn keg_only(f: &ApiFormula, host: &Platform, tags: &[String]) -> bool {
    let reason = tags
        .iter()
        .find_map(|t| f.variations.get(t).and_then(|v| v.keg_only_reason.clone()))
        .or_else(|| f.keg_only_reason.clone());
    let Some(reason) = reason.filter(|r| !r.is_null()) else {
        return f.keg_only;
    };
    let why = reason
        .get("reason")
        .and_then(|r| r.as_str())
        .or(reason.as_str())
        .unwrap_or_default();
    match why {
        ":provided_by_macos" | ":shadowed_by_macos" => host.os == "darwin",
        _ => true,
    }
}

/// The runtime dependencies on this host: the host tag's variation when the API has one, else
/// `dependencies`, and on Linux `uses_from_macos` too (brew installs those there).
fn dependencies(f: &ApiFormula, host: &Platform, tags: &[String]) -> Vec<String> {
    if let Some(deps) = tags
        .iter()
        .find_map(|t| f.variations.get(t).and_then(|v| v.dependencies.clone()))
    {
        return deps;
    }
    let mut deps = f.dependencies.clone();
    if host.os == "linux" {
        for entry in &f.uses_from_macos {
            match entry {
                serde_json::Value::String(name) => deps.push(name.clone()),
                // `{"python": "build"}`: only what the installed formula needs at run time.
                serde_json::Value::Object(map) => deps.extend(
                    map.iter()
                        .filter(|(_, kind)| {
                            !matches!(kind.as_str(), Some("build" | "test"))
                                && !kind.as_array().is_some_and(|kinds| {
                                    kinds
                                        .iter()
                                        .all(|k| matches!(k.as_str(), Some("build" | "test")))
                                })
                        })
                        .map(|(name, _)| name.clone()),
                ),
                _ => {}
            }
        }
    }
    deps.sort();
    deps.dedup();
    deps
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"[
      {"name": "greet", "desc": "Says hello", "homepage": "https://example.com", "license": "MIT",
       "versions": {"stable": "1.0.0", "head": null, "bottle": true}, "revision": 1,
       "dependencies": ["libgreet"], "uses_from_macos": ["zlib", {"python": "build"}],
       "keg_only": false,
       "bottle": {"stable": {"rebuild": 2, "root_url": "https://ghcr.io/v2/homebrew/core",
         "files": {
           "x86_64_linux": {"cellar": ":any", "url": "https://ghcr.io/v2/homebrew/core/greet/blobs/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
           "arm64_sonoma": {"cellar": "/opt/homebrew/Cellar", "url": "https://ghcr.io/v2/homebrew/core/greet/blobs/sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}
         }}}},
      {"name": "gtk+3", "versions": {"stable": "3.24.43"}, "bottle": {"stable": {"files": {
         "x86_64_linux": {"cellar": "/home/linuxbrew/.linuxbrew/Cellar", "sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}}}}},
      {"name": "pcre2", "versions": {"stable": "10.44"}, "keg_only": true, "bottle": {"stable": {"files": {
         "all": {"cellar": ":any_skip_relocation", "url": "http://127.0.0.1:5000/v2/homebrew/core/pcre2/blobs/sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", "sha256": "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"}}}}},
      {"name": "openssh", "versions": {"stable": "9.9p1"}, "bottle": {"stable": {"files": {"all": {"sha256": "dd"}}}}},
      {"name": "nobottle", "versions": {"stable": "1.0.0"}, "bottle": {}},
      "not an object"
    ]"#;

    fn linux() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            os_version: None,
        }
    }

    #[test]
    fn api_formulae_become_formulae_that_pin_each_bottle() {
        let c = convert(
            DOC.as_bytes(),
            "http://x/formula.json",
            Path::new("/p/Cellar"),
            &linux(),
        )
        .unwrap();
        let greet = Formula::parse(&c.formulae["greet"], Origin::Embedded, Some("greet")).unwrap();
        let (version, spec) = greet.versions.iter().next().unwrap();
        assert_eq!(crate::version::show(version), "1.0.0_1");
        assert_eq!(spec.tag.0, "1.0.0_1-2", "a rebuild is the tag's -N");
        assert_eq!(spec.repository.to_string(), "ghcr.io/homebrew/core/greet");
        let deps: Vec<&String> = spec.depends_on.keys().collect();
        assert_eq!(
            deps,
            ["libgreet", "zlib"],
            "uses_from_macos counts on Linux, build deps do not"
        );
        assert_eq!(spec.bottles["x86_64_linux"].cellar, None);
        assert_eq!(
            spec.bottles["arm64_sonoma"].cellar.as_deref(),
            Some("/opt/homebrew/Cellar")
        );
        // `+` is `x` in the image name; a cellar path stays with its bottle.
        let gtk = Formula::parse(&c.formulae["gtk+3"], Origin::Embedded, Some("gtk+3")).unwrap();
        let spec = gtk.versions.values().next().unwrap();
        assert_eq!(spec.repository.to_string(), "ghcr.io/homebrew/core/gtkx3");
        assert!(spec.bottles["x86_64_linux"].cellar.is_some());
        let pcre2 = Formula::parse(&c.formulae["pcre2"], Origin::Embedded, Some("pcre2")).unwrap();
        assert!(pcre2.keg_only);
        let (version, spec) = pcre2.versions.iter().next().unwrap();
        assert_eq!(crate::version::show(version), "10.44");
        assert_eq!(
            spec.repository.to_string(),
            "127.0.0.1:5000/homebrew/core/pcre2"
        );
        // `9.9p1` is a version pkg reads now (issue 28); this document's bottle sha256 is not.
        assert!(c.skipped["openssh"].contains("sha256"), "{:?}", c.skipped);
        assert!(c.skipped["nobottle"].contains("no bottles"));
        assert_eq!(c.skipped.len(), 3, "{:?}", c.skipped);
    }

    #[test]
    fn keg_only_applies_where_its_reason_does() {
        let doc = |reason: &str, variation: &str| {
            format!(
                r#"[{{"name": "zlib", "versions": {{"stable": "1.3.1"}}, "keg_only": true,
                 "keg_only_reason": {reason}, "variations": {variation},
                 "bottle": {{"stable": {{"files": {{"all": {{"sha256": "{}"}}}}}}}}}}]"#,
                "a".repeat(64)
            )
        };
        let on = |os: &str, text: &str| {
            let host = Platform {
                os: os.into(),
                architecture: "arm64".into(),
                variant: None,
                os_version: None,
            };
            let c = convert(
                text.as_bytes(),
                "https://formulae.brew.sh/api/",
                Path::new("/opt/pkg/Cellar"),
                &host,
            )
            .unwrap();
            Formula::parse(&c.formulae["zlib"], Origin::Embedded, Some("zlib"))
                .unwrap()
                .keg_only
        };
        let macos = doc(
            r#"{"reason": ":provided_by_macos", "explanation": ""}"#,
            "{}",
        );
        assert!(!on("linux", &macos), "linked on Linux, as brew links it");
        assert!(on("darwin", &macos));
        let versioned = doc(
            r#"{"reason": ":versioned_formula", "explanation": ""}"#,
            "{}",
        );
        assert!(on("linux", &versioned) && on("darwin", &versioned));
        // The host's variation replaces the formula's reason.
        let varied = doc(
            r#"{"reason": ":versioned_formula", "explanation": ""}"#,
            r#"{"x86_64_linux": {"keg_only_reason": {"reason": ":shadowed_by_macos", "explanation": ""}},
                "arm64_linux": {"keg_only_reason": {"reason": ":shadowed_by_macos", "explanation": ""}}}"#,
        );
        assert!(!on("linux", &varied));
    }

    #[test]
    fn a_bottle_built_for_this_very_cellar_needs_no_relocation() {
        let c = convert(
            DOC.as_bytes(),
            "u",
            Path::new("/home/linuxbrew/.linuxbrew/Cellar"),
            &linux(),
        )
        .unwrap();
        let gtk = Formula::parse(&c.formulae["gtk+3"], Origin::Embedded, Some("gtk+3")).unwrap();
        assert_eq!(
            gtk.versions.values().next().unwrap().bottles["x86_64_linux"].cellar,
            None
        );
        assert!(convert(b"{\"not\": \"a list\"}", "u", Path::new("/c"), &linux()).is_err());
    }
}
