/* SPDX-License-Identifier: MIT */
/*
 * uffsnap-workload: a multi-threaded target whose every store is predictable (README.md), so
 * that an image of it can be judged by uffsnap-check. Prints its layout as one JSON line, then
 * "ready"; SIGUSR1: full self-check; SIGUSR2: store rate; SIGTERM: stop, self-check, exit.
 * Exit: 0 self-check ok, 1 self-check failed, 2 usage, 3 setup failed, 77 no free huge pages.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wl-events.h"
#include "wl-idle.h"
#include "wl-privs.h"
#include "wl-store.h"

enum { WL_EXIT_OK = 0, WL_EXIT_FAILED = 1, WL_EXIT_USAGE = 2, WL_EXIT_SETUP = 3, WL_EXIT_SKIP = 77 };

#define WL_DEFAULT_THREADS 4
#define WL_DEFAULT_PAGES   64
#define WL_MAX_PAGES	   (1u << 20)
#define WL_MAX_IDLE_THREADS 4096

struct wl_config {
	uint32_t threads;
	enum wl_kind kind;
	uint32_t pages;
	uint32_t records; /* 0: a full page */
	unsigned events;
	uint64_t seed;
	const char *as_user;
	bool deny_uffd;
	uint32_t idle_threads;
};

struct wl_ctx {
	struct wl_config cfg;
	struct wl_status status;
	struct wl_store store;
	struct wl_events events;
	char tmpdir[64];
	uint64_t rate_stores;
	struct timespec rate_time;
};

static void wl_usage(FILE *f)
{
	fprintf(f,
		"usage: uffsnap-workload [options]\n"
		"  --threads N          store threads, 1..%d (default %d)\n"
		"  --kind KIND          anon|thp|shm|memfd|hugetlb|filepriv (default anon)\n"
		"  --pages P            data pages per thread (default %d)\n"
		"  --records R          records used per page, 1..page_size/16 (default: all)\n"
		"  --events LIST        comma list of fork,mremap,munmap,madvise,threads,readinto,\n"
		"                       or all (default none)\n"
		"  --seed N             starting generation of the events' patterns (default 1)\n"
		"  --as-user NAME       become that user once memory is set up\n"
		"  --seccomp-deny-uffd  make the userfaultfd syscall fail with EPERM\n"
		"  --idle-threads N     also N threads blocked in system calls, 0..%d (default 0)\n",
		WL_MAX_THREADS, WL_DEFAULT_THREADS, WL_DEFAULT_PAGES, WL_MAX_IDLE_THREADS);
}

static int wl_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int wl_parse_opt(int c, const char *arg, struct wl_config *cfg)
{
	const char *bad = arg;
	uint64_t v;
	int r;

	switch (c) {
	case 't':
		r = wl_parse_u64(arg, 1, WL_MAX_THREADS, &v);
		cfg->threads = (uint32_t)v;
		break;
	case 'k':
		r = wl_kind_from_name(arg);
		cfg->kind = r < 0 ? 0 : (enum wl_kind)r;
		break;
	case 'p':
		r = wl_parse_u64(arg, 1, WL_MAX_PAGES, &v);
		cfg->pages = (uint32_t)v;
		break;
	case 'r':
		r = wl_parse_u64(arg, 1, (uint64_t)sysconf(_SC_PAGESIZE) / WL_RECORD_SIZE, &v);
		cfg->records = (uint32_t)v;
		break;
	case 'e':
		r = wl_events_parse(arg, &cfg->events, &bad);
		break;
	case 's':
		r = wl_parse_u64(arg, 0, UINT64_MAX, &cfg->seed);
		break;
	case 'i':
		r = wl_parse_u64(arg, 0, WL_MAX_IDLE_THREADS, &v);
		cfg->idle_threads = (uint32_t)v;
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		fprintf(stderr, "uffsnap-workload: bad value '%s'\n", bad);
	return r < 0 ? r : 0;
}

/* 0: run; 1: --help printed; -EINVAL: usage error (printed). */
static int wl_parse_args(int argc, char **argv, struct wl_config *cfg)
{
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 't'}, {"kind", required_argument, NULL, 'k'},
		{"pages", required_argument, NULL, 'p'},   {"records", required_argument, NULL, 'r'},
		{"events", required_argument, NULL, 'e'},  {"seed", required_argument, NULL, 's'},
		{"as-user", required_argument, NULL, 'u'}, {"seccomp-deny-uffd", no_argument, NULL, 'S'},
		{"idle-threads", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},	   {}};
	int c;

	*cfg = (struct wl_config){.threads = WL_DEFAULT_THREADS, .pages = WL_DEFAULT_PAGES, .seed = 1};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'h') {
			wl_usage(stdout);
			return 1;
		}
		if (c == 'u')
			cfg->as_user = optarg;
		else if (c == 'S')
			cfg->deny_uffd = true;
		else if (wl_parse_opt(c, optarg, cfg) < 0)
			goto usage;
	}
	if (optind == argc)
		return 0;
