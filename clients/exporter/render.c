/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exposition renderer (render.h). Numbers: counters and gauges are
 * unsigned integers printed exactly; a histogram's sum is a double printed
 * in the shortest form that reads back the same.
 */
#include "render.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void exp_buf_printf(struct exp_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed) {
		return;
	}
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = b->data ? vsnprintf(b->data + b->len, room, fmt, ap) : -2;
		va_end(ap);
		if (n == -1) {
			b->failed = true;
			return;
		}
		if (n >= 0 && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t want = b->cap ? b->cap * 2 : 4096;
			char *d;

			while (n >= 0 && want - b->len <= (size_t)n) {
				want *= 2;
			}
			d = realloc(b->data, want);
			if (d == NULL) {
				b->failed = true;
				return;
			}
			b->data = d;
			b->cap = want;
		}
	}
}

void exp_buf_free(struct exp_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Text with \ and newline escaped (HELP), and " too (label values). */
static void put_escaped(struct exp_buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\') {
			exp_buf_printf(b, "\\\\");
		} else if (*s == '\n') {
			exp_buf_printf(b, "\\n");
		} else if (quote && *s == '"') {
			exp_buf_printf(b, "\\\"");
		} else {
			exp_buf_printf(b, "%c", *s);
		}
	}
}

static const char *type_name(enum exp_type t)
{
	switch (t) {
	case EXP_COUNTER:
		return "counter";
	case EXP_GAUGE:
		return "gauge";
	case EXP_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static void put_header(struct exp_buf *b, const struct exp_metric *m)
{
	exp_buf_printf(b, "# HELP %s ", m->name);
	put_escaped(b, m->help, false);
	exp_buf_printf(b, "\n# TYPE %s %s\n", m->name, type_name(m->type));
}

/* {a="x",b="y"[,le="<le>"]}, nothing when there are no labels at all. */
static void put_labels(struct exp_buf *b, const struct exp_value *v, const char *le)
{
	unsigned i;

	if (v->nlabels == 0 && le == NULL) {
		return;
	}
	exp_buf_printf(b, "{");
	for (i = 0; i < v->nlabels; i++) {
		exp_buf_printf(b, "%s%s=\"", i ? "," : "", v->labels[i].name);
		put_escaped(b, v->labels[i].value, true);
		exp_buf_printf(b, "\"");
	}
	if (le != NULL) {
		exp_buf_printf(b, "%sle=\"%s\"", i ? "," : "", le);
	}
	exp_buf_printf(b, "}");
}

/* The shortest %g form of d that strtod reads back as d. */
static void put_double(struct exp_buf *b, double d)
{
	char text[40];

	for (int prec = 9; prec <= 17; prec++) {
		snprintf(text, sizeof(text), "%.*g", prec, d);
		if (strtod(text, NULL) == d) {
			break;
		}
	}
	exp_buf_printf(b, "%s", text);
}

static void put_histogram(struct exp_buf *b, const struct exp_metric *m, const struct exp_value *v)
{
	const struct exp_hist *h = v->hist;

	for (unsigned i = 0; i < h->n; i++) {
		exp_buf_printf(b, "%s_bucket", m->name);
		put_labels(b, v, h->le[i]);
		exp_buf_printf(b, " %" PRIu64 "\n", h->count[i]);
	}
	exp_buf_printf(b, "%s_bucket", m->name);
	put_labels(b, v, "+Inf");
	exp_buf_printf(b, " %" PRIu64 "\n%s_sum", h->total, m->name);
	put_labels(b, v, NULL);
	exp_buf_printf(b, " ");
	put_double(b, h->sum);
	exp_buf_printf(b, "\n%s_count", m->name);
	put_labels(b, v, NULL);
	exp_buf_printf(b, " %" PRIu64 "\n", h->total);
}

int exp_value_cmp(const void *a, const void *b)
{
	const struct exp_value *x = *(const struct exp_value *const *)a;
	const struct exp_value *y = *(const struct exp_value *const *)b;

	if (x->row != y->row) {
		return x->row < y->row ? -1 : 1;
	}
	for (unsigned i = 0; i < x->nlabels && i < y->nlabels; i++) {
		int c = strcmp(x->labels[i].value, y->labels[i].value);

		if (c != 0) {
			return c;
		}
	}
	return (x->nlabels > y->nlabels) - (x->nlabels < y->nlabels);
}

static void put_own(struct exp_buf *b, const struct exp_own *own)
{
	int row = exp_metric_row("pigeon_up");

	put_header(b, &exp_metrics[row]);
	exp_buf_printf(b, "pigeon_up %d\n", own->up ? 1 : 0);
	if (own->have_age) {
		put_header(b, &exp_metrics[exp_metric_row("pigeon_exporter_sys_age_seconds")]);
		exp_buf_printf(b, "pigeon_exporter_sys_age_seconds %.3f\n",
		               own->age_s < 0 ? 0.0 : own->age_s);
	}
	put_header(b, &exp_metrics[exp_metric_row("pigeon_exporter_connects_total")]);
	exp_buf_printf(b, "pigeon_exporter_connects_total %" PRIu64 "\n", own->connects);
}

void exp_render(struct exp_buf *b, const struct exp_own *own, const struct exp_value *const *values,
                size_t n)
{
	int row = -1;

	for (size_t i = 0; i < n; i++) {
		const struct exp_value *v = values[i];
		const struct exp_metric *m = &exp_metrics[v->row];

		if (v->row != row) {
			put_header(b, m);
			row = v->row;
		}
		if (m->kind == EXP_KIND_HISTOGRAM) {
			put_histogram(b, m, v);
			continue;
		}
		exp_buf_printf(b, "%s", m->name);
		put_labels(b, v, NULL);
		exp_buf_printf(b, " %" PRIu64 "\n", v->number);
	}
	put_own(b, own);
}

void exp_render_list(struct exp_buf *b)
{
	for (size_t i = 0; i < exp_metrics_count; i++) {
		exp_buf_printf(b, "%s\n", exp_metrics[i].name);
	}
}
