//! The range tombstone change merger (R1.37): keeps the current tombstone of every input and
//! reports a change only when the max across inputs changes.
//!
//! Not thread-safe; one per merged partition.

use talus_format::{Position, RangeTombstoneChange, Tombstone};

/// Merges range tombstone changes of N inputs into one canonical sequence.
#[derive(Debug, Clone)]
pub struct RangeTombstoneChangeMerger {
    current: Vec<Tombstone>,
    emitted: Tombstone,
}

impl RangeTombstoneChangeMerger {
    /// A merger over `inputs` inputs, all without an active tombstone.
    pub fn new(inputs: usize) -> RangeTombstoneChangeMerger {
        RangeTombstoneChangeMerger { current: vec![Tombstone::NONE; inputs], emitted: Tombstone::NONE }
    }

    /// Records that input `input` changed its active tombstone to `tombstone`.
    pub fn apply(&mut self, input: usize, tombstone: Tombstone) {
        self.current[input] = tombstone;
    }

    /// The max over all inputs.
    pub fn active(&self) -> Tombstone {
        self.current.iter().copied().max().unwrap_or(Tombstone::NONE)
    }

    /// After all changes at `position` were applied: the change to emit there, if the max moved.
    pub fn flush(&mut self, position: &Position) -> Option<RangeTombstoneChange> {
        let active = self.active();
        (active != self.emitted).then(|| {
            self.emitted = active;
            RangeTombstoneChange { position: position.clone(), tombstone: active }
        })
    }

    /// Forgets all state (a new partition begins).
    pub fn reset(&mut self) {
        self.current.fill(Tombstone::NONE);
        self.emitted = Tombstone::NONE;
    }
}
