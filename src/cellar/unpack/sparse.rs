//! GNU tar's pax sparse files (formats 0.0, 0.1 and 1.0): the map that says where each stored
//! segment of data goes in the file, read from the pax records or (1.0) from the start of the
//! entry's data, and checked before a byte is written.
//!
//! Old GNU sparse entries (type `S`, `--format=gnu`) are read by the `tar` crate itself, which
//! hands out the holes as zeros; the unpacker turns zero blocks back into holes.

use std::io::{self, Read};

/// Where the stored data of a sparse entry goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// The file's size once restored.
    pub realsize: u64,
    /// `(offset, length)` segments from the pax records (0.0, 0.1); `None` for 1.0, whose map
    /// opens the entry's data.
    pub map: Option<Vec<(u64, u64)>>,
    /// The real name (`GNU.sparse.name`), when the records give one.
    pub name: Option<Vec<u8>>,
}

/// A pax sparse header that cannot be restored faithfully.
#[derive(Debug, PartialEq, Eq)]
pub struct BadMap(pub String);

impl std::fmt::Display for BadMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> BadMap {
    BadMap(msg.into())
}

fn number(key: &str, value: &[u8]) -> Result<u64, BadMap> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            bad(format!(
                "its pax record {key}=`{}` is not a number",
                String::from_utf8_lossy(value)
            ))
        })
}

/// The sparse spec in an entry's pax records, or `None` when the entry is not sparse.
pub fn from_pax<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Option<Spec>, BadMap> {
    let (mut major, mut minor) = (None, None);
    let (mut size, mut realsize, mut name) = (None, None, None);
    let mut map: Option<Vec<(u64, u64)>> = None;
    let mut pending_offset = None;
    for (key, value) in records {
        match key {
            "GNU.sparse.major" => major = Some(number(key, value)?),
            "GNU.sparse.minor" => minor = Some(number(key, value)?),
            "GNU.sparse.size" => size = Some(number(key, value)?),
            "GNU.sparse.realsize" => realsize = Some(number(key, value)?),
            "GNU.sparse.name" => name = Some(value.to_vec()),
            // 0.1: one record, `offset,length,offset,length…`.
            "GNU.sparse.map" => {
                let text =
                    std::str::from_utf8(value).map_err(|_| bad("its sparse map is not text"))?;
                let nums = text
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|n| number(key, n.as_bytes()))
                    .collect::<Result<Vec<_>, _>>()?;
                if nums.len() % 2 != 0 {
                    return Err(bad("its sparse map has an offset without a length"));
                }
                map = Some(nums.chunks(2).map(|p| (p[0], p[1])).collect());
            }
            // 0.0: `offset` and `numbytes` records in turn.
            "GNU.sparse.offset" => pending_offset = Some(number(key, value)?),
            "GNU.sparse.numbytes" => {
                let off = pending_offset
                    .take()
                    .ok_or_else(|| bad("its sparse map has a length without an offset"))?;
                map.get_or_insert_with(Vec::new)
                    .push((off, number(key, value)?));
            }
            "GNU.sparse.numblocks" => {}
            _ => {}
        }
    }
    match (major, minor) {
        (Some(1), Some(0)) => {
            let realsize = realsize
                .or(size)
                .ok_or_else(|| bad("its sparse header gives no real size"))?;
            Ok(Some(Spec {
                realsize,
                map: None,
                name,
            }))
        }
        (Some(major), minor) => Err(bad(format!(
            "it is a sparse file in GNU format {major}.{}, which pkg does not know (0.0, 0.1 and 1.0 are supported)",
            minor.unwrap_or(0)
        ))),
        (None, _) if map.is_some() || size.is_some() => {
            let realsize = size
                .or(realsize)
                .ok_or_else(|| bad("its sparse header gives no real size"))?;
            Ok(Some(Spec {
                realsize,
                map: Some(map.unwrap_or_default()),
                name,
            }))
        }
        (None, _) => Ok(None),
    }
}

