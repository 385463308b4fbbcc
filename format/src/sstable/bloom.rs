//! The sstable bloom filter over partition-key hashes (DESIGN §4; byte layout in `docs/format.md`,
//! "Bloom filter").
//!
//! A key is probed by [`key_hash`], the xxh3-64 of its legacy-form bytes. The filter is
//! *cache-blocked*: the bit array is a sequence of 512-bit (64-byte) blocks, the upper 32 bits of
//! the hash pick one block (multiply-shift, no division) and all `k` probes of the key fall inside
//! it, so a lookup touches one cache line. The probes are derived from the one 64-bit hash by
//! multiplicative rehashing: probe `i` is the top 9 bits of `hash × M_i` (wrapping), where
//! `M_i = M_0 × φ^i` are fixed odd constants ([`probe_multiplier`]). Unlike Kirsch–Mitzenmacher
//! double hashing (`h1 + i·h2`), whose arithmetic progressions degenerate inside a power-of-two
//! block (1.5× the target rate at 1e-3, 24× at 1e-5), these probes behave as independent hashes;
//! each one is a single multiply, and the probes of one key are independent of each other.
//! [`BloomFilter::build`] sizes the filter with the exact false-positive model of a blocked filter
//! (a Poisson number of keys per block), so the measured rate matches the requested one.
//!
//! Invariants of a [`BloomFilter`]: `1 <= probes <= MAX_PROBES` and at most `u32::MAX` blocks.
//! There are never false negatives: every hash given to `build` answers `true`. A filter with no
//! blocks (built from no keys) answers `false`; the filter built for a rate of 1.0 or more (or NaN)
//! is one block of ones and answers `true` (ScyllaDB's `bloom_filter_fp_chance = 1.0`).
//!
//! [`BloomFilter::decode`] is strict, total and canonical: any input decodes to a filter that
//! re-encodes to exactly the same bytes, or to an [`Error::Corrupt`] with structure
//! `"bloom filter"` and the offset of the bad field; it never panics and allocates only after
//! checking the bit array is present in full. There is no checksum here: the sstable footer
//! checksums the section.
//!
//! Thread-safety: an immutable plain value (`Send + Sync`); lookups take `&self`.

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::mutation_codec::{write_varint, Reader};

/// The encoding version this code writes and reads.
pub const BLOOM_FORMAT_VERSION: u8 = 1;
/// The largest probe count the decoder accepts (a rate of 1e-6 uses 17).
pub const MAX_PROBES: u8 = 32;
/// Bytes of one block: a cache line of 512 bits.
pub const BLOCK_BYTES: usize = 64;
/// The smallest false-positive rate a filter is sized for (lower rates are raised to it).
pub const MIN_FALSE_POSITIVE_RATE: f64 = 1e-6;
/// The largest false-positive rate a filter is sized for (rates up to 1.0 are lowered to it; a
/// rate of 1.0 or more disables the filter).
pub const MAX_FALSE_POSITIVE_RATE: f64 = 0.5;

const STRUCTURE: &str = "bloom filter";
const BLOCK_BITS: f64 = 512.0;
const WORDS: usize = BLOCK_BYTES / 8;
/// `M_0` and `φ` of the probe multipliers (both odd, so every multiplier is odd).
const MULTIPLIER_SEED: u64 = 0xC2B2_AE3D_27D4_EB4F;
const MULTIPLIER_STEP: u64 = 0x9E37_79B9_7F4A_7C15;
const PROBE_MULTIPLIERS: [u64; MAX_PROBES as usize] = {
    let mut table = [0u64; MAX_PROBES as usize];
    let mut m = MULTIPLIER_SEED;
    let mut i = 0;
    while i < table.len() {
        table[i] = m;
        m = m.wrapping_mul(MULTIPLIER_STEP);
        i += 1;
    }
    table
};

/// The hash a bloom filter stores for a partition key: xxh3-64 (seed 0) of its legacy-form bytes
/// (`PartitionKey::as_bytes`).
pub fn key_hash(key_legacy_bytes: &[u8]) -> u64 {
    xxh3_64(key_legacy_bytes)
}

/// `M_i`, the multiplier of probe `i` (`MULTIPLIER_SEED × MULTIPLIER_STEP^i`, wrapping); `None`
/// past [`MAX_PROBES`]. Bit `(hash × M_i) >> 55` of the key's block is probe `i`.
pub fn probe_multiplier(i: usize) -> Option<u64> {
    PROBE_MULTIPLIERS.get(i).copied()
}