usage:
	wl_usage(stderr);
	return -EINVAL;
}

static int wl_setup(struct wl_ctx *ctx)
{
	struct wl_config *cfg = &ctx->cfg;
	long ps = sysconf(_SC_PAGESIZE);
	int r;

	ctx->store = (struct wl_store){
		.geo = {(uint64_t)ps, cfg->pages, cfg->records ? cfg->records : (uint32_t)(ps / WL_RECORD_SIZE)},
		.nthreads = cfg->threads,
		.kind = cfg->kind,
		.readinto = cfg->events & WL_EV_BIT(WL_EV_READINTO),
		.status = &ctx->status};
	if (!wl_geometry_valid(&ctx->store.geo))
		return -EINVAL;
	if (cfg->kind == WL_KIND_FILEPRIV) {
		snprintf(ctx->tmpdir, sizeof(ctx->tmpdir), "/tmp/uffsnap-wl.XXXXXX");
		if (!mkdtemp(ctx->tmpdir))
			return -errno;
	}
	r = wl_store_setup(&ctx->store, ctx->tmpdir[0] ? ctx->tmpdir : NULL);
	if (ctx->tmpdir[0])
		rmdir(ctx->tmpdir); /* the files are unlinked already; the mappings keep them */
	if (r < 0)
		return r;
	ctx->events = (struct wl_events){.mask = cfg->events,
					 .seed = cfg->seed,
					 .page_size = (size_t)ps,
					 .store = &ctx->store,
					 .status = &ctx->status};
	return wl_events_setup(&ctx->events);
}

static int wl_harden(struct wl_ctx *ctx)
{
	uid_t uid;
	gid_t gid;
	int r;

	if (ctx->cfg.as_user) {
		r = wl_privs_lookup(ctx->cfg.as_user, &uid, &gid);
		if (r < 0) {
			fprintf(stderr, "uffsnap-workload: no user %s: %s\n", ctx->cfg.as_user,
				strerror(-r));
			return r;
		}
	}
	if (ctx->cfg.deny_uffd && (r = wl_privs_deny_userfaultfd()) < 0) {
		fprintf(stderr, "uffsnap-workload: seccomp filter: %s\n", strerror(-r));
		return r;
	}
	if (ctx->cfg.as_user && (r = wl_privs_drop(uid, gid)) < 0) {
		fprintf(stderr, "uffsnap-workload: cannot become %s: %s\n", ctx->cfg.as_user,
			strerror(-r));
		return r;
	}
	return 0;
}

static void wl_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

static int wl_start(struct wl_ctx *ctx)
{
	sigset_t set;
	int r;

	/* Blocked before any thread exists, so every thread inherits it and only sigwaitinfo in
	 * main sees these signals. SIGPIPE: a test that stops reading must not kill us. */
	wl_sigset(&set);
	sigaddset(&set, SIGPIPE);
	r = -pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r < 0)
		return r;
	r = wl_idle_start(ctx->cfg.idle_threads);
	if (r < 0)
		return r;
	r = wl_store_start(&ctx->store);
	if (r < 0)
		return r;
	return wl_events_start(&ctx->events);
}

