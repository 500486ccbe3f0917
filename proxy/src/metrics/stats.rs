//! A database's traffic since the proxy started, for `SHOW STATS`: transactions,
//! queries, bytes, and how long they took.
//!
//! Times are also counted in power-of-two buckets of microseconds, from which
//! percentiles are read (as the upper bound of their bucket) and which `/metrics` shows
//! as histograms. A handful of atomics kept by hand: prometheus-client's histograms do
//! not let their bucket counts be read back for the percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of [`Durations`]: up to 2^39 µs (about 6 days); longer ones count in the last.
const BUCKETS: usize = 40;

/// How many durations were recorded, their sum, and their spread.
pub struct Durations {
    count: AtomicU64,
    total_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            count: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Durations {
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        let bucket = (u64::BITS - us.leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn total_us(&self) -> u64 {
        self.total_us.load(Ordering::Relaxed)
    }

    /// Each bucket's upper bound in µs and how many durations fell in it (not
    /// cumulative), up to the last that holds any.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let used = counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        counts[..used]
            .iter()
            .enumerate()
            .map(|(bucket, &count)| (1u64 << bucket, count))
            .collect()
    }

    /// The mean in µs, 0 before the first.
    pub fn average_us(&self) -> u64 {
        self.total_us().checked_div(self.count()).unwrap_or(0)
    }

    /// The `p`-th percentile (0 < p ≤ 100) in µs, as the upper bound of the power-of-two
    /// bucket it falls in; 0 before the first.
    pub fn percentile_us(&self, p: u64) -> u64 {
        let buckets = self.buckets();
        let total: u64 = buckets.iter().map(|(_, count)| count).sum();
        let rank = (total * p).div_ceil(100).max(1);
        let mut seen = 0;
        for (upper, count) in buckets {
            seen += count;
            if seen >= rank {
                return upper;
            }
        }
        0
    }
}

/// One database's figures.
#[derive(Default)]
pub struct DatabaseStats {
    /// Periods during which something ran for a client, from its first message to its
    /// return to idle: a transaction, or a statement outside one.
    pub transactions: Durations,
    /// Simple queries, extended-protocol batches (to Sync) and function calls, to their
    /// ReadyForQuery.
    pub queries: Durations,
    /// Time sessions waited for a server connection.
    pub waits: Durations,
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_and_percentiles_follow_what_was_recorded() {
        let d = Durations::default();
        assert_eq!((d.average_us(), d.percentile_us(50)), (0, 0));
        for _ in 0..98 {
            d.record(Duration::from_micros(100));
        }
        d.record(Duration::from_millis(10));
        d.record(Duration::from_secs(1));
        assert_eq!(d.count(), 100);
        assert_eq!(d.total_us(), 98 * 100 + 10_000 + 1_000_000);
        // 100 µs lies in [64, 128): the median's bucket ends at 128.
        assert_eq!(d.percentile_us(50), 128);
        assert_eq!(d.percentile_us(99), 16_384);
        assert_eq!(d.percentile_us(100), 1 << 20);
    }
}