/// One 512-bit block: bit `b` is bit `b % 64` of word `b / 64`. Aligned to a cache line.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(align(64))]
struct Block([u64; WORDS]);

/// The probe mask of `hash` inside its block: the bits that must all be set.
#[inline]
fn probe_mask(hash: u64, probes: u8) -> [u64; WORDS] {
    let mut mask = [0u64; WORDS];
    for &m in PROBE_MULTIPLIERS.iter().take(usize::from(probes)) {
        let bit = (hash.wrapping_mul(m) >> 55) as usize;
        mask[(bit >> 6) & (WORDS - 1)] |= 1 << (bit & 63);
    }
    mask
}

/// A blocked bloom filter over 64-bit key hashes. See the module documentation.
#[derive(Clone, PartialEq, Eq)]
pub struct BloomFilter {
    probes: u8,
    blocks: Vec<Block>,
}

impl std::fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BloomFilter").field("probes", &self.probes).field("blocks", &self.blocks.len()).finish()
    }
}

impl BloomFilter {
    /// A filter holding `hashes` (duplicates allowed) with the given target false-positive rate,
    /// clamped to [`MIN_FALSE_POSITIVE_RATE`]..=[`MAX_FALSE_POSITIVE_RATE`]. No hashes give a
    /// filter of no blocks (always `false`); a rate of 1.0 or more, or NaN, gives one block of
    /// ones (always `true`).
    pub fn build(hashes: &[u64], false_positive_rate: f64) -> BloomFilter {
        if hashes.is_empty() {
            return BloomFilter { probes: 1, blocks: Vec::new() };
        }
        if false_positive_rate.is_nan() || false_positive_rate >= 1.0 {
            return BloomFilter { probes: 1, blocks: vec![Block([u64::MAX; WORDS])] };
        }
        let (bits_per_key, probes) = sizing(false_positive_rate.clamp(MIN_FALSE_POSITIVE_RATE, MAX_FALSE_POSITIVE_RATE));
        let wanted = (hashes.len() as f64 * bits_per_key / BLOCK_BITS).ceil();
        // `as` saturates; the block index math needs at most u32::MAX blocks.
        let count = (wanted as u64).clamp(1, u64::from(u32::MAX)) as usize;
        let mut filter = BloomFilter { probes, blocks: vec![Block([0; WORDS]); count] };
        for &hash in hashes {
            let index = filter.block_index(hash);
            let mask = probe_mask(hash, probes);
            if let Some(block) = filter.blocks.get_mut(index) {
                block.0.iter_mut().zip(mask).for_each(|(w, m)| *w |= m);
            }
        }
        filter
    }

    #[inline]
    fn block_index(&self, hash: u64) -> usize {
        // At most u32::MAX blocks: the product fits in 64 bits and the index is below the count.
        (((hash >> 32) * self.blocks.len() as u64) >> 32) as usize
    }

    /// Whether the key of `hash` may be in the set: always `true` for a key given to
    /// [`BloomFilter::build`], `true` with about the target probability for other keys.
    #[inline]
    pub fn may_contain(&self, hash: u64) -> bool {
        let Some(block) = self.blocks.get(self.block_index(hash)) else {
            return false; // no blocks: the empty set
        };
        let mask = probe_mask(hash, self.probes);
        block.0.iter().zip(mask).fold(0, |missing, (&w, m)| missing | (m & !w)) == 0
    }

    /// The number of probes per key.
    pub fn probes(&self) -> u32 {
        u32::from(self.probes)
    }

    /// The size of the bit array in bits.
    pub fn bit_len(&self) -> u64 {
        self.blocks.len() as u64 * BLOCK_BITS as u64
    }

