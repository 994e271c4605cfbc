//! Waiting on engine work without holding the GIL and without ignoring Ctrl-C.
//!
//! A call that may block for long (a load, a dataset summary, opening a loader over remote
//! data) runs on a thread of its own while the calling thread waits in slices of 50 ms with
//! the GIL released, checking for signals between slices. On Ctrl-C the call raises
//! `KeyboardInterrupt` at once; the abandoned work finishes in the background and its result
//! is dropped.

use std::time::Duration;

use crossbeam_channel::{bounded, RecvTimeoutError};
use pyo3::prelude::*;
use zenith_core::Error;

use crate::errors::{BindingResult, ZenithError};

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs `work` on its own thread and waits for it, interruptibly.
pub(crate) fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    name: &str,
    work: impl FnOnce() -> zenith_core::Result<T> + Send + 'static,
) -> BindingResult<T> {
    run_interruptible_with(py, name, work, |_| Ok(()))
}

/// [`run_interruptible`], calling `tick` (with the GIL) at every signal check and once when the
/// work is done: a progress bar's update.
pub(crate) fn run_interruptible_with<T: Send + 'static>(
    py: Python<'_>,
    name: &str,
    work: impl FnOnce() -> zenith_core::Result<T> + Send + 'static,
    mut tick: impl FnMut(Python<'_>) -> PyResult<()>,
) -> BindingResult<T> {
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name(format!("zenith-{name}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ =
                tx.send(outcome.map_err(|panic| zenith_core::error::panic_message(panic.as_ref())));
        })
        .map_err(|e| Error::resource(format!("a thread for {name}"), e))?;
    loop {
        match py.detach(|| rx.recv_timeout(SIGNAL_CHECK)) {
            Ok(Ok(result)) => {
                let result = result?;
                tick(py)?;
                return Ok(result);
            }
            Ok(Err(panic)) => {
                return Err(
                    ZenithError::new_err(format!("internal error in {name}: {panic}")).into(),
                )
            }
            Err(RecvTimeoutError::Timeout) => {
                py.check_signals()?;
                tick(py)?;
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ZenithError::new_err(format!(
                    "{name}: its thread ended without a result"
                ))
                .into())
            }
        }
    }
}
