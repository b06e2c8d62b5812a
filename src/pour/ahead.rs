//! Layers fetched ahead: while one layer of a keg streams and unpacks, the layers after it
//! download into the verified cache on helper threads (at most `--jobs` at once), so an image
//! of many layers costs about its slowest layer on the network, not the sum of them. Layers
//! still unpack one by one, in order; each later one is read back from the cache.

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
        self.ahead.changed.notify_all();
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

    /// A helper's loop: takes layers in order and fetches each with `fetch`, until none are
    /// left or the pour was given up. `fetch` should return early once [`Ahead::cancelled`].
    pub fn help(&self, fetch: impl Fn(usize) -> Result<(), PourError>) {
        loop {
            let index = {
                let mut state = self.lock();
                if self.cancelled() || state.next >= state.slots.len() {
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
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..ahead.helpers() {
                s.spawn(|| {
                    ahead.help(|i| {
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
        let ahead = Ahead::new(4, 2);
        ahead.cancel();
        let calls = AtomicUsize::new(0);
        ahead.help(|_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        let ahead = Ahead::new(2, 1);
        std::thread::scope(|s| {
            let helper = s.spawn(|| ahead.help(|_| panic!("fetch blew up")));
            assert!(ahead.wait(1).is_ok());
            assert!(helper.join().is_err());
        });
    }
}
