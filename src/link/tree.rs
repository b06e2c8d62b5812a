//! Owns every change linking makes to the prefix's directories, made by descriptor beneath the
//! prefix: no symlink is ever followed to find, create, replace or remove a link. A link in the
//! prefix is never a directory pkg links into. When a second keg needs a directory that is today
//! one package's link to a directory inside its own keg, the link becomes a real directory
//! holding that package's per-entry links (Homebrew's split); a link anywhere else (out of the
//! prefix, into another keg, not pkg's) is a conflict, which `--overwrite` resolves by replacing
//! the link, never by writing through it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode};
use rustix::io::Errno;

use super::{Conflict, LinkError, Planned};
use crate::cellar::unpack::beneath::{Resolved, Root, WalkError};

/// A directory of the prefix that is a link today and becomes a real directory first.
#[derive(Clone, Debug)]
pub struct Reshape {
    /// Prefix-relative.
    pub dir: PathBuf,
    /// The per-entry links its owner keeps inside it (a split); none when it is taken over.
    pub links: Vec<Planned>,
    /// The package whose link it was, if any.
    pub owner: Option<String>,
    /// Nothing is there yet: a split inside a split, made as a new directory (its owner's link
    /// to it was one of the outer split's links, now left out).
    pub fresh: bool,
}

#[derive(Clone, Debug)]
enum State {
    /// Every component is a real directory.
    Real,
    /// Missing: made as a real directory.
    Missing,
    /// Reshaped (index into `reshapes`): holds only that reshape's links.
    Reshaped(usize),
    /// A conflict was recorded; nothing goes in.
    Blocked,
}

/// What the prefix looks like on the way to each link's directory (read, never followed).
pub(super) struct Survey<'a> {
    pub prefix: &'a Path,
    pub name: &'a str,
    pub overwrite: bool,
    root: Option<Root>,
    seen: HashMap<PathBuf, State>,
    pub reshapes: Vec<Reshape>,
    pub conflicts: Vec<Conflict>,
    /// Links of other packages this plan replaces (`--overwrite`): (link, owner).
    pub taken: Vec<(PathBuf, String)>,
}

fn rel_of<'p>(prefix: &Path, path: &'p Path) -> &'p Path {
    path.strip_prefix(prefix).unwrap_or(path)
}

/// `target` as a link at `dest_rel` (prefix-relative) pointing at prefix-relative `to`.
pub(super) fn relative_target(dest_rel: &Path, to: &Path) -> PathBuf {
    let depth = dest_rel.parent().map_or(0, |p| p.components().count());
    let mut t: PathBuf = (0..depth).map(|_| "..").collect();
    t.push(to);
    t
}

