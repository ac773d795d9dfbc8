/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wl-status.h"

void wl_status_init(struct wl_status *s)
{
	atomic_init(&s->stop, false);
	atomic_init(&s->pause, false);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->parked = 0;
	atomic_init(&s->failures, 0);
	s->first_failure[0] = '\0';
}

void wl_status_destroy(struct wl_status *s)
{
	if (!s)
		return;
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
}

void wl_status_fail(struct wl_status *s, const char *fmt, ...)
{
	int err = errno; /* for %m: the caller's errno, whatever locking does to it */
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (atomic_fetch_add(&s->failures, 1) == 0) {
		errno = err;
		va_start(ap, fmt);
		vsnprintf(s->first_failure, sizeof(s->first_failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->lock);
}

uint64_t wl_status_failures(struct wl_status *s, char *ret_first, size_t len)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = atomic_load(&s->failures);
	if (ret_first && len)
		snprintf(ret_first, len, "%s", s->first_failure);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void wl_status_park(struct wl_status *s)
{
	pthread_mutex_lock(&s->lock);
	s->parked++;
	pthread_cond_broadcast(&s->cond);
	while (atomic_load(&s->pause))
		pthread_cond_wait(&s->cond, &s->lock);
	s->parked--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void wl_status_pause(struct wl_status *s, unsigned nworkers)
{
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->pause, true);
	while (s->parked < nworkers)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void wl_status_resume(struct wl_status *s)
{
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->pause, false);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}
