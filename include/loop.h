/* loop: the one libevent event_base, the monotonic clock, and the deferred
 * work queue that runs after every I/O callback of a loop iteration (used to
 * free connections outside their own callbacks). */
#ifndef TIDEPOOL_LOOP_H
#define TIDEPOOL_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"

struct event_base;

void loop_init(void);
void loop_free(void);
struct event_base *loop_base(void);
/* Runs until loop_exit(). */
void loop_run(void);
void loop_exit(void);

/* Monotonic time in microseconds, read once per loop iteration (vDSO
 * clock, no syscall): calls within one iteration may return the same value. */
usec_t loop_now(void);
/* Wall-clock time in microseconds since the epoch. */
usec_t loop_wall_now(void);

/* Deferred work: fn(arg) runs once, after the I/O callbacks of the current
 * iteration. */
typedef void (*loop_deferred_fn)(void *arg);
void loop_defer(loop_deferred_fn fn, void *arg);

#endif
