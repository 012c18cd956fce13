/* dns: owns the c-ares channel, its socket events, the name cache and the
 * zone list.
 *
 * Invariants: an entry is never freed while its lookup is in flight (the
 * c-ares callback holds it), nor is a zone while its SOA query is. Each
 * answer is kept for min(record TTL, dns_max_ttl) but usable for at least
 * a second, so the launches that waited for it can use it even when the
 * TTL is 0. A failed re-lookup of a name that had addresses keeps them
 * (serve-stale) unless the name is authoritatively gone: a DNS blip must
 * not take a database away. Callbacks to the user go through the deferred
 * queue, because c-ares may answer inside ares_getaddrinfo itself. */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define DNS_MAX_SOCKS 16
#define DNS_MAX_ADDRS 8
#define DNS_MIN_USE USEC_PER_SEC           /* an answer serves its waiters at least this long */
#define DNS_DEFAULT_TIMEOUT_MS 2000
#define DNS_DEFAULT_TRIES 2
#define DNS_UNUSED_DROP (3600 * USEC_PER_SEC) /* names nobody asked for this long are dropped */

struct dns_zone {
	struct dns_zone *next;
	char *name;
	uint32_t serial;
	bool pending;
	usec_t next_check;
};

struct dns_entry {
	struct dns_entry *next;
	char *host;
	struct dns_zone *zone;          /* NULL for a name without a dot */
	bool pending;
	bool failed;
	bool stale;                     /* addresses kept after a failed re-lookup */
	char error[160];
	usec_t expires, answered_at, last_used;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	socklen_t lens[DNS_MAX_ADDRS];
	size_t n_addrs, rr;
};

struct dns_sock {
	ares_socket_t fd;
	struct event *ev;
};

static ares_channel channel;
static bool channel_ok;
static struct dns_entry *entries;
static struct dns_zone *zones;
static struct dns_sock socks[DNS_MAX_SOCKS];
static struct event *timer;
static dns_done_fn on_done;
static dns_changed_fn on_changed;
static bool done_scheduled;
static uint64_t n_lookups, n_failures, n_changes;

/* ------------------------------------------------------ loop plumbing */

static void run_done(void *arg)
{
	done_scheduled = false;
	if (on_done)
		on_done();
}

static void schedule_done(void)
{
	if (on_done && !done_scheduled) {
		done_scheduled = true;
		loop_defer(run_done, NULL);
	}
}

static void run_changed(void *arg)
{
	char *host = arg;
	if (on_changed)
		on_changed(host);
	free(host);
}

static void arm_timer(void)
{
	struct timeval tv, *t = ares_timeout(channel, NULL, &tv);
	if (t)
		event_add(timer, t);
	else
		event_del(timer);
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer();
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer();
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_sock *slot = NULL, *free_slot = NULL;
	for (int i = 0; i < DNS_MAX_SOCKS; i++) {
		if (socks[i].ev && socks[i].fd == fd)
			slot = &socks[i];
		else if (!socks[i].ev && !free_slot)
			free_slot = &socks[i];
	}
	if (slot) {
		event_free(slot->ev);
		slot->ev = NULL;
	}
	if (!readable && !writable)
		return;
	if (!slot)
		slot = free_slot;
	if (!slot) {
		log_error("dns: too many resolver sockets");
		return;
	}
	short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	slot->fd = fd;
	slot->ev = event_new(loop_base(), fd, what, on_sock_event, NULL);
	event_add(slot->ev, NULL);
}

/* -------------------------------------------------------- resolv_conf */

/* What tidepool reads from resolv_conf itself: c-ares 1.18 drops a port
 * written after a nameserver and ignores timeout/attempts options. */
struct resolv_extra {
	char servers[1024];   /* "ip:port,[ip6]:port,..." for ares_set_servers_ports_csv */
	int timeout_ms, tries;
};

static void add_server(struct resolv_extra *rx, const char *addr)
{
	size_t len = strlen(rx->servers);
	char buf[128];
	struct in6_addr a6;
	/* A bare IPv6 address needs brackets in the CSV form. */
	if (strchr(addr, ':') && inet_pton(AF_INET6, addr, &a6) == 1)
		snprintf(buf, sizeof(buf), "[%s]", addr);
	else
		strlcpy_safe(buf, addr, sizeof(buf));
	snprintf(rx->servers + len, sizeof(rx->servers) - len, "%s%s", len ? "," : "", buf);
}

static void parse_options(struct resolv_extra *rx, char *rest)
{
	for (char *tok = strtok(rest, " \t"); tok; tok = strtok(NULL, " \t")) {
		int64_t v;
		if (strncmp(tok, "timeout:", 8) == 0 && parse_int64(tok + 8, 1, 30, &v))
			rx->timeout_ms = (int)v * 1000;
		else if (strncmp(tok, "attempts:", 9) == 0 && parse_int64(tok + 9, 1, 5, &v))
			rx->tries = (int)v;
	}
}

