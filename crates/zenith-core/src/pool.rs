//! Thread pools and the process-wide settings read from the environment.

use std::sync::OnceLock;

/// Decode threads used when the caller gives none: `ZENITH_NUM_WORKERS`, else the number of CPUs.
pub fn default_num_workers() -> usize {
    std::env::var("ZENITH_NUM_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
}

/// The shared pool used by `read`/`load` (sized by [`default_num_workers`] at first use).
pub fn global() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| build(default_num_workers(), "zenith-read"))
}

/// Builds a pool of `threads` named threads.
pub fn build(threads: usize, name: &'static str) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .expect("spawning threads")
}
