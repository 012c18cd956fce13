/* http: owns the evhttp server and its listening sockets.
 *
 * Everything runs on the pooler's loop, so nothing here may block or grow
 * without bound: request headers and bodies are capped, a connection that
 * sends nothing for HTTP_TIMEOUT_SECS is dropped (slowloris), and every
 * answer is built at once and written by libevent as the peer reads it.
 * Only GET and HEAD are served; other methods on a known path get 405,
 * unknown paths 404. The /metrics page is passed to libevent by reference
 * and the bytes held for slow readers are bounded. The sockets are opened
 * here (not by evhttp) so that '*' binds every address family, as
 * listen_addr does. */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "util.h"

#define HTTP_MAX_SOCKETS 4
#define HTTP_TIMEOUT_SECS 10
#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 1024
#define HTTP_BACKLOG 128
/* Pages held for readers that have not taken them yet: beyond this, new
 * scrapes get 503 rather than pinning more memory. */
#define HTTP_MAX_PAGE_BYTES ((size_t)64 << 20)
#define HTTP_MAX_SINGLE_WRITE (256 * 1024)

struct http_binding {
	struct evhttp_bound_socket *socks[HTTP_MAX_SOCKETS];
	int n;
	char addr[256];
	int port;
};

static struct evhttp *server;
static struct http_binding current;
static struct evhttp_bound_socket *private_sock;   /* a worker's abstract socket */

/* This process's own pages (metrics.c). */
static const char *own_metrics(size_t *len, void **handle)
{
	if (metrics_pages_in_flight() > HTTP_MAX_PAGE_BYTES)
		return NULL;
	struct metrics_page *pg = metrics_page_render();
	*len = pg->len;
	*handle = pg;
	return pg->data;
}

static void own_release(void *handle)
{
	metrics_page_release(handle);
}

static const struct http_pages own_pages = {
	.unready_reason = metrics_unready_reason, .metrics = own_metrics, .release = own_release,
};
static const struct http_pages *pages = &own_pages;

void http_set_pages(const struct http_pages *p)
{
	pages = p ? p : &own_pages;
}

/* ---------------------------------------------------------------- answers */

static void http_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
		       const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(h, "Content-Length", n);
	} else {
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	}
	evhttp_send_reply(req, code, reason, NULL);
}

static void http_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	http_reply(req, code, reason, "text/plain; charset=utf-8", text, strlen(text));
}

static void serve_livez(struct evhttp_request *req)
{
	http_text(req, 200, "OK", "ok\n");
}

static void serve_readyz(struct evhttp_request *req)
{
	char buf[300], line[340];
	const char *why = pages->unready_reason(buf, sizeof(buf));
	if (!why) {
		http_text(req, 200, "OK", "ready\n");
		return;
	}
	snprintf(line, sizeof(line), "not ready: %s\n", why);
	http_text(req, 503, "Service Unavailable", line);
}

static void page_sent(const void *data, size_t len, void *handle)
{
	pages->release(handle);
}

/* The page is handed to libevent by reference (no copy) and given back
 * when written or when the connection goes away. */
static void serve_metrics(struct evhttp_request *req)
{
	size_t len = 0;
	void *handle = NULL;
	const char *data = pages->metrics(&len, &handle);
	if (!data) {
		http_text(req, 503, "Service Unavailable", "too many scrapes in flight\n");
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", METRICS_CONTENT_TYPE);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(h, "Content-Length", n);
		pages->release(handle);
	} else if (evbuffer_add_reference(evhttp_request_get_output_buffer(req), data, len,
					  page_sent, handle) < 0) {
		pages->release(handle);
	}
	/* libevent writes 16 KiB per loop pass by default: a big page would
	 * take dozens of passes to leave. */
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	if (conn)
		bufferevent_set_max_single_write(evhttp_connection_get_bufferevent(conn), HTTP_MAX_SINGLE_WRITE);
	evhttp_send_reply(req, 200, "OK", NULL);
}

struct http_route {
	const char *path;
	void (*serve)(struct evhttp_request *req);
};

static const struct http_route routes[] = {
	{ "/metrics", serve_metrics },
	{ "/livez", serve_livez },
	{ "/readyz", serve_readyz },
};

static void on_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct http_route *route = NULL;
	for (size_t i = 0; path && i < ARRAY_SIZE(routes); i++)
		if (strcmp(path, routes[i].path) == 0)
			route = &routes[i];
	if (!route) {
		http_text(req, 404, "Not Found", "not found\n");
		return;
	}
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		http_text(req, 405, "Method Not Allowed", "method not allowed\n");
		return;
	}
	route->serve(req);
}

/* ---------------------------------------------------------------- sockets */

