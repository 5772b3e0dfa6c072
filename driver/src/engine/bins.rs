//! A small sparse latency histogram with 2 significant digits, cheap enough to keep one per
//! time bucket per load thread (a dense HDR histogram would be ~24 KB each).
//!
//! Values below 100 µs are exact; above, each bin covers one 2-digit mantissa of a power of ten
//! (e.g. 12 000-12 999 µs), so a percentile is within 5% of the true value. Only bins that saw
//! a sample are stored: at most ~1 700, usually a few dozen.

/// Latency counts in microseconds, bucketed to 2 significant digits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyBins {
    /// `(bin index, count)`, sorted by index.
    pub bins: Vec<(u16, u64)>,
}

impl LatencyBins {
    /// Counts one latency of `us` microseconds.
    pub fn record(&mut self, us: u64) {
        self.add(index(us), 1);
    }

    /// Bins as a peer sent them, `(bin index, count)` in any order: `None` if an index is not
    /// a bin or the counts of one bin do not add up in 64 bits.
    pub fn from_pairs(mut pairs: Vec<(u16, u64)>) -> Option<Self> {
        if pairs.iter().any(|&(idx, _)| idx > index(u64::MAX)) {
            return None;
        }
        pairs.sort_unstable_by_key(|&(idx, _)| idx);
        let mut bins: Vec<(u16, u64)> = Vec::with_capacity(pairs.len());
        for (idx, n) in pairs {
            match bins.last_mut() {
                Some(last) if last.0 == idx => last.1 = last.1.checked_add(n)?,
                _ => bins.push((idx, n)),
            }
        }
        Some(Self { bins })
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LatencyBins) {
        for &(idx, n) in &other.bins {
            self.add(idx, n);
        }
    }

    fn add(&mut self, idx: u16, n: u64) {
        match self.bins.binary_search_by_key(&idx, |&(i, _)| i) {
            Ok(at) => self.bins[at].1 = self.bins[at].1.saturating_add(n),
            Err(at) => self.bins.insert(at, (idx, n)),
        }
    }

    /// Number of samples (saturating: a peer's bins may claim more than fit).
    pub fn count(&self) -> u64 {
        self.bins
            .iter()
            .fold(0, |sum, &(_, n)| sum.saturating_add(n))
    }

    /// Number of samples, or `None` if it does not fit in 64 bits.
    pub fn checked_count(&self) -> Option<u64> {
        self.bins
            .iter()
            .try_fold(0u64, |sum, &(_, n)| sum.checked_add(n))
    }

    /// The value (µs, middle of its bin) at quantile `q` in `[0, 1]`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(idx, n) in &self.bins {
            seen = n.saturating_add(seen);
            if seen >= rank {
                return Some(middle(idx));
            }
        }
        self.bins.last().map(|&(idx, _)| middle(idx))
    }
}

/// The bin of `us`: exact below 100, then 90 bins (mantissa 10..=99) per power of ten.
pub(crate) const fn index(us: u64) -> u16 {
    if us < 100 {
        return us as u16;
    }
    let (mut mantissa, mut exponent) = (us, 0u32);
    while mantissa >= 100 {
        mantissa /= 10;
        exponent += 1;
    }
    // exponent <= 18 for a u64, so the index stays below 100 + 18 * 90.
    (100 + (exponent - 1) * 90 + (mantissa as u32 - 10)) as u16
}

/// Lower bound and width of bin `idx`.
fn bounds(idx: u16) -> (u64, u64) {
    if idx < 100 {
        return (u64::from(idx), 1);
    }
    let rest = u32::from(idx) - 100;
    let width = 10u64.pow(rest / 90 + 1);
    ((10 + u64::from(rest % 90)) * width, width)
}

fn middle(idx: u16) -> u64 {
    let (low, width) = bounds(idx);
    low + width / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_round_trip_and_stay_within_two_digits() {
        for us in [
            0,
            1,
            99,
            100,
            101,
            999,
            1_000,
            12_345,
            99_999,
            600_000_000,
            u64::MAX,
        ] {
            let (low, width) = bounds(index(us));
            assert!(low <= us && us - low < width, "{us}: {low} + {width}");
            assert!(width == 1 || width * 10 <= low, "{us}: bin too wide");
        }
        assert_eq!(index(12_345), index(12_000));
        assert_eq!(
            LatencyBins::from_pairs(vec![(7, 1), (3, 2), (7, 4)]),
            Some(LatencyBins {
                bins: vec![(3, 2), (7, 5)]
            })
        );
        assert_eq!(LatencyBins::from_pairs(vec![(7, u64::MAX), (7, 1)]), None);
        assert_eq!(
            LatencyBins::from_pairs(vec![(index(u64::MAX) + 1, 1)]),
            None
        );
        assert_ne!(index(12_345), index(13_000));
    }

    #[test]
    fn quantiles() {
        let mut a = LatencyBins::default();
        assert_eq!(a.quantile(0.5), None);
        for us in 1..=98 {
            a.record(us);
        }
        let mut b = LatencyBins::default();
        b.record(12_345);
        b.record(50_000);
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.quantile(0.5), Some(50));
        assert_eq!(a.quantile(0.99), Some(12_500));
        assert_eq!(a.quantile(1.0), Some(50_500));
        assert_eq!(a.bins.len(), 100);
    }
}
