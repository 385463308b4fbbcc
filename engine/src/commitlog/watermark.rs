//! The durable watermark: the highest entry sequence number known durable, and the writers
//! waiting for it.
//!
//! A writer checks one atomic first and, only if its entry is not durable yet, registers itself
//! and parks. Advancing the watermark unparks exactly the writers it made durable, outside any
//! lock, so a sync wakes no writer that must keep waiting and woken writers do not queue up on a
//! shared mutex. Failing the log sets the watermark to the "failed" mark and wakes everyone.
//!
//! Thread-safety: `Send + Sync`; any thread may wait, advance or fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::Thread;

use parking_lot::Mutex;

/// The watermark value once the log failed.
const FAILED: u64 = u64::MAX;

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct DurableWatermark {
    durable: AtomicU64,
    waiters: Mutex<Vec<(u64, Thread)>>,
}

impl DurableWatermark {
    /// Blocks until entry `seq` is durable (`true`) or the log failed (`false`).
    pub(super) fn wait(&self, seq: u64) -> bool {
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
        }
    }

    /// Entries up to `seq` are durable.
    pub(super) fn advance(&self, seq: u64) {
        let wake: Vec<Thread> = {
            let mut waiters = self.waiters.lock();
            if self.durable.load(Ordering::Acquire) == FAILED {
                return;
            }
            self.durable.fetch_max(seq, Ordering::AcqRel);
            let mut wake = Vec::new();
            waiters.retain(|(waiting_for, thread)| {
                let done = *waiting_for <= seq;
                if done {
                    wake.push(thread.clone());
                }
                !done
            });
            wake
        };
        wake.into_iter().for_each(|t| t.unpark());
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
