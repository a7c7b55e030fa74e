/* clock.h: monotonic and wall clocks in milliseconds / seconds. */
#ifndef PARLEY_CORE_CLOCK_H
#define PARLEY_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t clock_mono_ms(void);
/* Monotonic microseconds: for measuring short spans (response times). */
uint64_t clock_mono_us(void);
/* Wall-clock time in ms since the epoch (for records and expiry stored on disk). */
uint64_t clock_wall_ms(void);

#endif
