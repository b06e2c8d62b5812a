//! Owns pkg's containment rule: every path inside a keg (or its staging directory) is resolved
//! beneath the root without ever following a symlink, and every operation acts on a descriptor.
//!
//! A symlink's target is data: pkg creates and reads links, never resolves a path through one.
//! Parent directories are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the
//! kernel has it (Linux 5.6+), else component by component with `O_NOFOLLOW | O_DIRECTORY`; the
//! last component is then created, linked, removed, changed or opened relative to that
//! directory's descriptor with no-follow semantics (`O_EXCL`, `O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`,
//! `linkat` without `AT_SYMLINK_FOLLOW`), so nothing an archive holds can make pkg act outside the
//! root. The syscalls come from `rustix` (already in the tree through `tempfile`).
//!
//! Where a caller does need to know where a link leads (a formula's `bin` entry), [`Root::resolve`]
//! reads the links and resolves them lexically inside the root, and says so when one leads out.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// Why a path could not be resolved beneath the root (paths are root-relative).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The walk would have to go through this symlink.
    #[error("`{}` is a symlink, and pkg never goes through one", .0.display())]
    Symlink(PathBuf),
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// Does not exist (and was not to be created).
    #[error("`{}` does not exist", .0.display())]
    Missing(PathBuf),
    /// Not a regular file (a file was to be opened).
    #[error("`{}` is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// The filesystem refused something here.
    #[error("`{}`: {}", .0.display(), .1)]
    Io(PathBuf, #[source] io::Error),
}

/// What [`Root::resolve`] found where a path leads.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Inside the root: the path with every link on the way replaced by where it leads (the last
    /// component kept as it is when `follow_last` was false).
    Inside(PathBuf),
    /// The link at `link` (root-relative) leads out of the root, to `target`.
    Outside { link: PathBuf, target: PathBuf },
    /// A component is missing or is not a directory (the path is `Inside` up to there).
    Missing(PathBuf),
}

