/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "engine/gate.h"

/*
 * Queued bytes live in blocks of mapped memory, filled in order. A block written out is kept
 * (up to GATE_KEEP_BYTES) for the next hold: fresh memory faults on its first write, a
 * fault costs microseconds (about 10 us a page on this project's test VM), and a hold that
 * queued megabytes into fresh memory spent most of its time faulting. Blocks are huge pages
 * where the machine has them (one fault each).
 */
#define GATE_BLOCK (2u << 20)
#define GATE_KEEP_BYTES (64u << 20)
#define GATE_INITIAL_BYTES (4u << 20)

struct gate_block {
	struct gate_block *next;
	size_t used;
	uint8_t *data; /* GATE_BLOCK bytes */
};

struct snap_gate {
	struct img_sink base; /* first: the writer sees a sink */
	struct img_sink *out;
	int holding; /* atomic */
	struct gate_block *head, *tail; /* queued, oldest first */
	size_t queued;
	pthread_mutex_t spare_lock; /* the writer and snap_gate_reserve() take spare blocks */
	struct gate_block *spare;
	size_t nspare;
};

static struct gate_block *block_new(void)
{
	struct gate_block *b = calloc(1, sizeof(*b));
	uint8_t *m = b ? mmap(NULL, 2 * GATE_BLOCK, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
		       : MAP_FAILED;
	uintptr_t at;

	if (m == MAP_FAILED) {
		free(b);
		return NULL;
	}
	/* 2 MiB-aligned, so that it can be one huge page */
	at = ((uintptr_t)m + GATE_BLOCK - 1) & ~(uintptr_t)(GATE_BLOCK - 1);
	if (at > (uintptr_t)m)
		munmap(m, at - (uintptr_t)m);
	munmap((uint8_t *)at + GATE_BLOCK, (uintptr_t)m + GATE_BLOCK - at);
	b->data = (uint8_t *)at;
	/* The holder is a child of ours (target/holder.c): shared with it copy-on-write, every
	 * block written first after its fork() would fault again, page by page, while held. */
	madvise(b->data, GATE_BLOCK, MADV_DONTFORK);
	madvise(b->data, GATE_BLOCK, MADV_HUGEPAGE);
	if (madvise(b->data, GATE_BLOCK, MADV_POPULATE_WRITE) < 0)
		memset(b->data, 0, GATE_BLOCK); /* fault it in now, not while held */
	return b;
}

static void block_free(struct gate_block *b)
{
	munmap(b->data, GATE_BLOCK);
	free(b);
}

static struct gate_block *block_get(struct snap_gate *g)
{
	struct gate_block *b;

	pthread_mutex_lock(&g->spare_lock);
	b = g->spare;
	if (b) {
		g->spare = b->next;
		g->nspare--;
	}
	pthread_mutex_unlock(&g->spare_lock);
	if (!b)
		b = block_new();
	if (b) {
		b->next = NULL;
		b->used = 0;
	}
	return b;
}

static void block_put(struct snap_gate *g, struct gate_block *b)
{
	pthread_mutex_lock(&g->spare_lock);
	if (g->nspare * GATE_BLOCK < GATE_KEEP_BYTES) {
		b->next = g->spare;
		g->spare = b;
		g->nspare++;
		b = NULL;
	}
	pthread_mutex_unlock(&g->spare_lock);
	if (b)
		block_free(b);
}

static int gate_queue(struct snap_gate *g, const struct iovec *iov, int iovcnt)
{
	size_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (g->queued + len > SNAP_GATE_MAX_BYTES)
		return -ENOBUFS;
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = iov[i].iov_len;

		while (n) {
			struct gate_block *b = g->tail;
			size_t m;

			if (!b || b->used == GATE_BLOCK) {
				b = block_get(g);
				if (!b)
					return -ENOMEM;
				if (g->tail)
					g->tail->next = b;
				else
					g->head = b;
				g->tail = b;
			}
			m = n < GATE_BLOCK - b->used ? n : GATE_BLOCK - b->used;
			memcpy(b->data + b->used, p, m);
			b->used += m;
			g->queued += m;
			p += m;
			n -= m;
		}
	}
	return 0;
}

/* Writes out what was queued while held, oldest first. */
static int gate_drain(struct snap_gate *g)
{
	while (g->head) {
		struct gate_block *b = g->head;
		struct iovec v = {b->data, b->used};
		int k = b->used ? g->out->ops->writev(g->out, &v, 1) : 0;

		if (k < 0)
			return k;
		g->head = b->next;
		if (!g->head)
			g->tail = NULL;
		g->queued -= b->used;
		block_put(g, b);
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
	pthread_mutex_init(&g->spare_lock, NULL);
	*ret = g;
	snap_gate_reserve(g, GATE_INITIAL_BYTES); /* what a hold queues, usually */
	return 0;
}

struct img_sink *snap_gate_sink(struct snap_gate *g)
{
	return &g->base;
}

void snap_gate_reserve(struct snap_gate *g, size_t bytes)
{
	size_t want;

	if (!g)
		return;
	if (bytes > GATE_KEEP_BYTES)
		bytes = GATE_KEEP_BYTES;
	want = (bytes + GATE_BLOCK - 1) / GATE_BLOCK;
	for (;;) {
		struct gate_block *b;
		bool enough;

		pthread_mutex_lock(&g->spare_lock);
		enough = g->nspare >= want;
		pthread_mutex_unlock(&g->spare_lock);
		if (enough || !(b = block_new()))
			return;
		block_put(g, b);
	}
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
		struct gate_block *b = g->head;

		g->head = b->next;
		block_free(b);
	}
	while (g->spare) {
		struct gate_block *b = g->spare;

		g->spare = b->next;
		block_free(b);
	}
	pthread_mutex_destroy(&g->spare_lock);
	free(g);
}
