//! What a plan says of the packages it does not move (already installed, not linked, held
//! back, pinned, gone), reported before it runs or is printed.

use crate::plan::{Note, Plan};
use crate::report::Reporter;

/// Says every note of the plan, and each unit's held-back versions.
pub fn announce(plan: &Plan, reporter: &dyn Reporter) {
    for note in &plan.notes {
        match note {
            Note::Unchanged { name, version } => reporter.status(
                "Skipping",
                &format!("{name} {}: already installed", crate::version::Shown(version)),
            ),
            Note::Unlinked { name, version } => reporter.warn(&format!(
                "{name} {} is installed but not linked (`pkg unlink {name}` took its links away); `pkg link {name}` to link it",
                crate::version::Shown(version)
            )),
            Note::NotUpgraded {
                name,
                version,
                latest,
            } => reporter.warn(&format!(
                "{name} {} is installed and {} is available; run `pkg upgrade {name}` or `pkg install --upgrade {name}`",
                crate::version::Shown(version),
                crate::version::Shown(latest)
            )),
            Note::Pinned { name, version } => reporter.status(
                "Pinned",
                &format!(
                    "{name} {} (pinned; `pkg unpin {name}` to upgrade it)",
                    crate::version::Shown(version)
                ),
            ),
            Note::Held { hold, .. } => reporter.warn(&hold.reason),
            Note::Vanished { reason, .. } => reporter.warn(reason),
            Note::Failed { name, error } => reporter.error(&format!("{name}: {error}")),
            Note::UpToDate { .. } => {}
        }
    }
    for unit in &plan.units {
        if let Some(hold) = &unit.hold {
            reporter.warn(&hold.reason);
        }
    }
}