/// A directory every path is resolved beneath. Remembers the last parent directory it opened,
/// so unpacking a directory's entries opens it once, not once per entry.
pub struct Root {
    fd: OwnedFd,
    /// The last parent opened: root-relative path and descriptor.
    last: Option<(PathBuf, OwnedFd)>,
    /// `openat2` works here (it is tried once and dropped on `ENOSYS`, `EPERM` or `EINVAL`).
    openat2: bool,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Root {
    /// Opens `path` (a directory pkg made or chose, trusted as it is) as the root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        Ok(Root {
            fd,
            last: None,
            openat2: true,
        })
    }

    /// Opens the root with the component-by-component walk only (tests compare both ways).
    #[cfg(test)]
    pub fn open_walking(path: &Path) -> io::Result<Root> {
        let mut root = Root::open(path)?;
        root.openat2 = false;
        Ok(root)
    }

    /// Forgets the remembered parent directory. Call after removing or renaming a directory: the
    /// descriptor would still name the old one.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// The directory `rel` (root-relative; `""` is the root), every component a real directory.
    /// With `create`, missing ones are made with that mode (before the umask) and reported to
    /// `created`, shallowest first.
    pub fn dir(
        &mut self,
        rel: &Path,
        create: Option<u32>,
        created: &mut dyn FnMut(&Path),
    ) -> Result<BorrowedFd<'_>, WalkError> {
        if rel.as_os_str().is_empty() {
            return Ok(self.fd.as_fd());
        }
        let hit = self.last.as_ref().is_some_and(|(p, _)| p == rel);
        if !hit {
            let fd = self.open_dir(rel, create, created)?;
            self.last = Some((rel.to_owned(), fd));
        }
        match &self.last {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Ok(self.fd.as_fd()),
        }
    }

    /// Opens the directory `rel` without remembering it (for a second directory at once).
    pub fn open_dir(
        &mut self,
        rel: &Path,
        create: Option<u32>,
        created: &mut dyn FnMut(&Path),
    ) -> Result<OwnedFd, WalkError> {
        if rel.as_os_str().is_empty() {
            return rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty())
                .map_err(|e| WalkError::Io(PathBuf::new(), e.into()));
        }
        if self.openat2 {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
            match rustix::fs::openat2(&self.fd, rel, dir_flags(), Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => self.openat2 = false,
                // `EINVAL`: flags this kernel does not know; anything else: the walk says which
                // component is in the way (and creates missing ones).
                Err(rustix::io::Errno::INVAL) => self.openat2 = false,
                Err(_) => {}
            }
        }
        self.walk(rel, create, created)
    }

    /// Component by component from the root: `O_NOFOLLOW | O_DIRECTORY` on each name.
    fn walk(
        &self,
        rel: &Path,
        create: Option<u32>,
        created: &mut dyn FnMut(&Path),
    ) -> Result<OwnedFd, WalkError> {
        let mut done = PathBuf::new();
        let mut cur: Option<OwnedFd> = None;
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(WalkError::Io(
                    done,
                    io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path"),
                ));
            };
            done.push(name);
            let parent = cur.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
            let opened = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
                Err(rustix::io::Errno::NOENT) if create.is_some() => {
                    let mode = Mode::from_raw_mode(create.unwrap_or(0o755));
                    match rustix::fs::mkdirat(parent, name, mode) {
                        Ok(()) => created(&done),
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(WalkError::Io(done, e.into())),
                    }
                    rustix::fs::openat(parent, name, dir_flags(), Mode::empty())
                }
                other => other,
            };
            match opened {
                Ok(fd) => cur = Some(fd),
                Err(e) => return Err(classify(parent, name, done, e)),
            }
        }
        match cur {
            Some(fd) => Ok(fd),
            None => rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty())
                .map_err(|e| WalkError::Io(PathBuf::new(), e.into())),
        }
    }

    /// What is at `rel`, not followed; `None` when nothing is (or a parent is missing).
    pub fn stat(&mut self, rel: &Path) -> Result<Option<rustix::fs::Stat>, WalkError> {
        let (parent, name) = split(rel)?;
        let dir = match self.dir(parent, None, &mut |_| {}) {
            Ok(d) => d,
            Err(WalkError::Missing(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(WalkError::Io(rel.to_owned(), e.into())),
        }
    }

    /// Reads the target of the symlink at `rel`.
    pub fn read_link(&mut self, rel: &Path) -> Result<PathBuf, WalkError> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent, None, &mut |_| {})?;
        let target = rustix::fs::readlinkat(dir, name, Vec::new())
            .map_err(|e| WalkError::Io(rel.to_owned(), e.into()))?;
        Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// Opens the regular file at `rel` for reading, refusing a link or anything but a file.
    pub fn open_file(&mut self, rel: &Path, write: bool) -> Result<File, WalkError> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent, None, &mut |_| {})?;
        let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
        let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())
            .map_err(|e| classify(dir, name, rel.to_owned(), e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| WalkError::Io(rel.to_owned(), e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(WalkError::NotAFile(rel.to_owned()));
        }
        Ok(File::from(fd))
    }

    /// Sets the permission bits of the file or directory at `rel` (a link is refused, never
    /// followed).
    pub fn chmod(&mut self, rel: &Path, mode: u32) -> Result<(), WalkError> {
        let fd = self.open_any(rel)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| WalkError::Io(rel.to_owned(), e.into()))
    }

    /// A descriptor on the file or directory at `rel` itself (never what a link points at).
    pub fn open_any(&mut self, rel: &Path) -> Result<OwnedFd, WalkError> {
        if rel.as_os_str().is_empty() {
            return self.open_dir(rel, None, &mut |_| {});
        }
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent, None, &mut |_| {})?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        rustix::fs::openat(dir, name, flags, Mode::empty())
            .map_err(|e| classify(dir, name, rel.to_owned(), e))
    }

    /// Removes whatever is at `rel` without following it: a link itself, a directory with all
    /// it holds (walked by descriptor). Nothing there is not an error.
    pub fn remove(&mut self, rel: &Path) -> Result<(), WalkError> {
        let Some(st) = self.stat(rel)? else {
            return Ok(());
        };
        let (parent, name) = split(rel)?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir {
            self.forget();
        }
        let dir = self.open_dir(parent, None, &mut |_| {})?;
        let gone = if is_dir {
            remove_tree(&dir, name)
        } else {
            rustix::fs::unlinkat(&dir, name, AtFlags::empty())
        };
        gone.map_err(|e| WalkError::Io(rel.to_owned(), e.into()))
    }

    /// The names in directory `rel` with their types (from the directory entries, not followed).
    pub fn list(&mut self, rel: &Path) -> Result<Vec<(OsString, FileType)>, WalkError> {
        let fd = self.open_dir(rel, None, &mut |_| {})?;
        list_fd(&fd).map_err(|e| WalkError::Io(rel.to_owned(), e))
    }

    /// Creates the regular file `rel` (parents made as real directories, mode before the umask),
    /// replacing a file or link in its place; a directory in the way is an error.
    pub fn create_file(&mut self, rel: &Path, mode: u32) -> Result<File, WalkError> {
        let (parent, name) = split(rel)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let mode = Mode::from_raw_mode(mode);
        for _ in 0..2 {
            let dir = self.dir(parent, Some(0o777), &mut |_| {})?;
            match rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, mode) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(rustix::io::Errno::EXIST) => {
                    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| WalkError::Io(rel.to_owned(), e.into()))?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        return Err(WalkError::NotAFile(rel.to_owned()));
                    }
                    rustix::fs::unlinkat(dir, name, AtFlags::empty())
                        .map_err(|e| WalkError::Io(rel.to_owned(), e.into()))?;
                }
                Err(e) => return Err(WalkError::Io(rel.to_owned(), e.into())),
            }
        }
        Err(WalkError::Io(
            rel.to_owned(),
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }

    /// Replaces the file at `rel` with `contents` and `mode`: written under a temporary name in
    /// the same directory, then renamed over it, so it is never seen half-written.
    pub fn replace(&mut self, rel: &Path, contents: &[u8], mode: u32) -> Result<(), WalkError> {
        let (parent, name) = split(rel)?;
        let dir = self.open_dir(parent, None, &mut |_| {})?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let io = |e: rustix::io::Errno| WalkError::Io(rel.to_owned(), e.into());
        let mut tmp = OsString::from(".pkg-tmp-");
        tmp.push(name);
        tmp.push(format!("-{}", std::process::id()));
        let fd = rustix::fs::openat(
            &dir,
            &tmp,
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io)?;
        let mut file = File::from(fd);
        let written = std::io::Write::write_all(&mut file, contents)
            .map_err(|e| WalkError::Io(rel.to_owned(), e))
            .and_then(|()| rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(io))
            .and_then(|()| rustix::fs::renameat(&dir, &tmp, &dir, name).map_err(io));
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
        }
        written
    }

    /// Renames `from` to `to` (both root-relative, parents real directories).
    pub fn rename(&mut self, from: &Path, to: &Path) -> Result<(), WalkError> {
        let (from_parent, from_name) = split(from)?;
        let (to_parent, to_name) = split(to)?;
        self.forget();
        let from_dir = self.open_dir(from_parent, None, &mut |_| {})?;
        let to_dir = self.open_dir(to_parent, None, &mut |_| {})?;
        rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name)
            .map_err(|e| WalkError::Io(from.to_owned(), e.into()))
    }

    /// Where `rel` leads when its links are resolved lexically inside the root (see
    /// [`Resolved`]). Links are read, never followed by the kernel; an absolute target, or one
    /// that climbs above the root, is `Outside`. At most 40 links are read.
    pub fn resolve(&mut self, rel: &Path, follow_last: bool) -> Result<Resolved, WalkError> {
        let mut todo: Vec<OsString> = rel
            .components()
            .rev()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                _ => None,
            })
            .collect();
        let mut done = PathBuf::new();
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                if !done.pop() {
                    return Ok(Resolved::Outside {
                        link: done,
                        target: PathBuf::from(".."),
                    });
                }
                continue;
            }
            if name == "." || name.is_empty() {
                continue;
            }
            let here = done.join(&name);
            let last = todo.is_empty();
            let Some(st) = self.stat(&here)? else {
                return Ok(Resolved::Missing(here));
            };
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind == FileType::Symlink && (follow_last || !last) {
                hops += 1;
                let target = self.read_link(&here)?;
                if hops > 40 {
                    return Err(WalkError::Io(
                        here,
                        io::Error::new(io::ErrorKind::InvalidData, "more than 40 links in a row"),
                    ));
                }
                if target.is_absolute() || climbs_out(&done, &target) {
                    return Ok(Resolved::Outside { link: here, target });
                }
                for c in target.as_os_str().as_bytes().rsplit(|b| *b == b'/') {
                    todo.push(OsStr::from_bytes(c).to_owned());
                }
                continue;
            }
            if !last && kind != FileType::Directory {
                return Ok(Resolved::Missing(here));
            }
            done = here;
        }
        Ok(Resolved::Inside(done))
    }
}

