//! Owns what an entry's pax records add to it: a sparse map, `user.*` extended attributes
//! (GNU's `SCHILY.xattr.*`, libarchive's `LIBARCHIVE.xattr.*`) and an exact mtime.

use std::io::Read;
use std::time::{Duration, SystemTime};

use super::{UnpackError, sparse};

/// What an entry's pax records add: a sparse map, extended attributes and an exact mtime.
#[derive(Default)]
pub(super) struct Pax {
    pub(super) sparse: Option<sparse::Spec>,
    /// The `mtime` record (seconds with an optional fraction, maybe negative), which wins over
    /// the header's whole seconds.
    pub(super) mtime: Option<SystemTime>,
    /// `user.*` attributes: name, value.
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(super) fn read_pax<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
) -> Result<Pax, UnpackError> {
    let read_error = |source| UnpackError::Read {
        context: format!(" in the pax header of `{name}`").into(),
        source,
    };
    let Some(exts) = entry.pax_extensions().map_err(read_error)? else {
        return Ok(Pax::default());
    };
    let mut records = Vec::new();
    for ext in exts {
        let ext = ext.map_err(read_error)?;
        if let Ok(key) = ext.key() {
            records.push((key.to_owned(), ext.value_bytes().to_vec()));
        }
    }
    let sparse = sparse::from_pax(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(|e| UnpackError::Sparse {
            entry: name.into(),
            reason: e.0.into(),
        })?;
    let mut xattrs = Vec::new();
    for (key, value) in &records {
        let xattr = if let Some(n) = key.strip_prefix("SCHILY.xattr.") {
            Some((n.as_bytes().to_vec(), value.clone()))
        } else if let Some(n) = key.strip_prefix("LIBARCHIVE.xattr.") {
            // libarchive percent-encodes the name and base64-encodes the value.
            use base64::Engine as _;
            let value = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trim_padding(value))
                .ok();
            value.map(|v| (percent_decode(n.as_bytes()), v))
        } else {
            None
        };
        if let Some((n, v)) = xattr
            && n.starts_with(b"user.")
            && !xattrs.iter().any(|(seen, _)| *seen == n)
        {
            xattrs.push((n, v));
        }
    }
    let mtime = records
        .iter()
        .rev()
        .find(|(k, _)| k == "mtime")
        .and_then(|(_, v)| pax_time(v));
    Ok(Pax {
        sparse,
        xattrs,
        mtime,
    })
}

/// A pax time record: decimal seconds since the epoch, maybe negative, maybe with a fraction
/// (kept to the nanosecond), read as GNU tar reads it: the number at its start counts, whatever
/// follows it (`999xxx` is 999). `None` when it does not start with one.
fn pax_time(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?.trim_start();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits_of = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let whole = &text[..digits_of(text)];
    if whole.is_empty() {
        return None;
    }
    let rest = &text[whole.len()..];
    let fraction = rest
        .strip_prefix('.')
        .map(|f| &f[..digits_of(f)])
        .unwrap_or("");
    let secs: u64 = whole.parse().ok()?;
    let mut digits: String = fraction.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().ok()?;
    let offset = Duration::new(secs, nanos);
    if negative {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    }
}

/// A base64 value without its trailing whitespace and `=` padding.
fn trim_padding(v: &[u8]) -> &[u8] {
    let v = v.trim_ascii_end();
    let end = v.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    &v[..end]
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).and_then(|b| hex(*b)),
                s.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}
