//! Link switches and new kegs of one unit, undone when dropped unless committed (rustup's
//! `Transaction` is the model): every change the unit makes to the prefix is one item of a
//! closed list ([`Change`]), undone in reverse order — the links that were there come back
//! (those taken from other packages with `--overwrite` too, and the records of those takeovers
//! go), the new kegs go, a loader link the unit made goes. An undo step that fails is reported,
//! never dropped.

use std::path::Path;

use semver::Version;

use crate::cellar::Cellar;
use crate::cellar::receipt::{Receipt, ReceiptError};
use crate::link::{self, LinkError};
use crate::report::{Event, Reporter, UndoStep};

/// One change a unit made to the prefix, undone when the unit does not commit.
enum Change {
    /// A keg poured for the unit: it goes.
    Poured { name: String, version: Version },
    /// `name`'s links were switched: the version linked before is linked again (none: its
    /// links go).
    Switched {
        name: String,
        before: Option<Version>,
    },
    /// Links `by` took from other packages (`--overwrite`): the takeover records go, and each
    /// package they were taken from is linked again at its linked version.
    Took {
        by: String,
        taken: link::owners::Taken,
    },
    /// `PREFIX/lib/ld.so` was made (nothing was there): it goes.
    Loader,
}

/// Why an undo step failed.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    #[error(transparent)]
    Cellar(#[from] crate::cellar::CellarError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Transaction<'a> {
    prefix: &'a Path,
    cellar: &'a Cellar,
    reporter: &'a dyn Reporter,
    /// In the order made.
    changes: Vec<Change>,
    committed: bool,
}

impl<'a> Transaction<'a> {
    pub fn new(prefix: &'a Path, cellar: &'a Cellar, reporter: &'a dyn Reporter) -> Self {
        Transaction {
            prefix,
            cellar,
            reporter,
            changes: Vec::new(),
            committed: false,
        }
    }

    /// A keg poured for this unit: taken back out if the unit does not commit.
    pub fn poured(&mut self, name: &str, version: &Version) {
        self.changes.push(Change::Poured {
            name: name.to_owned(),
            version: version.clone(),
        });
    }

    /// Links `name` at `version` (its receipt's bins and directories); returns the version
    /// linked before and the links taken from other packages (`overwrite`).
    pub fn link(
        &mut self,
        name: &str,
        version: &Version,
        bins: &[String],
        dirs: &[String],
        overwrite: bool,
    ) -> Result<(Option<Version>, link::owners::Taken), LinkError> {
        let before = linked(self.prefix, self.cellar, name);
        let (_, taken) = link::link_taking(
            self.prefix,
            name,
            &crate::version::show(version),
            bins,
            dirs,
            overwrite,
        )?;
        // Undone in reverse: this package's links first, then the owners' come back.
        if !taken.is_empty() {
            self.changes.push(Change::Took {
                by: name.to_owned(),
                taken: taken.clone(),
            });
        }
        self.changes.push(Change::Switched {
            name: name.to_owned(),
            before: before.clone(),
        });
        Ok((before, taken))
    }

    /// Makes `PREFIX/lib/ld.so` pkg's link to this machine's loader (a relocated bottle of the
    /// unit names it); one this unit made goes again if the unit does not commit.
    pub fn loader(&mut self) -> Result<(), LinkError> {
        if link::ensure_loader(self.prefix)? {
            self.changes.push(Change::Loader);
        }
        Ok(())
    }

    pub fn commit(mut self) {
        self.committed = true;
    }

