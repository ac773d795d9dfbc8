/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "oneshot-chain.h"
#include "engine/chain-image.h"
#include "sys/clock.h"
#include "sys/out-file.h"
#include "uffsnap/image.h"

struct chain_run {
	const struct chain_cli *cc;
	struct snapshot_chain *chain;
	char prefix[64];   /* uffsnap-PID-YYYYmmddTHHMMSSZ: the chain's images' names */
	char parent[CHAIN_IMAGE_PARENT_MAX]; /* the last image, as its child's META names it */
};

static int take_one(struct chain_run *r, unsigned i, char *path, struct snap_stats *st,
		    char *msg, size_t len)
{
	struct out_file out = OUT_FILE_INIT;
	char name[128];
	int k;

	snprintf(name, sizeof(name), "%s-%04u.img", r->prefix, i);
	snprintf(path, PATH_MAX, "%s/%s", r->cc->dir, name);
	k = out_file_open(&out, path, false, 0600);
	if (k < 0)
		snprintf(msg, len, "cannot create '%s': %s", path,
			 k == -EEXIST ? "it exists" : strerror(-k));
	if (k >= 0)
		k = chain_image_write(r->chain, out.fd, r->cc->cancel_efd, path,
				      i ? r->parent : NULL, st, msg, len);
	if (k >= 0 && (k = out_file_commit(&out)) < 0)
		snprintf(msg, len, "cannot name '%s': %s", path, strerror(-k));
	if (k >= 0 && (k = chain_image_parent(out.fd, name, r->parent, sizeof(r->parent))) < 0)
		snprintf(msg, len, "cannot read back '%s': %s", path, strerror(-k));
	out_file_close(&out); /* a failed image's temporary goes */
	return k;
}

static void report(const struct chain_run *r, unsigned i, const char *path,
		   const struct snap_stats *st, int k, const char *msg)
{
	const struct chain_cli *cc = r->cc;
	json_t *j = NULL;

	if (cc->json && snapshot_stats_to_json(st, &j) >= 0) {
		json_object_set_new(j, "image", json_string(path));
		json_object_set_new(j, "index", json_integer(i));
		json_object_set_new(j, "ok", json_boolean(k >= 0));
		if (k < 0)
			json_object_set_new(j, "error", json_string(msg));
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		fflush(stdout);
		json_decref(j);
	} else if (k >= 0 && !cc->quiet) {
		printf("uffsnapd: image %u of pid %d%s: %s, %.1f MiB, held %.3f ms, %u rounds%s\n",
		       i, cc->pid, i ? " (changes since the one before)" : " (full)", path,
		       st->bytes / 1048576.0, st->hold_final_ns / 1e6, st->rounds,
		       st->converged ? "" : " (did not converge: the last copied while held)");
		fflush(stdout);
	}
	if (k < 0)
		fprintf(stderr, "uffsnapd: image %u of the chain: %s\n", i, msg);
}

int oneshot_chain(const struct chain_cli *cc, const struct snap_opts *opts)
{
	struct chain_run r = {.cc = cc};
	struct snap_error err = {{0}};
	time_t now = time(NULL);
	uint64_t t0 = sys_now_ns();
	struct tm tm;
	int k;

	gmtime_r(&now, &tm);
	snprintf(r.prefix, sizeof(r.prefix), "uffsnap-%d-", cc->pid);
	strftime(r.prefix + strlen(r.prefix), sizeof(r.prefix) - strlen(r.prefix),
		 "%Y%m%dT%H%M%SZ", &tm);
	k = snapshot_chain_start(cc->pid, opts, &r.chain, &err);
	if (k < 0)
		return fprintf(stderr, "uffsnapd: %s\n", err.msg[0] ? err.msg : strerror(-k)), 1;
	for (unsigned i = 0; k >= 0 && (!cc->count || i < cc->count); i++) {
		char path[PATH_MAX], msg[PATH_MAX + 512] = "";
		struct snap_stats st = {0};

		if (i && chain_image_wait(cc->cancel_efd,
					  t0 + (uint64_t)i * cc->every_s * 1000000000ull))
			break; /* interrupted between two images: every image is complete */
		k = take_one(&r, i, path, &st, msg, sizeof(msg));
		report(&r, i, path, &st, k, msg);
	}
	snapshot_chain_end(r.chain);
	return k < 0;
}
