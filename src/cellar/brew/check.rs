//! Owns the ELF sanity check every file passes before an ELF editor sees it: the header's entry
//! sizes and counts, and every program and section header's extent, against the file's length.
//! What an editor then reads or allocates is bounded by the file size, so a hostile header is
//! refused by name instead of panicking or exhausting memory inside the editor.

/// Why a file is not an ELF file pkg will hand to its editor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("it is too short for an ELF header ({0} bytes)")]
    Short(usize),
    #[error("its ELF class byte is {0} (only 1 for 32-bit and 2 for 64-bit exist)")]
    Class(u8),
    #[error("its ELF byte-order byte is {0} (only 1 and 2 exist)")]
    ByteOrder(u8),
    #[error("its ELF header says the header is {got} bytes; the format says {want}")]
    HeaderSize { got: u16, want: u16 },
    #[error("its {what} entry size is {got} bytes; the format says {want}")]
    EntrySize {
        what: &'static str,
        got: u16,
        want: u16,
    },
    #[error(
        "it uses extended {0} numbering (a count that does not fit the header), which pkg does not read"
    )]
    Extended(&'static str),
    #[error(
        "its {what} table ({count} entries at offset {offset}) runs past the end of the file ({len} bytes)"
    )]
    Table {
        what: &'static str,
        count: u64,
        offset: u64,
        len: u64,
    },
    #[error(
        "its {what} {index} spans bytes {offset}..{offset}+{size}, past the end of the file ({len} bytes)"
    )]
    Extent {
        what: &'static str,
        index: usize,
        offset: u64,
        size: u64,
        len: u64,
    },
    #[error("its {what} {index} names section {link}, and there are {count}")]
    Link {
        what: &'static str,
        index: usize,
        link: u64,
        count: u64,
    },
    #[error("its PT_INTERP segment is {0} bytes; an interpreter path is at most 4096")]
    Interpreter(u64),
}

/// `SHT_NOBITS`: a section that takes no room in the file (`.bss`).
const SHT_NOBITS: u64 = 8;
const PT_INTERP: u64 = 3;
/// `PN_XNUM` / `SHN_XINDEX`: the real count lives in section 0.
const XNUM: u64 = 0xffff;

struct Reader<'a> {
    bytes: &'a [u8],
    big: bool,
    wide: bool,
}

impl Reader<'_> {
    /// An unsigned field of `size` bytes at `at` (the caller checked the range).
    fn uint(&self, at: usize, size: usize) -> u64 {
        let field = &self.bytes[at..at + size];
        let mut v = 0u64;
        if self.big {
            for b in field {
                v = v << 8 | u64::from(*b);
            }
        } else {
            for b in field.iter().rev() {
                v = v << 8 | u64::from(*b);
            }
        }
        v
    }
    /// A word: 8 bytes in a 64-bit file, 4 in a 32-bit one.
    fn word(&self, at: usize) -> u64 {
        self.uint(at, if self.wide { 8 } else { 4 })
    }
    fn half(&self, at: usize) -> u16 {
        self.uint(at, 2) as u16
    }
}

