//! The block cache (DESIGN §4): a bounded, sharded CLOCK cache of decoded (checksum-verified,
//! decompressed) sstable data blocks, keyed by `(file id, block offset)` and shared by every
//! reader of an engine.
//!
//! Layout: the capacity is split evenly between up to [`DEFAULT_SHARDS`] shards (fewer for small
//! caches, so each shard holds at least [`MIN_SHARD_CAPACITY`] bytes when it can); a key's shard is
//! chosen by a hash of `(file id, offset)`. Each shard is a CLOCK (second chance) cache, an
//! approximation of LRU: a `HashMap` from key to a slot in a slab of nodes, each with a
//! "referenced" mark. A hit sets its node's mark and touches nothing else (an LRU list would
//! relink two neighbours and the head, cache misses of their own); eviction sweeps a hand over
//! the slab, clearing marks, and evicts the first node found unmarked. So a block read since the
//! hand last passed survives one more sweep, and blocks never read again leave in insertion order.
//!
//! Invariants (per shard, hence for the whole cache):
//! - the charged bytes — each entry costs its block length plus [`ENTRY_OVERHEAD`] — never exceed
//!   the shard's capacity, so the total never exceeds the configured capacity;
//! - the map and the slab's occupied slots hold exactly the same entries, the free list names
//!   exactly the empty slots, and the shard's byte count is the sum of the entries' charges;
//! - a block whose charge exceeds a shard's capacity is never cached (counted as `rejected`); a
//!   capacity of 0 therefore disables caching;
//! - inserting evicts (see above) until the new block fits; re-inserting a cached key replaces
//!   its block.
//!
//! A block leaving the cache is offered to [`block_buffers::recycle`], so the next decompression
//! on the evicting thread reuses its buffer when no reader still holds it.
//!
//! Thread-safety: `Send + Sync`. Each shard sits behind its own `parking_lot::Mutex`, held only
//! for map and slab updates (an eviction's sweep is amortized O(1); `evict_file` scans each shard
//! once, one shard at a time); no
//! operation holds two shard locks. Cached blocks are `Bytes`, so a hit clones a reference count,
//! never the data, and a block evicted while a reader holds it stays valid for that reader.
//! [`ClockBlockCache::stats`] sums the shards one after another, so under concurrent use it is not
//! an atomic snapshot (each counter is still exact for its shard).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;
use parking_lot::Mutex;
use talus_format::sstable::{block_buffers, BlockCache};

/// The largest number of shards a cache is split into.
pub const DEFAULT_SHARDS: usize = 16;

/// [`ClockBlockCache::new`] uses fewer shards when needed to give each at least this many bytes.
pub const MIN_SHARD_CAPACITY: u64 = 1 << 20;

/// Bytes charged per cached block on top of its length (map entry, list node, `Bytes` header).
pub const ENTRY_OVERHEAD: u64 = 64;

/// Counters of a block cache, summed over its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Lookups that found their block.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Blocks cached (replacements included).
    pub inserts: u64,
    /// Blocks dropped to make room for others.
    pub evictions: u64,
    /// Blocks not cached because they are larger than a shard's capacity.
    pub rejected: u64,
    /// Blocks dropped by [`ClockBlockCache::evict_file`].
    pub invalidated: u64,
    /// Blocks cached now.
    pub entries: u64,
    /// Bytes charged now (block lengths plus [`ENTRY_OVERHEAD`] each); at most `capacity`.
    pub bytes: u64,
    /// The configured capacity in bytes.
    pub capacity: u64,
}

type Key = (u64, u64);

/// Hashes a [`Key`] with splitmix64's finalizer (the keys are not chosen by an adversary: file
/// ids and block offsets), far cheaper than the default SipHash on every lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = mix(self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ x);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Node {
    key: Key,
    block: Bytes,
    charge: u64,
    /// Read since the hand last passed (CLOCK's second chance).
    referenced: bool,
}

/// One CLOCK shard (see the module comment for its invariants).
struct Shard {
    capacity: u64,
    map: HashMap<Key, usize, BuildHasherDefault<KeyHasher>>,
    /// The slab: `None` in free slots.
    nodes: Vec<Option<Node>>,
    free: Vec<usize>,
    /// The next slot the eviction sweep looks at.
    hand: usize,
    bytes: u64,
    stats: BlockCacheStats,
}

impl Shard {
    fn new(capacity: u64) -> Shard {
        Shard {
            capacity,
            map: HashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            hand: 0,
            bytes: 0,
            stats: BlockCacheStats::default(),
        }
    }

