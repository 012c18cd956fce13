/* loop: owns the event_base and the deferred queue.
 * I/O events run at priority 0; the deferred queue's event at priority 1, so
 * it runs only after every ready I/O callback of the iteration. */
#include "loop.h"

#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "util.h"

static struct event_base *base;
static struct event *deferred_ev;

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
	event_base_dispatch(base);
}

void loop_exit(void)
{
	event_base_loopbreak(base);
}

usec_t loop_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
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