/// Checks `bytes` (a whole file starting with the ELF magic) before any ELF editor reads it.
/// Long: one pass over the ELF header and its tables in the order the format lays them out, each
/// bound checked against the file before anything reads past it.
pub fn check(bytes: &[u8]) -> Result<(), Malformed> {
    let len = bytes.len() as u64;
    if bytes.len() < 52 {
        return Err(Malformed::Short(bytes.len()));
    }
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        other => return Err(Malformed::Class(other)),
    };
    let big = match bytes[5] {
        1 => false,
        2 => true,
        other => return Err(Malformed::ByteOrder(other)),
    };
    let header: u16 = if wide { 64 } else { 52 };
    if bytes.len() < usize::from(header) {
        return Err(Malformed::Short(bytes.len()));
    }
    let r = Reader { bytes, big, wide };
    // Offsets of e_phoff, then of e_ehsize (the halves follow it in order).
    let (phoff_at, halves_at) = if wide { (32, 52) } else { (28, 40) };
    let phoff = r.word(phoff_at);
    let shoff = r.word(phoff_at + if wide { 8 } else { 4 });
    let ehsize = r.half(halves_at);
    let phentsize = r.half(halves_at + 2);
    let phnum = u64::from(r.half(halves_at + 4));
    let shentsize = r.half(halves_at + 6);
    let shnum = u64::from(r.half(halves_at + 8));
    let shstrndx = u64::from(r.half(halves_at + 10));
    if ehsize != header {
        return Err(Malformed::HeaderSize {
            got: ehsize,
            want: header,
        });
    }
    let (ph_want, sh_want): (u16, u16) = if wide { (56, 64) } else { (32, 40) };
    if phentsize != ph_want && (phnum != 0 || phoff != 0) {
        return Err(Malformed::EntrySize {
            what: "program header",
            got: phentsize,
            want: ph_want,
        });
    }
    if shentsize != sh_want && (shnum != 0 || shoff != 0) {
        return Err(Malformed::EntrySize {
            what: "section header",
            got: shentsize,
            want: sh_want,
        });
    }
    if phnum == XNUM {
        return Err(Malformed::Extended("segment"));
    }
    if (shnum == 0 && shoff != 0) || shstrndx == XNUM {
        return Err(Malformed::Extended("section"));
    }
    let table = |what, count: u64, offset: u64, entry: u16| {
        let end = count
            .checked_mul(u64::from(entry))
            .and_then(|size| size.checked_add(offset));
        match end {
            Some(end) if end <= len => Ok(()),
            _ => Err(Malformed::Table {
                what,
                count,
                offset,
                len,
            }),
        }
    };
    table("program header", phnum, phoff, ph_want)?;
    table("section header", shnum, shoff, sh_want)?;
    if shnum != 0 && shstrndx >= shnum {
        return Err(Malformed::Link {
            what: "header's section-name index",
            index: 0,
            link: shstrndx,
            count: shnum,
        });
    }
    let extent = |what, index, offset: u64, size: u64| match offset.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        _ => Err(Malformed::Extent {
            what,
            index,
            offset,
            size,
            len,
        }),
    };
    for i in 0..phnum as usize {
        let at = phoff as usize + i * usize::from(ph_want);
        let kind = r.uint(at, 4);
        let (offset, filesz) = if wide {
            (r.uint(at + 8, 8), r.uint(at + 32, 8))
        } else {
            (r.uint(at + 4, 4), r.uint(at + 16, 4))
        };
        extent("segment", i, offset, filesz)?;
        if kind == PT_INTERP && filesz > 4096 {
            return Err(Malformed::Interpreter(filesz));
        }
    }
    for i in 0..shnum as usize {
        let at = shoff as usize + i * usize::from(sh_want);
        let kind = r.uint(at + 4, 4);
        let (offset, size, link) = if wide {
            (r.uint(at + 24, 8), r.uint(at + 32, 8), r.uint(at + 40, 4))
        } else {
            (r.uint(at + 16, 4), r.uint(at + 20, 4), r.uint(at + 24, 4))
        };
        if kind != SHT_NOBITS {
            extent("section", i, offset, size)?;
        }
        if link >= shnum {
            return Err(Malformed::Link {
                what: "section",
                index: i,
                link,
                count: shnum,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's own `/bin/sh`: a real ELF file nobody here wrote.
    fn real() -> Vec<u8> {
        std::fs::read("/bin/sh").unwrap()
    }

    fn set(bytes: &mut [u8], at: usize, value: u64, size: usize) {
        bytes[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
    }

    #[test]
    fn a_real_elf_file_passes() {
        assert_eq!(check(&real()), Ok(()));
    }

    #[test]
    fn hostile_headers_are_refused_by_what_is_wrong() {
        let cases: [(usize, u64, usize, &str); 6] = [
            (58, 0, 2, "section header entry size is 0"),
            (54, 0, 2, "program header entry size is 0"),
            (56, 0xffff, 2, "extended segment"),
            (60, 0x7fff, 2, "section header table"),
            (32, u64::MAX - 8, 8, "program header table"),
            (62, 0x7000, 2, "section-name index"),
        ];
        for (at, value, size, want) in cases {
            let mut bytes = real();
            set(&mut bytes, at, value, size);
            let err = check(&bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{at}: {err}");
        }
    }

    #[test]
    fn a_huge_interpreter_segment_is_refused_before_anything_reads_it() {
        let mut bytes = real();
        let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(bytes[56..58].try_into().unwrap()) as usize;
        let interp = (0..phnum)
            .map(|i| phoff + i * 56)
            .find(|at| bytes[*at..*at + 4] == 3u32.to_le_bytes())
            .expect("/bin/sh has an interpreter");
        set(&mut bytes, interp + 32, 1 << 47, 8);
        let err = check(&bytes).unwrap_err().to_string();
        assert!(err.contains("past the end of the file"), "{err}");
        assert!(check(&bytes[..40]).is_err());
    }
}
