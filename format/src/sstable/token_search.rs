//! Finding a token among an sstable's partitions (sorted by token) through a directory of their
//! tokens' leading bits.
//!
//! Tokens are Murmur3 hashes, spread uniformly over the ring (R1.4). The [`TokenDirectory`] splits
//! the ring into `2^bits` equal buckets by the tokens' leading bits (about [`TOKENS_PER_BUCKET`]
//! tokens each) and records where each bucket's partitions start. A lookup reads two neighbouring
//! directory entries (one cache line) and then the bucket's partitions themselves, usually one: two
//! memory accesses, the second being the partition's own index entry, which the read needs anyway.
//! A binary search over a million partitions makes twenty, each a cache miss; a search in a
//! separate dense token array, then the entry, three. A skewed input (few distinct tokens, a
//! crafted key set) cannot make it slow: a crowded bucket is binary searched.
//!
//! Memory: four bytes per bucket, about four bytes per partition.
//!
//! Thread-safety: immutable after building; pure functions.

/// The average number of tokens per bucket the directory is sized for (at most; between a half
/// and one with the bucket count a power of two).
pub const TOKENS_PER_BUCKET: usize = 1;
/// The most leading bits a directory uses (2^24 buckets, 64 MiB of directory).
const MAX_BITS: u32 = 24;

/// Where the tokens of each bucket of leading bits start in a sorted token array (see the module
/// comment).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenDirectory {
    /// `starts[b]` is the number of tokens in buckets before `b`; `2^bits + 1` entries, the last
    /// being the token count. Empty when there are more tokens than a `u32` counts (every search
    /// is then a binary search).
    starts: Vec<u32>,
    bits: u32,
}

/// The bucket of `token` among `2^bits`: its leading bits, with the ring's order (signed tokens,
/// so the sign bit is flipped).
fn bucket(token: i64, bits: u32) -> usize {
    let unsigned = (token as u64) ^ (1 << 63);
    // `bits` is at most MAX_BITS, so the shift is in range and the result fits a usize.
    if bits == 0 {
        0
    } else {
        (unsigned >> (64 - bits)) as usize
    }
}

impl TokenDirectory {
    /// The directory of `items` (sorted ascending by `token_of`).
    pub fn build<T>(items: &[T], token_of: impl Fn(&T) -> i64) -> TokenDirectory {
        let Ok(count) = u32::try_from(items.len()) else { return TokenDirectory::default() };
        let buckets = (items.len() / TOKENS_PER_BUCKET).max(1);
        let bits = buckets.ilog2().min(MAX_BITS);
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0usize;
        for b in 0..1usize << bits {
            while items.get(i).is_some_and(|item| bucket(token_of(item), bits) < b) {
                i += 1;
            }
            // i <= tokens.len(), which fits a u32.
            starts.push(u32::try_from(i).unwrap_or(count));
        }
        starts.push(count);
        TokenDirectory { starts, bits }
    }

    /// The number of items below `token` in `items` (those the directory was built from, with
    /// the same `token_of`): the index of the first item whose token is at or above it, as
    /// `items.partition_point(|item| token_of(item) < token)`.
    pub fn lower_bound<T>(&self, items: &[T], token: i64, token_of: impl Fn(&T) -> i64) -> usize {
        let b = bucket(token, self.bits);
        let (lo, hi) = match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, (hi as usize).min(items.len())),
            _ => (0, items.len()),
        };
        // Every item before `lo` is in an earlier bucket, so below `token`; every item from `hi`
        // on is in a later one, so above it.
        let lo = lo.min(hi);
        lo + items[lo..hi].partition_point(|item| token_of(item) < token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(directory: &TokenDirectory, tokens: &[i64], probe: i64) {
        assert_eq!(
            directory.lower_bound(tokens, probe, |&t| t),
            tokens.partition_point(|&t| t < probe),
            "probe {probe} in {} tokens",
            tokens.len()
        );
    }

    /// Agrees with a binary search on uniform, clustered, duplicated and extreme tokens.
    #[test]
    fn agrees_with_partition_point() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let uniform: Vec<i64> = {
            let mut v: Vec<i64> = (0..5000).map(|_| next() as i64).collect();
            v.sort_unstable();
            v
        };
        let clustered: Vec<i64> = {
            let mut v: Vec<i64> = (0..3000).map(|i| if i % 3 == 0 { i64::MIN + i } else { (next() % 64) as i64 }).collect();
            v.push(i64::MAX);
            v.sort_unstable();
            v
        };
        let duplicated: Vec<i64> = (0..2000).map(|i| i / 100).collect();
        let extremes = [i64::MIN, i64::MIN, -1, 0, 1, i64::MAX, i64::MAX];
        for tokens in [&uniform[..], &clustered[..], &duplicated[..], &extremes[..], &[][..], &[7][..]] {
            let directory = TokenDirectory::build(tokens, |&t| t);
            for &t in tokens.iter().step_by(7) {
                check(&directory, tokens, t);
                check(&directory, tokens, t.saturating_add(1));
                check(&directory, tokens, t.saturating_sub(1));
            }
            for _ in 0..500 {
                check(&directory, tokens, next() as i64);
            }
            check(&directory, tokens, i64::MIN);
            check(&directory, tokens, i64::MAX);
        }
    }

    #[test]
    fn buckets_hold_a_few_tokens() {
        assert_eq!(TokenDirectory::build(&[], |&t: &i64| t).starts, vec![0, 0]);
        let tokens: Vec<i64> = (0..4096u64).map(|i| ((i << 52) ^ (1 << 63)) as i64).collect();
        let directory = TokenDirectory::build(&tokens, |&t| t);
        assert_eq!(directory.bits, 12);
        assert!(directory.starts.windows(2).all(|w| w[1] - w[0] == 1));
    }
}
