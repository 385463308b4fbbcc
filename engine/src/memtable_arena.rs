//! The byte arena of a memtable: partition keys and cell values are copied into large shared
//! chunks (DESIGN §3).
//!
//! Why: a mutation's key and values arrive in their own small allocations (and reference-counted
//! headers once shared), which the memtable would keep until it is flushed and then free one by
//! one on the flush thread, a cross-thread free each. Copied into [`CHUNK_BYTES`] chunks, a
//! partition's bytes cost no allocation of their own on the write (the mutation's are freed by the
//! writer at once, and reused), and a reference count each when the memtable is dropped: a chunk
//! is freed when its last key or value is.
//!
//! A value larger than [`MAX_SHARED_BYTES`] gets its own allocation, so one large value never
//! wastes most of a chunk. A key or value a reader still holds (a `Bytes` clone in a query result)
//! keeps its whole chunk alive until released.
//!
//! Thread-safety: `Send + Sync`; writers serialize on a mutex for the time of a memcpy.

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use talus_format::{Cells, Row};

/// Size of a chunk.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Largest value copied into a shared chunk.
pub const MAX_SHARED_BYTES: usize = CHUNK_BYTES / 8;

/// Copies of byte strings, packed into shared chunks.
#[derive(Debug, Default)]
pub struct ByteArena {
    /// The free part of the current chunk (empty before the first copy).
    chunk: Mutex<BytesMut>,
}

impl ByteArena {
    /// An empty arena (no chunk is allocated yet).
    pub fn new() -> ByteArena {
        ByteArena::default()
    }

    /// A copy of `bytes`, in a shared chunk unless larger than [`MAX_SHARED_BYTES`].
    pub fn copy(&self, bytes: &[u8]) -> Bytes {
        if bytes.len() > MAX_SHARED_BYTES {
            return Bytes::copy_from_slice(bytes);
        }
        let mut chunk = self.chunk.lock();
        if chunk.capacity() < bytes.len() {
            *chunk = BytesMut::with_capacity(CHUNK_BYTES);
        }
        chunk.extend_from_slice(bytes);
        chunk.split().freeze()
    }

    /// A copy of `cells` with their values in the arena.
    pub fn cells(&self, cells: &Cells) -> Cells {
        cells.map_values(|value| self.copy(value))
    }

    /// A copy of `row` with its values in the arena.
    pub fn row(&self, row: &Row) -> Row {
        Row { tombstone: row.tombstone, marker: row.marker, cells: self.cells(&row.cells) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use talus_format::{Cell, ColumnId, GcTime, Timestamp};

    /// Copies are equal to their sources, small ones share chunks, large ones do not, and a new
    /// chunk starts when the current one is full.
    #[test]
    fn copies_are_equal_and_packed() {
        let arena = ByteArena::new();
        let a = arena.copy(b"first");
        let b = arena.copy(b"second");
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr(), "consecutive in one chunk");
        let big = vec![7u8; MAX_SHARED_BYTES + 1];
        assert_eq!(arena.copy(&big), big);
        let filler = vec![1u8; MAX_SHARED_BYTES];
        let copies: Vec<Bytes> = (0..20).map(|_| arena.copy(&filler)).collect();
        assert!(copies.iter().all(|c| c[..] == filler[..]));
        let cells: Cells = [
            (ColumnId(1), Cell::Live { timestamp: Timestamp(1), value: Bytes::from_static(b"v") }),
            (ColumnId(2), Cell::Dead { timestamp: Timestamp(2), deletion_time: GcTime(3) }),
        ]
        .into_iter()
        .collect();
        let row = Row { cells, ..Row::default() };
        let copied = arena.row(&row);
        assert_eq!(copied, row);
        assert_eq!(copied.cells.iter().map(|(_, c)| c.value().map(|v| &v[..])).collect::<Vec<_>>(), vec![Some(&b"v"[..]), None]);
    }
}
