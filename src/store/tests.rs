//! Tests of the cache: sweeps, partial downloads resumed, refused and dropped.

use std::io::{self, Read};

use super::*;
use download::FAIL_WRITE_AT;

#[test]
fn temporary_files_of_dead_runs_are_swept_and_live_ones_kept() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let tmp = root.path().join("v1/tmp");
    // A dead run's download: nobody holds its lock.
    std::fs::write(tmp.join(".tmpDEAD"), b"partial").unwrap();
    // A live run's: its lock is held.
    let live = store.temp_file().unwrap();
    let before = store.temporary_files().len();
    assert_eq!(before, 2);

    let other = Store::open(root.path()).unwrap();
    assert_eq!(
        other.sweep(true).len(),
        1,
        "a dry run lists the dead run's file"
    );
    assert!(tmp.join(".tmpDEAD").exists(), "a dry run removed it");
    let swept = other.sweep(false);
    assert_eq!(swept, [(tmp.join(".tmpDEAD"), 7)]);
    assert!(!tmp.join(".tmpDEAD").exists(), "a dead run's file stayed");
    assert!(live.path().exists(), "a live run's file was removed");
    assert!(other.sweep(false).is_empty());
    // The live run dies: its file stays, its lock goes.
    let (file, _path) = live.keep().unwrap();
    drop(file);
    assert_eq!(other.sweep(false).len(), 1);
    assert!(other.temporary_files().is_empty());
}

/// `len` bytes that differ from position to position.
fn blob_bytes(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect()
}

/// A stream of `bytes`, then (when `fail`) a connection reset instead of the end.
fn stream(bytes: Vec<u8>, fail: bool) -> Result<BlobStream, Unopened<io::Error>> {
    struct Breaking(io::Cursor<Vec<u8>>, bool);
    impl Read for Breaking {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 if self.1 => Err(io::ErrorKind::ConnectionReset.into()),
                n => Ok(n),
            }
        }
    }
    Ok(BlobStream {
        url: "http://registry.test/blob".into(),
        reader: Box::new(Breaking(io::Cursor::new(bytes), fail)),
    })
}

/// Reads the blob through `store` with `open`, returning what was read and the verdict.
fn read_blob(
    store: &Store,
    digest: &Digest,
    size: usize,
    open: impl FnMut(u64) -> Result<BlobStream, Unopened<io::Error>>,
) -> (Vec<u8>, Result<(), StoreError>) {
    let mut reader = store.reader(digest, size as u64, open).unwrap();
    let mut out = Vec::new();
    let _ = reader.read_to_end(&mut out);
    (out, reader.finish())
}

#[test]
fn a_download_that_breaks_off_keeps_its_partial_and_the_next_one_resumes_from_it() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(300_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);
    assert_eq!(
        partial,
        root.path()
            .join(format!("v1/tmp/sha256-{}.partial", digest.hex()))
    );

    // The first run gets 100 000 bytes, then the connection breaks for good.
    let first = bytes[..100_000].to_vec();
    let (_, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        assert_eq!(offset, 0);
        stream(first.clone(), true)
    });
    assert!(matches!(verdict, Err(StoreError::Io { .. })), "{verdict:?}");
    assert!(
        store.cached(&digest).is_none(),
        "an unverified blob was cached"
    );
    assert_eq!(std::fs::read(&partial).unwrap(), &bytes[..100_000]);
    // The start-of-run sweep keeps it (nobody holds its lock, but it is resumable).
    assert!(store.sweep_keeping_partials().is_empty());

    // The next one asks only for the rest, and reads the whole blob, kept bytes first.
    let mut asked = None;
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        asked = Some(offset);
        stream(bytes[offset as usize..].to_vec(), false)
    });
    verdict.unwrap();
    assert_eq!(asked, Some(100_000));
    assert!(out == bytes, "the reader did not hand out the whole blob");
    assert_eq!(
        std::fs::read(store.cached(&digest).unwrap()).unwrap(),
        bytes
    );
    assert!(
        !partial.exists(),
        "the partial stayed after joining the cache"
    );
    assert!(store.temporary_files().is_empty());
}

#[test]
fn a_partial_that_turns_out_corrupt_is_deleted_and_never_cached() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(50_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);
    let mut bad = bytes[..20_000].to_vec();
    bad[1234] ^= 1;
    std::fs::write(&partial, &bad).unwrap();

    let (_, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        stream(bytes[offset as usize..].to_vec(), false)
    });
    match verdict {
        Err(StoreError::Mismatch { from, .. }) => {
            assert!(from.contains("20000 bytes kept"), "{from}")
        }
        other => panic!("{other:?}"),
    }
    assert!(store.cached(&digest).is_none());
    assert!(!partial.exists(), "a corrupt partial was kept");

    // The next try starts from zero.
    let (_, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        assert_eq!(offset, 0);
        stream(bytes.clone(), false)
    });
    verdict.unwrap();
    assert!(store.cached(&digest).is_some());
}

