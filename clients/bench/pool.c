/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection pool of pool.h. Each thread owns an array of connections
 * and runs one loop: start CONNECTs while the pool-wide window allows, call
 * the mode's tick (run phase), wait in epoll_pwait2 (microsecond timeout: a
 * sender sleeps until its next message is due) on its sockets plus an
 * eventfd other threads use to wake it, read/write the ready ones, and run
 * mosquitto_loop_misc (keepalive pings) over all of them once a second.
 * EPOLLOUT is asked for exactly while libmosquitto has bytes queued for a
 * connection: checked after its I/O, after loop_misc, and for the
 * connections the tick published on (bench_pool_publish marks them). A
 * poll(2) set rebuilt each turn was tried first: with 9,500 connections a
 * thread, 19,000 connects took 43 s, 37 s of it in the kernel scanning fds.
 *
 * libmosquitto is used without its threads: a client is only ever touched by
 * its own thread (created by the main thread before the threads start). A
 * publish from the tick (outside any callback) is written to the socket at
 * once; one from inside a callback is queued and leaves on EPOLLOUT.
 */
#define _GNU_SOURCE /* epoll_pwait2 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <mqtt_protocol.h>

enum {
	CONN_NEW,
	CONN_CONNECTING,
	CONN_SUBSCRIBING,
	CONN_READY,
	CONN_DEAD,
};

/* The longest a loop turn waits, so that a stop is seen soon. */
#define POOL_TURN_MAX_US 50000
#define POOL_MISC_INTERVAL_NS 1000000000ULL
#define POOL_EVENTS 256
#define POOL_READ_MAX 64

struct pool_thread {
	struct bench_pool *pool;
	pthread_t th;
	bool started;
	unsigned index;
	struct bench_conn **conns;
	unsigned n, cap, next_connect;
	int epfd, wake_fd;
	struct epoll_event *events;
	struct bench_conn **dirty; /* published on by the tick: interest to update */
	unsigned ndirty;
	uint64_t last_misc;
};

struct bench_pool {
	struct bench_pool_conf conf;
	struct pool_thread *threads;
	unsigned nconns;
	atomic_uint inflight;
	atomic_uint ready;
	atomic_int phase; /* 0 setup, 1 run, 2 stop */
	atomic_bool failed;
	bool loopback; /* the broker is on 127.0.0.0/8: spread source addresses */
};

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_now_s(void)
{
	return (double)bench_now_ns() / 1e9;
}

static void pool_fail(struct bench_conn *c, const char *what, const char *why)
{
	struct bench_pool *p = c->pool;

	/* The first failure says it; what follows is usually its consequence. */
	if (!atomic_exchange(&p->failed, true)) {
		fprintf(stderr, "pigeon-bench: connection %u (%s): %s%s%s\n", c->index,
		        c->setup ? c->setup : "", what, why ? ": " : "", why ? why : "");
	}
}

/* Gives back a CONNECT's slot in the window. */
static void pool_connect_done(struct bench_conn *c)
{
	if (c->state == CONN_CONNECTING) {
		atomic_fetch_sub(&c->pool->inflight, 1);
	}
}

static void pool_set_ready(struct bench_conn *c)
{
	c->state = CONN_READY;
	free(c->setup);
	c->setup = NULL;
	atomic_fetch_add(&c->pool->ready, 1);
}

static void pool_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                            const mosquitto_property *props)
{
	struct bench_conn *c = obj;
	const char *filter;

	(void)flags;
	(void)props;
	pool_connect_done(c);
	if (rc != 0) {
		c->state = CONN_DEAD;
		pool_fail(c, "connect refused", mosquitto_reason_string(rc));
		return;
	}
	if (!c->has_filter) {
		pool_set_ready(c);
		return;
	}
	filter = c->setup + strlen(c->setup) + 1;
	filter += strlen(filter) + 1; /* the username */
	filter += strlen(filter) + 1; /* the token */
	c->state = CONN_SUBSCRIBING;
	rc = mosquitto_subscribe_v5(m, NULL, filter, c->pool->conf.sub_qos, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		c->state = CONN_DEAD;
		pool_fail(c, "subscribe", mosquitto_strerror(rc));
	}
}

static void pool_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                              const mosquitto_property *props)
{
	struct bench_conn *c = obj;

	(void)m;
	(void)mid;
	(void)props;
	if (c->state != CONN_SUBSCRIBING) {
		return;
	}
	if (n < 1 || granted[0] >= 0x80) {
		c->state = CONN_DEAD;
		pool_fail(c, "subscription refused",
		          n < 1 ? "no reason code" : mosquitto_reason_string(granted[0]));
		return;
	}
	pool_set_ready(c);
}

