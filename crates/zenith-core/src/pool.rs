//! Thread pools and the process-wide settings read from the environment.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Decode threads used when the caller gives none: `ZENITH_NUM_WORKERS`, else the number of CPUs
/// this process may run on (its affinity mask and cgroup quota).
pub fn default_num_workers() -> usize {
    env_num_workers().unwrap_or_else(available_cores)
}

/// Decode threads of a data loader when the caller gives none: `ZENITH_NUM_WORKERS`, else one
/// core fewer than [`default_num_workers`] (at least one). The thread that consumes the batches
/// (the training loop, in Python) needs a core of its own: on two cores, two decode threads
/// plus the loader's own thread and the consumer measured slower than one decode thread.
pub fn default_loader_workers() -> usize {
    env_num_workers().unwrap_or_else(|| available_cores().saturating_sub(1).max(1))
}

fn env_num_workers() -> Option<usize> {
    std::env::var("ZENITH_NUM_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}

/// The shared pool used by `read`/`load` (sized by [`default_num_workers`] at first use, and
/// again in a child process after `fork`).
pub fn global() -> Result<Arc<rayon::ThreadPool>> {
    static POOL: PerProcess<rayon::ThreadPool> = PerProcess::new();
    POOL.get_or_try_init(|| build(default_num_workers(), "zenith-read"))
}

/// A process-wide value that owns threads: built on first use, and built again in a child
/// process after `fork`, where the parent's threads do not exist (using the parent's pool or
/// runtime there would wait forever). The parent's value is leaked in the child: dropping it
/// would wait for threads that are not there.
pub(crate) struct PerProcess<T> {
    slot: Mutex<Option<(u32, Arc<T>)>>,
}

impl<T> PerProcess<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        PerProcess {
            slot: Mutex::new(None),
        }
    }

    /// The value of this process, built with `init` when there is none yet.
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> Arc<T> {
        match self.get_or_try_init(|| Ok::<T, std::convert::Infallible>(init())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`PerProcess::get_or_init`] for a value whose construction may fail; a failure
    /// leaves the slot empty, so a later call tries again.
    pub(crate) fn get_or_try_init<E>(
        &self,
        init: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<Arc<T>, E> {
        let pid = std::process::id();
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((owner, value)) = slot.as_ref() {
            if *owner == pid {
                return Ok(value.clone());
            }
        }
        if let Some((_, inherited)) = slot.take() {
            std::mem::forget(inherited);
        }
        let value = Arc::new(init()?);
        *slot = Some((pid, value.clone()));
        Ok(value)
    }
}

/// Builds a pool of `threads` named threads; a refusal of the system to start them (thread or
/// memory limits) is an [`Error::Resource`].
pub fn build(threads: usize, name: &'static str) -> Result<rayon::ThreadPool> {
    let threads = threads.max(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| {
            Error::resource(
                format!("{threads} {name} threads"),
                std::io::Error::other(e.to_string()),
            )
        })
}
