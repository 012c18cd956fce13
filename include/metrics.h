/* metrics: the Prometheus text page (exposition format 0.0.4) served on
 * /metrics, and the readiness verdict served on /readyz. Formatting only:
 * it reads pools, their counters and the lifecycle state, never the
 * network. See doc/metrics.md for every family. */
#ifndef TIDEPOOL_METRICS_H
#define TIDEPOOL_METRICS_H

#include <stddef.h>

/* The content type of the page metrics_render builds. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One rendered page. It belongs to the caller until metrics_page_release,
 * so a page still being written to a slow reader is never overwritten by
 * the next scrape. Released pages are recycled (a few are kept). */
struct metrics_page {
	char *data;
	size_t len, cap;
	struct metrics_page *next_free;
};

/* Builds the whole page (no allocation in steady state). */
struct metrics_page *metrics_page_render(void);
void metrics_page_release(struct metrics_page *pg);
/* Bytes held by pages rendered and not yet released (slow readers). */
size_t metrics_pages_in_flight(void);

/* NULL while tidepool should receive new clients; otherwise a one-line
 * reason (a constant, or written into buf). */
const char *metrics_unready_reason(char *buf, size_t buflen);

/* Frees the recycled pages and label buffers (at exit, for leak checkers). */
void metrics_free(void);

#endif
