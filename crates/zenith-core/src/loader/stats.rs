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
    /// Wall time of iterations, up to their last batch handed over.
    pub(crate) iterate_ns: AtomicU64,
    /// Decode threads of the last iteration.
    pub(crate) threads: AtomicU64,
    skipped_units: AtomicU64,
    skipped_rows: AtomicU64,
    skipped: Mutex<Vec<String>>,
    pub(crate) filtered_rows: AtomicU64,
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
    /// Rows read and dropped by the loader's `filter` (the rows of row groups its statistics
    /// ruled out are never read, and not counted here).
    pub filtered_rows: u64,
    /// Wall seconds of iterations, from their start to the last batch handed over.
    pub iterate_s: f64,
    /// Decode threads of the last iteration.
    pub threads: u64,
    /// The stage that held batches back most (see [`StatsSnapshot::verdict`]): `"reading"`,
    /// `"decoding"`, `"collate"`, `"packing"`, `"handover"`, or `"consumer"` when the loader
    /// was ahead and waited for the code between batches; `None` before the first batch.
    pub bottleneck: Option<String>,
    /// What would move the bottleneck, in a sentence.
    pub bottleneck_hint: Option<String>,
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
            filtered_rows: self.filtered_rows.load(Ordering::Relaxed),
            iterate_s: s(&self.iterate_ns),
            threads: self.threads.load(Ordering::Relaxed),
            bottleneck: None,
            bottleneck_hint: None,
        }
        .with_verdict()
    }
}

/// Below this share of the iteration time spent waiting for batches, the loader kept ahead and
/// the consumer is the bottleneck.
const CONSUMER_BOUND_WAIT: f64 = 0.2;

impl StatsSnapshot {
    /// Names the bottleneck and the knob that would move it.
    ///
    /// When the consumer waited for batches less than a fifth of the iteration time, the loader
    /// was ahead: the consumer's own work (the training step, `map=`/`transform=` functions) is
    /// the bottleneck. Otherwise the loader's stage with the most time per thread that runs it
    /// is: reading (`read_s`, on the decode threads), decoding (`decode_s` and
    /// `sample_stages_s`, on the decode threads), collate (`collate_s` and `shuffle_s`, one
    /// thread), packing (`pack_s`, one thread) or handover (`handover_s`, the consumer's
    /// thread). Decode threads count up to the machine's cores.
    pub fn verdict(&self) -> Option<(&'static str, String)> {
        if self.batches == 0 || self.iterate_s <= 0.0 {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let threads = self.threads.clamp(1, cores.max(1));
        let on = if threads == 1 {
            "one thread".to_string()
        } else {
            format!("{threads} threads")
        };
        let waited = self.wait_s / self.iterate_s;
        if waited < CONSUMER_BOUND_WAIT {
            return Some((
                "consumer",
                format!(
                    "batches were ready {:.0}% of the time: the code between batches (the training step, map=/transform= functions) sets the pace; more loader threads would not help",
                    100.0 * (1.0 - waited).clamp(0.0, 1.0)
                ),
            ));
        }
        let per_thread = threads as f64;
        let stages = [
            (
                "reading",
                self.read_s / per_thread,
                format!(
                    "reading and decoding the files took {:.1} s on {on}: raise num_workers (up to the cores), read fewer columns (columns=), or store the data in a format cheaper to decode (uncompressed Parquet, Arrow IPC)",
                    self.read_s
                ),
            ),
            (
                "decoding",
                (self.decode_s + self.sample_stages_s) / per_thread,
                format!(
                    "converting rows and the per-sample stages (images, tokenizer) took {:.1} s on {on}: raise num_workers (up to the cores), or make the per-sample work smaller (a smaller image= size, dtype=\"uint8\")",
                    self.decode_s + self.sample_stages_s
                ),
            ),
            (
                "collate",
                self.collate_s + self.shuffle_s,
                format!(
                    "gathering rows into batches took {:.1} s on one thread: read fewer or fixed-width columns (columns=)",
                    self.collate_s + self.shuffle_s
                ),
            ),
            (
                "packing",
                self.pack_s,
                format!(
                    "laying documents into sequences took {:.1} s on one thread: ask for fewer fields (zenith.text.pack(fields=[\"input_ids\", \"labels\"]))",
                    self.pack_s
                ),
            ),
            (
                "handover",
                self.handover_s,
                format!(
                    "turning batches into arrays in your process took {:.1} s: read fewer columns, or numeric columns of fixed width",
                    self.handover_s
                ),
            ),
        ];
        stages
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(name, _, hint)| (name, hint))
    }

    fn with_verdict(mut self) -> StatsSnapshot {
        if let Some((name, hint)) = self.verdict() {
            self.bottleneck = Some(name.to_string());
            self.bottleneck_hint = Some(hint);
        }
        self
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

    fn snapshot(wait_s: f64, read_s: f64, collate_s: f64, threads: u64) -> StatsSnapshot {
        StatsSnapshot {
            batches: 10,
            iterate_s: 10.0,
            wait_s,
            read_s,
            collate_s,
            threads,
            ..StatsSnapshot::default()
        }
        .with_verdict()
    }

    #[test]
    fn the_verdict_names_the_consumer_when_batches_were_ready() {
        let s = snapshot(1.0, 5.0, 1.0, 1);
        assert_eq!(s.bottleneck.as_deref(), Some("consumer"));
        let hint = s.bottleneck_hint.unwrap();
        assert!(
            hint.starts_with("batches were ready 90% of the time"),
            "{hint}"
        );
        assert_eq!(StatsSnapshot::default().with_verdict().bottleneck, None);
    }

    #[test]
    fn the_verdict_weighs_each_stage_by_the_threads_that_run_it() {
        // 6 s of reading on one thread outweighs 4 s of collate; on (up to) cores threads it
        // does not where there are two cores or more.
        let one = snapshot(8.0, 6.0, 4.0, 1);
        assert_eq!(one.bottleneck.as_deref(), Some("reading"));
        assert!(one.bottleneck_hint.unwrap().contains("raise num_workers"));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let many = snapshot(8.0, 6.0, 4.0, 64);
        let want = if cores >= 2 { "collate" } else { "reading" };
        assert_eq!(many.bottleneck.as_deref(), Some(want));
    }
}