impl<'a> Survey<'a> {
    pub fn new(prefix: &'a Path, name: &'a str, overwrite: bool) -> Survey<'a> {
        Survey {
            prefix,
            name,
            overwrite,
            root: Root::open(prefix).ok(),
            seen: HashMap::new(),
            reshapes: Vec::new(),
            conflicts: Vec::new(),
            taken: Vec::new(),
        }
    }

    fn conflict(&mut self, rel: &Path, reason: String, directory: bool) -> State {
        self.conflicts.push(Conflict {
            path: self.prefix.join(rel),
            reason,
            directory,
        });
        State::Blocked
    }

    /// What is at prefix-relative `rel`: its stat (not followed), `None` when nothing is.
    fn stat(&mut self, rel: &Path) -> Option<rustix::fs::Stat> {
        self.root.as_mut()?.stat(rel).ok().flatten()
    }

    fn read_link(&mut self, rel: &Path) -> Option<PathBuf> {
        self.root.as_mut()?.read_link(rel).ok()
    }

    /// The directory a link at `rel` stands for when it is `owner`'s link to a real directory
    /// inside `owner`'s own keg: (keg-relative directory, keg path). `None` otherwise.
    fn split_source(&self, rel: &Path, target: &Path, owner: &str) -> Option<(PathBuf, PathBuf)> {
        let link = self.prefix.join(rel);
        let resolved = super::normalize(&link.parent()?.join(target));
        let inside = resolved
            .strip_prefix(super::normalize(&self.prefix.join("Cellar").join(owner)))
            .ok()?;
        let mut comps = inside.components();
        let version = comps.next()?.as_os_str().to_owned();
        let keg = self.prefix.join("Cellar").join(owner).join(&version);
        let in_keg: PathBuf = comps.collect();
        let mut root = Root::open(&keg).ok()?;
        let Resolved::Inside(real) = root.resolve(&in_keg, true).ok()? else {
            return None;
        };
        let st = root.stat(&real).ok()??;
        (FileType::from_raw_mode(st.st_mode) == FileType::Directory).then_some((real, keg))
    }

    /// Splits `owner`'s link at `rel` (to directory `real` of its keg `keg`): a real directory
    /// holding one link per entry of `real`.
    fn push_split(
        &mut self,
        rel: &Path,
        keg: &Path,
        real: &Path,
        owner: String,
        fresh: bool,
    ) -> State {
        let keg_rel = rel_of(self.prefix, keg).join(real);
        let mut links = Vec::new();
        if let Ok(children) = Root::open(keg).and_then(|mut r| {
            r.list(real)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }) {
            for (child, _) in children {
                let dest_rel = rel.join(&child);
                links.push(Planned {
                    dest: self.prefix.join(&dest_rel),
                    target: relative_target(&dest_rel, &keg_rel.join(&child)),
                });
            }
        }
        self.reshapes.push(Reshape {
            dir: rel.to_owned(),
            links,
            owner: Some(owner),
            fresh,
        });
        State::Reshaped(self.reshapes.len() - 1)
    }

    /// A directory at `at` that split `i` would make its owner's link: when that link leads to a
    /// directory of the owner's keg, it is split too (left out of split `i`, made as a real
    /// directory of its own); otherwise it is a conflict.
    fn split_nested(&mut self, i: usize, at: &Path) -> State {
        let inside = self.prefix.join(at);
        let owner = self.reshapes[i].owner.clone().unwrap_or_default();
        let link = self.reshapes[i].links.iter().position(|l| l.dest == inside);
        if let Some(pos) = link {
            let target = self.reshapes[i].links[pos].target.clone();
            if let Some((real, keg)) = self.split_source(at, &target, &owner) {
                self.reshapes[i].links.remove(pos);
                return self.push_split(at, &keg, &real, owner, true);
            }
        }
        self.conflict(
            at,
            format!(
                "`{owner}`'s link, where the package needs a directory; pkg never links into a link"
            ),
            false,
        )
    }

    /// A directory component at `rel` that is not a real directory: a split, a takeover or a
    /// conflict.
    fn examine_link(&mut self, rel: &Path) -> State {
        let Some(target) = self.read_link(rel) else {
            return self.conflict(rel, "a link pkg cannot read".into(), false);
        };
        let owner = super::owner(self.prefix, &self.prefix.join(rel), &target);
        if let Some(owner) = &owner
            && owner != self.name
            && let Some((real, keg)) = self.split_source(rel, &target, owner)
        {
            // Homebrew's split: the owner's directory becomes a real one holding its entries.
            return self.push_split(rel, &keg, &real, owner.clone(), false);
        }
        if owner.as_deref() == Some(self.name) || self.overwrite {
            // This package's own older link, or one --overwrite replaces: a real directory.
            if let Some(owner) = owner.filter(|o| o != self.name) {
                self.taken.push((self.prefix.join(rel), owner));
            }
            self.reshapes.push(Reshape {
                dir: rel.to_owned(),
                links: Vec::new(),
                owner: None,
                fresh: false,
            });
            return State::Reshaped(self.reshapes.len() - 1);
        }
        let whose = match owner {
            Some(o) => format!("`{o}`'s link"),
            None => "a link pkg did not make".into(),
        };
        let reason = format!(
            "{whose} to {}, where the package needs a directory; pkg never links into a link",
            target.display()
        );
        self.conflict(rel, reason, false)
    }

    /// Whether links can go into prefix-relative directory `dir`.
    fn dir_state(&mut self, dir: &Path) -> State {
        let mut at = PathBuf::new();
        let mut state = State::Real;
        for c in dir.components() {
            at.push(c);
            if let Some(s) = self.seen.get(&at) {
                state = s.clone();
            } else {
                state = match state {
                    State::Blocked => State::Blocked,
                    State::Missing => State::Missing,
                    State::Reshaped(i) => {
                        let inside = self.prefix.join(&at);
                        if self.reshapes[i].links.iter().any(|l| l.dest == inside) {
                            self.split_nested(i, &at)
                        } else {
                            State::Missing
                        }
                    }
                    State::Real => match self.stat(&at) {
                        None => State::Missing,
                        Some(st) => match FileType::from_raw_mode(st.st_mode) {
                            FileType::Directory => State::Real,
                            FileType::Symlink => self.examine_link(&at),
                            _ => self.conflict(
                                &at,
                                "a file where the package needs a directory".into(),
                                true,
                            ),
                        },
                    },
                };
                self.seen.insert(at.clone(), state.clone());
            }
            if matches!(state, State::Blocked) {
                return state;
            }
        }
        state
    }

    /// Whether `dest_rel` is a real directory today (reached without links).
    pub fn is_real_dir(&mut self, dest_rel: &Path) -> bool {
        matches!(
            self.dir_state(dest_rel.parent().unwrap_or(Path::new(""))),
            State::Real
        ) && self
            .stat(dest_rel)
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }

    /// Whether a keg directory can be linked whole at prefix-relative `rel`: nothing is there
    /// (in a real directory, or in one still to be made), or this package's own link is.
    pub fn can_link_whole(&mut self, rel: &Path) -> bool {
        match self.dir_state(rel.parent().unwrap_or(Path::new(""))) {
            State::Blocked => false,
            State::Missing => true,
            State::Reshaped(i) => {
                let dest = self.prefix.join(rel);
                !self.reshapes[i].links.iter().any(|l| l.dest == dest)
            }
            State::Real => match self.stat(rel) {
                None => true,
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => self
                    .read_link(rel)
                    .and_then(|t| super::owner(self.prefix, &self.prefix.join(rel), &t))
                    .is_some_and(|o| o == self.name),
                Some(_) => false,
            },
        }
    }

    /// Checks one link's destination; returns whether it can be made.
    pub fn check(&mut self, p: &Planned) -> bool {
        let rel = rel_of(self.prefix, &p.dest).to_owned();
        match self.dir_state(rel.parent().unwrap_or(Path::new(""))) {
            State::Blocked => false,
            State::Missing => true,
            State::Reshaped(i) => {
                let clash = self.reshapes[i].links.iter().position(|l| l.dest == p.dest);
                let Some(at) = clash else { return true };
                let owner = self.reshapes[i].owner.clone().unwrap_or_default();
                if self.overwrite {
                    self.reshapes[i].links.remove(at);
                    self.taken.push((p.dest.clone(), owner));
                    true
                } else {
                    let reason = format!("belongs to the installed package `{owner}`");
                    !matches!(self.conflict(&rel, reason, false), State::Blocked)
                }
            }
            State::Real => {
                let Some(st) = self.stat(&rel) else {
                    return true;
                };
                let kind = FileType::from_raw_mode(st.st_mode);
                if kind == FileType::Directory {
                    let reason = "a directory; pkg never replaces directories".into();
                    self.conflict(&rel, reason, true);
                    return false;
                }
                let owner = if kind == FileType::Symlink {
                    self.read_link(&rel)
                        .map(|t| (super::owner(self.prefix, &p.dest, &t), t))
                } else {
                    None
                };
                match owner {
                    Some((Some(o), _)) if o == self.name => true,
                    Some((Some(o), _)) if self.overwrite => {
                        self.taken.push((p.dest.clone(), o));
                        true
                    }
                    _ if self.overwrite => true,
                    Some((Some(o), _)) => {
                        self.conflict(
                            &rel,
                            format!("belongs to the installed package `{o}`"),
                            false,
                        );
                        false
                    }
                    Some((None, t)) => {
                        let reason = format!("a link to {} that pkg did not make", t.display());
                        self.conflict(&rel, reason, false);
                        false
                    }
                    None => {
                        self.conflict(&rel, "a file that pkg did not install".into(), false);
                        false
                    }
                }
            }
        }
    }
}