static void pool_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                            const mosquitto_property *props)
{
	struct bench_conn *c = obj;

	(void)m;
	(void)props;
	if (c->pool->conf.ops && c->pool->conf.ops->on_message) {
		c->pool->conf.ops->on_message(c, msg);
	}
}

static void pool_on_publish(struct mosquitto *m, void *obj, int mid, int reason,
                            const mosquitto_property *props)
{
	struct bench_conn *c = obj;

	(void)m;
	(void)props;
	if (c->pool->conf.ops && c->pool->conf.ops->on_publish) {
		c->pool->conf.ops->on_publish(c, mid, reason);
	}
}

static void pool_on_disconnect(struct mosquitto *m, void *obj, int rc,
                               const mosquitto_property *props)
{
	struct bench_conn *c = obj;

	(void)m;
	(void)props;
	if (atomic_load(&c->pool->phase) < 2 && c->state != CONN_DEAD) {
		pool_connect_done(c);
		c->state = CONN_DEAD;
		pool_fail(c, "disconnected by the broker", mosquitto_reason_string(rc));
	}
}

/* Takes a slot in the CONNECT window, or says there is none. */
static bool pool_window_take(struct bench_pool *p)
{
	unsigned cur = atomic_load(&p->inflight);

	while (cur < p->conf.connect_window) {
		if (atomic_compare_exchange_weak(&p->inflight, &cur, cur + 1)) {
			return true;
		}
	}
	return false;
}

/* Creates c's client (main thread, before the pool's threads run). 0, or 1 with a message. */
static int pool_make_client(struct bench_conn *c)
{
	const char *cid = c->setup, *user = cid + strlen(cid) + 1;
	const char *token = user + strlen(user) + 1;

	c->m = mosquitto_new(cid, true, c);
	if (c->m == NULL) {
		fprintf(stderr, "pigeon-bench: mosquitto_new %s: %s\n", cid, strerror(errno));
		return 1;
	}
	mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(c->m, pool_on_connect);
	mosquitto_subscribe_v5_callback_set(c->m, pool_on_subscribe);
	mosquitto_message_v5_callback_set(c->m, pool_on_message);
	mosquitto_publish_v5_callback_set(c->m, pool_on_publish);
	mosquitto_disconnect_v5_callback_set(c->m, pool_on_disconnect);
	if (c->has_token && mosquitto_username_pw_set(c->m, user, token) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "pigeon-bench: %s: out of memory\n", cid);
		return 1;
	}
	return 0;
}

/*
 * Creates every client with file descriptors exhausted, on purpose:
 * mosquitto_new opens a socketpair per client to wake mosquitto_loop's
 * select() (two descriptors more per connection, so 19,000 connections
 * would need 57,000), tolerates failing to, and then never touches it (its
 * only other use is a wake-up byte written per queued packet, skipped
 * without it). The pool's own loop has no use for it. With the soft
 * RLIMIT_NOFILE at the lowest free descriptor the socketpair fails at once;
 * the limit is restored before any socket is opened, and no other thread
 * runs meanwhile. 0, or 1 with a message.
 */
static int pool_make_clients(struct bench_pool *p)
{
	struct rlimit rl, tight;
	unsigned i, j;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), rc = 0;
	bool lowered = false;

	if (fd >= 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		close(fd);
		tight = rl;
		tight.rlim_cur = (rlim_t)fd;
		lowered = setrlimit(RLIMIT_NOFILE, &tight) == 0;
	}
	for (i = 0; i < p->conf.threads && rc == 0; i++) {
		for (j = 0; j < p->threads[i].n && rc == 0; j++) {
			rc = pool_make_client(p->threads[i].conns[j]);
		}
	}
	if (lowered && setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "pigeon-bench: cannot restore RLIMIT_NOFILE: %s\n",
		        strerror(errno));
		rc = 1;
	}
	return rc;
}

