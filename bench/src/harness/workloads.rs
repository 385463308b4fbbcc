//! The single-threaded workloads, each against one [`KvPeer`] keyspace: fills, reads, scans,
//! seeks, and deleting every key then scanning.

use std::ops::ControlFlow;

use super::keys::KeySpace;
use super::measure::{timed_once, timed_ops, Sample, PROGRESS_EVERY};
use crate::peers::{KvPeer, SpaceId};
use crate::progress::Progress;
use crate::{warning, BoxError, SplitMix};

/// Rows a seek reads (`seekrandom`: seek, then the next rows up to this many).
pub const SEEK_ROWS: u64 = 10;

/// Writes every key once in `order` (its indices), with the values of `salt`: `fillseq`,
/// `fillrandom`, and `overwrite` (on filled keys, with another salt). Ops: writes.
pub fn fill(peer: &dyn KvPeer, space: SpaceId, keys: &KeySpace, order: &[u64], salt: u64, progress: &Progress) -> Result<Sample, BoxError> {
    timed_ops(progress, order.len() as u64, |j| {
        let i = order.get(j as usize).copied().unwrap_or(j);
        let (key, value) = (keys.key(i), keys.value(i, salt));
        peer.put(space, &key, value)?;
        Ok((key.len() + value.len()) as u64)
    })
}

/// `reads` point reads of random keys, written ones (`hit`) or never written ones. Ops: reads.
/// A hit that finds nothing, or a miss that finds something, is counted and warned about.
#[allow(clippy::too_many_arguments)]
pub fn read_random(
    peer: &dyn KvPeer,
    space: SpaceId,
    keys: &KeySpace,
    reads: u64,
    hit: bool,
    seed: u64,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<Sample, BoxError> {
    let mut rng = SplitMix(seed);
    let mut wrong = 0u64;
    let sample = timed_ops(progress, reads, |_| {
        let i = if hit { rng.below(keys.len()) } else { keys.len() + rng.below(1 << 40) };
        let key = keys.key(i);
        let found = peer.get(space, &key)?;
        wrong += u64::from(found.is_some() != hit);
        Ok((key.len() + found.map_or(0, |v| v.len())) as u64)
    })?;
    if wrong > 0 {
        let what = if hit { "found nothing under written keys" } else { "found values under keys never written" };
        warning!(warnings, "{}: {wrong} of {reads} point reads {what}", peer.name());
    }
    Ok(sample.with("wrong_results", wrong as f64))
}

/// One full scan of the keyspace. Ops: rows visited; a row count other than `expected` is
/// warned about.
pub fn read_seq(
    peer: &dyn KvPeer,
    space: SpaceId,
    expected: u64,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<Sample, BoxError> {
    let sample = timed_once(progress, || {
        let (mut bytes, mut rows) = (0u64, 0u64);
        let visited = peer.scan(space, &[], None, &mut |k, v| {
            bytes += (k.len() + v.len()) as u64;
            rows += 1;
            if rows.is_multiple_of(PROGRESS_EVERY) {
                progress.inc(PROGRESS_EVERY);
            }
            ControlFlow::Continue(())
        })?;
        Ok((visited, bytes))
    })?;
    if sample.ops != expected {
        warning!(warnings, "{}: a full scan visited {} rows, expected {expected}", peer.name(), sample.ops);
    }
    Ok(sample)
}

/// `seeks` seeks to random written keys, each reading [`SEEK_ROWS`] rows. Ops: seeks.
pub fn seek_random(
    peer: &dyn KvPeer,
    space: SpaceId,
    keys: &KeySpace,
    seeks: u64,
    seed: u64,
    progress: &Progress,
) -> Result<Sample, BoxError> {
    let mut rng = SplitMix(seed);
    let mut rows = 0u64;
    let sample = timed_ops(progress, seeks, |_| {
        let key = keys.key(rng.below(keys.len()));
        let mut bytes = 0u64;
        rows += peer.seek(space, &key, SEEK_ROWS, &mut |k, v| {
            bytes += (k.len() + v.len()) as u64;
            ControlFlow::Continue(())
        })?;
        Ok(bytes)
    })?;
    Ok(sample.with("rows_per_seek", rows as f64 / seeks.max(1) as f64))
}

/// Deletes every key: one range delete over the whole key space where the engine has them
/// (RocksDB's `DeleteRange`; Talus' wide shape: a range tombstone per partition), a point delete
/// per key in `order` otherwise. Ops: keys deleted.
pub fn delete_all(peer: &dyn KvPeer, space: SpaceId, keys: &KeySpace, order: &[u64], progress: &Progress) -> Result<Sample, BoxError> {
    if peer.supports_delete_range() {
        let sample = timed_once(progress, || {
            peer.delete_range(space, &[], &keys.end_key())?;
            Ok((keys.len(), 0))
        })?;
        return Ok(sample.with("range_deletes", 1.0));
    }
    let sample = timed_ops(progress, order.len() as u64, |j| {
        let key = keys.key(order.get(j as usize).copied().unwrap_or(j));
        peer.delete(space, &key)?;
        Ok(key.len() as u64)
    })?;
    Ok(sample.with("point_deletes", keys.len() as f64))
}

/// A full scan after [`delete_all`]: it should find nothing (rows found are warned about). Ops:
/// deleted keys passed over.
pub fn scan_deleted(
    peer: &dyn KvPeer,
    space: SpaceId,
    keys: &KeySpace,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<Sample, BoxError> {
    let mut found = 0;
    let sample = timed_once(progress, || {
        found = peer.scan(space, &[], None, &mut |_, _| ControlFlow::Continue(()))?;
        Ok((keys.len(), 0))
    })?;
    if found > 0 {
        warning!(warnings, "{}: the scan after deleting every key found {found} rows", peer.name());
    }
    Ok(sample.with("rows_found", found as f64))
}
