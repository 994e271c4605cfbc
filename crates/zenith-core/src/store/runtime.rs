//! The one tokio runtime of the storage layer. Every request runs on it; callers (decode
//! threads) block on [`block_on`] or [`on_runtime`], which is how async code stays inside
//! this module tree.

use std::sync::Arc;

use crate::error::{Error, Result};

/// The shared runtime that drives every request; two I/O threads are plenty because the
/// work is waiting on sockets, and decode threads block on it. A child process after `fork`
/// builds its own.
fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    static RUNTIME: crate::pool::PerProcess<tokio::runtime::Runtime> =
        crate::pool::PerProcess::new();
    RUNTIME.get_or_try_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zenith-io")
            .enable_all()
            .build()
            .map_err(|e| Error::resource("the object-storage I/O runtime", e))
    })
}

/// Runs `future` to completion on the calling thread, driven by the I/O runtime.
pub(super) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(future))
}

/// Runs `future` as a task on the I/O runtime and waits for it. Response bodies then arrive in
/// the same threads that read the sockets, instead of every received chunk waking the
/// (blocked) calling thread.
pub(super) fn on_runtime<T: Send + 'static>(
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let task = runtime()?.spawn(future);
    block_on(task)?.unwrap_or_else(|e| {
        Err(Error::Storage {
            object: String::new(),
            range: String::new(),
            message: "I/O task failed".to_string(),
            source: Some(Box::new(e)),
        })
    })
}