/// Whether `target`, read from a link in directory `dir`, climbs above the root lexically.
fn climbs_out(dir: &Path, target: &Path) -> bool {
    let mut depth = dir.components().count();
    for c in target.as_os_str().as_bytes().split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if depth == 0 => return true,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// The parent (possibly `""`) and last component of a root-relative path.
pub fn split(rel: &Path) -> Result<(&Path, &OsStr), WalkError> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(WalkError::Io(
            rel.to_owned(),
            io::Error::new(io::ErrorKind::InvalidInput, "not a path below the root"),
        )),
    }
}

/// Says why `name` in `dir` could not be opened as a directory (or file): a symlink, something
/// else in the way, missing, or the error itself.
fn classify(dir: BorrowedFd<'_>, name: &OsStr, rel: PathBuf, err: rustix::io::Errno) -> WalkError {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => WalkError::Symlink(rel),
            FileType::Directory => WalkError::Io(rel, err.into()),
            _ if err == rustix::io::Errno::NOTDIR => WalkError::NotADirectory(rel),
            _ => WalkError::Io(rel, err.into()),
        },
        Err(rustix::io::Errno::NOENT) => WalkError::Missing(rel),
        Err(rustix::io::Errno::NOTDIR) => WalkError::NotADirectory(rel),
        Err(e) => WalkError::Io(rel, e.into()),
    }
}