/* Sends c's CONNECT; false (pool failed) if that fails. */
static bool pool_connect(struct bench_conn *c)
{
	struct bench_pool *p = c->pool;
	int rc;

	c->state = CONN_CONNECTING;
	/*
	 * A blocking TCP connect (loopback: at once while the backlog has room).
	 * To a 127.x broker each connection comes from its own source address
	 * of 127.1.0.0/16 (250 x 250 of them, then they repeat): with one source
	 * address the kernel's search for a free ephemeral port (28,000 of them,
	 * shared with every TIME_WAIT on the machine) grows with each connection,
	 * and 19,000 connects took 30 s, 85 % of it in __inet_hash_connect;
	 * spread, 13 s, the broker's own pace.
	 */
	if (p->loopback) {
		char src[32];
		snprintf(src, sizeof(src), "127.1.%u.%u", (c->index / 250) % 250,
		         2 + c->index % 250);
		rc = mosquitto_connect_bind(c->m, p->conf.host, p->conf.port, p->conf.keepalive,
		                            src);
	} else {
		rc = mosquitto_connect(c->m, p->conf.host, p->conf.port, p->conf.keepalive);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		int err = errno;
		pool_connect_done(c);
		c->state = CONN_DEAD;
		pool_fail(c, "connect",
		          rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc));
		return false;
	}
	return true;
}

static void pool_io_error(struct bench_conn *c, int rc)
{
	if (c->state == CONN_DEAD) {
		return;
	}
	pool_connect_done(c);
	c->state = CONN_DEAD;
	if (atomic_load(&c->pool->phase) < 2) {
		pool_fail(c, "connection lost",
		          rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	}
}

/* Registers c's socket with t's epoll once its TCP connect is done. */
static void pool_watch(struct pool_thread *t, struct bench_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int fd = mosquitto_socket(c->m);

	c->out = mosquitto_want_write(c->m);
	if (c->out) {
		ev.events |= EPOLLOUT;
	}
	if (fd < 0 || epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		pool_io_error(c, MOSQ_ERR_NO_CONN);
	}
}

/* Asks for EPOLLOUT exactly while libmosquitto has something queued for c. */
static void pool_interest(struct pool_thread *t, struct bench_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	bool out;
	int fd;

	if (c->state == CONN_DEAD || c->state == CONN_NEW || (fd = mosquitto_socket(c->m)) < 0) {
		return;
	}
	out = mosquitto_want_write(c->m);
	if (out == c->out) {
		return;
	}
	c->out = out;
	if (out) {
		ev.events |= EPOLLOUT;
	}
	epoll_ctl(t->epfd, EPOLL_CTL_MOD, fd, &ev);
}

/*
 * Reads what c's socket holds, up to POOL_READ_MAX packets. libmosquitto's
 * loop_read handles one packet per call here (its max_packets becomes the
 * count of QoS > 0 messages it has queued, 0 for a subscriber); it returns
 * success with errno EAGAIN once the socket is empty, so the loop stops
 * there instead of going back to epoll for each packet under load.
 */
static int pool_read(struct bench_conn *c)
{
	int rc = MOSQ_ERR_SUCCESS, i;

	for (i = 0; i < POOL_READ_MAX && rc == MOSQ_ERR_SUCCESS && c->state != CONN_DEAD; i++) {
		errno = 0;
		rc = mosquitto_loop_read(c->m, 1);
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			break;
		}
	}
	return rc;
}

/* One turn of thread t's loop: wait for at most timeout_us, then I/O. */
static void pool_turn(struct pool_thread *t, uint64_t timeout_us)
{
	struct timespec ts = {.tv_sec = (time_t)(timeout_us / 1000000),
	                      .tv_nsec = (long)(timeout_us % 1000000) * 1000};
	uint64_t now;
	unsigned i;
	int n;

	for (i = 0; i < t->ndirty; i++) {
		t->dirty[i]->dirty = false;
		pool_interest(t, t->dirty[i]);
	}
	t->ndirty = 0;
	n = epoll_pwait2(t->epfd, t->events, POOL_EVENTS, &ts, NULL);
	for (i = 0; n > 0 && i < (unsigned)n; i++) {
		struct bench_conn *c = t->events[i].data.ptr;
		uint32_t re = t->events[i].events;
		int rc = MOSQ_ERR_SUCCESS;
		if (c == NULL) {
			uint64_t v;
			if (read(t->wake_fd, &v, sizeof(v)) < 0) {
				continue; /* EAGAIN: nothing pending after all */
			}
			continue;
		}
		if (c->state == CONN_DEAD) {
			continue;
		}
		if (re & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
			rc = pool_read(c);
		}
		if (rc == MOSQ_ERR_SUCCESS && (re & EPOLLOUT) && c->state != CONN_DEAD) {
			rc = mosquitto_loop_write(c->m, 64);
		}
		if (rc != MOSQ_ERR_SUCCESS) {
			pool_io_error(c, rc);
			continue;
		}
		pool_interest(t, c);
	}
	now = bench_now_ns();
	if (now - t->last_misc >= POOL_MISC_INTERVAL_NS) {
		t->last_misc = now;
		for (i = 0; i < t->n; i++) {
			struct bench_conn *c = t->conns[i];
			int rc;
			if (c->m == NULL || c->state == CONN_DEAD || c->state == CONN_NEW) {
				continue;
			}
			rc = mosquitto_loop_misc(c->m);
			if (rc != MOSQ_ERR_SUCCESS) {
				pool_io_error(c, rc);
				continue;
			}
			pool_interest(t, c);
		}
	}
}

