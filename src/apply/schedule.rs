//! Pours the kegs of a plan several at once (up to `--jobs`), a keg only after the kegs it
//! depends on, sharing one client (one connection pool, one token per repository).

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, PoisonError};

use crate::cellar::Cellar;
use crate::plan::Move;
use crate::pour::{PourError, Poured, Pourer};
use crate::report::{Event, Reporter};

/// What became of one move's pour.
pub enum Pour {
    Done(Poured),
    Failed(PourError),
    /// Not attempted: a dependency in the same plan failed first.
    Skipped {
        dependency: String,
    },
}

/// Where each move of [`pour_all`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Poured,
    Failed,
}

/// Pours `moves`; a move starts once the moves it depends on are poured, so a dependency that
/// fails stops its dependents before they download anything. One result per move, in order.
/// Long: the board of moves, its condition variable and the workers that wait on it share one
/// thread scope; the rule for the next move and a worker's loop are closures over them.
pub fn pour_all(
    cellar: &Cellar,
    pourer: &Pourer,
    reporter: &dyn Reporter,
    jobs: usize,
    moves: &[&Move],
) -> Vec<Pour> {
    if moves.is_empty() {
        return Vec::new();
    }
    let index: BTreeMap<&str, usize> = moves
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name(), i))
        .collect();
    let deps: Vec<Vec<usize>> = moves
        .iter()
        .map(|m| {
            m.deps
                .keys()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let board = Mutex::new(vec![State::Waiting; moves.len()]);
    let changed = Condvar::new();
    let pour_one = |m: &Move| {
        let (formula, version) = (&m.step.formula, &m.step.version);
        let spec = &formula.versions[version];
        let repository = spec.repository.to_string();
        reporter.event(Event::Fetching {
            name: &formula.name,
            version,
            repository: &repository,
            tag: &spec.tag.0,
        });
        // A reinstall (the version in use, poured again) is made from the blobs, never from
        // the unpacked store, so it mends a keg whatever happened to the store.
        let fresh = m.from.as_ref() == Some(version);
        match pourer.pour(
            cellar,
            formula,
            version,
            m.step.on_request,
            m.deps.clone(),
            fresh,
        ) {
            Ok(p) => Pour::Done(p),
            Err(e) => Pour::Failed(e),
        }
    };
    // The next move to run: waiting, with every dependency poured (or one failed: then it is
    // skipped). `None` when nothing is ready yet.
    let ready = |states: &[State]| {
        (0..moves.len()).find_map(|i| {
            if states[i] != State::Waiting {
                return None;
            }
            if let Some(&d) = deps[i].iter().find(|&&d| states[d] == State::Failed) {
                return Some((i, Some(d)));
            }
            deps[i]
                .iter()
                .all(|&d| states[d] == State::Poured)
                .then_some((i, None))
        })
    };
    let worker = || {
        let mut done = Vec::new();
        let mut states = board.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let Some((i, failed_dep)) = ready(&states) else {
                if !states.contains(&State::Waiting) {
                    return done;
                }
                states = changed.wait(states).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            states[i] = State::Running;
            drop(states);
            let result = match failed_dep {
                Some(d) => Pour::Skipped {
                    dependency: format!(
                        "{} {}",
                        moves[d].name(),
                        crate::version::Shown(&moves[d].step.version)
                    ),
                },
                None => {
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pour_one(moves[i])
                    })) {
                        Ok(result) => result,
                        Err(panic) => {
                            // Let the other workers finish (and skip its dependents) first.
                            let mut states = board.lock().unwrap_or_else(PoisonError::into_inner);
                            states[i] = State::Failed;
                            changed.notify_all();
                            drop(states);
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
            };
            states = board.lock().unwrap_or_else(PoisonError::into_inner);
            states[i] = match result {
                Pour::Done(_) => State::Poured,
                _ => State::Failed,
            };
            done.push((i, result));
            changed.notify_all();
        }
    };
    let workers = jobs.clamp(1, moves.len());
    let mut results: Vec<(usize, Pour)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(worker)).collect();
        let mut all = Vec::with_capacity(moves.len());
        for handle in handles {
            match handle.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}
