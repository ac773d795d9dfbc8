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
	return json_pack("{s:i, s:s, s:s}", "pid", pid, "comm", comm, "exe", exe);
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

/* {...} + threads -> {...,"threads":threads}: megabytes at hundreds of threads, never parsed
 * and dumped again while the target is held. */
static int add_threads(char **text, const char *threads)
{
	size_t n = strlen(*text), tn = strlen(threads);
	static const char key[] = ",\"threads\":";
	char *t;

	if (n < 2 || (*text)[n - 1] != '}')
		return -EINVAL;
	t = realloc(*text, n + sizeof(key) - 1 + tn + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t + n - 1, key, sizeof(key) - 1);
	memcpy(t + n - 1 + sizeof(key) - 1, threads, tn);
	memcpy(t + n - 1 + sizeof(key) - 1 + tn, "}", 2);
	*text = t;
	return 0;
}

/* The metadata of the target as held now, as JSON text (hooks' members included). */
static int meta_text(struct snap *s, char **ret)
{
	const struct snap_hooks *h = s->opts.hooks;
	json_t *meta;
	int k;

	*ret = NULL;
	if (!s->held.threads_json)
		return -EPROTO; /* no hold has reported the threads */
	meta = meta_json(s);
	/* A scoped snapshot (a guest's RAM) is no process's image: no core-file description,
	 * which would only lengthen the guest's downtime. */
	k = !meta ? -ENOMEM : s->opts.scope ? 0 : snap_proc_describe(s->pid, meta);
	if (k >= 0 && h && h->meta)
		k = h->meta(h->ctx, meta);
	if (k >= 0 && !(*ret = json_dumps(meta, JSON_COMPACT)))
		k = -ENOMEM;
	if (k >= 0)
		k = add_threads(ret, s->held.threads_json);
	if (k < 0) {
		free(*ret);
		*ret = NULL;
	}
	json_decref(meta);
	return k;
}

int snap_begin_image(struct snap *s)
{
	const struct snap_hooks *h = s->opts.hooks;
	char *text = NULL;
	int k = meta_text(s, &text);

	if (k >= 0)
		k = img_writer_begin(s->w, text, strlen(text));
	if (k >= 0 && h && h->after_meta)
		k = h->after_meta(h->ctx, s->w);
	free(text);
	if (k < 0)
		snap_fail(s, k, "cannot write the image: %s", strerror(-k));
	return k;
}

int snap_final_meta(struct snap *s)
{
	char *text = NULL;
	int k = meta_text(s, &text);

	if (k >= 0)
		k = img_writer_meta(s->w, text, strlen(text));
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