static void *pool_thread_main(void *arg)
{
	struct pool_thread *t = arg;
	struct bench_pool *p = t->pool;
	unsigned i;

	/*
	 * Wake-ups on time, not up to 50 us late (the default timer slack): a
	 * sender sleeps until a message is due, and lateness counts as latency.
	 */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	while (atomic_load(&p->phase) < 2) {
		uint64_t timeout = POOL_TURN_MAX_US;
		while (t->next_connect < t->n && !atomic_load(&p->failed) && pool_window_take(p)) {
			struct bench_conn *c = t->conns[t->next_connect++];
			if (!pool_connect(c)) {
				break;
			}
			pool_watch(t, c);
		}
		if (t->next_connect < t->n) {
			timeout = 1000; /* waiting for a slot another thread gives back */
		}
		if (atomic_load(&p->phase) == 1 && p->conf.ops && p->conf.ops->tick) {
			uint64_t want = p->conf.ops->tick(p, t->index);
			if (want < timeout) {
				timeout = want;
			}
		}
		pool_turn(t, timeout);
	}
	/* Clean DISCONNECTs: written at once (not in a callback), then closed. */
	for (i = 0; i < t->n; i++) {
		struct bench_conn *c = t->conns[i];
		if (c->m == NULL) {
			continue;
		}
		if (c->state != CONN_DEAD && c->state != CONN_NEW) {
			mosquitto_disconnect_v5(c->m, 0, NULL);
			mosquitto_loop_write(c->m, 1);
		}
		mosquitto_destroy(c->m);
		c->m = NULL;
	}
	return NULL;
}

struct bench_pool *bench_pool_new(const struct bench_pool_conf *conf)
{
	struct bench_pool *p = calloc(1, sizeof(*p));
	struct rlimit rl;
	unsigned i;

	if (p == NULL || conf->threads == 0) {
		free(p);
		fprintf(stderr, "pigeon-bench: cannot make a connection pool\n");
		return NULL;
	}
	p->conf = *conf;
	if (p->conf.connect_window == 0) {
		p->conf.connect_window = BENCH_POOL_CONNECT_WINDOW;
	}
	if (p->conf.keepalive == 0) {
		p->conf.keepalive = 60;
	}
	if (p->conf.host == NULL) {
		p->conf.host = "127.0.0.1";
	}
	p->loopback = strncmp(p->conf.host, "127.", 4) == 0;
	p->threads = calloc(conf->threads, sizeof(*p->threads));
	if (p->threads == NULL) {
		free(p);
		return NULL;
	}
	for (i = 0; i < conf->threads; i++) {
		p->threads[i].pool = p;
		p->threads[i].index = i;
		p->threads[i].wake_fd = -1;
		p->threads[i].epfd = -1;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			fprintf(stderr, "pigeon-bench: cannot raise RLIMIT_NOFILE: %s\n",
			        strerror(errno));
		}
	}
	return p;
}

struct bench_conn *bench_pool_add(struct bench_pool *p, unsigned thread, const char *uid,
                                  const char *dev, const char *token, const char *filter, void *ud)
{
	struct pool_thread *t = &p->threads[thread % p->conf.threads];
	struct bench_conn *c;
	size_t lu = strlen(uid), ld = strlen(dev), lt = token ? strlen(token) : 0;
	size_t lf = filter ? strlen(filter) : 0;

	if (t->n == t->cap) {
		unsigned cap = t->cap ? t->cap * 2 : 16;
		struct bench_conn **a = realloc(t->conns, cap * sizeof(*a));
		if (a == NULL) {
			return NULL;
		}
		t->conns = a;
		t->cap = cap;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->setup = malloc(lu + 1 + ld + 1 + lu + 1 + lt + 1 + lf + 1)) == NULL) {
		free(c);
		return NULL;
	}
	sprintf(c->setup, "%s:%s%c%s%c%s%c%s", uid, dev, 0, uid, 0, token ? token : "", 0,
	        filter ? filter : "");
	c->pool = p;
	c->ud = ud;
	c->thread = t->index;
	c->index = p->nconns++;
	c->has_token = token != NULL;
	c->has_filter = filter != NULL;
	c->state = CONN_NEW;
	t->conns[t->n++] = c;
	return c;
}

