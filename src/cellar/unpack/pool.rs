//! The writers: file contents handed off by the unpack thread and written by a small pool, so
//! file creation is spread over the cores beside gunzip and hashing.
//!
//! Only the bytes move. The unpack thread still decides everything else in one place — every
//! name is checked, every file created `O_EXCL|O_NOFOLLOW` on a descriptor opened beneath the
//! root, every limit counted, links, hard links, whiteouts and directories made in archive
//! order — and hands a writer the open descriptor with chunks to `pwrite` at their offsets. A
//! file's mtime is set, and the descriptor closed, when its last chunk is written. A path that a
//! later entry replaces or a whiteout removes is unlinked by the unpack thread while a writer may
//! still fill the old inode, which is then simply freed: the tree ends as a single thread would
//! leave it. [`Writers::finish`] waits for every chunk before the layer counts as unpacked.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use super::{Op, UnpackError, io_error};

/// Bytes per chunk handed to a writer.
pub(super) const CHUNK: usize = 256 * 1024;

/// Writers for this machine: the cores left once the three threads of a layer's pipeline
/// (fetch and hash, inflate, unpack) have one each, so at most 4 and none on two cores, where
/// bench/run measured the pool slower (3.0 s against 2.5 s for big: it moved work onto cores
/// that were already full). `asked` (`PKG_UNPACK_WRITERS`, through `Limits`) overrides (0 = the
/// unpack thread alone).
pub(super) fn count(asked: Option<usize>) -> usize {
    if let Some(n) = asked {
        return n.min(16);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(2).min(4)
}

/// A file being written: closed (and its mtime set) once the last chunk holding it is done.
pub(super) struct Pending {
    file: File,
    mtime: Option<SystemTime>,
    entry: Box<str>,
    path: PathBuf,
}

impl Pending {
    pub(super) fn new(file: File, mtime: Option<SystemTime>, entry: &str, path: PathBuf) -> Self {
        Pending {
            file,
            mtime,
            entry: entry.into(),
            path,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(t) = self.mtime {
            let _ = self.file.set_modified(t);
        }
    }
}

struct Job {
    file: Arc<Pending>,
    offset: u64,
    data: Vec<u8>,
}

/// What the writers share with the unpack thread.
#[derive(Default)]
struct Shared {
    /// The first write that failed.
    error: Mutex<Option<UnpackError>>,
    failed: AtomicBool,
    /// Chunks sent and not yet written.
    in_flight: Mutex<usize>,
    idle: Condvar,
}

/// Starts `n` writers in `scope`.
pub(super) fn start<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    n: usize,
) -> Writers<'scope> {
    let (jobs, rx) = sync_channel::<Job>(n * 4);
    let (empty_tx, empty) = sync_channel::<Vec<u8>>(n * 4 + 4);
    let rx = Arc::new(Mutex::new(rx));
    let shared = Arc::new(Shared::default());
    let threads = (0..n)
        .map(|_| {
            let (rx, empty_tx, shared) = (rx.clone(), empty_tx.clone(), shared.clone());
            scope.spawn(move || work(&rx, &empty_tx, &shared))
        })
        .collect();
    Writers {
        jobs: Some(jobs),
        empty,
        shared,
        threads,
    }
}

/// The unpack thread's end of the pool, running in a thread scope.
pub(super) struct Writers<'scope> {
    jobs: Option<SyncSender<Job>>,
    /// Emptied buffers coming back, to be filled again.
    empty: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    threads: Vec<std::thread::ScopedJoinHandle<'scope, ()>>,
}

impl Writers<'_> {
    /// A buffer of `len` bytes (at most [`CHUNK`]) to read the next chunk into: a small file
    /// gets its own, a large one a recycled chunk.
    pub(super) fn buffer(&self, len: u64) -> Vec<u8> {
        let len = len.min(CHUNK as u64) as usize;
        if len < CHUNK / 4 {
            return vec![0; len];
        }
        let mut buf = self.empty.try_recv().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    /// Hands `data` to be written at `offset` of `file`; `false` once a write failed (the
    /// unpack stops, and [`Writers::finish`] returns that error).
    pub(super) fn write(&self, file: &Arc<Pending>, offset: u64, data: Vec<u8>) -> bool {
        if self.shared.failed.load(Ordering::Relaxed) {
            return false;
        }
        let Some(jobs) = &self.jobs else {
            return false;
        };
        if let Ok(mut n) = self.shared.in_flight.lock() {
            *n += 1;
        }
        let job = Job {
            file: file.clone(),
            offset,
            data,
        };
        if jobs.send(job).is_err() {
            self.done_one();
            return false;
        }
        true
    }

    fn done_one(&self) {
        done_one(&self.shared);
    }

    /// Waits until every chunk handed over is written (before a file is read back: the copy
    /// a hard link becomes where the filesystem has none).
    pub(super) fn wait_idle(&self) {
        let Ok(mut n) = self.shared.in_flight.lock() else {
            return;
        };
        while *n > 0 {
            n = match self.shared.idle.wait(n) {
                Ok(n) => n,
                Err(_) => return,
            };
        }
    }

    /// The first write error, if one happened yet.
    pub(super) fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Waits for every chunk, stops the writers and returns the first write error.
    pub(super) fn finish(mut self) -> Result<(), UnpackError> {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        match self.shared.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn done_one(shared: &Shared) {
    if let Ok(mut n) = shared.in_flight.lock() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            shared.idle.notify_all();
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>, empty: &SyncSender<Vec<u8>>, shared: &Shared) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        if !shared.failed.load(Ordering::Relaxed)
            && let Err(e) = job.file.file.write_all_at(&job.data, job.offset)
        {
            let err = io_error(&job.file.entry, Op::Write, &job.file.path, e);
            if let Ok(mut slot) = shared.error.lock() {
                slot.get_or_insert(err);
            }
            shared.failed.store(true, Ordering::Relaxed);
        }
        let Job { file, data, .. } = job;
        // The last chunk of a file closes it here, on the writer.
        drop(file);
        if data.capacity() >= CHUNK {
            let _ = empty.try_send(data);
        }
        done_one(shared);
    }
}