/// What a change replaced, to undo it (prefix-relative paths).
pub(super) enum Undo {
    Remove(PathBuf),
    Restore { dest: PathBuf, backup: PathBuf },
    Unreshape { dir: PathBuf, backup: PathBuf },
}

fn io_err(prefix: &Path, rel: &Path) -> impl FnOnce(Errno) -> LinkError {
    let path = prefix.join(rel);
    move |e| LinkError::Io {
        path,
        source: e.into(),
    }
}

fn walk_err(prefix: &Path) -> impl FnOnce(WalkError) -> LinkError + '_ {
    move |error| LinkError::Walk {
        keg: prefix.to_owned(),
        error,
    }
}

fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or(OsStr::new(".")),
    )
}

/// Applies the reshapes, then the links, by descriptor beneath the prefix; on failure undoes
/// every change made and returns the error. On success returns the undo list for [`commit`].
pub(super) fn apply(
    prefix: &Path,
    reshapes: &[Reshape],
    links: &[Planned],
) -> Result<Vec<Undo>, LinkError> {
    let mut root = Root::open(prefix).map_err(|source| LinkError::Io {
        path: prefix.to_owned(),
        source,
    })?;
    let mut done = Vec::new();
    let result = (|| {
        for r in reshapes {
            reshape(&mut root, prefix, r, &mut done)?;
            for l in &r.links {
                put(&mut root, prefix, l, &mut done)?;
            }
        }
        for l in links {
            put(&mut root, prefix, l, &mut done)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(done),
        Err(e) => {
            rollback(&mut root, done);
            Err(e)
        }
    }
}

fn reshape(
    root: &mut Root,
    prefix: &Path,
    r: &Reshape,
    done: &mut Vec<Undo>,
) -> Result<(), LinkError> {
    let (parent, leaf) = split(&r.dir);
    let backup = parent.join(super::temp_file_name(leaf, "old"));
    let fd = root
        .dir(parent, Some(0o755), &mut |_| {})
        .map_err(walk_err(prefix))?;
    if r.fresh {
        rustix::fs::mkdirat(fd, leaf, Mode::from_raw_mode(0o755))
            .map_err(io_err(prefix, &r.dir))?;
        done.push(Undo::Remove(r.dir.clone()));
        return Ok(());
    }
    let (_, backup_name) = split(&backup);
    let _ = rustix::fs::unlinkat(fd, backup_name, AtFlags::empty());
    rustix::fs::renameat(fd, leaf, fd, backup_name).map_err(io_err(prefix, &r.dir))?;
    if let Err(e) = rustix::fs::mkdirat(fd, leaf, Mode::from_raw_mode(0o755)) {
        let _ = rustix::fs::renameat(fd, backup_name, fd, leaf);
        return Err(io_err(prefix, &r.dir)(e));
    }
    root.forget();
    done.push(Undo::Unreshape {
        dir: r.dir.clone(),
        backup,
    });
    Ok(())
}

/// Creates one link: new link under a temp name, what was there kept as a backup (a copy of a
/// link, a hard link to a file), then one rename over the destination.
fn put(root: &mut Root, prefix: &Path, p: &Planned, done: &mut Vec<Undo>) -> Result<(), LinkError> {
    let rel = rel_of(prefix, &p.dest).to_owned();
    let (parent, leaf) = split(&rel);
    let fd = root
        .dir(parent, Some(0o755), &mut |_| {})
        .map_err(walk_err(prefix))?;
    // Nothing there (the common case: a new link): made where it goes, in one call, which
    // fails rather than replace anything that appeared meanwhile.
    match rustix::fs::symlinkat(&p.target, fd, leaf) {
        Ok(()) => {
            done.push(Undo::Remove(rel));
            return Ok(());
        }
        Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err(prefix, &rel)(e)),
    }
    let tmp = super::temp_file_name(leaf, "new");
    let backup = super::temp_file_name(leaf, "old");
    let _ = rustix::fs::unlinkat(fd, &tmp, AtFlags::empty());
    rustix::fs::symlinkat(&p.target, fd, &tmp).map_err(io_err(prefix, &parent.join(&tmp)))?;
    let undo = match rustix::fs::statat(fd, leaf, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let _ = rustix::fs::unlinkat(fd, &backup, AtFlags::empty());
            let kept = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                rustix::fs::readlinkat(fd, leaf, Vec::new())
                    .and_then(|t| rustix::fs::symlinkat(t.as_c_str(), fd, &backup))
            } else {
                rustix::fs::linkat(fd, leaf, fd, &backup, AtFlags::empty())
            };
            if let Err(e) = kept {
                let _ = rustix::fs::unlinkat(fd, &tmp, AtFlags::empty());
                return Err(io_err(prefix, &rel)(e));
            }
            Undo::Restore {
                dest: rel.clone(),
                backup: parent.join(&backup),
            }
        }
        Err(_) => Undo::Remove(rel.clone()),
    };
    if let Err(e) = rustix::fs::renameat(fd, &tmp, fd, leaf) {
        let _ = rustix::fs::unlinkat(fd, &tmp, AtFlags::empty());
        if let Undo::Restore { backup, .. } = &undo {
            let _ = root.remove(backup);
        }
        return Err(io_err(prefix, &rel)(e));
    }
    done.push(undo);
    Ok(())
}

