/* dns: asynchronous host name resolution with c-ares, driven by the event
 * loop, with a cache that keeps each answer for its TTL (at most
 * dns_max_ttl; failures for dns_nxdomain_ttl). Nothing here blocks. */
#ifndef TIDEPOOL_DNS_H
#define TIDEPOOL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum dns_result {
	DNS_READY,     /* *addr is filled from the cache */
	DNS_PENDING,   /* a lookup is running; the done callback fires when it ends */
	DNS_FAILED,    /* the last lookup failed recently; *err says why */
};

typedef void (*dns_done_fn)(void);

/* done() runs after any lookup finishes (callers then retry their lookups). */
bool dns_init(dns_done_fn done);
void dns_free(void);
/* Looks up host (a name, not an IP literal). port is put into *addr. */
enum dns_result dns_lookup(const char *host, int port, struct sockaddr_storage *addr,
			   socklen_t *addrlen, const char **err);

/* Read-only views of the cache for the admin console (SHOW DNS_HOSTS, SHOW
 * LISTS). fn gets each name with an answer: seconds until it expires and
 * its addresses as "a,b,c". */
typedef void (*dns_host_fn)(const char *host, long long ttl, const char *addrs, void *arg);
void dns_for_each_host(dns_host_fn fn, void *arg);
size_t dns_name_count(void);      /* names in the cache */
size_t dns_pending_count(void);   /* lookups in flight */

#endif
