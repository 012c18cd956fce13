/* params: owns the list of tracked parameter names. */
#include "params.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

static const char *const default_names[] = {
	"client_encoding", "DateStyle", "TimeZone", "standard_conforming_strings", "application_name",
};
static char *names[PARAMS_MAX];
static size_t n_names;

static void add_name(const char *name, size_t len)
{
	for (size_t i = 0; i < n_names; i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
			return;
	if (n_names == PARAMS_MAX) {
		log_warning("track_extra_parameters: too many parameters, ignoring \"%.*s\"", (int)len, name);
		return;
	}
	names[n_names++] = xstrndup(name, len);
}

void params_set_tracked(const char *extra)
{
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	n_names = 0;
	for (size_t i = 0; i < ARRAY_SIZE(default_names); i++)
		add_name(default_names[i], strlen(default_names[i]));
	const char *p = extra ? extra : "";
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		const char *start = p;
		while (*p && *p != ',' && !isspace((unsigned char)*p))
			p++;
		if (p > start)
			add_name(start, (size_t)(p - start));
	}
}

size_t params_count(void)
{
	return n_names;
}

const char *params_name(size_t i)
{
	return names[i];
}

int params_index(const char *name)
{
	for (size_t i = 0; i < n_names; i++)
		if (strcasecmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

static void param_drop(struct param_set *ps, size_t i)
{
	if (ps->owned & (1u << i))
		free((char *)ps->values[i]);
	ps->owned &= ~(1u << i);
	ps->values[i] = NULL;
}

void param_set_put(struct param_set *ps, size_t i, const char *value)
{
	if (ps->values[i] && value && strcmp(ps->values[i], value) == 0)
		return;
	param_drop(ps, i);
	if (value) {
		ps->values[i] = xstrdup(value);
		ps->owned |= 1u << i;
	}
}

void param_set_borrow(struct param_set *ps, size_t i, const char *value)
{
	param_drop(ps, i);
	ps->values[i] = value;
}

void param_set_clear(struct param_set *ps)
{
	for (size_t i = 0; i < PARAMS_MAX; i++)
		param_drop(ps, i);
}

bool param_set_differs(const struct param_set *want, const struct param_set *have, size_t i)
{
	const char *w = want->values[i], *h = have->values[i];
	if (!w)
		return false;
	return !h || strcmp(w, h) != 0;
}
