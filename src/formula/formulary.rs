//! Finding formulae by name across every source — user directories, the formulae references
//! recorded, taps, the ones built into pkg — where a name must mean one formula.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

/// The formula sources that are not taps: PKG_FORMULAE / config directories, the formulae
/// `install REGISTRY/REPO:TAG` recorded, and the ones built into pkg. Tap names may not be these.
pub const LOCAL: &str = "local";
pub const REFERENCES: &str = "references";
pub const BUILTIN: &str = "builtin";

/// One place formulae are found, under the name a user gives it in `SOURCE/NAME`.
#[derive(Clone, Debug, Default)]
pub struct FormulaSource {
    pub id: String,
    pub dir: PathBuf,
    /// Formulae the source lists but pkg left out of it (an API tap's), name → why.
    pub left_out: BTreeMap<String, String>,
}

/// Finds formulae by name across every source (user directories, references, taps, the
/// embedded ones). A name must mean one formula: one defined by more than one source is refused
/// unless the user names the source (`SOURCE/NAME`) or an installed package recorded it.
#[derive(Clone, Debug, Default)]
pub struct Formulary {
    sources: Vec<FormulaSource>,
    /// Formulae given whole, found before any source (a lock's exact versions).
    given: BTreeMap<String, Formula>,
    /// The source each name is taken from: chosen on the command line (`SOURCE/NAME`) or
    /// recorded by an installed package's receipt.
    chosen: BTreeMap<String, String>,
    /// Names whose source an installed receipt recorded (vs one chosen on the command line).
    recorded: std::collections::BTreeSet<String>,
}

impl Formulary {
    /// Directories searched as the `local` source (tests and one-off lookups).
    pub fn new(dirs: Vec<PathBuf>) -> Formulary {
        Formulary::from_sources(
            dirs.into_iter()
                .map(|dir| FormulaSource {
                    id: LOCAL.to_owned(),
                    dir,
                    ..FormulaSource::default()
                })
                .collect(),
        )
    }

    pub fn from_sources(sources: Vec<FormulaSource>) -> Formulary {
        Formulary {
            sources,
            ..Formulary::default()
        }
    }

    /// This formulary, with `formula` found under its name before anything else.
    pub fn with(mut self, formula: Formula) -> Formulary {
        self.given.insert(formula.name.clone(), formula);
        self
    }

    /// `name` is taken from `source` (an installed package's record).
    pub fn record(&mut self, name: &str, source: &str) {
        self.chosen.insert(name.to_owned(), source.to_owned());
        self.recorded.insert(name.to_owned());
    }

