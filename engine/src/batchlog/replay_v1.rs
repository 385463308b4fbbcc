//! The v1 layout's replay and the v1 → v2 migration (A11): both read the whole of
//! `system.batchlog`, one partition per batch, so their cost follows every deleted batch whose
//! partition tombstone has not been purged yet.
//!
//! Thread-safety: runs under the manager's replay lock.

use talus_format::{ColumnType, Mutation, Value};

use super::replay::{Entry, ReplayRun};
use super::tables::{Stage, BATCHLOG_VERSION};
use super::{BatchHandle, BatchlogLayout, BatchlogManager};
use crate::error::{Error, Result};
use crate::query::{scan_all, QueryResult};

impl BatchlogManager {
    /// Replays `system.batchlog`: every live batch old enough is delivered and its partition
    /// deleted; failures stay (v1 ignores cleanup, A9 step 5).
    pub(super) fn replay_v1(&self, run: &mut ReplayRun) -> Result<()> {
        self.scan(scan_all(&self.v1.full_name()), run, Self::v1_entries, |run, entry| self.process_entry(run, entry))
    }

    /// Moves every live v1 entry of the current version to the v2 failed_replay stage (so that
    /// no initial-stage cleanup tombstone can hide it) and deletes it from v1, both in one write;
    /// entries of another version are left alone (A11). Returns the number moved.
    pub(super) fn migrate_v1_to_v2(&self) -> Result<u64> {
        // The migration's reads are not the replay's: they are counted in a scratch run.
        let mut scratch = ReplayRun::new(BatchlogLayout::V1, false, self.clock.now_millis());
        let mut migrated = 0;
        self.scan(scan_all(&self.v1.full_name()), &mut scratch, Self::v1_entries, |_, entry| {
            let v2 = BatchHandle { layout: BatchlogLayout::V2, ..entry.handle };
            let moved: [Mutation; 2] =
                [self.entry_mutation(&v2, Stage::FailedReplay, entry.data)?, self.delete_mutation(&entry.handle, Stage::Initial)?];
            self.engine.apply_batch(&moved)?;
            self.note_maybe_live(Stage::FailedReplay, entry.handle.written_at_ms);
            migrated += 1;
            Ok(())
        })?;
        Ok(migrated)
    }

    /// The live v1 entries of a page with the current version (rows of another version or
    /// without one are skipped, not deleted).
    fn v1_entries(&self, page: &QueryResult, out: &mut Vec<Entry>) -> Result<()> {
        let column = |name: &str| self.v1.regular_column(name).map(|c| c.id);
        let (data_id, version_id, written_at_id) = (column("data")?, column("version")?, column("written_at")?);
        for partition in &page.partitions {
            let id = match partition.key.key.decode(&self.v1.partition_key_types())?.as_slice() {
                [Value::Uuid(id)] => *id,
                other => return Err(Error::InvalidBatch(format!("system.batchlog key {other:?} is not a uuid"))),
            };
            for row in &partition.rows {
                let cell = |cid| row.cells.iter().find(|(c, _)| *c == cid).map(|(_, bytes)| bytes.clone());
                let version = cell(version_id).map(|b| Value::deserialize(ColumnType::Int, &b)).transpose()?;
                let written_at = cell(written_at_id).map(|b| Value::deserialize(ColumnType::Timestamp, &b)).transpose()?;
                let (Some(Value::Int(BATCHLOG_VERSION)), Some(Value::Timestamp(written_at_ms)), Some(data)) =
                    (version, written_at, cell(data_id))
                else {
                    continue;
                };
                let handle = BatchHandle { layout: BatchlogLayout::V1, id, written_at_ms };
                out.push(Entry { stage: Stage::Initial, handle, data });
            }
        }
        Ok(())
    }
}
