//! One layer, three threads: the blob's bytes are fetched, hashed and teed into the cache on
//! one; gunzipped on another; and turned into files on the caller's. Each stage hands the next
//! 256 KiB chunks over a short bounded channel, so a slow stage holds the others back instead of
//! buffering the layer in memory, and hashing and gunzip hide behind the filesystem work (the
//! slowest stage sets the pace). See docs/performance.md for the measurements.
//!
//! Verification is unchanged by the threads: the fetch stage reads the blob to its end whatever
//! happens downstream and then [`BlobReader::finish`] checks size and digest; its verdict is
//! reported before any unpack error, exactly as a single thread would.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use crate::registry::manifest::Compression;
use crate::store::{BlobReader, StoreError};

/// Bytes per chunk handed between stages.
const CHUNK: usize = 256 * 1024;
/// Chunks waiting between two stages: 2 MiB, enough for either side to ride out the other
/// being descheduled for a few milliseconds (measured: 4 to 16 make no difference beyond noise).
const DEPTH: usize = 8;

type Chunk = io::Result<Vec<u8>>;

/// The two ends of one stage boundary: chunks flow down, emptied buffers flow back up to be
/// filled again (so no chunk is allocated and zeroed per 256 KiB).
fn channel() -> ((SyncSender<Chunk>, Receiver<Vec<u8>>), Chunks) {
    let (tx, rx) = sync_channel(DEPTH);
    let (empty_tx, empty_rx) = sync_channel(DEPTH + 2);
    (
        (tx, empty_rx),
        Chunks {
            rx,
            empty: empty_tx,
            current: Vec::new(),
            pos: 0,
            failed: false,
        },
    )
}

/// How one layer went: the fetch stage's verdict (size and digest) and the unpacker's result.
pub struct Outcome<T> {
    pub verified: Result<(), StoreError>,
    pub unpacked: T,
}

/// Streams `blob` (decompressed as `compression` says, once its first bytes show that
/// compression) into `unpack`, which runs on this thread. `progress` is told of every byte of
/// the blob read.
pub fn run<T>(
    blob: BlobReader,
    compression: Compression,
    progress: &mut (dyn FnMut(u64) + Send),
    unpack: impl FnOnce(&mut dyn Read) -> T,
) -> Outcome<T> {
    run_with(blob, Some(compression), progress, unpack)
}

/// Streams `blob` as it is into `place` (an ORAS file: no decompression, no magic to check).
pub fn place<T>(
    blob: BlobReader,
    progress: &mut (dyn FnMut(u64) + Send),
    place: impl FnOnce(&mut dyn Read) -> T,
) -> Outcome<T> {
    run_with(blob, None, progress, place)
}

/// `compression: None`: the bytes as they are, unchecked.
fn run_with<T>(
    blob: BlobReader,
    compression: Option<Compression>,
    progress: &mut (dyn FnMut(u64) + Send),
    unpack: impl FnOnce(&mut dyn Read) -> T,
) -> Outcome<T> {
    thread::scope(|s| {
        let (fetched_tx, fetched_rx) = channel();
        let fetch = s.spawn(move || {
            let mut blob = blob;
            pump(&mut blob, &fetched_tx, progress);
            drop(fetched_tx);
            // Reads whatever the stages downstream left (they may stop at the tar's end or at an
            // error), then checks size and digest and publishes the blob into the cache.
            blob.finish()
        });
        let compression = match compression {
            None => {
                let mut blob = fetched_rx;
                let unpacked = unpack(&mut blob);
                return Outcome {
                    verified: join(fetch),
                    unpacked,
                };
            }
            Some(c) => c,
        };
        let unpacked = if compression == Compression::None {
            let mut blob = fetched_rx;
            match check_magic(&mut blob, Compression::None) {
                Ok(()) => unpack(&mut blob),
                Err(e) => unpack(&mut Failed(Some(e))),
            }
        } else {
            let (tar_tx, tar_rx) = channel();
            let inflate = s.spawn(move || {
                let mut compressed = fetched_rx;
                if let Err(e) = check_magic(&mut compressed, compression) {
                    let _ = tar_tx.0.send(Err(e));
                    return;
                }
                match compression {
                    Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(compressed)
                    {
                        Ok(mut zst) => pump(&mut zst, &tar_tx, &mut |_| {}),
                        Err(e) => {
                            let _ = tar_tx.0.send(Err(e));
                        }
                    },
                    _ => {
                        let mut gz = flate2::bufread::MultiGzDecoder::new(compressed);
                        pump(&mut gz, &tar_tx, &mut |_| {});
                    }
                }
            });
            let unpacked = {
                // Dropped before the joins: a stage blocked on sending to it is released.
                let mut tar = tar_rx;
                unpack(&mut tar)
            };
            join(inflate);
            unpacked
        };
        Outcome {
            verified: join(fetch),
            unpacked,
        }
    })
}

