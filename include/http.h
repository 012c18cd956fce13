/* http: the HTTP endpoint for /metrics, /livez and /readyz, served by
 * libevent's evhttp on the pooler's own event loop, at metrics_listen_addr
 * and metrics_port (0: off). */
#ifndef TIDEPOOL_HTTP_H
#define TIDEPOOL_HTTP_H

#include <stdbool.h>

#include "config.h"

/* Starts serving as cfg says. False (after logging why) when the address
 * could not be bound; the pooler runs on without the endpoint. */
bool http_start(const struct config *cfg);
/* After a reload: moves the endpoint if the address or port changed. When
 * the new address cannot be bound the old one keeps serving. */
void http_apply_config(const struct config *cfg);
/* Closes the listening sockets and every HTTP connection. */
void http_stop(void);

#endif
