/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd: one-shot mode. `uffsnapd --pid PID --output FILE` takes one live snapshot and
 * prints a summary. (Service and receiver modes come with their issues.)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "snapshot.h"
#include "stream-main.h"
#include "svc-main.h"

struct cli {
	pid_t pid;
	const char *output;
	bool json, quiet, strict, force;
	uint32_t window_pages;
	bool tty;
	uint64_t last_progress_ns;
};

static const struct option long_opts[] = {
	{"pid", required_argument, NULL, 'p'},	  {"output", required_argument, NULL, 'o'},
	{"strict", no_argument, NULL, 's'},	  {"json", no_argument, NULL, 'j'},
	{"quiet", no_argument, NULL, 'q'},	  {"force", no_argument, NULL, 'f'},
	{"window", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},	  {0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uffsnapd --pid PID --output FILE [options]\n"
		"\n"
		"Take a consistent snapshot of the memory of running process PID, without stopping it\n"
		"for longer than it takes to arm write protection, and write it as a uffsnap image.\n"
		"\n"
		"  -p, --pid PID       the process to snapshot (any process we may ptrace)\n"
		"  -o, --output FILE   where to write the image; '-' streams it to stdout\n"
		"  -f, --force         overwrite FILE if it exists\n"
		"  -s, --strict        fail if the target discards memory not yet saved (munmap,\n"
		"                      MADV_DONTNEED) instead of recording it as discarded\n"
		"  -w, --window PAGES  pages saved around each write fault (default 16, max 512)\n"
		"  -j, --json          print the summary as one JSON object on stdout\n"
		"                      (on stderr with --output -)\n"
		"  -q, --quiet         no progress, no summary; errors only\n"
		"  -h, --help          this text\n"
		"  -V, --version       print the version\n"
		"\n"
		"Exit status: 0 snapshot complete and verified, 1 snapshot failed (the target is\n"
		"released first; a partial image is marked incomplete), 2 usage error.\n"
		"Inspect images with 'uffsnapctl image info|verify|maps|read'.\n");
}

