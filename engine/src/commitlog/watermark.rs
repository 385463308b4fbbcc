//! The durable watermark: the highest entry sequence number known durable, and the writers
//! waiting for it.
//!
//! A writer first yields for a short while, checking one atomic, as RocksDB's write thread does: a
//! sync takes about as long as waking a parked thread on a busy machine, so most waits end there.
//! Otherwise it registers once and parks until a waker marks it woken. Only writers the watermark
//! made durable are woken, and the wake-ups fan out as a tree: advancing wakes [`FAN_OUT`] writers
//! and each woken writer wakes [`FAN_OUT`] more before it returns, so the sync thread spends a few
//! microseconds on wake-ups and the rest of the work spreads over the cores. A writer that returns
//! without having been woken (a stray unpark) removes its own registration, so a wake-up is never
//! spent on a thread that is not waiting. Failing the log sets the "failed" mark and wakes all.
//!
//! Thread-safety: `Send + Sync`; any thread may wait, advance or fail.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The watermark value once the log failed.
const FAILED: u64 = u64::MAX;

/// How long a writer yields, checking the watermark, before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// Writers each wake-up step wakes.
const FAN_OUT: usize = 2;

/// A parked writer.
#[derive(Debug)]
struct Waiter {
    thread: Thread,
    woken: AtomicBool,
}

impl Waiter {
    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct DurableWatermark {
    durable: AtomicU64,
    waiters: Mutex<Vec<(u64, Arc<Waiter>)>>,
}

/// What the watermark says about entry `seq`, if it is decided.
fn verdict(durable: u64, seq: u64) -> Option<bool> {
    match durable {
        FAILED => Some(false),
        d if d >= seq => Some(true),
        _ => None,
    }
}

impl DurableWatermark {
    /// Blocks until entry `seq` is durable (`true`) or the log failed (`false`).
    pub(super) fn wait(&self, seq: u64) -> bool {
        let spin_until = Instant::now() + SPIN;
        while Instant::now() < spin_until {
            match verdict(self.durable.load(Ordering::Acquire), seq) {
                Some(done) => return done,
                None => std::thread::yield_now(),
            }
        }
        let me = Arc::new(Waiter { thread: std::thread::current(), woken: AtomicBool::new(false) });
        {
            let mut waiters = self.waiters.lock();
            // Checked under the lock: an advance between the spin and the registration would
            // otherwise be missed.
            if let Some(done) = verdict(self.durable.load(Ordering::Acquire), seq) {
                return done;
            }
            waiters.push((seq, me.clone()));
        }
        loop {
            std::thread::park();
            if me.woken.load(Ordering::Acquire) {
                break;
            }
            // Not woken by a waker: a stray unpark. Leave only if still registered (otherwise a
            // waker took the registration and its wake-up is on the way).
            if let Some(done) = verdict(self.durable.load(Ordering::Acquire), seq) {
                let mut waiters = self.waiters.lock();
                if let Some(i) = waiters.iter().position(|(_, w)| Arc::ptr_eq(w, &me)) {
                    waiters.swap_remove(i);
                    return done;
                }
            }
        }
        // Pass the wake-up on (also after a failure: everyone must learn of it).
        self.wake_durable();
        verdict(self.durable.load(Ordering::Acquire), seq).unwrap_or(false)
    }

    /// Wakes up to [`FAN_OUT`] registered writers whose entries are durable.
    fn wake_durable(&self) {
        let wake: Vec<Arc<Waiter>> = {
            let mut waiters = self.waiters.lock();
            let durable = self.durable.load(Ordering::Acquire);
            let mut wake = Vec::with_capacity(FAN_OUT);
            let mut i = 0;
            while i < waiters.len() && wake.len() < FAN_OUT {
                if waiters[i].0 <= durable {
                    wake.push(waiters.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            wake
        };
        wake.iter().for_each(|w| w.wake());
    }

    /// Entries up to `seq` are durable.
    pub(super) fn advance(&self, seq: u64) {
        {
            let _waiters = self.waiters.lock();
            if self.durable.load(Ordering::Acquire) == FAILED {
                return;
            }
            self.durable.fetch_max(seq, Ordering::AcqRel);
        }
        self.wake_durable();
    }

    /// The log failed: nothing more becomes durable; every waiter returns `false`.
    pub(super) fn fail(&self) {
        let wake: Vec<Arc<Waiter>> = {
            let mut waiters = self.waiters.lock();
            self.durable.store(FAILED, Ordering::Release);
            waiters.drain(..).map(|(_, w)| w).collect()
        };
        wake.iter().for_each(|w| w.wake());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(mark: &Arc<DurableWatermark>, seq: u64) -> std::thread::JoinHandle<bool> {
        let mark = mark.clone();
        std::thread::spawn(move || mark.wait(seq))
    }

    #[test]
    fn waiters_wake_when_their_entry_is_durable_and_all_wake_on_failure() {
        let mark = Arc::new(DurableWatermark::default());
        let early: Vec<_> = (0..8).map(|i| waiting(&mark, 5 + i)).collect();
        let late = waiting(&mark, 50);
        std::thread::sleep(SPIN * 3);
        mark.advance(20);
        for w in early {
            assert!(w.join().unwrap_or(false));
        }
        assert!(mark.wait(3));
        mark.fail();
        assert!(!late.join().unwrap_or(true));
        // After a failure nothing advances again.
        mark.advance(100);
        assert!(!mark.wait(60));
    }

    #[test]
    fn a_stray_unpark_leaves_no_registration_behind() {
        let mark = Arc::new(DurableWatermark::default());
        let w = waiting(&mark, 10);
        std::thread::sleep(SPIN * 3);
        // The registered writer gets an unpark no waker sent; it must keep waiting.
        w.thread().unpark();
        std::thread::sleep(SPIN);
        assert!(!w.is_finished());
        mark.advance(10);
        assert!(w.join().unwrap_or(false));
        assert!(mark.waiters.lock().is_empty());
    }
}
