/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit test of pigeon-exporter's broker-independent part: the leaf table
 * and its matcher, the payload parsers (every kind of garbage refused,
 * never a crash), the renderer's text format, the health rules, and the
 * state (what is served while up, stale or down). No broker is involved:
 * garbage $SYS payloads cannot be published through pigeon (only the
 * broker writes $SYS, docs/auth.md), so this is where they are fed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "health.h"
#include "metrics.h"
#include "payload.h"
#include "render.h"
#include "state.h"

static const char *S(const char *s, size_t *n)
{
	*n = strlen(s);
	return s;
}

static void test_uint_payloads(void)
{
	uint64_t v = 7;
	size_t n;
	const char *p;

	p = S("0", &n);
	CHECK_EQ(exp_payload_uint(p, n, &v), 0);
	CHECK_EQ(v, 0);
	p = S("18446744073709551615", &n);
	CHECK_EQ(exp_payload_uint(p, n, &v), 0);
	CHECK(v == UINT64_MAX);
	static const char *bad[] = {"",
	                            "-1",
	                            "+1",
	                            " 1",
	                            "1 ",
	                            "1.5",
	                            "1e3",
	                            "0x10",
	                            "abc",
	                            "18446744073709551616",
	                            "99999999999999999999",
	                            "000000000000000000001",
	                            "nan",
	                            "inf"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		p = S(bad[i], &n);
		CHECK_EQ(exp_payload_uint(p, n, &v), -1);
		CHECK_EQ(v, 7);
	}
	/* Not NUL-terminated: only n bytes are read. */
	CHECK_EQ(exp_payload_uint("12x", 2, &v), 0);
	CHECK_EQ(v, 12);
	CHECK_EQ(exp_payload_uint("1\0002", 3, &v), -1);
}

static void test_uptime_and_version(void)
{
	char ver[48];
	uint64_t v;
	size_t n;
	const char *p;

	p = S("5 seconds", &n);
	CHECK_EQ(exp_payload_uptime(p, n, &v), 0);
	CHECK_EQ(v, 5);
	p = S(" seconds", &n);
	CHECK_EQ(exp_payload_uptime(p, n, &v), -1);
	p = S("-5 seconds", &n);
	CHECK_EQ(exp_payload_uptime(p, n, &v), -1);
	p = S("5 second", &n);
	CHECK_EQ(exp_payload_uptime(p, n, &v), -1);
	p = S("mosquitto version 2.0.11", &n);
	CHECK_EQ(exp_payload_version(p, n, ver, sizeof(ver)), 0);
	CHECK_STR(ver, "2.0.11");
	p = S("mosquitto version 2.0.11\"} 1\nevil 1", &n);
	CHECK_EQ(exp_payload_version(p, n, ver, sizeof(ver)), -1);
	p = S("mosquitto version ", &n);
	CHECK_EQ(exp_payload_version(p, n, ver, sizeof(ver)), -1);
	p = S("mosquitto version 2.0.11-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &n);
	CHECK_EQ(exp_payload_version(p, n, ver, sizeof(ver)), -1);
}

static void test_histogram_payloads(void)
{
	struct exp_hist h;
	size_t n;
	const char *p;

	p = S("0.0005:0 0.001:3 10:7 +Inf:7 sum:0.012345678", &n);
	CHECK_EQ(exp_payload_histogram(p, n, &h), 0);
	CHECK_EQ(h.n, 3);
	CHECK_STR(h.le[0], "0.0005");
	CHECK_STR(h.le[2], "10");
	CHECK_EQ(h.count[1], 3);
	CHECK_EQ(h.total, 7);
	CHECK(h.sum > 0.0123456 && h.sum < 0.0123457);
	p = S("+Inf:0 sum:0", &n);
	CHECK_EQ(exp_payload_histogram(p, n, &h), 0);
	CHECK_EQ(h.n, 0);
	p = S("256:1 1024:2 +Inf:9 sum:1.5e+09", &n);
	CHECK_EQ(exp_payload_histogram(p, n, &h), 0);
	static const char *bad[] = {
	    "",
	    "sum:1",                                     /* no +Inf */
	    "1:1 +Inf:1",                                /* no sum */
	    "1:2 2:1 +Inf:2 sum:1",                      /* counts decrease */
	    "1:1 +Inf:0 sum:1",                          /* +Inf below a bucket */
	    "2:1 1:1 +Inf:1 sum:1",                      /* bounds not ascending */
	    "1:1 1:1 +Inf:1 sum:1",                      /* a bound twice */
	    "-1:0 +Inf:0 sum:0",                         /* negative bound */
	    "1e3:0 +Inf:0 sum:0",                        /* exponent in a bound */
	    "1.:0 +Inf:0 sum:0",                         /* no fraction digits */
	    "x:0 +Inf:0 sum:0",                          /* not a number */
	    "1:-1 +Inf:0 sum:0",                         /* negative count */
	    "1:1 +Inf:1 sum:-1",                         /* negative sum */
	    "1:1 +Inf:1 sum:nan",                        /* not finite */
	    "1:1 +Inf:1 sum:inf",                        /* not finite */
	    "1:1 +Inf:1 sum:1e999",                      /* overflows */
	    "1:1  +Inf:1 sum:1",                         /* two spaces */
	    "1:1 +Inf:1 sum:1 ",                         /* trailing space */
	    "1:1 +Inf:1 sum:1 2:3",                      /* after sum */
	    "1:1 +Inf:1 +Inf:1 sum:1",                   /* two +Inf */
	    "1:1 +Inf:1 2:1 sum:1",                      /* a bound after +Inf */
	    "1 +Inf:1 sum:1",                            /* no colon */
	    "1:1:1 +Inf:1 sum:1",                        /* two colons */
	    "1:99999999999999999999 +Inf:1 sum:1",       /* overflow */
	    "12345678901234567890123456:1 +Inf:1 sum:1", /* bound too long */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = S(bad[i], &n);
		if (exp_payload_histogram(p, n, &h) != -1) {
			fprintf(stderr, "accepted bad histogram '%s'\n", bad[i]);
			CHECK(0);
		}
	}
	/* More buckets than the maximum. */
	{
		char buf[2048];
		size_t len = 0;

		for (int i = 1; i <= EXP_HIST_BUCKETS_MAX + 1; i++) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%d:0 ", i);
		}
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "+Inf:0 sum:0");
		CHECK_EQ(exp_payload_histogram(buf, len, &h), -1);
	}
}

