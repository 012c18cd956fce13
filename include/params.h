/* params: the session parameters tidepool carries from a client to whatever
 * server it gets (client_encoding, DateStyle, TimeZone,
 * standard_conforming_strings, application_name, plus
 * track_extra_parameters), and sets of their values. */
#ifndef TIDEPOOL_PARAMS_H
#define TIDEPOOL_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARAMS_MAX 16

struct param_set {
	const char *values[PARAMS_MAX];   /* interned; NULL: not known / not set */
};

/* Sets the tracked names: the five defaults plus a comma list. Extra names
 * beyond PARAMS_MAX are ignored (a warning is logged). */
void params_set_tracked(const char *extra);
size_t params_count(void);
const char *params_name(size_t i);
/* Index of a tracked name (case-insensitive), or -1. */
int params_index(const char *name);
/* Index of name, adding it to the tracked names when it is a valid setting
 * name and there is room (a client's startup parameter or `options -c`
 * setting that is not tracked yet); -1 otherwise. */
int params_track(const char *name);
/* True for a name PostgreSQL could know as a setting: letters, digits, _
 * and the dot of a custom class, at most 63 bytes, not starting with a digit. */
bool params_is_setting_name(const char *name);
/* False for names added by params_track: the server does not report their
 * values (no ParameterStatus), so tidepool keeps what it set itself and
 * RESETs them for a client that did not choose them. */
bool params_is_reported(size_t i);

/* Stores value (NULL clears) as a reference to its interned copy: sets with
 * equal values share one string, so idle clients with the pool's values
 * cost no allocation. */
void param_set_put(struct param_set *ps, size_t i, const char *value);
void param_set_clear(struct param_set *ps);
/* True if want has a value for i that have lacks or differs from: a
 * pointer compare, since values are interned. */
bool param_set_differs(const struct param_set *want, const struct param_set *have, size_t i);
/* param_set_differs for any tracked i, or a setting added by params_track
 * that have holds and want does not (it must be RESET): one call per link
 * instead of two per parameter. */
bool param_set_any_differs(const struct param_set *want, const struct param_set *have);

#endif
