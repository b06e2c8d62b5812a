//! Writes the contents of file entries (plain, sparse) and hard links, each on a descriptor
//! opened beneath the root.

use super::*;

/// Bytes of zeros that a sparse file's restore leaves as a hole instead of writing.
const HOLE_BLOCK: usize = 4096;

/// Checks the layer's compression ratio before `data` more bytes of file data are written.
fn check_ratio(name: &str, data: u64, layer: &Layer<'_>, stats: &Stats) -> Result<(), UnpackError> {
    if let Some(caps) = layer.limits.layer
        && stats.written.saturating_add(data) > caps.written_until
    {
        return Err(UnpackError::TooExpanded {
            entry: name.into(),
            ratio: layer.limits.max_ratio,
            compressed: caps.compressed,
        });
    }
    Ok(())
}

fn check_room(name: &str, size: u64, layer: &Layer<'_>, stats: &Stats) -> Result<(), UnpackError> {
    if stats
        .bytes
        .checked_add(size)
        .is_none_or(|total| total > layer.limits.max_bytes)
    {
        return Err(UnpackError::TooManyBytes {
            entry: name.into(),
            limit: layer.limits.max_bytes,
        });
    }
    Ok(())
}

/// Reads into `buf` until it is full or the reader ends.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Creates the file `rel` (mode before the umask) on a descriptor, replacing what is in the way.
fn create_file(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    mode: u32,
) -> Result<File, UnpackError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = layer.create(name, rel, Op::Create, |dir, n| {
        rustix::fs::openat(dir, n, flags, Mode::from_raw_mode(mode))
    })?;
    Ok(File::from(fd))
}

/// A regular file, an old GNU sparse file (holes come from the `tar` crate as zeros and are
/// punched back as holes) or a pax sparse file (segments placed by its map).
pub(super) fn file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    mode: u32,
    pax: &Pax,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    // The logical size (pax `size` and old GNU sparse maps applied); the copy never goes past it.
    let size = entry.size();
    let logical = pax.sparse.as_ref().map_or(size, |s| s.realsize);
    check_room(name, logical, layer, stats)?;
    // The data the archive holds for it (holes are not data): what the ratio counts.
    let data = match entry.header().entry_type() {
        EntryType::GNUSparse => entry.header().entry_size().unwrap_or(size),
        _ => size,
    };
    check_ratio(name, data, layer, stats)?;
    stats.written += data;

    let mut head = [0u8; APPLE_DOUBLE_MAGIC.len()];
    let mut head_len = 0;
    if pax.sparse.is_none()
        && rel
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b"._"))
    {
        head_len =
            read_up_to(entry, &mut head[..size.min(4) as usize]).map_err(read_error(name))?;
        if head[..head_len] == APPLE_DOUBLE_MAGIC {
            return Ok(());
        }
    }
    let head = &head[..head_len];

    let file = create_file(layer, name, rel, mode)?;
    let path = layer.root_path.join(rel);
    let at = At {
        name,
        rel,
        path: &path,
    };
    let mut marker = Marker::default();
    if let Some(spec) = &pax.sparse {
        sparse_data(entry, layer, &file, spec, &at, &mut marker)?;
        stats.bytes += spec.realsize;
        // (Its holes are never read: no sum; doctor compares its size and mtime.)
        stats.sums.remove(rel);
    } else if let Some(writers) = layer.writers
        && entry.header().entry_type() != EntryType::GNUSparse
    {
        // The bytes go to the writers; this thread reads on to the next entry.
        set_xattrs(&file, pax, stats);
        let pending = std::sync::Arc::new(super::pool::Pending::new(
            file,
            mtime(entry.header(), pax),
            name,
            path.clone(),
        ));
        return to_writers(entry, writers, &pending, head, &at, stats);
    } else {
        let (written, sum) = inline_data(entry, layer, &file, head, &at, &mut marker)?;
        stats.sums.insert(rel.to_owned(), sum);
        stats.bytes += written;
    }
    set_xattrs(&file, pax, stats);
    set_mtime(&file, entry.header(), pax);
    if marker.found {
        stats.marked.push(rel.to_owned());
    }
    Ok(())
}

