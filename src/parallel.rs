//! Running pure computation on rayon threads while the backend stays responsive.
//!
//! Postgres may only be called from the backend's own thread, and a cancel request must stop
//! a long build. So the backend thread hands the work to a rayon pool, then polls: it reports
//! progress and, when an interrupt is pending, raises a flag the workers check and lets the
//! interrupt be processed only after every worker has stopped.

use pgrx::pg_sys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Threads for maintenance work: the leader plus `max_parallel_maintenance_workers`, never
/// more than the machine has.
pub fn maintenance_threads() -> usize {
    let workers = unsafe { pg_sys::max_parallel_maintenance_workers }.max(0) as usize;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (workers + 1).clamp(1, cpus)
}

/// A cancel or terminate request is pending. Other interrupts (catch-up, barriers, …) also
/// set `InterruptPending` but must not stop the work; they are processed once it is done.
pub fn cancel_pending() -> bool {
    unsafe {
        std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) != 0
            || std::ptr::read_volatile(&raw const pg_sys::ProcDiePending) != 0
    }
}

/// Runs `work` on a pool of `threads` rayon threads. `work` receives the cancel flag and must
/// poll it; `on_tick` runs on the backend thread every few milliseconds (progress reports).
/// If the user cancelled, the pending interrupt raises its `ERROR` once the workers are done.
/// (Measured on the demo: `InterruptPending` alone does fire during a long build without any
/// cancel, so only the cancel and terminate flags stop the work.)
pub fn run<T: Send>(
    threads: usize,
    work: impl FnOnce(&AtomicBool) -> T + Send,
    on_tick: impl FnMut(),
) -> T {
    Pool::new(threads).run(work, on_tick)
}

/// A rayon pool kept for several [`Pool::run`] calls (a build that hands over batch after
/// batch should not start threads for each one).
pub struct Pool(rayon::ThreadPool);

impl Pool {
    pub fn new(threads: usize) -> Pool {
        Pool(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("pg_recall-{i}"))
                .build()
                .expect("could not start worker threads"),
        )
    }

    /// See [`run`].
    pub fn run<T: Send>(
        &self,
        work: impl FnOnce(&AtomicBool) -> T + Send,
        on_tick: impl FnMut(),
    ) -> T {
        self.run_alongside(work, || {}, on_tick)
    }

    /// [`run`](Self::run), with `main` running once on the backend thread while the workers
    /// compute: the backend's own share of a pipeline (writing pages from the previous
    /// batch), which may call into Postgres. If `main` raises an `ERROR`, the workers are
    /// told to stop and are joined before the error propagates.
    pub fn run_alongside<T: Send>(
        &self,
        work: impl FnOnce(&AtomicBool) -> T + Send,
        main: impl FnOnce(),
        mut on_tick: impl FnMut(),
    ) -> T {
        struct StopOnUnwind<'a>(&'a AtomicBool);
        impl Drop for StopOnUnwind<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
        }
        let cancel = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let handle = s.spawn(|| self.0.install(|| work(&cancel)));
            {
                let _stop = StopOnUnwind(&cancel);
                main();
            }
            // Short batches finish in well under a millisecond: poll fast at first.
            let mut nap = Duration::from_micros(50);
            while !handle.is_finished() {
                if cancel_pending() {
                    cancel.store(true, Ordering::Relaxed);
                }
                on_tick();
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(5));
            }
            handle.join()
        });
        pgrx::check_for_interrupts!();
        match result {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
