//! Layers fetched ahead: while one layer of a keg streams and unpacks, the layers after it
//! download into the verified cache on helper threads, so an image of many layers costs about
//! its slowest layer on the network, not the sum of them. Layers still unpack one by one, in
//! order; each later one is read back from the cache. One [`Budget`] bounds the downloads
//! fetched ahead across every keg a run pours at once (`--jobs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use super::PourError;

/// Where each layer after the first stands, and which one a helper takes next.
pub struct Ahead {
    state: Mutex<State>,
    changed: Condvar,
    cancelled: AtomicBool,
    helpers: usize,
}

struct State {
    /// The next layer no helper has taken yet.
    next: usize,
    /// Per layer: `None` while pending, `Some(Ok)` fetched (or cached), `Some(Err)` failed.
    slots: Vec<Option<Result<(), PourError>>>,
}

/// Marks its layer finished even when the fetch unwinds, so the unpacking side never waits
/// forever for it.
struct Finish<'a> {
    ahead: &'a Ahead,
    index: usize,
    result: Option<Result<(), PourError>>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or(Ok(()));
        let mut state = self.ahead.lock();
        state.slots[self.index] = Some(result);
        if std::thread::panicking() {
            // This helper is gone and others may be too: the unpacking side fetches every
            // layer not taken yet itself rather than wait for it.
            let taken = state.next;
            for slot in state.slots.iter_mut().skip(taken) {
                *slot = Some(Ok(()));
            }
            state.next = state.slots.len();
        }
        self.ahead.changed.notify_all();
    }
}

/// How many layers may be fetched ahead at once, shared by every pour of a run.
pub struct Budget {
    free: Mutex<usize>,
    freed: Condvar,
    /// Takers waiting for a download now (what a test waits for before it cancels one).
    waiting: std::sync::atomic::AtomicUsize,
}

/// One download's share of a [`Budget`], given back on drop.
pub struct Permit<'a>(&'a Budget);

