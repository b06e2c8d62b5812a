//! Owns where each tar entry's data starts and ends, decided as GNU tar decides it, before the
//! `tar` crate parses the stream. Readers that disagree on this see different archives: one
//! that every other tool lists as a directory plus a data file could, read another way, hold a
//! file hidden inside that data. So this reader walks the 512-byte blocks itself and hands the
//! `tar` crate headers that can be read only one way:
//!
//! - A header-only entry (hard link, symlink, character or block device, directory, fifo, and an
//!   old-style `\0` entry whose name ends in `/`) has no data, whatever its size field says, as
//!   in POSIX, GNU tar, bsdtar, Go and Python: its size field is rewritten to 0. A pax `size`
//!   record on such an entry cannot be rewritten in place; the layer is refused, naming it.
//! - Every other header's size field is rewritten in canonical octal (base-256 sizes are read
//!   first), so the `tar` crate cannot parse it another way; a pax `size` record is read here
//!   exactly as the crate reads it, and a pax header that two readers could read differently
//!   (a malformed record, two `size` records that disagree) is refused.
//! - A header checksum may be the signed sum (old Sun and v7 writers): accepted as GNU tar
//!   accepts it, and rewritten as the unsigned sum the crate checks.
//! - A Solaris `X` extended header is the pax `x` header under another name, as GNU tar reads it.
//! - Old GNU sparse headers are followed by their extension blocks, which are headers, not data.
//!
//! Data blocks pass through untouched (straight into the caller's buffer); only headers are
//! copied.

use std::io::{self, Read};

const BLOCK: usize = 512;
/// Whether GNU tar, meeting `key` in a pax global header, would apply it to every later entry
/// in a way that changes what is extracted: names, sizes, mtimes, sparse maps, xattrs. pkg
/// applies no global records, so it refuses those; the rest (comments, charsets, owners,
/// atime, vendor keys GNU tar ignores) change nothing pkg restores.
fn applied_globally(key: &[u8]) -> bool {
    matches!(key, b"path" | b"linkpath" | b"size" | b"mtime")
        || [&b"GNU."[..], b"SCHILY.", b"LIBARCHIVE."]
            .iter()
            .any(|p| key.starts_with(p))
}

/// The most a pax header or a GNU long name may hold (the `tar` crate reads them whole).
const MAX_EXTENSION: u64 = 8 << 20;

