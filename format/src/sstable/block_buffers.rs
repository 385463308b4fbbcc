//! Reuse of the buffers of decompressed data blocks, per thread.
//!
//! A point read that misses the block cache decompresses a block into a new buffer, and caching
//! it usually evicts another block, whose buffer is freed. [`recycle`] (the cache calls it with an
//! evicted block) keeps such a buffer, when nothing else holds it, for the next decompression on
//! the same thread ([`take`]): no allocation, no free, and no zero-filling of the new buffer (the
//! decompressor writes into initialized memory).
//!
//! Invariants: a thread keeps at most [`SPARE_BUFFERS`] buffers of at most [`MAX_SPARE_CAPACITY`]
//! bytes each, so the memory held outside the cache's budget is bounded (256 KiB a thread). A
//! buffer is reused only once no `Bytes` refers to it (`Bytes::try_into_mut` succeeds only then).
//!
//! Thread-safety: thread-local state only.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The most buffers a thread keeps.
pub const SPARE_BUFFERS: usize = 4;
/// The largest buffer (in bytes of capacity) a thread keeps.
pub const MAX_SPARE_CAPACITY: usize = 64 << 10;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Offers the content of a block that leaves the block cache for reuse by this thread's next
/// decompression. It is kept when nothing else refers to it, it owns its memory (a slice of a
/// mapped file does not) and it is not too large; otherwise it is just dropped.
pub fn recycle(content: Bytes) {
    // The conversion moves no bytes: it takes the buffer back from the `Bytes`.
    let Ok(buffer) = content.try_into_mut() else { return };
    if buffer.capacity() > MAX_SPARE_CAPACITY {
        return;
    }
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARE_BUFFERS {
            spare.push(buffer);
        }
    });
}

/// A buffer of exactly `len` bytes to decompress into: a recycled one when the thread has one
/// (only bytes past its old length are zeroed), a zeroed new one otherwise.
pub(crate) fn take(len: usize) -> BytesMut {
    let mut buffer = SPARE.with(|spare| spare.borrow_mut().pop()).unwrap_or_default();
    buffer.truncate(len);
    buffer.resize(len, 0);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_only_when_unshared_and_small() {
        let spare = || SPARE.with(|s| s.borrow().len());
        assert_eq!(spare(), 0);
        let block = Bytes::from(vec![7u8; 100]);
        let held = block.clone();
        recycle(block);
        assert_eq!(spare(), 0, "a block still referred to is not reused");
        recycle(held);
        assert_eq!(spare(), 1);
        let buffer = take(50);
        assert_eq!((buffer.len(), spare()), (50, 0));
        recycle(Bytes::from(vec![0u8; MAX_SPARE_CAPACITY + 1]));
        recycle(Bytes::from_static(b"static"));
        assert_eq!(spare(), 0);
        for _ in 0..SPARE_BUFFERS + 2 {
            recycle(Bytes::from(vec![1u8; 10]));
        }
        assert_eq!(spare(), SPARE_BUFFERS);
        assert_eq!(take(20), [&[1u8; 10][..], &[0u8; 10][..]].concat());
        assert!(take(0).is_empty());
    }
}