impl Budget {
    pub fn new(downloads: usize) -> Budget {
        Budget {
            free: Mutex::new(downloads.max(1)),
            freed: Condvar::new(),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many takers are waiting for a download now.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for a free download; `None` once `give_up` says so (checked at least every 50 ms,
    /// so a pour that ended is not kept waiting on other pours' downloads).
    pub fn take(&self, give_up: impl Fn() -> bool) -> Option<Permit<'_>> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if give_up() {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(Permit(self));
            }
            use std::sync::atomic::Ordering::SeqCst;
            self.waiting.fetch_add(1, SeqCst);
            free = self
                .freed
                .wait_timeout(free, std::time::Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            self.waiting.fetch_sub(1, SeqCst);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// Cancels the helpers when the pour leaves, whether by an error, a panic or success.
pub struct CancelOnDrop<'a>(pub &'a Ahead);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Ahead {
    /// For an image of `layers` layers with up to `jobs` helpers: one per later layer (the
    /// first is never fetched ahead; it streams at once). With no helper nothing is awaited.
    pub fn new(layers: usize, jobs: usize) -> Ahead {
        let helpers = layers.saturating_sub(1).min(jobs);
        let slots: Vec<_> = (0..layers)
            .map(|i| (i == 0 || helpers == 0).then_some(Ok(())))
            .collect();
        let next = if helpers == 0 { layers } else { 1 };
        Ahead {
            state: Mutex::new(State { next, slots }),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            helpers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many helpers to start.
    pub fn helpers(&self) -> usize {
        self.helpers
    }

    /// A helper's loop: takes layers in order and fetches each with `fetch` once `budget` has a
    /// download free, until none are left or the pour was given up. `fetch` should return early
    /// once [`Ahead::cancelled`].
    pub fn help(&self, budget: &Budget, fetch: impl Fn(usize) -> Result<(), PourError>) {
        loop {
            let left = |state: &State| state.next < state.slots.len();
            if self.cancelled() || !left(&self.lock()) {
                return;
            }
            let Some(_permit) = budget.take(|| self.cancelled()) else {
                return;
            };
            let index = {
                let mut state = self.lock();
                if self.cancelled() || !left(&state) {
                    return;
                }
                state.next += 1;
                state.next - 1
            };
            let mut finish = Finish {
                ahead: self,
                index,
                result: None,
            };
            finish.result = Some(fetch(index));
        }
    }

    /// Waits until layer `index` is in the cache (or its fetch failed, which is returned).
    /// A layer whose fetch failed is handed back once; the caller reports that error.
    pub fn wait(&self, index: usize) -> Result<(), PourError> {
        let mut state = self.lock();
        loop {
            match state.slots.get_mut(index) {
                None => return Ok(()),
                Some(slot @ Some(_)) => return slot.replace(Ok(())).unwrap_or(Ok(())),
                Some(None) => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Stops the helpers: none takes another layer, and a download under way stops early.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn every_later_layer_is_fetched_once_and_waits_see_each_result() {
        let ahead = Ahead::new(5, 2);
        let budget = Budget::new(2);
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..ahead.helpers() {
                s.spawn(|| {
                    ahead.help(&budget, |i| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        if i == 3 {
                            Err(PourError::NestedIndex {
                                repository: crate::formula::Source::Layout("x".into()),
                                digest: crate::digest::Digest::of_bytes(b"x"),
                            })
                        } else {
                            Ok(())
                        }
                    })
                });
            }
            assert!(
                ahead.wait(0).is_ok(),
                "the first layer is never fetched ahead"
            );
            assert!(ahead.wait(1).is_ok());
            assert!(ahead.wait(2).is_ok());
            assert!(
                ahead.wait(3).is_err(),
                "a failed fetch is handed to the waiter"
            );
            assert!(ahead.wait(4).is_ok());
        });
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(Ahead::new(1, 8).helpers(), 0);
        assert_eq!(Ahead::new(9, 3).helpers(), 3);
        // No helper (jobs 0): nothing is fetched ahead and no wait blocks.
        let none = Ahead::new(3, 0);
        assert_eq!(none.helpers(), 0);
        assert!(none.wait(1).is_ok() && none.wait(2).is_ok());
    }

    #[test]
    fn a_cancelled_pour_takes_no_more_layers_and_a_panicking_fetch_never_hangs_the_waiter() {
        let budget = Budget::new(1);
        let ahead = Ahead::new(4, 2);
        ahead.cancel();
        let calls = AtomicUsize::new(0);
        ahead.help(&budget, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // One helper for three later layers dies on the first: the waiter gets every one of
        // them back (to fetch itself) instead of waiting for layers nobody will take.
        let ahead = Ahead::new(4, 1);
        std::thread::scope(|s| {
            let helper = s.spawn(|| ahead.help(&budget, |_| panic!("fetch blew up")));
            for i in 1..4 {
                assert!(ahead.wait(i).is_ok(), "layer {i}");
            }
            assert!(helper.join().is_err());
        });
    }

    #[test]
    fn a_helper_waiting_for_the_budget_leaves_as_soon_as_its_pour_is_cancelled() {
        let budget = Budget::new(1);
        let held = Mutex::new(budget.take(|| false));
        let ahead = Ahead::new(3, 1);
        std::thread::scope(|s| {
            let helper = s.spawn(|| ahead.help(&budget, |_| Ok(())));
            // Cancelled while it waits for the budget (not before it got there).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut seen = false;
            while !seen && std::time::Instant::now() < deadline {
                seen = budget.waiting() > 0;
                std::thread::yield_now();
            }
            assert!(seen, "the helper never waited for the budget");
            ahead.cancel();
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !helper.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let left_in_time = helper.is_finished();
            // Give the download back either way, so a failing run ends instead of hanging.
            held.lock().unwrap().take();
            helper.join().unwrap();
            assert!(
                left_in_time,
                "the helper waited for the budget after the cancel"
            );
        });
    }

    #[test]
    fn a_budget_bounds_the_downloads_fetched_ahead_across_pours() {
        let budget = Budget::new(2);
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let pours: Vec<Ahead> = (0..3).map(|_| Ahead::new(4, 3)).collect();
        std::thread::scope(|s| {
            for ahead in &pours {
                for _ in 0..ahead.helpers() {
                    s.spawn(|| {
                        ahead.help(&budget, |_| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                    });
                }
            }
        });
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "9 helpers, 2 downloads at once"
        );
    }
}
