/* dns: asynchronous host name resolution with c-ares, driven by the event
 * loop, with a cache that keeps each answer for its TTL (at most
 * dns_max_ttl; failures for dns_nxdomain_ttl), re-resolves names in use
 * when they expire, checks zone serials (dns_zone_check_period) and tells
 * its user when a name's addresses change. Nothing here blocks. */
#ifndef TIDEPOOL_DNS_H
#define TIDEPOOL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum dns_result {
	DNS_READY,     /* *addr is filled from the cache */
	DNS_PENDING,   /* a lookup is running; the done callback fires when it ends */
	DNS_FAILED,    /* the last lookup failed recently; *err says why */
};

/* done() runs after any lookup finishes (callers then retry their
 * lookups); changed(host) when a name that had addresses gets a different
 * set. Both run from the deferred queue, never inside a caller's call. */
typedef void (*dns_done_fn)(void);
typedef void (*dns_changed_fn)(const char *host);

/* Sets up c-ares with the current config's resolv_conf (read here, at
 * start-up: it needs a restart to change). False if c-ares cannot start. */
bool dns_init(dns_done_fn done, dns_changed_fn changed);
void dns_free(void);
/* Looks up host (a name, not an IP literal). port is put into *addr. The
 * answer's addresses are handed out in turn. */
enum dns_result dns_lookup(const char *host, int port, struct sockaddr_storage *addr,
			   socklen_t *addrlen, const char **err);
/* Re-resolves host if it is cached and its answer expired (for names that
 * existing servers use: their address changes are noticed without waiting
 * for a new connection). */
void dns_refresh(const char *host);
/* Is the address of *ss (port ignored) in host's current answer? True when
 * nothing is known about host, so that a missing answer never closes
 * anything. */
bool dns_has_addr(const char *host, const struct sockaddr_storage *ss);
/* Once a second: zone serial checks, dropping long-unused names. */
void dns_tick(void);

/* Read-only views of the cache for the admin console and metrics. fn gets
 * each name with an answer: seconds until it expires and its addresses as
 * "a,b,c". */
typedef void (*dns_host_fn)(const char *host, long long ttl, const char *addrs, void *arg);
void dns_for_each_host(dns_host_fn fn, void *arg);
/* Zones known while dns_zone_check_period is on: name, last serial seen (0
 * before the first answer), names in the cache that belong to it. */
typedef void (*dns_zone_fn)(const char *zone, uint32_t serial, int count, void *arg);
void dns_for_each_zone(dns_zone_fn fn, void *arg);

struct dns_stats {
	uint64_t names;      /* names in the cache */
	uint64_t zones;      /* zones listed by dns_for_each_zone */
	uint64_t pending;    /* lookups in flight (names and zones) */
	uint64_t lookups;    /* lookups started */
	uint64_t failures;   /* lookups that failed */
	uint64_t changes;    /* answers whose address set changed */
};
void dns_get_stats(struct dns_stats *st);

#endif
