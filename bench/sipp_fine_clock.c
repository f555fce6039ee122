/*
 * sipp_fine_clock.c: an LD_PRELOAD shim that gives sipp 3.6.x a fine clock.
 *
 * sipp 3.6.1 (Debian 12) reads all its time from clock_gettime(CLOCK_MONOTONIC_COARSE)
 * (src/time.cpp getmicroseconds()), which advances once per kernel tick: 4 ms with
 * HZ=250.  Its response times (-trace_rtt, rtd="...") then come in 4 ms steps, too
 * coarse for a 3 ms target, and -timer_resol does not change that (it only sets how
 * often sipp's scheduler runs).  sipp 3.7.x reads std::chrono::steady_clock instead.
 * This shim turns a request for CLOCK_MONOTONIC_COARSE into CLOCK_MONOTONIC
 * (microseconds, through the vDSO); every other clock passes through unchanged.
 * bench/bench_p2psip.sh builds it and preloads it into sipp only, never into the
 * servers it measures.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

typedef int clock_gettime_fn(clockid_t, struct timespec *);

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    static clock_gettime_fn *next;

    if (!next)
        next = (clock_gettime_fn *)dlsym(RTLD_NEXT, "clock_gettime");
    if (clk == CLOCK_MONOTONIC_COARSE)
        clk = CLOCK_MONOTONIC;
    return next(clk, ts);
}