int bench_pool_start(struct bench_pool *p)
{
	sigset_t block, old;
	unsigned i;
	int rc = 0;

	/* A write to a closed socket is an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	/* SIGINT/SIGTERM go to the main thread (idle's hold). */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (pool_make_clients(p) != 0) {
		return 1;
	}
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < p->conf.threads && rc == 0; i++) {
		struct pool_thread *t = &p->threads[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
		t->events = calloc(POOL_EVENTS, sizeof(*t->events));
		t->dirty = calloc(t->n + 1, sizeof(*t->dirty));
		t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		t->epfd = epoll_create1(EPOLL_CLOEXEC);
		t->last_misc = bench_now_ns();
		if (t->events == NULL || t->dirty == NULL || t->wake_fd < 0 || t->epfd < 0 ||
		    epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &ev) != 0 ||
		    pthread_create(&t->th, NULL, pool_thread_main, t) != 0) {
			fprintf(stderr, "pigeon-bench: cannot start pool thread %u\n", i);
			rc = 1;
			break;
		}
		t->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int bench_pool_wait_ready(struct bench_pool *p, double deadline)
{
	struct timespec ts = {0, 2000000};

	while (atomic_load(&p->ready) < p->nconns) {
		if (atomic_load(&p->failed)) {
			return 1;
		}
		if (bench_now_s() > deadline) {
			fprintf(stderr,
			        "pigeon-bench: time limit: %u of %u connections ready, %u CONNECTs "
			        "unanswered\n",
			        atomic_load(&p->ready), p->nconns, atomic_load(&p->inflight));
			return 1;
		}
		nanosleep(&ts, NULL);
	}
	return atomic_load(&p->failed) ? 1 : 0;
}

void bench_pool_run(struct bench_pool *p)
{
	unsigned i;

	atomic_store(&p->phase, 1);
	for (i = 0; i < p->conf.threads; i++) {
		bench_pool_wake(p, i);
	}
}

int bench_pool_publish(struct bench_conn *c, const char *topic, int len, const void *payload,
                       int qos)
{
	struct pool_thread *t = &c->pool->threads[c->thread];
	int rc = mosquitto_publish_v5(c->m, NULL, topic, len, payload, qos, false, NULL);

	if (!c->dirty) {
		c->dirty = true;
		t->dirty[t->ndirty++] = c;
	}
	return rc;
}

void bench_pool_wake(struct bench_pool *p, unsigned t)
{
	uint64_t one = 1;

	if (write(p->threads[t].wake_fd, &one, sizeof(one)) < 0) {
		return; /* EAGAIN: the counter is full, a wake-up is pending anyway */
	}
}

bool bench_pool_failed(const struct bench_pool *p)
{
	return atomic_load(&p->failed);
}

void *bench_pool_ud(const struct bench_pool *p)
{
	return p->conf.ud;
}

unsigned bench_pool_threads(const struct bench_pool *p)
{
	return p->conf.threads;
}

struct bench_conn **bench_pool_thread_conns(struct bench_pool *p, unsigned t, unsigned *n)
{
	*n = p->threads[t].n;
	return p->threads[t].conns;
}

void bench_pool_stop(struct bench_pool *p)
{
	unsigned i;

	atomic_store(&p->phase, 2);
	for (i = 0; i < p->conf.threads; i++) {
		if (p->threads[i].started) {
			bench_pool_wake(p, i);
			pthread_join(p->threads[i].th, NULL);
			p->threads[i].started = false;
		}
	}
}

void bench_pool_free(struct bench_pool *p)
{
	unsigned i, j;

	if (p == NULL) {
		return;
	}
	bench_pool_stop(p);
	for (i = 0; i < p->conf.threads; i++) {
		struct pool_thread *t = &p->threads[i];
		for (j = 0; j < t->n; j++) {
			if (t->conns[j]->m) { /* threads never ran */
				mosquitto_destroy(t->conns[j]->m);
			}
			free(t->conns[j]->setup);
			free(t->conns[j]);
		}
		free(t->conns);
		free(t->events);
		free(t->dirty);
		if (t->wake_fd >= 0) {
			close(t->wake_fd);
		}
		if (t->epfd >= 0) {
			close(t->epfd);
		}
	}
	free(p->threads);
	free(p);
}
