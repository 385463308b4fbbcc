//! K-way merge of fragment streams (R1.37).
//!
//! Partitions are merged by decorated key; inside a partition fragments are merged by position:
//! equal rows and static rows reconcile (R1.29–R1.32), partition tombstones take the max, and
//! range tombstone changes go through the [`RangeTombstoneChangeMerger`], so the output carries the
//! max active tombstone at every position. The merge never consults a clock (R1.33).
//!
//! Inputs must be valid streams (R1.36); a malformed input (fragment outside a partition, stream
//! ending inside a partition) yields an [`Error::InvalidStream`] and ends the merge. An input error
//! is passed through and ends the merge.
//!
//! Not thread-safe itself, but `Send`: one consumer drives it.

use talus_format::{Error, Fragment, FragmentStream, Result};

use crate::rt_merger::RangeTombstoneChangeMerger;

struct Input<'a> {
    stream: FragmentStream<'a>,
    head: Option<Fragment>,
    exhausted: bool,
}

impl Input<'_> {
    /// Makes sure `head` holds the next fragment unless the stream is exhausted.
    fn fill(&mut self) -> Result<()> {
        if self.head.is_none() && !self.exhausted {
            match self.stream.next() {
                Some(Ok(f)) => self.head = Some(f),
                Some(Err(e)) => return Err(e),
                None => self.exhausted = true,
            }
        }
        Ok(())
    }
}

/// The merge of N fragment streams; itself a fragment stream.
pub struct MergedStream<'a> {
    inputs: Vec<Input<'a>>,
    /// Inputs taking part in the open partition; empty between partitions.
    members: Vec<usize>,
    in_partition: bool,
    rt: RangeTombstoneChangeMerger,
    finished: bool,
}

impl<'a> MergedStream<'a> {
    /// Merges `streams`.
    pub fn new(streams: Vec<FragmentStream<'a>>) -> MergedStream<'a> {
        let n = streams.len();
        MergedStream {
            inputs: streams.into_iter().map(|stream| Input { stream, head: None, exhausted: false }).collect(),
            members: Vec::with_capacity(n),
            in_partition: false,
            rt: RangeTombstoneChangeMerger::new(n),
            finished: false,
        }
    }

    /// Boxes the merge as a [`FragmentStream`].
    pub fn boxed(self) -> FragmentStream<'a>
    where
        Self: Send + 'a,
    {
        Box::new(self)
    }

    fn next_partition_start(&mut self) -> Result<Option<Fragment>> {
        // One pass: the inputs whose head is the smallest partition start so far, in input order.
        self.members.clear();
        for i in 0..self.inputs.len() {
            self.inputs[i].fill()?;
            match &self.inputs[i].head {
                None => {}
                Some(Fragment::PartitionStart { key, .. }) => {
                    let order = match self.members.first().and_then(|&b| self.inputs[b].head.as_ref()) {
                        Some(Fragment::PartitionStart { key: best_key, .. }) => key.cmp(best_key),
                        _ => std::cmp::Ordering::Less,
                    };
                    match order {
                        std::cmp::Ordering::Less => {
                            self.members.clear();
                            self.members.push(i);
                        }
                        std::cmp::Ordering::Equal => self.members.push(i),
                        std::cmp::Ordering::Greater => {}
                    }
                }
                Some(other) => {
                    return Err(Error::InvalidStream(format!("merge input {i}: {:?} outside a partition", other.position())));
                }
            }
        }
        let Some((&first, rest)) = self.members.split_first() else { return Ok(None) };
        let Some(Fragment::PartitionStart { key, mut tombstone }) = self.inputs[first].head.take() else {
            return Err(Error::InvalidStream("merge: partition start vanished".into()));
        };
        for &i in rest {
            if let Some(Fragment::PartitionStart { tombstone: t, .. }) = self.inputs[i].head.take() {
                tombstone.apply(t);
            }
        }
        self.in_partition = true;
        self.rt.reset();
        Ok(Some(Fragment::PartitionStart { key, tombstone }))
    }

    fn next_in_partition(&mut self) -> Result<Fragment> {
        if let [only] = self.members[..] {
            // One input holds the partition: rows, static rows and the end pass through
            // unchanged (nothing to reconcile); range tombstone changes still go through the
            // merger below, which drops the ones that change nothing.
            let input = &mut self.inputs[only];
            input.fill()?;
            match input.head.take_if(|h| !matches!(h, Fragment::RangeTombstoneChange(_))) {
                Some(Fragment::PartitionEnd) => {
                    self.in_partition = false;
                    self.members.clear();
                    return Ok(Fragment::PartitionEnd);
                }
                Some(head) => return Ok(head),
                None => {}
            }
        }
        loop {
            let mut min: Option<usize> = None;
            for &i in &self.members {
                self.inputs[i].fill()?;
                let Some(head) = &self.inputs[i].head else {
                    return Err(Error::InvalidStream(format!("merge input {i} ended inside a partition")));
                };
                let lower = match min.and_then(|m| self.inputs[m].head.as_ref()) {
                    Some(best) => head.position_ref() < best.position_ref(),
                    None => true,
                };
                if lower {
                    min = Some(i);
                }
            }
            let Some(min) = min.and_then(|m| self.inputs[m].head.as_ref()).map(Fragment::position) else {
                return Err(Error::InvalidStream("merge: partition without inputs".into()));
            };
            let mut merged: Option<Fragment> = None;
            for k in 0..self.members.len() {
                let i = self.members[k];
                if self.inputs[i].head.as_ref().is_none_or(|h| h.position_ref() != min.borrowed()) {
                    continue;
                }
                // A range tombstone change may repeat its position: take all of them (R1.36).
                let mut drained = false;
                while let Some(Fragment::RangeTombstoneChange(change)) = &self.inputs[i].head {
                    if change.position != min {
                        break;
                    }
                    self.rt.apply(i, change.tombstone);
                    self.inputs[i].head = None;
                    self.inputs[i].fill()?;
                    drained = true;
                }
                let head =
                    if drained { self.inputs[i].head.take_if(|h| h.position_ref() == min.borrowed()) } else { self.inputs[i].head.take() };
                let Some(head) = head else { continue };
                merged = Some(match (merged, head) {
                    (None, f) => f,
                    (Some(Fragment::Row { key, mut row }), Fragment::Row { row: other, .. }) => {
                        row.absorb(other);
                        Fragment::Row { key, row }
                    }
                    (Some(Fragment::StaticRow(mut cells)), Fragment::StaticRow(other)) => {
                        cells.absorb(other);
                        Fragment::StaticRow(cells)
                    }
                    (Some(Fragment::PartitionEnd), Fragment::PartitionEnd) => Fragment::PartitionEnd,
                    (Some(a), b) => {
                        return Err(Error::InvalidStream(format!("merge: {:?} and {:?} at one position", a.position(), b.position())));
                    }
                });
            }
            match merged {
                Some(Fragment::PartitionEnd) => {
                    // Only when every member is at its end is PartitionEnd the minimum.
                    self.in_partition = false;
                    self.members.clear();
                    return Ok(Fragment::PartitionEnd);
                }
                Some(f) => return Ok(f),
                None => {
                    if let Some(change) = self.rt.flush(&min) {
                        return Ok(Fragment::RangeTombstoneChange(change));
                    }
                }
            }
        }
    }
}

impl Iterator for MergedStream<'_> {
    type Item = Result<Fragment>;

    fn next(&mut self) -> Option<Result<Fragment>> {
        if self.finished {
            return None;
        }
        let result = if self.in_partition { self.next_in_partition().map(Some) } else { self.next_partition_start() };
        match result {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}