static void test_leaf_table(void)
{
	struct exp_value v;
	const char *leaf;
	int r;

	leaf = "pigeon/messages/stored";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK(r >= 0);
	CHECK_STR(exp_metrics[r].name, "pigeon_messages_stored_total");
	CHECK_EQ(v.nlabels, 0);
	leaf = "pigeon/refused/body_too_large";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "pigeon_refused_total");
	CHECK_STR(v.labels[0].name, "reason");
	CHECK_STR(v.labels[0].value, "body_too_large");
	leaf = "pigeon/push/apns/sent";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "pigeon_push_total");
	CHECK_EQ(v.nlabels, 2);
	CHECK_STR(v.labels[0].name, "provider");
	CHECK_STR(v.labels[1].value, "sent");
	leaf = "pigeon/push/fcm/failed/http_429";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "pigeon_push_failures_total");
	CHECK_STR(v.labels[1].value, "http_429");
	leaf = "pigeon/push/fcm/failed";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "pigeon_push_total");
	leaf = "pigeon/histogram/push_latency_seconds/webhook";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "pigeon_push_latency_seconds");
	leaf = "pigeon/users/online/none";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "pigeon_users_online_by_platform");
	leaf = "retained messages/count";
	r = exp_metric_match(leaf, strlen(leaf), &v);
	CHECK_STR(r >= 0 ? exp_metrics[r].name : NULL, "mosquitto_retained_messages");
	static const char *unknown[] = {
	    "pigeon/push/outbox", /* on $SYS, not exported */
	    "pigeon/push/apns/latency_ms/p50",
	    "pigeon/push/nokia/sent",       /* not a provider */
	    "pigeon/refused/other",         /* not a refusal reason */
	    "pigeon/messages/stored/x",     /* deeper */
	    "pigeon/messages",              /* shallower */
	    "pigeon/push/apns/failed/",     /* empty reason */
	    "pigeon/push/apns/failed/a\"b", /* not a word */
	    "pigeon/push/apns/failed/a/b",
	    "pigeon/push/apns/failed/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 41 */
	    "load/messages/received/1min",
	    "",
	};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		if (exp_metric_match(unknown[i], strlen(unknown[i]), &v) != -1) {
			fprintf(stderr, "matched '%s'\n", unknown[i]);
			CHECK(0);
		}
	}
	/* Only the first n bytes count. */
	CHECK(exp_metric_match("uptimeX", 6, &v) >= 0);
	/* Every family name is unique and well-formed. */
	for (size_t i = 0; i < exp_metrics_count; i++) {
		for (size_t j = i + 1; j < exp_metrics_count; j++) {
			CHECK(strcmp(exp_metrics[i].name, exp_metrics[j].name) != 0);
		}
		CHECK(strspn(exp_metrics[i].name, "abcdefghijklmnopqrstuvwxyz_") ==
		      strlen(exp_metrics[i].name));
		CHECK((exp_metrics[i].leaf == NULL) == (exp_metrics[i].kind == EXP_KIND_OWN));
		CHECK((exp_metrics[i].type == EXP_HISTOGRAM) ==
		      (exp_metrics[i].kind == EXP_KIND_HISTOGRAM));
	}
}

