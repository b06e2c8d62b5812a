//! The terminal side of reporting: coloured status lines, warnings and progress bars on stderr;
//! the engine's events are put into words by `words.rs`.
//! Bars appear only when stderr is a terminal and `--quiet` is off; `--quiet` also silences
//! warnings (errors are printed by `main`). Bars are coloured only when the lines are.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::words::{Said, words};
use crate::cli::ColorChoice;
use crate::report::{Event, NoProgress, Progress, Reporter};

#[derive(Clone)]
pub struct Stderr {
    quiet: bool,
    color: bool,
    bars: Option<MultiProgress>,
}

impl Stderr {
    pub fn new(quiet: bool, choice: ColorChoice) -> Stderr {
        let tty = std::io::stderr().is_terminal();
        let color = colored(choice);
        let bars =
            (tty && !quiet).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Stderr { quiet, color, bars }
    }

    /// `error:` as the final error is printed: red and bold like the run's own, when coloured.
    pub fn error_label(choice: ColorChoice) -> String {
        if colored(choice) {
            "\x1b[1;31merror:\x1b[0m".to_owned()
        } else {
            "error:".to_owned()
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Writes a line without tearing a progress bar that is being drawn.
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    /// `--verbose` lines.
    pub fn debug(&self, text: &str) {
        self.line(&self.paint("2", &format!("debug: {text}")));
    }
}

impl Stderr {
    /// A status line: a right-aligned action word, then the message.
    pub fn status(&self, action: &str, message: &str) {
        if !self.quiet {
            self.line(&format!(
                "{} {message}",
                self.paint("1;32", &format!("{action:>12}"))
            ));
        }
    }

    /// Something the user should know that did not stop the command (not under `--quiet`).
    pub fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        self.line(&format!("{} {message}", self.paint("1;33", "warning:")));
    }

    /// Part of the command failed while the rest goes on; shown even under `--quiet`.
    pub fn error(&self, message: &str) {
        self.line(&format!("{} {message}", self.paint("1;31", "error:")));
    }
}

impl Reporter for Stderr {
    fn event(&self, event: Event<'_>) {
        match words(&event) {
            Said::Status(action, message) => self.status(action, &message),
            Said::Warning(message) => self.warn(&message),
            Said::Error(message) => self.error(&message),
        }
    }

    fn progress(&self, label: &str, total: u64) -> Box<dyn Progress> {
        let Some(multi) = &self.bars else {
            return Box::new(NoProgress);
        };
        let bar = multi.add(ProgressBar::new(total));
        // The template's style is applied by indicatif (console), which knows nothing of
        // `--color`: without colour, leave the style out. The bar takes what the terminal's
        // width leaves; a narrow pane drops the speed and ETA, then the byte counts, so a line
        // never wraps.
        let prefix = if self.color {
            "{prefix:>12.cyan.bold}"
        } else {
            "{prefix:>12}"
        };
        let rest = match terminal_width() {
            w if w >= 72 => "[{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            w if w >= 52 => "[{wide_bar}] {bytes}/{total_bytes}",
            _ => "[{wide_bar}] {percent:>3}%",
        };
        let template = format!("{prefix} {rest}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}

/// The columns of the terminal stderr is (80 when it cannot be asked).
fn terminal_width() -> u16 {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|w| w.ws_col)
        .filter(|c| *c > 0)
        .unwrap_or(80)
}

/// Whether stderr gets colour: `--color always`/`never`, else a terminal without `NO_COLOR`.
fn colored(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}