/* Read once at start-up (resolv_conf needs a restart), before the loop runs. */
static bool read_resolv_conf(const char *path, struct resolv_extra *rx)
{
	FILE *f = fopen(path, "r");
	char line[512];
	if (!f) {
		log_error("dns: cannot read resolv_conf %s: %s", path, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *word, *rest;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '#' || *p == ';' || !*p)
			continue;
		word = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
		rest = p;
		rest[strcspn(rest, "#;\r\n")] = '\0';
		if (strcmp(word, "nameserver") == 0) {
			char *addr = strtok(rest, " \t");
			if (addr)
				add_server(rx, addr);
		} else if (strcmp(word, "options") == 0) {
			parse_options(rx, rest);
		}
	}
	fclose(f);
	return true;
}

static bool init_channel(const char *resolv_conf)
{
	struct resolv_extra rx = { .timeout_ms = DNS_DEFAULT_TIMEOUT_MS, .tries = DNS_DEFAULT_TRIES };
	struct ares_options opts = { .sock_state_cb = sock_state };
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	if (resolv_conf && resolv_conf[0]) {
		if (!read_resolv_conf(resolv_conf, &rx))
			return false;
		opts.resolvconf_path = (char *)resolv_conf;
		mask |= ARES_OPT_RESOLVCONF;
	}
	opts.timeout = rx.timeout_ms;
	opts.tries = rx.tries;
	int rc = ares_init_options(&channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		log_error("dns: cannot initialize c-ares: %s", ares_strerror(rc));
		return false;
	}
	channel_ok = true;
	if (rx.servers[0]) {
		rc = ares_set_servers_ports_csv(channel, rx.servers);
		if (rc != ARES_SUCCESS) {
			log_error("dns: bad nameserver in %s (%s): %s", resolv_conf, rx.servers, ares_strerror(rc));
			ares_destroy(channel);
			channel_ok = false;
			return false;
		}
		log_info("dns: using nameservers %s from %s", rx.servers, resolv_conf);
	}
	return true;
}

bool dns_init(dns_done_fn done, dns_changed_fn changed)
{
	on_done = done;
	on_changed = changed;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		return false;
	timer = event_new(loop_base(), -1, 0, on_timer, NULL);
	return init_channel(config_current()->resolv_conf);
}

static void entry_free(struct dns_entry *e)
{
	free(e->host);
	free(e);
}

void dns_free(void)
{
	/* Destroying the channel runs the pending callbacks (ARES_EDESTRUCTION)
	 * while entries and zones still exist. */
	on_done = NULL;
	on_changed = NULL;
	if (channel_ok) {
		ares_destroy(channel);
		channel_ok = false;
	}
	while (entries) {
		struct dns_entry *e = entries;
		entries = e->next;
		entry_free(e);
	}
	while (zones) {
		struct dns_zone *z = zones;
		zones = z->next;
		free(z->name);
		free(z);
	}
	for (int i = 0; i < DNS_MAX_SOCKS; i++)
		if (socks[i].ev) {
			event_free(socks[i].ev);
			socks[i].ev = NULL;
		}
	if (timer) {
		event_free(timer);
		timer = NULL;
	}
	ares_library_cleanup();
}

/* ------------------------------------------------------------- answers */

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return false;
}

static bool entry_has(const struct dns_entry *e, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < e->n_addrs; i++)
		if (same_ip(&e->addrs[i], ss))
			return true;
	return false;
}

static void format_addrs(const struct dns_entry *e, char *buf, size_t len)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < e->n_addrs && pos + 1 < len; i++) {
		char ip[INET6_ADDRSTRLEN] = "?";
		const struct sockaddr_storage *ss = &e->addrs[i];
		const void *a = ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
							 : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		inet_ntop(ss->ss_family, a, ip, sizeof(ip));
		int n = snprintf(buf + pos, len - pos, "%s%s", i ? "," : "", ip);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
}

