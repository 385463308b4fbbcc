//! Finding a token in the sorted tokens of an sstable's partitions by interpolation.
//!
//! Tokens are Murmur3 hashes, spread uniformly over the ring (R1.4), so the position of a token
//! among `n` sorted tokens is predicted by its value: interpolation lands within a few slots in
//! two or three probes, where a binary search over a million partitions takes twenty, each a
//! cache miss. A skewed input (few distinct tokens, a crafted key set) cannot make it slow: after
//! [`INTERPOLATION_PROBES`] guesses the search halves the interval like a binary search.
//!
//! Thread-safety: pure functions.

/// Interpolation guesses before the search falls back to halving.
const INTERPOLATION_PROBES: u32 = 4;
/// Intervals this short are finished by a binary search (they span a few cache lines).
const SHORT: usize = 16;

/// The number of tokens below `token` in `tokens` (sorted ascending): the index of the first
/// token at or above it, as `tokens.partition_point(|t| *t < token)`.
pub fn lower_bound(tokens: &[i64], token: i64) -> usize {
    // Invariant: tokens[..lo] < token <= tokens[hi..].
    let (mut lo, mut hi) = (0usize, tokens.len());
    let mut probes = 0;
    while hi - lo > SHORT {
        let (first, last) = (i128::from(tokens[lo]), i128::from(tokens[hi - 1]));
        let target = i128::from(token);
        if target <= first {
            return lo;
        }
        if target > last {
            return hi;
        }
        let mid = if probes < INTERPOLATION_PROBES {
            probes += 1;
            // first < target <= last, so the guess lies in lo..hi - 1.
            lo + ((target - first) * (hi - lo - 1) as i128 / (last - first)) as usize
        } else {
            lo + (hi - lo) / 2
        };
        if tokens[mid] < token {
            lo = mid + 1;
        } else {
            hi = mid;
        }
        // Check the guess's neighbourhood: with uniform tokens the answer is usually a few
        // slots away, so one step of `SHORT` on the other side settles it.
        if hi - lo > SHORT {
            if tokens[mid] < token && lo + SHORT < hi && tokens[lo + SHORT] >= token {
                hi = lo + SHORT;
            } else if tokens[mid] >= token && hi > lo + SHORT && tokens[hi - SHORT - 1] < token {
                lo = hi - SHORT;
            }
        }
    }
    lo + tokens[lo..hi].partition_point(|&t| t < token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tokens: &[i64], probe: i64) {
        assert_eq!(lower_bound(tokens, probe), tokens.partition_point(|&t| t < probe), "probe {probe} in {} tokens", tokens.len());
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
        for tokens in [&uniform[..], &clustered[..], &duplicated[..], &[][..], &[7][..]] {
            for &t in tokens.iter().step_by(7) {
                check(tokens, t);
                check(tokens, t.saturating_add(1));
                check(tokens, t.saturating_sub(1));
            }
            for _ in 0..500 {
                check(tokens, next() as i64);
            }
            check(tokens, i64::MIN);
            check(tokens, i64::MAX);
        }
    }
}
