/* http: the HTTP endpoint for /metrics, /livez and /readyz, served by
 * libevent's evhttp on the pooler's own event loop, at metrics_listen_addr
 * and metrics_port (0: off). */
#ifndef TIDEPOOL_HTTP_H
#define TIDEPOOL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Starts serving as cfg says. False (after logging why) when the address
 * could not be bound; the pooler runs on without the endpoint. */
bool http_start(const struct config *cfg);
/* After a reload: moves the endpoint if the address or port changed. When
 * the new address cannot be bound the old one keeps serving. */
void http_apply_config(const struct config *cfg);
/* What the pages say. The default is this process's own (metrics.c); the
 * supervisor of workers puts in pages that speak for all of them. */
struct http_pages {
	/* NULL when ready, else why not (written into buf). */
	const char *(*unready_reason)(char *buf, size_t len);
	/* The /metrics page, valid until release(*handle); NULL: answer 503. */
	const char *(*metrics)(size_t *len, void **handle);
	void (*release)(void *handle);
};
void http_set_pages(const struct http_pages *p);
/* The listening sockets of metrics_port, and taking over such a socket
 * from the process an in-place upgrade replaces. */
int http_export(int *fds, int max);
bool http_adopt(const struct config *cfg, int fd);
/* Also serves the pages on a Linux abstract unix socket: a worker's
 * private endpoint, which its supervisor reads. */
bool http_start_abstract(const char *name);
/* Closes the listening sockets and every HTTP connection. */
void http_stop(void);

#endif