/// The entries of an open directory (`.` and `..` left out).
pub fn list_fd(dir: &OwnedFd) -> io::Result<Vec<(OsString, FileType)>> {
    let mut out = Vec::new();
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_owned();
        let kind = match entry.file_type() {
            FileType::Unknown => rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode))?,
            kind => kind,
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// Removes directory `name` in `parent` and everything under it, by descriptor (a link inside is
/// removed itself, never followed).
pub fn remove_tree(parent: &OwnedFd, name: &OsStr) -> rustix::io::Result<()> {
    let dir = rustix::fs::openat(parent, name, dir_flags(), Mode::empty())?;
    let entries = list_fd(&dir).map_err(|e| {
        e.raw_os_error()
            .map_or(rustix::io::Errno::IO, rustix::io::Errno::from_raw_os_error)
    })?;
    for (child, kind) in entries {
        if kind == FileType::Directory {
            remove_tree(&dir, &child)?;
        } else {
            match rustix::fs::unlinkat(&dir, &child, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::create_dir_all(d.path().join("outside")).unwrap();
        std::fs::write(d.path().join("outside/secret"), "s").unwrap();
        std::fs::write(r.join("a/b/file"), "f").unwrap();
        symlink("/", r.join("abs")).unwrap();
        symlink("../../..", r.join("a/b/up")).unwrap();
        symlink("b", r.join("a/inner")).unwrap();
        symlink("../outside", r.join("climb")).unwrap();
        d
    }

    #[test]
    fn parents_that_are_links_are_named_both_ways() {
        let d = tree();
        for walking in [false, true] {
            let root_path = d.path().join("root");
            let mut root = if walking {
                Root::open_walking(&root_path).unwrap()
            } else {
                Root::open(&root_path).unwrap()
            };
            for (rel, link) in [
                ("abs/etc", "abs"),
                ("a/b/up/x", "a/b/up"),
                ("a/inner/x", "a/inner"),
                ("climb", "climb"),
            ] {
                let err = root.dir(Path::new(rel), Some(0o755), &mut |_| {});
                assert!(
                    matches!(&err, Err(WalkError::Symlink(p)) if p == Path::new(link)),
                    "{rel} (walking: {walking}): {err:?}"
                );
            }
            assert!(matches!(
                root.dir(Path::new("a/b/file/x"), None, &mut |_| {}),
                Err(WalkError::NotADirectory(p)) if p == Path::new("a/b/file")
            ));
            let mut made = Vec::new();
            root.dir(Path::new("a/new/deeper"), Some(0o755), &mut |p| {
                made.push(p.to_owned())
            })
            .unwrap();
            if walking {
                assert_eq!(made, [Path::new("a/new"), Path::new("a/new/deeper")]);
            }
            std::fs::remove_dir_all(root_path.join("a/new")).unwrap();
            root.forget();
        }
        assert!(d.path().join("outside/secret").is_file());
    }

    #[test]
    fn resolve_reads_links_and_says_when_one_leads_out() {
        let d = tree();
        let mut root = Root::open(&d.path().join("root")).unwrap();
        assert_eq!(
            root.resolve(Path::new("a/inner/file"), true).unwrap(),
            Resolved::Inside("a/b/file".into())
        );
        assert_eq!(
            root.resolve(Path::new("a/b/up/etc/passwd"), true).unwrap(),
            Resolved::Outside {
                link: "a/b/up".into(),
                target: "../../..".into()
            }
        );
        assert_eq!(
            root.resolve(Path::new("abs"), false).unwrap(),
            Resolved::Inside("abs".into())
        );
        assert!(matches!(
            root.resolve(Path::new("abs"), true).unwrap(),
            Resolved::Outside { .. }
        ));
        assert_eq!(
            root.resolve(Path::new("a/nothing/x"), true).unwrap(),
            Resolved::Missing("a/nothing".into())
        );
    }

    #[test]
    fn remove_and_chmod_never_follow() {
        let d = tree();
        let mut root = Root::open(&d.path().join("root")).unwrap();
        assert!(root.chmod(Path::new("climb"), 0o777).is_err());
        assert!(root.open_file(Path::new("climb"), false).is_err());
        root.remove(Path::new("climb")).unwrap();
        root.remove(Path::new("a")).unwrap();
        assert!(!d.path().join("root/a").exists());
        assert_eq!(
            std::fs::read_to_string(d.path().join("outside/secret")).unwrap(),
            "s"
        );
    }
}
