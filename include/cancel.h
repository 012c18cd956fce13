/* cancel: the map from the cancel keys tidepool gives clients to those
 * clients, and forwarding of CancelRequest to the backend a client is
 * using right now. */
#ifndef TIDEPOOL_CANCEL_H
#define TIDEPOOL_CANCEL_H

#include <stdint.h>

struct client;
struct server;

/* Peering: the peer id carried in a key's pid part, and pid with id put in. */
int cancel_key_peer(uint32_t pid);
uint32_t cancel_key_with_peer(uint32_t pid, int peer_id);

/* Forwards to one peer: waiting for a free slot (pool_size), connecting,
 * sent and waiting for the peer's close. */
struct cancel_peer_stats {
	int queued;
	int sending;
	int sent;
};
void cancel_peer_stats(int peer_id, struct cancel_peer_stats *st);

/* Gives c a fresh random (pid, key) pair and registers it. */
void cancel_register(struct client *c);
void cancel_unregister(struct client *c);
struct client *cancel_find(uint32_t pid, uint32_t key);
/* Handles a CancelRequest: forwards it to the peer that issued the key
 * (peer_id > 0 and another peer's id in it), else to the backend its
 * client is using now, if any.
 * Until PostgreSQL has taken it (it closes the cancel connection after
 * signalling the backend), that server is not handed to another client. */
void cancel_request(uint32_t pid, uint32_t key);
/* s is closing: its forwards no longer hold it back. */
void cancel_server_gone(struct server *s);
void cancel_free_all(void);

#endif
