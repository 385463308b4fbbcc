//! The durable watermark: the highest entry sequence number known durable, and the writers
//! waiting for it.
//!
//! A writer checks one atomic first and, only if its entry is not durable yet, registers itself
//! and parks. Only writers the watermark made durable are woken, so a sync wakes no writer that
//! must keep waiting. The wake-ups fan out as a tree: advancing wakes [`FAN_OUT`] writers, and
//! each woken writer wakes [`FAN_OUT`] more before it returns. So the sync thread spends a few
//! microseconds on wake-ups and starts the next sync at once, and the wake-up work spreads over
//! the cores instead of queueing behind one thread. Failing the log sets the watermark to the
//! "failed" mark and wakes everyone.
//!
//! Thread-safety: `Send + Sync`; any thread may wait, advance or fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::Thread;

use parking_lot::Mutex;

/// The watermark value once the log failed.
const FAILED: u64 = u64::MAX;

/// How long a writer yields, checking the watermark, before it parks.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// Writers each wake-up step wakes.
pub(super) const FAN_OUT: usize = 2;

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct DurableWatermark {
    durable: AtomicU64,
    waiters: Mutex<Vec<(u64, Thread)>>,
}

impl DurableWatermark {
    /// Blocks until entry `seq` is durable (`true`) or the log failed (`false`).
    pub(super) fn wait(&self, seq: u64) -> bool {
        // Yield for a while first, as RocksDB's write thread does: a sync takes about as long as
        // waking a parked thread on a busy machine, so most waits end here without a wake-up.
        let spin_until = std::time::Instant::now() + SPIN;
        while std::time::Instant::now() < spin_until {
            match self.durable.load(Ordering::Acquire) {
                FAILED => return false,
                d if d >= seq => return true,
                _ => std::thread::yield_now(),
            }
        }
        loop {
            match self.durable.load(Ordering::Acquire) {
                FAILED => return false,
                d if d >= seq => return true,
                _ => {}
            }
            {
                let mut waiters = self.waiters.lock();
                // Re-checked under the lock: an advance between the check above and the
                // registration would otherwise be missed.
                match self.durable.load(Ordering::Acquire) {
                    FAILED => return false,
                    d if d >= seq => return true,
                    _ => waiters.push((seq, std::thread::current())),
                }
            }
            // A spurious wake-up just loops.
            std::thread::park();
            if self.durable.load(Ordering::Acquire) >= seq {
                // Pass the wake-up on (also after a failure: everyone must learn of it).
                self.wake_durable();
            }
        }
    }

    /// Wakes up to [`FAN_OUT`] registered writers whose entries are durable.
    fn wake_durable(&self) {
        let wake: Vec<Thread> = {
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
        wake.into_iter().for_each(|t| t.unpark());
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
        let wake: Vec<Thread> = {
            let mut waiters = self.waiters.lock();
            self.durable.store(FAILED, Ordering::Release);
            waiters.drain(..).map(|(_, t)| t).collect()
        };
        wake.into_iter().for_each(|t| t.unpark());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_wake_when_their_entry_is_durable_and_all_wake_on_failure() {
        let mark = Arc::new(DurableWatermark::default());
        let early = {
            let mark = mark.clone();
            std::thread::spawn(move || mark.wait(5))
        };
        let late = {
            let mark = mark.clone();
            std::thread::spawn(move || mark.wait(50))
        };
        mark.advance(10);
        assert!(early.join().unwrap_or(false));
        assert!(mark.wait(3));
        mark.fail();
        assert!(!late.join().unwrap_or(true));
        // After a failure nothing advances again.
        mark.advance(100);
        assert!(!mark.wait(60));
    }
}