/// Reads a format 1.0 map from the start of the data: decimal numbers one per line (the count,
/// then offset and length pairs), padded with NULs to a 512-byte block. Returns the map and how
/// many bytes of `stored` it took.
pub fn read_map(reader: &mut impl Read, stored: u64) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let mut consumed = 0u64;
    let mut line = |consumed: &mut u64| -> io::Result<u64> {
        let mut digits = Vec::new();
        loop {
            let mut b = [0u8; 1];
            if *consumed >= stored {
                return Err(invalid("the sparse map runs past the entry's data"));
            }
            reader.read_exact(&mut b)?;
            *consumed += 1;
            match b[0] {
                b'\n' => break,
                d @ b'0'..=b'9' if digits.len() < 20 => digits.push(d),
                _ => return Err(invalid("the sparse map is not a list of numbers")),
            }
        }
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| invalid("the sparse map is not a list of numbers"))
    };
    let count = line(&mut consumed)?;
    // Each pair takes at least four bytes of map: a count past that is a lie.
    if count > stored / 4 {
        return Err(invalid(
            "the sparse map lists more segments than the entry can hold",
        ));
    }
    let mut map = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = line(&mut consumed)?;
        let len = line(&mut consumed)?;
        map.push((off, len));
    }
    let pad = (512 - consumed % 512) % 512;
    if consumed + pad > stored {
        return Err(invalid("the sparse map runs past the entry's data"));
    }
    io::copy(&mut reader.take(pad), &mut io::sink())?;
    Ok((map, consumed + pad))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Checks a map against the real size and the data stored: segments in order, not overlapping,
/// inside the file, and exactly as many bytes as stored.
pub fn check(map: &[(u64, u64)], realsize: u64, data: u64) -> Result<(), BadMap> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in map {
        if off < end {
            return Err(bad(
                "its sparse map has segments out of order or overlapping",
            ));
        }
        end = off
            .checked_add(len)
            .filter(|e| *e <= realsize)
            .ok_or_else(|| bad("its sparse map has a segment past the file's real size"))?;
        total = total.saturating_add(len);
    }
    if total != data {
        return Err(bad(format!(
            "its sparse map lists {total} bytes of data but the entry stores {data}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_of_each_format() {
        let v1 = [
            ("GNU.sparse.major", b"1".as_slice()),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"share/disk.img"),
            ("GNU.sparse.realsize", b"8388608"),
        ];
        assert_eq!(
            from_pax(v1).unwrap(),
            Some(Spec {
                realsize: 8 << 20,
                map: None,
                name: Some(b"share/disk.img".to_vec())
            })
        );
        let v01 = [
            ("GNU.sparse.size", b"100".as_slice()),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.map", b"0,10,90,10"),
        ];
        assert_eq!(
            from_pax(v01).unwrap().unwrap().map,
            Some(vec![(0, 10), (90, 10)])
        );
        let v00 = [
            ("GNU.sparse.size", b"100".as_slice()),
            ("GNU.sparse.offset", b"0"),
            ("GNU.sparse.numbytes", b"10"),
            ("GNU.sparse.offset", b"90"),
            ("GNU.sparse.numbytes", b"10"),
        ];
        assert_eq!(
            from_pax(v00).unwrap().unwrap().map,
            Some(vec![(0, 10), (90, 10)])
        );
        assert_eq!(from_pax([("path", b"x".as_slice())]).unwrap(), None);
        assert!(from_pax([("GNU.sparse.major", b"2".as_slice())]).is_err());
        assert!(from_pax([("GNU.sparse.map", b"0,1,2".as_slice())]).is_err());
    }

    #[test]
    fn maps_are_checked_against_size_and_data() {
        assert!(check(&[(0, 10), (90, 10)], 100, 20).is_ok());
        assert!(check(&[(0, 10), (5, 10)], 100, 20).is_err());
        assert!(check(&[(95, 10)], 100, 10).is_err());
        assert!(check(&[(0, 10)], 100, 11).is_err());
        let mut data = b"2\n0\n3\n10\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcde");
        let (map, used) = read_map(&mut data.as_slice(), data.len() as u64).unwrap();
        assert_eq!((map, used), (vec![(0, 3), (10, 2)], 512));
        assert!(read_map(&mut b"99999\n".as_slice(), 6).is_err());
    }
}
