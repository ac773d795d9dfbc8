/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "engine/gate.h"

struct gate_chunk {
	struct gate_chunk *next;
	size_t len;
	uint8_t data[];
};

struct snap_gate {
	struct img_sink base; /* first: the writer sees a sink */
	struct img_sink *out;
	int holding; /* atomic */
	struct gate_chunk *head, *tail;
	size_t queued;
};

static int gate_queue(struct snap_gate *g, const struct iovec *iov, int iovcnt)
{
	struct gate_chunk *c;
	size_t len = 0, at = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (g->queued + len > SNAP_GATE_MAX_BYTES)
		return -ENOBUFS;
	c = malloc(sizeof(*c) + len);
	if (!c)
		return -ENOMEM;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(c->data + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	c->len = len;
	c->next = NULL;
	if (g->tail)
		g->tail->next = c;
	else
		g->head = c;
	g->tail = c;
	g->queued += len;
	return 0;
}

/* Writes out what was queued while held, oldest first. */
static int gate_drain(struct snap_gate *g)
{
	while (g->head) {
		struct gate_chunk *c = g->head;
		struct iovec v = {c->data, c->len};
		int k = g->out->ops->writev(g->out, &v, 1);

		if (k < 0)
			return k;
		g->head = c->next;
		if (!g->head)
			g->tail = NULL;
		g->queued -= c->len;
		free(c);
	}
	return 0;
}

static int gate_writev(struct img_sink *s, const struct iovec *iov, int iovcnt)
{
	struct snap_gate *g = (struct snap_gate *)s;
	int k;

	if (__atomic_load_n(&g->holding, __ATOMIC_ACQUIRE))
		return gate_queue(g, iov, iovcnt);
	k = gate_drain(g);
	return k < 0 ? k : g->out->ops->writev(g->out, iov, iovcnt);
}

static int gate_flush(struct img_sink *s)
{
	struct snap_gate *g = (struct snap_gate *)s;
	int k = gate_drain(g);

	if (k < 0 || !g->out->ops->flush)
		return k;
	return g->out->ops->flush(g->out);
}

static const struct img_sink_ops gate_ops = {
	.writev = gate_writev,
	.flush = gate_flush,
};

int snap_gate_new(struct img_sink *out, struct snap_gate **ret)
{
	struct snap_gate *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->base.ops = &gate_ops;
	g->out = out;
	*ret = g;
	return 0;
}

struct img_sink *snap_gate_sink(struct snap_gate *g)
{
	return &g->base;
}

void snap_gate_hold(struct snap_gate *g, bool held)
{
	if (g)
		__atomic_store_n(&g->holding, held, __ATOMIC_RELEASE);
}

void snap_gate_free(struct snap_gate *g)
{
	if (!g)
		return;
	while (g->head) {
		struct gate_chunk *c = g->head;

		g->head = c->next;
		free(c);
	}
	free(g);
}
