/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push core (broker/push/push.h) through its public interface: device
 * registration and its errors, tokens moving between users, the trigger
 * (not-connected devices only), coalescing into one outbox row per device,
 * the outbox surviving a reopen, retries and giving up after max_attempts,
 * and what the $SYS leaves read (the oldest push's age, the failed total,
 * the latency histogram, a device's platform).
 *
 * The provider is the webhook one pointed at a loopback port nobody
 * listens on, so every attempt is a real connection refused: the network
 * paths (worker, results, retries) run for real, with nothing outside this
 * machine. What a provider accepts is the integration tests' business
 * (tests/integration/test_push.py, with fake providers over HTTP/2).
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "push.h"

struct counters {
	uint64_t outbox, devices, sent, retried, failed_network, failed;
};

static void read_counter(const char *leaf, uint64_t value, void *ud)
{
	struct counters *c = ud;

	if (strcmp(leaf, "outbox") == 0) {
		c->outbox = value;
	} else if (strcmp(leaf, "devices") == 0) {
		c->devices = value;
	} else if (strcmp(leaf, "webhook/sent") == 0) {
		c->sent = value;
	} else if (strcmp(leaf, "webhook/retried") == 0) {
		c->retried = value;
	} else if (strcmp(leaf, "webhook/failed/network") == 0) {
		c->failed_network = value;
	} else if (strcmp(leaf, "webhook/failed") == 0) {
		c->failed = value;
	}
}

static struct counters counters_of(struct pg_push *p)
{
	struct counters c = {0};

	pg_push_counters(p, read_counter, &c);
	return c;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Who is connected: one (uid, device) at most. */
static char connected_key[160];

static bool fake_connected(void *ud, const char *uid, const char *device)
{
	char key[160];

	(void)ud;
	snprintf(key, sizeof(key), "%s/%s", uid, device);
	return strcmp(key, connected_key) == 0;
}

static int fake_unread(void *ud, const char *uid, const char *device, int64_t now, uint64_t *unread)
{
	(void)ud;
	(void)uid;
	(void)device;
	(void)now;
	*unread = 7;
	return 0;
}

static const struct pg_push_env env = {.connected = fake_connected, .unread = fake_unread};

static char dir[] = "/tmp/pigeon-push-core-XXXXXX";
static char db_path[256];

static struct pg_push_config config(bool webhook)
{
	struct pg_push_config c = {
	    .db_path = db_path,
	    .coalesce_ms = 60000, /* windows close only when a test says so */
	    .default_body = "New message",
	    .max_attempts = 2,
	    .retry_base_ms = 20,
	    .retry_max_ms = 40,
	    .request_timeout_ms = 2000,
	    .connect_timeout_ms = 1000,
	};

	if (webhook) {
		/* Port 1 on loopback: nothing listens there, the connect is refused. */
		c.webhook_url = "http://127.0.0.1:1/hook";
		c.webhook_secret = "test-secret";
	}
	return c;
}

static struct pg_push *open_push(bool webhook, uint64_t coalesce_ms)
{
	struct pg_push_config c = config(webhook);
	struct pg_push *p = NULL;
	char err[256] = "";

	c.coalesce_ms = coalesce_ms;
	if (pg_push_open(&c, &env, now_ms(), &p, err, sizeof(err)) != PG_OK) {
		fprintf(stderr, "pg_push_open: %s\n", err);
	}
	CHECK(p != NULL);
	return p;
}

static void stored(struct pg_push *p, const char *to, uint64_t seq)
{
	struct pg_link_stored m = {
	    .to = to,
	    .from = "backend",
	    .kind = PG_PUSH_KIND_CHAT,
	    .type = "",
	    .seq = seq,
	    .now_ms = now_ms(),
	    .expires_at_ms = now_ms() + 60000,
	};

	pg_push_stored(p, &m);
}

static void test_register_errors_without_provider(void)
{
	struct pg_push *p = open_push(false, 1000);
	char why[256];

	if (p == NULL) {
		return;
	}
	CHECK_EQ(pg_push_register(p, "alice", "phone", "carrier-pigeon", "t", "", false, now_ms(),
	                          why, sizeof(why)),
	         400);
	CHECK_CONTAINS(why, "unknown platform");
	CHECK_EQ(pg_push_register(p, "alice", "phone", "apns", "", "", false, now_ms(), why,
	                          sizeof(why)),
	         400);
	CHECK_CONTAINS(why, "empty");
	CHECK_EQ(pg_push_register(p, "alice", "phone", "apns", "a/b", "", false, now_ms(), why,
	                          sizeof(why)),
	         400);
	CHECK_EQ(pg_push_register(p, "alice", "phone", "apns", "abc", "", false, now_ms(), why,
	                          sizeof(why)),
	         501);
	CHECK_CONTAINS(why, "not configured");
	CHECK(!pg_push_enabled(p, PG_PUSH_APNS));
	CHECK_EQ(pg_push_unregister(p, "alice", "phone", why, sizeof(why)), 0);
	pg_push_close(p);
}

static void test_tokens_move_and_windows_coalesce(void)
{
	struct pg_push *p = open_push(true, 60000);
	struct counters c;
	char why[256];
	int i;

	if (p == NULL) {
		return;
	}
	CHECK(pg_push_enabled(p, PG_PUSH_WEBHOOK));
	CHECK_EQ(pg_push_register(p, "alice", "phone", "webhook", "tok-1", "", false, now_ms(), why,
	                          sizeof(why)),
	         0);
	/* The same token registered by bob's tablet leaves alice. */
	CHECK_EQ(pg_push_register(p, "bob", "tablet", "webhook", "tok-1", "", false, now_ms(), why,
	                          sizeof(why)),
	         0);
	CHECK_EQ(counters_of(p).devices, 1);
	stored(p, "alice", 1);
	CHECK_EQ(counters_of(p).outbox, 0);

	/* 100 messages within one window: one pending push. */
	for (i = 0; i < 100; i++) {
		stored(p, "bob", (uint64_t)i + 1);
	}
	c = counters_of(p);
	CHECK_EQ(c.outbox, 1);

	/* A connected device gets none. */
	CHECK_EQ(pg_push_register(p, "carol", "phone", "webhook", "tok-2", "", false, now_ms(), why,
	                          sizeof(why)),
	         0);
	snprintf(connected_key, sizeof(connected_key), "carol/phone");
	stored(p, "carol", 1);
	CHECK_EQ(counters_of(p).outbox, 1);
	connected_key[0] = '\0';

	/* Re-registering replaces the token: still two devices. */
	CHECK_EQ(pg_push_register(p, "carol", "phone", "webhook", "tok-3", "", false, now_ms(), why,
	                          sizeof(why)),
	         0);
	CHECK_EQ(counters_of(p).devices, 2);
	pg_push_close(p);

	/* Devices and the pending push survive a reopen. */
	p = open_push(true, 60000);
	if (p == NULL) {
		return;
	}
	c = counters_of(p);
	CHECK_EQ(c.devices, 2);
	CHECK_EQ(c.outbox, 1);
	CHECK_EQ(pg_push_unregister(p, "carol", "phone", why, sizeof(why)), 0);
	CHECK_EQ(counters_of(p).devices, 1);
	pg_push_close(p);
}

static void test_retries_then_gives_up(void)
{
	struct pg_push *p = open_push(true, 0);
	struct counters c = {0};
	int64_t deadline;

	if (p == NULL) {
		return;
	}
	/* bob/tablet (tok-1) and the push left from the previous test are
	 * sent now (a reopen makes them due): connection refused, twice. */
	stored(p, "bob", 200);
	deadline = now_ms() + 15000;
	while (now_ms() < deadline) {
		pg_push_tick(p, now_ms());
		c = counters_of(p);
		if (c.outbox == 0) {
			break;
		}
		usleep(10000);
	}
	CHECK_EQ(c.outbox, 0);
	CHECK_EQ(c.sent, 0);
	CHECK(c.retried >= 1);
	CHECK(c.failed_network >= 1);
	pg_push_close(p);

	/* Nothing is left to send after a reopen. */
	p = open_push(true, 0);
	if (p == NULL) {
		return;
	}
	CHECK_EQ(counters_of(p).outbox, 0);
	pg_push_close(p);
}

/*
 * A message stored while the device's push is in flight opens a push of
 * its own; when the one in flight has to be retried, the two become one
 * (the device gets one push, not one per attempt). The provider here is a
 * loopback socket that takes connections and never answers, so the
 * request in flight ends by its timeout.
 */
static void test_in_flight_push_takes_later_messages(void)
{
	struct pg_push_config c = config(false);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	struct pg_push *p = NULL;
	struct counters k = {0};
	char err[256] = "", url[64], why[256];
	int64_t deadline;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", ntohs(sa.sin_port));
	c.webhook_url = url;
	c.webhook_secret = "test-secret";
	c.coalesce_ms = 0;
	c.max_attempts = 5;
	c.request_timeout_ms = 300;
	c.retry_base_ms = 60000; /* the retry itself is not the point */
	c.retry_max_ms = 60000;
	CHECK_EQ(pg_push_open(&c, &env, now_ms(), &p, err, sizeof(err)), PG_OK);
	if (p == NULL) {
		close(fd);
		return;
	}
	CHECK_EQ(pg_push_register(p, "dave", "phone", "webhook", "tok-d", "", false, now_ms(), why,
	                          sizeof(why)),
	         0);
	stored(p, "dave", 1);
	pg_push_tick(p, now_ms()); /* dispatched: in flight, unanswered */
	stored(p, "dave", 2);      /* a push of its own for now */
	stored(p, "dave", 3);      /* folds into that one */
	CHECK_EQ(counters_of(p).outbox, 2);
	deadline = now_ms() + 5000;
	while (now_ms() < deadline) {
		pg_push_tick(p, now_ms());
		k = counters_of(p);
		if (k.retried >= 1 && k.outbox == 1) {
			break;
		}
		usleep(10000);
	}
	/* (With coalesce_ms 0 the second push went out too and timed out as
	 * well; whichever is retried last takes the other.) */
	CHECK(k.retried >= 1);
	CHECK_EQ(k.outbox, 1); /* one push left for the device, with all three */
	pg_push_close(p);
	close(fd);
}

/*
 * The figures behind push/oldest_s, push/<p>/failed, the latency histogram
 * and devices/online/<platform>: the age of the oldest push (0 when the
 * outbox is empty; a loaded one counts from the open), the failed total
 * (the sum of the reasons), one latency observation per provider result,
 * and the platform a (uid, device) registered.
 */
static void test_metrics_of_outbox_and_providers(void)
{
	const struct pg_histogram *h;
	enum pg_push_platform pl = PG_PUSH_APNS;
	struct pg_push *p;
	struct counters c = {0};
	char why[256];
	int64_t t, deadline;
	uint64_t age;

	snprintf(db_path, sizeof(db_path), "%s/metrics.db", dir);
	p = open_push(true, 60000);
	if (p == NULL) {
		return;
	}
	CHECK_EQ(pg_push_oldest_s(p, now_ms()), 0);
	CHECK(pg_push_latency_histogram(p, PG_PUSH_APNS) == NULL);
	h = pg_push_latency_histogram(p, PG_PUSH_WEBHOOK);
	CHECK(h != NULL);
	CHECK_EQ(pg_histogram_count(h), 0);
	CHECK_EQ(pg_push_register(p, "erin", "phone", "webhook", "tok-e", "", false, now_ms(), why,
	                          sizeof(why)),
	         0);
	CHECK(pg_push_device_platform(p, "erin", "phone", &pl));
	CHECK_EQ(pl, PG_PUSH_WEBHOOK);
	CHECK(!pg_push_device_platform(p, "erin", "laptop", &pl));
	CHECK(!pg_push_device_platform(p, "frank", "phone", &pl));

	t = now_ms();
	stored(p, "erin", 1);
	age = pg_push_oldest_s(p, t + 2500);
	CHECK(age == 2 || age == 1); /* stored at t or a few ms after */
	CHECK_EQ(pg_push_oldest_s(p, t), 0);
	stored(p, "erin", 2); /* folds in: the age is the window's */
	CHECK_EQ(pg_push_oldest_s(p, t + 2500), age);
	pg_push_close(p);

	/* Reopened: the loaded push counts from the open, and is sent (refused) at once. */
	t = now_ms();
	p = open_push(true, 0);
	if (p == NULL) {
		return;
	}
	age = pg_push_oldest_s(p, t + 3000);
	CHECK(age == 3 || age == 2);
	deadline = now_ms() + 15000;
	while (now_ms() < deadline) {
		pg_push_tick(p, now_ms());
		c = counters_of(p);
		if (c.outbox == 0) {
			break;
		}
		usleep(10000);
	}
	CHECK_EQ(c.outbox, 0);
	CHECK_EQ(pg_push_oldest_s(p, now_ms()), 0);
	/* max_attempts 2: one retry, then given up (counted under its reason). */
	CHECK_EQ(c.retried, 1);
	CHECK_EQ(c.failed_network, 1);
	CHECK_EQ(c.failed, 1);
	h = pg_push_latency_histogram(p, PG_PUSH_WEBHOOK);
	CHECK(h != NULL);
	CHECK_EQ(pg_histogram_count(h), 2); /* one per result */
	{
		char text[PG_HISTOGRAM_TEXT_MAX];

		CHECK(pg_histogram_format(h, text, sizeof(text)) > 0);
		CHECK_CONTAINS(text, "+Inf:2 sum:");
		CHECK(strncmp(text, "0.005:", 6) == 0);
	}
	pg_push_close(p);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof(db_path), "%s/push.db", dir);
	RUN(test_register_errors_without_provider);
	RUN(test_tokens_move_and_windows_coalesce);
	RUN(test_retries_then_gives_up);
	RUN(test_in_flight_push_takes_later_messages);
	RUN(test_metrics_of_outbox_and_providers);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", dir);
		}
	}
	return check_exit();
}
