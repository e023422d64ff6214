/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pool of MQTT connections for pigeon-bench's open, throughput and idle
 * modes: libmosquitto clients (mosquitto_new per connection, MQTT 5,
 * TCP_NODELAY) spread over T threads, each thread driving all of its
 * connections with one epoll loop over their sockets (mosquitto_loop_read /
 * loop_write / loop_misc; no libmosquitto thread). A connection belongs to
 * one thread for its whole life, and so does every callback about it.
 *
 * Life: bench_pool_new, bench_pool_add for every connection (client id
 * "<uid>:<dev>", username uid and a token as password, or no credentials),
 * bench_pool_start (the threads connect, at most connect_window CONNECTs
 * waiting for their CONNACK over the whole pool, so that a start of 19,000
 * does not overrun the broker's listen backlog, and subscribe each
 * connection's filter), bench_pool_wait_ready, bench_pool_run (from then on
 * each thread calls ops->tick every loop turn: the mode's sender), and
 * bench_pool_stop (clean DISCONNECTs, threads joined). A refused connect or
 * subscription, or a connection lost before bench_pool_stop, marks the pool
 * failed with the reason on stderr.
 *
 * To a broker on a 127.x address, connection i connects from source address
 * 127.1.<i / 250 % 250>.<2 + i % 250> (see pool_connect: the kernel's
 * ephemeral port search is what limits a single source address).
 */
#ifndef PIGEON_BENCH_POOL_H
#define PIGEON_BENCH_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include <mosquitto.h>

struct bench_pool;

struct bench_conn {
	struct mosquitto *m; /* this connection's thread only */
	struct bench_pool *pool;
	void *ud; /* the mode's, from bench_pool_add */
	unsigned thread, index;
	/* private to pool.c */
	char *setup; /* "<uid>:<dev>\0<uid>\0<token>\0<filter>\0" until ready */
	bool has_token, has_filter;
	bool out, dirty; /* EPOLLOUT asked for; published on since the last turn */
	uint8_t state;
};

struct bench_pool_ops {
	/* A message arrived on c (on c's thread). */
	void (*on_message)(struct bench_conn *c, const struct mosquitto_message *msg);
	/* The broker acknowledged c's publish mid (QoS 1), or a QoS 0 publish left. */
	void (*on_publish)(struct bench_conn *c, int mid, int reason);
	/*
	 * Run phase only: called on thread t at each turn of its loop, may
	 * publish on t's connections; returns how long the loop may then wait
	 * for I/O at most, in microseconds.
	 */
	uint64_t (*tick)(struct bench_pool *p, unsigned t);
};

/*
 * CONNECTs in flight by default: Mosquitto's listen backlog (100). Each
 * unanswered CONNECT may be a connection still in the broker's accept queue;
 * with 200 the queue overflowed (TcpExtListenOverflows), the SYNs dropped
 * came back after the kernel's 1 s retransmit, and 3,000 connects took 4.5 s
 * to plain Mosquitto and 7.7 s to pigeon instead of 0.46 s and 0.55 s.
 */
#define BENCH_POOL_CONNECT_WINDOW 100

struct bench_pool_conf {
	const char *host;
	int port;
	unsigned threads;
	unsigned connect_window; /* CONNECTs in flight at most, pool-wide (0: the default) */
	int keepalive;           /* seconds (0: 60) */
	int sub_qos;
	const struct bench_pool_ops *ops;
	void *ud;
};

/* A pool (no connection yet), or NULL with a message. Raises RLIMIT_NOFILE to its hard limit. */
struct bench_pool *bench_pool_new(const struct bench_pool_conf *conf);
/*
 * Adds a connection on thread `thread` (< conf.threads); strings are copied;
 * token NULL: no credentials; filter NULL: no subscription. Before
 * bench_pool_start only. The connection, or NULL (out of memory).
 */
struct bench_conn *bench_pool_add(struct bench_pool *p, unsigned thread, const char *uid,
                                  const char *dev, const char *token, const char *filter, void *ud);
/* Starts the threads. 0, or 1 with a message. */
int bench_pool_start(struct bench_pool *p);
/*
 * Waits until every connection is connected and subscribed (0), the pool
 * failed or deadline (CLOCK_MONOTONIC seconds) passed (1, with a message).
 */
int bench_pool_wait_ready(struct bench_pool *p, double deadline);
/* Starts the run phase (ops->tick). */
void bench_pool_run(struct bench_pool *p);
/*
 * Publishes on c from c's thread (outside a callback the packet is written at
 * once; what does not fit waits for EPOLLOUT). Every publish goes through
 * here so that the loop knows to watch c for writing. A MOSQ_ERR_* code.
 */
int bench_pool_publish(struct bench_conn *c, const char *topic, int len, const void *payload,
                       int qos);
/* Wakes thread t from its poll (another thread made work for it). */
void bench_pool_wake(struct bench_pool *p, unsigned t);
bool bench_pool_failed(const struct bench_pool *p);
void *bench_pool_ud(const struct bench_pool *p);
unsigned bench_pool_threads(const struct bench_pool *p);
/* Thread t's connections (valid until bench_pool_free). */
struct bench_conn **bench_pool_thread_conns(struct bench_pool *p, unsigned t, unsigned *n);
/* Disconnects every connection cleanly and joins the threads. */
void bench_pool_stop(struct bench_pool *p);
void bench_pool_free(struct bench_pool *p);

/* CLOCK_MONOTONIC in ns and in seconds. */
uint64_t bench_now_ns(void);
double bench_now_s(void);

#endif
