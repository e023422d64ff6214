/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus text exposition format 0.0.4: values in, text out. Each
 * family once, `# HELP` and `# TYPE` first, then its samples; histograms
 * as _bucket{...,le="..."} / _sum / _count; label values and HELP text
 * escaped. Also the growable buffer every HTTP body is built in.
 * No state; any thread.
 */
#ifndef PIGEON_EXPORTER_RENDER_H
#define PIGEON_EXPORTER_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* A growable text buffer; failed is set (and text dropped) when memory runs out. */
struct exp_buf {
	char *data; /* NUL-terminated, malloc'd: the owner frees it (exp_buf_free) */
	size_t len, cap;
	bool failed;
};

__attribute__((format(printf, 2, 3))) void exp_buf_printf(struct exp_buf *b, const char *fmt, ...);
void exp_buf_free(struct exp_buf *b);

/* The exporter's own metrics. */
struct exp_own {
	bool up;
	bool have_age; /* a $SYS message was ever received */
	double age_s;
	uint64_t connects;
};

/*
 * Appends the exposition to b: the broker's values (n of them, sorted by
 * row, then by label values: exp_value_cmp) and the exporter's own.
 */
void exp_render(struct exp_buf *b, const struct exp_own *own, const struct exp_value *const *values,
                size_t n);

/* The order exp_render wants (qsort over const struct exp_value *). */
int exp_value_cmp(const void *a, const void *b);

/* --list-metrics: every family name of the table, one per line, in table order. */
void exp_render_list(struct exp_buf *b);

#endif