static void test_render(void)
{
	struct exp_value a = {0}, b = {0}, c = {0};
	struct exp_hist h = {0};
	const struct exp_value *vals[3];
	struct exp_own own = {.up = true, .have_age = true, .age_s = 0.25, .connects = 2};
	struct exp_buf out = {0};
	const char *leaf;

	leaf = "pigeon/push/apns/sent";
	exp_metric_match(leaf, strlen(leaf), &a);
	a.number = 5;
	leaf = "pigeon/push/fcm/retried";
	exp_metric_match(leaf, strlen(leaf), &b);
	b.number = 18446744073709551615u;
	leaf = "pigeon/histogram/push_latency_seconds/apns";
	exp_metric_match(leaf, strlen(leaf), &c);
	CHECK_EQ(exp_payload_histogram("0.005:1 0.01:2 +Inf:3 sum:0.1", 29, &h), 0);
	c.hist = &h;
	vals[0] = &c;
	vals[1] = &b;
	vals[2] = &a;
	qsort(vals, 3, sizeof(vals[0]), exp_value_cmp);
	exp_render(&out, &own, vals, 3);
	CHECK(!out.failed);
	CHECK_CONTAINS(out.data, "# HELP pigeon_push_total Pushes by provider");
	CHECK_CONTAINS(out.data, "# TYPE pigeon_push_total counter\n"
	                         "pigeon_push_total{provider=\"apns\",outcome=\"sent\"} 5\n"
	                         "pigeon_push_total{provider=\"fcm\",outcome=\"retried\"} "
	                         "18446744073709551615\n");
	CHECK_CONTAINS(out.data,
	               "# TYPE pigeon_push_latency_seconds histogram\n"
	               "pigeon_push_latency_seconds_bucket{provider=\"apns\",le=\"0.005\"} 1\n"
	               "pigeon_push_latency_seconds_bucket{provider=\"apns\",le=\"0.01\"} 2\n"
	               "pigeon_push_latency_seconds_bucket{provider=\"apns\",le=\"+Inf\"} 3\n"
	               "pigeon_push_latency_seconds_sum{provider=\"apns\"} 0.1\n"
	               "pigeon_push_latency_seconds_count{provider=\"apns\"} 3\n");
	CHECK_CONTAINS(out.data, "pigeon_up 1\n");
	CHECK_CONTAINS(out.data, "pigeon_exporter_sys_age_seconds 0.250\n");
	CHECK_CONTAINS(out.data, "pigeon_exporter_connects_total 2\n");
	/* HELP once per family. */
	CHECK(strstr(strstr(out.data, "# HELP pigeon_push_total") + 1,
	             "# HELP pigeon_push_total") == NULL);
	exp_buf_free(&out);

	/* Label values are escaped. */
	snprintf(a.labels[0].value, sizeof(a.labels[0].value), "a\\b\"c\nd");
	vals[0] = &a;
	exp_render(&out, &own, vals, 1);
	CHECK_CONTAINS(out.data, "{provider=\"a\\\\b\\\"c\\nd\",outcome=\"sent\"} 5\n");
	exp_buf_free(&out);

	/* A big buffer grows. */
	for (int i = 0; i < 2000; i++) {
		exp_buf_printf(&out, "%0100d\n", i);
	}
	CHECK(!out.failed);
	CHECK_EQ(out.len, 2000 * 101);
	exp_buf_free(&out);
}