pub(super) fn rollback(root: &mut Root, done: Vec<Undo>) {
    for undo in done.into_iter().rev() {
        match undo {
            Undo::Remove(dest) => {
                let _ = root.remove(&dest);
            }
            Undo::Restore { dest, backup } => {
                let _ = root.rename(&backup, &dest);
            }
            Undo::Unreshape { dir, backup } => {
                root.forget();
                let _ = root.remove(&dir);
                let _ = root.rename(&backup, &dir);
            }
        }
    }
}

/// Drops the backups once every change is in.
pub(super) fn commit(prefix: &Path, done: Vec<Undo>) {
    let Ok(mut root) = Root::open(prefix) else {
        return;
    };
    for undo in done {
        if let Undo::Restore { backup, .. } | Undo::Unreshape { backup, .. } = undo {
            let _ = root.remove(&backup);
        }
    }
}

/// After links were taken out of `dir` (prefix-relative): when what is left is exactly one
/// package's links to every entry of one directory of its keg, and that package's keg has, at
/// the same place, that directory or a link leading to it, `dir` becomes that one link again (a
/// split undone once the second keg is gone). By descriptor: the directory is moved aside, the link
/// made, the directory removed. Returns whether it did.
pub(super) fn collapse(prefix: &Path, root: &mut Root, dir: &Path) -> bool {
    let Ok(entries) = root.list(dir) else {
        return false;
    };
    let mut into: Option<(String, PathBuf)> = None;
    for (child, kind) in &entries {
        if *kind != FileType::Symlink {
            return false;
        }
        let rel = dir.join(child);
        let Ok(target) = root.read_link(&rel) else {
            return false;
        };
        let link = prefix.join(&rel);
        let Some(owner) = super::owner(prefix, &link, &target) else {
            return false;
        };
        let resolved = super::normalize(&prefix.join(dir).join(&target));
        if resolved.file_name() != Some(child.as_os_str()) {
            return false;
        }
        let Some(parent) = resolved.parent().map(Path::to_path_buf) else {
            return false;
        };
        match &into {
            None => into = Some((owner, parent)),
            Some((o, p)) if *o == owner && *p == parent => {}
            Some(_) => return false,
        }
    }
    let Some((owner, kdir)) = into else {
        return false;
    };
    let cellar = super::normalize(&prefix.join("Cellar").join(&owner));
    let Some(version) = kdir
        .strip_prefix(&cellar)
        .ok()
        .and_then(|r| r.components().next())
        .map(|c| c.as_os_str().to_owned())
    else {
        return false;
    };
    let keg = cellar.join(&version);
    let Ok(mut keg_root) = Root::open(&keg) else {
        return false;
    };
    let is_link = keg_root
        .stat(dir)
        .ok()
        .flatten()
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
    let leads_there = matches!(
        keg_root.resolve(dir, true),
        Ok(Resolved::Inside(real)) if keg.join(&real) == kdir
    );
    // Or the keg's own directory at the same place, which linking makes one link where the
    // prefix has room (never a directory Homebrew keeps real, such as `share/man/man1`).
    let same_dir = keg.join(dir) == kdir
        && super::rules::dir_rule(dir) == super::rules::DirRule::Link
        && keg_root
            .stat(dir)
            .ok()
            .flatten()
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
    let whole = keg_root
        .list(kdir.strip_prefix(&keg).unwrap_or(&kdir))
        .is_ok_and(|all| all.len() == entries.len());
    if !((is_link && leads_there) || same_dir) || !whole {
        return false;
    }
    let keg_rel = Path::new("Cellar").join(&owner).join(&version);
    let (parent, leaf) = split(dir);
    let aside = parent.join(super::temp_file_name(leaf, "old"));
    root.forget();
    if root.rename(dir, &aside).is_err() {
        return false;
    }
    let target = relative_target(dir, &keg_rel.join(dir));
    let made = root
        .dir(parent, None, &mut |_| {})
        .ok()
        .is_some_and(|fd| rustix::fs::symlinkat(&target, fd, leaf).is_ok());
    if !made {
        let _ = root.rename(&aside, dir);
        return false;
    }
    let _ = root.remove(&aside);
    true
}
