/* login: a client's startup phase: the startup packet (SSL/GSSENC/cancel
 * requests included), startup parameters, and client authentication
 * (trust, any, plain, md5, scram-sha-256, and with auth_type = hba also
 * reject and peer) against auth_file or auth_query. */
#ifndef TIDEPOOL_LOGIN_H
#define TIDEPOOL_LOGIN_H

struct client;

/* Processes buffered input of a client in CL_LOGIN. */
void login_input(struct client *c);
/* Frees the client's authentication state (at login end or close). */
void login_free(struct client *c);

#endif
