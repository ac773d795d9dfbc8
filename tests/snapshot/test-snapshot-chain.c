/* SPDX-License-Identifier: MIT */
/*
 * Incremental chains (issue 17): uffsnapd --incremental takes a chain of images of the
 * predictable-store workload, the first full and each later one only what changed since the
 * one before. Every image must be exactly one instant's memory read through its parents:
 * each is flattened (`uffsnapctl image flatten`, which resolves it through the chain) and the
 * checker decides from the flat image alone; `uffsnapctl image verify` checks every link; the
 * last increment cannot be read without the full image (it holds only what changed; how
 * little, against the bytes the target dirtied, is for the benchmark: bench-precopy). The
 * target must be unharmed. Per memory kind, under every event.
 *
 * usage: test-snapshot-chain UFFSNAPD WORKLOAD CHECK UFFSNAPCTL KINDS [--held]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap-harness.h"
#include "test-check.h"

#define IMAGES 3

static const char *uffsnapctl;
/*
 * --held: every image but the first is made not to converge (--downtime 1 --max-rounds 1), so
 * what its rounds left is copied while the target is held, as a chain does instead of falling
 * back; at least one such image must say so.
 */
static bool held;

/* Whether an image after the first did not converge (uffsnapd --json lines in path). */
static bool one_held(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[16384];
	bool found = false;

	while (f && fgets(line, sizeof(line), f))
		if (!strstr(line, "\"index\":0,") && strstr(line, "\"converged\":false"))
			found = true;
	if (f)
		fclose(f);
	return found;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

/* One image, flattened through its parents, is one instant; its links verify. */
static int check_image(const struct snap_paths *p, const char *img, const char *layout)
{
	CHECK(snap_chain_image_ok(uffsnapctl, p->check, img, layout) == 0, "%s", img);
	printf("ok %s: %ld bytes, one instant through its parents\n", img, file_size(img));
	return 0;
fail:
	return -1;
}

static int check_images(const struct snap_paths *p, const char *dir, const char *layout)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, by_name), images = 0, failed = 0;

	for (int i = 0; i < n; i++) {
		char img[600];

		if (strstr(names[i]->d_name, ".img")) {
			snprintf(img, sizeof(img), "%s/%s", dir, names[i]->d_name);
			failed += check_image(p, img, layout) < 0;
			images++;
		}
		free(names[i]);
	}
	free(names);
	CHECK(images == IMAGES, "%d images in %s, not %d", images, dir, IMAGES);
	return failed ? -1 : 0;
fail:
	return -1;
}

/*
 * The increments hold only what changed: without the full image, the last cannot be read
 * (its chain is broken), while the full image alone still can.
 */
static int check_needs_parent(const char *dir)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, by_name), rc = -1;
	char first[600] = "", last[600] = "", moved[700], flat[700];
	const char *flatten[] = {uffsnapctl, "image", "flatten", last, "--output", flat, NULL};

	for (int i = 0; i < n; i++) {
		if (strstr(names[i]->d_name, ".img"))
			snprintf(*first ? last : first, sizeof(first), "%s/%s", dir,
				 names[i]->d_name);
		free(names[i]);
	}
	free(names);
	snprintf(moved, sizeof(moved), "%s.full", dir); /* out of the directory: readers look
							  * for parents there, by digest */
	snprintf(flat, sizeof(flat), "%s.flat", last);
	CHECK(*last && rename(first, moved) == 0, "cannot move the full image away");
	CHECK(snap_run(flatten) != 0, "%s was flattened without its chain's full image", last);
	CHECK(rename(moved, first) == 0, "cannot move the full image back");
	rc = 0;
fail:
	unlink(flat);
	return rc;
}

static int one(const struct snap_paths *p, const char *kind)
{
	const char *args[] = {"--threads", "2", "--kind", kind, "--pages", "256", "--events", "all",
			      NULL};
	char dir[] = "/tmp/uffsnap-chain-XXXXXX", layout[64], count[8], cmd[128], json[64];
	struct wl_proc *w = NULL;
	char pid[16];
	int rc = -1;

	CHECK(mkdtemp(dir), "cannot create a directory: %s", strerror(errno));
	CHECK(wl_proc_spawn(p->workload, args, &w) >= 0, "cannot start the workload");
	snprintf(layout, sizeof(layout), "%s.layout", dir);
	wl_write_file(layout, w->layout_json);
	snprintf(pid, sizeof(pid), "%d", w->pid);
	snprintf(count, sizeof(count), "%d", IMAGES);
	snprintf(json, sizeof(json), "%s.json", dir);
	{
		const char *chain[] = {p->uffsnapd, "--pid",   pid,   "--incremental",
				       "--every",   "1",       "--count", count,
				       "--dir",	    dir,       "--json",  held ? "--downtime" : NULL,
				       "1",	    "--max-rounds", "1", NULL};

		CHECK(snap_run_to(chain, json) == 0, "uffsnapd --incremental failed (kind %s)", kind);
	}
	CHECK(!held || one_held(json), "kind %s: every increment converged: nothing was copied "
	      "while held (--held)", kind);
	CHECK(check_images(p, dir, layout) == 0, "kind %s", kind);
	CHECK(check_needs_parent(dir) == 0, "kind %s", kind);
	CHECK(snap_target_unharmed(w) == 0, "kind %s: the target was harmed", kind);
	printf("ok %s\n", kind);
	rc = 0;
fail:
	wl_proc_free(w);
	unlink(layout);
	unlink(json);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return rc;
}

int main(int argc, char **argv)
{
	struct snap_paths p;
	int i = snap_paths_parse(argc, argv, &p), failed = 0;
	char *kinds, *kind, *save;

	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	if (i + 3 == argc && !strcmp(argv[i + 2], "--held"))
		held = true;
	else if (i + 2 != argc) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK UFFSNAPCTL KINDS [--held]\n",
			argv[0]);
		return 2;
	}
	uffsnapctl = argv[i];
	kinds = strdup(argv[i + 1]);
	for (kind = strtok_r(kinds, ",", &save); kind; kind = strtok_r(NULL, ",", &save))
		failed += one(&p, kind) != 0;
	free(kinds);
	printf("%s\n", failed ? "FAILED" : "all chains exact");
	return failed ? 1 : 0;
}
