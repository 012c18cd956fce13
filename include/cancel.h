/* cancel: the map from the cancel keys tidepool gives clients to those
 * clients, and forwarding of CancelRequest to the backend a client is
 * using right now. */
#ifndef TIDEPOOL_CANCEL_H
#define TIDEPOOL_CANCEL_H

#include <stdint.h>

struct client;
struct server;

/* Gives c a fresh random (pid, key) pair and registers it. */
void cancel_register(struct client *c);
void cancel_unregister(struct client *c);
struct client *cancel_find(uint32_t pid, uint32_t key);
/* Handles a CancelRequest: forwards it to c's current backend, if any.
 * Until PostgreSQL has taken it (it closes the cancel connection after
 * signalling the backend), that server is not handed to another client. */
void cancel_request(uint32_t pid, uint32_t key);
/* s is closing: its forwards no longer hold it back. */
void cancel_server_gone(struct server *s);
void cancel_free_all(void);

#endif
