/* prepared: protocol-level prepared statements that survive transaction
 * pooling. On the way to the server, Parse/Bind/Describe/Close naming a
 * statement are rewritten to the pool's server-side name, and a Parse is
 * inserted before a message whose statement the backend has not prepared.
 * On the way back, the replies to what the pooler inserted are removed,
 * so the client sees exactly the stream PostgreSQL would have sent it.
 *
 * Every Parse and Close sent to a backend is recorded in order in the
 * server's request queue with what to do with its one reply (ParseComplete,
 * CloseComplete, or the ErrorResponse that aborts the rest of its Sync
 * batch). An error undoes, newest first, the bookkeeping of the requests
 * the backend skipped, so the tables always describe what the backend
 * really did. Details and limits: doc/prepared.md. */
#ifndef TIDEPOOL_PREPARED_H
#define TIDEPOOL_PREPARED_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct client;
struct server;
struct proto_header;
struct pstmt;
struct pstmt_server_cache;

enum ps_verdict {
	PS_PASS,       /* forward the message unchanged */
	PS_DONE,       /* rewritten into the peer's queue (or removed); forwarding state advanced */
	PS_ANSWERED,   /* answered by the pooler itself; nothing went to the server */
	PS_NEED_MORE,  /* the message is not whole in the buffer yet */
	PS_HOLD,       /* wait until the server has answered everything before it */
	PS_FAILED,     /* a connection was closed */
};

/* The step for one message from a client linked to s, at the client's
 * forwarding position (called from the client's dispatch switch,
 * client.c: client_message). Each names the statement by the pool's
 * server-side name, inserts a Parse the backend lacks, or answers what the
 * pooler answers itself. */
enum ps_verdict ps_parse(struct client *c, struct server *s, const struct proto_header *h);
enum ps_verdict ps_bind(struct client *c, struct server *s, const struct proto_header *h);
enum ps_verdict ps_describe(struct client *c, struct server *s, const struct proto_header *h);
enum ps_verdict ps_close(struct client *c, struct server *s, const struct proto_header *h);
/* A Query: DEALLOCATE and DISCARD ALL in SQL. cls: what pin_classify found
 * in its text (NULL: not classified; the pre-check then scans it itself). */
struct pin_class;
enum ps_verdict ps_query(struct client *c, struct server *s, const struct proto_header *h,
			 const struct pin_class *cls);
/* A Query from an idle client (no server): true if the pooler answered it
 * (DEALLOCATE), so no server is needed. */
bool ps_idle_query(struct client *c, const struct proto_header *h);

/* One Parse or Close sent to a backend, waiting for its reply. */
struct ps_request {
	uint8_t kind;                 /* enum ps_request_kind (prepared.c) */
	uint32_t batch;               /* the server's sync_sent when it was sent */
	struct pstmt *st;             /* holds a reference, or NULL */
	char *client_name;            /* the client's statement name, for undo */
	char *error;                  /* a pooler error: SQLSTATE, NUL, message */
};

/* A backend's prepared statements and its queue of unanswered requests. */
struct ps_server_state {
	struct pstmt_server_cache *cache;
	struct ps_request *queue;     /* ring */
	uint32_t head, count, cap;
	uint32_t forget_batch;        /* 1 + the batch of the last DEALLOCATE the backend runs */
};

/* Does a message of this type from the backend need its ps_ step?
 * Replies to queued requests do, and an error in a batch that may have
 * dropped the backend's statements (its lists must then be distrusted). */
static inline bool ps_watches(const struct ps_server_state *ps, uint8_t type, uint32_t sync_recv)
{
	if (!ps)
		return false;
	if (ps->count > 0)
		return type == PQ_MSG_PARSE_COMPLETE || type == PQ_MSG_CLOSE_COMPLETE || type == PQ_MSG_ERROR;
	return type == PQ_MSG_ERROR && ps->forget_batch == sync_recv + 1;
}

/* The step for a whole message ps_watches() picked, at the server's
 * forwarding position (called from the server's dispatch switch,
 * server.c: server_message): the reply to a queued Parse or Close, kept or
 * dropped (the pooler inserted the request), and an error that ends a
 * batch (the requests the backend skipped are undone). */
enum ps_verdict ps_parse_complete(struct server *s, const struct proto_header *h);
enum ps_verdict ps_close_complete(struct server *s, const struct proto_header *h);
enum ps_verdict ps_server_error(struct server *s, const struct proto_header *h);
/* The ReadyForQuery that ends the batch being answered arrived: requests of
 * that batch still unanswered were skipped by the backend after an error
 * (sent after the error, before the client's delayed Sync). */
void ps_server_batch_done(struct server *s);
/* Every Sync batch sent to s before the current one has been answered
 * (what a held client message waits for). */
bool ps_server_settled(const struct server *s);
/* The backend dropped every prepared statement (DISCARD ALL, DEALLOCATE ALL). */
void ps_server_forget_all(struct server *s);
/* Prepared statements on s and names held by c, for SHOW SERVERS/CLIENTS. */
uint32_t ps_server_count(const struct server *s);
uint32_t ps_client_count(const struct client *c);
/* Release everything the connection holds (at close). */
void ps_server_free(struct server *s);
void ps_client_free(struct client *c);

#endif