#[test]
fn a_partial_never_grows_past_the_blob_and_one_too_long_starts_over() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(10_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);

    // Longer than the blob: it cannot be a prefix of it.
    std::fs::write(&partial, blob_bytes(10_001)).unwrap();
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        assert_eq!(offset, 0);
        stream(bytes.clone(), false)
    });
    verdict.unwrap();
    assert!(out == bytes);

    // A stream longer than the descriptor: the partial is capped at the size (the extra
    // byte that proves the stream too long never reaches it), then deleted.
    let other = blob_bytes(5_000);
    let digest = Digest::of_bytes(&other);
    let partial = store.partial_path(&digest);
    let mut reader = store
        .reader(&digest, other.len() as u64, |_| {
            let mut longer = other.clone();
            longer.extend_from_slice(b"more");
            stream(longer, true)
        })
        .unwrap();
    io::copy(&mut reader, &mut io::sink()).unwrap();
    assert!(matches!(reader.finish(), Err(StoreError::Size { .. })));
    assert!(!partial.exists());
    assert!(store.cached(&digest).is_none());
}

#[test]
fn a_partial_holding_the_whole_blob_needs_no_network() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(7_000);
    let digest = Digest::of_bytes(&bytes);
    std::fs::write(store.partial_path(&digest), &bytes).unwrap();
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |_| {
        panic!("asked the network for a blob already on disk")
    });
    verdict.unwrap();
    assert!(out == bytes);
    assert!(store.cached(&digest).is_some());
    assert!(store.temporary_files().is_empty());
}

#[test]
fn a_partial_another_run_holds_is_left_alone_and_this_run_downloads_on_its_own() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(40_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);
    std::fs::write(&partial, &bytes[..1000]).unwrap();
    let owner = File::open(&partial).unwrap();
    owner.lock().unwrap();

    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        assert_eq!(offset, 0, "resumed from a partial another run holds");
        stream(bytes.clone(), false)
    });
    verdict.unwrap();
    assert!(out == bytes);
    assert_eq!(std::fs::read(&partial).unwrap(), &bytes[..1000]);
    // Neither sweep removes a partial whose run is alive; once it is dead, cleanup's does.
    assert!(store.sweep_keeping_partials().is_empty());
    assert!(store.sweep(false).is_empty());
    drop(owner);
    assert!(store.sweep_keeping_partials().is_empty());
    assert_eq!(store.sweep(false), [(partial.clone(), 1000)]);
}

#[test]
fn a_download_that_fails_to_start_leaves_no_empty_partial_and_keeps_a_started_one() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(3_000);
    let digest = Digest::of_bytes(&bytes);
    let refused = |_| {
        Err(Unopened::Failed(io::Error::other(
            "503 Service Unavailable",
        )))
    };
    assert!(store.reader(&digest, 3_000, refused).is_err());
    assert!(store.temporary_files().is_empty());
    std::fs::write(store.partial_path(&digest), &bytes[..10]).unwrap();
    assert!(store.reader(&digest, 3_000, refused).is_err());
    assert_eq!(
        std::fs::read(store.partial_path(&digest)).unwrap(),
        &bytes[..10]
    );
    // Once the blob is cached some other way, a partial of it is dropped when it is read.
    store.put_verified(&digest, &bytes).unwrap();
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |_| unreachable!());
    verdict.unwrap();
    assert!(out == bytes);
    assert!(store.temporary_files().is_empty());
}

#[test]
fn a_ranged_answer_the_registry_botches_drops_the_partial_and_fetches_the_blob_from_0() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(50_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);
    // The kept bytes are even wrong: fetched whole, the blob verifies all the same.
    let mut kept = bytes[..20_000].to_vec();
    kept[10] ^= 1;
    std::fs::write(&partial, &kept).unwrap();

    let mut asked = Vec::new();
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        asked.push(offset);
        if offset > 0 {
            return Err(Unopened::RangeRefused(io::Error::other(
                "the server sent Content-Range `bytes 0-49999/50000`",
            )));
        }
        stream(bytes.clone(), false)
    });
    verdict.unwrap();
    assert_eq!(asked, [20_000, 0]);
    assert!(out == bytes, "the reader did not hand out the blob from 0");
    assert!(store.cached(&digest).is_some());
    assert!(!partial.exists());

    // When the try from 0 fails too, no partial is left to be asked for by range again.
    let other = blob_bytes(30_000);
    let digest = Digest::of_bytes(&other);
    let partial = store.partial_path(&digest);
    std::fs::write(&partial, &other[..5_000]).unwrap();
    let mut asked = Vec::new();
    let opened = store.reader(&digest, other.len() as u64, |offset| {
        asked.push(offset);
        if offset > 0 {
            return Err(Unopened::RangeRefused(io::Error::other(
                "the server answered 416",
            )));
        }
        Err(Unopened::Failed(io::Error::other(
            "503 Service Unavailable",
        )))
    });
    assert!(matches!(opened, Err(ReaderError::Source(_))));
    assert_eq!(asked, [5_000, 0]);
    assert!(
        !partial.exists(),
        "a partial whose range was refused was kept"
    );
}

