/* login: a client's startup phase: the startup packet (SSL/GSSENC/cancel
 * requests included, TLS started here), startup parameters, and client
 * authentication (trust, any, plain, md5, scram-sha-256, cert, and with
 * auth_type = hba also reject and peer) against auth_file or auth_query. */
#ifndef TIDEPOOL_LOGIN_H
#define TIDEPOOL_LOGIN_H

#include <stdbool.h>

struct client;

/* Processes buffered input of a client in CL_LOGIN. */
void login_input(struct client *c);
/* Frees the client's authentication state (at login end or close). */
void login_free(struct client *c);
/* Before the first read: a ClientHello as the first byte starts direct
 * TLS (true: taken over, nothing to read now). */
bool login_try_direct_tls(struct client *c);
/* The client's TLS handshake ended (err NULL: success). */
void login_tls_ready(struct client *c, const char *err);

#endif
