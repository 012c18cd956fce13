/* world: one tidepool, in process, for the stream fuzz targets.
 *
 * world_init loads a fixed configuration (trust logins, transaction pooling
 * with prepared statements, a database whose servers ask for a password)
 * whose servers are a fake PostgreSQL listening on a unix socket in a
 * private temporary directory, served by the same event loop. A run opens
 * a client over a socketpair (client_accept, as the listener would), feeds
 * it bytes, turns the loop until nothing moves, then closes everything so
 * the next run starts from an empty pool. */
#ifndef TIDEPOOL_FUZZ_WORLD_H
#define TIDEPOOL_FUZZ_WORLD_H

#include <stddef.h>
#include <stdint.h>

/* What the fake PostgreSQL does after a startup packet. */
enum world_backend {
	WORLD_BACKEND_POLITE,   /* log in, answer each message the way PostgreSQL would */
	WORLD_BACKEND_SCRIPT,   /* the run's first server gets the bytes of world_set_script,
				 * then is only read from; later ones are polite */
};

void world_init(enum world_backend mode);
void world_set_script(const uint8_t *p, size_t n);
/* A new client connection; returns the test's end of it. */
int world_client(void);
/* Writes what fits of p[0..n) to fd (nonblocking). */
void world_write(int fd, const uint8_t *p, size_t n);
/* Turns the event loop until rounds pass with nothing moved. */
void world_pump(void);
/* Closes the test's client end and every fake server connection, and lets
 * tidepool clean up. */
void world_end_run(int client_fd);

#endif