    /// The length of [`BloomFilter::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let count = self.blocks.len() as u64;
        2 + (64 - (count | 1).leading_zeros() as usize).div_ceil(7) + self.blocks.len() * BLOCK_BYTES
    }

    /// Appends the encoding: version, probe count, block count (varint), the blocks.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(BLOOM_FORMAT_VERSION);
        out.push(self.probes);
        write_varint(out, self.blocks.len() as u64);
        for block in &self.blocks {
            for word in block.0 {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
    }

    /// Decodes exactly one encoded filter (the whole filter section).
    pub fn decode(bytes: &[u8]) -> Result<BloomFilter> {
        let mut r = Reader { structure: STRUCTURE, buf: bytes, pos: 0, shared: None };
        let version = r.u8("version")?;
        if version != BLOOM_FORMAT_VERSION {
            return Err(r.corrupt(0, format!("unsupported version {version} (expected {BLOOM_FORMAT_VERSION})")));
        }
        let probes = r.u8("probe count")?;
        if !(1..=MAX_PROBES).contains(&probes) {
            return Err(r.corrupt(1, format!("probe count {probes} outside 1..={MAX_PROBES}")));
        }
        let count_at = r.pos;
        let count = r.varint("block count")?;
        if count > u64::from(u32::MAX) {
            return Err(r.corrupt(count_at, format!("block count {count} above {}", u32::MAX)));
        }
        let available = r.remaining() / BLOCK_BYTES;
        let count = match usize::try_from(count) {
            Ok(count) if count <= available => count,
            _ => {
                let reason = format!("{count} block(s) need {count}×{BLOCK_BYTES} bytes, {} left", r.remaining());
                return Err(r.corrupt(count_at, reason));
            }
        };
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let mut block = Block([0; WORDS]);
            for word in &mut block.0 {
                *word = u64::from_le_bytes(r.array("block word")?);
            }
            blocks.push(block);
        }
        if r.pos != bytes.len() {
            return Err(r.corrupt(r.pos, format!("{} trailing byte(s)", bytes.len() - r.pos)));
        }
        Ok(BloomFilter { probes, blocks })
    }
}

/// The expected false-positive rate of a blocked filter with `bits_per_key` bits per key and
/// `probes` probes: the number of keys in the probed block is Poisson with mean
/// `512 / bits_per_key`, and a block holding `j` keys answers a foreign key with probability
/// `(1 - (1 - 1/512)^(j·probes))^probes`. Needs `bits_per_key >= 1` (no underflow of `e^-mean`).
fn blocked_false_positive_rate(bits_per_key: f64, probes: u8) -> f64 {
    let mean = BLOCK_BITS / bits_per_key;
    let per_key_zero = (1.0 - 1.0 / BLOCK_BITS).powi(i32::from(probes));
    let last = (mean + 12.0 * mean.sqrt() + 30.0) as u32;
    let (mut weight, mut zero, mut rate) = ((-mean).exp(), 1.0f64, 0.0);
    for j in 0..=last {
        if j > 0 {
            weight *= mean / f64::from(j);
            zero *= per_key_zero;
        }
        rate += weight * (1.0 - zero).powi(i32::from(probes));
    }
    rate
}

/// The fewest bits per key (and the probe count achieving it) whose modelled rate is at most
/// `rate` (already clamped): a bisection on bits per key for each probe count near the
/// classical optimum `log2(1/rate)`, which a blocked filter shifts down by one or two.
fn sizing(rate: f64) -> (f64, u8) {
    let classical = (-rate.log2()).round().clamp(1.0, f64::from(MAX_PROBES)) as u8;
    let mut best = (f64::INFINITY, classical);
    for probes in classical.saturating_sub(3).max(1)..=classical.saturating_add(1).min(MAX_PROBES) {
        let (mut low, mut high) = (1.0f64, 64.0f64);
        if blocked_false_positive_rate(high, probes) > rate {
            continue;
        }
        for _ in 0..30 {
            let mid = (low + high) / 2.0;
            if blocked_false_positive_rate(mid, probes) <= rate {
                high = mid;
            } else {
                low = mid;
            }
        }
        if high < best.0 {
            best = (high, probes);
        }
    }
    if best.0.is_finite() {
        best
    } else {
        (64.0, classical)
    }
}

