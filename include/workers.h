/* workers: `workers = N` worker processes sharing the listening sockets,
 * peered with each other, under one supervisor (see workers.c). */
#ifndef TIDEPOOL_WORKERS_H
#define TIDEPOOL_WORKERS_H

#include "config.h"

/* With the listening sockets open (listen_open) and no event loop yet:
 * forks n workers and supervises them. Returns the worker's id (1..n) in
 * each worker, which then runs as an ordinary tidepool process; in the
 * supervisor returns 0 once every worker has exited after a shutdown,
 * with the process's exit status in *exit_code. */
int workers_run(const struct config *cfg, int n, int *exit_code);
/* "tidepool.<supervisor pid>": worker i's private abstract unix socket
 * directory is "@<prefix>.<i>" (its pooler socket .s.PGSQL.<port> and its
 * HTTP endpoint "http" live there). */
const char *workers_prefix(void);
/* Worker id's identity (for config_set_worker). */
void workers_identity(int id, struct config_worker *w);
/* --upgrade, before workers_run: takes the listening sockets (and
 * metrics_port's) from the supervisor running as old_pid; workers_run
 * then starts the next generation and tells the old one to drain once
 * every new worker is ready. False (logged) if the hand-over failed. */
bool workers_takeover(long old_pid, const struct config *cfg);
/* This supervisor handed its sockets to a new one (its pidfile and unix
 * socket are the new one's). */
bool workers_handed_over(void);

#endif
