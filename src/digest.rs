//! Content digests (`sha256:<hex>`, `sha512:<hex>`): validation before a digest touches a URL or
//! a path, and a hashing reader.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// The digest algorithms pkg verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest. The text form is canonical (`sha256:` + 64 or `sha512:` + 128
/// lowercase hex digits), so it is safe to use in URLs and file names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The canonical text, `ALGORITHM:HEX` (kept as one small allocation: digests travel in
    /// many error values).
    text: Box<str>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest `{value}`: {reason}")]
    Invalid { value: String, reason: &'static str },
}

impl Digest {
    /// The sha256 digest of a byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::of_bytes_with(Algorithm::Sha256, bytes)
    }

    pub fn of_bytes_with(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let hex = match algorithm {
            Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
        };
        Digest::from_parts(algorithm, &hex)
    }

    fn from_parts(algorithm: Algorithm, hex: &str) -> Digest {
        Digest {
            text: format!("{}:{hex}", algorithm.name()).into_boxed_str(),
        }
    }

    /// Do `bytes` hash to this digest (with its own algorithm)?
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Digest::of_bytes_with(self.kind(), bytes) == *self
    }

    /// The lowercase hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        self.text.split_once(':').map_or("", |(_, hex)| hex)
    }

    pub fn algorithm(&self) -> &'static str {
        self.kind().name()
    }

    pub fn kind(&self) -> Algorithm {
        if self.text.starts_with("sha512:") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| DigestError::Invalid {
            value: value.chars().take(140).collect(),
            reason,
        };
        let (algo, hex) = value
            .split_once(':')
            .ok_or_else(|| invalid("expected `sha256:<64 hex digits>`"))?;
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(invalid(
                    "unknown digest algorithm; pkg verifies sha256 and sha512",
                ));
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(match algorithm {
                Algorithm::Sha256 => "a sha256 digest has exactly 64 hex digits",
                Algorithm::Sha512 => "a sha512 digest has exactly 128 hex digits",
            }));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                "a digest uses only the lowercase hex digits 0-9 and a-f",
            ));
        }
        Ok(Digest::from_parts(algorithm, hex))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes and counts everything read through it, and never reads past `limit`
/// bytes (the size a descriptor promised), so a server cannot feed us more than it announced.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    limit: u64,
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Box<Sha512>),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Box::default()),
        }
    }
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }
    fn finish(&mut self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_parts(
                Algorithm::Sha256,
                &hex::encode(std::mem::take(h).finalize()),
            ),
            Hasher::Sha512(h) => Digest::from_parts(
                Algorithm::Sha512,
                &hex::encode(std::mem::take(&mut **h).finalize()),
            ),
        }
    }
}

impl<R: Read> HashingReader<R> {
    /// Hashes with sha256.
    pub fn new(inner: R, limit: u64) -> Self {
        HashingReader::with(Algorithm::Sha256, inner, limit)
    }

    /// Hashes with `algorithm` (that of the digest the bytes must match).
    pub fn with(algorithm: Algorithm, inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
            limit,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads whatever is left up to the limit (a tar reader stops at the end-of-archive
    /// marker, before the padding), then returns the digest and the number of bytes read.
    pub fn finish(&mut self) -> io::Result<(Digest, u64)> {
        io::copy(self, &mut io::sink())?;
        // One byte more than promised means the stream is longer than its descriptor says.
        let mut probe = [0u8; 1];
        let extra = loop {
            match self.inner.read(&mut probe) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if extra > 0 {
            self.count += 1;
        }
        Ok((self.hasher.finish(), self.count))
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.count);
        if room == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_canonical_form() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::of_bytes(b""), d);
    }

    #[test]
    fn rejects_digests_that_could_escape_a_path_or_url() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/../x",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn sha512_digests_are_parsed_and_verified() {
        let d = Digest::of_bytes_with(Algorithm::Sha512, b"abc");
        assert_eq!(d.hex().len(), 128);
        let parsed: Digest = d.to_string().parse().unwrap();
        assert_eq!(parsed, d);
        assert!(parsed.matches(b"abc"));
        assert!(!parsed.matches(b"abd"));
        let mut r = HashingReader::with(Algorithm::Sha512, &b"abc"[..], 3);
        assert_eq!(r.finish().unwrap(), (d, 3));
    }

    #[test]
    fn hashing_reader_stops_at_limit_and_detects_extra_bytes() {
        let data = b"hello world";
        let mut r = HashingReader::new(&data[..], 5);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        let (digest, count) = r.finish().unwrap();
        assert_eq!(count, 6, "the byte past the limit must be noticed");
        assert_eq!(digest, Digest::of_bytes(b"hello"));

        let (digest, count) = HashingReader::new(&data[..], 64).finish().unwrap();
        assert_eq!((digest, count), (Digest::of_bytes(data), 11));
    }
}
