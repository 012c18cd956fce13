/* lifecycle: owns the process's run state, each fact stored once here:
 * global PAUSE, SUSPEND, the shutdown phase and kind, the start time, the
 * reload count and result. Readers (pools, janitor, admin, metrics, and
 * through a client hook the clients) ask this module; the actions each
 * change needs are main's, registered once with lifecycle_init, so this
 * module calls nothing above it.
 * Invariant: draining implies shutting down; a shutdown never ends. */
#include "lifecycle.h"

#include "loop.h"

static struct lifecycle_actions act;
static bool paused, suspended;
static bool shutting_down, draining;
static enum shutdown_kind kind;
static long long start_wall;
static unsigned reload_count;
static bool last_reload_ok = true;

void lifecycle_init(const struct lifecycle_actions *actions)
{
	act = *actions;
	start_wall = loop_wall_now();
}

void lifecycle_set_paused(bool on)
{
	paused = on;
	act.paused_changed(on);
}

bool lifecycle_paused(void)
{
	return paused;
}

void lifecycle_set_suspended(bool on)
{
	suspended = on;
	act.suspended_changed(on);
}

bool lifecycle_suspended(void)
{
	return suspended;
}

void lifecycle_shutdown(enum shutdown_kind k, const char *why)
{
	act.shutdown(k, why);
}

void lifecycle_begin_shutdown(enum shutdown_kind k)
{
	shutting_down = true;
	kind = k;
}

void lifecycle_begin_draining(void)
{
	draining = true;
}

bool lifecycle_shutting_down(void)
{
	return shutting_down;
}

enum shutdown_kind lifecycle_shutdown_kind(void)
{
	return kind;
}

bool lifecycle_draining(void)
{
	return draining;
}

long long lifecycle_start_time(void)
{
	return start_wall;
}

unsigned lifecycle_reload_count(void)
{
	return reload_count;
}

bool lifecycle_last_reload_ok(void)
{
	return last_reload_ok;
}

bool lifecycle_reload(char **errors)
{
	reload_count++;
	last_reload_ok = act.reload(errors);
	return last_reload_ok;
}

void lifecycle_install(struct config *cfg)
{
	act.install(cfg);
}
