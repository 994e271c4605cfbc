//! The producer: runs on its own thread per iteration. It keeps the next windows of the plan
//! decoding on a pool (each unit decoded, passed through the per-sample stages and converted
//! into output layout), permutes each window's rows, and gathers exact-size batches into the
//! hand-over queue. Cancelling stops it between units and batches.
//!
//! Once no slice is left decoding (the last windows of an epoch, or every window of an epoch
//! over kept data), the pool would sit idle while this thread gathers alone: batches are then
//! gathered a group at a time on the pool and sent in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{BooleanArray, RecordBatch};
use crossbeam_channel::{unbounded, Receiver, Sender};
use rayon::prelude::*;

use super::config::OnError;
use super::iter::Batch;
use super::reuse::DecodedUnits;
use super::stats::LoaderStats;
use super::Chain;
use crate::collate::{self, Block};
use crate::error::{Error, Result};
use crate::plan::{Segment, UnitSlice, Window};

/// What one iteration shares between its producer, its decode tasks and its consumer.
pub(crate) struct Shared {
    /// The loader's chain of stages.
    pub(crate) chain: Arc<Chain>,
    /// Error policy.
    pub(crate) on_error: OnError,
    /// The loader's counters.
    pub(crate) stats: Arc<LoaderStats>,
    /// Set when the consumer stops the iteration.
    pub(crate) cancel: AtomicBool,
    /// Slices dispatched to the pool and not yet decoded.
    pub(crate) decoding: AtomicUsize,
    /// Seed of this iteration's plan (per-sample stages draw from it).
    pub(crate) seed: u64,
    /// Epoch of this iteration.
    pub(crate) epoch: u64,
    /// Decoded units kept across epochs, when the loader reuses them.
    pub(crate) reuse: Option<Arc<DecodedUnits>>,
}

/// Sizes of one iteration's pipeline.
pub(crate) struct Settings {
    /// Decode threads.
    pub(crate) workers: usize,
    /// Batches the queue holds ahead of the consumer.
    pub(crate) prefetch: usize,
    /// Rows per batch.
    pub(crate) batch_size: usize,
    /// Drop the last short batch.
    pub(crate) drop_last: bool,
    /// Rows of windows kept decoding ahead of the one being emitted.
    pub(crate) lookahead_rows: usize,
    /// Estimated bytes of one output row.
    pub(crate) row_bytes: usize,
}

/// A slice's blocks, the row of the slice's first row in them (0 for a decoded slice, the
/// slice's start for a kept whole unit), and, under a filter that dropped some of its rows,
/// the block row of each of the slice's rows ([`DROPPED`] for a row filtered out).
struct SliceBlocks {
    blocks: Arc<Vec<Block>>,
    offset: u32,
    kept: Option<Vec<u32>>,
}

/// A row the filter dropped, in [`SliceBlocks::kept`].
const DROPPED: u32 = u32::MAX;

/// Decoded blocks of one window: per slice (None when skipped), per field.
struct WindowData {
    blocks: Vec<Option<Arc<Vec<Block>>>>,
    /// Per slice, the row of its first row in its blocks.
    offsets: Vec<u32>,
    /// Per slice, the block row of each row where a filter dropped some (see [`SliceBlocks`]).
    kept: Vec<Option<Vec<u32>>>,
    /// (slice, row) in emission order.
    order: Vec<(u32, u32)>,
    /// The window, and what its units are released through once its batches are gathered.
    window: Arc<Window>,
    shared: Arc<Shared>,
}

impl Drop for WindowData {
    /// The last batch gathered from the window is built: the pages of mapped files its units
    /// were decoded from (or that blocks over an IPC mapping still read) are handed back, so
    /// that an epoch's resident set holds the windows in flight, not the files.
    fn drop(&mut self) {
        for slice in &self.window.slices {
            self.shared.chain.dataset.release_unit(slice.unit);
        }
    }
}

/// A window whose slices are decoding on the pool.
struct WindowJob {
    window: Arc<Window>,
    rx: Receiver<(usize, Result<SliceBlocks>)>,
}

/// Rows picked for the batch being filled, by window.
#[derive(Default)]
struct PendingBatch {
    chunks: Vec<(Arc<WindowData>, Vec<collate::Pick>)>,
    rows: usize,
    positions: usize,
    /// Rows picked before each skipped position.
    skipped_at: Vec<u32>,
}

