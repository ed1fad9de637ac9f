#define _GNU_SOURCE
#include "background_yield.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Thread_local timer_t yield_timer;
static _Thread_local int yield_timer_created;
static _Thread_local long yield_interval_us;
static _Thread_local long yield_count;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_installed;

/// A real-time signal no library in the process uses (glibc keeps the two below SIGRTMIN for itself).
static int yield_signal(void) { return SIGRTMIN + 5; }

static void on_yield_signal(int signal) {
    (void)signal;
    int saved = errno;
    yield_count += 1;
    sched_yield();
    errno = saved;
}

static void install_handler(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_yield_signal;
    // Interrupted reads, writes and lock waits resume by themselves.
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    handler_installed = sigaction(yield_signal(), &action, NULL) == 0;
}

int adk_yield_timer_create(void) {
    if (yield_timer_created) return 0;
    pthread_once(&handler_once, install_handler);
    if (!handler_installed) return -1;
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = yield_signal();
    event._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &event, &yield_timer) != 0) return -1;
    // Threads started from Dispatch's workers inherit a mask that blocks every signal.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, yield_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    yield_timer_created = 1;
    return 0;
}

void adk_yield_timer_arm(long interval_us) {
    if (!yield_timer_created) return;
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    if (interval_us > 0) {
        spec.it_interval.tv_sec = interval_us / 1000000;
        spec.it_interval.tv_nsec = (interval_us % 1000000) * 1000;
        spec.it_value = spec.it_interval;
    }
    timer_settime(yield_timer, 0, &spec, NULL);
    yield_interval_us = interval_us > 0 ? interval_us : 0;
}

long adk_yield_timer_suspend(void) {
    long interval = yield_interval_us;
    if (interval > 0) adk_yield_timer_arm(0);
    return interval;
}

long adk_yield_count(void) { return yield_count; }
