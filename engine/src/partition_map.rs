//! The partitions of a memtable, ordered by [`DecoratedKey`]: one lock-free skiplist per token
//! range (DESIGN §3).
//!
//! Why not one skiplist: a search in a skiplist of `n` entries follows about `log2 n` links, and
//! below the few hot top levels every link is a cache miss; a memtable of a few hundred thousand
//! small partitions pays some fifteen misses per write and per read. Tokens are Murmur3 hashes,
//! uniform over the ring (R1.4), and order keys first, so the ring splits into [`BUCKETS`] equal
//! token ranges whose skiplists each hold `n / BUCKETS` partitions: a search costs the bucket
//! pointer and a few levels. Key order is kept: buckets follow token order, and a range read walks
//! the buckets its bounds span.
//!
//! Invariants: a key lives in the bucket of its token, and in no other. Buckets are created on
//! first insert and never removed while the map lives.
//!
//! Thread-safety: `Send + Sync`; inserts and reads of any buckets run concurrently without locks
//! (the skiplists are lock-free; a bucket is created once through `OnceLock`).

use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crossbeam_skiplist::map::Entry;
use crossbeam_skiplist::SkipMap;
use talus_format::{DecoratedKey, Token};

/// Bits of the token that choose the bucket. A full 64 MiB memtable of small partitions holds a
/// dozen per bucket; a bucket in use costs a skiplist head (about half a KiB), 8 MiB at most.
const BUCKET_BITS: u32 = 14;
/// The number of buckets (token ranges).
pub const BUCKETS: usize = 1 << BUCKET_BITS;

/// One token range's skiplist, created on first insert.
type Bucket<V> = OnceLock<Box<SkipMap<DecoratedKey, V>>>;

/// A concurrent ordered map from partition key to `V`.
pub struct PartitionMap<V> {
    buckets: Box<[Bucket<V>]>,
    len: AtomicUsize,
}

impl<V: Send + 'static> Default for PartitionMap<V> {
    fn default() -> Self {
        PartitionMap::new()
    }
}

/// The bucket of `token`: its top bits, with the sign flipped so buckets follow token order.
fn bucket_of(token: Token) -> usize {
    ((token.0 as u64 ^ (1 << 63)) >> (64 - BUCKET_BITS)) as usize
}

impl<V: Send + 'static> PartitionMap<V> {
    /// An empty map (no bucket is allocated yet).
    pub fn new() -> PartitionMap<V> {
        PartitionMap { buckets: (0..BUCKETS).map(|_| OnceLock::new()).collect(), len: AtomicUsize::new(0) }
    }

    /// The entry of `key`, inserting `value()` first when there is none. Returns the entry and
    /// whether `value` was called (another writer may have inserted the key meanwhile, in which
    /// case its entry is returned and the new value dropped).
    pub fn get_or_insert_with(&self, key: DecoratedKey, value: impl FnOnce() -> V) -> (Entry<'_, DecoratedKey, V>, bool) {
        let bucket = self.buckets[bucket_of(key.token)].get_or_init(|| Box::new(SkipMap::new()));
        let mut created = false;
        let entry = bucket.get_or_insert_with(key, || {
            created = true;
            value()
        });
        if created {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        (entry, created)
    }

    /// The entry of `key`.
    pub fn get(&self, key: &DecoratedKey) -> Option<Entry<'_, DecoratedKey, V>> {
        self.buckets[bucket_of(key.token)].get()?.get(key)
    }

    /// The number of keys (an estimate while writers race on a new key: each counts once).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key was inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries with keys in `range`, in key order, lazily.
    pub fn range<'a>(&'a self, range: impl RangeBounds<DecoratedKey>) -> impl Iterator<Item = Entry<'a, DecoratedKey, V>> + 'a {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        let first = match &start {
            Bound::Included(k) | Bound::Excluded(k) => bucket_of(k.token),
            Bound::Unbounded => 0,
        };
        let last = match &end {
            Bound::Included(k) | Bound::Excluded(k) => bucket_of(k.token),
            Bound::Unbounded => BUCKETS - 1,
        };
        // An empty range (start after end) spans no bucket.
        let buckets = self.buckets.get(first..=last).unwrap_or_default();
        buckets.iter().filter_map(OnceLock::get).flat_map(move |bucket| bucket.range((start.clone(), end.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use talus_format::PartitionKey;

    fn key(token: i64, byte: u8) -> DecoratedKey {
        DecoratedKey { token: Token(token), key: PartitionKey::from_legacy_bytes(Bytes::copy_from_slice(&[byte])) }
    }

    /// Keys come back in (token, key) order over any range, across buckets and at the ring's
    /// ends, as from one ordered map.
    #[test]
    fn ranges_follow_key_order_across_buckets() {
        let map: PartitionMap<u32> = PartitionMap::new();
        let mut model = std::collections::BTreeMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut tokens = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            tokens.push(x as i64);
        }
        for (i, &t) in tokens.iter().enumerate() {
            for b in 0..(i % 3) as u8 + 1 {
                let (_, created) = map.get_or_insert_with(key(t, b), || i as u32);
                assert_eq!(created, model.insert(key(t, b), i as u32).is_none());
            }
        }
        assert_eq!(map.len(), model.len());
        let all: Vec<(DecoratedKey, u32)> = map.range(..).map(|e| (e.key().clone(), *e.value())).collect();
        assert_eq!(all, model.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
        for pair in tokens.windows(2) {
            let (a, b) = (key(pair[0].min(pair[1]), 1), key(pair[0].max(pair[1]), 0));
            let got: Vec<DecoratedKey> =
                map.range((Bound::Excluded(a.clone()), Bound::Included(b.clone()))).map(|e| e.key().clone()).collect();
            let want: Vec<DecoratedKey> = model.range((Bound::Excluded(a), Bound::Included(b))).map(|(k, _)| k.clone()).collect();
            assert_eq!(got, want);
        }
        assert_eq!(map.range(key(5, 0)..key(-5, 0)).count(), 0, "an inverted range is empty");
        for (k, v) in &model {
            assert_eq!(map.get(k).map(|e| *e.value()), Some(*v));
        }
        assert!(map.get(&key(12345, 9)).is_none());
    }
}
