/* stats: per-pool counters and latency histograms. Recording is a few
 * integer operations: no lock, no allocation, no syscall. Read by the admin
 * console (SHOW STATS ...) and the /metrics endpoint. */
#ifndef TIDEPOOL_STATS_H
#define TIDEPOOL_STATS_H

#include <stdint.h>

#include "config.h"

/* Buckets: upper bounds 100 us * 2^i for i in [0, STATS_BUCKETS-1), then +Inf. */
#define STATS_BUCKETS 20

struct stats_histogram {
	uint64_t buckets[STATS_BUCKETS];   /* not cumulative */
	uint64_t count;
	usec_t sum;
};

struct stats_counters {
	uint64_t server_assignment_count;
	uint64_t xact_count, query_count;
	uint64_t bytes_received, bytes_sent;   /* from clients, to clients */
	usec_t xact_time, query_time, wait_time;
	uint64_t client_parse_count, server_parse_count, bind_count;
	uint64_t client_logins, server_logins, server_login_failures;
	uint64_t client_login_failures;       /* wrong password or failed SCRAM exchange */
	uint64_t query_timeouts, wait_timeouts, server_errors;
	uint64_t state_refused;               /* statements refused by session_state = error */
	uint64_t state_allowed;               /* statements let through by session_state = allow */
	uint64_t settings_replays;            /* backends given a client's recorded settings */
	struct stats_histogram wait_hist, query_hist, xact_hist;
};

void stats_observe(struct stats_histogram *h, usec_t value);
/* Upper bound of bucket i in microseconds; -1 for the last (+Inf). */
usec_t stats_bucket_bound(int i);

#endif