/// A tar stream whose framing is GNU tar's (see the module docs).
pub(super) struct Framing<R> {
    inner: R,
    state: State,
    /// The header being handed out, from `out` on.
    block: [u8; BLOCK],
    out: usize,
    /// What the extension headers before the next entry said.
    pending: Pending,
    /// The data of an extension header being collected as it passes.
    ext: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Collect {
    None,
    /// A pax `x` header: its `size` and `path` records apply to the next entry.
    Pax,
    /// A pax `g` header: read only to refuse records pkg would not apply.
    Global,
    /// A GNU `L` long name.
    LongName,
}

#[derive(Clone, Copy)]
enum State {
    /// The next block is a header.
    Header,
    /// Old GNU sparse extension blocks follow, then the entry's data.
    SparseExtension { data: u64 },
    /// `data` bytes of content, then `pad` bytes to the block boundary.
    Data {
        data: u64,
        pad: u64,
        collect: Collect,
    },
    /// The end-of-archive block was read (or the stream ended, or a header is broken in a way
    /// the `tar` crate reports): the rest passes through.
    End,
}

#[derive(Default)]
struct Pending {
    /// A pax `size` record for the next entry.
    size: Option<u64>,
    /// The next entry's name from a pax `path` record or a GNU long name.
    name: Option<Vec<u8>>,
}

fn refuse(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: Read> Framing<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            out: BLOCK,
            pending: Pending::default(),
            ext: Vec::new(),
        }
    }

    /// Reads one whole block into `self.block`; the bytes read when the stream ends first.
    fn fill(&mut self) -> io::Result<usize> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut self.block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// The entry's name as the header (and the extension headers before it) give it.
    fn name(&self) -> Vec<u8> {
        if let Some(name) = &self.pending.name {
            return name.clone();
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &self.block[r];
            f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())].to_vec()
        };
        let name = field(0..100);
        if &self.block[257..263] == b"ustar\0" {
            let prefix = field(345..500);
            if !prefix.is_empty() {
                return [prefix, b"/".to_vec(), name].concat();
            }
        }
        name
    }

    fn shown(&self) -> String {
        super::display_name(&self.name())
    }

    /// Reads the next header block, normalizes it and decides what follows it.
    fn next_header(&mut self) -> io::Result<()> {
        let got = self.fill()?;
        self.out = BLOCK - got;
        if got < BLOCK {
            // A short archive: what is there is handed on, and the `tar` crate says it is cut.
            self.block.copy_within(..got, BLOCK - got);
            self.state = State::End;
            return Ok(());
        }
        if self.block.iter().all(|b| *b == 0) || !checksum_ok(&self.block) {
            self.state = State::End;
            return Ok(());
        }
        if self.block[156] == b'X' {
            self.block[156] = b'x';
        }
        let kind = self.block[156];
        let magic = &self.block[257..265];
        let recognized = magic == b"ustar\x0000" || magic == b"ustar  \0";
        let Some(field) = read_size(&self.block[124..136]) else {
            return Err(refuse(format!(
                "tar entry `{}` has a size field that tar readers read differently; rebuild the layer with GNU tar or bsdtar",
                self.shown()
            )));
        };
        let extension = matches!(kind, b'x' | b'g' | b'L' | b'K');
        let header_only = !extension
            && (matches!(kind, b'1'..=b'6') || (kind == 0 && self.name().ends_with(b"/")));
        let (data, collect) = if extension {
            // Extension headers: their own size field, never a pax size.
            let collect = match kind {
                b'x' if recognized => Collect::Pax,
                b'g' if recognized => Collect::Global,
                b'L' if recognized => Collect::LongName,
                _ => Collect::None,
            };
            if collect != Collect::None && field > MAX_EXTENSION {
                return Err(refuse(format!(
                    "an extension header of {field} bytes before `{}` is larger than pkg reads ({MAX_EXTENSION} bytes)",
                    self.shown()
                )));
            }
            (field, collect)
        } else {
            let pax_size = self.pending.size;
            if header_only && let Some(size) = pax_size.filter(|s| *s != 0) {
                return Err(refuse(format!(
                    "tar entry `{}` is a {}, but its pax header gives it {size} bytes of data; tar readers disagree on where the next entry starts after such a header, so pkg refuses the layer. Rebuild it with GNU tar or bsdtar",
                    self.shown(),
                    kind_name(kind)
                )));
            }
            self.pending = Pending::default();
            (
                if header_only {
                    0
                } else {
                    pax_size.unwrap_or(field)
                },
                Collect::None,
            )
        };
        // The field as the crate reads it: 0 for a header-only entry, else canonical.
        write_size(
            &mut self.block[124..136],
            if header_only { 0 } else { field },
        );
        write_checksum(&mut self.block);
        self.ext.clear();
        self.state = if kind == b'S' && self.block[482] != 0 {
            State::SparseExtension { data }
        } else {
            State::Data {
                data,
                pad: padding(data),
                collect,
            }
        };
        Ok(())
    }
}