/// The entry a file is written for: its name in the layer, its path inside the keg and on disk.
struct At<'a> {
    name: &'a str,
    rel: &'a Path,
    path: &'a Path,
}

fn read_error(name: &str) -> impl Fn(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Read {
        context: format!(" in `{name}`").into(),
        source,
    }
}

/// A pax sparse file's segments, placed by its map (given in the pax records, or read from the
/// front of the data for format 1.0); checked against its real size and data first.
fn sparse_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &mut Layer<'_>,
    file: &File,
    spec: &sparse::Spec,
    at: &At<'_>,
    marker: &mut Marker,
) -> Result<(), UnpackError> {
    let (name, size) = (at.name, entry.size());
    let bad = |reason: String| UnpackError::Sparse {
        entry: name.into(),
        reason: reason.into(),
    };
    let map = match &spec.map {
        Some(map) => {
            sparse::check(map, spec.realsize, size).map_err(|e| bad(e.0))?;
            map.clone()
        }
        None => {
            let (map, used) = sparse::read_map(entry, size).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => bad(e.to_string()),
                _ => read_error(name)(e),
            })?;
            // What follows the map is the data.
            sparse::check(&map, spec.realsize, size - used).map_err(|e| bad(e.0))?;
            map
        }
    };
    for (offset, len) in map {
        let copied = copy_at(
            entry,
            file,
            offset,
            len,
            &mut layer.buf,
            false,
            marker,
            None,
        )
        .map_err(|e| e.into_unpack(name, at.path))?;
        if copied < len {
            return Err(UnpackError::Truncated {
                entry: name.into(),
                expected: len,
                actual: copied,
            });
        }
    }
    file.set_len(spec.realsize)
        .map_err(|e| io_error(name, Op::Write, at.path, e))
}

/// A file's bytes handed to the writer threads (`head`, already read, first); its sum and
/// whether it holds a placeholder are known here, as it is read.
fn to_writers<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    writers: &super::pool::Writers<'_>,
    pending: &std::sync::Arc<super::pool::Pending>,
    head: &[u8],
    at: &At<'_>,
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let size = entry.size();
    let mut marker = Marker::default();
    let mut offset = 0u64;
    let mut sum = crc32fast::Hasher::new();
    if !head.is_empty() {
        marker.feed(head);
        sum.update(head);
        let mut first = writers.buffer(head.len() as u64);
        first.copy_from_slice(head);
        if !writers.write(pending, 0, first) {
            return Ok(());
        }
        offset = head.len() as u64;
    }
    while offset < size {
        let mut buf = writers.buffer(size - offset);
        let n = read_up_to(entry, &mut buf).map_err(read_error(at.name))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        marker.feed(&buf);
        sum.update(&buf);
        if !writers.write(pending, offset, buf) {
            return Ok(());
        }
        offset += n as u64;
    }
    stats.bytes += offset;
    if offset < size {
        return Err(UnpackError::Truncated {
            entry: at.name.into(),
            expected: size,
            actual: offset,
        });
    }
    if marker.found {
        stats.marked.push(at.rel.to_owned());
    }
    stats.sums.insert(at.rel.to_owned(), sum.finalize());
    Ok(())
}

/// A file written on this thread (`head`, already read, first); an old GNU sparse file's holes
/// are punched back. Returns the bytes written and their CRC-32.
fn inline_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &mut Layer<'_>,
    mut file: &File,
    head: &[u8],
    at: &At<'_>,
    marker: &mut Marker,
) -> Result<(u64, u32), UnpackError> {
    let size = entry.size();
    let write_error = |e| io_error(at.name, Op::Write, at.path, e);
    file.write_all(head).map_err(write_error)?;
    let holes = entry.header().entry_type() == EntryType::GNUSparse;
    let start = head.len() as u64;
    marker.feed(head);
    let mut sum = crc32fast::Hasher::new();
    sum.update(head);
    let copied = copy_at(
        entry,
        file,
        start,
        size - start,
        &mut layer.buf,
        holes,
        marker,
        Some(&mut sum),
    )
    .map_err(|e| e.into_unpack(at.name, at.path))?;
    let written = start + copied;
    if written < size {
        return Err(UnpackError::Truncated {
            entry: at.name.into(),
            expected: size,
            actual: written,
        });
    }
    if holes {
        file.set_len(size).map_err(write_error)?;
    }
    Ok((written, sum.finalize()))
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    fn into_unpack(self, name: &str, path: &Path) -> UnpackError {
        match self {
            CopyError::Read(source) => UnpackError::Read {
                context: format!(" in `{name}`").into(),
                source,
            },
            CopyError::Write(e) => io_error(name, Op::Write, path, e),
        }
    }
}