static void http_create(void)
{
	if (server)
		return;
	server = evhttp_new(loop_base());
	if (!server) {
		log_error("metrics endpoint: could not create the HTTP server");
		return;
	}
	evhttp_set_timeout(server, HTTP_TIMEOUT_SECS);
	evhttp_set_max_headers_size(server, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(server, HTTP_MAX_BODY);
	/* Every method reaches on_request, which answers 405 itself (evhttp
	 * would say 501 for a method it was told to refuse). */
	evhttp_set_allowed_methods(server, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(server, on_request, NULL);
}

/* A bound, listening, non-blocking socket for one address; -1 on failure. */
static int http_socket(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int on = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Opens every address of addr:port into b. False (b empty) if none. */
static bool binding_open(struct http_binding *b, const char *addr, int port)
{
	struct addrinfo *res;
	if (!listen_resolve("metrics_listen_addr", addr, port, &res))
		return false;
	b->n = 0;
	for (struct addrinfo *ai = res; ai && b->n < HTTP_MAX_SOCKETS; ai = ai->ai_next) {
		int fd = http_socket(ai);
		if (fd < 0) {
			log_warning("metrics endpoint: cannot listen on %s port %d: %s", addr, port, strerror(errno));
			continue;
		}
		struct evhttp_bound_socket *s = evhttp_accept_socket_with_handle(server, fd);
		if (!s) {
			close(fd);
			continue;
		}
		b->socks[b->n++] = s;
	}
	freeaddrinfo(res);
	strlcpy_safe(b->addr, addr, sizeof(b->addr));
	b->port = port;
	return b->n > 0;
}

static void binding_close(struct http_binding *b)
{
	for (int i = 0; i < b->n; i++)
		evhttp_del_accept_socket(server, b->socks[i]);   /* closes the socket */
	b->n = 0;
	b->port = 0;
}

bool http_start(const struct config *cfg)
{
	if (cfg->metrics_port == 0) {
		log_info("metrics endpoint is off (metrics_port = 0)");
		return true;
	}
	http_create();
	if (!server || !binding_open(&current, cfg->metrics_listen_addr, cfg->metrics_port)) {
		log_error("metrics endpoint not available on %s:%d; pooling goes on without it",
			  cfg->metrics_listen_addr, cfg->metrics_port);
		current.port = 0;
		return false;
	}
	log_info("metrics endpoint on %s:%d (/metrics, /livez, /readyz)", current.addr, current.port);
	return true;
}

/* The new address may clash with the old socket on the same port ('*'
 * after 127.0.0.1): close the old one, try again, and reopen it on failure. */
static bool rebind_same_port(struct http_binding *next, const struct config *cfg)
{
	char old_addr[sizeof(current.addr)];
	int old_port = current.port;
	strlcpy_safe(old_addr, current.addr, sizeof(old_addr));
	binding_close(&current);
	if (binding_open(next, cfg->metrics_listen_addr, cfg->metrics_port))
		return true;
	if (!binding_open(&current, old_addr, old_port)) {
		log_error("metrics endpoint lost: %s:%d could not be reopened", old_addr, old_port);
		current.port = 0;
	}
	return false;
}

void http_apply_config(const struct config *cfg)
{
	if (cfg->metrics_port == current.port &&
	    (current.port == 0 || strcmp(cfg->metrics_listen_addr, current.addr) == 0))
		return;
	if (cfg->metrics_port == 0) {
		binding_close(&current);
		log_info("metrics endpoint closed (metrics_port = 0)");
		return;
	}
	http_create();
	if (!server)
		return;
	struct http_binding next = { 0 };
	bool ok = binding_open(&next, cfg->metrics_listen_addr, cfg->metrics_port);
	if (!ok && current.n > 0 && current.port == cfg->metrics_port)
		ok = rebind_same_port(&next, cfg);
	if (!ok) {
		if (current.n > 0)
			log_error("metrics endpoint stays on %s:%d: %s:%d could not be bound", current.addr,
				  current.port, cfg->metrics_listen_addr, cfg->metrics_port);
		return;
	}
	binding_close(&current);
	current = next;
	log_info("metrics endpoint now on %s:%d", current.addr, current.port);
}

int http_export(int *fds, int max)
{
	int n = 0;
	for (int i = 0; i < current.n && n < max; i++)
		fds[n++] = evhttp_bound_socket_get_fd(current.socks[i]);
	return n;
}

bool http_adopt(const struct config *cfg, int fd)
{
	http_create();
	struct evhttp_bound_socket *s = server && current.n < HTTP_MAX_SOCKETS
						? evhttp_accept_socket_with_handle(server, fd) : NULL;
	if (!s) {
		close(fd);
		return false;
	}
	current.socks[current.n++] = s;
	strlcpy_safe(current.addr, cfg->metrics_listen_addr, sizeof(current.addr));
	current.port = cfg->metrics_port;
	return true;
}

bool http_start_abstract(const char *name)
{
	http_create();
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	int fd = n + 1 <= sizeof(un.sun_path) && server
			 ? socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
	if (fd < 0)
		return false;
	memcpy(un.sun_path + 1, name, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&un, len) < 0 || listen(fd, HTTP_BACKLOG) < 0 ||
	    !(private_sock = evhttp_accept_socket_with_handle(server, fd))) {
		log_error("worker endpoint @%s: %s", name, strerror(errno));
		close(fd);
		return false;
	}
	return true;
}

void http_stop(void)
{
	if (!server)
		return;
	if (private_sock)
		evhttp_del_accept_socket(server, private_sock);
	private_sock = NULL;
	binding_close(&current);
	evhttp_free(server);   /* closes every open HTTP connection */
	server = NULL;
}
