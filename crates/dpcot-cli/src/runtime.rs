//! How the `dpcot` process runs its work: the allocator's settings and the thread pool that the
//! commands run on (docs/performance.md, "The process runs its commands on the pool and keeps
//! its memory").

use anyhow::{Context, Result};

/// mimalloc's purge delay: the position of `mi_option_purge_delay` in the `mi_option_t` enum of
/// mimalloc.h, the same in its v2 and v3 (libmimalloc-sys names only some options). Its default
/// in the mimalloc 3 that libmimalloc-sys builds is 1000 (ms), which a test checks.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Stack of each thread of the pool: the main thread's usual 8 MiB, since the commands run there
/// rather than on the main thread (rayon's default is 2 MiB).
const STACK_BYTES: usize = 8 << 20;

/// Keeps the memory that training frees committed for the next step instead of giving it back.
///
/// mimalloc purges (decommits) memory that has stayed free for a while (1 s by default), and
/// its pages then have to be faulted in again, 2 MiB huge page by huge page, each zeroed by the
/// kernel. A training process frees and reallocates its activations every step, and purging
/// cost it 4000–8000 page faults in 30 steps at d_model 64 / L 48 (about 430 without purging)
/// and about a tenth of its CPU time on one thread. The process's peak memory does not change;
/// it keeps it. `MIMALLOC_PURGE_DELAY`, when set, is left to mimalloc.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        never_purge();
    }
}

fn never_purge() {
    // SAFETY: sets one of mimalloc's options, which it reads with atomic loads.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

/// Runs `command` on a thread of a rayon pool and returns what it returns.
///
/// The tensor kernels split their work over rayon's threads. Called from a thread outside the
/// pool, every parallel operation is handed to the pool and the caller sleeps until it is done:
/// with one thread (`RAYON_NUM_THREADS=1`, as a sweep gives each of two runs) that is a wake-up
/// and a sleep for each of the hundreds of operations of a step. Called from a thread of the pool,
/// the operation starts on that thread and the others join it. The pool has `RAYON_NUM_THREADS`
/// threads, else one per core.
pub fn on_pool<R: Send>(command: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(STACK_BYTES)
        .thread_name(|i| format!("dpcot-{i}"))
        .build()
        .context("starting the thread pool")?;
    Ok(pool.install(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set is mimalloc's purge delay: at its position the default is 1000 ms, and the
    /// next option, `use_numa_nodes`, defaults to 0 (so the enum has not shifted).
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads mimalloc's options.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        assert_eq!(get(PURGE_DELAY), 1000, "mimalloc's default purge delay");
        assert_eq!(get(PURGE_DELAY + 1), 0, "the next option, use_numa_nodes");
        never_purge();
        assert_eq!(get(PURGE_DELAY), -1);
    }

    #[test]
    fn commands_run_on_a_thread_of_the_pool() {
        let inside = on_pool(|| rayon::current_thread_index().is_some()).unwrap();
        assert!(inside);
        assert!(rayon::current_thread_index().is_none());
    }
}