impl<R: Read> Framing<R> {
    /// Takes in what a collected extension header says.
    fn finish(&mut self, collect: Collect) -> io::Result<()> {
        let ext = std::mem::take(&mut self.ext);
        match collect {
            Collect::None => {}
            Collect::LongName => {
                let end = ext.iter().position(|b| *b == 0).unwrap_or(ext.len());
                self.pending.name = Some(ext[..end].to_vec());
            }
            Collect::Pax | Collect::Global => {
                let records = pax_records(&ext).ok_or_else(|| {
                    refuse(format!(
                        "the pax header before `{}` has a malformed record; tar readers disagree on such headers, so pkg refuses the layer",
                        self.shown()
                    ))
                })?;
                let mut size = None;
                for (key, value) in records {
                    if collect == Collect::Global && applied_globally(key) {
                        // GNU tar applies global records to every later entry (renaming them,
                        // re-dating them); pkg does not, so it refuses rather than differ.
                        return Err(refuse(format!(
                            "a pax global header before `{}` sets `{}` for every later entry; pkg applies no global records, and this one changes what is extracted, so it refuses the layer. Rebuild it without global records",
                            self.shown(),
                            super::display_name(key)
                        )));
                    }
                    match key {
                        b"size" => {
                            let parsed = std::str::from_utf8(value)
                                .ok()
                                .and_then(|v| v.parse::<u64>().ok());
                            let Some(parsed) = parsed.filter(|_| collect == Collect::Pax) else {
                                return Err(refuse(format!(
                                    "the pax header before `{}` has a size record `{}` that tar readers read differently; pkg refuses the layer",
                                    self.shown(),
                                    super::display_name(value)
                                )));
                            };
                            if size.is_some_and(|s| s != parsed) {
                                return Err(refuse(format!(
                                    "the pax header before `{}` gives two different sizes; tar readers disagree on which counts, so pkg refuses the layer",
                                    self.shown()
                                )));
                            }
                            size = Some(parsed);
                        }
                        b"path" if collect == Collect::Pax => {
                            self.pending.name = Some(value.to_vec());
                        }
                        _ => {}
                    }
                }
                if collect == Collect::Pax {
                    self.pending.size = size;
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Framing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out < BLOCK {
                let n = (BLOCK - self.out).min(buf.len());
                buf[..n].copy_from_slice(&self.block[self.out..self.out + n]);
                self.out += n;
                return Ok(n);
            }
            match self.state {
                State::End => return self.inner.read(buf),
                State::Header => self.next_header()?,
                State::SparseExtension { data } => {
                    let got = self.fill()?;
                    self.out = BLOCK - got;
                    if got < BLOCK {
                        self.block.copy_within(..got, BLOCK - got);
                        self.state = State::End;
                    } else if self.block[504] == 0 {
                        self.state = State::Data {
                            data,
                            pad: padding(data),
                            collect: Collect::None,
                        };
                    }
                }
                State::Data {
                    data: 0,
                    pad: 0,
                    collect,
                } => {
                    self.finish(collect)?;
                    self.state = State::Header;
                }
                State::Data { data, pad, collect } => {
                    let want = if data > 0 { data } else { pad };
                    let n = usize::try_from(want).map_or(buf.len(), |w| w.min(buf.len()));
                    let got = self.inner.read(&mut buf[..n])?;
                    if got == 0 {
                        self.state = State::End;
                        return Ok(0);
                    }
                    self.state = if data > 0 {
                        if collect != Collect::None {
                            self.ext.extend_from_slice(&buf[..got]);
                        }
                        State::Data {
                            data: data - got as u64,
                            pad,
                            collect,
                        }
                    } else {
                        State::Data {
                            data,
                            pad: pad - got as u64,
                            collect,
                        }
                    };
                    return Ok(got);
                }
            }
        }
    }
}

/// Bytes from the end of `data` bytes to the next block boundary.
fn padding(data: u64) -> u64 {
    (BLOCK as u64 - data % BLOCK as u64) % BLOCK as u64
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'6' => "fifo",
        _ => "directory",
    }
}

/// Whether the header's checksum field holds its unsigned sum or its signed sum (written by old
/// Sun and v7 tars; GNU tar accepts both).
fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let field = &block[148..156];
    let digits = field.trim_ascii_start();
    let end = digits
        .iter()
        .position(|b| !(b'0'..=b'7').contains(b))
        .unwrap_or(digits.len());
    let Some(stored) = std::str::from_utf8(&digits[..end])
        .ok()
        .filter(|d| !d.is_empty())
        .and_then(|d| i64::from_str_radix(d, 8).ok())
    else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || stored == signed
}

/// Writes the unsigned checksum as GNU tar does: six octal digits, NUL, space.
fn write_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A 12-byte size field, read one way only: octal (leading spaces, then digits, then NUL or
/// space), or base-256 with the value in the last eight bytes. `None` for anything two readers
/// could read differently (a negative or oversized base-256 value, stray characters).
fn read_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] != 0x80 || field[1..4].iter().any(|b| *b != 0) {
            return None;
        }
        return Some(u64::from_be_bytes(field[4..12].try_into().ok()?));
    }
    let digits = field.trim_ascii_start();
    let end = digits
        .iter()
        .position(|b| !(b'0'..=b'7').contains(b))
        .unwrap_or(digits.len());
    if digits[end..].iter().any(|b| *b != 0 && *b != b' ') {
        return None;
    }
    if end == 0 {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&digits[..end]).ok()?, 8).ok()
}

/// Writes `size` as eleven octal digits and a NUL, or in base-256 when it does not fit.
fn write_size(field: &mut [u8], size: u64) {
    if size < 1 << 33 {
        field.copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        field[..4].copy_from_slice(&[0x80, 0, 0, 0]);
        field[4..].copy_from_slice(&size.to_be_bytes());
    }
}

/// The records of a pax header (`LEN key=value\n`), or `None` when one is malformed.
fn pax_records(mut data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    // GNU tar stops at trailing NUL padding.
    while !data.is_empty() && data[0] != 0 {
        let space = data.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|b| *b == b'=')?;
        // GNU tar reads a key as a C string: a NUL in it is a malformed record.
        if record[..eq].contains(&0) {
            return None;
        }
        out.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests;
