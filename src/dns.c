/* dns: owns the c-ares channel, its socket events and the name cache.
 * Round-robins over the addresses of an answer, so servers spread over
 * every address a name has. */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "reload.h"
#include "util.h"

#define DNS_MAX_SOCKS 16
#define DNS_MAX_ADDRS 8

struct dns_entry {
	struct dns_entry *next;
	char *host;
	bool pending;
	bool failed;
	char error[128];
	usec_t expires;
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
static struct dns_sock socks[DNS_MAX_SOCKS];
static struct event *timer;
static dns_done_fn on_done;
static bool done_scheduled;

static void run_done(void *arg)
{
	done_scheduled = false;
	on_done();
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

bool dns_init(dns_done_fn done)
{
	on_done = done;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		return false;
	struct ares_options opts = { .sock_state_cb = sock_state };
	if (ares_init_options(&channel, &opts, ARES_OPT_SOCK_STATE_CB) != ARES_SUCCESS) {
		log_error("dns: cannot initialize c-ares");
		return false;
	}
	channel_ok = true;
	timer = event_new(loop_base(), -1, 0, on_timer, NULL);
	return true;
}

void dns_free(void)
{
	while (entries) {
		struct dns_entry *e = entries;
		entries = e->next;
		free(e->host);
		free(e);
	}
	if (channel_ok) {
		ares_destroy(channel);
		channel_ok = false;
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

static void store_answer(struct dns_entry *e, const struct ares_addrinfo *res)
{
	const struct config *cfg = config_current();
	int ttl = -1;
	e->n_addrs = 0;
	for (const struct ares_addrinfo_node *n = res->nodes; n && e->n_addrs < DNS_MAX_ADDRS; n = n->ai_next) {
		if (n->ai_addrlen > sizeof(e->addrs[0]))
			continue;
		memcpy(&e->addrs[e->n_addrs], n->ai_addr, n->ai_addrlen);
		e->lens[e->n_addrs++] = (socklen_t)n->ai_addrlen;
		if (ttl < 0 || n->ai_ttl < ttl)
			ttl = n->ai_ttl;
	}
	usec_t life = ttl >= 0 ? (usec_t)ttl * USEC_PER_SEC : cfg->dns_max_ttl;
	if (life > cfg->dns_max_ttl)
		life = cfg->dns_max_ttl;
	e->expires = loop_now() + life;
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_entry *e = arg;
	e->pending = false;
	if (status == ARES_SUCCESS && res && res->nodes) {
		e->failed = false;
		store_answer(e, res);
		log_debug("dns: %s resolved (%zu addresses)", e->host, e->n_addrs);
	} else {
		e->failed = true;
		snprintf(e->error, sizeof(e->error), "could not resolve host \"%s\": %s", e->host,
			 ares_strerror(status));
		e->expires = loop_now() + config_current()->dns_nxdomain_ttl;
		log_warning("dns: %s", e->error);
	}
	if (res)
		ares_freeaddrinfo(res);
	/* Deferred: an answer can arrive inside ares_getaddrinfo itself, in the
	 * middle of the caller's launch. */
	if (on_done && !done_scheduled) {
		done_scheduled = true;
		loop_defer(run_done, NULL);
	}
}

static struct dns_entry *find_entry(const char *host)
{
	for (struct dns_entry *e = entries; e; e = e->next)
		if (strcmp(e->host, host) == 0)
			return e;
	struct dns_entry *e = xcalloc(1, sizeof(*e));
	e->host = xstrdup(host);
	e->next = entries;
	entries = e;
	return e;
}

static void start_lookup(struct dns_entry *e)
{
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	e->pending = true;
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

enum dns_result dns_lookup(const char *host, int port, struct sockaddr_storage *addr,
			   socklen_t *addrlen, const char **err)
{
	if (!channel_ok) {
		*err = "DNS resolver not available";
		return DNS_FAILED;
	}
	struct dns_entry *e = find_entry(host);
	bool fresh = e->expires > loop_now();
	if (e->pending)
		return DNS_PENDING;
	if (!fresh) {
		start_lookup(e);
		/* c-ares may answer at once (hosts file): check again. */
		if (e->pending)
			return DNS_PENDING;
	}
	if (e->failed) {
		*err = e->error;
		return DNS_FAILED;
	}
	size_t i = e->rr++ % e->n_addrs;
	memcpy(addr, &e->addrs[i], e->lens[i]);
	*addrlen = e->lens[i];
	set_port(addr, port);
	return DNS_READY;
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

void dns_for_each_host(dns_host_fn fn, void *arg)
{
	usec_t now = loop_now();
	for (const struct dns_entry *e = entries; e; e = e->next) {
		if (e->failed || e->n_addrs == 0)
			continue;
		char addrs[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)];
		format_addrs(e, addrs, sizeof(addrs));
		usec_t left = e->expires > now ? e->expires - now : 0;
		fn(e->host, (long long)(left / USEC_PER_SEC), addrs, arg);
	}
}

size_t dns_name_count(void)
{
	size_t n = 0;
	for (const struct dns_entry *e = entries; e; e = e->next)
		n++;
	return n;
}

size_t dns_pending_count(void)
{
	size_t n = 0;
	for (const struct dns_entry *e = entries; e; e = e->next)
		n += e->pending;
	return n;
}
