/* clock.c: wall-clock time (see clock.h). */
#include "p2p/clock.h"

#include <time.h>

uint64_t p2p_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
