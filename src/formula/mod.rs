//! Formulae: TOML files that map a package's versions to registry repositories and tags.
//! Lookup order: the directories in `PKG_FORMULAE`, then the formulae embedded in pkg.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};

use crate::digest::Digest;
use crate::registry::Repository;
use crate::registry::repository::valid_tag;

mod formulary;
pub use formulary::{BUILTIN, FormulaSource, Formulary, LOCAL, REFERENCES};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_formulae.rs"));
}

/// Where a formula was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Embedded => write!(f, "(built into pkg)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Formula {
    pub name: String,
    pub desc: String,
    pub homepage: String,
    pub license: Option<String>,
    /// Keg-relative files to link into `PREFIX/bin`; `None` means the executables in `bin/`.
    pub bin: Option<Vec<String>>,
    /// Keg directories linked into the same place in the prefix as brew links them (a
    /// directory the prefix lacks is one link, see `link::rules`; `link = "all"`:
    /// [`BREW_LINK_DIRS`]); empty: `bin` and `opt/NAME` only. Homebrew bottles
    /// get all of them when this is empty.
    pub link: Vec<String>,
    /// Homebrew's `keg_only`: nothing is linked into the prefix but `opt/NAME`.
    pub keg_only: bool,
    /// Platforms (`os[/arch[/variant]]`) the package installs on; `None` means any.
    pub platforms: Option<Vec<String>>,
    pub versions: BTreeMap<Version, VersionSpec>,
    pub origin: Origin,
    /// The formula source it was found in (a tap's name, `local`, `references`, `builtin`):
    /// recorded in the receipt, so upgrades come from the same source.
    pub source: Option<String>,
    /// `[verify]`: whose signature an install needs (verify/policy.rs).
    pub verify: Option<crate::verify::Policy>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    pub repository: Source,
    pub tag: Tag,
    /// Pin of the manifest digest; when present the fetched manifest must hash to it.
    #[serde(default)]
    pub digest: Option<Digest>,
    #[serde(default)]
    pub depends_on: BTreeMap<String, VersionReq>,
    /// Homebrew bottles by bottle tag (`x86_64_linux`, `arm64_sonoma`, `all`), as homebrew/core's
    /// formula API lists them: the layer poured must be the file of the host's tag.
    #[serde(default)]
    pub bottles: BTreeMap<String, BottleFile>,
}

/// One bottle file of a Homebrew formula: the sha256 of its `tar.gz` and, when Homebrew built it
/// for one cellar only (`cellar` a path, not `:any`), that cellar.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BottleFile {
    pub sha256: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cellar: Option<String>,
}

/// Where a version's image is: a registry repository, or an OCI image layout on disk
/// (`oci:PATH`, relative to the formula file) for installs without a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Registry(Repository),
    Layout(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Registry(r) => write!(f, "{r}"),
            Source::Layout(p) => write!(f, "oci:{}", p.display()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.strip_prefix("oci:") {
            Some("") => Err(serde::de::Error::custom(
                "`oci:` needs the path of an OCI image layout, like `oci:../layouts/hello`",
            )),
            Some(path) => Ok(Source::Layout(PathBuf::from(path))),
            None => s
                .parse::<Repository>()
                .map(Source::Registry)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag(pub String);

impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // A digest names the manifest directly (what `pkg install REPO@sha256:…` records).
        if valid_tag(&s) || s.parse::<Digest>().is_ok() {
            Ok(Tag(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid tag `{s}`: a tag is 1 to 128 of A-Z a-z 0-9 _ . - and does not start with . or - (or a digest, `sha256:…`)"
            )))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version key of `[versions."X"]`: semver, a Homebrew revision, or Homebrew's `X.Y`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey(Version);

impl<'de> serde::Deserialize<'de> for VersionKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::version::parse_brew(&s).map(VersionKey).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid version `{s}`: {e} (versions are semver, like `1.2.3`, with a Homebrew revision, like `1.2.3_1`, or written as Homebrew does, like `10.44`)"
            ))
        })
    }
}

/// A keg-relative path to link: relative, no `..`, no empty components.
struct KegPath(String);

