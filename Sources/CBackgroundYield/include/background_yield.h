#ifndef BACKGROUND_YIELD_H
#define BACKGROUND_YIELD_H

/// A per-thread timer that makes a background thread give up its CPU every few hundred microseconds while it works.
///
/// Why: the Linux scheduler (EEVDF) can pick a SCHED_IDLE thread over a runnable normal thread that has just used
/// its share, and then lets it run until the next tick (4 ms at HZ=250) unless something wakes. A request's thread
/// queued behind a load's thread waited 2–4 ms that way (seen with `perf sched`). The timer's signal handler calls
/// `sched_yield()`, which re-picks at once: a background thread now holds a CPU another thread wants for at most
/// one interval.

/// Creates the calling thread's timer (once per thread; later calls do nothing). Returns 0, or -1 when the system
/// refused (the thread then simply runs without it).
int adk_yield_timer_create(void);

/// Starts (`interval_us` > 0) or stops (0) the calling thread's timer. Without a timer, does nothing.
void adk_yield_timer_arm(long interval_us);

/// Stops the calling thread's timer for a blocking wait and returns its interval (0 when it was not running), to
/// be given back to `adk_yield_timer_arm` after the wait: a signal every interval would otherwise wake the thread.
long adk_yield_timer_suspend(void);

/// Signals the calling thread has handled so far (for tests).
long adk_yield_count(void);

#endif
