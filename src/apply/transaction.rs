//! Link switches and new kegs of one unit, undone when dropped unless committed (rustup's
//! `Transaction` is the model): the links that were there come back — those taken from other
//! packages with `--overwrite` too, and the records of those takeovers go — and the new kegs go.

use std::path::Path;

use semver::Version;

use crate::cellar::Cellar;
use crate::cellar::receipt::Receipt;
use crate::link::{self, LinkError};

pub struct Transaction<'a> {
    prefix: &'a Path,
    cellar: &'a Cellar,
    /// Packages whose links were switched, with the version linked before (none: unlinked).
    switched: Vec<(String, Option<Version>)>,
    /// Kegs poured for this unit.
    fresh: Vec<(String, Version)>,
    /// Links taken from other packages, by the package that took them.
    taken: Vec<(String, link::owners::Taken)>,
    /// `PREFIX/lib/ld.so` was made by this unit (nothing was there).
    made_loader: bool,
    committed: bool,
}

impl<'a> Transaction<'a> {
    pub fn new(prefix: &'a Path, cellar: &'a Cellar) -> Self {
        Transaction {
            prefix,
            cellar,
            switched: Vec::new(),
            fresh: Vec::new(),
            taken: Vec::new(),
            made_loader: false,
            committed: false,
        }
    }

    /// A keg poured for this unit: taken back out if the unit does not commit.
    pub fn poured(&mut self, name: &str, version: &Version) {
        self.fresh.push((name.to_owned(), version.clone()));
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
        self.switched.push((name.to_owned(), before.clone()));
        if !taken.is_empty() {
            self.taken.push((name.to_owned(), taken.clone()));
        }
        Ok((before, taken))
    }

    /// Makes `PREFIX/lib/ld.so` pkg's link to this machine's loader (a relocated bottle of the
    /// unit names it); one this unit made goes again if the unit does not commit.
    pub fn loader(&mut self) -> Result<(), LinkError> {
        if link::ensure_loader(self.prefix)? {
            self.made_loader = true;
        }
        Ok(())
    }

    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (name, before) in self.switched.iter().rev() {
            relink(self.prefix, self.cellar, name, before.as_ref());
        }
        // The packages links were taken from get them back, at the version they have linked.
        for (by, taken) in self.taken.iter().rev() {
            let _ = link::owners::forget(self.prefix, by, taken);
            let mut owners: Vec<&String> = taken.iter().map(|(_, from)| from).collect();
            owners.dedup();
            for from in owners {
                if let Some(v) = linked(self.prefix, self.cellar, from) {
                    relink(self.prefix, self.cellar, from, Some(&v));
                }
            }
        }
        for (name, version) in &self.fresh {
            let _ = self.cellar.remove(name, version);
        }
        if self.made_loader {
            link::remove_loader(self.prefix);
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
pub fn relink(prefix: &Path, cellar: &Cellar, name: &str, version: Option<&Version>) {
    let receipt = version.and_then(|v| Receipt::read(&cellar.keg(name, v)).ok());
    match (version, receipt) {
        (Some(v), Some(r)) => {
            let _ = link::link(
                prefix,
                name,
                &crate::version::show(v),
                &r.bin,
                &r.link,
                false,
            );
        }
        _ => {
            let _ = link::unlink(prefix, name);
        }
    }
}
