/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCP_NODELAY on Paho's socket. Paho C neither sets it nor offers a hook
 * for socket options, and without it the client's small packets (a PUBACK,
 * then the next sync request) wait for the broker's delayed ACK: about
 * 40 ms per sync page, which made a 10,000-message catch-up take 0.9 s
 * instead of a tenth of that.
 */
#ifndef PIGEON_CLIENT_NODELAY_H
#define PIGEON_CLIENT_NODELAY_H

/*
 * Sets TCP_NODELAY on this process's connected TCP sockets whose peer is
 * uri's ("tcp://host:port" or "ssl://host:port"): the port always, the
 * address too when the host is numeric. Returns how many it set (0 when
 * none matched or uri is not parsed). Touches nothing else; setting it
 * on a socket that already has it is harmless.
 */
int pgc_nodelay_for(const char *uri);

#endif