/// The producer of one iteration.
pub(crate) struct Producer {
    shared: Arc<Shared>,
    pool: rayon::ThreadPool,
    batch_size: usize,
    drop_last: bool,
    lookahead_rows: usize,
    /// Batches gathered together on the pool once nothing is left decoding (1: never).
    group: usize,
    tx: Sender<Result<Batch>>,
}

/// Rows gathered per group on the pool (see the module doc).
const GROUP_ROWS: usize = 8192;

/// Bytes of batches a group may gather at once: two groups are in flight (one gathering, one
/// being sent), and rows of images or long sequences would otherwise make a group of
/// 2 x threads batches hundreds of megabytes on top of the prefetch queue.
const GROUP_BYTES: usize = 16 << 20;

/// Stands in for the blocks of a skipped slice (no pick ever names it).
static EMPTY_BLOCK: Block = Block::Tensor(collate::TensorData::Bool(Vec::new()));

/// The blocks of one slice: kept from an earlier epoch, or decoded now (the whole unit, kept
/// for later epochs, when the loader reuses decoded data).
fn slice_blocks(shared: &Shared, slice: UnitSlice) -> Result<SliceBlocks> {
    let Some(reuse) = shared.reuse.as_ref().filter(|r| r.active()) else {
        let (blocks, kept) = decode_slice(shared, slice, true)?;
        return Ok(SliceBlocks {
            blocks: Arc::new(blocks),
            offset: 0,
            kept,
        });
    };
    let start = u32::try_from(slice.start)
        .map_err(|_| Error::invalid("unit", "a unit of more than 2^32 rows"))?;
    if let Some(kept) = reuse.get(slice.unit) {
        shared.stats.reused.fetch_add(1, Ordering::Relaxed);
        return Ok(SliceBlocks {
            blocks: kept,
            offset: start,
            kept: None,
        });
    }
    // Loaders with a filter never keep units: every row of the whole unit is here.
    let blocks = Arc::new(decode_slice(shared, slice, false)?.0);
    reuse.insert(slice.unit, &blocks);
    Ok(SliceBlocks {
        blocks,
        offset: start,
        kept: None,
    })
}

/// The rows of `batch` that `filter` keeps, and the position among them of each row
/// (`DROPPED` for the others); no map when every row is kept.
fn apply_filter(
    filter: &crate::source::predicate::Predicate,
    batch: RecordBatch,
    dropped: &AtomicU64,
) -> Result<(RecordBatch, Option<Vec<u32>>)> {
    let keep = filter.evaluate(&batch)?;
    let kept = keep.count_set_bits();
    if kept == batch.num_rows() {
        return Ok((batch, None));
    }
    dropped.fetch_add((batch.num_rows() - kept) as u64, Ordering::Relaxed);
    let mut next = 0u32;
    let map = keep
        .iter()
        .map(|k| {
            if k {
                next += 1;
                next - 1
            } else {
                DROPPED
            }
        })
        .collect();
    let kept = arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep))
        .map_err(|e| Error::invalid("filter", e.to_string()))?;
    Ok((kept, Some(map)))
}

/// Decodes one slice of a unit (or, unless `only_slice`, the whole unit) and brings it through
/// the per-sample stages into blocks.
fn decode_slice(
    shared: &Shared,
    slice: UnitSlice,
    only_slice: bool,
) -> Result<(Vec<Block>, Option<Vec<u32>>)> {
    let chain = &shared.chain;
    let stats = &shared.stats;
    let location = || chain.location(slice.unit);
    let start = Instant::now();
    let batch = chain
        .dataset
        .read_unit(slice.unit, &chain.projection)
        .map(|b| {
            if !only_slice || (slice.start == 0 && slice.end == b.num_rows()) {
                b
            } else {
                b.slice(slice.start, slice.rows())
            }
        });
    LoaderStats::add(&stats.read_ns, start);
    let batch = batch?;
    let (batch, kept) = match &chain.filter {
        Some(filter) => apply_filter(filter, batch, &stats.filtered_rows).map_err(|e| match e {
            Error::InvalidArgument { name, message } => {
                Error::invalid(name, format!("{}: {message}", chain.location(slice.unit)))
            }
            e => e,
        })?,
        None => (batch, None),
    };
    let batch = if chain.samples.is_empty() {
        batch
    } else {
        let start = Instant::now();
        // The batch's first row: the slice's start, or the unit's own first row when the
        // whole unit was decoded.
        let first_row = if only_slice { slice.start } else { 0 };
        let first = chain.first_sample(slice.unit) + first_row as u64;
        let out = chain
            .samples
            .apply(batch, first, shared.seed, shared.epoch, &location);
        LoaderStats::add(&stats.sample_stage_ns, start);
        out?
    };
    let start = Instant::now();
    let blocks = collate::to_blocks(&batch, &chain.fields, &location);
    LoaderStats::add(&stats.collate_unit_ns, start);
    Ok((blocks?, kept))
}