    /// Drops the entry in slot `i`, offering its block for reuse.
    fn remove(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i).and_then(Option::take) {
            self.map.remove(&node.key);
            self.bytes -= node.charge;
            block_buffers::recycle(node.block);
            self.free.push(i);
        }
    }

    /// Evicts one entry: the first one from the hand on not read since the hand last passed,
    /// clearing the marks of those that were. Needs a non-empty shard (then a full sweep clears
    /// every mark, so the second one finds a victim).
    fn evict_one(&mut self) {
        while !self.map.is_empty() {
            if self.hand >= self.nodes.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            match self.nodes.get_mut(i) {
                Some(Some(node)) if node.referenced => node.referenced = false,
                Some(Some(_)) => {
                    self.remove(i);
                    self.stats.evictions += 1;
                    return;
                }
                _ => {}
            }
        }
    }

    fn get(&mut self, key: Key) -> Option<Bytes> {
        let node = self.map.get(&key).and_then(|&i| self.nodes.get_mut(i)).and_then(Option::as_mut);
        let Some(node) = node else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.hits += 1;
        node.referenced = true;
        Some(node.block.clone())
    }

    fn insert(&mut self, key: Key, block: Bytes) {
        let charge = (block.len() as u64).saturating_add(ENTRY_OVERHEAD);
        if charge > self.capacity {
            self.stats.rejected += 1;
            return;
        }
        if let Some(&i) = self.map.get(&key) {
            self.remove(i);
        }
        while self.bytes + charge > self.capacity && !self.map.is_empty() {
            self.evict_one();
        }
        let node = Some(Node { key, block, charge, referenced: false });
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, i);
        self.bytes += charge;
        self.stats.inserts += 1;
    }

    fn evict_file(&mut self, file_id: u64) -> u64 {
        let victims: Vec<usize> = self.map.iter().filter(|(key, _)| key.0 == file_id).map(|(_, &i)| i).collect();
        for &i in &victims {
            self.remove(i);
        }
        self.stats.invalidated += victims.len() as u64;
        victims.len() as u64
    }

    /// Checks the shard's invariants (tests only).
    #[cfg(test)]
    fn check(&self) {
        let (mut count, mut bytes) = (0, 0);
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Some(node) => {
                    assert_eq!(self.map.get(&node.key), Some(&i));
                    assert_eq!(node.charge, node.block.len() as u64 + ENTRY_OVERHEAD);
                    count += 1;
                    bytes += node.charge;
                }
                None => assert!(self.free.contains(&i)),
            }
        }
        assert_eq!(count, self.map.len());
        assert_eq!(bytes, self.bytes);
        assert!(self.bytes <= self.capacity);
        assert_eq!(self.nodes.len(), self.map.len() + self.free.len());
    }
}

/// A bounded, sharded CLOCK [`BlockCache`] (see the module comment).
pub struct ClockBlockCache {
    shards: Vec<Mutex<Shard>>,
    capacity: u64,
}

impl ClockBlockCache {
    /// A cache of at most `capacity` bytes (0 disables caching), split into up to
    /// [`DEFAULT_SHARDS`] shards of at least [`MIN_SHARD_CAPACITY`] bytes when possible.
    pub fn new(capacity: u64) -> ClockBlockCache {
        let shards = usize::try_from(capacity / MIN_SHARD_CAPACITY).unwrap_or(DEFAULT_SHARDS).clamp(1, DEFAULT_SHARDS);
        ClockBlockCache::with_shards(capacity, shards)
    }

    /// A cache of at most `capacity` bytes split evenly into `shards` shards (at least one). A
    /// block larger than `capacity / shards` (minus [`ENTRY_OVERHEAD`]) is never cached.
    pub fn with_shards(capacity: u64, shards: usize) -> ClockBlockCache {
        let shards = shards.max(1);
        let per_shard = capacity / shards as u64;
        ClockBlockCache { shards: (0..shards).map(|_| Mutex::new(Shard::new(per_shard))).collect(), capacity }
    }

    /// The configured capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The counters, summed over the shards.
    pub fn stats(&self) -> BlockCacheStats {
        let mut total = BlockCacheStats { capacity: self.capacity, ..BlockCacheStats::default() };
        for shard in &self.shards {
            let shard = shard.lock();
            let s = &shard.stats;
            total.hits += s.hits;
            total.misses += s.misses;
            total.inserts += s.inserts;
            total.evictions += s.evictions;
            total.rejected += s.rejected;
            total.invalidated += s.invalidated;
            total.entries += shard.map.len() as u64;
            total.bytes += shard.bytes;
        }
        total
    }

