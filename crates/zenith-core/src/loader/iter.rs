//! The hand-over: the bounded, ordered queue between the producer and the consumer, and the
//! iterator that reads it, counts what it delivers and records the progress for resume.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{Field, FieldRef, Schema};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

use super::packing::{self, PackRun};
use super::pipeline::{Producer, Settings, Shared};
use super::stats::LoaderStats;
use crate::collate::BatchColumn;
use crate::error::{Error, Result};
use crate::plan::state::Progress;
use crate::plan::{Segment, Stop};

/// One batch: named columns of equal length.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Rows in the batch.
    pub rows: usize,
    /// Columns in field order.
    pub columns: Vec<(String, BatchColumn)>,
    /// Planned positions this batch consumed (rows plus skipped rows); used for resume.
    pub positions: usize,
    /// Per column, the source field it is as it is (`None` for stacks and casts): Arrow
    /// batches keep its metadata, extension type and nullability.
    pub source_fields: Arc<Vec<Option<FieldRef>>>,
    /// For each skipped position inside the batch, the rows delivered before it (empty unless
    /// units were skipped): with `positions`, the plan position of every row.
    pub(crate) skipped_at: Vec<u32>,
    /// A packed batch: where the packer stands after it (see [`crate::stage::pack`]).
    pub(crate) carry: Option<Stop>,
}

impl Batch {
    /// Converts to an Arrow record batch (tensors `[B, k]` become fixed-size lists). A column
    /// that is a source column as it is keeps that field (metadata, extension type,
    /// nullability); the others are nullable only when they hold nulls.
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let arrays: Vec<_> = self.columns.iter().map(|(_, c)| c.to_arrow()).collect();
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(&arrays)
            .enumerate()
            .map(|(i, ((n, _), a))| match self.source_fields.get(i) {
                Some(Some(f)) if f.data_type() == a.data_type() => {
                    let nullable = f.is_nullable() || a.null_count() > 0;
                    f.as_ref().clone().with_nullable(nullable)
                }
                _ => Field::new(
                    n,
                    a.data_type().clone(),
                    a.null_count() > 0 || matches!(a.data_type(), arrow_schema::DataType::Null),
                ),
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::invalid("batch", e))
    }

    /// Bytes of the batch's columns.
    pub fn nbytes(&self) -> usize {
        self.columns.iter().map(|(_, c)| c.nbytes()).sum()
    }
}

/// Result of waiting a bounded time for the next batch.
pub enum Poll {
    /// A batch or an error.
    Ready(Option<Result<Batch>>),
    /// Nothing arrived in time; poll again (lets callers check for Ctrl-C).
    Pending,
}

/// A running iteration. Dropping it stops the pipeline and joins its threads.
pub struct BatchIterator {
    rx: Option<Receiver<Result<Batch>>>,
    handles: Vec<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    progress: Arc<Mutex<Progress>>,
    /// Where the packer stood after the last packed batch delivered (a packed loader's state).
    carry: Arc<Mutex<Stop>>,
    done: bool,
    /// When the iteration's wall time was last counted (`iterate_s` of the stats).
    mark: Instant,
    /// The process that started the pass: in a child forked since, its threads do not exist.
    pid: u32,
}

impl BatchIterator {
    /// Starts the producer thread over `segments` (the plan of this rank's epoch) and, for a
    /// packed loader, the packing thread after it.
    pub(crate) fn start(
        shared: Arc<Shared>,
        settings: Settings,
        segments: Vec<Segment>,
        progress: Arc<Mutex<Progress>>,
        pack: Option<(PackRun, Arc<Mutex<Stop>>)>,
    ) -> Result<BatchIterator> {
        let pool = crate::pool::build(settings.workers, "zenith-decode")?;
        let (tx, rx) = bounded(settings.prefetch);
        let producer = Producer::new(shared.clone(), pool, &settings, tx);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::resource("the loader thread", e))
        };
        let mut handles = vec![spawn(
            "zenith-loader",
            Box::new(move || producer.run(segments)),
        )?];
        let (rx, carry) = match pack {
            None => (rx, Arc::new(Mutex::new(Stop::default()))),
            Some((run, carry)) => {
                let (out_tx, out_rx) = bounded(settings.prefetch);
                let packing = shared.clone();
                handles.push(spawn(
                    "zenith-pack",
                    Box::new(move || packing::run(run, packing, rx, out_tx)),
                )?);
                (out_rx, carry)
            }
        };
        Ok(BatchIterator {
            rx: Some(rx),
            handles,
            shared,
            progress,
            carry,
            done: false,
            mark: Instant::now(),
            pid: std::process::id(),
        })
    }

    /// Waits at most `timeout` for the next batch.
    pub fn poll_next(&mut self, timeout: Duration) -> Poll {
        if self.done {
            return Poll::Ready(None);
        }
        if self.forked() {
            // The batches queued before the fork are there, but no thread will send the rest:
            // an error now rather than a partial epoch and then a wait forever.
            self.stop();
            self.done = true;
            return Poll::Ready(Some(Err(Error::invalid(
                "iterator",
                format!(
                    "this pass was started in process {} and this process ({}) was forked from \
                     it since; its threads do not exist here. Start a new pass in this process \
                     with iter(loader)",
                    self.pid,
                    std::process::id()
                ),
            ))));
        }
        let Some(rx) = self.rx.as_ref() else {
            return Poll::Ready(None);
        };
        let start = Instant::now();
        let got = rx.recv_timeout(timeout);
        LoaderStats::add(&self.shared.stats.wait_ns, start);
        LoaderStats::add(&self.shared.stats.iterate_ns, self.mark);
        self.mark = Instant::now();
        match got {
            Ok(Ok(batch)) => {
                self.shared.stats.delivered(batch.rows, batch.nbytes());
                self.progress
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .consumed(batch.positions);
                if let Some(stop) = batch.carry {
                    *self.carry.lock().unwrap_or_else(|p| p.into_inner()) = stop;
                }
                Poll::Ready(Some(Ok(batch)))
            }
            Ok(Err(e)) => {
                self.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Err(RecvTimeoutError::Timeout) => Poll::Pending,
            Err(RecvTimeoutError::Disconnected) => {
                self.finish(true);
                Poll::Ready(None)
            }
        }
    }

    fn finish(&mut self, completed: bool) {
        self.done = true;
        if completed {
            // A finished epoch carries nothing into the next one.
            *self.carry.lock().unwrap_or_else(|p| p.into_inner()) = Stop::default();
            self.progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish();
        }
        self.stop();
    }

    /// Counts time a front end spent handing a delivered batch over (building its arrays), so
    /// that `stats()` shows the hand-over beside the stages.
    pub fn add_handover(&self, spent: Duration) {
        self.shared
            .stats
            .handover_ns
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Whether this process is a child forked after the pass started.
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    /// Stops the pipeline and joins its threads (idempotent). In a forked child the threads
    /// are the parent's: they are not joined (that would wait forever), and the queue they
    /// sent into is left as it is (a lock in it may have been held by one of them at the fork).
    pub fn stop(&mut self) {
        if self.forked() {
            std::mem::forget(self.rx.take());
            std::mem::forget(std::mem::take(&mut self.handles));
            return;
        }
        self.shared.cancel.store(true, Ordering::SeqCst);
        self.rx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Iterator for BatchIterator {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        loop {
            if let Poll::Ready(item) = self.poll_next(Duration::from_millis(100)) {
                return item;
            }
        }
    }
}

impl Drop for BatchIterator {
    fn drop(&mut self) {
        self.stop();
    }
}
