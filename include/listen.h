/* listen: the listening sockets (TCP per listen_addr, and the unix socket)
 * and accepting clients. */
#ifndef TIDEPOOL_LISTEN_H
#define TIDEPOOL_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>
#include "config.h"

/* Takes ownership of an accepted, non-blocking socket (client_accept). */
typedef void (*listen_accept_fn)(int fd, const struct sockaddr *addr, socklen_t addrlen, bool is_unix);

/* Opens all listeners; each accepted socket goes to accept_fn. False
 * (after logging why) if none could be opened. listen_open + listen_serve. */
bool listen_start(const struct config *cfg, listen_accept_fn accept_fn);
/* Opens the listening sockets without accepting yet (no event loop is
 * needed): the supervisor of workers opens them once and every worker
 * inherits them, so a worker that stops or dies loses no queued
 * connection. */
bool listen_open(const struct config *cfg);
/* Starts accepting on every open listener. shared: other processes accept
 * on the same sockets (workers): take one connection per wake-up. */
void listen_serve(listen_accept_fn accept_fn, bool shared);
/* One more listener on a Linux abstract unix socket (a worker's private
 * address, which its peers forward cancel requests to). */
bool listen_add_abstract(const char *name, int backlog);
/* A drain: stops accepting on the pooler's addresses (removes the unix
 * socket); a worker's private socket stays, so that cancel requests
 * forwarded by its peers still reach its clients' queries. */
/* Closes the TCP listeners only: the unix socket stays for the admin
 * console while SHUTDOWN WAIT_FOR_CLIENTS/WAIT_FOR_SERVERS wait. */
void listen_close_tcp(void);
void listen_close_public(void);
/* Stops accepting and closes every listening socket (removes the unix socket). */
void listen_stop(void);
/* The open listening sockets (for an in-place upgrade's hand-over). */
int listen_export(int *fds, bool *is_unix, int max);
/* Takes a listening socket handed over by the process being replaced; a
 * unix one is cfg's path, which this process now removes at exit. */
bool listen_adopt(int fd, bool is_unix, const struct config *cfg);
/* The unix socket belongs to another process now: leave it at exit. */
void listen_disown(void);
/* Accepts every connection already queued on the listeners, as a process
 * about to close them does: the kernel resets connections still queued on
 * a socket when it closes (with so_reuseport, the other processes on the
 * port get the later ones). */
void listen_take_queued(void);
/* Pauses or resumes accepting without closing sockets. */
void listen_pause(bool pause);
/* Resolves a listen address ("*" = every address) for binding; the caller
 * frees *res with freeaddrinfo. Logs and returns false on failure. */
struct addrinfo;
bool listen_resolve(const char *what, const char *host, int port, struct addrinfo **res);
/* From now on listen_resolve takes only IP addresses (and "localhost"): the
 * event loop runs, and a name lookup would block it. */
void listen_resolve_numeric_only(void);
/* Applies socket options to an accepted or outgoing TCP socket. */
void listen_tune_socket(int fd, const struct config *cfg);

#endif
