/* clock.h: the one clock for deadlines and intervals: monotonic, so that a
 * change of the wall clock moves no deadline. */
#ifndef OPENOVA_CLOCK_H
#define OPENOVA_CLOCK_H

/* clock_ms: milliseconds on CLOCK_MONOTONIC (an arbitrary start). */
long long clock_ms(void);

/* clock_us: microseconds on the same clock, for durations measured finely. */
long long clock_us(void);

#endif
