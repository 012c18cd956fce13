/* params: owns the list of tracked parameter names and the table of
 * interned values.
 * Invariant: every value stored in a param_set is an interned string (one
 * reference per set slot), so two sets hold the same value exactly when
 * they hold the same pointer: the check at every link is a pointer compare.
 * Idle clients with the pool's values share one copy of each. */
#include "params.h"

#include <ctype.h>
#include <stddef.h>
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
static size_t n_configured;   /* names[0..n_configured) come from the config */

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
	n_configured = n_names;
}

/* A setting name as PostgreSQL spells them: letters, digits, _ and the
 * dot of a custom class. Anything else cannot be put in a SET. */
bool params_is_setting_name(const char *name)
{
	if (!name[0] || strlen(name) > 63 || isdigit((unsigned char)name[0]))
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.')
			return false;
	return true;
}

int params_track(const char *name)
{
	int idx = params_index(name);
	if (idx >= 0 || !params_is_setting_name(name) || n_names == PARAMS_MAX)
		return idx;
	names[n_names] = xstrdup(name);
	return (int)n_names++;
}

bool params_is_reported(size_t i)
{
	return i < n_configured;
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

/* ---- interned values: a chained hash table that doubles past one entry
 * per bucket; entries are freed with their last reference. */

struct interned {
	struct interned *next;
	uint32_t refs;
	uint32_t hash;
	char str[];
};

static struct interned **intern_buckets;
static size_t intern_n_buckets, intern_count;

static uint32_t intern_hash(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

static void intern_grow(void)
{
	size_t nb = intern_n_buckets ? intern_n_buckets * 2 : 64;
	struct interned **nbk = xcalloc(nb, sizeof(*nbk));
	for (size_t i = 0; i < intern_n_buckets; i++) {
		struct interned *e = intern_buckets[i];
		while (e) {
			struct interned *next = e->next;
			e->next = nbk[e->hash & (nb - 1)];
			nbk[e->hash & (nb - 1)] = e;
			e = next;
		}
	}
	free(intern_buckets);
	intern_buckets = nbk;
	intern_n_buckets = nb;
}

/* The interned copy of s, with one more reference. */
static const char *intern_get(const char *s)
{
	uint32_t h = intern_hash(s);
	if (intern_n_buckets) {
		for (struct interned *e = intern_buckets[h & (intern_n_buckets - 1)]; e; e = e->next) {
			if (e->hash == h && strcmp(e->str, s) == 0) {
				e->refs++;
				return e->str;
			}
		}
	}
	if (intern_count >= intern_n_buckets)
		intern_grow();
	size_t len = strlen(s);
	struct interned *e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->str, s, len + 1);
	e->refs = 1;
	e->hash = h;
	e->next = intern_buckets[h & (intern_n_buckets - 1)];
	intern_buckets[h & (intern_n_buckets - 1)] = e;
	intern_count++;
	return e->str;
}

static void intern_put(const char *str)
{
	struct interned *e = (struct interned *)(void *)(str - offsetof(struct interned, str));
	if (--e->refs > 0)
		return;
	struct interned **pp = &intern_buckets[e->hash & (intern_n_buckets - 1)];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	intern_count--;
	free(e);
}

void param_set_put(struct param_set *ps, size_t i, const char *value)
{
	if (ps->values[i] == value)
		return;
	const char *old = ps->values[i];
	ps->values[i] = value ? intern_get(value) : NULL;
	if (old)
		intern_put(old);   /* after: value may be old itself, or point into it */
}

void param_set_clear(struct param_set *ps)
{
	for (size_t i = 0; i < PARAMS_MAX; i++)
		param_set_put(ps, i, NULL);
}

bool param_set_differs(const struct param_set *want, const struct param_set *have, size_t i)
{
	return want->values[i] && want->values[i] != have->values[i];
}

bool param_set_any_differs(const struct param_set *want, const struct param_set *have)
{
	for (size_t i = 0; i < n_names; i++) {
		if (want->values[i] && want->values[i] != have->values[i])
			return true;
		if (!want->values[i] && have->values[i] && i >= n_configured)
			return true;   /* a setting of another client to RESET */
	}
	return false;
}
