//! How library code tells the user what is happening without printing: a small reporter trait,
//! implemented at the command layer (stderr, with progress bars on a terminal) and by tests.

pub trait Reporter: Send + Sync {
    /// A step of progress: `("Installing", "hello 1.2.0")`.
    fn status(&self, action: &str, message: &str);
    /// Something the user should know that did not stop the command.
    fn warn(&self, message: &str);
    /// Part of the command failed (one package of several) while the rest goes on; unlike a
    /// warning it is shown even under `--quiet`.
    fn error(&self, message: &str) {
        self.warn(message);
    }
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
    fn status(&self, _: &str, _: &str) {}
    fn warn(&self, _: &str) {}
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