/// Copies up to `len` bytes from `from` into `file` at `offset`; with `holes`, whole blocks of
/// zeros are skipped (left as holes). Returns the bytes read; `sum` sees every one.
#[allow(clippy::too_many_arguments)]
fn copy_at(
    from: &mut impl Read,
    file: &File,
    offset: u64,
    len: u64,
    buf: &mut [u8],
    holes: bool,
    marker: &mut Marker,
    mut sum: Option<&mut crc32fast::Hasher>,
) -> Result<u64, CopyError> {
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        marker.feed(&buf[..n]);
        if let Some(sum) = sum.as_deref_mut() {
            sum.update(&buf[..n]);
        }
        let at = offset + done;
        if holes {
            for (i, block) in buf[..n].chunks(HOLE_BLOCK).enumerate() {
                if block.iter().any(|b| *b != 0) {
                    let pos = at + (i * HOLE_BLOCK) as u64;
                    file.write_all_at(block, pos).map_err(CopyError::Write)?;
                }
            }
        } else {
            file.write_all_at(&buf[..n], at).map_err(CopyError::Write)?;
        }
        done += n as u64;
    }
    Ok(done)
}

/// Watches a file's bytes go by for Homebrew's placeholder prefix (`@@HOMEBREW_`), across chunk
/// boundaries (one SIMD substring search per chunk), so relocation opens only the files that
/// hold one and never reads a keg twice.
#[derive(Default)]
pub(super) struct Marker {
    /// The last bytes of what came before, shorter than the prefix.
    tail: Vec<u8>,
    pub(super) found: bool,
}

const PLACEHOLDER_START: &[u8] = b"@@HOMEBREW_";

impl Marker {
    pub(super) fn feed(&mut self, chunk: &[u8]) {
        if self.found || chunk.is_empty() {
            return;
        }
        let keep = PLACEHOLDER_START.len() - 1;
        if !self.tail.is_empty() {
            let mut seam = self.tail.clone();
            seam.extend_from_slice(&chunk[..chunk.len().min(keep)]);
            if memchr::memmem::find(&seam, PLACEHOLDER_START).is_some() {
                self.found = true;
                return;
            }
        }
        if memchr::memmem::find(chunk, PLACEHOLDER_START).is_some() {
            self.found = true;
            return;
        }
        self.tail
            .extend_from_slice(&chunk[chunk.len().saturating_sub(keep)..]);
        let excess = self.tail.len().saturating_sub(keep);
        self.tail.drain(..excess);
    }
}

/// Best effort: a missing or odd mtime leaves the file's own.
fn set_mtime(file: &File, header: &tar::Header, pax: &Pax) {
    if let Some(time) = mtime(header, pax) {
        let _ = file.set_modified(time);
    }
}

/// A file's mtime: a pax `mtime` record wins over the header's field, as in GNU tar, bsdtar and
/// Python.
fn mtime(header: &tar::Header, pax: &Pax) -> Option<SystemTime> {
    pax.mtime.or_else(|| {
        header
            .mtime()
            .ok()
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
    })
}

