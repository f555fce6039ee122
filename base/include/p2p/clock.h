/*
 * clock.h: wall-clock time.
 *
 * Timers and timeouts use the event loop's monotonic clock (uv_now); only what is
 * stored or sent as Unix time (record expiry, peer last-seen, binding expiry across
 * a restart) uses this.  libuv 1.44 (Debian 12) has no uv_clock_gettime.
 */
#ifndef P2P_CLOCK_H
#define P2P_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds (CLOCK_REALTIME). */
uint64_t p2p_wall_ms(void);

#endif
