//! The packing thread of a loader with `tokens=`: it reads the producer's batches of
//! documents (in plan order), lays them into sequences with a [`Packer`] and sends batches of
//! `batch_size` sequences, each carrying where a state taken after it restarts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::iter::Batch;
use super::pipeline::Shared;
use super::stats::LoaderStats;
use crate::error::Result;
use crate::plan::Head;
use crate::stage::pack::{docs_of, PackConfig, PackedBatch, Packer};

/// Documents per batch read from the producer.
pub(crate) const DOCS_PER_READ: usize = 256;

/// One iteration's packing settings.
pub(crate) struct PackRun {
    pub(crate) config: Arc<PackConfig>,
    /// Sequences per batch.
    pub(crate) batch_size: usize,
    /// Drop the last short batch.
    pub(crate) drop_last: bool,
    /// The plan position the iteration starts at and the state's `skip` there.
    pub(crate) start: u64,
    pub(crate) skip: u64,
    /// The plan's runs that other ranks had partly delivered.
    pub(crate) heads: Vec<Head>,
}

/// The plan position of each row of `batch`, whose first planned position is `base`.
fn row_positions(batch: &Batch, base: u64) -> impl Fn(usize) -> u64 + '_ {
    move |row| {
        let before = batch
            .skipped_at
            .iter()
            .take_while(|&&r| r as usize <= row)
            .count();
        base + (row + before) as u64
    }
}

/// Packs the batches of `inner` into `tx` until the epoch ends, the consumer leaves or a
/// batch fails (the error is passed on).
pub(crate) fn run(
    run: PackRun,
    shared: Arc<Shared>,
    inner: Receiver<Result<Batch>>,
    tx: Sender<Result<Batch>>,
) {
    let config = run.config.clone();
    let mut packer = Packer::new(
        config.clone(),
        shared.seed,
        shared.epoch,
        run.start,
        run.skip,
        run.heads,
    );
    let mut base = run.start;
    let mut delivered_to = run.start;
    let mut last = false;
    let wanted = config.wanted();
    let source_fields = Arc::new(vec![None; config.field_names().len()]);
    loop {
        let mut out = PackedBatch::new(run.batch_size, config.seq_len, wanted);
        while out.rows < run.batch_size {
            while !last && !packer.ready(false) {
                let Ok(read) = inner.recv() else {
                    last = true;
                    break;
                };
                let batch = match read {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let start = Instant::now();
                let docs = batch
                    .columns
                    .iter()
                    .find(|(n, _)| *n == config.column)
                    .map(|(_, c)| docs_of(c, &config, &row_positions(&batch, base)));
                base += batch.positions as u64;
                match docs {
                    Some(Ok(docs)) => packer.push(docs, batch.positions),
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    None => packer.push(Vec::new(), batch.positions),
                }
                LoaderStats::add(&shared.stats.pack_ns, start);
            }
            if !packer.ready(last) {
                break;
            }
            let start = Instant::now();
            packer.sequence(&mut out);
            LoaderStats::add(&shared.stats.pack_ns, start);
        }
        if out.rows == 0 || (out.rows < run.batch_size && run.drop_last) {
            return;
        }
        let carry = packer.carry();
        let at = carry.rows as u64;
        let stats = &shared.stats;
        stats
            .pack_padding
            .fetch_add(out.padding as u64, Ordering::Relaxed);
        stats.pack_tokens.fetch_add(
            (out.rows * config.seq_len - out.padding) as u64,
            Ordering::Relaxed,
        );
        let batch = Batch {
            rows: out.rows,
            columns: out.columns(),
            positions: (at - delivered_to) as usize,
            source_fields: source_fields.clone(),
            skipped_at: Vec::new(),
            carry: Some(carry),
        };
        delivered_to = at;
        if tx.send(Ok(batch)).is_err() || shared.cancel.load(Ordering::Relaxed) {
            return;
        }
    }
}