/// Checks that the blob's first bytes are what its media type says: compressed streams start
/// with their magic, and a plain tar is not secretly compressed.
fn check_magic(blob: &mut Chunks, expected: Compression) -> io::Result<()> {
    let head = blob.fill_buf()?;
    let found = Compression::sniff(head);
    if found == expected || (expected != Compression::None && head.len() < expected.magic().len()) {
        return Ok(());
    }
    let shown: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let what = match found {
        Compression::None => "are not".to_owned(),
        other => format!("are {other}"),
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the layer's media type says {expected} but its bytes {what} (they start with {}); the publisher labelled the layer wrongly",
            shown.join(" ")
        ),
    ))
}

/// A reader that fails once with the error it holds, then ends.
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Reads `from` in chunks and sends them on until it ends, fails (the error is sent on, for the
/// next stage to report) or the next stage hangs up.
fn pump(
    from: &mut dyn Read,
    (to, empty): &(SyncSender<Chunk>, Receiver<Vec<u8>>),
    progress: &mut dyn FnMut(u64),
) {
    loop {
        let mut chunk = empty.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        let mut failed = None;
        while filled < CHUNK {
            match from.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        progress(filled as u64);
        let done = filled < CHUNK;
        if filled > 0 {
            chunk.truncate(filled);
            if to.send(Ok(chunk)).is_err() {
                return;
            }
        }
        if let Some(e) = failed {
            let _ = to.send(Err(e));
            return;
        }
        if done {
            return;
        }
    }
}

/// The receiving end of a stage: a reader over the chunks sent to it. A sender that is gone
/// without sending an error means the stream ended.
struct Chunks {
    rx: Receiver<Chunk>,
    /// Where emptied buffers go back to the sender (dropped when it has enough).
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    /// An error was received; it is returned once, then the stream stays ended.
    failed: bool,
}

impl BufRead for Chunks {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.current.len() && !self.failed {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let emptied = std::mem::replace(&mut self.current, chunk);
                    let _ = self.empty.try_send(emptied);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.current.len());
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(items: Vec<Chunk>) -> Chunks {
        let (tx, rx) = sync_channel(items.len() + 1);
        for item in items {
            tx.send(item).unwrap();
        }
        let (empty, _) = sync_channel(0);
        Chunks {
            rx,
            empty,
            current: Vec::new(),
            pos: 0,
            failed: false,
        }
    }

    #[test]
    fn chunks_read_across_boundaries_and_end_when_the_sender_is_gone() {
        let mut c = chunks_of(vec![
            Ok(b"hello ".to_vec()),
            Ok(Vec::new()),
            Ok(b"world".to_vec()),
        ]);
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        assert_eq!(c.read(&mut [0; 4]).unwrap(), 0);
    }

    #[test]
    fn an_error_from_upstream_reaches_the_reader_after_the_bytes_before_it() {
        let mut c = chunks_of(vec![
            Ok(b"abc".to_vec()),
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
            Ok(b"never".to_vec()),
        ]);
        let mut buf = [0; 8];
        assert_eq!(c.read(&mut buf).unwrap(), 3);
        let err = c.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(c.read(&mut buf).unwrap(), 0);
    }

    use crate::digest::Digest;
    use crate::store::{BlobStream, Store, Unopened};

    /// A gzip of `len` bytes that compress poorly, so the stream spans many chunks.
    fn gzipped(len: usize) -> (Vec<u8>, Vec<u8>) {
        let plain: Vec<u8> = (0..len as u64)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        (plain, gz.finish().unwrap())
    }

    fn blob(store: &Store, digest: &Digest, bytes: &[u8]) -> BlobReader {
        let body = bytes.to_vec();
        store
            .reader(digest, bytes.len() as u64, |_| {
                Ok::<_, Unopened<io::Error>>(BlobStream {
                    url: "http://registry.test/blob".into(),
                    reader: Box::new(io::Cursor::new(body.clone())),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_layer_flows_through_all_stages_and_joins_the_cache_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (plain, gz) = gzipped(3 * CHUNK + 123);
        let digest = Digest::of_bytes(&gz);
        let mut seen = 0;
        let out = run(
            blob(&store, &digest, &gz),
            Compression::Gzip,
            &mut |n| seen += n,
            |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map(|_| v)
            },
        );
        out.verified.unwrap();
        assert!(out.unpacked.unwrap() == plain);
        assert_eq!(seen, gz.len() as u64);
        assert!(store.cached(&digest).is_some());
    }

    #[test]
    fn a_resumed_layer_feeds_the_bytes_kept_on_disk_to_gunzip_before_the_network_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (plain, gz) = gzipped(24 * CHUNK + 77);
        assert!(gz.len() > 3 * CHUNK / 2, "{}", gz.len());
        let digest = Digest::of_bytes(&gz);
        // An earlier run got more than a chunk, not on a chunk boundary.
        let kept = gz.len() * 3 / 5;
        std::fs::write(store.partial_path(&digest), &gz[..kept]).unwrap();
        let rest = gz[kept..].to_vec();
        let reader = store
            .reader(&digest, gz.len() as u64, |offset| {
                assert_eq!(offset, kept as u64);
                Ok::<_, Unopened<io::Error>>(BlobStream {
                    url: "http://registry.test/blob".into(),
                    reader: Box::new(io::Cursor::new(rest.clone())),
                })
            })
            .unwrap();
        let mut seen = 0;
        let out = run(reader, Compression::Gzip, &mut |n| seen += n, |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        });
        out.verified.unwrap();
        assert!(out.unpacked.unwrap() == plain, "gunzip saw another stream");
        assert_eq!(seen, gz.len() as u64);
        assert!(store.cached(&digest).is_some());
        assert!(!store.partial_path(&digest).exists());
    }

    #[test]
    fn a_consumer_that_stops_early_still_gets_the_blob_drained_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, gz) = gzipped(8 * CHUNK);
        let digest = Digest::of_bytes(&gz);
        let out = run(
            blob(&store, &digest, &gz),
            Compression::Gzip,
            &mut |_| {},
            |r| r.read(&mut [0; 10]),
        );
        out.verified.unwrap();
        assert_eq!(out.unpacked.unwrap(), 10);
        assert!(store.cached(&digest).is_some());
    }

    #[test]
    fn a_tampered_blob_is_reported_by_digest_and_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, gz) = gzipped(2 * CHUNK);
        let digest = Digest::of_bytes(&gz);
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        let out = run(
            blob(&store, &digest, &bad),
            Compression::Gzip,
            &mut |_| {},
            |r| io::copy(r, &mut io::sink()),
        );
        assert!(
            matches!(out.verified, Err(StoreError::Mismatch { .. })),
            "{:?}",
            out.verified.err()
        );
        assert!(store.cached(&digest).is_none());
        // Not gzip at all: gunzip fails downstream, the digest verdict still comes first.
        let junk = vec![b'x'; CHUNK + 5];
        let out = run(
            blob(&store, &digest, &junk),
            Compression::Gzip,
            &mut |_| {},
            |r| io::copy(r, &mut io::sink()),
        );
        assert!(out.unpacked.is_err());
        assert!(matches!(out.verified, Err(StoreError::Mismatch { .. })));
    }

    #[test]
    fn pump_stops_when_the_next_stage_hangs_up_and_forwards_errors() {
        // A reader longer than the channel can hold, with nobody reading: pump returns.
        let (tx, rx) = channel();
        drop(rx);
        let mut seen = 0;
        pump(&mut io::repeat(7).take(10 * CHUNK as u64), &tx, &mut |n| {
            seen += n
        });
        assert!(seen <= 2 * CHUNK as u64, "{seen}");

        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("boom"));
                }
                let n = self.0.min(buf.len());
                self.0 -= n;
                Ok(n)
            }
        }
        let (tx, rx) = sync_channel(8);
        let (_keep, empty) = sync_channel(1);
        pump(&mut Failing(CHUNK + 10), &(tx, empty), &mut |_| {});
        let got: Vec<Chunk> = rx.iter().collect();
        assert_eq!(
            got.len(),
            3,
            "a full chunk, the partial one, then the error"
        );
        assert_eq!(got[0].as_ref().unwrap().len(), CHUNK);
        assert_eq!(got[1].as_ref().unwrap().len(), 10);
        assert_eq!(got[2].as_ref().unwrap_err().to_string(), "boom");
    }
}