/* Replaces e's addresses with the answer's; true if the set changed. */
static bool store_answer(struct dns_entry *e, const struct ares_addrinfo *res)
{
	const struct config *cfg = config_current();
	struct dns_entry old = *e;
	int ttl = -1;
	e->n_addrs = 0;
	for (const struct ares_addrinfo_node *n = res->nodes; n && e->n_addrs < DNS_MAX_ADDRS; n = n->ai_next) {
		if (n->ai_addrlen > sizeof(e->addrs[0]) || (n->ai_family != AF_INET && n->ai_family != AF_INET6))
			continue;
		struct sockaddr_storage ss = { 0 };
		memcpy(&ss, n->ai_addr, n->ai_addrlen);
		if (entry_has(e, &ss))
			continue;
		e->addrs[e->n_addrs] = ss;
		e->lens[e->n_addrs++] = (socklen_t)n->ai_addrlen;
		if (ttl < 0 || n->ai_ttl < ttl)
			ttl = n->ai_ttl;
	}
	usec_t life = ttl >= 0 ? (usec_t)ttl * USEC_PER_SEC : cfg->dns_max_ttl;
	if (life > cfg->dns_max_ttl)
		life = cfg->dns_max_ttl;
	e->answered_at = loop_now();
	e->expires = e->answered_at + life;
	bool changed = old.n_addrs != e->n_addrs;
	for (size_t i = 0; !changed && i < old.n_addrs; i++)
		changed = !entry_has(e, &old.addrs[i]);
	if (changed && old.n_addrs > 0) {
		char was[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)], now[sizeof(was)];
		format_addrs(&old, was, sizeof(was));
		format_addrs(e, now, sizeof(now));
		log_info("dns: %s changed from %s to %s: servers on a dropped address close when released",
			 e->host, was, now);
	}
	return changed && old.n_addrs > 0;
}

/* A failed lookup. Returns nothing to tell: addresses never change here. */
static void store_failure(struct dns_entry *e, int status)
{
	usec_t now = loop_now();
	n_failures++;
	e->answered_at = now;
	e->expires = now + config_current()->dns_nxdomain_ttl;
	bool gone = status == ARES_ENOTFOUND || status == ARES_ENODATA;
	if (e->n_addrs > 0 && !gone) {
		e->stale = true;
		log_warning("dns: looking up %s again failed (%s); keeping its previous addresses",
			    e->host, ares_strerror(status));
		return;
	}
	e->failed = true;
	e->n_addrs = 0;
	snprintf(e->error, sizeof(e->error), "could not resolve host \"%s\": %s", e->host,
		 ares_strerror(status));
	log_warning("dns: %s", e->error);
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_entry *e = arg;
	e->pending = false;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		if (res)
			ares_freeaddrinfo(res);
		return;
	}
	bool changed = false;
	if (status == ARES_SUCCESS && res && res->nodes) {
		e->failed = false;
		e->stale = false;
		changed = store_answer(e, res);
		log_debug("dns: %s resolved (%zu addresses)", e->host, e->n_addrs);
	} else {
		store_failure(e, status == ARES_SUCCESS ? ARES_ENODATA : status);
	}
	if (res)
		ares_freeaddrinfo(res);
	if (changed) {
		n_changes++;
		if (on_changed)
			loop_defer(run_changed, xstrdup(e->host));
	}
	schedule_done();
}

/* -------------------------------------------------------------- cache */

static struct dns_zone *zone_for(const char *host)
{
	const char *dot = strchr(host, '.');
	if (!dot || !dot[1])
		return NULL;
	for (struct dns_zone *z = zones; z; z = z->next)
		if (strcasecmp(z->name, dot + 1) == 0)
			return z;
	struct dns_zone *z = xcalloc(1, sizeof(*z));
	z->name = xstrdup(dot + 1);
	z->next = zones;
	zones = z;
	return z;
}

static struct dns_entry *find_entry(const char *host)
{
	for (struct dns_entry *e = entries; e; e = e->next)
		if (strcasecmp(e->host, host) == 0)
			return e;
	return NULL;
}

static struct dns_entry *get_entry(const char *host)
{
	struct dns_entry *e = find_entry(host);
	if (e)
		return e;
	e = xcalloc(1, sizeof(*e));
	e->host = xstrdup(host);
	e->zone = zone_for(host);
	e->next = entries;
	entries = e;
	return e;
}

