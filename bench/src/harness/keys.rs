//! The keys and values of a run: key `i` is [`crate::key`]`(i)` cut or zero-padded to the key
//! size, the value of a write of key `i` is [`crate::value`] from a pool, and the orders the
//! workloads visit the keys in.

use crate::{key, value, BoxError, SplitMix};

/// Distinct values in the pool; a write of key `i` (salt `s`) stores value `(i + s) % VALUE_POOL`.
pub const VALUE_POOL: u64 = 4_096;

/// The keys `0..keys` of a run, their orders, and the value pool.
#[derive(Debug, Clone)]
pub struct KeySpace {
    keys: u64,
    key_size: usize,
    values: Vec<Vec<u8>>,
    random: Vec<u64>,
    sorted: Vec<u64>,
}

impl KeySpace {
    /// The key space of `keys` keys of `key_size` bytes (at least 8: the first 8 bytes of
    /// [`crate::key`] already tell keys apart) with values of `value_size` bytes; the random order
    /// is a shuffle seeded by `seed`.
    pub fn new(keys: u64, key_size: usize, value_size: usize, seed: u64) -> Result<KeySpace, BoxError> {
        if keys == 0 {
            return Err("the key count must be above zero".into());
        }
        if !(8..=1024).contains(&key_size) {
            return Err(format!("the key size must be in 8..=1024 bytes, not {key_size}").into());
        }
        let values = (0..VALUE_POOL).map(|i| value(i, value_size)).collect();
        let mut space = KeySpace { keys, key_size, values, random: shuffled(keys, seed), sorted: (0..keys).collect() };
        let mut sorted = std::mem::take(&mut space.sorted);
        sorted.sort_by_cached_key(|&i| space.key(i));
        space.sorted = sorted;
        Ok(space)
    }

    /// The number of keys.
    pub fn len(&self) -> u64 {
        self.keys
    }

    /// Whether there is no key (never: [`KeySpace::new`] refuses it).
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Key size in bytes.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// Value size in bytes.
    pub fn value_size(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Bytes of one key and its value.
    pub fn record_bytes(&self) -> u64 {
        (self.key_size + self.value_size()) as u64
    }

    /// Key `i` (`i >= len()`: a key never written).
    pub fn key(&self, i: u64) -> Vec<u8> {
        let mut k = key(i);
        k.resize(self.key_size, 0);
        k
    }

    /// A key above every key of the space (for range deletes up to the end).
    pub fn end_key(&self) -> Vec<u8> {
        vec![0xFF; self.key_size + 1]
    }

    /// The value of a write of key `i` with `salt` (a different salt: a different value).
    pub fn value(&self, i: u64, salt: u64) -> &[u8] {
        let slot = i.wrapping_add(salt) % VALUE_POOL;
        self.values.get(slot as usize).map_or(&[], Vec::as_slice)
    }

    /// Every key once, in a seeded random order.
    pub fn random_order(&self) -> &[u64] {
        &self.random
    }

    /// Every key once, in ascending byte order of the keys.
    pub fn sorted_order(&self) -> &[u64] {
        &self.sorted
    }
}

/// `0..n` in a random order (Fisher-Yates with [`SplitMix`] seeded by `seed`).
pub fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    let mut rng = SplitMix(seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}
