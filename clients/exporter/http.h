/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side, on libmicrohttpd with its own polling thread: GET and
 * HEAD of /metrics, /health/live and /health/ready (others 405, unknown
 * paths 404). Every answer is built from the state (state.h) at the time
 * of the request; nothing here waits on the broker.
 */
#ifndef PIGEON_EXPORTER_HTTP_H
#define PIGEON_EXPORTER_HTTP_H

#include <stddef.h>

#include <sys/socket.h>

#include "health.h"
#include "state.h"

struct exp_http;

/*
 * Listens on addr and serves st with lim; *port is the port bound (useful
 * when addr's is 0). NULL with the reason in err (address in use, ...).
 */
struct exp_http *exp_http_start(const struct sockaddr *addr, socklen_t addrlen,
                                struct exp_state *st, const struct exp_limits *lim, int *port,
                                char *err, size_t errlen);
/* Stops serving (open connections are closed) and frees everything. */
void exp_http_stop(struct exp_http *h);

#endif
