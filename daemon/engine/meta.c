/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "engine/meta.h"
#include "engine/proc.h"
#include "engine/ustr.h"

int snap_writer_open(struct snap *s, struct img_sink *sink)
{
	/* Pre-copy rounds save a page again when it was written since (FORMAT.md: REWRITES). */
	struct img_writer_opts o = {.page_size = s->page_size,
				    .flags = (s->opts.precopy ? IMG_HEADER_F_REWRITES : 0) |
					     (s->parent ? IMG_HEADER_F_INCREMENTAL : 0)};
	int k = snap_gate_new(sink, &s->gate);

	if (k >= 0)
		k = img_writer_new(&o, snap_gate_sink(s->gate), &s->w);
	if (k < 0)
		snap_fail(s, k, "cannot create the image writer: %s", strerror(-k));
	return k;
}

static json_t *target_json(pid_t pid)
{
	char path[64], comm[64] = "", exe[PATH_MAX] = "";
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	return json_pack("{s:i, s:o, s:o}", "pid", pid, "comm", ustr_json(comm), "exe",
			 ustr_json(exe));
}

static json_t *time_json(void)
{
	struct timespec ts;
	char iso[64], tail[32];
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tail, sizeof(tail), ".%09ldZ", ts.tv_nsec);
	strncat(iso, tail, sizeof(iso) - strlen(iso) - 1);
	return json_pack("{s:I, s:s}", "realtime_ns",
			 (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec, "iso8601", iso);
}

/* Without "threads": meta_text() adds the holder's text as it came (holder.h). */
static json_t *meta_json(struct snap *s)
{
	json_t *vmas = NULL;
	struct utsname u;

	uname(&u);
	if (vma_list_to_json(&s->vmas, &vmas) < 0)
		return NULL;
	return json_pack("{s:s, s:i, s:{s:s, s:s}, s:o, s:{s:s, s:s}, s:o, s:i, s:o, s:O*}",
			 "format", "uffsnap", "version", 1, "tool", "name", "uffsnapd", "version",
			 UFFSNAP_VERSION, "target", target_json(s->pid), "kernel", "release",
			 u.release, "machine", u.machine, "time", time_json(), "page_size",
			 (int)s->page_size, "vmas", vmas, "parent", s->parent);
}

/* The pieces of the metadata: {...} without its '}', the threads member, '}'. */
#define META_PIECES 4

/*
 * The metadata of the target as held now (hooks' members included), as pieces for the image
 * writer: meta_json()'s text with "threads" spliced in, the holder's text as it came
 * (megabytes at hundreds of threads: never parsed, dumped or even copied while the target is
 * held). *ret_text backs the first piece: the caller frees it.
 */
static int meta_text(struct snap *s, char **ret_text, struct iovec iov[META_PIECES])
{
	static const char key[] = ",\"threads\":";
	const struct snap_hooks *h = s->opts.hooks;
	char *text = NULL;
	json_t *meta;
	size_t n;
	int k;

	*ret_text = NULL;
	if (!s->held.threads_json)
		return -EPROTO; /* no hold has reported the threads */
	meta = meta_json(s);
	/* A scoped snapshot (a guest's RAM) is no process's image: no core-file description,
	 * which would only lengthen the guest's downtime. */
	k = !meta ? -ENOMEM : s->opts.scope ? 0 : snap_proc_describe(s->pid, meta);
	if (k >= 0 && h && h->meta)
		k = h->meta(h->ctx, meta);
	if (k >= 0 && !(text = json_dumps(meta, JSON_COMPACT)))
		k = -ENOMEM;
	json_decref(meta);
	n = text ? strlen(text) : 0;
	if (k >= 0 && (n <= 2 || text[n - 1] != '}'))
		k = -EINVAL; /* never: it has "format" and more */
	if (k < 0) {
		free(text);
		return k;
	}
	iov[0] = (struct iovec){text, n - 1};
	iov[1] = (struct iovec){(void *)key, sizeof(key) - 1};
	iov[2] = (struct iovec){s->held.threads_json, strlen(s->held.threads_json)};
	iov[3] = (struct iovec){(void *)"}", 1};
	*ret_text = text;
	return 0;
}

int snap_begin_image(struct snap *s)
{
	const struct snap_hooks *h = s->opts.hooks;
	struct iovec iov[META_PIECES];
	char *text;
	int k = meta_text(s, &text, iov);

	if (k >= 0)
		k = img_writer_beginv(s->w, iov, META_PIECES);
	if (k >= 0 && h && h->after_meta)
		k = h->after_meta(h->ctx, s->w);
	free(text);
	if (k < 0)
		snap_fail(s, k, "cannot write the image: %s", strerror(-k));
	return k;
}

int snap_final_meta(struct snap *s)
{
	struct iovec iov[META_PIECES];
	char *text;
	int k = meta_text(s, &text, iov);

	if (k >= 0)
		k = img_writer_metav(s->w, iov, META_PIECES);
	free(text);
	if (k < 0)
		snap_fail(s, k, "cannot write the image's metadata: %s", strerror(-k));
	return k;
}

int snap_before_instant(struct snap *s)
{
	const struct snap_hooks *h = s->opts.hooks;
	char msg[sizeof(s->err.msg)] = "";
	int k = h && h->before_instant ? h->before_instant(h->ctx, msg, sizeof(msg)) : 0;

	if (k < 0)
		snap_fail(s, k, "%s", msg);
	return k;
}
