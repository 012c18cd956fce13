/* server_login: logging in to a backend: TLS negotiation (SSLRequest and
 * the handshake, per server_tls_sslmode), the startup packet, answering its
 * authentication request (cleartext, md5, SCRAM-SHA-256), collecting its
 * parameters and cancel key, and running connect_query. */
#ifndef TIDEPOOL_SERVER_LOGIN_H
#define TIDEPOOL_SERVER_LOGIN_H

#include <stdbool.h>

struct pool;
struct server;

void server_login_start(struct server *s);
void server_login_input(struct server *s);
void server_login_free(struct server *s);
/* The secret server logins of p use: server_password, else the secret an
 * auth_query lookup gave (looked_up_secret). NULL for none. */
const char *server_login_secret(const struct pool *p);
/* The TLS handshake with the backend ended (err NULL: success). */
void server_login_tls_ready(struct server *s, const char *err);
/* hook(s) runs when s has logged in (and run connect_query), before it joins
 * its pool; returning true means the hook took s and hands it to the pool
 * itself (the backend budget learns a server's limits this way). */
typedef bool (*server_login_ready_fn)(struct server *s);
void server_login_set_ready_hook(server_login_ready_fn hook);

#endif