/// The property the `sstable_filter` fuzz target and the stable corpus test check: decoding never
/// panics; a decoded filter re-encodes to exactly the input (its `encoded_len` too) and decodes
/// again to itself; a failure is a corruption error of this structure with an offset inside the
/// input. `Err` describes a violation.
#[doc(hidden)]
pub fn check_decode(bytes: &[u8]) -> std::result::Result<(), String> {
    match BloomFilter::decode(bytes) {
        Ok(filter) => {
            let mut again = Vec::new();
            filter.encode(&mut again);
            if again != bytes || filter.encoded_len() != bytes.len() {
                return Err(format!(
                    "re-encoding changed the bytes: {} became {} (encoded_len {})",
                    bytes.len(),
                    again.len(),
                    filter.encoded_len()
                ));
            }
            for hash in [0, u64::MAX, key_hash(bytes)] {
                let _ = filter.may_contain(hash);
            }
            match BloomFilter::decode(&again) {
                Ok(twice) if twice == filter => Ok(()),
                other => Err(format!("decoding the re-encoding gave {other:?}, expected {filter:?}")),
            }
        }
        Err(Error::Corrupt { structure: STRUCTURE, offset, .. }) if offset <= bytes.len() => Ok(()),
        Err(e) => Err(format!("unexpected error: {e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_the_classical_formula_with_one_probe_and_decreases_with_bits() {
        // One probe: (1 - e^{-1/c}) for a classical filter; the blocked model is a little worse.
        let classical = 1.0 - (-1.0f64 / 10.0).exp();
        let blocked = blocked_false_positive_rate(10.0, 1);
        assert!(blocked >= classical && blocked < classical * 1.05, "{blocked} vs {classical}");
        let mut previous = 1.0;
        for bits in [2.0, 4.0, 8.0, 16.0, 32.0, 64.0] {
            let rate = blocked_false_positive_rate(bits, 6);
            assert!(rate < previous, "{bits} bits/key: {rate}");
            previous = rate;
        }
    }

    #[test]
    fn sizing_meets_the_rate_at_a_modest_premium_over_a_classical_filter() {
        for rate in [MIN_FALSE_POSITIVE_RATE, 1e-5, 1e-4, 1e-3, 0.01, 0.1, MAX_FALSE_POSITIVE_RATE] {
            let (bits, probes) = sizing(rate);
            let classical_bits = -rate.ln() / std::f64::consts::LN_2.powi(2);
            assert!(blocked_false_positive_rate(bits, probes) <= rate, "{rate}");
            assert!(blocked_false_positive_rate(bits * 0.99, probes) > rate, "{rate}: {bits} is not minimal");
            assert!(bits >= classical_bits * 0.99 && bits < classical_bits * 1.4, "{rate}: {bits} vs {classical_bits}");
            assert!((1..=MAX_PROBES).contains(&probes));
        }
        assert_eq!(sizing(0.01).1, 6);
        assert_eq!(sizing(0.5).1, 1);
    }

    #[test]
    fn probe_multipliers_are_odd_and_distinct() {
        for (i, m) in PROBE_MULTIPLIERS.iter().enumerate() {
            assert_eq!(m & 1, 1);
            assert!(!PROBE_MULTIPLIERS[..i].contains(m));
        }
        assert_eq!(probe_multiplier(0), Some(MULTIPLIER_SEED));
        assert_eq!(probe_multiplier(MAX_PROBES as usize), None);
    }

    #[test]
    fn rates_are_clamped_and_special_filters_answer_as_documented() {
        let hashes: Vec<u64> = (0..1000u64).map(|i| key_hash(&i.to_le_bytes())).collect();
        assert_eq!(BloomFilter::build(&hashes, 0.0), BloomFilter::build(&hashes, MIN_FALSE_POSITIVE_RATE));
        assert_eq!(BloomFilter::build(&hashes, 0.9), BloomFilter::build(&hashes, MAX_FALSE_POSITIVE_RATE));
        for disabled in [1.0, 2.0, f64::NAN, f64::INFINITY] {
            let filter = BloomFilter::build(&hashes, disabled);
            assert_eq!((filter.bit_len(), filter.probes()), (512, 1));
            assert!((0..1000u64).all(|h| filter.may_contain(h.wrapping_mul(MULTIPLIER_STEP))));
        }
        let empty = BloomFilter::build(&[], 0.01);
        assert_eq!((empty.bit_len(), empty.encoded_len()), (0, 3));
        assert!(!empty.may_contain(0) && !empty.may_contain(u64::MAX));
    }

    #[test]
    fn encoded_len_counts_the_varint() {
        for count in [0usize, 1, 127, 128, 300] {
            let filter = BloomFilter { probes: 3, blocks: vec![Block([7; WORDS]); count] };
            let mut out = vec![0xAA];
            filter.encode(&mut out);
            assert_eq!(out.len() - 1, filter.encoded_len(), "{count} blocks");
            assert_eq!(BloomFilter::decode(&out[1..]).ok(), Some(filter));
        }
    }
}
