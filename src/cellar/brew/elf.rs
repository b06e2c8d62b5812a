//! Relocating a Homebrew Linux bottle's ELF files: the interpreter `@@HOMEBREW_PREFIX@@/lib/ld.so`
//! and the RUNPATH/RPATH placeholders brew's `keg_relocate.rb` writes become this prefix's paths.
//! The dynamic string table may have to grow, which takes a real ELF editor (`elb`); any other
//! placeholder in the file is rewritten in place only when the new string fits, as brew does.

use std::ffi::CString;
use std::fs::File;
use std::io::{Cursor, Read, Seek, Write};

use elb::{DynamicTag, Elf, ElfPatcher};

/// What relocating one file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relocated {
    /// The interpreter was a placeholder and now names `PREFIX/lib/ld.so`.
    pub interpreter: bool,
    /// RUNPATH or RPATH entries rewritten.
    pub search_paths: usize,
    /// Other strings rewritten in place.
    pub in_place: usize,
}

/// Why an ELF file cannot be relocated.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("it is not an ELF file pkg can read ({0})")]
    Read(elb::Error),
    #[error("rewriting its {what} failed ({source})")]
    Patch {
        what: &'static str,
        #[source]
        source: elb::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "it holds `{old}`, and `{new}` is longer: a string inside a binary can only be replaced by one that fits"
    )]
    DoesNotFit { old: String, new: String },
    #[error("it is not an ELF file pkg can read: {0}")]
    Malformed(#[from] super::check::Malformed),
    #[error("the ELF editor could not read it ({0})")]
    Editor(String),
    #[error(
        "it is a Mach-O file (macOS), and pkg does not relocate Mach-O files yet: their load commands need install_name_tool's rules and a new code signature"
    )]
    MachO,
}

const PAGE: u64 = 4096;

/// The first bytes of every ELF file.
pub const MAGIC: &[u8; 4] = b"\x7fELF";

/// Whether `bytes` start like a Mach-O file or a universal (fat) binary, either byte order.
pub fn is_mach_o(bytes: &[u8]) -> bool {
    const MAGICS: [[u8; 4]; 6] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xcf, 0xfa, 0xed, 0xfe],
        [0xca, 0xfe, 0xba, 0xbe],
        [0xbe, 0xba, 0xfe, 0xca],
    ];
    MAGICS.iter().any(|m| bytes.starts_with(m))
}

/// What every placeholder starts with.
pub const PLACEHOLDER_START: &[u8] = b"@@HOMEBREW_";

/// `s` with every placeholder replaced by its value, byte for byte: every other byte is kept as
/// it was, whatever its encoding. `None` when `s` holds no placeholder.
pub fn replaced(s: &[u8], replacements: &[(&str, String)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(i) = find(&s[from..], PLACEHOLDER_START).map(|i| from + i) {
        match replacements
            .iter()
            .find(|(p, _)| s[i..].starts_with(p.as_bytes()))
        {
            Some((placeholder, value)) => {
                out.extend_from_slice(&s[copied..i]);
                out.extend_from_slice(value.as_bytes());
                copied = i + placeholder.len();
                from = copied;
            }
            None => from = i + 1,
        }
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&s[copied..]);
    Some(out)
}

/// The first placeholder `s` holds, if any.
pub fn first_placeholder<'a>(s: &[u8], replacements: &'a [(&str, String)]) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = find(&s[from..], PLACEHOLDER_START).map(|i| from + i) {
        if let Some((p, _)) = replacements
            .iter()
            .find(|(p, _)| s[i..].starts_with(p.as_bytes()))
        {
            return Some(p);
        }
        from = i + 1;
    }
    None
}

fn cstring(bytes: Vec<u8>) -> Result<CString, ElfError> {
    CString::new(bytes).map_err(|e| ElfError::Io(std::io::Error::other(e)))
}

/// Relocates an ELF file's bytes: interpreter, then RUNPATH/RPATH, then whatever placeholders
/// remain, in place where they fit. `replacements` maps each placeholder to its value. The edit
/// is made in memory (the editor reads and writes a few bytes at a time: on a file that is
/// hundreds of system calls) and the new contents are returned for the caller to write once.
///
/// `bytes` are checked ([`super::check`]) before the editor reads anything, and the editor runs
/// behind a panic guard besides, so no input can take pkg down.
pub fn relocate(
    bytes: Vec<u8>,
    replacements: &[(&str, String)],
) -> Result<(Relocated, Vec<u8>), ElfError> {
    super::check::check(&bytes)?;
    let mut image = Cursor::new(bytes);
    let edited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        edit(&mut image, replacements)
    }));
    let (mut done, stale) = match edited {
        Ok(edited) => edited?,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "it stopped on an inconsistency".to_owned());
            return Err(ElfError::Editor(what));
        }
    };
    let mut bytes = image.into_inner();
    done.in_place = rewrite_strings(&mut bytes, replacements, &stale)?;
    Ok((done, bytes))
}

