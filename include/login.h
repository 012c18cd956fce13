/* login: a client's startup phase: the startup packet (SSL/GSSENC/cancel
 * requests included), startup parameters, and client authentication
 * (trust, any, plain, md5, scram-sha-256) against auth_file. */
#ifndef TIDEPOOL_LOGIN_H
#define TIDEPOOL_LOGIN_H

struct client;

/* Processes buffered input of a client in CL_LOGIN. */
void login_input(struct client *c);

#endif
