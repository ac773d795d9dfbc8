/* SPDX-License-Identifier: MIT */
/*
 * A chain job's thread: the images one after the other, each written to an unnamed file in the
 * snapshot directory and named only once complete and verified (the steps of
 * engine/chain-image.h that uffsnapd --incremental takes too). A complete image stays whatever
 * comes after it; the one in progress leaves nothing.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/chain-image.h"
#include "service/job-chain.h"
#include "sys/clock.h"

/* What the chain's thread carries from one image to the next. */
struct chain_step {
	struct svc_job *j;
	struct svc_chain *c;
	struct snapshot_chain *chain;
	char parent[CHAIN_IMAGE_PARENT_MAX]; /* the last image, as its child's META names it */
	char last[CTL_NAME_MAX + 2];	     /* its file name; "" before the first */
};

/* CHAIN_IMAGE for the main thread (svc_chain_events()). */
static void chain_queue(struct chain_step *s, unsigned i, const char *name,
			const struct snap_stats *st)
{
	struct svc_job *j = s->j;
	json_t *stats = NULL, *data;

	snapshot_stats_to_json(st, &stats);
	data = json_pack("{s:I, s:i, s:s, s:I, s:s?, s:o*}", "id", (json_int_t)j->id, "index",
			 (int)i, "file", name, "bytes", (json_int_t)st->bytes, "parent",
			 s->last[0] ? s->last : NULL, "stats", stats);
	pthread_mutex_lock(&j->lock);
	if (!s->c->pending)
		s->c->pending = json_array();
	json_array_append_new(s->c->pending,
			      json_pack("{s:s, s:o*}", "event", "CHAIN_IMAGE", "data", data));
	s->c->images = i + 1;
	free(s->c->last);
	s->c->last = strdup(name);
	pthread_mutex_unlock(&j->lock);
	eventfd_write(j->svc->jobsfd, 1);
}

/* Image i: written, verified, named, given to the client, described for the next. */
static int chain_one(struct chain_step *s, unsigned i, struct snap_stats *st)
{
	struct svc_job *j = s->j;
	char name[CTL_NAME_MAX + 2];
	int fd, r;

	if ((size_t)snprintf(name, sizeof(name), "%s-%04u.img", s->c->prefix, i) > CTL_NAME_MAX)
		return snprintf(j->err.msg, sizeof(j->err.msg),
				"image %u's name would be longer than %d bytes", i, CTL_NAME_MAX),
		       -ENAMETOOLONG;
	__atomic_store_n(&s->c->image, i, __ATOMIC_RELAXED);
	*st = (struct snap_stats){0};
	fd = svc_output_unnamed(j->svc);
	if (fd < 0)
		return snprintf(j->err.msg, sizeof(j->err.msg),
				"cannot create '%s' in the snapshot directory: %s", name,
				strerror(-fd)),
		       fd;
	r = chain_image_write(s->chain, fd, j->stop_fd, name, i ? s->parent : NULL, st, j->err.msg,
			      sizeof(j->err.msg));
	if (r >= 0)
		r = svc_output_name(j, fd, name);
	if (r >= 0 && (r = chain_image_parent(fd, name, s->parent, sizeof(s->parent))) < 0)
		snprintf(j->err.msg, sizeof(j->err.msg), "cannot read '%s' back: %s", name,
			 strerror(-r));
	close(fd);
	if (r >= 0) {
		chain_queue(s, i, name, st);
		snprintf(s->last, sizeof(s->last), "%s", name);
	}
	return r;
}

/*
 * Woken between two images: cancelled, or the target went (the process events set j->gone
 * before the cancel flag, which orders it for us).
 */
static int chain_stopped(struct chain_step *s, unsigned images)
{
	struct svc_job *j = s->j;
	int why = __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE);

	if (why == -ECANCELED || !j->gone)
		snprintf(j->err.msg, sizeof(j->err.msg),
			 "stopped between two images; the %u complete images stay", images);
	else
		snprintf(j->err.msg, sizeof(j->err.msg),
			 "pid %d %s between two images; the %u complete images stay", j->pid,
			 j->gone, images);
	return why ? why : -EINTR;
}

int svc_chain_run(struct svc_job *j, struct svc_chain *c, const struct snap_opts *opts,
		  struct snap_stats *ret_stats)
{
	struct chain_step s = {.j = j, .c = c};
	uint64_t t0 = sys_now_ns();
	int r = snapshot_chain_start(j->pid, opts, &s.chain, &j->err);

	for (unsigned i = 0; r >= 0 && (!c->count || i < c->count); i++) {
		if (i &&
		    chain_image_wait(j->stop_fd, t0 + (uint64_t)i * c->every_s * 1000000000ull))
			r = chain_stopped(&s, i);
		else
			r = chain_one(&s, i, ret_stats);
	}
	snapshot_chain_end(s.chain);
	return r;
}

json_t *svc_chain_json(struct svc_job *j, const struct svc_chain *c)
{
	json_t *o;

	pthread_mutex_lock(&j->lock);
	o = json_pack("{s:i, s:i, s:i, s:s?}", "every", (int)c->every_s, "count", (int)c->count,
		      "images", (int)c->images, "last", c->last);
	pthread_mutex_unlock(&j->lock);
	return o;
}

bool svc_chain_writes(const struct svc_chain *c, const char *name)
{
	size_t n = c->prefix ? strlen(c->prefix) : 0, digits = 0;
	const char *p = name + n + 1;

	if (!n || strncmp(name, c->prefix, n) || name[n] != '-')
		return false;
	while (isdigit((unsigned char)p[digits]))
		digits++;
	return digits >= 4 && !strcmp(p + digits, ".img");
}

void svc_chain_free(struct svc_chain *c)
{
	free(c->prefix);
	free(c->last);
	json_decref(c->pending);
}