/// A hard link to a file or a symlink already in the root (never to a directory). `linkat`
/// without `AT_SYMLINK_FOLLOW` links a symlink itself; where the filesystem has no hard links, a
/// file is copied and a symlink recreated.
pub(super) fn hardlink(
    layer: &mut Layer<'_>,
    name: &str,
    rel: &Path,
    target: &[u8],
    stats: &mut Stats,
) -> Result<(), UnpackError> {
    let refuse = |reason| UnpackError::LinkTarget {
        entry: name.into(),
        target: display_name(target).into(),
        reason,
    };
    let target_rel = sanitize_path(target)
        .map_err(refuse)?
        .ok_or_else(|| refuse(Reason::Root))?;
    let target_path = layer.root_path.join(&target_rel);
    let target_kind = match layer.root.stat(&target_rel) {
        Ok(Some(st)) => FileType::from_raw_mode(st.st_mode),
        Ok(None) | Err(WalkError::Missing(_)) => return Err(refuse(Reason::Missing)),
        Err(e) => return Err(walk_error(&layer.root_path, name, Op::Inspect, e)),
    };
    if target_kind == FileType::Directory {
        return Err(refuse(Reason::NotAFile));
    }
    if target_rel == rel {
        return Ok(());
    }
    let (target_parent, target_name) = beneath::split(&target_rel)
        .map_err(|e| walk_error(&layer.root_path, name, Op::Inspect, e))?;
    let target_dir = (layer.root.open_dir(target_parent, None, &mut |_| {}))
        .map_err(|e| walk_error(&layer.root_path, name, Op::Inspect, e))?;
    // A second name of a file that holds a placeholder is relocated too; it has its sum.
    if stats.marked.contains(&target_rel) {
        stats.marked.push(rel.to_owned());
    }
    match stats.sums.get(&target_rel).copied() {
        Some(sum) => stats.sums.insert(rel.to_owned(), sum),
        None => stats.sums.remove(rel),
    };
    let linked = layer.create(name, rel, Op::CopyTo, |dir, n| {
        match rustix::fs::linkat(&target_dir, target_name, dir, n, AtFlags::empty()) {
            Err(Errno::EXIST) => Err(Errno::EXIST),
            Err(_) => Ok(false),
            Ok(()) => Ok(true),
        }
    })?;
    if linked {
        return Ok(());
    }
    // No hard links here: the same bytes (or the same link) under the second name.
    if target_kind == FileType::Symlink {
        let to = (layer.root.read_link(&target_rel))
            .map_err(|e| walk_error(&layer.root_path, name, Op::Inspect, e))?;
        return layer.create(name, rel, Op::Symlink, |dir, n| {
            rustix::fs::symlinkat(&to, dir, n)
        });
    }
    // The target's bytes may still be on their way to it.
    if let Some(writers) = layer.writers {
        writers.wait_idle();
    }
    let mut from = (layer.root.open_file(&target_rel, false))
        .map_err(|e| walk_error(&layer.root_path, name, Op::Inspect, e))?;
    let meta = from
        .metadata()
        .map_err(|e| io_error(name, Op::Inspect, &target_path, e))?;
    check_room(name, meta.len(), layer, stats)?;
    check_ratio(name, meta.len(), layer, stats)?;
    stats.written += meta.len();
    use std::os::unix::fs::PermissionsExt as _;
    let mut to = create_file(layer, name, rel, meta.permissions().mode() & 0o777)?;
    let copied =
        io::copy(&mut from, &mut to).map_err(|e| io_error(name, Op::CopyTo, &target_path, e))?;
    stats.bytes += copied;
    Ok(())
}

#[cfg(test)]
mod marker_tests {
    use super::Marker;

    #[test]
    fn the_placeholder_prefix_is_seen_across_any_chunk_boundary() {
        let text = b"....binary\0@@HOMEBREW_PREFIX@@/lib\0....";
        for size in 1..text.len() {
            let mut m = Marker::default();
            for chunk in text.chunks(size) {
                m.feed(chunk);
            }
            assert!(m.found, "chunks of {size}");
        }
        let mut m = Marker::default();
        for chunk in b"@@HOMEBREW @@HOMEBREW-X @HOMEBREW_".chunks(3) {
            m.feed(chunk);
        }
        assert!(!m.found);
    }
}
