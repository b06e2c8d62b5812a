//! Owns spreading a walk of a tree over a few threads: each directory is one unit of work that
//! may find more, handed to whichever thread is free, so a tree whose size sits in one subtree
//! keeps every thread busy (a fixed share per thread left one idle for half of a big keg's
//! listing).

use std::sync::{Condvar, Mutex};

/// Runs `work` on `first` and on everything the work finds (`work` pushes what it finds onto
/// the `Vec` it is given), on up to `threads` threads, each with its own state made by `init`.
/// Returns the threads' states once no work is left and none is being done. The first error
/// stops every thread (work already taken finishes) and is returned; a thread that panics
/// panics the caller.
pub fn spread<D, S, E>(
    first: Vec<D>,
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, D, &mut Vec<D>) -> Result<(), E> + Sync,
) -> Result<Vec<S>, E>
where
    D: Send,
    S: Send,
    E: Send,
{
    let queue = Queue {
        todo: Mutex::new((first, 0)),
        more: Condvar::new(),
        failed: Mutex::new(None),
    };
    let run = || {
        let mut state = init();
        let mut found = Vec::new();
        while let Some(unit) = queue.take() {
            let result = work(&mut state, unit, &mut found);
            queue.done(&mut found, result);
        }
        state
    };
    let states = if threads <= 1 {
        vec![run()]
    } else {
        std::thread::scope(|scope| {
            let running: Vec<_> = (0..threads).map(|_| scope.spawn(run)).collect();
            (running.into_iter())
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    };
    let failed = (queue.failed.into_inner()).unwrap_or_else(std::sync::PoisonError::into_inner);
    match failed {
        Some(error) => Err(error),
        None => Ok(states),
    }
}

/// `work` on each of `shares`, one thread each (on this thread when there is one share); the
/// results in the order of `shares`. A thread that panics panics the caller.
pub fn on_threads<S: Send, T: Send>(shares: Vec<S>, work: impl Fn(S) -> T + Sync) -> Vec<T> {
    if shares.len() <= 1 {
        return shares.into_iter().map(work).collect();
    }
    let work = &work;
    std::thread::scope(|scope| {
        let running: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || work(share)))
            .collect();
        running
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The work not yet taken, how many units are being done, and the first error.
struct Queue<D, E> {
    todo: Mutex<(Vec<D>, usize)>,
    more: Condvar,
    failed: Mutex<Option<E>>,
}

impl<D, E> Queue<D, E> {
    /// The next unit, waiting while others may still find more; `None` once none is left and
    /// none is being done.
    fn take(&self) -> Option<D> {
        let mut todo = self.todo.lock().ok()?;
        loop {
            if let Some(unit) = todo.0.pop() {
                todo.1 += 1;
                return Some(unit);
            }
            if todo.1 == 0 {
                self.more.notify_all();
                return None;
            }
            todo = self.more.wait(todo).ok()?;
        }
    }

    /// A unit done: what it found joins the queue, or, when it failed, nothing more is taken.
    fn done(&self, found: &mut Vec<D>, result: Result<(), E>) {
        if let Ok(mut todo) = self.todo.lock() {
            todo.1 -= 1;
            let stopped = self.failed.lock().map_or(true, |f| f.is_some());
            match result {
                Ok(()) if !stopped => todo.0.append(found),
                Ok(()) => found.clear(),
                Err(error) => {
                    todo.0.clear();
                    found.clear();
                    if let Ok(mut failed) = self.failed.lock() {
                        failed.get_or_insert(error);
                    }
                }
            }
        }
        self.more.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every unit is done once, whichever thread takes it, and an error stops the rest.
    #[test]
    fn every_unit_found_is_done_once_and_the_first_error_stops_the_walk() {
        // A "tree" of numbers: n finds 2n+1 and 2n+2 below 2,000.
        let done = spread(
            vec![0u32],
            3,
            Vec::new,
            |seen: &mut Vec<u32>, n, found| -> Result<(), ()> {
                seen.push(n);
                found.extend([2 * n + 1, 2 * n + 2].into_iter().filter(|c| *c < 2000));
                Ok(())
            },
        )
        .unwrap();
        let mut all: Vec<u32> = done.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..2000).collect::<Vec<_>>());

        let failed = spread(
            vec![0u32],
            2,
            || (),
            |_, n, found| {
                if n == 40 {
                    return Err(n);
                }
                found.extend([2 * n + 1, 2 * n + 2].into_iter().filter(|c| *c < 2000));
                Ok(())
            },
        );
        assert_eq!(failed.err(), Some(40));
    }
}