static json_t *wl_hex(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

static json_t *wl_layout_regions(const struct wl_ctx *ctx)
{
	json_t *arr = json_array();

	for (uint32_t t = 0; arr && t < ctx->cfg.threads; t++) {
		const struct wl_region *reg = &ctx->store.regions[t];

		json_array_append_new(
			arr, json_pack("{s:I, s:o, s:o, s:o, s:I, s:I}", "thread", (json_int_t)t,
				       "addr", wl_hex((uintptr_t)reg->data), "header",
				       wl_hex((uintptr_t)reg->header), "counter",
				       wl_hex((uintptr_t)reg->counter), "pages",
				       (json_int_t)ctx->store.geo.pages, "records_per_page",
				       (json_int_t)ctx->store.geo.records));
	}
	return arr;
}

static json_t *wl_layout_scratch(const struct wl_ctx *ctx)
{
	struct wl_scratch_info info[WL_EV_COUNT];
	size_t n = wl_events_scratch(&ctx->events, info, WL_EV_COUNT);
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		json_t *o = json_pack("{s:s, s:I}", "event", info[i].event, "pages",
				      (json_int_t)info[i].pages);

		if (info[i].addr)
			json_object_set_new(o, "addr", wl_hex(info[i].addr));
		if (info[i].alt)
			json_object_set_new(o, "alt", wl_hex(info[i].alt));
		json_array_append_new(arr, o);
	}
	return arr;
}

static int wl_print_layout(const struct wl_ctx *ctx)
{
	json_t *events = json_array(), *root;
	char *text;

	for (int e = 0; e < WL_EV_COUNT; e++)
		if (ctx->cfg.events & WL_EV_BIT(e))
			json_array_append_new(events, json_string(wl_event_name((enum wl_event)e)));
	root = json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:o, s:o, s:o}", "pid",
			 (json_int_t)getpid(), "page_size", (json_int_t)ctx->store.geo.page_size,
			 "kind", wl_kind_name(ctx->cfg.kind), "threads",
			 (json_int_t)ctx->cfg.threads, "seed", (json_int_t)ctx->cfg.seed,
			 "kernel_store_every",
			 (json_int_t)(ctx->store.readinto ? WL_KERNEL_STORE_EVERY : 0), "events",
			 events, "regions", wl_layout_regions(ctx), "scratch",
			 wl_layout_scratch(ctx));
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (!text)
		return -ENOMEM;
	printf("%s\nready\n", text);
	fflush(stdout);
	free(text);
	return 0;
}

struct wl_first_problem {
	char line[400];
};

static void wl_report_problem(void *userdata, const char *line)
{
	struct wl_first_problem *fp = userdata;

	fprintf(stderr, "uffsnap-workload: selfcheck: %s\n", line);
	if (!fp->line[0])
		snprintf(fp->line, sizeof(fp->line), "%s", line);
}

/* Verify everything; live: the workers are running and are paused around the check. */
static bool wl_selfcheck(struct wl_ctx *ctx, bool live)
{
	struct wl_first_problem fp = {{0}};
	struct wl_verify_result res;
	char first[512];
	uint64_t failures;
	int r;

	if (live)
		wl_status_pause(&ctx->status, ctx->cfg.threads);
	r = wl_store_verify(&ctx->store, wl_report_problem, &fp, &res);
	if (live)
		wl_status_resume(&ctx->status);
	failures = wl_status_failures(&ctx->status, first, sizeof(first));
	if (r >= 0 && res.consistent && failures == 0) {
		printf("selfcheck ok stores=%" PRIu64 "\n", res.stores);
	} else {
		printf("selfcheck FAILED stores=%" PRIu64 " problems=%" PRIu64
		       " failures=%" PRIu64 ": %s\n",
		       r < 0 ? 0 : res.stores, r < 0 ? 0 : res.problems, failures,
		       failures ? first : fp.line[0] ? fp.line : strerror(-r));
	}
	fflush(stdout);
	return r >= 0 && res.consistent && failures == 0;
}

