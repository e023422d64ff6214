/* SPDX-License-Identifier: Apache-2.0 */
/* The plugins' meeting point (link.h): two pointers, broker thread only. */
#include "link.h"

static const struct pg_link_push *link_push;
static const struct pg_link_inbox *link_inbox;

void pg_link_set_push(const struct pg_link_push *push)
{
	link_push = push;
}

void pg_link_set_inbox(const struct pg_link_inbox *inbox)
{
	link_inbox = inbox;
}

const struct pg_link_push *pg_link_push(void)
{
	return link_push;
}

const struct pg_link_inbox *pg_link_inbox(void)
{
	return link_inbox;
}
