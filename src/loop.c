/* loop: owns the event_base, the deferred queue and the cached clock.
 * I/O events run at priority 0; the deferred queue's event at priority 1, so
 * it runs only after every ready I/O callback of the iteration.
 * loop_run() drives libevent one iteration at a time (EVLOOP_ONCE) so that
 * the monotonic clock is read at most once per iteration: a transaction
 * asks for the time a dozen times (state changes, stats), and the answers
 * within one iteration may be equal. */
#include "loop.h"

#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "util.h"

static struct event_base *base;
static struct event *deferred_ev;

/* The clock as first read in the current iteration; valid only inside
 * loop_run(), so code running outside the loop (start-up, unit tests)
 * always reads the clock. */
static bool in_iteration;
static bool now_valid;
static usec_t now_cached;

struct deferred {
	loop_deferred_fn fn;
	void *arg;
};
static struct deferred *deferred_items;
static size_t deferred_len, deferred_cap;

static void run_deferred(evutil_socket_t fd, short what, void *arg)
{
	/* Items deferred while this runs are appended and run in the same pass. */
	for (size_t i = 0; i < deferred_len; i++) {
		struct deferred d = deferred_items[i];
		d.fn(d.arg);
	}
	deferred_len = 0;
}

void loop_init(void)
{
	struct event_config *cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!base) {
		log_fatal("could not create the event loop");
		exit(1);
	}
	event_base_priority_init(base, 2);
	deferred_ev = event_new(base, -1, 0, run_deferred, NULL);
	event_priority_set(deferred_ev, 1);
}

void loop_free(void)
{
	run_deferred(-1, 0, NULL);
	if (deferred_ev)
		event_free(deferred_ev);
	if (base)
		event_base_free(base);
	free(deferred_items);
	deferred_items = NULL;
	deferred_len = deferred_cap = 0;
	base = NULL;
	deferred_ev = NULL;
}

struct event_base *loop_base(void)
{
	return base;
}

void loop_run(void)
{
	for (;;) {
		now_valid = false;
		in_iteration = true;
		int r = event_base_loop(base, EVLOOP_ONCE);
		in_iteration = false;
		now_valid = false;
		/* 1: nothing left to wait for; -1: error; a loopbreak ends it too */
		if (r != 0 || event_base_got_break(base))
			return;
	}
}

void loop_exit(void)
{
	event_base_loopbreak(base);
}

usec_t loop_now(void)
{
	if (now_valid)
		return now_cached;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	usec_t now = (usec_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
	if (in_iteration) {
		now_cached = now;
		now_valid = true;
	}
	return now;
}

usec_t loop_wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

void loop_defer(loop_deferred_fn fn, void *arg)
{
	if (deferred_len == deferred_cap) {
		deferred_cap = deferred_cap ? deferred_cap * 2 : 64;
		deferred_items = xrealloc(deferred_items, deferred_cap * sizeof(*deferred_items));
	}
	deferred_items[deferred_len++] = (struct deferred){ fn, arg };
	if (deferred_len == 1)
		event_active(deferred_ev, 0, 0);
}