    /// Drops every cached block of file `file_id` (its sstable was deleted or quarantined) and
    /// returns how many there were.
    pub fn evict_file(&self, file_id: u64) -> u64 {
        self.shards.iter().map(|shard| shard.lock().evict_file(file_id)).sum()
    }

    fn shard(&self, file_id: u64, offset: u64) -> &Mutex<Shard> {
        // splitmix64's finalizer over both halves of the key (the shard's map mixes differently).
        let z = mix(file_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ offset);
        &self.shards[(z % self.shards.len() as u64) as usize]
    }

    #[cfg(test)]
    fn check(&self) {
        for shard in &self.shards {
            shard.lock().check();
        }
    }
}

impl BlockCache for ClockBlockCache {
    fn get(&self, file_id: u64, offset: u64) -> Option<Bytes> {
        self.shard(file_id, offset).lock().get((file_id, offset))
    }

    fn insert(&self, file_id: u64, offset: u64, block: Bytes) {
        self.shard(file_id, offset).lock().insert((file_id, offset), block);
    }
}

impl fmt::Debug for ClockBlockCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockBlockCache").field("shards", &self.shards.len()).field("stats", &self.stats()).finish()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// A block of `len` (at least 16) bytes that names its key.
    fn block(file_id: u64, offset: u64, len: usize) -> Bytes {
        let mut b = vec![0xAB; len.max(16)];
        b[..8].copy_from_slice(&file_id.to_le_bytes());
        b[8..16].copy_from_slice(&offset.to_le_bytes());
        Bytes::from(b)
    }

    fn names(b: &Bytes, file_id: u64, offset: u64) -> bool {
        b[..8] == file_id.to_le_bytes() && b[8..16] == offset.to_le_bytes()
    }

    const ONE: u64 = 100 + ENTRY_OVERHEAD;

    #[test]
    fn capacity_is_never_exceeded_under_random_inserts() {
        let mut rng = SmallRng::seed_from_u64(42);
        for shards in [1, 4, 16] {
            let cache = ClockBlockCache::with_shards(256 * 1024, shards);
            for _ in 0..20_000 {
                let (file, offset) = (rng.random_range(0..8), rng.random_range(0..200) * 4096);
                if rng.random_bool(0.5) {
                    cache.insert(file, offset, block(file, offset, rng.random_range(16..20_000)));
                    assert!(cache.stats().bytes <= cache.capacity());
                } else if let Some(b) = cache.get(file, offset) {
                    assert!(names(&b, file, offset));
                }
            }
            cache.check();
            let stats = cache.stats();
            assert!(stats.evictions > 0 && stats.hits > 0 && stats.misses > 0);
            // Every cached block was inserted; replacements account for the rest.
            assert!(stats.inserts >= stats.entries + stats.evictions);
        }
    }

    #[test]
    fn a_block_read_since_the_hand_passed_gets_a_second_chance() {
        let cache = ClockBlockCache::with_shards(3 * ONE, 1);
        // Whether a block is cached, without marking it as read.
        let cached = |offset| cache.shards[0].lock().map.contains_key(&(7, offset));
        for offset in 1..=3 {
            cache.insert(7, offset, block(7, offset, 100));
        }
        assert!(cache.get(7, 1).is_some());
        // 1 was read: the hand clears its mark and takes 2, the oldest unread.
        cache.insert(7, 4, block(7, 4, 100));
        assert!(!cached(2) && cached(1) && cached(3) && cached(4));
        // Nothing is marked now: the hand goes on from where it stopped, 3 then 1.
        cache.insert(7, 5, block(7, 5, 100));
        assert!(!cached(3) && cached(1));
        cache.insert(7, 6, block(7, 6, 100));
        assert!(!cached(1) && cached(4) && cached(5) && cached(6));
        assert_eq!(cache.stats().evictions, 3);
        cache.check();
    }

    #[test]
    fn eviction_counts_and_room_for_a_large_block() {
        let cache = ClockBlockCache::with_shards(3 * ONE, 1);
        for offset in 0..10 {
            cache.insert(1, offset, block(1, offset, 100));
        }
        let stats = cache.stats();
        assert_eq!((stats.inserts, stats.evictions, stats.entries, stats.bytes), (10, 7, 3, 3 * ONE));
        // A block of two slots evicts the two least recently used.
        cache.insert(2, 0, block(2, 0, 200 + ENTRY_OVERHEAD as usize));
        let stats = cache.stats();
        assert_eq!((stats.evictions, stats.entries, stats.bytes), (9, 2, 3 * ONE));
        assert!(cache.get(1, 9).is_some() && cache.get(1, 8).is_none());
        // Re-inserting a key replaces its block without double counting or evicting.
        cache.insert(1, 9, block(1, 9, 50));
        let stats = cache.stats();
        assert_eq!((stats.inserts, stats.evictions, stats.entries, stats.bytes), (12, 9, 2, 2 * ONE + 50 + ENTRY_OVERHEAD));
        assert_eq!(cache.get(1, 9).map(|b| b.len()), Some(50));
        cache.check();
    }

    #[test]
    fn oversized_blocks_and_zero_capacity_are_not_cached() {
        let cache = ClockBlockCache::with_shards(4 * ONE, 2);
        cache.insert(1, 0, block(1, 0, 2 * ONE as usize));
        assert!(cache.get(1, 0).is_none());
        let stats = cache.stats();
        assert_eq!((stats.rejected, stats.inserts, stats.bytes), (1, 0, 0));

        let off = ClockBlockCache::new(0);
        off.insert(1, 0, block(1, 0, 16));
        assert!(off.get(1, 0).is_none());
        let stats = off.stats();
        assert_eq!((stats.entries, stats.bytes, stats.misses, stats.rejected), (0, 0, 1, 1));
        // Small caches use fewer shards, so a shard still holds a large block.
        assert_eq!(off.shards.len(), 1);
        assert_eq!(ClockBlockCache::new(MIN_SHARD_CAPACITY * 4).shards.len(), 4);
        assert_eq!(ClockBlockCache::new(u64::MAX).shards.len(), DEFAULT_SHARDS);
    }

    #[test]
    fn evict_file_removes_exactly_that_files_blocks() {
        let cache = ClockBlockCache::new(64 << 20);
        assert_eq!(cache.shards.len(), DEFAULT_SHARDS);
        for file in 1..=3 {
            for offset in 0..50 {
                cache.insert(file, offset * 4096, block(file, offset * 4096, 1000));
            }
        }
        assert_eq!(cache.evict_file(2), 50);
        assert_eq!(cache.evict_file(2), 0);
        assert_eq!(cache.evict_file(99), 0);
        for offset in 0..50 {
            assert!(cache.get(2, offset * 4096).is_none());
            assert!(names(&cache.get(1, offset * 4096).unwrap(), 1, offset * 4096));
            assert!(names(&cache.get(3, offset * 4096).unwrap(), 3, offset * 4096));
        }
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.invalidated, stats.evictions), (100, 50, 0));
        assert_eq!(stats.bytes, 100 * (1000 + ENTRY_OVERHEAD));
        cache.check();
        // Freed slots are reused.
        cache.insert(2, 0, block(2, 0, 1000));
        assert!(cache.get(2, 0).is_some());
        cache.check();
    }

    /// 20,000 random operations on `cache`; returns how many were lookups.
    fn worker(cache: &ClockBlockCache, seed: u64) -> u64 {
        let (mut rng, mut gets) = (SmallRng::seed_from_u64(seed), 0);
        for i in 0..20_000 {
            let (file, offset) = (rng.random_range(0..4), rng.random_range(0..300) * 512);
            if rng.random_bool(0.3) {
                cache.insert(file, offset, block(file, offset, rng.random_range(16..4000)));
            } else {
                gets += 1;
                assert!(cache.get(file, offset).is_none_or(|b| names(&b, file, offset)));
            }
            if seed == 0 && i % 1000 == 0 {
                cache.evict_file(rng.random_range(0..4));
            }
            if i % 500 == 0 {
                assert!(cache.stats().bytes <= cache.capacity());
            }
        }
        gets
    }

    #[test]
    fn concurrent_gets_and_inserts_stay_within_capacity() {
        let cache = ClockBlockCache::with_shards(128 * 1024, 8);
        let gets: u64 = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn({
                        let cache = &cache;
                        move || worker(cache, t)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        cache.check();
        let stats = cache.stats();
        assert!(stats.bytes <= stats.capacity);
        assert_eq!(stats.hits + stats.misses, gets);
        assert!(stats.hits > 0 && stats.evictions > 0 && stats.invalidated > 0);
    }
}
