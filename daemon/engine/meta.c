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

/*
 * Without "vmas" and "threads": meta_text() adds the layout's text (vma_list_json_text()) and
 * the holder's as it came (holder.h).
 */
static json_t *meta_json(struct snap *s)
{
	struct utsname u;

	uname(&u);
	return json_pack("{s:s, s:i, s:{s:s, s:s}, s:o, s:{s:s, s:s}, s:o, s:i, s:O*}", "format",
			 "uffsnap", "version", 1, "tool", "name", "uffsnapd", "version",
			 UFFSNAP_VERSION, "target", target_json(s->pid), "kernel", "release",
			 u.release, "machine", u.machine, "time", time_json(), "page_size",
			 (int)s->page_size, "parent", s->parent);
}

/* The pieces of the metadata: {...} without its '}', the vmas member, the threads member, '}'. */
#define META_PIECES 6

/* What backs the pieces: free both. */
struct meta_buf {
	char *text, *vmas;
};

static void meta_buf_free(struct meta_buf *b)
{
	free(b->text);
	free(b->vmas);
}

/*
 * The metadata of the target as held now (hooks' members included), as pieces for the image
 * writer: meta_json()'s text with "vmas" and "threads" spliced in. The layout is written as
 * text directly, and the holder's text goes as it came (megabytes at hundreds of threads:
 * never parsed, dumped or even copied while the target is held). The caller frees *ret.
 */
static int meta_text(struct snap *s, struct meta_buf *ret, struct iovec iov[META_PIECES])
{
	static const char vkey[] = ",\"vmas\":", tkey[] = ",\"threads\":";
	const struct snap_hooks *h = s->opts.hooks;
	char *text = NULL;
	size_t n, nvmas = 0;
	json_t *meta;
	int k;

	*ret = (struct meta_buf){0};
	if (!s->held.threads_json)
		return -EPROTO; /* no hold has reported the threads */
	ret->vmas = vma_list_json_text(&s->vmas, &nvmas);
	meta = ret->vmas ? meta_json(s) : NULL;
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
	ret->text = text;
	if (k < 0) {
		meta_buf_free(ret);
		return k;
	}
	iov[0] = (struct iovec){text, n - 1};
	iov[1] = (struct iovec){(void *)vkey, sizeof(vkey) - 1};
	iov[2] = (struct iovec){ret->vmas, nvmas};
	iov[3] = (struct iovec){(void *)tkey, sizeof(tkey) - 1};
	iov[4] = (struct iovec){s->held.threads_json, strlen(s->held.threads_json)};
	iov[5] = (struct iovec){(void *)"}", 1};
	return 0;
}

int snap_begin_image(struct snap *s)
{
	const struct snap_hooks *h = s->opts.hooks;
	struct iovec iov[META_PIECES];
	struct meta_buf b;
	int k = meta_text(s, &b, iov);

	if (k >= 0)
		k = img_writer_beginv(s->w, iov, META_PIECES);
	if (k >= 0 && h && h->after_meta)
		k = h->after_meta(h->ctx, s->w);
	meta_buf_free(&b);
	if (k < 0)
		snap_fail(s, k, "cannot write the image: %s", strerror(-k));
	return k;
}

int snap_final_meta(struct snap *s)
{
	struct iovec iov[META_PIECES];
	struct meta_buf b;
	int k = meta_text(s, &b, iov);

	if (k >= 0)
		k = img_writer_metav(s->w, iov, META_PIECES);
	meta_buf_free(&b);
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
