//! How library code tells the user what is happening without printing: a reporter trait that
//! takes typed events ([`Event`]; the words are the command layer's), implemented at the command
//! layer (stderr, with progress bars on a terminal) and by tests.

mod event;

pub use event::{Arrival, Event, Switch, TagMove, UndoStep};

pub trait Reporter: Send + Sync {
    /// Something happened that the user is told about (the words are the reporter's).
    fn event(&self, event: Event<'_>);
    /// A transfer of `total` bytes starts; the handle is told as bytes arrive.
    fn progress(&self, _label: &str, _total: u64) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}

/// One transfer's progress.
pub trait Progress: Send {
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: Event<'_>) {}
}

/// `1 file`, `3 files`, `2 prefixes`, `2 formulae`, `2 dependencies`.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        return format!("1 {what}");
    }
    let plural = if what.ends_with("formula") {
        format!("{what}e")
    } else if let Some(stem) = what.strip_suffix('y') {
        format!("{stem}ies")
    } else if ["s", "x", "ch", "sh"].iter().any(|end| what.ends_with(end)) {
        format!("{what}es")
    } else {
        format!("{what}s")
    };
    format!("{n} {plural}")
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How an error says what kind of failure it is, decided where the error type is defined:
/// bad input (a malformed name, request, file or setting the user gave: exit 2, as a usage
/// error) or a failure (exit 1). `commands::exit_code` asks each error of a chain.
pub trait Classify {
    fn bad_input(&self) -> bool;
}

/// An error and its causes, each said once: a cause whose text the message before it already
/// holds (`io: Connection refused (os error 111)` then `Connection refused (os error 111)`) is
/// left out.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !out.last().is_some_and(|prev| prev.contains(text.trim())) && !text.trim().is_empty() {
            out.push(text);
        }
        next = e.source();
    }
    out
}

/// [`causes`] on one line, joined with `: ` (as `{:#}` would, without the repeats).
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    causes(err).join(": ")
}

/// Text from outside pkg (a formula's description, homepage, licence) as shown on a terminal:
/// control characters (ESC and OSC sequences, carriage returns, embedded newlines) escaped, so
/// a formula can neither retitle the terminal nor fake lines of output. JSON output stays exact.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The names among `candidates` most like `name` (at most three, likest first): what a typo
/// probably meant, for "did you mean".
pub fn similar(name: &str, candidates: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut scored: Vec<(f64, String)> = candidates
        .into_iter()
        .map(|n| (strsim::jaro_winkler(name, &n), n))
        .filter(|(score, n)| *score > 0.8 || n.contains(name) || name.contains(n.as_str()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_text_is_shown_without_terminal_controls() {
        assert_eq!(printable("plain text"), "plain text");
        let hostile = "x\u{1b}]0;pwned\u{7}\ny\u{9b}2J\r";
        let shown = printable(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(
            shown.contains("\\u{1b}]0;pwned") && shown.contains("\\n"),
            "{shown}"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("could not reach http://x/v2/")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("io: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let e = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        assert_eq!(
            causes(&e),
            [
                "could not reach http://x/v2/",
                "io: Connection refused (os error 111)"
            ]
        );
        assert_eq!(
            one_line(&e),
            "could not reach http://x/v2/: io: Connection refused (os error 111)"
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(count(1, "keg"), "1 keg");
        assert_eq!(count(2, "keg"), "2 kegs");
        assert_eq!(count(2, "formula"), "2 formulae");
        assert_eq!(count(2, "prefix"), "2 prefixes");
        assert_eq!(count(3, "dependency"), "3 dependencies");
    }
}

/// A reporter that keeps the events it is given (as `{:?}` shows them), for unit tests.
#[cfg(test)]
#[derive(Default)]
pub struct Collect(pub std::sync::Mutex<Vec<String>>);

#[cfg(test)]
impl Collect {
    /// The events so far.
    pub fn events(&self) -> Vec<String> {
        self.0.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
impl Reporter for Collect {
    fn event(&self, event: Event<'_>) {
        if let Ok(mut w) = self.0.lock() {
            w.push(format!("{event:?}"));
        }
    }
}