    /// `SOURCE/NAME[@REQ]` → (`NAME[@REQ]`, source), when the part before the last `/` of the
    /// name is a known source; `None` for anything else (a registry reference, a plain name).
    pub fn split_qualified<'a>(&self, arg: &'a str) -> Option<(&'a str, String)> {
        let name_end = arg.find('@').unwrap_or(arg.len());
        let (source, _) = arg[..name_end].rsplit_once('/')?;
        let known = self.source_ids();
        known
            .iter()
            .any(|k| k == source)
            .then(|| (&arg[source.len() + 1..], source.to_owned()))
    }

    /// Takes `arg` as the user typed it: a qualified `SOURCE/NAME[@REQ]` makes that source the
    /// one for NAME from now on; returns `NAME[@REQ]`. Errors when the source is unknown or
    /// does not define NAME.
    pub fn choose(&mut self, arg: &str) -> Result<String, FormulaError> {
        let Some((rest, source)) = self.split_qualified(arg) else {
            let name_end = arg.find('@').unwrap_or(arg.len());
            if let Some((source, name)) = arg[..name_end].rsplit_once('/') {
                return Err(FormulaError::UnknownSource {
                    source_name: source.into(),
                    name: name.into(),
                    known: self.source_ids().join(", ").into(),
                });
            }
            return Ok(arg.to_owned());
        };
        let name = rest.split('@').next().unwrap_or(rest);
        if !self.defines(&source, name) {
            return Err(self.not_in(&source, name));
        }
        self.chosen.insert(name.to_owned(), source);
        self.recorded.remove(name);
        Ok(rest.to_owned())
    }

    /// Every source's name, in lookup order, `builtin` last.
    pub fn source_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.sources.iter().map(|s| s.id.clone()).collect();
        ids.push(BUILTIN.to_owned());
        ids.dedup();
        ids
    }

    fn file_in(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.toml"))
    }

    /// Whether `source` defines `name`.
    fn defines(&self, source: &str, name: &str) -> bool {
        if source == BUILTIN {
            return embedded::EMBEDDED.iter().any(|(n, _)| *n == name);
        }
        self.sources
            .iter()
            .any(|s| s.id == source && Self::file_in(&s.dir, name).is_file())
    }

    /// The sources that define `name`, in lookup order, each once.
    pub fn sources_of(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.sources {
            if Self::file_in(&s.dir, name).is_file() && !out.contains(&s.id) {
                out.push(s.id.clone());
            }
        }
        if embedded::EMBEDDED.iter().any(|(n, _)| *n == name) {
            out.push(BUILTIN.to_owned());
        }
        out
    }

    pub fn load(&self, name: &str) -> Result<Formula, FormulaError> {
        if let Some((rest, source)) = self.split_qualified(name)
            && !rest.contains('@')
        {
            return self.load_from(&source, rest);
        }
        if !valid_name(name) {
            return Err(FormulaError::BadName(name.chars().take(128).collect()));
        }
        if let Some(f) = self.given.get(name) {
            return Ok(f.clone());
        }
        let found = self.sources_of(name);
        if let Some(source) = self.chosen.get(name) {
            if found.contains(source) {
                return self.load_from(source, name);
            }
            if self.recorded.contains(name) {
                return Err(FormulaError::SourceGone {
                    name: name.into(),
                    recorded: source.as_str().into(),
                    others: found.join(", ").into(),
                });
            }
        }
        match found.as_slice() {
            [] => Err(match self.left_out(name) {
                Some((source, reason)) => FormulaError::LeftOut {
                    name: name.into(),
                    source_name: source.into(),
                    reason: reason.into(),
                },
                None => FormulaError::NotFound {
                    name: name.to_owned(),
                    suggestions: self.similar(name),
                },
            }),
            [one] => self.load_from(one, name),
            _ => Err(FormulaError::Ambiguous {
                name: name.to_owned(),
                sources: found,
            }),
        }
    }

    /// The formula `name` as `source` defines it.
    fn load_from(&self, source: &str, name: &str) -> Result<Formula, FormulaError> {
        if !valid_name(name) {
            return Err(FormulaError::BadName(name.chars().take(128).collect()));
        }
        if source == BUILTIN
            && let Some((_, text)) = embedded::EMBEDDED.iter().find(|(n, _)| *n == name)
        {
            let mut f = Formula::parse(text, Origin::Embedded, Some(name))?;
            f.source = Some(BUILTIN.to_owned());
            return Ok(f);
        }
        let mut any = false;
        for s in self.sources.iter().filter(|s| s.id == source) {
            any = true;
            let path = Self::file_in(&s.dir, name);
            // Read at most one byte past the cap: a huge file is refused without reading it all.
            let read = std::fs::File::open(&path).and_then(|f| {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(f, MAX_FORMULA_BYTES as u64 + 1),
                    &mut text,
                )
                .map(|_| text)
            });
            match read {
                Ok(text) => {
                    let mut f = Formula::parse(&text, Origin::File(path), Some(name))?;
                    f.source = Some(source.to_owned());
                    return Ok(f);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(FormulaError::Io { path, source }),
            }
        }
        if !any && source != BUILTIN {
            return Err(FormulaError::UnknownSource {
                source_name: source.into(),
                name: name.into(),
                known: self.source_ids().join(", ").into(),
            });
        }
        Err(self.not_in(source, name))
    }

    /// `source` does not define `name`: the sources that do, as suggestions.
    fn not_in(&self, source: &str, name: &str) -> FormulaError {
        FormulaError::NotFound {
            name: format!("{source}/{name}"),
            suggestions: self
                .sources_of(name)
                .into_iter()
                .map(|s| format!("{s}/{name}"))
                .collect(),
        }
    }

    /// The source that lists `name` but left it out, and why.
    pub fn left_out(&self, name: &str) -> Option<(&str, &str)> {
        self.sources
            .iter()
            .find_map(|s| s.left_out.get(name).map(|r| (s.id.as_str(), r.as_str())))
    }

    /// Every formula a source lists but left out: (name, source, why).
    pub fn all_left_out(&self) -> Vec<(&str, &str, &str)> {
        self.sources
            .iter()
            .flat_map(|s| {
                s.left_out
                    .iter()
                    .map(move |(n, r)| (n.as_str(), s.id.as_str(), r.as_str()))
            })
            .collect()
    }

    /// Whether a formula of this name exists (without parsing it).
    pub fn has(&self, name: &str) -> bool {
        if let Some((rest, source)) = self.split_qualified(name) {
            return self.defines(&source, rest);
        }
        valid_name(name) && (self.given.contains_key(name) || !self.sources_of(name).is_empty())
    }

    /// Every formula name known, sorted and deduplicated; a name more than one source defines
    /// is also listed as `SOURCE/NAME` for each (what completion offers).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = embedded::EMBEDDED
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        names.extend(self.given.keys().cloned());
        for s in &self.sources {
            let Ok(entries) = std::fs::read_dir(&s.dir) else {
                continue;
            };
            names.extend(entries.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".toml")?.to_owned())
            }));
        }
        names.sort();
        names.dedup();
        let mut qualified = Vec::new();
        for n in &names {
            let sources = self.sources_of(n);
            if sources.len() > 1 {
                qualified.extend(sources.into_iter().map(|s| format!("{s}/{n}")));
            }
        }
        names.extend(qualified);
        names.sort();
        names
    }

    fn similar(&self, name: &str) -> Vec<String> {
        crate::report::similar(name, self.names())
    }
}