static void test_health(void)
{
	struct exp_limits lim = {.stale_after_s = 30, .push_stuck_after_s = 300};
	struct exp_facts f = {
	    .connected = true, .have_sys = true, .sys_age_s = 1, .store_failing = 0};
	struct exp_buf r = {0};

	CHECK(exp_health_eval(EXP_CHECK_READY, &f, &lim, &r));
	CHECK_STR(r.data, "broker ok\nstore ok\npush not loaded\n");
	exp_buf_free(&r);
	f.push_loaded = f.have_push_oldest = true;
	f.push_oldest_s = 301;
	CHECK(!exp_health_eval(EXP_CHECK_READY, &f, &lim, &r));
	CHECK_CONTAINS(r.data, "push stuck (oldest 301 s, over 300 s)\n");
	exp_buf_free(&r);
	CHECK(exp_health_eval(EXP_CHECK_LIVE, &f, &lim, &r));
	CHECK_STR(r.data, "broker ok\n");
	exp_buf_free(&r);
	f.push_oldest_s = 0;
	f.store_failing = 1;
	CHECK(!exp_health_eval(EXP_CHECK_READY, &f, &lim, &r));
	CHECK_STR(r.data,
	          "broker ok\nstore failing (the last write failed)\npush ok (oldest 0 s)\n");
	exp_buf_free(&r);
	f.store_failing = -1;
	CHECK(!exp_health_eval(EXP_CHECK_READY, &f, &lim, &r));
	exp_buf_free(&r);
	f.store_failing = 0;
	f.sys_age_s = 31;
	CHECK(!exp_health_live(&f, &lim));
	CHECK(!exp_health_eval(EXP_CHECK_LIVE, &f, &lim, &r));
	CHECK_CONTAINS(r.data, "broker stale (no $SYS message for 31 s, over 30 s)");
	exp_buf_free(&r);
	f.connected = false;
	snprintf(f.error, sizeof(f.error), "cannot connect to x:1: Connection refused");
	CHECK(!exp_health_eval(EXP_CHECK_LIVE, &f, &lim, &r));
	CHECK_STR(r.data, "broker down (cannot connect to x:1: Connection refused)\n");
	exp_buf_free(&r);
}

static void update(struct exp_state *st, const char *topic, const char *payload)
{
	exp_state_update(st, topic, payload, strlen(payload));
}

static void test_state(void)
{
	struct exp_limits lim = {.stale_after_s = 30, .push_stuck_after_s = 300};
	struct exp_state *st = exp_state_new(false);
	struct exp_buf out = {0};
	struct exp_facts f;
	char big[8192];

	/* Nothing yet: only the exporter's own, pigeon_up 0, no age. */
	exp_state_render(st, exp_now(), &lim, &out);
	CHECK_STR(out.data,
	          "# HELP pigeon_up 1 while the exporter's MQTT session is up and a $SYS "
	          "message arrived within --stale-after, else 0 (then no broker metric is "
	          "served).\n# TYPE pigeon_up gauge\npigeon_up 0\n"
	          "# HELP pigeon_exporter_connects_total MQTT sessions the exporter "
	          "opened.\n# TYPE pigeon_exporter_connects_total counter\n"
	          "pigeon_exporter_connects_total 0\n");
	exp_buf_free(&out);
	exp_state_session_up(st);
	update(st, "$SYS/broker/pigeon/messages/stored", "12");
	update(st, "$SYS/broker/version", "mosquitto version 2.0.21");
	update(st, "$SYS/broker/uptime", "7 seconds");
	/* Garbage of every kind: ignored, the previous value stays. */
	update(st, "$SYS/broker/pigeon/messages/stored", "-1");
	update(st, "$SYS/broker/pigeon/messages/stored", "12abc");
	update(st, "$SYS/broker/pigeon/messages/stored", "1e9");
	update(st, "$SYS/broker/pigeon/histogram/sync_reply_bytes", "256:3 +Inf:2 sum:1");
	update(st, "$SYS/broker/pigeon/histogram/sync_reply_bytes", "garbage");
	memset(big, '9', sizeof(big));
	exp_state_update(st, "$SYS/broker/pigeon/messages/delivered", big, sizeof(big));
	exp_state_update(st, "$SYS/broker/pigeon/histogram/sync_reply_bytes", big, sizeof(big));
	exp_state_update(st, "$SYS/broker/pigeon/devices/online", "\0\0\0", 3);
	update(st, "$SYS/broker/pigeon/unknown/leaf", "1");
	update(st, "$SYS/broker/load/bytes/received/1min", "12.5");
	update(st, "not/sys", "5");
	exp_state_render(st, exp_now(), &lim, &out);
	CHECK_CONTAINS(out.data, "\npigeon_messages_stored_total 12\n");
	CHECK_CONTAINS(out.data, "\nmosquitto_build_info{version=\"2.0.21\"} 1\n");
	CHECK_CONTAINS(out.data, "\nmosquitto_uptime_seconds 7\n");
	CHECK_CONTAINS(out.data, "pigeon_up 1\n");
	CHECK(strstr(out.data, "delivered") == NULL);
	CHECK(strstr(out.data, "sync_reply") == NULL);
	CHECK(strstr(out.data, "devices_online") == NULL);
	CHECK(strstr(out.data, "unknown") == NULL);
	exp_buf_free(&out);
	/* An empty payload (a cleared retained message) removes the leaf. */
	update(st, "$SYS/broker/uptime", "");
	exp_state_render(st, exp_now(), &lim, &out);
	CHECK(strstr(out.data, "mosquitto_uptime_seconds") == NULL);
	exp_buf_free(&out);
	/* Stale: only the exporter's own. */
	exp_state_render(st, exp_now() + 31, &lim, &out);
	CHECK_CONTAINS(out.data, "pigeon_up 0\n");
	CHECK(strstr(out.data, "pigeon_messages_stored_total") == NULL);
	exp_buf_free(&out);
	/* store/failing and push for the health facts. */
	exp_state_facts(st, exp_now(), &f);
	CHECK_EQ(f.store_failing, -1);
	CHECK(!f.push_loaded);
	update(st, "$SYS/broker/pigeon/store/failing", "1");
	update(st, "$SYS/broker/pigeon/push/oldest_s", "4");
	exp_state_facts(st, exp_now(), &f);
	CHECK_EQ(f.store_failing, 1);
	CHECK(f.push_loaded && f.have_push_oldest);
	CHECK_EQ(f.push_oldest_s, 4);
	/* Down: every broker value is dropped; the age and connects stay. */
	exp_state_session_down(st, "connection lost: x");
	exp_state_facts(st, exp_now(), &f);
	CHECK(!f.connected);
	CHECK_EQ(f.store_failing, -1);
	CHECK_STR(f.error, "connection lost: x");
	exp_state_render(st, exp_now(), &lim, &out);
	CHECK_CONTAINS(out.data, "pigeon_up 0\n");
	CHECK_CONTAINS(out.data, "pigeon_exporter_sys_age_seconds ");
	CHECK_CONTAINS(out.data, "pigeon_exporter_connects_total 1\n");
	CHECK(strstr(out.data, "pigeon_messages_stored_total") == NULL);
	exp_buf_free(&out);
	/* Up again: nothing until $SYS speaks. */
	exp_state_session_up(st);
	exp_state_render(st, exp_now(), &lim, &out);
	CHECK_CONTAINS(out.data, "pigeon_up 0\n");
	CHECK_CONTAINS(out.data, "pigeon_exporter_connects_total 2\n");
	exp_buf_free(&out);
	exp_state_free(st);
}

