//! The statistics of the paired engine, computed from the rounds themselves.
//!
//! # The interval of a median
//!
//! Every figure the engine reports is the median over rounds of a per-round value (a
//! time per call, a ratio to the same round's baseline), with the distribution-free
//! confidence interval of a median from order statistics: for n values sorted
//! x(1) <= ... <= x(n), the interval [x(k), x(n+1-k)] covers the true median with
//! probability 1 - 2 P(B < k), B ~ Binomial(n, 1/2), whatever the distribution of the
//! values, as long as rounds are independent draws of it (W. J. Conover, *Practical
//! Nonparametric Statistics*, 3rd ed., Wiley 1999, section 3.2). k is the largest whose
//! coverage is at least the level asked, so the interval is exact or conservative, never
//! narrower than the data allow; no resampling is involved, so it is also repeatable.

use super::Interval;

/// The median of `values`: the middle value, the upper of the two middle values for an
/// even count; `None` for no values. NaNs sort last (`f64::total_cmp`).
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// ln C(n, i) / 2^n for i = 0..=n, iteratively (no factorials, no overflow).
fn binomial_half_log_pmf(n: usize) -> impl Iterator<Item = f64> {
    let base = -(n as f64) * std::f64::consts::LN_2;
    (0..=n).scan(0.0f64, move |log_choose, i| {
        if i > 0 {
            *log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        Some(base + *log_choose)
    })
}

/// The 1-based rank k of the lower bound of the median's interval at `level` for `n`
/// values (the upper bound is rank n + 1 - k); `None` when n is too small for any
/// interval at that level (the whole range covers less).
pub(crate) fn median_rank(n: usize, level: f64) -> Option<usize> {
    let tail = (1.0 - level) / 2.0;
    // P(B < k) for k = 1, 2, ...: the largest k with P(B < k) <= tail.
    let mut below = 0.0;
    let mut k = None;
    for (i, log_p) in binomial_half_log_pmf(n).enumerate().take(n / 2 + 1) {
        // below = P(B < i + 1) after adding P(B = i).
        below += log_p.exp();
        if below <= tail {
            k = Some(i + 1);
        } else {
            break;
        }
    }
    k
}

/// The median of `values` with its distribution-free interval at `level` (see the module
/// docs). With too few values for that level, the interval is the whole range, which then
/// covers less than asked; callers run enough rounds that this does not happen.
pub(crate) fn median_interval(values: &[f64], level: f64) -> Option<Interval> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let estimate = *sorted.get(n / 2)?;
    let (lower, upper) = match median_rank(n, level) {
        Some(k) => (sorted[k - 1], sorted[n - k]),
        None => (sorted[0], sorted[n - 1]),
    };
    Some(Interval::new(estimate, lower, upper))
}

/// A small deterministic generator (xorshift64*, Vigna 2016) for the order of variants
/// in a round: seeded, so a run can be repeated, and needing no dependency.
#[derive(Debug, Clone)]
pub(crate) struct Shuffle(u64);

impl Shuffle {
    /// A generator from a seed (0 is replaced by a fixed odd constant).
    pub(crate) fn new(seed: u64) -> Shuffle {
        Shuffle(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A fair coin.
    pub(crate) fn coin(&mut self) -> bool {
        self.next() >> 63 == 1
    }

    /// A number below `n` (> 0), near enough uniform for the small `n` it is used with.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ranks_match_the_published_table() {
        // Conover's table (and the binomial): n = 6 is the smallest with a 95% interval,
        // [x(1), x(6)] at 96.9%; n = 20 gives ranks 6..15 (95.9%); n = 100 gives 40..61.
        assert_eq!(median_rank(5, 0.95), None);
        assert_eq!(median_rank(6, 0.95), Some(1));
        assert_eq!(median_rank(20, 0.95), Some(6));
        assert_eq!(median_rank(100, 0.95), Some(40));
        // Large n: about n/2 - 0.98 sqrt(n).
        let k = median_rank(10_000, 0.95).unwrap();
        assert!((4900..=4902).contains(&k), "{k}");
    }

    #[test]
    fn median_interval_on_hand_made_data() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let i = median_interval(&values, 0.95).unwrap();
        assert_eq!((i.estimate, i.lower, i.upper), (11.0, 6.0, 15.0));
        let few = median_interval(&[2.0, 1.0, 3.0], 0.95).unwrap();
        assert_eq!((few.lower, few.upper), (1.0, 3.0), "whole range when too few");
        assert!(median_interval(&[], 0.95).is_none());
    }

    #[test]
    fn shuffles_are_permutations_and_repeatable() {
        let mut a: Vec<u32> = (0..10).collect();
        let mut b = a.clone();
        Shuffle::new(7).shuffle(&mut a);
        Shuffle::new(7).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