impl<'de> serde::Deserialize<'de> for KegPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && !s.starts_with('/')
            && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            && !s.contains('\0');
        if ok {
            Ok(KegPath(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid bin entry `{s}`: it must be a path inside the keg, like `bin/tool`"
            )))
        }
    }
}

/// The keg directories Homebrew links into the prefix.
pub const BREW_LINK_DIRS: [&str; 7] = [
    "bin",
    "sbin",
    "lib",
    "include",
    "share",
    "etc",
    "Frameworks",
];

/// `link = "all"` or `link = ["lib", "include"]`: keg directories linked into the prefix.
struct LinkDirs(Vec<String>);

impl<'de> serde::Deserialize<'de> for LinkDirs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "invalid link entry `{what}`: `link` is \"all\" or a list of {}",
                BREW_LINK_DIRS.join(", ")
            ))
        };
        match Raw::deserialize(d)? {
            Raw::One(all) if all == "all" => Ok(LinkDirs(
                BREW_LINK_DIRS.iter().map(|d| d.to_string()).collect(),
            )),
            Raw::One(other) => Err(bad(&other)),
            Raw::Many(dirs) => {
                if let Some(d) = dirs.iter().find(|d| !BREW_LINK_DIRS.contains(&d.as_str())) {
                    return Err(bad(d));
                }
                Ok(LinkDirs(dirs))
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFormula {
    name: String,
    desc: String,
    homepage: String,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    bin: Option<Vec<KegPath>>,
    #[serde(default)]
    link: Option<LinkDirs>,
    #[serde(default)]
    keg_only: bool,
    #[serde(default)]
    platforms: Option<Vec<String>>,
    versions: BTreeMap<VersionKey, VersionSpec>,
    #[serde(default)]
    verify: Option<crate::verify::policy::RawVerify>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormulaError {
    #[error("no formula named `{name}`{}", suggest(.suggestions))]
    NotFound {
        name: String,
        suggestions: Vec<String>,
    },
    #[error(
        "the formula `{name}` is defined by more than one source: {}. pkg never picks one by lookup order (one may carry a signature policy the other lacks); name the one you mean as `SOURCE/{name}`: {}",
        .sources.join(", "),
        .sources.iter().map(|s| format!("`{s}/{name}`")).collect::<Vec<_>>().join(" or ")
    )]
    Ambiguous { name: String, sources: Vec<String> },
    #[error(
        "{name} was installed from {recorded}, which no longer defines it{}; pkg does not switch sources on its own: `pkg install SOURCE/{name}` to choose one",
        if .others.is_empty() { String::new() } else { format!(" ({} does)", .others) }
    )]
    SourceGone {
        name: Box<str>,
        recorded: Box<str>,
        /// The sources that define it now, joined with `, `.
        others: Box<str>,
    },
    #[error("{source_name} lists `{name}`, but pkg left it out of the tap: {reason}")]
    LeftOut {
        name: Box<str>,
        source_name: Box<str>,
        reason: Box<str>,
    },
    #[error(
        "no formula source named `{source_name}` (for `{source_name}/{name}`); the sources are: {known}"
    )]
    UnknownSource {
        source_name: Box<str>,
        name: Box<str>,
        /// Every source, joined with `, `.
        known: Box<str>,
    },
    #[error("invalid package name `{0}`: names use lowercase letters, digits and `-_.+@`{hint}", hint = lowercase_hint(.0))]
    BadName(String),
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("reading formula {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A formula larger than this is refused unread (real ones are a few KiB; 1 MiB holds thousands
/// of versions).
pub const MAX_FORMULA_BYTES: usize = 1024 * 1024;

/// Longest line of input quoted in a message.
const MAX_QUOTED_LINE: usize = 200;

/// Cuts every line of `message` to `max` characters, saying how many were left out.
pub fn cut_lines(message: &str, max: usize) -> String {
    message
        .lines()
        .map(|line| {
            let n = line.chars().count();
            if n <= max {
                line.to_owned()
            } else {
                let kept: String = line.chars().take(max).collect();
                format!("{kept}… ({} more characters)", n - max)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn suggest(suggestions: &[String]) -> String {
    match suggestions {
        [] => ". `pkg search` lists the known formulae; add directories with PKG_FORMULAE".into(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!("; did you mean one of: {}?", many.join(", ")),
    }
}

/// `; did you mean `hello`?` for `Hello`, when lowercasing makes a valid name.
fn lowercase_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower != name && valid_name(&lower) {
        format!("; did you mean `{lower}`?")
    } else {
        String::new()
    }
}

pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'-' | b'_' | b'.' | b'+' | b'@')
        })
}

impl Formula {
    /// Parses a formula; errors name the file and, for TOML and value errors, the line and column.
    /// Long: a formula's checks in the order its fields are read, each error naming the file and
    /// the field.
    pub fn parse(
        text: &str,
        origin: Origin,
        expected_name: Option<&str>,
    ) -> Result<Formula, FormulaError> {
        let file = origin.to_string();
        if text.len() > MAX_FORMULA_BYTES {
            return Err(FormulaError::Invalid {
                file,
                message: format!(
                    "the formula is {} bytes, past the {MAX_FORMULA_BYTES}-byte limit for a formula; it is not one pkg will read",
                    text.len()
                ),
            });
        }
        let raw: RawFormula = toml::from_str(text).map_err(|e| FormulaError::Parse {
            file: file.clone(),
            message: cut_lines(e.to_string().trim_end(), MAX_QUOTED_LINE),
        })?;
        let invalid = |message: String| FormulaError::Invalid {
            file: file.clone(),
            message,
        };
        if !valid_name(&raw.name) {
            return Err(invalid(format!(
                "invalid name `{}`: names use lowercase letters, digits and `-_.+@`",
                raw.name
            )));
        }
        if let Some(expected) = expected_name
            && raw.name != expected
        {
            return Err(invalid(format!(
                "the formula is named `{}` but its file is `{expected}.toml`; they must agree",
                raw.name
            )));
        }
        if raw.keg_only && (raw.bin.is_some() || raw.link.is_some()) {
            return Err(invalid(
                "a `keg_only` formula links nothing into the prefix but opt/NAME; drop its `bin` and `link`, or `keg_only`".into(),
            ));
        }
        if raw.versions.is_empty() {
            return Err(invalid(
                "the formula lists no versions; add a [versions.\"X.Y.Z\"] table".into(),
            ));
        }
        for (version, spec) in &raw.versions {
            for dep in spec.depends_on.keys() {
                if !valid_name(dep) {
                    return Err(invalid(format!(
                        "version {}: invalid dependency name `{dep}`",
                        version.0
                    )));
                }
                if dep == &raw.name {
                    return Err(invalid(format!(
                        "version {}: the package depends on itself",
                        version.0
                    )));
                }
            }
        }
        let formula_file = match &origin {
            Origin::File(f) => Some(f.as_path()),
            Origin::Embedded => None,
        };
        let verify = raw
            .verify
            .map(|v| crate::verify::policy::from_raw(v, formula_file))
            .transpose()
            .map_err(&invalid)?;
        let mut versions: BTreeMap<Version, VersionSpec> =
            raw.versions.into_iter().map(|(k, v)| (k.0, v)).collect();
        for (version, spec) in versions.iter_mut() {
            if let Source::Layout(path) = &mut spec.repository
                && path.is_relative()
            {
                match &origin {
                    Origin::File(file) => {
                        *path = file.parent().unwrap_or(Path::new("")).join(&*path);
                    }
                    Origin::Embedded => {
                        return Err(invalid(format!(
                            "version {version}: a formula built into pkg cannot name a relative `oci:` layout"
                        )));
                    }
                }
            }
        }
        Ok(Formula {
            source: None,
            name: raw.name,
            desc: raw.desc,
            homepage: raw.homepage,
            license: raw.license,
            bin: raw.bin.map(|b| b.into_iter().map(|p| p.0).collect()),
            link: raw.link.map(|l| l.0).unwrap_or_default(),
            keg_only: raw.keg_only,
            platforms: raw.platforms,
            versions,
            origin,
            verify,
        })
    }

    pub fn newest(&self) -> Option<&Version> {
        self.versions.keys().next_back()
    }
}

impl crate::report::Classify for FormulaError {
    /// A malformed name, or one the user must qualify with its source, is input to fix.
    fn bad_input(&self) -> bool {
        matches!(
            self,
            FormulaError::BadName(_)
                | FormulaError::Ambiguous { .. }
                | FormulaError::UnknownSource { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "hello"
desc = "Says hello"
homepage = "https://example.com"
bin = ["bin/hello"]

[versions."1.0.0"]
repository = "ghcr.io/acme/hello"
tag = "1.0.0"

[versions."1.2.0"]
repository = "ghcr.io/acme/hello"
tag = "1.2.0"
digest = "sha256:aa986f18e5556f9ce7ce265242ec6457ea2802030d92e5dc4c3c807a495db1e4"
depends_on = { libfoo = "^2" }
"#;

    #[test]
    fn messages_quote_input_briefly_and_huge_formulae_are_refused() {
        // 100k nested inline tables on one line: the parse error quotes a cut line.
        let nested = format!(
            "name = \"x\"\ndesc = {}1{}\n",
            "{ a = ".repeat(100_000),
            " }".repeat(99_999)
        );
        let err = parse(&nested).unwrap_err().to_string();
        assert!(err.len() < 2_000, "{} bytes", err.len());
        assert!(err.contains("more characters"), "{err}");
        let huge = format!("{GOOD}\n# {}\n", "x".repeat(MAX_FORMULA_BYTES));
        let err = parse(&huge).unwrap_err().to_string();
        assert!(err.contains("limit for a formula"), "{err}");
    }

    #[test]
    fn a_name_two_sources_define_is_refused_until_one_is_named_or_recorded() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        for dir in [&a, &b] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("hello.toml"), GOOD).unwrap();
        }
        std::fs::write(a.join("only.toml"), GOOD.replace("\"hello\"", "\"only\"")).unwrap();
        let source = |id: &str, dir: &Path| FormulaSource {
            id: id.into(),
            dir: dir.to_owned(),
            ..FormulaSource::default()
        };
        let mut f = Formulary::from_sources(vec![source("aa/x", &a), source("zz/y", &b)]);
        let err = f.load("hello").unwrap_err().to_string();
        assert!(err.contains("aa/x, zz/y"), "{err}");
        assert_eq!(
            f.load("zz/y/hello").unwrap().source.as_deref(),
            Some("zz/y")
        );
        assert_eq!(f.load("only").unwrap().source.as_deref(), Some("aa/x"));
        assert!(f.has("zz/y/hello") && !f.has("zz/y/only"));
        assert!(f.names().contains(&"aa/x/hello".to_owned()));
        assert_eq!(f.choose("zz/y/hello@^1").unwrap(), "hello@^1");
        assert_eq!(f.load("hello").unwrap().source.as_deref(), Some("zz/y"));
        let err = f.choose("nope/hello").unwrap_err().to_string();
        assert!(err.contains("no formula source named `nope`"), "{err}");
        // Recorded by a receipt, and then gone from that source: said, never switched.
        let mut g = Formulary::from_sources(vec![source("aa/x", &a)]);
        g.record("hello", "zz/y");
        let err = g.load("hello").unwrap_err().to_string();
        assert!(
            err.contains("installed from zz/y") && err.contains("aa/x"),
            "{err}"
        );
    }

    fn parse(text: &str) -> Result<Formula, FormulaError> {
        Formula::parse(text, Origin::File("hello.toml".into()), Some("hello"))
    }

    #[test]
    fn parses_a_formula() {
        let f = parse(GOOD).unwrap();
        assert_eq!(f.newest().unwrap().to_string(), "1.2.0");
        let spec = &f.versions[&Version::new(1, 2, 0)];
        assert!(
            matches!(&spec.repository, Source::Registry(r) if r.name == "acme/hello"),
            "{:?}",
            spec.repository
        );
        assert!(spec.digest.is_some());
        assert!(spec.depends_on["libfoo"].matches(&Version::new(2, 5, 0)));
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_reported_with_file_line_and_column() {
        let text = GOOD.replace("bin = [", "colour = \"red\"\nbin = [");
        let err = error_of(&text);
        assert!(err.contains("hello.toml"), "{err}");
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn bad_version_is_reported_with_its_line() {
        // `1.0.0.0` is a version Homebrew writes (four numbers); `1.0..0` is none.
        let err = error_of(&GOOD.replace("[versions.\"1.0.0\"]", "[versions.\"1.0..0\"]"));
        assert!(
            err.contains("line 7") && err.contains("invalid version `1.0..0`"),
            "{err}"
        );
    }

    #[test]
    fn bad_digest_is_reported_with_its_line() {
        let err = error_of(&GOOD.replace("sha256:aa98", "sha256:zz98"));
        assert!(
            err.contains("line 14") && err.contains("invalid digest"),
            "{err}"
        );
    }

    #[test]
    fn bad_repository_and_bin_are_reported() {
        let err = error_of(&GOOD.replace(
            "ghcr.io/acme/hello\"\ntag = \"1.0.0\"",
            "acme\"\ntag = \"1.0.0\"",
        ));
        assert!(
            err.contains("line 8") && err.contains("invalid repository"),
            "{err}"
        );
        let err = error_of(&GOOD.replace("bin/hello", "../evil"));
        assert!(
            err.contains("line 5") && err.contains("invalid bin entry"),
            "{err}"
        );
    }

    #[test]
    fn oci_layouts_are_relative_to_the_formula_file() {
        let text = GOOD.replace(
            "\"ghcr.io/acme/hello\"\ntag = \"1.0.0\"",
            "\"oci:../layouts/hello\"\ntag = \"1.0.0\"",
        );
        let f = Formula::parse(&text, Origin::File("/f/hello.toml".into()), Some("hello")).unwrap();
        let spec = &f.versions[&Version::new(1, 0, 0)];
        assert_eq!(
            spec.repository,
            Source::Layout(PathBuf::from("/f/../layouts/hello"))
        );
        assert_eq!(spec.repository.to_string(), "oci:/f/../layouts/hello");
        let abs = GOOD.replace(
            "\"ghcr.io/acme/hello\"\ntag = \"1.0.0\"",
            "\"oci:/srv/l\"\ntag = \"1.0.0\"",
        );
        let f = Formula::parse(&abs, Origin::Embedded, Some("hello")).unwrap();
        assert_eq!(
            f.versions[&Version::new(1, 0, 0)].repository,
            Source::Layout(PathBuf::from("/srv/l"))
        );
        let err = Formula::parse(&text, Origin::Embedded, Some("hello")).unwrap_err();
        assert!(err.to_string().contains("relative `oci:`"), "{err}");
        let err = error_of(&GOOD.replace(
            "\"ghcr.io/acme/hello\"\ntag = \"1.0.0\"",
            "\"oci:\"\ntag = \"1.0.0\"",
        ));
        assert!(err.contains("line 8") && err.contains("oci:"), "{err}");
    }

    #[test]
    fn name_must_match_file() {
        let err = Formula::parse(GOOD, Origin::File("x.toml".into()), Some("other")).unwrap_err();
        assert!(err.to_string().contains("must agree"), "{err}");
    }

    #[test]
    fn embedded_anakin_parses_and_is_pinned() {
        let f = Formulary::default().load("anakin").unwrap();
        let spec = &f.versions[&Version::new(1, 0, 0)];
        assert_eq!(
            spec.repository.to_string(),
            "ghcr.io/cortinico/space-unlimited-space/anakin"
        );
        assert_eq!(
            spec.digest.as_ref().unwrap().to_string(),
            "sha256:aa986f18e5556f9ce7ce265242ec6457ea2802030d92e5dc4c3c807a495db1e4"
        );
    }

    #[test]
    fn user_directories_come_first_and_unknown_names_get_suggestions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.toml"), GOOD).unwrap();
        let formulary = Formulary::new(vec![dir.path().to_path_buf()]);
        assert_eq!(formulary.load("hello").unwrap().name, "hello");
        let err = formulary.load("helo").unwrap_err().to_string();
        assert!(err.contains("did you mean `hello`"), "{err}");
        let err = formulary.load("anakn").unwrap_err().to_string();
        assert!(err.contains("anakin"), "{err}");
    }
}