#[test]
fn a_write_that_fails_spoils_the_partial_which_is_deleted_not_kept_nor_published() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(1_000_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);

    // The disk fills once 256 KiB are on it (the write after that fails, later ones would
    // not), then the connection breaks for good.
    FAIL_WRITE_AT.set(Some(256 * 1024));
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        assert_eq!(offset, 0);
        stream(bytes[..700_000].to_vec(), true)
    });
    assert_eq!(FAIL_WRITE_AT.get(), None, "no write failed");
    assert!(!partial.exists(), "a partial with a hole in it was kept");
    match verdict {
        Err(StoreError::Io { path, source }) => {
            assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{source}");
            assert_eq!(path, partial);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        out.len() < 700_000,
        "bytes were handed out after the failed write"
    );
    assert!(bytes.starts_with(&out));
    assert!(store.cached(&digest).is_none());
    assert!(store.temporary_files().is_empty());

    // The next try starts from 0.
    let (out, verdict) = read_blob(&store, &digest, bytes.len(), |offset| {
        assert_eq!(offset, 0, "resumed from a spoilt partial");
        stream(bytes.clone(), false)
    });
    verdict.unwrap();
    assert!(out == bytes);
    assert!(store.cached(&digest).is_some());
}

#[test]
fn an_interruption_would_remove_a_temporary_download_but_never_a_partial() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes(4_000);
    let digest = Digest::of_bytes(&bytes);
    let partial = store.partial_path(&digest);
    let open = |_| stream(bytes.clone(), false);

    let reader = store.reader(&digest, bytes.len() as u64, open).unwrap();
    assert!(partial.exists());
    assert!(
        !crate::interrupt::guarded().contains(&partial),
        "Ctrl-C would delete the resumable partial"
    );
    drop(reader);

    // Held by another run: this one's own temporary file is what Ctrl-C removes.
    let owner = File::open(&partial).unwrap();
    owner.lock().unwrap();
    let reader = store.reader(&digest, bytes.len() as u64, open).unwrap();
    let temporary: Vec<_> = store
        .temporary_files()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| *p != partial)
        .collect();
    assert_eq!(temporary.len(), 1);
    assert!(crate::interrupt::guarded().contains(&temporary[0]));
    drop(reader);
    assert!(!crate::interrupt::guarded().contains(&temporary[0]));
}

#[test]
fn partial_names_are_digests() {
    let digest = Digest::of_bytes(b"x");
    let name = format!("/c/v1/tmp/sha256-{}.partial", digest.hex());
    assert_eq!(partial_digest(Path::new(&name)), Some(digest));
    for other in [
        "/c/v1/tmp/.tmpAbC123",
        "/c/v1/tmp/stale.partial",
        "/c/v1/tmp/sha256-abc.partial",
        "/c/v1/tmp/md5-d41d8cd98f00b204e9800998ecf8427e.partial",
    ] {
        assert_eq!(partial_digest(Path::new(other)), None, "{other}");
        assert!(!Store::is_partial(Path::new(other)));
    }
    assert!(Store::is_partial(Path::new(&name)));
}

#[test]
fn signatures_kept_for_a_manifest_stay_while_it_is_referenced_and_go_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let subject = Digest::of_bytes(b"a manifest");
    let bundle = b"{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\"}".to_vec();
    store
        .put_signatures(&subject, std::slice::from_ref(&bundle))
        .unwrap();
    assert_eq!(store.signatures(&subject), Some(vec![bundle.clone()]));
    let referenced: std::collections::HashSet<Digest> = [subject.clone()].into();
    assert_eq!(
        store.keep_signatures(&referenced, false),
        vec![Digest::of_bytes(&bundle)]
    );
    assert!(store.keep_signatures(&Default::default(), false).is_empty());
    assert_eq!(
        store.signatures(&subject),
        None,
        "the list outlived its manifest"
    );
}