/// The ELF editor's part of [`relocate`]: the interpreter and RUNPATH/RPATH; returns what it did
/// and the old values it left unreferenced in the file.
fn edit<F: Read + Write + Seek>(
    file: &mut F,
    replacements: &[(&str, String)],
) -> Result<(Relocated, Vec<Vec<u8>>), ElfError> {
    let mut done = Relocated::default();
    // The old values stay in the file, unreferenced, once the new ones are written elsewhere:
    // they are blanked afterwards, so no placeholder is left behind.
    let mut stale: Vec<Vec<u8>> = Vec::new();
    let elf = Elf::read(file, PAGE).map_err(ElfError::Read)?;
    let mut patcher = ElfPatcher::new(elf, &mut *file);
    let patch = |what| move |source| ElfError::Patch { what, source };
    let mut changed = false;
    if let Some(interp) = patcher.read_interpreter().map_err(patch("interpreter"))?
        && let Some(new) = replaced(interp.to_bytes(), replacements)
    {
        stale.push(interp.to_bytes().to_vec());
        patcher
            .set_interpreter(&cstring(new)?)
            .map_err(patch("interpreter"))?;
        done.interpreter = true;
        changed = true;
    }
    let table = patcher
        .read_dynamic_table()
        .map_err(patch("dynamic table"))?;
    let strings = patcher
        .read_dynamic_string_table()
        .map_err(patch("string table"))?;
    if let (Some(table), Some(strings)) = (table, strings) {
        for tag in [DynamicTag::Runpath, DynamicTag::Rpath] {
            let Some(value) = table
                .get(tag)
                .and_then(|offset| strings.get_string(offset as usize))
            else {
                continue;
            };
            if let Some(new) = replaced(value.to_bytes(), replacements) {
                stale.push(value.to_bytes().to_vec());
                patcher
                    .set_dynamic_tag(tag, cstring(new)?.as_c_str())
                    .map_err(patch("RUNPATH"))?;
                done.search_paths += 1;
                changed = true;
            }
        }
    }
    if changed {
        patcher.finish().map_err(patch("headers"))?;
    }
    Ok((done, stale))
}

/// [`rewrite_strings`] with nothing known to be stale: for binaries that are not ELF.
pub fn in_place(bytes: &mut [u8], replacements: &[(&str, String)]) -> Result<usize, ElfError> {
    rewrite_strings(bytes, replacements, &[])
}

/// Rewrites every NUL-terminated string that still holds a placeholder, padding with NULs, when
/// the new string is no longer than the old; else the file is refused. A string equal to one
/// of `stale` (an old value the ELF editor replaced, no longer referenced) is blanked instead.
/// Returns how many strings were rewritten.
fn rewrite_strings(
    bytes: &mut [u8],
    replacements: &[(&str, String)],
    stale: &[Vec<u8>],
) -> Result<usize, ElfError> {
    let mut count = 0;
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], PLACEHOLDER_START).map(|i| from + i) {
        // The string around it: back to the previous NUL, on to the next.
        let start = bytes[..found]
            .iter()
            .rposition(|b| *b == 0)
            .map_or(0, |i| i + 1);
        let end = bytes[found..]
            .iter()
            .position(|b| *b == 0)
            .map_or(bytes.len(), |i| found + i);
        let old = &bytes[start..end];
        let new = if stale.iter().any(|s| s.as_slice() == old) {
            Vec::new()
        } else if let Some(new) = replaced(old, replacements) {
            new
        } else {
            // `@@HOMEBREW_` without a placeholder pkg knows: left as it is.
            from = end.max(found + 1);
            continue;
        };
        if new.len() > old.len() {
            return Err(ElfError::DoesNotFit {
                old: String::from_utf8_lossy(old).chars().take(200).collect(),
                new: String::from_utf8_lossy(&new).chars().take(200).collect(),
            });
        }
        let mut padded = new;
        padded.resize(end - start, 0);
        bytes[start..end].copy_from_slice(&padded);
        count += 1;
        from = end;
    }
    Ok(count)
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The dynamic loader this machine's programs use (the interpreter of `/bin/sh`).
pub fn host_loader() -> Option<std::path::PathBuf> {
    let mut file = File::open("/bin/sh").ok()?;
    let elf = Elf::read(&mut file, PAGE).ok()?;
    let interp = elf.read_interpreter(&mut file).ok()??;
    use std::os::unix::ffi::OsStrExt as _;
    Some(std::ffi::OsStr::from_bytes(interp.to_bytes()).into())
}
