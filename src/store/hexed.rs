//! Owns the hex form of paths in the store's own files (tree manifests, sums, marked files):
//! encoded and decoded through a table, a byte at a time, with no allocation of their own — a
//! warm install decodes some 120,000 paths and encodes 66,000 (the `hex` crate's decode, a
//! character at a time through a match, was the largest part of the time spent after the tree
//! was linked).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Each hex digit's value, `0xff` for a byte that is not one (upper case is read too).
const VALUES: [u8; 256] = {
    let mut values = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        values[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        values[b'a' as usize + i] = 10 + i as u8;
        values[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    values
};

/// `bytes` in lower-case hex, appended to `out`.
pub fn push(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// The bytes `hexed` encodes, into `into` (its contents replaced); `None` for an odd length or
/// a byte that is not a hex digit.
pub fn decode(hexed: &str, into: &mut Vec<u8>) -> Option<()> {
    into.clear();
    let pairs = hexed.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    into.reserve(hexed.len() / 2);
    for pair in pairs {
        let (high, low) = (VALUES[usize::from(pair[0])], VALUES[usize::from(pair[1])]);
        if (high | low) & 0xf0 != 0 {
            return None;
        }
        into.push(high << 4 | low);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_goes_to_hex_and_back_as_the_hex_crate_has_it() {
        let all: Vec<u8> = (0..=255).collect();
        let mut text = String::from("kept ");
        push(&mut text, &all);
        assert_eq!(text, format!("kept {}", hex::encode(&all)));
        let mut back = vec![9, 9];
        decode(&text["kept ".len()..], &mut back).unwrap();
        assert_eq!(back, all);
        decode(&hex::encode_upper(&all), &mut back).unwrap();
        assert_eq!(back, all);
        for bad in ["a", "abc", "0g", "g0", " 1", "zz", "é0"] {
            assert_eq!(decode(bad, &mut back), None, "{bad:?}");
        }
        decode("", &mut back).unwrap();
        assert!(back.is_empty());
    }
}