static int parse_u32(const char *s, uint32_t max, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > max || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct cli *c)
{
	uint32_t v;
	int o;

	while ((o = getopt_long(argc, argv, "p:o:sjqfw:hV", long_opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			if (parse_u32(optarg, INT_MAX, &v) < 0)
				return fprintf(stderr, "uffsnapd: invalid pid '%s'\n", optarg), 2;
			c->pid = v;
			break;
		case 'o':
			c->output = optarg;
			break;
		case 's':
			c->strict = true;
			break;
		case 'j':
			c->json = true;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'f':
			c->force = true;
			break;
		case 'w':
			if (parse_u32(optarg, 512, &c->window_pages) < 0)
				return fprintf(stderr, "uffsnapd: --window takes 1..512 pages\n"), 2;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("uffsnapd %s\n", UFFSNAP_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'uffsnapd --help'.\n");
			return 2;
		}
	}
	if (optind < argc)
		return fprintf(stderr, "uffsnapd: unexpected argument '%s'\n", argv[optind]), 2;
	if (!c->pid || !c->output)
		return fprintf(stderr, "uffsnapd: --pid and --output are required (see --help)\n"), 2;
	return 0;
}

static int open_output(const struct cli *c)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (c->force ? O_TRUNC : O_EXCL);
	int fd;

	if (!strcmp(c->output, "-")) {
		if (isatty(STDOUT_FILENO)) {
			fprintf(stderr, "uffsnapd: refusing to write an image to a terminal\n");
			return -ENOTTY;
		}
		return STDOUT_FILENO;
	}
	fd = open(c->output, flags, 0600);
	if (fd < 0) {
		int e = errno;

		fprintf(stderr, "uffsnapd: cannot create '%s': %s%s\n", c->output, strerror(e),
			e == EEXIST ? " (use --force to overwrite)" : "");
		return -e;
	}
	return fd;
}

/* Reads the finished image back, front to back, as `uffsnapctl image verify` would. */
static int verify_output(const struct cli *c, char *msg, size_t len)
{
	struct img_summary sum;
	int fd, r;

	if (!strcmp(c->output, "-"))
		return 0; /* a stream: the reader verifies it */
	fd = open(c->output, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return snprintf(msg, len, "cannot reopen '%s' to verify it: %m", c->output), -errno;
	r = img_verify_fd(fd, &sum, NULL);
	close(fd);
	if (r < 0)
		return snprintf(msg, len, "cannot verify '%s': %s", c->output, strerror(-r)), r;
	if (sum.status != IMG_COMPLETE)
		return snprintf(msg, len, "the image written to '%s' does not verify: %s at offset %llu",
				c->output, sum.error.msg, (unsigned long long)sum.error.offset),
		       -EBADMSG;
	return 0;
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
	struct cli *c = ctx;
	uint64_t now = snap_now_ns();

	if (c->quiet || !c->tty || (now - c->last_progress_ns < 200000000ull && done < total))
		return;
	c->last_progress_ns = now;
	fprintf(stderr, "\ruffsnapd: saving %3" PRIu64 "%% (%" PRIu64 "/%" PRIu64 " pages)",
		total ? done * 100 / total : 100, done, total);
	if (done >= total)
		fputc('\n', stderr);
}

static void print_summary(FILE *f, const struct cli *c, const struct snap_stats *st)
{
	fprintf(f,
		"uffsnapd: snapshot of pid %d complete: %s\n"
		"  target held        %.3f ms (attach %.3f, arming %.3f, copying %.3f), %u threads\n"
		"  pages saved        %" PRIu64 " by the copier, %" PRIu64 " by write faults, %" PRIu64
		" while held\n"
		"  zero pages         %" PRIu64 "\n"
		"  discarded after T  %" PRIu64 "\n"
		"  write faults       %" PRIu64 ", service time p50 %.1f us, p99 %.1f us, max %.1f us\n"
		"  image              %" PRIu64 " bytes (%.1f MiB), duration %.3f s\n",
		c->pid, c->output, st->held_ns / 1e6, st->attach_ns / 1e6, st->arm_ns / 1e6,
		st->copy_held_ns / 1e6, st->threads,
		st->pages_copier, st->pages_fault, st->pages_held, st->pages_zero,
		st->pages_discarded, st->faults, st->fault_p50_ns / 1e3, st->fault_p99_ns / 1e3,
		st->fault_max_ns / 1e3, st->bytes, st->bytes / 1048576.0, st->duration_ns / 1e9);
}

static void report(const struct cli *c, const struct snap_stats *st, int r, const char *msg)
{
	FILE *f = strcmp(c->output, "-") ? stdout : stderr;

	if (c->json) {
		json_t *j = NULL;

		if (snapshot_stats_to_json(st, &j) >= 0) {
			json_object_set_new(j, "pid", json_integer(c->pid));
			json_object_set_new(j, "output", json_string(c->output));
			json_object_set_new(j, "ok", json_boolean(r >= 0));
			if (r < 0)
				json_object_set_new(j, "error", json_string(msg));
			json_dumpf(j, f, JSON_COMPACT);
			fputc('\n', f);
			json_decref(j);
		}
	} else if (r >= 0 && !c->quiet) {
		print_summary(f, c, st);
	}
}

int main(int argc, char **argv)
{
	struct cli c = {.tty = isatty(STDERR_FILENO)};
	struct snap_opts o = {.devuffd_fd = -1};
	struct snap_stats st = {0};
	struct snap_error err = {{0}};
	struct img_sink *sink = NULL;
	int fd, r;

	for (int i = 1; i < argc; i++) { /* the mode flag may be anywhere, as getopt allows */
		if (!strcmp(argv[i], "--service"))
			return svc_main(argc, argv);
		if (!strcmp(argv[i], "--receive"))
			return recv_main(argc, argv);
		if (!strcmp(argv[i], "--"))
			break;
	}
	r = parse_args(argc, argv, &c);
	if (r)
		return r;
	fd = open_output(&c);
	if (fd < 0)
		return 1;
	o.strict = c.strict;
	o.window_pages = c.window_pages;
	o.progress = progress;
	o.progress_ctx = &c;
	r = img_sink_fd_new(fd, &sink);
	if (r >= 0)
		r = snapshot_take(c.pid, &o, sink, &st, &err);
	if (r >= 0)
		r = verify_output(&c, err.msg, sizeof(err.msg));
	if (r < 0)
		fprintf(stderr, "uffsnapd: %s\n", err.msg[0] ? err.msg : strerror(-r));
	report(&c, &st, r, err.msg);
	img_sink_free(sink);
	if (fd != STDOUT_FILENO && close(fd) < 0 && r >= 0) {
		fprintf(stderr, "uffsnapd: cannot close '%s': %m\n", c.output);
		r = -EIO;
	}
	return r < 0 ? 1 : 0;
}