    /// Undoes one change.
    fn undo(&self, change: &Change) -> Result<(), UndoError> {
        match change {
            Change::Poured { name, version } => Ok(self.cellar.remove(name, version)?),
            Change::Switched { name, before } => {
                relink(self.prefix, self.cellar, name, before.as_ref())
            }
            Change::Took { by, taken } => {
                link::owners::forget(self.prefix, by, taken)?;
                let mut owners: Vec<&String> = taken.iter().map(|(_, from)| from).collect();
                owners.sort();
                owners.dedup();
                for from in owners {
                    if let Some(v) = linked(self.prefix, self.cellar, from) {
                        relink(self.prefix, self.cellar, from, Some(&v))?;
                    }
                }
                Ok(())
            }
            Change::Loader => {
                link::remove_loader(self.prefix);
                Ok(())
            }
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for change in self.changes.iter().rev() {
            if let Err(e) = self.undo(change) {
                let step = match change {
                    Change::Poured { name, version } => UndoStep::TakeOutKeg { name, version },
                    Change::Switched { name, .. } => UndoStep::PutBackLinks { name },
                    Change::Took { by, .. } => UndoStep::GiveBackLinks { by },
                    Change::Loader => UndoStep::RemoveLoader {
                        loader: link::LOADER,
                    },
                };
                self.reporter.event(Event::UndoFailed { step, error: &e });
            }
        }
    }
}

/// The version `opt/NAME` points to, when that keg is installed.
fn linked(prefix: &Path, cellar: &Cellar, name: &str) -> Option<Version> {
    link::linked_version(prefix, name)
        .and_then(|v| crate::version::parse_brew(&v).ok())
        .filter(|v| cellar.is_installed(name, v))
}

/// Puts back the links of `version`, or removes the package's links if it had none.
fn relink(
    prefix: &Path,
    cellar: &Cellar,
    name: &str,
    version: Option<&Version>,
) -> Result<(), UndoError> {
    match version {
        Some(v) => {
            // Without its receipt the version cannot be linked again: the new links go at
            // least, and the failure is said.
            let r = match Receipt::read(&cellar.keg(name, v)) {
                Ok(r) => r,
                Err(e) => {
                    link::unlink(prefix, name)?;
                    return Err(e.into());
                }
            };
            link::link(
                prefix,
                name,
                &crate::version::show(v),
                &r.bin,
                &r.link,
                false,
            )?;
        }
        None => {
            link::unlink(prefix, name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Collect;

    /// A keg of `a` with `bin/a` and a receipt file (the Cellar counts it as installed).
    fn keg(prefix: &Path, version: &str) {
        let keg = prefix.join("Cellar/a").join(version);
        std::fs::create_dir_all(keg.join("bin")).unwrap();
        std::fs::write(keg.join("bin/a"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(keg.join(".pkg")).unwrap();
        std::fs::write(receipt_path(&keg), "{}").unwrap();
    }

    fn receipt_path(keg: &Path) -> std::path::PathBuf {
        crate::cellar::receipt::path(keg)
    }

    #[test]
    fn an_undo_step_that_fails_is_reported_and_the_rest_still_undone() {
        let d = tempfile::tempdir().unwrap();
        let prefix = d.path();
        let cellar = Cellar::new(prefix);
        let bins = ["bin/a".to_string()];
        keg(prefix, "1.0.0");
        link::link(prefix, "a", "1.0.0", &bins, &[], false).unwrap();
        keg(prefix, "2.0.0");
        let reporter = Collect::default();
        let v2: Version = "2.0.0".parse().unwrap();
        {
            let mut tx = Transaction::new(prefix, &cellar, &reporter);
            tx.poured("a", &v2);
            let (before, _) = tx.link("a", &v2, &bins, &[], false).unwrap();
            assert_eq!(before, Some("1.0.0".parse().unwrap()));
            // The version to go back to can no longer be read: its links cannot come back.
            std::fs::write(receipt_path(&prefix.join("Cellar/a/1.0.0")), "not json").unwrap();
        }
        let said = reporter.events();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("UndoFailed { step: PutBackLinks { name: \"a\" }"),
            "{said:?}"
        );
        // The other undo steps ran: the new keg is gone, and no link leads into it.
        assert!(!prefix.join("Cellar/a/2.0.0").exists());
        assert!(std::fs::symlink_metadata(prefix.join("bin/a")).is_err());
    }
}
