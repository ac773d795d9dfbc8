/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sys/clock.h"
#include "engine/emitq.h"
#include "engine/snap.h"

struct emitq {
	struct snap *s;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work, freed;
	struct emit_slot *free_list, *head, *tail;
	size_t buf_len, allocated, max_slots;
	bool stop;
};

static void emit_slot(struct snap *s, struct emit_slot *e)
{
	size_t i, j;
	int k = 0;

	for (i = 0; k >= 0 && snap_next_run(e->won, e->n, &i, &j); i = j) {
		k = snap_emit(s, e->start + i * e->granule, e->buf + i * e->granule,
			      (j - i) * e->granule);
		__atomic_add_fetch(&s->stats.pages_fault, (j - i) * e->granule / s->page_size,
				   __ATOMIC_RELAXED);
	}
	/* The pages are unprotected already: a copy that cannot be written fails the snapshot. */
	if (k < 0)
		snap_fail(s, k, "cannot write the image: %s", strerror(-k));
}

static void *emitter_main(void *arg)
{
	struct emitq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct emit_slot *e = q->head;

		if (!e) {
			if (q->stop)
				break;
			pthread_cond_wait(&q->work, &q->mu);
			continue;
		}
		q->head = e->next;
		if (!q->head)
			q->tail = NULL;
		pthread_mutex_unlock(&q->mu);
		if (!snap_failed(q->s))
			emit_slot(q->s, e);
		emitq_put_back(q, e);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int emitq_start(struct snap *s, size_t buf_len, uint64_t max_bytes, struct emitq **ret)
{
	struct emitq *q = calloc(1, sizeof(*q));
	int k;

	if (!q)
		return -ENOMEM;
	q->s = s;
	q->buf_len = buf_len;
	q->max_slots = (max_bytes ? max_bytes : EMITQ_DEFAULT_BYTES) / buf_len;
	if (q->max_slots < EMITQ_MIN_SLOTS)
		q->max_slots = EMITQ_MIN_SLOTS;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->freed, NULL);
	k = pthread_create(&q->th, NULL, emitter_main, q);
	if (k) {
		pthread_cond_destroy(&q->work);
		pthread_cond_destroy(&q->freed);
		pthread_mutex_destroy(&q->mu);
		free(q);
		return -k;
	}
	*ret = q;
	return 0;
}

static struct emit_slot *slot_new(size_t buf_len)
{
	struct emit_slot *e = malloc(sizeof(*e));

	if (!e)
		return NULL;
	e->buf = aligned_alloc(4096, buf_len);
	if (!e->buf) {
		free(e);
		return NULL;
	}
	return e;
}

struct emit_slot *emitq_get(struct emitq *q, uint64_t *ret_waited_ns)
{
	struct emit_slot *e;
	uint64_t t0 = 0;

	pthread_mutex_lock(&q->mu);
	if (!q->free_list && q->allocated == q->max_slots) {
		t0 = sys_now_ns();
		__atomic_store_n(&q->s->fault_waiting, 1, __ATOMIC_RELEASE);
	}
	while (!q->free_list && q->allocated == q->max_slots)
		pthread_cond_wait(&q->freed, &q->mu);
	if (t0)
		__atomic_store_n(&q->s->fault_waiting, 0, __ATOMIC_RELEASE);
	*ret_waited_ns = t0 ? sys_now_ns() - t0 : 0;
	e = q->free_list;
	if (e) {
		q->free_list = e->next;
	} else {
		e = slot_new(q->buf_len);
		q->allocated += !!e;
	}
	pthread_mutex_unlock(&q->mu);
	return e;
}

void emitq_push(struct emitq *q, struct emit_slot *e)
{
	e->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
}

void emitq_put_back(struct emitq *q, struct emit_slot *e)
{
	pthread_mutex_lock(&q->mu);
	e->next = q->free_list;
	q->free_list = e;
	pthread_cond_signal(&q->freed);
	pthread_mutex_unlock(&q->mu);
}

void emitq_finish(struct emitq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	while (q->free_list) {
		struct emit_slot *e = q->free_list;

		q->free_list = e->next;
		free(e->buf);
		free(e);
	}
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->freed);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