static void wl_print_rate(struct wl_ctx *ctx)
{
	struct timespec now;
	uint64_t stores = wl_store_total(&ctx->store);
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - ctx->rate_time.tv_sec) +
	     (double)(now.tv_nsec - ctx->rate_time.tv_nsec) / 1e9;
	printf("rate %.0f\n", dt > 0 ? (double)(stores - ctx->rate_stores) / dt : 0.0);
	fflush(stdout);
	ctx->rate_stores = stores;
	ctx->rate_time = now;
}

static void wl_stop_all(struct wl_ctx *ctx)
{
	atomic_store(&ctx->status.stop, true);
	wl_store_join(&ctx->store);
	wl_events_stop(&ctx->events);
	fprintf(stderr, "uffsnap-workload: events done:");
	for (int e = 0; e < WL_EV_COUNT; e++)
		if (ctx->events.started[e] || atomic_load(&ctx->events.iterations[e]))
			fprintf(stderr, " %s=%" PRIu64, wl_event_name((enum wl_event)e),
				(uint64_t)atomic_load(&ctx->events.iterations[e]));
	fprintf(stderr, "\n");
}

static int wl_signal_loop(struct wl_ctx *ctx)
{
	sigset_t set;

	wl_sigset(&set);
	clock_gettime(CLOCK_MONOTONIC, &ctx->rate_time);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);

		/* sigwaitinfo returns EINTR after a stop and continue (signal(7)): not an error. */
		if (sig < 0 && errno == EINTR)
			continue;
		if (sig < 0) {
			fprintf(stderr, "uffsnap-workload: sigwaitinfo: %m\n");
			wl_stop_all(ctx);
			return WL_EXIT_FAILED;
		}
		if (sig == SIGUSR2) {
			wl_print_rate(ctx);
		} else if (sig == SIGUSR1) {
			if (!wl_selfcheck(ctx, true)) {
				wl_stop_all(ctx);
				return WL_EXIT_FAILED;
			}
		} else {
			wl_stop_all(ctx);
			return wl_selfcheck(ctx, false) ? WL_EXIT_OK : WL_EXIT_FAILED;
		}
	}
}

static int wl_run(struct wl_ctx *ctx)
{
	int r = wl_setup(ctx);

	if (r == -ENOMEM && ctx->cfg.kind == WL_KIND_HUGETLB) {
		/* One 2 MiB page per thread; the fork event wants as many again for the parent's
		 * copy-on-write while a child holds the originals. */
		printf("no free huge pages (need %" PRIu32 " free 2 MiB pages, %" PRIu32
		       " with --events fork: raise /proc/sys/vm/nr_hugepages)\n",
		       ctx->cfg.threads, 2 * ctx->cfg.threads);
		fflush(stdout);
		return WL_EXIT_SKIP;
	}
	if (r < 0) {
		fprintf(stderr, "uffsnap-workload: setting up memory: %s\n", strerror(-r));
		return WL_EXIT_SETUP;
	}
	if (wl_harden(ctx) < 0)
		return WL_EXIT_SETUP;
	r = wl_start(ctx);
	if (r >= 0)
		r = wl_print_layout(ctx);
	if (r < 0) {
		fprintf(stderr, "uffsnap-workload: starting: %s\n", strerror(-r));
		wl_stop_all(ctx);
		return WL_EXIT_SETUP;
	}
	return wl_signal_loop(ctx);
}

int main(int argc, char **argv)
{
	struct wl_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	if (!ctx)
		return WL_EXIT_SETUP;
	r = wl_parse_args(argc, argv, &ctx->cfg);
	if (r != 0) {
		free(ctx);
		return r > 0 ? WL_EXIT_OK : WL_EXIT_USAGE;
	}
	wl_status_init(&ctx->status);
	r = wl_run(ctx);
	wl_events_teardown(&ctx->events);
	wl_store_teardown(&ctx->store);
	wl_status_destroy(&ctx->status);
	free(ctx);
	return r;
}