/* Random bytes on every known leaf: never a crash, never an invalid line. */
static void test_state_fuzz(void)
{
	struct exp_limits lim = {.stale_after_s = 30, .push_stuck_after_s = 300};
	struct exp_state *st = exp_state_new(false);
	static const char alphabet[] = "0123456789 :.+-eInfsum\"\\\nx";
	char payload[64], topic[160];
	struct exp_buf out = {0};
	unsigned seed = 12345;

	exp_state_session_up(st);
	for (int i = 0; i < 200000; i++) {
		size_t row = (size_t)rand_r(&seed) % exp_metrics_count, n;
		const char *leaf = exp_metrics[row].leaf;
		char *t = topic;

		if (leaf == NULL) {
			continue;
		}
		/* The leaf with every label replaced by the first listed value (or "x"). */
		t += snprintf(t, sizeof(topic), "$SYS/broker/");
		for (const char *p = leaf; *p;) {
			if (*p == '{') {
				const char *eq = strchr(p, '='), *close = strchr(p, '}');
				size_t len = 1;
				const char *val = "x";

				if (eq && eq < close) {
					val = eq + 1;
					len = strcspn(val, "|}");
				}
				memcpy(t, val, len);
				t += len;
				p = close + 1;
			} else {
				*t++ = *p++;
			}
		}
		*t = '\0';
		n = (size_t)rand_r(&seed) % sizeof(payload);
		for (size_t k = 0; k < n; k++) {
			payload[k] = alphabet[(size_t)rand_r(&seed) % (sizeof(alphabet) - 1)];
		}
		exp_state_update(st, topic, payload, n);
	}
	exp_state_render(st, exp_now(), &lim, &out);
	CHECK(!out.failed);
	for (char *line = out.data; line && *line;) {
		char *nl = strchr(line, '\n');

		CHECK(nl != NULL);
		if (nl == NULL) {
			break;
		}
		CHECK(line[0] == '#' || (line[0] >= 'a' && line[0] <= 'z'));
		line = nl + 1;
	}
	exp_buf_free(&out);
	exp_state_free(st);
}

int main(void)
{
	RUN(test_uint_payloads);
	RUN(test_uptime_and_version);
	RUN(test_histogram_payloads);
	RUN(test_leaf_table);
	RUN(test_render);
	RUN(test_health);
	RUN(test_state);
	RUN(test_state_fuzz);
	return check_exit();
}