/// Gathers one batch's columns from the blocks its picks name.
fn build(shared: &Shared, pending: PendingBatch) -> Result<Batch> {
    let start = Instant::now();
    let chain = &shared.chain;
    let mut columns = Vec::with_capacity(chain.fields.len());
    for (f, plan) in chain.fields.iter().enumerate() {
        let mut parts = Vec::with_capacity(pending.chunks.len());
        for (wd, picks) in &pending.chunks {
            let blocks: Vec<&Block> = wd
                .blocks
                .iter()
                .map(|b| b.as_ref().map_or(&EMPTY_BLOCK, |v| &v[f]))
                .collect();
            parts.push((blocks, picks.as_slice()));
        }
        columns.push((
            chain.names[f].clone(),
            collate::gather_chunks(plan, &parts)?,
        ));
    }
    LoaderStats::add(&shared.stats.collate_ns, start);
    Ok(Batch {
        rows: pending.rows,
        columns,
        positions: pending.positions,
        source_fields: Arc::clone(&chain.source_fields),
        skipped_at: pending.skipped_at,
        carry: None,
    })
}

impl Producer {
    /// A producer sending into `tx`, decoding on `pool`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        pool: rayon::ThreadPool,
        settings: &Settings,
        tx: Sender<Result<Batch>>,
    ) -> Producer {
        Producer {
            shared,
            pool,
            batch_size: settings.batch_size,
            drop_last: settings.drop_last,
            lookahead_rows: settings.lookahead_rows,
            // Groups of about GROUP_ROWS rows (enough work to pay for waking the pool), and
            // of GROUP_BYTES at most.
            group: if settings.workers > 1 {
                let batch_bytes = settings.batch_size.saturating_mul(settings.row_bytes);
                (GROUP_ROWS / settings.batch_size.max(1))
                    .max(settings.workers * 2)
                    .min(GROUP_BYTES / batch_bytes.max(1))
                    .max(1)
            } else {
                1
            },
            tx,
        }
    }

    fn cancelled(&self) -> bool {
        self.shared.cancel.load(Ordering::Relaxed)
    }

    fn dispatch(&self, window: Arc<Window>) -> WindowJob {
        let (tx, rx) = unbounded();
        for (i, slice) in window.slices.iter().copied().enumerate() {
            let shared = self.shared.clone();
            let tx = tx.clone();
            shared.decoding.fetch_add(1, Ordering::Relaxed);
            self.pool.spawn(move || {
                let result = if shared.cancel.load(Ordering::Relaxed) {
                    Err(Error::Interrupted)
                } else {
                    slice_blocks(&shared, slice)
                };
                shared.decoding.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send((i, result));
            });
        }
        WindowJob { window, rx }
    }

    fn collect(&self, job: WindowJob) -> Result<WindowData> {
        let n = job.window.slices.len();
        let mut blocks: Vec<Option<Arc<Vec<Block>>>> = (0..n).map(|_| None).collect();
        let mut offsets = vec![0u32; n];
        let mut kept: Vec<Option<Vec<u32>>> = (0..n).map(|_| None).collect();
        for _ in 0..n {
            let (i, result) = job.rx.recv().map_err(|_| Error::Interrupted)?;
            match result {
                Ok(slice) => {
                    blocks[i] = Some(slice.blocks);
                    offsets[i] = slice.offset;
                    kept[i] = slice.kept;
                }
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) if self.shared.on_error == OnError::Skip => {
                    self.shared.stats.skipped(job.window.slices[i].rows(), &e);
                }
                Err(e) => return Err(e),
            }
        }
        let start = Instant::now();
        let mut order: Vec<(u32, u32)> = Vec::with_capacity(job.window.rows);
        for (i, slice) in job.window.slices.iter().enumerate() {
            order.extend((0..slice.rows() as u32).map(|r| (i as u32, r)));
        }
        job.window.permute(&mut order);
        LoaderStats::add(&self.shared.stats.shuffle_ns, start);
        Ok(WindowData {
            blocks,
            offsets,
            kept,
            order,
            window: job.window,
            shared: self.shared.clone(),
        })
    }

    /// Sends `batches` in order; false once the consumer is gone or a batch failed.
    fn send_all(&self, batches: Vec<Result<Batch>>) -> bool {
        for batch in batches {
            let failed = batch.is_err();
            if self.tx.send(batch).is_err() || failed || self.cancelled() {
                return false;
            }
        }
        true
    }

    /// Hands the batches of `group` on: gathered here one by one when `parallel` is false,
    /// otherwise started on the pool while the group started before is sent (so the pool
    /// gathers while the consumer takes the previous group). False once the iteration ends.
    fn flush(
        &self,
        group: &mut Vec<PendingBatch>,
        in_flight: &mut Option<Receiver<Vec<Result<Batch>>>>,
        parallel: bool,
    ) -> bool {
        let previous = in_flight.take();
        if parallel && !group.is_empty() {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let shared = self.shared.clone();
            let pending = std::mem::take(group);
            self.pool.spawn(move || {
                let built: Vec<Result<Batch>> =
                    pending.into_par_iter().map(|p| build(&shared, p)).collect();
                let _ = tx.send(built);
            });
            *in_flight = Some(rx);
        }
        if let Some(rx) = previous {
            let Ok(built) = rx.recv() else { return false };
            if !self.send_all(built) {
                return false;
            }
        }
        if !parallel {
            let built = group.drain(..).map(|p| build(&self.shared, p)).collect();
            return self.send_all(built);
        }
        true
    }

    /// Emits the batches of `segments` in order, then returns (closing the queue).
    pub(crate) fn run(self, segments: Vec<Segment>) {
        let mut jobs: VecDeque<WindowJob> = VecDeque::new();
        let mut next_dispatch = 0;
        let mut pending = PendingBatch::default();
        let mut group: Vec<PendingBatch> = Vec::with_capacity(self.group);
        let mut in_flight = None;
        for seg in &segments {
            // Keep the next windows decoding while this one is emitted.
            while next_dispatch < segments.len()
                && (jobs.len() < 2
                    || jobs.iter().map(|j| j.window.rows).sum::<usize>() < self.lookahead_rows)
            {
                jobs.push_back(self.dispatch(segments[next_dispatch].window.clone()));
                next_dispatch += 1;
            }
            let Some(job) = jobs.pop_front() else { break };
            let wd = match self.collect(job) {
                Ok(wd) => Arc::new(wd),
                Err(e) => {
                    if !self.cancelled() {
                        let _ = self.tx.send(Err(e));
                    }
                    return;
                }
            };
            let mut picks: Vec<(u32, u32)> = Vec::with_capacity(self.batch_size);
            for &pick in &wd.order[seg.from..seg.to.min(wd.order.len())] {
                pending.positions += 1;
                let slice = pick.0 as usize;
                if wd.blocks[slice].is_none() {
                    pending.skipped_at.push(pending.rows as u32);
                    continue;
                }
                // A row the filter dropped counts as a consumed position, like a skipped one.
                let row = match &wd.kept[slice] {
                    Some(map) => match map[pick.1 as usize] {
                        DROPPED => {
                            pending.skipped_at.push(pending.rows as u32);
                            continue;
                        }
                        row => row,
                    },
                    None => pick.1 + wd.offsets[slice],
                };
                picks.push((pick.0, row));
                pending.rows += 1;
                if pending.rows == self.batch_size {
                    pending
                        .chunks
                        .push((wd.clone(), std::mem::take(&mut picks)));
                    group.push(std::mem::take(&mut pending));
                    // While slices are decoding the pool is busy: gather one batch at a time here.
                    let parallel =
                        self.group > 1 && self.shared.decoding.load(Ordering::Relaxed) == 0;
                    let group_size = if parallel { self.group } else { 1 };
                    if group.len() >= group_size
                        && (self.cancelled() || !self.flush(&mut group, &mut in_flight, parallel))
                    {
                        return;
                    }
                }
            }
            if !picks.is_empty() {
                pending.chunks.push((wd.clone(), picks));
            }
        }
        if pending.rows > 0 && !self.drop_last {
            group.push(pending);
        }
        // The last group, then whatever is still in flight (on the pool only when groups are).
        let parallel = self.group > 1;
        let _ = self.flush(&mut group, &mut in_flight, parallel)
            && self.flush(&mut group, &mut in_flight, parallel);
    }
}