static void start_lookup(struct dns_entry *e)
{
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	e->pending = true;
	n_lookups++;
	ares_getaddrinfo(channel, e->host, NULL, &hints, on_answer, e);
	if (channel_ok)
		arm_timer();
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static bool entry_usable(const struct dns_entry *e, usec_t now)
{
	return e->answered_at && (now < e->expires || now - e->answered_at < DNS_MIN_USE);
}

enum dns_result dns_lookup(const char *host, int port, struct sockaddr_storage *addr,
			   socklen_t *addrlen, const char **err)
{
	if (!channel_ok) {
		*err = "DNS resolver not available";
		return DNS_FAILED;
	}
	struct dns_entry *e = get_entry(host);
	usec_t now = loop_now();
	e->last_used = now;
	if (e->pending)
		return DNS_PENDING;
	if (!entry_usable(e, now)) {
		start_lookup(e);
		/* c-ares may answer at once (hosts file): check again. */
		if (e->pending)
			return DNS_PENDING;
	}
	if (e->failed || e->n_addrs == 0) {
		*err = e->failed ? e->error : "no addresses";
		return DNS_FAILED;
	}
	size_t i = e->rr++ % e->n_addrs;
	memcpy(addr, &e->addrs[i], e->lens[i]);
	*addrlen = e->lens[i];
	set_port(addr, port);
	return DNS_READY;
}

void dns_refresh(const char *host)
{
	struct dns_entry *e = channel_ok ? find_entry(host) : NULL;
	if (!e)
		return;
	usec_t now = loop_now();
	e->last_used = now;
	if (!e->pending && e->answered_at && now >= e->expires)
		start_lookup(e);
}

bool dns_has_addr(const char *host, const struct sockaddr_storage *ss)
{
	const struct dns_entry *e = find_entry(host);
	if (!e || e->n_addrs == 0)
		return true;
	return entry_has(e, ss);
}

/* ---------------------------------------------------------------- zones */

static void on_soa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_zone *z = arg;
	struct ares_soa_reply *soa = NULL;
	z->pending = false;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;
	if (status != ARES_SUCCESS || ares_parse_soa_reply(abuf, alen, &soa) != ARES_SUCCESS) {
		log_debug("dns: SOA lookup of zone %s failed: %s", z->name, ares_strerror(status));
		return;
	}
	uint32_t serial = soa->serial;
	ares_free_data(soa);
	if (z->serial && serial != z->serial) {
		log_info("dns: zone %s serial changed from %u to %u: looking up its names again",
			 z->name, z->serial, serial);
		for (struct dns_entry *e = entries; e; e = e->next)
			if (e->zone == z && !e->pending && e->answered_at)
				start_lookup(e);
	}
	z->serial = serial;
}

static void check_zones(usec_t now)
{
	usec_t period = config_current()->dns_zone_check_period;
	if (period <= 0)
		return;
	for (struct dns_zone *z = zones; z; z = z->next) {
		if (z->pending || now < z->next_check)
			continue;
		z->next_check = now + period;
		z->pending = true;
		/* class IN (1), type SOA (6) */
		ares_query(channel, z->name, 1, 6, on_soa, z);
	}
	arm_timer();
}

/* Names nobody has asked for in an hour go, and zones left without names. */
static void drop_unused(usec_t now)
{
	for (struct dns_entry **pe = &entries; *pe;) {
		struct dns_entry *e = *pe;
		if (!e->pending && now - e->last_used > DNS_UNUSED_DROP) {
			*pe = e->next;
			entry_free(e);
		} else {
			pe = &e->next;
		}
	}
	for (struct dns_zone **pz = &zones; *pz;) {
		struct dns_zone *z = *pz;
		bool used = z->pending;
		for (const struct dns_entry *e = entries; e && !used; e = e->next)
			used = e->zone == z;
		if (!used) {
			*pz = z->next;
			free(z->name);
			free(z);
		} else {
			pz = &z->next;
		}
	}
}

void dns_tick(void)
{
	if (!channel_ok)
		return;
	usec_t now = loop_now();
	check_zones(now);
	drop_unused(now);
}

/* ---------------------------------------------------------------- views */

void dns_for_each_host(dns_host_fn fn, void *arg)
{
	usec_t now = loop_now();
	for (const struct dns_entry *e = entries; e; e = e->next) {
		if (e->n_addrs == 0)
			continue;
		char addrs[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)];
		format_addrs(e, addrs, sizeof(addrs));
		usec_t left = e->expires > now ? e->expires - now : 0;
		fn(e->host, (long long)(left / USEC_PER_SEC), addrs, arg);
	}
}

void dns_for_each_zone(dns_zone_fn fn, void *arg)
{
	if (config_current()->dns_zone_check_period <= 0)
		return;
	for (const struct dns_zone *z = zones; z; z = z->next) {
		int count = 0;
		for (const struct dns_entry *e = entries; e; e = e->next)
			count += e->zone == z;
		fn(z->name, z->serial, count, arg);
	}
}

static void count_zone(const char *zone, uint32_t serial, int count, void *arg)
{
	(*(uint64_t *)arg)++;
}

void dns_get_stats(struct dns_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (const struct dns_entry *e = entries; e; e = e->next) {
		st->names++;
		st->pending += e->pending;
	}
	for (const struct dns_zone *z = zones; z; z = z->next)
		st->pending += z->pending;
	dns_for_each_zone(count_zone, &st->zones);
	st->lookups = n_lookups;
	st->failures = n_failures;
	st->changes = n_changes;
}
