//! The loader's counters: rows and bytes delivered, seconds per stage summed over threads,
//! and the units skipped under `on_error="skip"` with where they were.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Most skipped-unit locations kept for [`StatsSnapshot::skipped`].
const SKIPPED_KEPT: usize = 100;

/// Counters of a loader, summed over its iterations.
#[derive(Debug, Default)]
pub struct LoaderStats {
    pub(crate) rows: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) read_ns: AtomicU64,
    pub(crate) collate_unit_ns: AtomicU64,
    pub(crate) sample_stage_ns: AtomicU64,
    pub(crate) shuffle_ns: AtomicU64,
    pub(crate) collate_ns: AtomicU64,
    pub(crate) wait_ns: AtomicU64,
    pub(crate) reused: AtomicU64,
    pub(crate) handover_ns: AtomicU64,
    pub(crate) pack_ns: AtomicU64,
    pub(crate) pack_tokens: AtomicU64,
    pub(crate) pack_padding: AtomicU64,
    skipped_units: AtomicU64,
    skipped_rows: AtomicU64,
    skipped: Mutex<Vec<String>>,
}

/// A snapshot of [`LoaderStats`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatsSnapshot {
    /// Rows delivered.
    pub rows: u64,
    /// Batches delivered.
    pub batches: u64,
    /// Bytes of delivered batch columns.
    pub bytes: u64,
    /// Seconds decoding units (summed over threads).
    pub read_s: f64,
    /// Seconds converting decoded units into output layout (summed over threads).
    pub decode_s: f64,
    /// Seconds in per-sample stages (summed over threads).
    pub sample_stages_s: f64,
    /// Seconds computing permutations.
    pub shuffle_s: f64,
    /// Seconds gathering batches.
    pub collate_s: f64,
    /// Seconds the consumer waited for a batch.
    pub wait_s: f64,
    /// Seconds handing batches over to the consumer's arrays (counted by the front end that
    /// builds them: NumPy arrays, torch tensors, Arrow record batches).
    pub handover_s: f64,
    /// Seconds laying documents into sequences (`tokens=`).
    pub pack_s: f64,
    /// Document tokens in delivered packed sequences.
    pub packed_tokens: u64,
    /// Padding positions in delivered packed sequences.
    pub padding_tokens: u64,
    /// Unit slices served from decoded data kept from an earlier epoch.
    pub reused_units: u64,
    /// Bytes of decoded data kept for later epochs.
    pub kept_bytes: u64,
    /// Units skipped under `on_error="skip"`.
    pub skipped_units: u64,
    /// Rows in skipped units.
    pub skipped_rows: u64,
    /// Where the skipped units were (first 100).
    pub skipped: Vec<String>,
}

impl LoaderStats {
    /// Adds the time since `start` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, start: Instant) {
        counter.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts one delivered batch.
    pub(crate) fn delivered(&self, rows: usize, bytes: usize) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a skipped unit of `rows` rows and keeps where it was.
    pub(crate) fn skipped(&self, rows: usize, error: &crate::Error) {
        self.skipped_units.fetch_add(1, Ordering::Relaxed);
        self.skipped_rows.fetch_add(rows as u64, Ordering::Relaxed);
        tracing::warn!(error = %error, "skipping unit");
        if let Ok(mut v) = self.skipped.lock() {
            if v.len() < SKIPPED_KEPT {
                v.push(error.to_string());
            }
        }
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let s = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / 1e9;
        StatsSnapshot {
            rows: self.rows.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            read_s: s(&self.read_ns),
            decode_s: s(&self.collate_unit_ns),
            sample_stages_s: s(&self.sample_stage_ns),
            shuffle_s: s(&self.shuffle_ns),
            collate_s: s(&self.collate_ns),
            wait_s: s(&self.wait_ns),
            handover_s: s(&self.handover_ns),
            pack_s: s(&self.pack_ns),
            packed_tokens: self.pack_tokens.load(Ordering::Relaxed),
            padding_tokens: self.pack_padding.load(Ordering::Relaxed),
            reused_units: self.reused.load(Ordering::Relaxed),
            kept_bytes: 0,
            skipped_units: self.skipped_units.load(Ordering::Relaxed),
            skipped_rows: self.skipped_rows.load(Ordering::Relaxed),
            skipped: self.skipped.lock().map(|v| v.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_batches_and_keeps_the_first_skipped_locations() {
        let stats = LoaderStats::default();
        stats.delivered(64, 1024);
        stats.delivered(10, 160);
        for i in 0..(SKIPPED_KEPT + 5) {
            stats.skipped(
                3,
                &crate::Error::format("f.parquet", format!("row group {i}"), "bad"),
            );
        }
        let s = stats.snapshot();
        assert_eq!((s.rows, s.batches, s.bytes), (74, 2, 1184));
        assert_eq!((s.skipped_units, s.skipped_rows), (105, 315));
        assert_eq!(s.skipped.len(), SKIPPED_KEPT);
        assert_eq!(s.skipped[0], "f.parquet: row group 0: bad");
    }
}
